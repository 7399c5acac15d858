// Run a Python script under the real MicroPython (WebAssembly port) with package files mounted.
// usage: node run.mjs <micropython.mjs> <script.py> <root> <relative/file.py>...
// Each relative file is copied from <root> into MicroPython's in-memory filesystem at /<relative>.
import fs from "fs";
import path from "path";
import { pathToFileURL } from "url";

const [mpyPath, script, root, ...files] = process.argv.slice(2);
const { loadMicroPython } = await import(pathToFileURL(path.resolve(mpyPath)).href);
const mp = await loadMicroPython({ heapsize: 8 * 1024 * 1024, stdout: (t) => process.stdout.write(t + "\n"), stderr: (t) => process.stderr.write(t + "\n") });
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
} catch (e) {
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
