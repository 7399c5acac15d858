"""``tbox agent run``: the terminal for real (CAN, uplink, outbox), or with ``--simulate`` the simulator
in-process on a virtual CAN bus instead of hardware (``--replay LOG``: a recorded log, paced in real time),
the same config otherwise. Imports stay light."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """Run the T-Box agent: CAN bus -> GB/T 32960 reports -> durable outbox -> platform over
TCP/TLS ([uplink], [store] in the config; docs/uplink.md, docs/store.md). Ctrl-C logs out and stops."""


def register(subparsers: Any) -> None:
    """Add the ``agent`` verb (``tbox agent run``)."""
    p = subparsers.add_parser("agent", help="run the T-Box agent", description=DESCRIPTION)
    sub = p.add_subparsers(dest="agent_verb", required=True, metavar="ACTION")
    r = sub.add_parser("run", help="run the agent", description=DESCRIPTION)
    r.add_argument("--config", required=True, metavar="FILE", help="agent config (TOML)")
    r.add_argument("--simulate", action="store_true",
                   help="simulated vehicle in-process on a virtual CAN bus instead of the configured bus")
    r.add_argument("--replay", metavar="LOG",
                   help="replay a recorded CAN log (candump .log, .asc, .blf …) in real time on a virtual "
                        "CAN bus instead of the configured bus")
    r.add_argument("--seconds", type=float, metavar="N",
                   help="stop after N seconds (default: run until Ctrl-C)")
    r.add_argument("--cycle", default="wltc3", help="--simulate: drive profile (default wltc3)")
    r.add_argument("--scenario", help="--simulate: fault scenario (see tbox sim --help)")
    r.add_argument("--seed", type=int, default=0, help="--simulate: random seed")
    r.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the agent; returns the exit code (TboxError: one line on stderr via the CLI)."""
    import asyncio
    import contextlib
    import signal
    from datetime import UTC, datetime

    from agent.config import load_config
    from agent.errors import ConfigError
    from agent.service import AgentService

    settings = load_config(args.config)
    messages = None
    if args.simulate and args.replay:
        raise ConfigError("--simulate and --replay are alternatives", key="--replay")
    if args.replay:
        from agent.canbus.source import iter_log

        messages = iter_log(args.replay)
    if args.simulate:
        from sim.run import simulate  # the composition root may import the simulator (lazily)

        seconds = (args.seconds or 24 * 3600.0) + 5.0
        messages = simulate(profile=args.cycle, seed=args.seed, seconds=seconds, scenario=args.scenario,
                            start_utc=datetime.now(UTC).replace(microsecond=0))
    service = AgentService(settings, messages=messages)

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
                loop.add_signal_handler(sig, stop.set)
        return await service.run(args.seconds, stop)

    stats = asyncio.run(main())
    up = service.uplink.stats if service.uplink is not None else None
    line = f"tbox agent: {stats.reports} reports ({stats.realtime} realtime, {stats.reissue} reissue)"
    if up is not None:
        line += (f"; sent {up.realtime_sent} realtime, {up.reissue_sent} reissue; delivered {up.delivered};"
                 f" logins {up.logins}")
    line += f"; outbox pending {service.store.pending()}, dropped {stats.dropped}"
    print(line, file=sys.stderr)
    return 0
