"""``tbox replay``: run the real agent pipeline over a CAN log, in simulated time, as fast as possible.

Writes every frame the agent would send (realtime 0x02 and reissue 0x03), one upper-case hex frame per
line, in the order it would send them. Same input, same output, byte for byte. Module-level imports stay
light (argparse only).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

DESCRIPTION = """Replay a candump (.log), Vector ASC (.asc) or BLF (.blf) CAN log through the agent
(mapping, sampler, alarms, cadence, GB/T 32960 encoder) and write the frames it would send, one hex frame
per line. This is how to test a mapping against your own logs."""


#: t = 0 of a log with relative timestamps, unless --start says otherwise (fixed: deterministic output)
DEFAULT_START = "2025-01-01T00:00:00Z"
#: timestamps below this (2000-01-01 UTC) are taken as relative to the start of the log
RELATIVE_BELOW = 946_684_800.0


def register(subparsers: Any) -> None:
    """Add the ``replay`` verb to the ``tbox`` sub-parsers."""
    p = subparsers.add_parser("replay", help="replay a CAN log through the agent", description=DESCRIPTION)
    p.add_argument("log", metavar="LOG", help="candump -l / ASC / BLF log file")
    p.add_argument("--config", required=True, metavar="FILE", help="agent config (TOML)")
    p.add_argument("--out", required=True, metavar="FRAMES.hex", help="output: one hex frame per line")
    p.add_argument("--edition", type=int, choices=(2016, 2025), help="override [vehicle] edition")
    p.add_argument(
        "--nmea",
        metavar="FILE",
        help="GNSS track (NMEA 0183) to merge by time (default: [gnss] source when it is a file)",
    )
    p.add_argument(
        "--start",
        metavar="ISO-UTC",
        help="wall-clock time of t = 0 for logs with relative timestamps (ASC, candump without -l): "
        f"default {DEFAULT_START}; logs with absolute timestamps keep theirs",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay ``args.log``; returns the exit code (errors raise ``TboxError``: one line on stderr)."""
    from pathlib import Path

    from agent.errors import ConfigError

    log_path = Path(args.log)
    if not log_path.is_file():
        raise ConfigError("no such log file", file=str(log_path))
    start = _parse_start(args.start or DEFAULT_START)
    result = replay(log_path, args.config, args.out, edition=args.edition, nmea=args.nmea, start=start)
    print(summary(result, args.out), file=sys.stderr)
    return 0


def replay(
    log_path: Any,
    config: Any,
    out: Any,
    *,
    edition: int | None = None,
    nmea: Any = None,
    start: float | None = None,
) -> Any:
    """Run the pipeline over ``log_path`` with the config file ``config`` and write hex to ``out``.

    Returns the pipeline's ``PipelineStats``.
    """
    import dataclasses
    from pathlib import Path

    from agent.config import load_config
    from agent.errors import ConfigError
    from agent.pipeline import AgentPipeline

    settings = load_config(config)
    if edition is not None:
        settings = settings.with_edition(edition)
    positions: list[Any] = []
    source = settings.gnss.source
    if nmea is None and settings.gnss.enabled and not source.startswith("serial:"):
        nmea = source  # [gnss] source is an NMEA file: replay it with the log
    if nmea is not None:
        from agent.peripherals.gnss import read_positions

        positions = [p for p in read_positions(nmea) if p.time is not None]
        positions.sort(key=lambda p: p.time)
        if not settings.gnss.enabled:
            gnss = dataclasses.replace(settings.gnss, source=str(nmea))
            settings = dataclasses.replace(settings, gnss=gnss)
    pipeline = AgentPipeline(settings)
    out_path = Path(out)
    try:
        handle = out_path.open("w", encoding="ascii", newline="\n")
    except OSError as exc:
        raise ConfigError(f"cannot write: {exc.strerror or exc}", file=str(out_path)) from None
    next_pos = 0
    with handle:
        for message in _absolute(_messages(Path(log_path)), start):
            ts = float(message.timestamp)
            while next_pos < len(positions) and positions[next_pos].time.timestamp() <= ts:
                pipeline.feed_position(positions[next_pos])
                next_pos += 1
            for emitted in pipeline.feed(message):
                handle.write(emitted.frame.hex().upper() + "\n")
        for emitted in pipeline.finish():
            handle.write(emitted.frame.hex().upper() + "\n")
    return pipeline.stats


def _messages(path: Any) -> Any:
    """The log's messages, via ``agent.canbus.source.iter_log``."""
    from agent.canbus.source import iter_log

    return iter_log(path)


def _parse_start(text: str) -> float:
    from datetime import UTC, datetime

    from agent.errors import ConfigError

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--start: not an ISO time: {text!r}") from None
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp()


def _absolute(messages: Any, start: float | None) -> Any:
    """The messages, shifted to ``start`` when the log's timestamps are relative (before 2000)."""
    import logging

    shift: float | None = None
    for message in messages:
        if shift is None:
            relative = float(message.timestamp) < RELATIVE_BELOW
            shift = (start if start is not None else _parse_start(DEFAULT_START)) if relative else 0.0
            if shift:
                logging.getLogger(__name__).info("relative timestamps: t = 0 is %s", shift)
        if shift:
            message.timestamp = float(message.timestamp) + shift
        yield message


def summary(stats: Any, out: Any) -> str:
    """The one-line stderr summary of a replay."""
    from agent.protocol.model import GeneralAlarmFlag

    flags = [f.name.lower() for f in GeneralAlarmFlag if f.value & stats.alarm_flags and f.name]
    alarms = (
        f"max level {stats.max_alarm_level} in {stats.alarm_samples} samples ({', '.join(flags)})"
        if stats.alarm_samples or flags
        else "none"
    )
    return (
        f"tbox replay: {stats.frames} frames read ({stats.malformed} malformed: {stats.error_frames} error, "
        f"{stats.short_frames} short, {stats.no_mux_frames} no mux, {stats.check_failures} check; "
        f"{stats.unknown_frames} unknown id), {stats.samples} samples, {stats.reports} reports written "
        f"({stats.realtime} realtime, {stats.reissue} reissue), alarms: {alarms} -> {out}"
    )
