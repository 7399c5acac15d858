"""The ``tbox`` command: composition root.

Each verb lives in its own module exposing ``register(subparsers)``; this file only wires them.
``sim`` is imported lazily here (the agent never imports the simulator elsewhere).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from agent.errors import TboxError

#: verb -> the module that registers it, in help order. Only the chosen verb's module is imported (a verb
#: module may pull in heavy dependencies, e.g. numpy for the simulator; the agent must not pay for them).
VERBS: dict[str, str] = {
    "decode": "agent.codec_cli",
    "encode": "agent.codec_cli",
    "sim": "sim.cli",
    "replay": "agent.replay_cli",
    "mapping": "agent.mapping_cli",
    "demo": "agent.demo_cli",
    "platform": "sim.platform.cli",
    "agent": "agent.agent_cli",
    "upgrade": "agent.upgrade_cli",
    "doctor": "agent.doctor_cli",
    "board": "agent.board_cli",
    "fleet": "sim.fleet.cli",
}
#: modules that contribute verbs, in help order
VERB_MODULES = tuple(dict.fromkeys(VERBS.values()))


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser with every verb, or only ``verb``'s module when it is a known verb."""
    parser = argparse.ArgumentParser(prog="tbox", description="GB/T 32960 T-Box agent and EV simulator")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    modules = (VERBS[verb],) if verb in VERBS else VERB_MODULES
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _verb(argv: Sequence[str]) -> str | None:
    """The first argument that is not an option (the verb, if the command line is well formed)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_verb(argv))
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
    except BrokenPipeError:  # the reader went away (`tbox platform dump | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second traceback when Python flushes stdout at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
