"""``tbox board compile``: the MicroPython lite firmware's signal table from a DBC + mapping.

::

    tbox board compile --dbc dbc/tbox_ev.dbc --mapping dbc/tbox_ev.toml --out tbox_table.py

The mapping is loaded and checked exactly as the agent loads it (``agent.canbus.mapping``); the table
(``agent.boardgen``) is written to ``--out`` (copy it to the board next to ``main.py``, see
docs/micropython.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add the ``board`` verb (sub-command ``compile``) to the ``tbox`` parser."""
    parser = sub.add_parser(
        "board",
        help="MicroPython lite firmware: compile the signal table from a DBC + mapping",
        description="Tools for the MicroPython lite firmware in board/micropython (docs/micropython.md).",
    )
    verbs = parser.add_subparsers(dest="board_verb", required=True, metavar="ACTION")
    compile_p = verbs.add_parser(
        "compile",
        help="write the firmware's signal table (a plain Python module) from a DBC and a mapping",
        description=(
            "Load the mapping against the DBC(s) as the agent does and write the compact table the lite"
            " firmware decodes CAN frames with (no cantools on MicroPython)."
        ),
    )
    compile_p.add_argument(
        "--dbc", action="append", metavar="FILE", help="DBC file (repeatable; default: the mapping's own)"
    )
    compile_p.add_argument("--mapping", required=True, metavar="FILE", help="mapping file (docs/mapping.md)")
    compile_p.add_argument("--out", required=True, metavar="FILE", help="table module to write (.py)")
    compile_p.add_argument(
        "--edition", type=int, choices=(2016, 2025), default=2016, help="report edition (default 2016)"
    )
    compile_p.set_defaults(run=run_compile)


def run_compile(args: argparse.Namespace) -> int:
    """Entry point of ``tbox board compile``."""
    from agent.boardgen import compile_table
    from agent.canbus.mapping import load_mapping
    from agent.errors import ConfigError

    mapping = load_mapping(args.mapping, dbc=args.dbc)
    text = compile_table(mapping, args.edition)
    out = Path(args.out)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the table: {exc.strerror or exc}", file=str(out)) from exc
    print(f"tbox board compile: wrote {out} ({len(text.encode())} bytes)", file=sys.stderr)
    return 0
