"""The agent pipeline, sans-I/O: CAN frames and time in, encoded GB/T 32960 frames out.

::

    feed(can.Message) ─► FrameCache ─┐ (hot path: raw bytes by id / mux value)
    tick(now) ─► every sampling period: Sampler(cache, mapping, t) ─► Snapshot (+ GNSS position)
                 ─► AlarmEngine.update ─► ReportScheduler.on_sample ─► Outgoing (realtime | reissue)
                 ─► build_report(edition) ─► codec.encode_frame (0x02 / 0x03, VIN) ─► bytes

Time is injected: ``feed`` uses each message's timestamp (POSIX seconds, UTC) as the clock, so a sampling
tick at ``T`` runs as soon as a frame at or after ``T`` arrives, with the frames received before ``T``;
``tick(now)`` runs the ticks that are due without a frame (the live service calls it from its timer, and
``tbox replay`` at the end of a log). Ticks sit on multiples of the sampling period (whole seconds by
default), so each record's collection time is a clean second.

Malformed input never raises: error frames, remote frames, unknown ids, short frames (wrong DLC), frames
without a multiplexer value and counter/checksum failures are counted (``stats``) and logged once per
kind, not per frame. ``tbox replay`` and the live service (next issue) both drive this class.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import can

from agent.canbus.cache import FrameCache, frame_key
from agent.canbus.mapping import CompiledMapping, load_mapping
from agent.canbus.sampler import Sampler
from agent.config import Settings
from agent.errors import ConfigError, MappingError, ProtocolError
from agent.protocol.codec import CodecOptions, encode_frame
from agent.protocol.model import Command, Edition, Encryption, Frame, RealtimeReport, ResponseFlag
from agent.report.alarms import AlarmEngine, AlarmState
from agent.report.builder import BuildOptions, build_report
from agent.report.cadence import Outgoing, ReportScheduler
from agent.report.snapshot import Position, Snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Emitted:
    """One frame the agent would send: command (REALTIME / REISSUE), the report, its bytes, the
    scheduler's record and the snapshot it came from."""

    command: Command
    report: RealtimeReport
    frame: bytes
    outgoing: Outgoing
    snapshot: Snapshot

    @property
    def time(self) -> datetime:
        """The record's collection time."""
        return self.report.time


@dataclass
class PipelineStats:
    """Counters of one pipeline (what ``tbox replay`` prints)."""

    frames: int = 0
    error_frames: int = 0
    remote_frames: int = 0
    unknown_frames: int = 0
    short_frames: int = 0
    no_mux_frames: int = 0
    check_failures: int = 0
    out_of_order: int = 0
    encode_errors: int = 0
    samples: int = 0
    realtime: int = 0
    reissue: int = 0
    #: samples whose highest alarm level was ≥ 1, and the highest level seen
    alarm_samples: int = 0
    max_alarm_level: int = 0
    #: general alarm flag bits seen set at least once
    alarm_flags: int = 0
    #: counts per malformed kind (the keys of ``MALFORMED_KINDS``)
    by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def malformed(self) -> int:
        """Frames that were not usable as received (unknown id excluded)."""
        return self.error_frames + self.remote_frames + self.short_frames + self.no_mux_frames + (
            self.check_failures
        )

    @property
    def reports(self) -> int:
        return self.realtime + self.reissue


#: kind -> log text (each logged once, at the first occurrence)
MALFORMED_KINDS: Mapping[str, str] = {
    "error-frame": "CAN error frames on the bus",
    "remote-frame": "CAN remote (RTR) frames ignored",
    "unknown-id": "frames with ids the mapping does not use are counted and dropped",
    "short-frame": "frames too short for their mapped signals (wrong DLC): the missing signals are invalid",
    "no-mux": "multiplexed frames too short to carry their multiplexer value are dropped",
    "check-failure": "frames failing their alive-counter / checksum check count as missing",
    "out-of-order": "frame timestamps going backwards: taken as they come, no tick is repeated",
    "encode-error": "records the GB/T 32960 encoder rejected were dropped",
}


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class AgentPipeline:
    """FrameCache → Sampler → AlarmEngine → ReportScheduler → build_report → encode_frame.

    ``settings`` is the validated agent config; ``mapping`` a compiled mapping (default: loaded from
    ``settings.can.mapping``); ``on_emit`` is called with every ``Emitted`` (besides the returned lists).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        mapping: CompiledMapping | None = None,
        codec_options: CodecOptions | None = None,
        on_emit: Callable[[Emitted], None] | None = None,
        on_sample: Callable[[Snapshot, AlarmState], None] | None = None,
    ) -> None:
        self.settings = settings
        self.edition: Edition = settings.vehicle.edition
        self.vin = settings.vehicle.vin
        self.options = codec_options or CodecOptions()
        self.on_emit = on_emit
        self.on_sample = on_sample
        self.mapping = mapping if mapping is not None else _load_mapping(settings)
        self.cache: FrameCache = self.mapping.new_cache()
        self.sampler = Sampler(self.mapping, self.cache)
        self.alarms = AlarmEngine(settings.alarm_config())
        self.scheduler = ReportScheduler(settings.reporting_config(), self.edition)
        self._build_options = BuildOptions(coordinate_system=settings.gnss.coordinate_system)
        self.stats = PipelineStats()
        self.period = settings.report.sampling_period_s
        self._per_second = round(1.0 / self.period)
        self._next_tick: int | None = None  # index k of the next tick at k * period
        self._last_ts: float | None = None
        self._position: Position | None = None
        self._position_ts: float | None = None
        self._logged: set[str] = set()
        log.info(
            "pipeline: edition %s, sampling every %s s, %d CAN ids wanted",
            int(self.edition),
            self.period,
            len(self.cache.wanted_ids or ()),
        )

    # ------------------------------------------------------------------------------ inputs

    def feed(self, message: can.Message) -> list[Emitted]:
        """One received CAN message; returns the frames of the ticks its timestamp completed."""
        ts = float(message.timestamp)
        if self._next_tick is None:  # the first tick is the first grid time after the first frame
            self._next_tick = math.floor(ts * self._per_second) + 1
        out = self.tick(ts) if ts >= self._tick_time(self._next_tick) else []
        if self._last_ts is not None and ts < self._last_ts:
            self.stats.out_of_order += 1
            self._count("out-of-order", self.stats.out_of_order, f"{ts:.6f} after {self._last_ts:.6f}")
        self._last_ts = ts
        self.stats.frames += 1
        if message.is_error_frame:
            self.cache.put_error(ts)
            return out
        if message.is_remote_frame:
            self.cache.put_remote(message.arbitration_id)
            return out
        self.cache.put(frame_key(message.arbitration_id, message.is_extended_id), bytes(message.data), ts)
        return out

    def feed_position(self, position: Position, received: float | None = None) -> None:
        """The latest GNSS fix; ``received`` (POSIX s) defaults to the fix's own time."""
        self._position = position
        if received is None and position.time is not None:
            received = position.time.timestamp()
        self._position_ts = received

    def tick(self, now: float) -> list[Emitted]:
        """Run every sampling tick due at or before ``now`` (POSIX seconds); returns what they emit."""
        if self._next_tick is None:
            self._next_tick = math.ceil(now * self._per_second - 1e-9)
        out: list[Emitted] = []
        while self._tick_time(self._next_tick) <= now:
            out.extend(self._sample(self._tick_time(self._next_tick)))
            self._next_tick += 1
        return out

    def clock_stepped(self) -> None:
        """The system clock was stepped (``[gnss] clock = "step"``): the next ``tick(now)`` starts a new
        grid at ``now`` instead of running (forward step) or waiting for (backward step) the ticks between."""
        self._next_tick = None
        self._last_ts = None

    def finish(self) -> list[Emitted]:
        """End of input (replay): run the ticks due by the last frame, bring the counters up to date."""
        out = self.tick(self._last_ts) if self._last_ts is not None else []
        self._collect_malformed()
        return out

    # ------------------------------------------------------------------------------ internals

    def _tick_time(self, k: int) -> float:
        return k / self._per_second

    def _sample(self, t: float) -> list[Emitted]:
        now = _utc(t)
        snapshot: Snapshot = self.sampler.sample(t, now)
        snapshot = self._with_position(snapshot, t)
        self.stats.samples += 1
        self._collect_malformed()
        alarm = self.alarms.update(snapshot)
        level = int(alarm.max_level)
        if level:
            self.stats.alarm_samples += 1
            self.stats.max_alarm_level = max(self.stats.max_alarm_level, level)
        self.stats.alarm_flags |= int(alarm.flags)
        if self.on_sample is not None:
            self.on_sample(snapshot, alarm)
        out: list[Emitted] = []
        for outgoing in self.scheduler.on_sample(snapshot, alarm):
            try:
                out.append(self._emit(outgoing))
            except ProtocolError as exc:  # e.g. a collection time the wire cannot carry: never fatal
                self.stats.encode_errors += 1
                self._count("encode-error", self.stats.encode_errors, str(exc))
        return out

    def _with_position(self, snapshot: Snapshot, t: float) -> Snapshot:
        pos = self._position
        if pos is None or not self.settings.gnss.enabled:
            return snapshot
        age = t - self._position_ts if self._position_ts is not None else 0.0
        if pos.valid and age > self.settings.gnss.max_age_s:
            pos = dataclasses.replace(pos, valid=False)
        return dataclasses.replace(snapshot, position=pos)

    def _emit(self, outgoing: Outgoing) -> Emitted:
        command = Command(outgoing.command)
        snapshot = outgoing.snapshot
        report = build_report(snapshot, outgoing.alarm, self.edition, self._build_options)
        frame = Frame(self.edition, command, ResponseFlag.COMMAND, self.vin, Encryption.NONE, report)
        data = encode_frame(frame, options=self.options)
        if command is Command.REISSUE:
            self.stats.reissue += 1
        else:
            self.stats.realtime += 1
        emitted = Emitted(command, report, data, outgoing, snapshot)
        if self.on_emit is not None:
            self.on_emit(emitted)
        return emitted

    def _collect_malformed(self) -> None:
        cs = self.cache.stats
        s = self.stats
        s.error_frames, s.remote_frames = cs.error_frames, cs.remote_frames
        s.unknown_frames, s.short_frames, s.no_mux_frames = cs.unwanted, cs.short, cs.no_mux
        checks = _check_failures(self.sampler)
        s.check_failures = sum(checks.values())
        unknown = ", ".join(f"0x{k & 0x1FFFFFFF:X}" for k in sorted(cs.unwanted_by_id)[:8])
        self._count("error-frame", cs.error_frames, "")
        self._count("remote-frame", cs.remote_frames, "")
        self._count("unknown-id", cs.unwanted, f"ids {unknown}")
        self._count("short-frame", cs.short, "")
        self._count("no-mux", cs.no_mux, "")
        per_message = ", ".join(f"{k}: {v}" for k, v in sorted(checks.items()))
        self._count("check-failure", s.check_failures, per_message)

    def _count(self, kind: str, count: int, detail: str) -> None:
        """Record the running ``count`` of a malformed kind; log the kind the first time only."""
        if count <= 0:
            return
        self.stats.by_kind[kind] = count
        if kind in self._logged:
            return
        self._logged.add(kind)
        log.log(
            logging.INFO if kind == "unknown-id" else logging.WARNING,
            "%s%s (logged once; further ones are only counted)",
            MALFORMED_KINDS[kind],
            f" ({detail})" if detail else "",
        )


# ------------------------------------------------------------------------------ adapters


def _load_mapping(settings: Settings) -> CompiledMapping:
    path = settings.can.mapping
    if not path.exists():
        raise ConfigError(f"mapping file not found: {path}", file=str(settings.file), key="can.mapping")
    try:
        return load_mapping(path, dbc=[settings.can.dbc] if settings.can.dbc is not None else None)
    except OSError as exc:
        raise MappingError(f"{path}: {exc}") from exc


def _check_failures(sampler: Sampler) -> dict[str, int]:
    """Counter/checksum failures per message name, from ``Sampler.counters``."""
    return {name: per["check"] for name, per in sampler.counters.items() if per.get("check")}


__all__ = ["MALFORMED_KINDS", "AgentPipeline", "Emitted", "PipelineStats"]
