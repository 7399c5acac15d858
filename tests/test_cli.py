"""The composition root: every verb module is listed, and running a verb imports only its module."""

from __future__ import annotations

import subprocess
import sys

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
