"""The ``tbox`` command: composition root.

Each verb lives in its own module exposing ``register(subparsers)``; this file only wires them.
``sim`` is imported lazily here (the agent never imports the simulator elsewhere).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from agent.errors import TboxError

#: modules that contribute verbs, in help order
VERB_MODULES = (
    "agent.codec_cli",
    "sim.cli",
    "agent.replay_cli",
    "agent.mapping_cli",
    "agent.demo_cli",
    "sim.platform.cli",
    "agent.agent_cli",
    "agent.upgrade_cli",
    "agent.doctor_cli",
    "agent.board_cli",
    "sim.fleet.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tbox", description="GB/T 32960 T-Box agent and EV simulator")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except TboxError as exc:
        print(f"tbox {args.verb}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
