"""Running code under the real MicroPython interpreter (WebAssembly port on Node, installed into
.cache/micropython by `make tools`): one runner for the protocol and the board tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MPY = ROOT / ".cache/micropython/node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"
#: node run.mjs <micropython.mjs> <script.py> <root> <files relative to root…> (MPY_HEAP: initial heap)
RUNNER = Path(__file__).with_name("micropython") / "run.mjs"


def node_or_skip() -> str:
    """Node's path; skip when Node or the MicroPython package is missing (fail under CI=true)."""
    node = shutil.which("node")
    if node is None or not MPY.exists():
        if os.environ.get("CI"):
            pytest.fail("node or the MicroPython package is missing: `make tools` should have installed them")
        pytest.skip("node or MicroPython package missing; run `make tools`")
    return node


def copy_tree(stage: Path, files: Iterable[str], source: Path = ROOT) -> None:
    """Copy ``files`` (relative to ``source``) into ``stage``, keeping their folders."""
    for rel in files:
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / rel, stage / rel)


def run_micropython(script: Path, root: Path, files: Sequence[str], *, timeout: float = 120,
                    heap: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under MicroPython with ``files`` (relative to ``root``) mounted."""
    env = {**os.environ, "MPY_HEAP": str(heap)} if heap is not None else None
    return subprocess.run([node_or_skip(), str(RUNNER), str(MPY), str(script), str(root), *files],
                          capture_output=True, text=True, timeout=timeout, check=False, env=env)
