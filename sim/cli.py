"""``tbox sim``: run the simulated EV onto a candump log or a python-can bus.

Module-level imports stay light (argparse only); the simulator is imported inside ``run``.
"""

from __future__ import annotations

import argparse
from typing import Any

DESCRIPTION = """Simulate a battery EV (physics + ECUs) and put its CAN traffic on a python-can bus
(e.g. virtual:demo, socketcan:vcan0) or into a candump log file. Accelerated by default (simulated
timestamps, as fast as possible); --realtime paces frames to the wall clock."""


def register(subparsers: Any) -> None:
    """Add the ``sim`` verb to the ``tbox`` sub-parsers."""
    p = subparsers.add_parser(
        "sim", help="simulate an EV on a CAN bus / candump log", description=DESCRIPTION
    )
    p.add_argument("--seconds", type=float, default=60.0, help="simulated seconds (default 60)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--cycle", default="wltc3", help="profile: wltc3, nedc, park, ac-charge or dc-charge (default wltc3)"
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="fault scenario: a physics one or a bus one (ecu-silent, bad-counter, bad-crc, wrong-dlc, "
        "error-frames); several separated by commas",
    )
    p.add_argument(
        "--fault-at",
        type=float,
        default=None,
        metavar="SECONDS",
        help="start time of the fault scenarios, bus and physics (default: their own)",
    )
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", metavar="FILE.log", help="write a candump log file")
    out.add_argument(
        "--bus", metavar="IFACE:CHANNEL", help="send on a python-can bus, e.g. virtual:demo, socketcan:vcan0"
    )
    p.add_argument("--channel", default="can0", help="channel name written in the candump log (default can0)")
    p.add_argument("--realtime", action="store_true", help="pace frames to the wall clock")
    p.add_argument("--plot", metavar="FILE.png", help="save a plot of the run")
    p.add_argument("--nmea", metavar="FILE|serial:DEV[:BAUD]", help="also write the GNSS track as NMEA 0183")
    p.add_argument("--motors", type=int, choices=(1, 2), default=2, help="number of drive motors (default 2)")
    p.add_argument(
        "--start",
        default=None,
        metavar="ISO-UTC",
        help="simulated start time, e.g. 2025-01-01T08:00:00Z (default: now)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the simulation described by ``args``; returns the exit code."""
    import itertools
    import logging
    import math
    from datetime import UTC, datetime, timedelta

    from agent.errors import ConfigError
    from sim.bus import CanBusSink, CandumpSink, FrameSink, open_bus
    from sim.run import Window, run_to_sink, simulate_windows, split_scenarios

    log = logging.getLogger("sim.cli")
    if not math.isfinite(args.seconds) or args.seconds <= 0:
        raise ConfigError(f"--seconds must be > 0, not {args.seconds}")
    if args.start:
        try:
            start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"--start: not an ISO time: {args.start!r}") from exc
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    else:
        start = datetime.now(UTC).replace(microsecond=0)
    split_scenarios(args.scenario)  # unknown names fail before anything is opened
    plot_mod = _optional("sim.plot", "--plot") if args.plot else None
    nmea_mod = _optional("sim.nmea", "--nmea") if args.nmea else None
    windows = simulate_windows(
        None,
        args.cycle,
        args.seed,
        args.seconds,
        args.scenario,
        start_utc=start,
        n_motors=args.motors,
        fault_start_s=args.fault_at,
    )
    first = next(windows)  # builds the vehicle: a bad cycle fails here, before any output is created
    epoch = start.timestamp()

    sinks: list[FrameSink] = []
    if args.out:
        sinks.append(CandumpSink(args.out, epoch, args.channel))
    else:
        bus = open_bus(args.bus)
        sinks.append(CanBusSink(bus, epoch, args.bus.partition(":")[2], owns_bus=True))

    callbacks: list[Any] = []
    recorder = None
    if plot_mod is not None:
        recorder = plot_mod.RunRecorder()
        callbacks.append(lambda w: recorder.record(w.state))
    nmea_sink = None
    if nmea_mod is not None:
        nmea_sink = nmea_mod.NmeaSink(args.nmea)
        nmea_sentences = nmea_mod.nmea_sentences
        last_second = [-1]

        def write_nmea(w: Window) -> None:
            second = int(w.t1 + 1e-9)
            if second != last_second[0]:
                last_second[0] = second
                nmea_sink.write(list(nmea_sentences(w.state, start + timedelta(seconds=w.state.t))))

        callbacks.append(write_nmea)

    def on_window(w: Window) -> None:
        for cb in callbacks:
            cb(w)

    try:
        stats = run_to_sink(
            itertools.chain([first], windows),
            sinks,
            realtime=args.realtime,
            on_window=on_window if callbacks else None,
        )
    finally:
        for sink in sinks:
            sink.close()
        if nmea_sink is not None and hasattr(nmea_sink, "close"):
            nmea_sink.close()
    if recorder is not None:
        recorder.save_png(args.plot)
    target = args.out or args.bus
    rate = stats.frames / stats.wall_seconds if stats.wall_seconds > 0 else 0.0
    print(
        f"tbox sim: {stats.frames} frames, {stats.sim_seconds:.1f} s simulated in {stats.wall_seconds:.1f} s "
        f"({rate:,.0f} frames/s) -> {target}"
        + (f", max lag behind the wall clock {1000 * stats.max_lag_s:.1f} ms" if args.realtime else "")
    )
    log.info("cycle=%s seed=%s scenario=%s", args.cycle, args.seed, args.scenario)
    return 0


def _optional(module: str, option: str) -> Any:
    """Import a simulator part an option needs, or fail with a one-line ConfigError."""
    import importlib

    from agent.errors import ConfigError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{option} is not available yet ({module}: {exc})") from exc
