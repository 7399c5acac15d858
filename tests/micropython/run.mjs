// Run a Python script under the real MicroPython (WebAssembly port) with package files mounted.
// usage: node run.mjs <micropython.mjs> <script.py> <root> <relative/file>... (tests/micropython_support.py)
// Each relative file is copied from <root> into MicroPython's in-memory filesystem at /<relative>.
// MPY_HEAP (bytes, default 8 MiB) sets the initial MicroPython heap (the port grows it when full).
// A script defining step() is then called as step() while it returns True.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [mpyPath, script, root, ...files] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(path.resolve(mpyPath)).href);
const mp = await loadMicroPython({ heapsize: Number(process.env.MPY_HEAP || 8 * 1024 * 1024), stdout: (t) => process.stdout.write(t + "\n"), stderr: (t) => process.stderr.write(t + "\n") });
for (const rel of files) {
  const dir = "/" + path.dirname(rel);
  let acc = "";
  for (const part of dir.split("/").filter(Boolean)) {
    acc += "/" + part;
    try { mp.FS.mkdir(acc); } catch (e) { /* exists */ }
  }
  mp.FS.writeFile("/" + rel, fs.readFileSync(path.join(root, rel)));
}
try {
  mp.runPython("import sys\nsys.path.insert(0, '/')\n" + fs.readFileSync(script, "utf8"));
  // A script that defines step() is driven from here, one top-level call per step: the WebAssembly
  // port only collects garbage at top level (gc.collect() inside a call merely schedules it).
  if (mp.globals.get("step") !== undefined) {
    do { mp.runPython("_more = 1 if step() else 0"); } while (mp.globals.get("_more") === 1);
  }
} catch (e) {
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
