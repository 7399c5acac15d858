"""The composition root: every verb module is listed, and running a verb imports only its module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.cli import VERB_MODULES, VERBS, build_parser


def test_every_registered_verb_is_in_the_table() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "verb")
    assert set(sub.choices) == set(VERBS)  # type: ignore[arg-type]
    assert set(VERB_MODULES) == set(VERBS.values())


def test_a_verb_imports_only_its_module() -> None:
    code = ("import sys; from agent.cli import build_parser; build_parser('agent');"
            "print(sorted(m for m in sys.modules if m.startswith(('sim', 'numpy'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    """``tbox platform dump | head -1``: the reader closes the pipe early; no traceback, exit 0 — for any
    verb (here one that only prints)."""
    (tmp_path / "spew_verb.py").write_text(
        "def register(sub):\n"
        "    p = sub.add_parser('spew')\n"
        "    p.set_defaults(run=lambda args: [print('x' * 100) for _ in range(100000)])\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import agent.cli as c;"
            "c.VERBS['spew'] = 'spew_verb'; sys.exit(c.main(['spew']))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1`
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err
