"""One simulated vehicle's GB/T 32960 link over a blocking socket, for load generators (Locust).

A ``VehicleLink`` drives the real sans-I/O ``TerminalSession`` over one TCP (or TLS) socket: a reader
thread feeds received bytes and the session's timers (heartbeats, reply timeouts) and writes whatever
the session wants to send, so heartbeats and downlink answers go on while the caller is idle. Each
login, realtime or reissue acknowledgement, heartbeat reply and logout becomes an ``Outcome`` with its
latency (write to reply) handed to a recorder callback; errors and timeouts are outcomes with ``error``
set, and an upload whose fate the link cannot learn (never written, or the link lost before the reply)
is ``unconfirmed``. ``Backlog`` keeps the reports a vehicle collects while offline (bounded, oldest
dropped) and reissues them (0x03) oldest first, a few in flight at a time, once the link is back.

Only the standard library's blocking sockets, threads and locks are used: under Locust, gevent's
monkey-patching turns them into cooperative greenlets (one OS thread, thousands of links); in plain
Python (the tests) they are real threads. This module never imports Locust or gevent.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.protocol import wire
from agent.protocol.model import Command, ControlId, Frame, RealtimeReport, ResponseFlag
from agent.protocol.session import (
    BEIJING,
    MAX_SERIAL,
    CloseRequested,
    ControlRequested,
    DefaultCodec,
    Event,
    HeartbeatMissed,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
    MemorySerialStore,
    ProtocolViolation,
    ReconnectRequested,
    SessionStateError,
    TerminalConfig,
    TerminalHandler,
    TerminalSession,
    UploadAbandoned,
    UploadDelivered,
    UploadRejected,
    UploadUnconfirmed,
)

log = logging.getLogger(__name__)

#: longest the reader sleeps between two looks at the session's timers
MAX_POLL_S = 1.0
_READ_SIZE = 65536
_SCHEMES = {"tcp": False, "tls": True}
#: acknowledged terminal controls after which the vehicle drops its link (and logs in again next period)
_CLOSING_CONTROLS = frozenset({ControlId.SHUTDOWN, ControlId.RESET, ControlId.FACTORY_RESET,
                               ControlId.DISCONNECT})


@dataclass(frozen=True)
class Target:
    """Where the platform listens: ``tcp://host:port`` or ``tls://host:port``."""

    host: str
    port: int
    tls: bool = False


def parse_target(url: str) -> Target:
    """Parse ``tcp://HOST:PORT``, ``tls://HOST:PORT`` or ``HOST:PORT`` (IPv6 in brackets)."""
    text = url.strip()
    if "://" not in text:
        text = "tcp://" + text
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(f"target {url!r}: scheme must be tcp:// or tls://", key="host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"target {url!r}: bad port", key="host") from None
    if not parts.hostname or port is None or port == 0 or parts.path not in ("", "/"):
        raise ConfigError(f"target {url!r}: want tcp://HOST:PORT or tls://HOST:PORT", key="host")
    return Target(parts.hostname, port, _SCHEMES[parts.scheme])


@dataclass(frozen=True)
class Outcome:
    """One measured exchange: ``name`` login | realtime | reissue | heartbeat | logout | protocol |
    backlog_full. ``unconfirmed``: an upload that was not written or whose link was lost before the
    platform's reply; the report may not have arrived, so a vehicle keeps it for reissue."""

    name: str
    latency: float  # seconds from the write to the reply (or to the failure)
    size: int  # bytes written for it
    error: str | None = None
    unconfirmed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


Recorder = Callable[[Outcome], None]


class ClockSeededSerialStore(MemorySerialStore):
    """Login serials without persistence that still increase across restarts within a Beijing day.

    The first login of a day starts after a base proportional to the time of day (0..65530), so a load
    generator restarted later the same day continues above the serials it used before (as long as one
    VIN logged in fewer than ~0.76 times per second of downtime). The strict platform flags a login
    serial that does not increase.
    """

    def __init__(self, wallclock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__()
        self.wallclock = wallclock

    def load(self) -> tuple[date, int] | None:
        if self.value is None:
            beijing = self.wallclock().astimezone(BEIJING)
            seconds = beijing.hour * 3600 + beijing.minute * 60 + beijing.second
            return beijing.date(), seconds * (MAX_SERIAL - 1) // 86400
        return self.value


class _WatchingCodec(DefaultCodec):
    """``DefaultCodec`` that notes the command and flag of every frame encoded or decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[int, int]] = []
        self.received: list[tuple[int, int]] = []

    def encode(self, frame: Frame) -> bytes:
        self.sent.append((int(frame.command), int(frame.response)))
        return super().encode(frame)

    def decode(self, raw: wire.RawFrame) -> Frame:
        frame = super().decode(raw)
        self.received.append((int(frame.command), int(frame.response)))
        return frame


@dataclass
class _Pending:
    """A write waiting for its reply."""

    sent_at: float
    size: int
    done: threading.Event
    outcome: Outcome | None = None
    name: str = "realtime"


class VehicleLink:
    """One vehicle's link: connect + login, realtime reports with acknowledgement, logout.

    ``require_ack``: a realtime report counts as delivered only on the platform's success reply (run
    the reference platform with ``--reply-realtime``); otherwise it counts when written, and only an
    error reply or a lost link is a failure (Annex B: success is silent).
    """

    def __init__(
        self,
        target: Target,
        config: TerminalConfig,
        record: Recorder,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        serial_store: MemorySerialStore | None = None,
        handler: TerminalHandler | None = None,
        require_ack: bool = True,
        connect_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if target.tls and ssl_context is None:
            raise ConfigError("a tls:// target needs an SSL context", key="host")
        self.target = target
        self.record = record
        self.ssl_context = ssl_context if target.tls else None
        self.server_hostname = server_hostname or target.host
        self.require_ack = require_ack
        self.connect_timeout = connect_timeout
        self.reply_timeout = config.timing.reply_timeout
        self.clock = clock
        self._codec = _WatchingCodec()
        self.session = TerminalSession(config, wallclock=wallclock, serial_store=serial_store,
                                       handler=handler, codec=self._codec)
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._closing = False
        self.down_reason: str | None = None
        self._login: _Pending | None = None
        self._logout: _Pending | None = None
        self._heartbeat: _Pending | None = None
        self._uploads: dict[tuple[int, datetime], _Pending] = {}  # (command, report time)

    # ---- state

    @property
    def vin(self) -> str:
        return self.session.vin

    @property
    def logged_in(self) -> bool:
        """True while the link is up and the platform accepted the login."""
        return self.down_reason is None and self._sock is not None and self.session.logged_in

    # ---- commands

    def connect(self) -> bool:
        """Open the link and log in; True once the platform accepted (the login outcome is recorded)."""
        if self._sock is not None:
            raise SessionStateError("connect called twice on one VehicleLink")
        start = self.clock()
        raw: socket.socket | None = None
        try:
            raw = socket.create_connection((self.target.host, self.target.port), self.connect_timeout)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = raw
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(raw, server_hostname=self.server_hostname)
        except (OSError, ssl.SSLError) as exc:
            if raw is not None:
                raw.close()
            self.down_reason = f"connect to {self.target.host}:{self.target.port} failed: {exc}"
            self.record(Outcome("login", self.clock() - start, 0, self.down_reason))
            return False
        self._sock = sock
        pending = _Pending(self.clock(), 0, threading.Event())
        with self._lock:
            self._login = pending
            events = self.session.connection_made(pending.sent_at)
            pending.size = self._flush_locked()
            self._handle_locked(events, pending.sent_at)
        self._reader = threading.Thread(target=self._read_loop, name=f"gbt32960-{self.vin}", daemon=True)
        self._reader.start()
        if not pending.done.wait(self.session.timing.login_timeout + 1.0):
            with self._lock:
                self._finish_locked(pending, "login", "no login reply (reader stopped)")
        return pending.outcome is not None and pending.outcome.ok

    def send_realtime(self, report: RealtimeReport) -> Outcome:
        """Send one realtime report and wait for its fate (ack, error reply, timeout, lost link)."""
        with self._lock:
            if not self.logged_in:
                outcome = Outcome("realtime", 0.0, 0, f"not logged in ({self.down_reason or 'link down'})",
                                  unconfirmed=True)
                self.record(outcome)
                return outcome
            pending = self._upload_locked(Command.REALTIME, report)
        return self._wait(pending, Command.REALTIME, report.time, self.clock() + self.reply_timeout + 2.0)

    def send_reissues(self, reports: Sequence[RealtimeReport]) -> list[Outcome]:
        """Send stored reports as reissue (0x03), all before the first reply, and wait for the fate of
        each (one outcome per report, in order). When the link is down none is written: each outcome
        is then ``unconfirmed`` and not recorded (the caller keeps the reports)."""
        with self._lock:
            if not self.logged_in:
                why = f"not logged in ({self.down_reason or 'link down'})"
                return [Outcome("reissue", 0.0, 0, why, unconfirmed=True) for _ in reports]
            pendings = [self._upload_locked(Command.REISSUE, r) for r in reports]
        deadline = self.clock() + self.reply_timeout + 2.0
        return [self._wait(p, Command.REISSUE, r.time, deadline)
                for p, r in zip(pendings, reports, strict=True)]

    def _upload_locked(self, command: Command, report: RealtimeReport) -> _Pending:
        name = "realtime" if command == Command.REALTIME else "reissue"
        now = self.clock()
        key = (int(command), report.time)
        pending = _Pending(now, 0, threading.Event(), name=name)
        self._uploads[key] = pending
        try:
            send = self.session.send_realtime if command == Command.REALTIME else self.session.send_reissue
            events = send(report, now)
        except SessionStateError as exc:
            self._uploads.pop(key, None)
            self._finish_locked(pending, name, str(exc), unconfirmed=True)
            return pending
        pending.size = self._flush_locked()
        self._handle_locked(events, now)
        if not self.require_ack and pending.outcome is None:
            self._finish_locked(pending, name, None)
            self._uploads.pop(key, None)
        return pending

    def _wait(self, pending: _Pending, command: Command, t: datetime, deadline: float) -> Outcome:
        if pending.done.wait(max(0.0, deadline - self.clock())) and pending.outcome is not None:
            return pending.outcome
        with self._lock:
            self._uploads.pop((int(command), t), None)
            self._finish_locked(pending, pending.name, "no outcome (reader stopped)", unconfirmed=True)
        assert pending.outcome is not None
        return pending.outcome

    def close(self, logout: bool = True, timeout: float = 5.0) -> None:
        """Log out (waiting up to ``timeout`` for the reply, recorded), then close the socket."""
        pending: _Pending | None = None
        if logout:
            with self._lock:
                if self.logged_in:
                    now = self.clock()
                    pending = self._logout = _Pending(now, 0, threading.Event())
                    events = self.session.logout(now)
                    pending.size = self._flush_locked()
                    self._handle_locked(events, now)
            if pending is not None and not pending.done.wait(timeout):
                with self._lock:
                    self._finish_locked(pending, "logout", f"no logout reply within {timeout:g} s")
        self._shutdown("closed")
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()

    # ---- I/O

    def _flush_locked(self) -> int:
        data = self.session.data_to_send()
        sent, self._codec.sent = self._codec.sent, []
        if not data or self._sock is None or self.down_reason is not None:
            return 0
        try:
            self._sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            self._link_lost_locked(f"write failed: {exc}")
            return 0
        now = self.clock()
        if (int(Command.HEARTBEAT), int(ResponseFlag.COMMAND)) in sent:
            self._heartbeat = _Pending(now, len(data), threading.Event())
        return len(data)

    def _readable(self, wait: float) -> bool:
        """True when a read will find data (or the end of the stream) within ``wait`` s."""
        sock = self._sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
            return True
        readable, _, _ = select.select([sock], [], [], wait)
        return bool(readable)

    def _recv_locked(self) -> bytes | None:
        """Up to 64 KiB; None when nothing is there after all, b"" at the end of the stream. Called with
        the lock held, so a TLS read never runs beside a TLS write on the same SSL object."""
        sock = self._sock
        if sock is None:
            return b""
        try:
            return sock.recv(_READ_SIZE)
        except (ssl.SSLWantReadError, BlockingIOError, TimeoutError):
            return None

    def _read_loop(self) -> None:
        while not self._closing:
            with self._lock:
                deadline = self.session.next_deadline()
            now = self.clock()
            wait = MAX_POLL_S if deadline is None else min(MAX_POLL_S, max(0.0, deadline - now))
            try:
                ready = self._readable(wait)
            except (OSError, ValueError) as exc:  # ValueError: closed under our feet
                with self._lock:
                    self._link_lost_locked(f"read failed: {exc}")
                return
            with self._lock:
                if self._closing:
                    return
                try:
                    data = self._recv_locked() if ready else None
                except (OSError, ValueError, ssl.SSLError) as exc:
                    self._link_lost_locked(f"read failed: {exc}")
                    return
                if data == b"":
                    self._link_lost_locked("the platform closed the link")
                    return
                now = self.clock()
                events = self.session.receive_data(data, now) if data else []
                received, self._codec.received = self._codec.received, []
                events += self.session.tick(now)
                self._flush_locked()
                self._note_heartbeat_locked(received, now)
                self._handle_locked(events, now)

    def _shutdown(self, reason: str) -> None:
        self._closing = True
        if self.down_reason is None:
            self.down_reason = reason
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)

    def _link_lost_locked(self, reason: str) -> None:
        if self.down_reason is not None:
            return
        log.info("%s: link lost: %s", self.vin, reason)
        self.down_reason = reason
        self._closing = True
        events = self.session.connection_lost(self.clock())
        self._handle_locked(events, self.clock())
        waiting = (("login", self._login), ("logout", self._logout), ("heartbeat", self._heartbeat))
        for name, pending in waiting:
            if pending is not None:
                self._finish_locked(pending, name, f"link lost: {reason}")
        for pending in list(self._uploads.values()):
            self._finish_locked(pending, pending.name, f"link lost: {reason}", unconfirmed=True)
        self._uploads.clear()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)

    # ---- outcomes

    def _finish_locked(self, pending: _Pending, name: str, error: str | None,
                       unconfirmed: bool = False) -> None:
        if pending.outcome is not None:
            return
        pending.outcome = Outcome(name, max(0.0, self.clock() - pending.sent_at), pending.size, error,
                                  unconfirmed)
        pending.done.set()
        self.record(pending.outcome)

    def _note_heartbeat_locked(self, received: list[tuple[int, int]], now: float) -> None:
        pending = self._heartbeat
        if pending is None:
            return
        for command, flag in received:
            if command == Command.HEARTBEAT and flag != ResponseFlag.COMMAND:
                error = None if flag == ResponseFlag.SUCCESS else f"heartbeat reply flag 0x{flag:02X}"
                self._finish_locked(pending, "heartbeat", error)
                self._heartbeat = None
                return

    def _handle_locked(self, events: list[Event], now: float) -> None:
        for ev in events:
            if isinstance(ev, LoginSucceeded) and self._login is not None:
                self._finish_locked(self._login, "login", None)
            elif isinstance(ev, LoginFailed) and self._login is not None:
                why = "no login reply" if ev.flag is None else f"login refused (flag {int(ev.flag):#04x})"
                self._finish_locked(self._login, "login", why)
                self._shutdown(why)
            elif isinstance(ev, UploadDelivered):
                self._settle_locked(ev.command, ev.time, None if ev.acknowledged or not self.require_ack
                                    else f"no acknowledgement within {self.reply_timeout:g} s")
            elif isinstance(ev, UploadRejected | UploadAbandoned):
                self._settle_locked(ev.command, ev.time, f"error reply (flag {int(ev.flag):#04x})")
            elif isinstance(ev, UploadUnconfirmed):
                self._settle_locked(ev.command, ev.time, "link lost before the acknowledgement",
                                    unconfirmed=True)
            elif isinstance(ev, HeartbeatMissed) and self._heartbeat is not None:
                self._finish_locked(self._heartbeat, "heartbeat",
                                    f"no heartbeat reply within {self.reply_timeout:g} s")
                self._heartbeat = None
            elif isinstance(ev, LoggedOut) and self._logout is not None:
                self._finish_locked(self._logout, "logout", None if ev.acknowledged else "no logout reply")
            elif isinstance(ev, ReconnectRequested):
                self._link_lost_locked(f"session asked to reconnect ({ev.reason})")
            elif isinstance(ev, CloseRequested):
                self._shutdown(f"closed ({ev.reason})")
            elif isinstance(ev, ControlRequested) and int(ev.command_id) in _CLOSING_CONTROLS:
                self._link_lost_locked(f"platform control 0x{int(ev.command_id):02X}")  # reply already out
            elif isinstance(ev, ProtocolViolation):
                log.warning("%s: protocol violation from the platform: %s", self.vin, ev.reason)
                self.record(Outcome("protocol", 0.0, 0, ev.reason))

    def _settle_locked(self, command: Command | int, t: datetime, error: str | None,
                       unconfirmed: bool = False) -> None:
        pending = self._uploads.pop((int(command), t), None)
        if pending is not None:
            self._finish_locked(pending, pending.name, error, unconfirmed)


class Backlog:
    """The reports a vehicle collected while its link was down or not yet logged in, oldest first.

    At most ``limit`` are kept: beyond that the oldest is dropped and recorded as a failed
    ``backlog_full`` outcome. ``drain`` reissues them (0x03) over a logged-in link, ``window`` in flight
    at a time; each is recorded by the link as a ``reissue`` outcome (an error reply or a timeout is a
    failure, the report is not kept again). Unconfirmed ones (link lost before the reply) go back to
    the backlog, in time order, for the next login.
    """

    def __init__(self, limit: int, record: Recorder, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.record = record
        self.clock = clock
        self.reports: deque[RealtimeReport] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.reports)

    def keep(self, report: RealtimeReport) -> None:
        """Keep a report for reissue (dropping the oldest when full)."""
        if self.limit < 1:
            self._drop(1)
            return
        if len(self.reports) >= self.limit:
            self.reports.popleft()
            self._drop(1)
        if self.reports and report.time < self.reports[-1].time:  # keep the order of collection time
            self.reports = deque(sorted((*self.reports, report), key=lambda r: r.time))
        else:
            self.reports.append(report)

    def _drop(self, n: int) -> None:
        self.dropped += n
        self.record(Outcome("backlog_full", 0.0, 0, f"backlog full ({self.limit}): oldest report dropped"))

    def drain(self, link: VehicleLink, window: int, until: float | None = None) -> int:
        """Reissue oldest first while the link is logged in, the backlog not empty and (when given)
        the clock before ``until``; returns how many were confirmed (acknowledged, or failed for good)."""
        done = 0
        while self.reports and link.logged_in and (until is None or self.clock() < until):
            batch = [self.reports.popleft() for _ in range(min(window, len(self.reports)))]
            outcomes = link.send_reissues(batch)
            back = [r for r, o in zip(batch, outcomes, strict=True) if o.unconfirmed]
            done += len(batch) - len(back)
            self.reports.extendleft(reversed(back))  # older than everything still kept
            while len(self.reports) > max(0, self.limit):
                self.reports.popleft()
                self._drop(1)
            if back:
                break  # the link is gone: the rest waits for the next login
        return done


__all__ = ["Backlog", "ClockSeededSerialStore", "Outcome", "Recorder", "Target", "VehicleLink",
           "parse_target"]
