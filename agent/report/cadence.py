"""Reporting cadence: which sampled snapshots leave as realtime (0x02) or reissue (0x03) records, and when.

``ReportScheduler(config, edition).on_sample(snapshot, alarm_state) -> list[Outgoing]`` is fed every sample
(≥ 1 Hz) in time order; each ``Outgoing`` carries the snapshot it was built from (so the record keeps its
own collection time and can be encoded for any edition) and the alarm state of that sample. Pure: time
comes from ``Snapshot.time``. Rules per edition (docs/reporting.md):

* realtime at the normal period (param 0x02, default 10 s, at most 30 s while running) while the vehicle
  runs, charges or has an alarm, and (2016) for 3 min after power-off;
* at the alarm period (param 0x03, default 1 s) while the highest level is 3 (or 4);
* the alarm window: at the fault point (first sample at level ≥ 3) the samples of the 30 s before it that
  were not already sent go out as reissue records, oldest first, then the 1 Hz realtime continues for
  30 s after the fault point (2016) / until the alarm clears (2025);
* 2025 post-HV-off monitoring: after high voltage goes off, samples continue for 1 h and the records of
  59:30-60:00 are sent (an alarm in that hour follows the alarm-window rule).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

from agent.errors import ConfigError
from agent.protocol.model import AlarmLevel, ChargingState, Command, Edition, Special, VehicleState
from agent.report.alarms import AlarmState
from agent.report.snapshot import Snapshot

log = logging.getLogger(__name__)

#: sample-time jitter tolerated when a period falls due (s)
JITTER: Final = 0.05
#: the longest normal period allowed while the vehicle runs (GB/T 32960 Annex B: ≤ 30 s)
MAX_DRIVING_PERIOD: Final = 30.0


class Reason(Enum):
    """Why a record is sent."""

    PERIODIC = "periodic"  # normal period (running, charging, alarm levels 1-2)
    ALARM = "alarm"  # alarm period while level ≥ 3, and the post-fault part of the alarm window
    PRE_FAULT = "pre_fault"  # the 30 s before the fault point, as reissue
    POST_POWER_OFF = "post_power_off"  # 2016: 3 min after power-off
    HV_OFF_MONITOR = "hv_off_monitor"  # 2025: the 59:30-60:00 window after high voltage went off


@dataclass(frozen=True)
class ReportingConfig:
    """Cadence settings (seconds). Field names match ``agent.config.ReportSettings`` where they overlap.

    ``normal_period_s``: param 0x02 (2016 1-600 s, 2025 1-30 s); ``alarm_period_s``: param 0x03 (> 0, ≤ 1 s
    to meet the standard's ≤ 1 s sampling); ``alarm_window_s``: before (and, 2016, after) the fault point;
    ``alarm_level``: the highest level that opens the alarm window; ``post_power_off_s``: 2016 realtime
    after power-off; ``hv_off_monitor_s`` / ``hv_off_report_s``: 2025 monitoring time after HV off and the
    length of its final window that is reported; ``pre_fault_include_sent``: also reissue pre-fault samples
    already sent as realtime (for platforms that count ≥ 30 reissue records per alarm).
    """

    normal_period_s: float = 10.0
    alarm_period_s: float = 1.0
    alarm_window_s: float = 30.0
    alarm_level: int = 3
    post_power_off_s: float = 180.0
    hv_off_monitor_s: float = 3600.0
    hv_off_report_s: float = 30.0
    pre_fault_include_sent: bool = False

    def __post_init__(self) -> None:
        if not self.normal_period_s > 0:
            raise ConfigError("must be > 0", key="report.normal_period_s")
        if not self.alarm_period_s > 0:
            raise ConfigError("must be > 0", key="report.alarm_period_s")
        if self.alarm_window_s < 0 or self.post_power_off_s < 0:
            raise ConfigError("windows must be ≥ 0 s", key="report")
        if not 0 <= self.hv_off_report_s <= self.hv_off_monitor_s:
            raise ConfigError("hv_off_report_s must be within hv_off_monitor_s", key="report.hv_off_report_s")
        if not 1 <= self.alarm_level <= 4:
            raise ConfigError("alarm_level must be 1..4", key="report.alarm_level")


@dataclass(frozen=True)
class Outgoing:
    """One record to send: the command, the sample it is built from, its alarm state and why."""

    command: Command
    snapshot: Snapshot
    alarm: AlarmState
    reason: Reason

    @property
    def time(self) -> datetime:
        """The record's collection time."""
        return self.snapshot.time


@dataclass
class _Entry:
    snapshot: Snapshot
    alarm: AlarmState
    sent: bool = False


@dataclass
class _Power:
    on: bool | None = None  # running or charging
    hv: bool | None = None  # high voltage up (hv_on, else = on)
    off_at: datetime | None = None  # last power-off (2016 tail)
    hv_off_at: datetime | None = None  # last HV-off (2025 monitoring)


def _seconds(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds()


@dataclass
class ReportScheduler:
    """Decides the report stream from the sample stream (see the module docstring)."""

    config: ReportingConfig = field(default_factory=ReportingConfig)
    edition: Edition = Edition.E2016

    def __post_init__(self) -> None:
        self._normal = self.config.normal_period_s
        self._alarm_period = self.config.alarm_period_s
        self._check_periods(self._normal, self._alarm_period)
        self._buffer: deque[_Entry] = deque()
        self._last_sent: datetime | None = None
        self._next_due: datetime | None = None
        self._due_period: float | None = None
        self._interval = 0.0
        self._last_time: datetime | None = None
        self._fault_point: datetime | None = None
        self._window_end: datetime | None = None
        self._power = _Power()

    # ------------------------------------------------------------------ parameters

    @property
    def periods(self) -> tuple[float, float]:
        """(normal period, alarm period) in seconds, as currently in force."""
        return self._normal, self._alarm_period

    def _check_periods(self, normal: float, alarm: float) -> None:
        top = 30 if self.edition is Edition.E2025 else 600
        if not 1 <= normal <= top:
            raise ConfigError(f"normal period {normal} s outside 1..{top} s", key="report.normal_period_s")
        if not 0 < alarm <= 60:
            raise ConfigError(f"alarm period {alarm} s outside (0, 60] s", key="report.alarm_period_s")

    def set_periods(self, normal_period_s: float | None = None, alarm_period_s: float | None = None) -> None:
        """Apply new periods (parameter set 0x02/0x03) from the next sample on."""
        normal = self._normal if normal_period_s is None else normal_period_s
        alarm = self._alarm_period if alarm_period_s is None else alarm_period_s
        self._check_periods(normal, alarm)
        self._normal, self._alarm_period = normal, alarm
        self._due_period = None  # recomputed from the last record sent
        log.info("report periods: normal %s s, alarm %s s", normal, alarm)

    # ------------------------------------------------------------------ state

    def _update_power(self, s: Snapshot) -> None:
        p = self._power
        vs = s.value("vehicle_state")
        cs = s.value("charging_state")
        running = None if vs is None or isinstance(vs, Special) else vs == VehicleState.STARTED
        charging = (
            None
            if cs is None or isinstance(cs, Special)
            else cs in (ChargingState.PARKED_CHARGING, ChargingState.DRIVING_CHARGING)
        )
        # stale or unmapped: hold the previous state
        on = p.on if running is None and charging is None else bool(running) or bool(charging)
        if p.on and on is False:
            p.off_at = s.time
        if on:
            p.off_at = None
        p.on = on
        hv_raw = s.value("hv_on")
        hv = on if hv_raw is None else (p.hv if isinstance(hv_raw, Special) else bool(hv_raw))
        if p.hv and hv is False:
            p.hv_off_at = s.time
            log.info("HV off at %s: post-HV-off monitoring", s.time.isoformat())
        if hv:
            p.hv_off_at = None
        p.hv = hv

    def _active_reason(self, now: datetime, alarm: AlarmState) -> Reason | None:
        """Why periodic realtime is due now, or None when the vehicle is at rest without an alarm."""
        p = self._power
        if p.on or alarm.max_level > AlarmLevel.NONE:
            return Reason.PERIODIC
        if (
            self.edition is Edition.E2016
            and p.off_at is not None
            and _seconds(now, p.off_at) <= self.config.post_power_off_s + JITTER
        ):
            return Reason.POST_POWER_OFF
        return None

    def _monitoring(self, now: datetime) -> bool:
        """2025: inside the post-HV-off monitoring hour."""
        p = self._power
        if self.edition is not Edition.E2025 or p.hv_off_at is None:
            return False
        return _seconds(now, p.hv_off_at) <= self.config.hv_off_monitor_s + JITTER

    def _in_hv_off_window(self, now: datetime) -> bool:
        p = self._power
        if self.edition is not Edition.E2025 or p.hv_off_at is None:
            return False
        since = _seconds(now, p.hv_off_at)
        cfg = self.config
        return cfg.hv_off_monitor_s - cfg.hv_off_report_s - JITTER <= since <= cfg.hv_off_monitor_s + JITTER

    def _alarm_fast(self, now: datetime, alarm: AlarmState) -> bool:
        if alarm.max_level >= self.config.alarm_level:
            return True
        return self._window_end is not None and now <= self._window_end + timedelta(seconds=JITTER)

    def needs_sampling(self, now: datetime) -> bool:
        """Whether the sampler must keep sampling at ≥ 1 Hz: vehicle on, alarm window, 2016 post-power-off
        tail, 2025 post-HV-off monitoring hour (the last sample's state decides)."""
        p = self._power
        if p.on or self._window_end is not None or (self._buffer and self._buffer[-1].alarm.max_level):
            return True
        if self.edition is Edition.E2016:
            return p.off_at is not None and _seconds(now, p.off_at) <= self.config.post_power_off_s
        return p.hv_off_at is not None and _seconds(now, p.hv_off_at) <= self.config.hv_off_monitor_s

    # ------------------------------------------------------------------ the stream

    def on_sample(self, snapshot: Snapshot, alarm: AlarmState) -> list[Outgoing]:
        """Feed one sample; returns the records to send now (reissues first, oldest first)."""
        now = snapshot.time
        cfg = self.config
        if self._last_time is not None:
            self._interval = _seconds(now, self._last_time)
        self._last_time = now
        self._update_power(snapshot)
        entry = _Entry(snapshot, alarm)
        self._buffer.append(entry)
        horizon = now - timedelta(seconds=cfg.alarm_window_s + self._alarm_period + JITTER)
        while self._buffer and self._buffer[0].snapshot.time < horizon:
            self._buffer.popleft()

        out: list[Outgoing] = []
        fault = None
        if alarm.max_level >= cfg.alarm_level:
            fault = alarm.fault_point or self._fault_point or now
        if fault is not None and fault != self._fault_point:
            self._fault_point = fault
            # 2016: 30 s after the fault point; 2025: until the alarm clears, but 30 s after a fault point
            # inside the post-HV-off monitoring hour (2025 Annex B)
            post = cfg.alarm_window_s if self.edition is Edition.E2016 or self._monitoring(now) else 0.0
            self._window_end = fault + timedelta(seconds=post)
            out += self._pre_fault(fault)
            log.info("alarm window at %s: %d pre-fault records", fault.isoformat(), len(out))
            entry.sent = True
            self._mark_sent(now, self._alarm_period)
            out.append(Outgoing(Command.REALTIME, snapshot, alarm, Reason.ALARM))
            return out
        window_over = self._window_end is not None and now > self._window_end + timedelta(seconds=JITTER)
        if window_over and alarm.max_level < cfg.alarm_level:
            self._window_end = None
            self._fault_point = None

        if self._alarm_fast(now, alarm):
            period, reason = self._alarm_period, Reason.ALARM
        else:
            active = self._active_reason(now, alarm)
            if active is not None:
                period = min(self._normal, MAX_DRIVING_PERIOD) if self._power.on else self._normal
                reason = active
            elif self._in_hv_off_window(now):
                period, reason = self._alarm_period, Reason.HV_OFF_MONITOR
            else:
                return out
        if self._due(now, period):
            entry.sent = True
            self._mark_sent(now, period)
            out.append(Outgoing(Command.REALTIME, snapshot, alarm, reason))
        return out

    def _due(self, now: datetime, period: float) -> bool:
        """Whether a record at ``period`` is due; tolerates sample jitter of up to half a sample interval
        (at most a tenth of the period) so that a 1 Hz sampler keeps an exact 10 s grid."""
        if self._last_sent is None:
            return True
        if self._next_due is None or self._due_period != period:
            self._next_due = self._last_sent + timedelta(seconds=period)
            self._due_period = period
        tolerance = min(0.1 * period, 0.5 * self._interval) if self._interval > 0 else 0.0
        return _seconds(now, self._next_due) >= -max(tolerance, 1e-6)

    def _mark_sent(self, now: datetime, period: float) -> None:
        """Record a realtime send; the next one is due a period after the grid point (no drift)."""
        if self._next_due is None or self._due_period != period or _seconds(now, self._next_due) >= period:
            self._next_due = now + timedelta(seconds=period)
        else:
            self._next_due += timedelta(seconds=period)
        self._due_period = period
        self._last_sent = now

    def _pre_fault(self, fault: datetime) -> list[Outgoing]:
        """Unsent samples of [fault − window, fault), thinned to the alarm period, as reissue records."""
        start = fault - timedelta(seconds=self.config.alarm_window_s + JITTER)
        out: list[Outgoing] = []
        last: datetime | None = None
        for e in self._buffer:
            t = e.snapshot.time
            if t < start or t >= fault:
                continue
            if e.sent and not self.config.pre_fault_include_sent:
                last = t
                continue
            if last is None or _seconds(t, last) >= self._alarm_period - JITTER:
                e.sent = True
                last = t
                out.append(Outgoing(Command.REISSUE, e.snapshot, e.alarm, Reason.PRE_FAULT))
        return out


__all__ = ["JITTER", "MAX_DRIVING_PERIOD", "Outgoing", "Reason", "ReportScheduler", "ReportingConfig"]
