"""``tbox doctor``: check a terminal's set-up and explain each finding in plain words (``agent.doctor``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DESCRIPTION = """Check this terminal's set-up: config, CAN interface (up, bit rate, bus state, error
counters), frames for the mapped ids, modem and SIM (--modem), GNSS fix, clock, storage and outbox
backlog, platform reachable and TLS valid. Exit status: 0 all ok, 1 a warning, 2 a failure."""


def register(subparsers: Any) -> None:
    """Add the ``doctor`` verb."""
    from agent.doctor import CHECK_GROUPS

    p = subparsers.add_parser("doctor", help="check the set-up (CAN, modem, GNSS, clock, storage, platform)",
                              description=DESCRIPTION)
    p.add_argument("--config", metavar="FILE", type=Path,
                   help="agent config (default: /etc/tbox/tbox.toml when it exists)")
    p.add_argument("--json", action="store_true", help="one JSON object per finding, one per line")
    p.add_argument("--modem", metavar="DEV",
                   help="the modem's AT port (/dev/ttyUSB2) or a pyserial URL (default: [modem] port when"
                        " [modem] enabled)")
    p.add_argument("--modem-baud", type=int, default=115200, metavar="N",
                   help="baud rate with --modem (115200)")
    p.add_argument("--can-seconds", type=float, default=3.0, metavar="S",
                   help="how long to listen for the mapped CAN ids (3 s)")
    p.add_argument("--gnss-seconds", type=float, default=5.0, metavar="S",
                   help="how long to wait for a GNSS fix (5 s)")
    p.add_argument("--skip", action="append", default=[], choices=CHECK_GROUPS, metavar="CHECK",
                   help=f"skip a group of checks ({', '.join(CHECK_GROUPS)}); repeatable")
    p.set_defaults(run=run)


DEFAULT_CONFIG = Path("/etc/tbox/tbox.toml")
_LABEL = {0: "ok", 1: "WARN", 2: "FAIL"}


def run(args: argparse.Namespace) -> int:
    """Run the checks, print them, return the worst level (0 ok, 1 warn, 2 fail)."""
    from agent.doctor import DoctorOptions, Probes, run_checks, worst

    config = args.config
    if config is None and DEFAULT_CONFIG.exists():
        config = DEFAULT_CONFIG
    options = DoctorOptions(config=config, modem=args.modem, modem_baud=args.modem_baud,
                            skip=frozenset(args.skip))
    probes = Probes(can_window_s=max(0.1, args.can_seconds), gnss_window_s=max(0.1, args.gnss_seconds))
    findings = run_checks(options, probes)
    level = worst(findings)
    if args.json:
        for f in findings:
            print(json.dumps(f.as_dict(), ensure_ascii=False))
        return int(level)
    width = max(len(f.name) for f in findings)
    for f in findings:
        print(f"{_LABEL[int(f.level)]:4}  {f.name:{width}}  {f.message}")
        if f.hint and f.level:
            print(f"{'':4}  {'':{width}}  -> {f.hint}")
    counts = {name: sum(1 for f in findings if _LABEL[int(f.level)] == name) for name in _LABEL.values()}
    print(f"\n{counts['ok']} ok, {counts['WARN']} warnings, {counts['FAIL']} failures", file=sys.stderr)
    return int(level)
