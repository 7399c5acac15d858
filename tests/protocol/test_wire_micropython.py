"""Run wire.py's test cases under the real MicroPython interpreter (WebAssembly port on Node).

`make tools` installs Node's package @micropython/micropython-webassembly-pyscript (MicroPython
1.27) into .cache/micropython. The test mounts wire.py, errors.py and wire_cases.py into
MicroPython's filesystem and runs every ``case_*`` there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.micropython_support import ROOT, node_or_skip, run_micropython
from tests.protocol import wire_cases

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
    node_or_skip()
    script = tmp_path / "run_cases.py"
    script.write_text(SCRIPT)
    result = run_micropython(script, ROOT, MOUNTED)
    out = result.stdout
    assert result.returncode == 0, result.stderr + out
    assert "implementation micropython" in out
    passed = {line.split()[1] for line in out.splitlines() if line.startswith("PASS ")}
    assert passed == {name for name, _ in wire_cases.all_cases()}, out
    assert "DONE 0" in out, out
