"""The reference platform: an asyncio TCP (optionally TLS) GB/T 32960 server, strict and recording.

One ``PlatformSession`` per connection; both editions are accepted on the same port (the start marker
tells). Every received frame is stored (``db.PlatformDB``) with its reply, decoded JSON and the
violations the checks (``checks``) found. Downlink commands queued in the database by
``tbox platform send`` are picked up once per second. See docs/platform.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, StoreError, TboxError
from agent.protocol import wire
from agent.protocol.codec import DEFAULT, CodecOptions, ResponseForm, decode_raw, encode_frame
from agent.protocol.errors import ProtocolError
from agent.protocol.jsonform import frame_to_json
from agent.protocol.model import (
    Cipher,
    Command,
    ControlId,
    Edition,
    Encryption,
    Frame,
    Parameter,
    RealtimeReport,
    ResponseFlag,
    TimeOnly,
    Verifier,
)
from agent.protocol.session import (
    BeforeLogin,
    CloseRequested,
    DownlinkAbandoned,
    DownlinkReplied,
    Event,
    FrameIgnored,
    LoginRefused,
    PlatformConfig,
    PlatformSession,
    ProtocolViolation,
    ReportReceived,
    ReportRefused,
    SessionEnded,
    VehicleLoggedIn,
    VehicleLoggedOut,
)
from sim.platform import checks, fastlane
from sim.platform.checks import Limits, VinState, Violation
from sim.platform.db import PlatformDB
from sim.platform.windows import WindowTracker

log = logging.getLogger(__name__)

_H8 = timedelta(hours=8)
_DECODE_BUGS = (ValueError, IndexError, KeyError, TypeError, struct.error)
POLL_INTERVAL = 1.0  # seconds between looks at the commands table
CLOSE_TIMEOUT = 2.0  # seconds to wait for a closing link (TLS shutdown) before giving up on it
#: group commit: what every connection received within this window is committed together, then acked
GROUP_COMMIT_S = 0.015
_REPORTS = (int(Command.REALTIME), int(Command.REISSUE))
_PLAIN = int(Encryption.NONE)
_EDITION = {int(e): e for e in Edition}


@dataclass(frozen=True)
class VinKeys:
    """Per-VIN crypto: data-unit cipher (decryption) and 2025 signature verifier."""

    cipher: Cipher | None = None
    verifier: Verifier | None = None


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``serve`` needs; defaults are the documented ones (docs/platform.md)."""

    host: str = "127.0.0.1"
    port: int = 0
    db_path: str = "platform.db"
    edition_reply: str = "same"  # same | 2016 | 2025
    ack: ResponseForm = ResponseForm.TIME_ONLY
    reply_realtime: bool = False
    store_json: bool = True  # False: plain frames' JSON is rendered by `dump` from the raw bytes (faster)
    fsync: bool = False  # True: checkpoints fsync once a second (power-loss safe; the WAL grows under load)
    vins: frozenset[str] | None = None  # None: any VIN may log in
    keys: dict[str, VinKeys] = field(default_factory=dict)
    duplicate_vin: str = "close-old"  # close-old (Annex B: drop the old session) | refuse (flag 0x03)
    before_login: BeforeLogin = BeforeLogin.IGNORE
    heartbeat_interval: float = 30.0
    idle_factor: float = 3.0
    downlink_retry_interval: float = 60.0
    limits: Limits = field(default_factory=Limits)
    #: check plain realtime/reissue reports in raw integers first (``fastlane``); False: always decode
    fast_lane: bool = True
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None


class _ReplyCodec:
    """Codec of one connection: per-VIN cipher for decoding, optional forced reply edition."""

    def __init__(self, edition_reply: str) -> None:
        self.cipher: Cipher | None = None
        self.edition: Edition | None = {"2016": Edition.E2016, "2025": Edition.E2025}.get(edition_reply)
        self.options: CodecOptions = DEFAULT
        self._vin: dict[str, bytes] = {}  # VIN text -> its 17 header bytes (one VIN per connection)

    def encode(self, frame: Frame) -> bytes:
        if self.edition is not None and frame.edition != self.edition:
            frame = dataclasses.replace(frame, edition=self.edition)
        body = frame.body
        if body.__class__ is TimeOnly and frame.encryption == Encryption.NONE:  # an acknowledgement
            data = self.ack(frame.edition, frame.command, frame.response, frame.vin, body.time)
            if data is not None:
                return data
        return encode_frame(frame, options=self.options)

    def ack(self, edition: int, command: int, flag: int, vin: str, t: datetime) -> bytes | None:
        """The bytes ``encode`` gives a time-only reply (no encryption), built directly; None when the
        general path must decide (a time outside 2000-2099 Beijing, not UTC-aware, a VIN over 17 bytes)."""
        if t.__class__ is not datetime or t.tzinfo is not UTC:
            return None
        bj = t + _H8
        if not 2000 <= bj.year <= 2099:
            return None
        header = self._vin.get(vin)
        if header is None:
            if len(self._vin) >= 8:  # one VIN per connection normally; bounded whatever a peer sends
                self._vin.clear()
            header = self._vin[vin] = vin.encode("latin-1").ljust(17, b"\0")
        if len(header) != 17:
            return None
        data = bytes((bj.year - 2000, bj.month, bj.day, bj.hour, bj.minute, bj.second))
        return wire.build_frame(int(self.edition or edition), int(command), int(flag), header,
                                int(Encryption.NONE), data)

    def decode(self, raw: wire.RawFrame) -> Frame:
        return decode_raw(raw, cipher=self.cipher, options=self.options)


class RecordingSession(PlatformSession):
    """A ``PlatformSession`` fed one already-framed raw frame at a time (the server frames the stream
    itself so it can store every frame, corrupt ones included)."""

    replies: _ReplyCodec | None = None  # the connection's codec: time-only acknowledgements built directly

    def _respond(self, request: Frame, flag: ResponseFlag | int, body: Any = None) -> None:
        if body is None and self.replies is not None and self.config.response_form is ResponseForm.TIME_ONLY:
            t = getattr(request.body, "time", None)  # the request's time, as PlatformSession answers
            if t.__class__ is datetime:
                data = self.replies.ack(request.edition, request.command, flag, request.vin, t)
                if data is not None:
                    self._out += data
                    return
        super()._respond(request, flag, body)

    def _acknowledge(self, edition: Edition, command: int, vin: str, time: datetime) -> None:
        if self.replies is not None and self.config.response_form is ResponseForm.TIME_ONLY:
            data = self.replies.ack(edition, command, ResponseFlag.SUCCESS, vin, time)
            if data is not None:
                self._out += data
                return
        super()._acknowledge(edition, command, vin, time)

    def receive_raw(self, raw: wire.RawFrame, now: float) -> tuple[Frame | None, list[Event]]:
        """Handle one raw frame; returns the decoded frame (None if corrupt) and the events."""
        if not raw.bcc_ok:
            return None, self._bad_bcc(raw, now)
        try:
            frame = self.codec.decode(raw)
        except ProtocolError as exc:
            return None, self._undecodable(raw, exc, now)
        except _DECODE_BUGS as exc:
            log.exception("decoder failed on cmd 0x%02X", raw.command)
            return None, self._undecodable(raw, ProtocolError(f"decoder failed: {exc!r}", 24, "data"), now)
        return frame, self.receive_frame(frame, now)


class _Link(asyncio.Protocol):
    """The asyncio protocol of one connection: hands bytes and link events to the server (no task, no
    per-read timeout: session deadlines live in the server's one heap)."""

    def __init__(self, server: PlatformServer) -> None:
        self.server = server
        self.conn: _Conn | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn = self.server._opened(transport)  # type: ignore[arg-type]  # a stream transport (uvloop's
        # is not an asyncio.Transport subclass)

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.server._received(self.conn, data)

    def eof_received(self) -> bool | None:
        return None  # close: the terminal is gone

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.server._lost(self.conn, exc)

    def pause_writing(self) -> None:  # the peer does not read: stop reading it too (back-pressure)
        if self.conn is not None and not self.conn.transport.is_closing():
            self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.conn is not None and not self.conn.transport.is_closing():
            self.conn.transport.resume_reading()


@dataclass(eq=False)
class _Conn:
    id: int
    session: RecordingSession
    transport: asyncio.Transport
    codec: _ReplyCodec
    peer: str
    framer: wire.Framer = field(default_factory=wire.Framer)
    closing: bool = False
    ended: bool = False  # connection_lost handled
    deadline: float | None = None  # time of this connection's live entry in the server's deadline heap
    last_rx: float | None = None
    pending: list[Violation] = field(default_factory=list)
    out: list[bytes] = field(default_factory=list)  # replies held until their frames are committed
    downlinks: dict[tuple[int, datetime], int] = field(default_factory=dict)


def _violation_kind(ev: Event) -> Violation | None:
    if isinstance(ev, ProtocolViolation):
        reason = ev.reason
        if ev.field == "bcc":
            return None  # classified from the raw bytes (checks.bad_bcc)
        if (ev.field or "").endswith("length") or "truncated" in reason or "length" in reason:
            kind = "bad_length"
        elif "another VIN" in reason or "matches no pending" in reason:
            kind = "protocol"
        else:
            kind = "undecodable"
        where = f" at offset {ev.offset}" if ev.offset is not None else ""
        return Violation(kind, f"{reason} ({ev.field or '?'}{where})")
    if isinstance(ev, FrameIgnored):
        kind = "before_login" if "before login" in ev.reason else "ignored"
        return Violation(kind, f"cmd 0x{ev.command:02X}: {ev.reason}")
    if isinstance(ev, ReportRefused) and ev.reason == "signature":
        return Violation("signature", "2025 signature missing or not valid")
    return None


class PlatformServer:
    """The asyncio server; ``start()`` then ``serve(seconds)`` (or ``stop()``)."""

    def __init__(self, config: ServerConfig, wallclock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.wallclock = wallclock or (lambda: datetime.now(UTC))
        self.db = PlatformDB(config.db_path)
        self.states: dict[str, VinState] = {}
        self.windows = WindowTracker(self.db, config.limits)
        # the fast lane checks everything the full path does except the optional info-type rule
        self._fast_lane = config.fast_lane and not config.limits.require_info_types
        self.fast_lane_reports = 0  # reports the fast lane took (the rest took the full path)
        self.online: dict[str, _Conn] = {}
        self.conns: set[_Conn] = set()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._poller: asyncio.Task[None] | None = None
        self._deadlines: list[tuple[float, int, _Conn]] = []  # (deadline, conn id, conn): a lazy heap
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._all_closed: asyncio.Event | None = None
        self.port: int = config.port
        self._acks_waiting: set[_Conn] = set()  # connections whose replies wait for the group commit
        self._commit_handle: asyncio.TimerHandle | None = None

    # ---- lifecycle

    def _ssl(self) -> ssl.SSLContext | None:
        c = self.config
        if c.tls_cert is None:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(c.tls_cert, c.tls_key)
            if c.tls_client_ca is not None:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(c.tls_client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS material: {exc}", key="tls") from exc
        return ctx

    async def start(self) -> None:
        """Bind and start accepting; ``self.port`` is the bound port."""
        try:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: _Link(self), self.config.host, self.config.port,
                                                    ssl=self._ssl())
        except OSError as exc:
            from agent.errors import TransportError

            raise TransportError(f"cannot listen on {self.config.host}:{self.config.port}: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self.db.start_checkpointer(fsync=self.config.fsync)
        self._poller = asyncio.create_task(self._poll_commands())
        log.info("platform listening on %s:%d", self.config.host, self.port)

    async def serve(self, seconds: float | None = None) -> None:
        """Run until ``seconds`` elapsed (None: forever), then stop."""
        try:
            if seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(seconds)
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Close the listener and every connection, commit the database."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._server is not None:
            self._server.close()
            self._server = None
        self._all_closed = asyncio.Event()
        for conn in list(self.conns):
            conn.closing = True
            conn.transport.close()
        if self.conns:  # let the links record their ends (bounded: a TLS peer may never answer the close)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_closed.wait(), CLOSE_TIMEOUT + 1.0)
        for conn in list(self.conns):
            conn.transport.abort()
            self._lost(conn, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._commit_handle is not None:
            self._commit_handle.cancel()
            self._commit_handle = None
        self._group_commit()
        self.db.stop_checkpointer()

    # ---- group commit

    def _commit_soon(self, conn: _Conn | None = None) -> None:
        """Commit within ``GROUP_COMMIT_S`` together with every other connection's frames, then send
        ``conn``'s replies: one SQLite transaction for many frames, and still no ack before its frame is
        stored."""
        if conn is not None:
            self._acks_waiting.add(conn)
        if self._commit_handle is None:
            self._commit_handle = asyncio.get_running_loop().call_later(GROUP_COMMIT_S, self._group_commit)

    def _group_commit(self) -> None:
        self._commit_handle = None
        try:
            self.db.commit()
        except StoreError as exc:  # nothing is acknowledged; the terminals resend (or reissue)
            log.error("commit failed, replies held back: %s", exc)
            return
        waiting, self._acks_waiting = self._acks_waiting, set()
        for conn in waiting:
            self._write_out(conn)

    def _commit_now(self, conn: _Conn) -> None:
        """Commit and send ``conn``'s replies at once (its link is about to close)."""
        self._acks_waiting.discard(conn)
        self.db.commit()
        self._write_out(conn)

    # ---- per connection

    def _state(self, vin: str) -> VinState:
        state = self.states.get(vin)
        if state is None:
            memory = self.config.limits.duplicate_memory
            state = VinState(realtime_times=checks.SecondSet(memory))
            for text in self.db.realtime_times(vin, limit=int(memory) + 1):
                state.realtime_times.add(datetime.fromisoformat(text))
            self.states[vin] = state
        return state

    def _authorize(self, conn: _Conn, frame: Frame) -> ResponseFlag | None:
        vin = frame.vin
        if self.config.vins is not None and vin not in self.config.vins:
            conn.pending.append(Violation("unknown_vin", f"VIN {vin!r} is not registered"))
            return ResponseFlag.VIN_NOT_EXIST if frame.edition == Edition.E2025 else ResponseFlag.ERROR
        other = self.online.get(vin)
        if other is not None and other is not conn and not other.closing:
            conn.pending.append(Violation("duplicate_vin", f"VIN {vin} logged in again while connection "
                                                           f"{other.id} ({other.peer}) is online"))
            if self.config.duplicate_vin == "refuse":
                return ResponseFlag.VIN_DUPLICATE
            self._dispatch(other, other.session.close("duplicate_vin"), None, None)
        return ResponseFlag.SUCCESS

    def _new_session(self, conn_id: int, transport: asyncio.Transport, peer: str) -> _Conn:
        c = self.config
        codec = _ReplyCodec(c.edition_reply)
        pconf = PlatformConfig(
            response_form=c.ack, before_login=c.before_login, reply_realtime_success=c.reply_realtime,
            downlink_retry_interval=c.downlink_retry_interval, heartbeat_interval=c.heartbeat_interval,
            idle_factor=c.idle_factor,
        )
        holder: list[_Conn] = []
        session = RecordingSession(pconf, wallclock=self.wallclock,
                                   authorize_login=lambda f: self._authorize(holder[0], f), codec=codec)
        session.replies = codec
        conn = _Conn(conn_id, session, transport, codec, peer)
        holder.append(conn)
        return conn

    def _opened(self, transport: asyncio.Transport) -> _Conn:
        """A terminal connected (TLS: after the handshake)."""
        peer = str(transport.get_extra_info("peername"))
        conn = self._new_session(next(self._ids), transport, peer)
        self.conns.add(conn)
        conn.session.connection_made(asyncio.get_running_loop().time())
        self._schedule(conn)
        log.info("connection %d from %s", conn.id, peer)
        return conn

    def _received(self, conn: _Conn, data: bytes) -> None:
        """Bytes from a terminal: frame, process and store them; replies wait for the group commit."""
        if conn.closing or conn.ended:
            return
        now = asyncio.get_running_loop().time()
        try:
            for raw in conn.framer.feed(data):
                self._process(conn, raw, now)
            if conn.closing:  # e.g. the logout reply must go out before the link closes
                self._commit_now(conn)
            else:  # acknowledgements only once their frames are in the database
                self._commit_soon(conn)
            self._send(conn)
        except Exception:  # a bug must cost this connection only, never the server: log it loudly
            log.exception("connection %d failed", conn.id)
            conn.closing = True
            conn.transport.abort()

    def _lost(self, conn: _Conn, exc: Exception | None) -> None:
        """The link is gone: store and answer what it sent, record the end, fail its open downlinks."""
        if conn.ended:
            return
        conn.ended = True
        if exc is not None:
            log.info("connection %d: %s", conn.id, exc)
        now = asyncio.get_running_loop().time()
        try:
            self._commit_now(conn)  # what this link sent is stored (and answered, if it still can be)
        except StoreError as err:
            log.error("connection %d: commit failed: %s", conn.id, err)
        self._dispatch(conn, conn.session.connection_lost(now), None, None)
        if conn.session.vin is not None and self.online.get(conn.session.vin) is conn:
            del self.online[conn.session.vin]
        for key, cmd_id in conn.downlinks.items():
            reason = f"link closed before the reply to 0x{key[0]:02X}"
            self.db.update_command(cmd_id, "failed", {"reason": reason})
        try:
            self.db.commit()
        except StoreError as err:
            log.error("connection %d: commit failed: %s", conn.id, err)
        self.conns.discard(conn)
        self._acks_waiting.discard(conn)
        conn.deadline = None
        log.info("connection %d closed", conn.id)
        if not self.conns and self._all_closed is not None:
            self._all_closed.set()

    # ---- session deadlines (idle timeout, downlink resends): one heap for every connection

    def _schedule(self, conn: _Conn) -> None:
        """Make sure the heap holds an entry no later than ``conn``'s next deadline. Entries are lazy: a
        frame that moves the idle deadline later costs nothing; the entry is re-checked when it is due."""
        deadline = conn.session.next_deadline()
        if deadline is None or conn.ended:
            return
        if conn.deadline is not None and conn.deadline <= deadline:
            return
        conn.deadline = deadline
        heapq.heappush(self._deadlines, (deadline, conn.id, conn))
        if self._timer is None or deadline < self._timer_at:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._on_deadlines)

    def _on_deadlines(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        heap = self._deadlines
        due: list[_Conn] = []
        while heap and heap[0][0] <= now:
            when, _id, conn = heapq.heappop(heap)
            if conn.deadline == when and not conn.ended:
                conn.deadline = None
                due.append(conn)
        for conn in due:
            try:
                deadline = conn.session.next_deadline()
                if deadline is not None and deadline <= now:
                    self._dispatch(conn, conn.session.tick(now), None, None)
                    self._commit_soon()
                    self._send(conn)
                self._schedule(conn)
            except Exception:  # as in _received: one connection's bug never stops the others' timers
                log.exception("connection %d failed", conn.id)
                conn.closing = True
                conn.transport.abort()
        if heap and self._timer is None:
            self._arm(heap[0][0])

    @staticmethod
    def _write_out(conn: _Conn) -> None:
        if conn.out:
            data = b"".join(conn.out)
            conn.out.clear()
            if not conn.transport.is_closing():
                conn.transport.write(data)

    @staticmethod
    def _send(conn: _Conn) -> None:
        """Write what the session produced outside a frame's reply (downlink resends) at once."""
        data = conn.session.data_to_send()
        if data and not conn.transport.is_closing():
            conn.transport.write(data)

    def _process(self, conn: _Conn, raw: wire.RawFrame, now: float) -> None:
        """Feed one raw frame to the session, check it, store it with its reply and violations."""
        received = self.wallclock().astimezone(UTC)
        vin = raw.vin.rstrip(b"\x00").decode("latin-1")
        keys = self.config.keys.get(vin)
        if keys is not None:
            conn.codec.cipher = keys.cipher
            conn.session.verifier = keys.verifier
        violations: list[Violation] = []
        if conn.last_rx is not None and conn.session.vin is not None:
            violations += checks.check_silence(now - conn.last_rx, self.config.limits)
        conn.last_rx = now
        if raw.command in _REPORTS and raw.response == wire.FLAG_COMMAND and raw.encryption == _PLAIN \
                and raw.bcc_ok and self._fast_lane and conn.codec.options is DEFAULT:
            edition = _EDITION[raw.edition]
            facts = fastlane.scan(edition, raw.data, self.config.limits)
            if facts is not None and conn.session.accept_report(edition, raw.command, vin, facts.time, now):
                self.fast_lane_reports += 1
                self._store_report(conn, raw, edition, vin, facts, received, violations)
                return
        frame, events = conn.session.receive_raw(raw, now)
        if not raw.bcc_ok:
            violations.append(checks.bad_bcc(raw.raw))
        reply = conn.session.data_to_send()
        if reply:
            conn.out.append(reply)
        violations += self._dispatch(conn, events, frame, received)
        violations += conn.pending
        conn.pending = []
        collected = getattr(frame.body, "time", None) if frame is not None else None
        if not isinstance(collected, datetime):
            collected = None
        level = checks.alarm_level(frame.body) if frame and isinstance(frame.body, RealtimeReport) else None
        decoded: Any = None
        if frame is not None and (self.config.store_json or raw.encryption != Encryption.NONE):
            decoded = self._json(frame, raw)
        frame_id = self.db.add_frame(
            conn=conn.id, received_at=received, vin=vin, edition=raw.edition, command=raw.command,
            response=raw.response, collected=collected, alarm_level=level, raw=raw.raw, reply=reply or None,
            decodable=frame is not None, decoded=decoded)
        for v in violations:
            log.info("violation %s (%s): %s", v.kind, vin, v.reason)
            self.db.add_violation(frame_id, vin, v.kind, v.reason, received)
        if frame is not None:
            self._track_windows(vin, frame_id, frame, events, level, received)

    def _store_report(self, conn: _Conn, raw: wire.RawFrame, edition: Edition, vin: str,
                      facts: checks.ReportFacts, received: datetime, violations: list[Violation]) -> None:
        """The rest of ``_process`` for a report the fast lane found clean and the session accepted: the
        checks against the VIN's earlier reports, storage, windows — what the full path does for it."""
        reply = conn.session.data_to_send()
        if reply:
            conn.out.append(reply)
        limits = self.config.limits
        violations += checks.check_time(raw.command, facts.time, received, edition, limits)
        violations += checks.check_report_state(self._state(vin), raw.command, facts, limits)
        violations += conn.pending
        conn.pending = []
        decoded: Any = None
        if self.config.store_json:
            try:
                decoded = self._json(conn.codec.decode(raw), raw)
            except (ProtocolError, *_DECODE_BUGS) as exc:  # the fast lane parsed it: a decoder bug
                log.error("cannot decode a report the fast lane accepted: %r", exc)
        frame_id = self.db.add_frame(
            conn=conn.id, received_at=received, vin=vin, edition=raw.edition, command=raw.command,
            response=raw.response, collected=facts.time, alarm_level=facts.level, raw=raw.raw,
            reply=reply or None, decodable=True, decoded=decoded)
        for v in violations:
            log.info("violation %s (%s): %s", v.kind, vin, v.reason)
            self.db.add_violation(frame_id, vin, v.kind, v.reason, received)
        self.windows.on_report(vin, frame_id, edition, facts.time, facts.power, facts.level, received)

    @staticmethod
    def _json(frame: Frame, raw: wire.RawFrame) -> Any:
        try:
            return frame_to_json(frame, length=len(raw.data))
        except (TboxError, ValueError, TypeError) as exc:
            log.warning("cannot render frame as JSON: %s", exc)
            return None

    def _track_windows(self, vin: str, frame_id: int, frame: Frame, events: list[Event], level: int | None,
                       received: datetime) -> None:
        """Feed the alarm / post-HV-off windows (after the frame is stored: decisions query the DB)."""
        for ev in events:
            if ev.__class__ is ReportReceived or isinstance(ev, ReportReceived):
                self.windows.on_report(ev.vin, frame_id, frame.edition, ev.report.time,
                                       checks.power_on(ev.report), level, received)
            elif isinstance(ev, VehicleLoggedOut):
                t = getattr(frame.body, "time", None)
                self.windows.on_logout(ev.vin, t if isinstance(t, datetime) else received, received)

    def _dispatch(self, conn: _Conn, events: list[Event], frame: Frame | None,
                  received: datetime | None) -> list[Violation]:
        """Act on session events: registry, checks, downlink results, closing. Returns violations."""
        out: list[Violation] = []
        limits = self.config.limits
        for ev in events:
            if ev.__class__ is ReportReceived:  # the common case first (no violation kind of its own)
                if received is not None and frame is not None:
                    rr: ReportReceived = ev
                    out += checks.check_time(int(rr.command), rr.report.time, received, frame.edition, limits)
                    out += checks.check_report(self._state(rr.vin), int(rr.command), frame.edition, rr.report,
                                               limits)
                continue
            v = _violation_kind(ev)
            if v is not None:
                out.append(v)
            if isinstance(ev, VehicleLoggedIn):
                self.online[ev.vin] = conn
                self.windows.logged_in(ev.vin, received or self.wallclock())
                login_time = getattr(ev.login, "time", None) or received
                if isinstance(login_time, datetime):
                    out += checks.check_login(self._state(ev.vin), login_time, ev.serial)
                out += checks.check_login_body(ev.login)
            elif isinstance(ev, LoginRefused) and ev.flag is None and frame is not None:
                out.append(Violation("login_ignored", "login frame without a valid login body"))
            elif isinstance(ev, VehicleLoggedOut):
                out += checks.check_logout(self._state(ev.vin), ev.serial)
            elif isinstance(ev, ReportReceived) and received is not None and frame is not None:
                state = self._state(ev.vin)
                out += checks.check_time(int(ev.command), ev.report.time, received, frame.edition, limits)
                out += checks.check_report(state, int(ev.command), frame.edition, ev.report, limits)
            elif isinstance(ev, SessionEnded) and ev.reason == "idle":
                vin = conn.session.vin or "?"
                self.db.add_violation(None, vin, "heartbeat_timeout",
                                      f"no frame for {conn.session.idle_timeout:.0f} s: session dropped",
                                      self.wallclock())
            elif isinstance(ev, DownlinkReplied):
                cmd_id = conn.downlinks.pop((int(ev.command), ev.time), None)
                if cmd_id is not None:
                    body = _jsonable(frame, ev.body)
                    status = "replied"
                    self.db.update_command(cmd_id, status, {"flag": int(ev.flag), "body": body})
            elif isinstance(ev, DownlinkAbandoned):
                cmd_id = conn.downlinks.pop((int(ev.command), ev.time), None)
                if cmd_id is not None:
                    self.db.update_command(cmd_id, "abandoned", {"attempts": ev.attempts})
            elif isinstance(ev, CloseRequested):
                conn.closing = True
                self.db.commit()
                self._write_out(conn)
                data = conn.session.data_to_send()
                if data and not conn.transport.is_closing():
                    conn.transport.write(data)
                conn.transport.close()
        if frame is not None and received is not None and frame.response == ResponseFlag.COMMAND \
                and int(frame.command) not in (Command.REALTIME, Command.REISSUE):
            t = getattr(frame.body, "time", None)
            if isinstance(t, datetime):  # login, logout…: only a time ahead of the server clock counts
                out += checks.check_time(int(frame.command), t, received, frame.edition, limits)
        return out

    # ---- downlink

    async def _poll_commands(self) -> None:
        while True:
            try:
                self._run_commands()
                self.windows.on_tick(set(self.online), self.wallclock())
                self.db.commit()
                for conn in list(self.conns):  # write only: a peer that does not read must not stall this
                    self._send(conn)
            except (TboxError, ConnectionError, OSError) as exc:
                log.warning("downlink poll: %s", exc)
            await asyncio.sleep(POLL_INTERVAL)

    def _run_commands(self) -> None:
        loop = asyncio.get_running_loop()
        for cmd in self.db.pending_commands():
            conn = self.online.get(cmd.vin)
            if conn is None or conn.closing:
                self.db.update_command(cmd.id, "failed", {"reason": f"VIN {cmd.vin} is not online"})
                continue
            try:
                now = loop.time()
                if cmd.kind == "query":
                    t = conn.session.query([int(x) for x in cmd.args["ids"]], now)
                    command = Command.PARAMETER_QUERY
                elif cmd.kind == "set":
                    items = [Parameter(int(i), v) for i, v in cmd.args["items"]]
                    t = conn.session.set_parameters(items, now)
                    command = Command.PARAMETER_SET
                elif cmd.kind == "control":
                    params = bytes.fromhex(cmd.args.get("params", ""))
                    t = conn.session.control(_control_id(int(cmd.args["id"])), params, now)
                    command = Command.TERMINAL_CONTROL
                else:
                    self.db.update_command(cmd.id, "failed", {"reason": f"unknown kind {cmd.kind!r}"})
                    continue
            except (TboxError, KeyError, ValueError, TypeError) as exc:
                self.db.update_command(cmd.id, "failed", {"reason": str(exc)})
                continue
            conn.downlinks[(int(command), t)] = cmd.id
            self._schedule(conn)  # its resend may be due before the connection's idle deadline
            self.db.update_command(cmd.id, "sent", {"time": t.isoformat()})
        self.db.commit()


def _control_id(value: int) -> ControlId | int:
    try:
        return ControlId(value)
    except ValueError:
        return value


def _jsonable(frame: Frame | None, body: object) -> Any:
    if frame is None:
        return None
    try:
        return frame_to_json(frame).get("data")
    except (TboxError, ValueError, TypeError):
        return repr(body)


def load_vins(path: str) -> frozenset[str]:
    """VIN allow-list: one VIN per line, blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc}", file=path) from exc
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(line for line in lines if line)


def load_keys(path: str) -> dict[str, VinKeys]:
    """Per-VIN keys from a JSON file: ``{"VIN": {"encryption": "aes"|"sm4", "key": "hex",
    "signature": "rsa"|"sm2"|"ecc", "public_key": "file.pem"}}`` (every entry optional)."""
    import json

    from agent.protocol import crypto
    from agent.protocol.model import SignatureType

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read keys: {exc}", file=path) from exc
    if not isinstance(data, dict):
        raise ConfigError("must be a JSON object of VIN → keys", file=path)
    out: dict[str, VinKeys] = {}
    for vin, entry in data.items():
        try:
            cipher: Cipher | None = None
            verifier: Verifier | None = None
            if "encryption" in entry:
                enc = {"aes": Encryption.AES, "sm4": Encryption.SM4}[str(entry["encryption"]).lower()]
                cipher = crypto.cipher_for(enc, key=bytes.fromhex(entry["key"]))
            if "public_key" in entry:
                sig = SignatureType[str(entry.get("signature", "rsa")).upper()]
                pem = (Path(path).parent / entry["public_key"]).read_bytes()
                verifier = crypto.verifier_for(sig, crypto.load_public_key(pem, sig))
        except (KeyError, ValueError, OSError, TboxError) as exc:
            raise ConfigError(f"bad keys entry: {exc}", file=path, key=vin) from exc
        out[vin] = VinKeys(cipher, verifier)
    return out


async def run_server(config: ServerConfig, seconds: float | None = None,
                     ready: Callable[[PlatformServer], None] | None = None) -> PlatformServer:
    """Start a server, call ``ready(server)``, serve for ``seconds`` (None: until cancelled), stop."""
    server = PlatformServer(config)
    await server.start()
    if ready is not None:
        ready(server)
    await server.serve(seconds)
    return server


__all__ = ["PlatformServer", "RecordingSession", "ServerConfig", "VinKeys", "load_keys", "load_vins",
           "run_server"]
