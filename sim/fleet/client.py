"""One fleet vehicle on the wire: a ``LiteVehicle``, the real ``TerminalSession`` and a bounded backlog.

``FleetVehicle`` is the ``asyncio.Protocol`` of the vehicle's TCP (or TLS) link; it feeds received bytes
to the sans-I/O session, writes what the session wants sent, and turns session events into counters of the
fleet (``FleetStats``). It has no timers of its own: the fleet's one scheduler (``sim.fleet.runner``) calls
``collect`` at each report time and ``tick`` at ``session.next_deadline()``.

Loss accounting: every report collected is either sent as realtime (0x02) at once when logged in and the
link takes writes, or kept in the in-memory backlog (at most ``backlog_limit`` reports; beyond that the
oldest is dropped and counted as ``dropped["backlog_full"]``). Once logged in, the backlog is reissued
(0x03) oldest first with at most ``window`` uploads in flight. An upload whose fate the session cannot
learn (link lost: ``UploadUnconfirmed``) goes back into the backlog; one the platform refuses for good
(``UploadAbandoned``) is counted as ``dropped["abandoned"]``.

Flow control: a transport holding more than ``WRITE_HIGH_WATER`` unsent bytes (a platform that reads
slowly) pauses the vehicle (``pause_writing``): new reports go to the backlog, whose bound applies, and
the backlog drains again on ``resume_writing`` — memory stays bounded however slow the platform is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

from agent.protocol import codec, wire
from agent.protocol.model import (
    Command,
    ControlId,
    Encryption,
    Frame,
    Parameter,
    ParameterId,
    RealtimeReport,
    ResponseFlag,
    TerminalControl,
)
from agent.protocol.session import (
    CloseRequested,
    ControlRequested,
    Event,
    HeartbeatMissed,
    LoginFailed,
    LoginSucceeded,
    ParametersChanged,
    ProtocolViolation,
    ReconnectRequested,
    TerminalHandler,
    TerminalSession,
    UploadAbandoned,
    UploadDelivered,
    UploadRejected,
    UploadUnconfirmed,
)
from sim.fleet.frames import EncodedReport
from sim.fleet.lite import LiteVehicle

if TYPE_CHECKING:
    from sim.fleet.full import FullVehicle
    from sim.fleet.runner import Fleet

log = logging.getLogger(__name__)

WRITE_HIGH_WATER = 16 * 1024  # bytes a vehicle's transport may hold before it pauses the vehicle
ALARM_PRE = timedelta(seconds=30)  # level ≥ 3: the samples before the fault point that must be reported
ALARM_POST = timedelta(seconds=30)  # … and 1 s reporting until this long after the alarm's last second
_KINDS = {0x01: "login", 0x02: "realtime", 0x03: "reissue", 0x04: "logout", 0x07: "heartbeat",
          0x08: "time_calibration", 0x09: "activation", 0x0B: "key_exchange"}


def frame_kinds(data: bytes) -> list[str]:
    """The kind of every whole frame in ``data`` (back-to-back frames as the session writes them):
    the command name for commands (flag 0xFE), ``reply`` for responses to downlink commands."""
    out: list[str] = []
    i, n = 0, len(data)
    while i + 25 <= n:
        cmd, flag = data[i + 2], data[i + 3]
        out.append(_KINDS.get(cmd, f"0x{cmd:02X}") if flag == 0xFE else "reply")
        i += 25 + (data[i + 22] << 8 | data[i + 23])
    return out


class FleetHandler(TerminalHandler):
    """Downlink policy of a fleet vehicle: answers queries of the timer and period parameters,
    accepts sets of them, and accepts every defined control command."""

    def __init__(self, vehicle: FleetVehicle) -> None:
        self.vehicle = vehicle

    def query_parameters(self, ids: tuple[int, ...]) -> list[Parameter] | None:
        v = self.vehicle
        t = v.session.timing
        known: dict[int, int | str] = {
            ParameterId.LOCAL_STORAGE_PERIOD: 1000,
            ParameterId.REPORT_PERIOD: max(1, round(v.period)),
            ParameterId.ALARM_REPORT_PERIOD: 1000 if v.session.edition == 2016 else 1,
            ParameterId.HARDWARE_VERSION: "FLT01",
            ParameterId.FIRMWARE_VERSION: "LITE1",
            ParameterId.HEARTBEAT_PERIOD: round(t.heartbeat_interval or 0),
            ParameterId.TERMINAL_RESPONSE_TIMEOUT: round(t.login_timeout),
            ParameterId.PLATFORM_RESPONSE_TIMEOUT: round(t.reply_timeout),
            ParameterId.LOGIN_RETRY_INTERVAL: max(1, round(t.login_backoff / 60)),
        }
        if not ids or any(int(i) not in known for i in ids):
            return None
        return [Parameter(ParameterId(int(i)), known[int(i)]) for i in ids]

    def validate_parameters(self, items: tuple[Parameter, ...]) -> bool:
        allowed = {ParameterId.REPORT_PERIOD, ParameterId.HEARTBEAT_PERIOD,
                   ParameterId.TERMINAL_RESPONSE_TIMEOUT, ParameterId.PLATFORM_RESPONSE_TIMEOUT,
                   ParameterId.LOGIN_RETRY_INTERVAL,
                   ParameterId.LOCAL_STORAGE_PERIOD, ParameterId.ALARM_REPORT_PERIOD}
        return all(int(p.id) in allowed and isinstance(p.value, int) and p.value > 0 for p in items)

    def validate_control(self, control: TerminalControl) -> bool:
        return isinstance(control.command_id, ControlId)


class FleetVehicle(asyncio.Protocol):
    """A vehicle of the fleet: physics, session, backlog, link. See the module docstring."""

    def __init__(self, fleet: Fleet, index: int, car: LiteVehicle | FullVehicle, session_factory: Callable[
            [FleetVehicle], TerminalSession], *, period: float, skew: float = 0.0,
            malformed_every: int = 0) -> None:
        self.fleet = fleet
        self.stats = fleet.stats
        self.index = index
        self.car = car
        self.lite = car if isinstance(car, LiteVehicle) else None
        self.full = None if isinstance(car, LiteVehicle) else car
        self.vin = car.vin
        self.period = period
        self.skew = timedelta(seconds=skew)
        self.malformed_every = malformed_every
        self.session = session_factory(self)
        self.transport: asyncio.Transport | None = None
        self.paused = False  # the transport asked us to stop writing (pause_writing)
        self.backlog: deque[RealtimeReport] = deque()
        self.inflight: dict[tuple[int, datetime], tuple[RealtimeReport, float]] = {}
        self.tick_at: float | None = None
        self.connecting = False
        self.connect_started = 0.0
        self.logged_in_once = False
        self.attempts = 0  # consecutive failed connects (backoff)
        self.last_step: float | None = None
        self.last_time: datetime | None = None
        self.collected = 0
        self.closing = False  # the fleet is shutting down: no reconnect
        self.online = False
        #: level ≥ 3 alarms (scenario alarm-burst): unreported 1 s samples of the last 30 s
        self.history: deque[EncodedReport] | None = None
        if self.lite is not None and self.lite.scenario == "alarm-burst":
            self.history = deque(maxlen=int(ALARM_PRE.total_seconds()))
        self.alarm_until: datetime | None = None  # 1 s reporting until then (a level ≥ 3 alarm)
        self.next_due: datetime | None = None  # the next collection reported at the report period

    # ---- clock

    def wallclock(self) -> datetime:
        """This vehicle's idea of UTC (clock-skew scenario: off by ``skew``)."""
        return datetime.now(UTC) + self.skew

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.paused = False
        self.connecting = False
        self.attempts = 0
        self.stats.counters["connections"] += 1
        self.fleet.connected += 1
        now = self.fleet.now()
        self._handle(self.session.connection_made(now), now)

    def data_received(self, data: bytes) -> None:
        now = self.fleet.now()
        self._handle(self.session.receive_data(data, now), now)

    def pause_writing(self) -> None:
        """The link's send buffer is full (a slow platform): keep new reports in the backlog until
        ``resume_writing`` rather than in the transport."""
        self.paused = True
        self.stats.counters["write_paused"] += 1

    def resume_writing(self) -> None:
        self.paused = False
        if self.backlog and self.transport is not None and self.session.logged_in:
            self._handle([], self.fleet.now())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        self.paused = False
        self.fleet.connected -= 1
        self._offline()
        now = self.fleet.now()
        if exc is not None:
            self.stats.failures[f"link: {type(exc).__name__}"] += 1
        self.stats.counters["link_lost"] += 1
        self._handle(self.session.connection_lost(now), now)
        if not self.closing:
            self.fleet.schedule_reconnect(self)

    # ---- the fleet's scheduler calls these

    @property
    def sample_period(self) -> float:
        """Seconds between two collections: 1 s while the vehicle keeps a local 1 s history (level ≥ 3
        alarms), else the report period."""
        return 1.0 if self.history is not None else self.period

    def collect(self, now: float, wall: datetime) -> None:
        """Collection time (``wall``: the UTC time the fleet scheduled it for; the vehicle's clock skew is
        added): advance the physics, build the report, send it as realtime or keep it."""
        if self.full is not None:
            self._collect_full(now, wall)
            return
        t = (wall + self.skew).replace(microsecond=0)
        if self.last_time is not None and t <= self.last_time:
            self.stats.counters["collect_skipped"] += 1  # never two reports of one second
            return
        lite = self.lite
        assert lite is not None
        if self.last_time is None and self.history is not None:
            self._prehistory(t)
        self.last_time = t
        dt = self.period if self.last_step is None else now - self.last_step
        self.last_step = now
        lite.step(max(0.0, dt))
        report = EncodedReport(t, data=lite.encode(t))
        if self.history is not None and not self._alarm_cadence(t, report, lite.alarm):
            return  # kept in the local history only
        self._count_collected()
        if self.session.logged_in and self.transport is not None and not self.paused:
            self._handle(self.session.send_realtime(report, now), now, sent=(Command.REALTIME, report))
            if self.malformed_every and self.collected % self.malformed_every == 0 and self.transport:
                self._send_malformed(report)  # after the good copy: its error reply then matches nothing
        else:
            self._keep(report)

    def _count_collected(self) -> None:
        """One more report that must reach the platform (the loss accounting's ``generated``)."""
        self.collected += 1
        self.stats.counters["collected"] += 1

    def _alarm_cadence(self, t: datetime, report: EncodedReport, level: int) -> bool:
        """The level ≥ 3 alarm rule on a 1 s sample (spec §6, 2025 §4.1): at a fault point, the samples of
        the 30 s before it that were not reported go out as reissue; while the alarm lasts and 30 s after,
        every sample is reported; otherwise every ``period``. True: report this sample as realtime."""
        history = self.history
        assert history is not None
        if level >= 3:
            if self.alarm_until is None or t > self.alarm_until:  # a fault point
                for old in history:
                    if old.time >= t - ALARM_PRE:
                        self._count_collected()
                        self.stats.counters["alarm_prehistory"] += 1
                        self._keep(old)  # reissued (0x03) oldest first
                history.clear()
            self.alarm_until = t + ALARM_POST
        in_alarm = self.alarm_until is not None and t <= self.alarm_until
        due = self.next_due is None or t >= self.next_due
        if due:
            self.next_due = t + timedelta(seconds=max(1, round(self.period)))
        if in_alarm or due:
            return True
        history.append(report)
        return False

    def _prehistory(self, first: datetime) -> None:
        """The 1 s samples the vehicle recorded before its first collection at ``first``, from 30 s before
        the fleet's start (so any fault point of the run has its 30 s): physics stepped a second at a
        time, each sample through the alarm rule, none reported as realtime (the vehicle was not on the
        air yet: what the rule wants reported goes out as reissue)."""
        lite = self.lite
        assert lite is not None and self.history is not None
        t = min(first, lite.start) - ALARM_PRE
        self.next_due = first  # no sample before ``first`` is due at the report period
        while t < first:
            lite.step(1.0)
            report = EncodedReport(t, data=lite.encode(t))
            if self._alarm_cadence(t, report, lite.alarm):
                self._count_collected()
                self._keep(report)
            t += timedelta(seconds=1)
        self.next_due = None  # the first live collection is reported

    def _collect_full(self, now: float, wall: datetime) -> None:
        """Full fidelity: run the simulator and the agent's pipeline up to ``wall``; send what the agent
        emits — realtime at once when logged in, reissue records (the pre-alarm window) and anything
        collected offline through the backlog."""
        full = self.full
        assert full is not None
        target = (wall - full.start).total_seconds()
        emitted = full.advance(max(0.0, target - full.sim_t))
        for e in emitted:
            self._count_collected()
            report = e.report
            if self.skew:
                report = dataclasses.replace(report, time=report.time + self.skew)
            if e.command == Command.REALTIME and self.session.logged_in and self.transport is not None:
                self._handle(self.session.send_realtime(report, now), now, sent=(Command.REALTIME, report))
            else:
                self._keep(report)
        if self.backlog and self.session.logged_in:
            self._handle([], now)

    def tick(self, now: float) -> None:
        self._handle(self.session.tick(now), now)

    # ---- internals

    def _keep(self, report: RealtimeReport, front: bool = False) -> None:
        if len(self.backlog) >= self.fleet.config.backlog_limit:
            self.backlog.popleft()
            self.stats.dropped["backlog_full"] += 1
        if front:
            self.backlog.appendleft(report)
        else:
            self.backlog.append(report)

    def _drain(self, now: float) -> None:
        window = self.fleet.config.window
        reissues = sum(1 for key in self.inflight if key[0] == Command.REISSUE)  # realtime does not count
        while (self.backlog and self.session.logged_in and self.transport is not None and not self.paused
               and reissues < window):
            reissues += 1
            report = self.backlog.popleft()
            self._handle(self.session.send_reissue(report, now), now, sent=(Command.REISSUE, report),
                         drain=False)

    def _send_malformed(self, report: RealtimeReport) -> None:
        """An extra, corrupted copy of a realtime frame: a bad BCC, or a length field two bytes too long (the
        platform sees it when the next frame arrives: the claimed bytes are that frame's start marker)."""
        if isinstance(report, EncodedReport):
            good = wire.build_frame(self.session.edition, Command.REALTIME, ResponseFlag.COMMAND,
                                    self.vin.encode("ascii"), Encryption.NONE, report.data)
        else:
            good = codec.encode_frame(Frame(self.session.edition, Command.REALTIME, ResponseFlag.COMMAND,
                                            self.vin, Encryption.NONE, report))
        raw = bytearray(good)
        if (self.index // 10 + self.collected // self.malformed_every) % 2:
            raw[-1] ^= 0x5A
            self.stats.counters["malformed_bcc"] += 1
        else:
            length = (raw[22] << 8 | raw[23]) + 2  # claims the next frame's start marker
            raw[22], raw[23] = length >> 8, length & 0xFF
            raw[-1] = wire.bcc(bytes(raw), 2, len(raw) - 1)  # a correct BCC over what is really there
            self.stats.counters["malformed_length"] += 1
        self.stats.sent["malformed"] += 1
        assert self.transport is not None
        self.transport.write(bytes(raw))

    def _flush(self, now: float) -> bool:
        """Write what the session has to send; True when there was something."""
        data = self.session.data_to_send()
        if not data:
            return False
        if self.transport is None or self.transport.is_closing():
            self.stats.counters["unsent_bytes"] += len(data)
            return True
        sent = self.stats.sent
        for kind in frame_kinds(data):
            sent[kind] += 1
        self.transport.write(data)
        return True

    def _handle(self, events: list[Event], now: float, *,
                sent: tuple[Command, RealtimeReport] | None = None, drain: bool = True) -> None:
        if sent is not None:
            self.inflight[(int(sent[0]), sent[1].time)] = (sent[1], now)
        wrote = False
        if events:
            wrote = self._flush(now)  # before the events: a close they cause must not lose what was due
            for ev in events:
                self._event(ev, now)
        if drain and self.backlog:
            self._drain(now)
        wrote = self._flush(now) or wrote
        if wrote or sent is not None or any(ev.__class__ is not UploadDelivered for ev in events):
            self.fleet.schedule_tick(self)  # else no deadline moved earlier: an acknowledgement only

    def _event(self, ev: Event, now: float) -> None:
        stats = self.stats
        if isinstance(ev, UploadDelivered):
            item = self.inflight.pop((int(ev.command), ev.time), None)
            if ev.acknowledged:
                kind = "realtime" if ev.command == Command.REALTIME else "reissue"
                stats.acked[kind] += 1
                if item is not None:
                    stats.ack_latency.add(now - item[1])
            else:
                stats.counters["delivered_unacked"] += 1
        elif isinstance(ev, UploadUnconfirmed):
            item = self.inflight.pop((int(ev.command), ev.time), None)
            stats.counters["unconfirmed"] += 1
            if item is not None:
                self._keep(item[0], front=True)
        elif isinstance(ev, LoginSucceeded):
            if not self.online:
                self.online = True
                self.fleet.online += 1
            stats.counters["logins"] += 1
            stats.login_latency.add(now - self.connect_started)
            self.logged_in_once = True
            if self.backlog:  # reissue oldest first: keep the backlog in collection-time order
                self.backlog = deque(sorted(self.backlog, key=lambda r: r.time))
        elif isinstance(ev, UploadRejected):
            stats.failures[f"rejected: flag {int(ev.flag)}"] += 1
        elif isinstance(ev, UploadAbandoned):
            self.inflight.pop((int(ev.command), ev.time), None)
            stats.dropped["abandoned"] += 1
        elif isinstance(ev, LoginFailed):
            stats.failures["login: timeout" if ev.flag is None else f"login: flag {int(ev.flag)}"] += 1
        elif isinstance(ev, HeartbeatMissed):
            stats.failures["heartbeat missed"] += 1
        elif isinstance(ev, ReconnectRequested):
            stats.failures[f"reconnect: {ev.reason}"] += 1
            self._offline()
            self.close()
        elif isinstance(ev, CloseRequested):
            self._offline()
            self.close()
        elif isinstance(ev, ProtocolViolation):
            stats.failures[f"protocol: {ev.reason}"] += 1
        elif isinstance(ev, ControlRequested):
            stats.counters["controls"] += 1
            if ev.command_id in (ControlId.DISCONNECT, ControlId.RESET):
                asyncio.get_running_loop().call_soon(self.close)
        elif isinstance(ev, ParametersChanged):
            stats.counters["parameter_sets"] += 1
            for p in ev.items:
                if int(p.id) == ParameterId.REPORT_PERIOD and isinstance(p.value, int) and p.value > 0 \
                        and self.full is None:  # full fidelity: the agent's cadence keeps its period
                    self.period = float(p.value)

    def _offline(self) -> None:
        if self.online:
            self.online = False
            self.fleet.online -= 1

    def close(self) -> None:
        """Drop the link (the session's rules or a control command asked for it)."""
        if self.transport is not None:
            self.transport.close()

    def logout(self, now: float) -> None:
        """Log out at the end of the run (or just close when not logged in)."""
        self.closing = True
        if self.session.logged_in and self.transport is not None:
            self._handle(self.session.logout(now), now)
        else:
            self.close()

    @property
    def settled(self) -> bool:
        """Nothing left to deliver: empty backlog, nothing in flight."""
        return not self.backlog and not self.inflight


__all__ = ["FleetHandler", "FleetVehicle", "frame_kinds"]
