"""``tbox demo``: the end-to-end demo (filled in by the uplink/platform issue)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="end-to-end demo: simulated EV -> agent -> reference platform")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("tbox demo: the end-to-end demo (simulator -> agent -> platform) arrives with issue 5;")
    print("for now try:  tbox decode 232307FE4838323230363530303030303030303030010000BB")
    return 0
