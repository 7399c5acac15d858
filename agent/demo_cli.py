"""``tbox demo``: simulated EV -> agent -> strict reference platform on loopback, with a scripted platform
outage, a live status view and a closing summary (``agent.demo``; docs/demo.md). Imports stay light."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """Simulated EV (WLTC drive, fault scenario) -> T-Box agent -> durable outbox -> TCP ->
strict reference platform, all in-process on loopback with embedded defaults. The platform is stopped for
part of the run and restarted; the summary says whether it holds every report (exit 0) or not (exit 1)."""


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a fraction of the run in [0, 1], not {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def register(sub: Any) -> None:
    """Add the ``demo`` verb."""
    p = sub.add_parser("demo", help="end-to-end demo: simulated EV -> agent -> reference platform",
                       description=DESCRIPTION)
    p.add_argument("--seconds", type=_positive, default=1800.0, metavar="N",
                   help="simulated seconds of driving (default 1800: one WLTC class 3 cycle)")
    p.add_argument("--edition", type=int, choices=(2016, 2025), default=2025, help="GB/T 32960 edition")
    p.add_argument("--speed", type=_positive, default=30.0, metavar="X",
                   help="simulated seconds per wall second (default 30; ignored with --realtime)")
    p.add_argument("--realtime", action="store_true",
                   help="pace the simulator to the wall clock on a virtual CAN bus")
    p.add_argument("--scenario", default="insulation-fault",
                   help="fault scenario (tbox sim --help lists them; 'none' for a clean drive)")
    p.add_argument("--scenario-at", type=_fraction, default=0.75, metavar="F",
                   help="fault start as a fraction of the run (default 0.75)")
    p.add_argument("--outage-at", type=_fraction, default=0.4, metavar="F",
                   help="platform outage start as a fraction of the run (default 0.4)")
    p.add_argument("--outage", type=_fraction, default=0.2, metavar="F",
                   help="outage length as a fraction of the run (default 0.2; 0: none)")
    p.add_argument("--period", type=int, default=1, metavar="S", help="normal report period (default 1 s)")
    p.add_argument("--cycle", default="wltc3", help="drive profile (default wltc3)")
    p.add_argument("--seed", type=int, default=0, help="simulator random seed (default 0)")
    p.add_argument("--workdir", type=Path, metavar="DIR",
                   help="keep agent.toml, outbox.db and platform.db here (default: a temporary directory)")
    p.add_argument("--silent-platform", action="store_true",
                   help="the platform does not acknowledge correct reports (Annex B style; default: it does)")
    p.add_argument("--drain-timeout", type=_positive, default=60.0, metavar="S",
                   help="wall seconds to wait for the backlog after the drive (default 60)")
    p.add_argument("--interval", type=_positive, metavar="S",
                   help="status refresh (default 1 s on a terminal, 5 s otherwise)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit code says whether the platform holds everything without a violation."""
    from agent.demo import DemoOptions, run_demo

    scenario = None if args.scenario in ("", "none") else args.scenario
    options = DemoOptions(
        seconds=args.seconds, edition=args.edition, cycle=args.cycle, scenario=scenario,
        scenario_at=args.scenario_at, outage_at=args.outage_at, outage=args.outage, speed=args.speed,
        realtime=args.realtime, period=args.period, seed=args.seed, workdir=args.workdir,
        silent_platform=args.silent_platform, drain_timeout=args.drain_timeout, interval=args.interval,
    )
    return run_demo(options).exit_code
