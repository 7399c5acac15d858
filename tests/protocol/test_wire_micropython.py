"""Run wire.py's test cases under the real MicroPython interpreter (WebAssembly port on Node).

`make tools` installs Node's package @micropython/micropython-webassembly-pyscript (MicroPython
1.27) into .cache/micropython. The test mounts wire.py, errors.py and wire_cases.py into
MicroPython's filesystem and runs every ``case_*`` there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.protocol import wire_cases

ROOT = Path(__file__).resolve().parents[2]
MPY = ROOT / ".cache/micropython/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
RUNNER = Path(__file__).with_name("micropython") / "run.mjs"
MOUNTED = (
    "agent/__init__.py",
    "agent/protocol/__init__.py",
    "agent/protocol/errors.py",
    "agent/protocol/wire.py",
    "tests/__init__.py",
    "tests/protocol/__init__.py",
    "tests/protocol/wire_cases.py",
)
SCRIPT = """
import sys
from tests.protocol import wire_cases
print("implementation", sys.implementation.name)
failed = 0
for name, fn in wire_cases.all_cases():
    try:
        fn()
        print("PASS", name)
    except Exception as exc:
        failed += 1
        print("FAIL", name, repr(exc))
print("DONE", failed)
"""

pytestmark = pytest.mark.micropython


def test_wire_cases_pass_under_micropython(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None or not MPY.exists():
        if os.environ.get("CI"):
            pytest.fail("node or the MicroPython package is missing: `make tools` should have installed them")
        pytest.skip("node or MicroPython package missing; run `make tools`")
    script = tmp_path / "run_cases.py"
    script.write_text(SCRIPT)
    result = subprocess.run(
        [node, str(RUNNER), str(MPY), str(script), str(ROOT), *MOUNTED],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "implementation micropython" in out
    passed = {line.split()[1] for line in out.splitlines() if line.startswith("PASS ")}
    assert passed == {name for name, _ in wire_cases.all_cases()}, out
    assert "DONE 0" in out, out
