"""TCP (optionally TLS) uplink: a thin asyncio adapter that drives the sans-I/O ``TerminalSession``.

Per link: connect (TLS: server verification against a CA file — only that CA, i.e. pinned — optional
client certificate and optional SHA-256 pin of the server certificate), ``connection_made`` (login),
feed received bytes to ``receive_data``, call ``tick`` at ``next_deadline()``, write ``data_to_send()``.
The session's rules decide retries: login retry/backoff, heartbeat death (``ReconnectRequested``, which
also catches half-open TCP), resends after an error reply. TCP connect failures back off exponentially
between ``reconnect_min_s`` and ``reconnect_max_s``.

Outbox semantics (``agent.store.Outbox``): ``submit`` stores a record first, then, if the session is
logged in and the record is realtime, sends it at once as 0x02. Everything else pending — collected
while the link was down, not confirmed before a link loss, alarm pre-window records — is drained as
reissue (0x03) in (collection time, id) order, at ``reissue_rate`` frames/s, between realtime frames.
``UploadDelivered`` deletes the record; ``UploadAbandoned`` puts it on hold for ``hold_abandoned_s``;
``UploadUnconfirmed`` leaves it in the backlog. See docs/uplink.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, ProtocolError, StoreError
from agent.protocol import wire
from agent.protocol.model import (
    Command,
    ControlId,
    Edition,
    Encryption,
    Frame,
    Parameter,
    ParameterId,
    RealtimeReport,
    Special,
    TerminalControl,
)
from agent.protocol.session import (
    CloseRequested,
    ControlRequested,
    DefaultCodec,
    Event,
    KeyExchangeReceived,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
    ParametersChanged,
    PlatformChangeRequested,
    ReconnectRequested,
    SessionStateError,
    TerminalHandler,
    TerminalSession,
    TimeCalibrated,
    UploadAbandoned,
    UploadDelivered,
    UploadRejected,
    UploadUnconfirmed,
)
from agent.store import Outbox, OutboxRecord
from agent.uplink.common import UplinkBase

log = logging.getLogger(__name__)

ParamValue = int | str | bytes | Special


# =========================================================================== framing stored records


@dataclass(frozen=True)
class StoredReport(RealtimeReport):
    """A realtime report carried as its stored, already encoded data unit (``blocks`` stay empty)."""

    data_unit: bytes = field(default=b"", repr=False)


class OutboxCodec(DefaultCodec):
    """``DefaultCodec`` that frames a ``StoredReport``'s data unit as is (encrypted if a cipher is set)."""

    def encode(self, frame: Frame) -> bytes:
        body = frame.body
        if not isinstance(body, StoredReport):
            return super().encode(frame)
        data = body.data_unit
        enc = int(frame.encryption)
        if self.cipher is not None and enc == Encryption.NONE:
            enc = int(self.cipher.encryption)
            data = self.cipher.encrypt(data)
        vin = frame.vin.encode("latin-1").ljust(17, b"\x00")
        return wire.build_frame(int(frame.edition), int(frame.command), int(frame.response), vin, enc, data)


def stored_report(record: OutboxRecord) -> StoredReport:
    """The session-level report of a stored record."""
    return StoredReport(record.collected_at, data_unit=record.data)


# =========================================================================== settings


@dataclass(frozen=True)
class TlsConfig:
    """TLS of the uplink. ``ca_file``: the only trusted CA (None: the system store). ``cert_file`` /
    ``key_file``: client certificate (mutual TLS). ``pin_sha256``: hex SHA-256 of the server's DER
    certificate, checked after the handshake. ``server_hostname``: name to verify (default: host)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    pin_sha256: str | None = None
    server_hostname: str | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """A client ``SSLContext`` (TLS 1.2+, certificate required)."""
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cafile=str(self.ca_file) if self.ca_file else None)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.check_hostname = self.check_hostname
            if self.cert_file is not None:
                ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"TLS setup failed: {exc}", key="uplink") from exc
        return ctx


@dataclass(frozen=True)
class UplinkConfig:
    """Where and how fast (see docs/uplink.md for the defaults' reasons)."""

    host: str
    port: int
    tls: TlsConfig | None = None
    reissue_rate: float = 50.0  # frames/s of backlog drained between realtime frames
    max_inflight: int = 3000  # reissues awaiting their silent confirmation (session tracks 4096)
    hold_abandoned_s: float = 600.0  # an abandoned record is offered again after this long
    connect_timeout_s: float = 10.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    logout_wait_s: float = 5.0  # at shutdown: wait this long at most for the logout reply
    #: a silently "delivered" upload is deleted only once a later platform frame proves the link alive
    #: (half-open TCP), or after this long without a link loss
    proof_timeout_s: float = 120.0
    #: send a time calibration (0x08) after every login and compare the platform's time with ours
    calibrate_time: bool = False
    clock_max_offset_s: float = 2.0  # a larger difference is logged as a skewed clock


@dataclass
class UplinkStats:
    """Counters (``link`` is the current state's name)."""

    link: str = "down"
    connects: int = 0
    connect_failures: int = 0
    logins: int = 0
    login_failures: int = 0
    realtime_sent: int = 0
    reissue_sent: int = 0
    delivered: int = 0
    acknowledged: int = 0
    rejected: int = 0
    abandoned: int = 0
    unconfirmed: int = 0
    unproven: int = 0  # silent deliveries put back in the backlog: no platform frame proved the link
    #: platform time minus ours at the last 0x08 reply (s; the wire carries whole seconds), None: never
    clock_offset_s: float | None = None
    reconnects: dict[str, int] = field(default_factory=dict)


# =========================================================================== downlink policy

#: (lo, hi) for integer parameters (Table B.12; 2025 Table B.8 narrows 0x02 to 1-30 s)
_RANGES: dict[int, tuple[int, int]] = {
    ParameterId.LOCAL_STORAGE_PERIOD: (1, 60000),
    ParameterId.REPORT_PERIOD: (1, 600),
    ParameterId.ALARM_REPORT_PERIOD: (1, 60000),
    ParameterId.PLATFORM_DOMAIN_LENGTH: (0, 255),
    ParameterId.PLATFORM_PORT: (1, 65535),
    ParameterId.HEARTBEAT_PERIOD: (1, 240),
    ParameterId.TERMINAL_RESPONSE_TIMEOUT: (1, 600),
    ParameterId.PLATFORM_RESPONSE_TIMEOUT: (1, 600),
    ParameterId.LOGIN_RETRY_INTERVAL: (1, 240),
    ParameterId.PUBLIC_DOMAIN_LENGTH: (0, 255),
    ParameterId.PUBLIC_PORT: (1, 65535),
    ParameterId.SAMPLING_MONITORING: (1, 2),
}
_TEXT = frozenset({ParameterId.PLATFORM_DOMAIN, ParameterId.PUBLIC_DOMAIN, ParameterId.HARDWARE_VERSION,
                   ParameterId.FIRMWARE_VERSION})


class AgentHandler(TerminalHandler):
    """Answers 0x80 from the live parameter values, validates every item of a 0x81 set."""

    def __init__(self, values: dict[int, ParamValue], edition: Edition = Edition.E2016, *,
                 upgrade_check: Callable[[object], bool] | None = None) -> None:
        self.values = values
        self.edition = edition
        #: whether a remote upgrade with these parameters can be attempted (None: upgrades not configured)
        self.upgrade_check = upgrade_check

    def query_parameters(self, ids: tuple[int, ...]) -> Sequence[Parameter] | None:
        if any(i not in self.values for i in ids):
            return None  # a bad query: stay silent (spec §6)
        return [Parameter(_pid(i), self.values[i]) for i in ids]

    def validate_parameters(self, items: tuple[Parameter, ...]) -> bool:
        for p in items:
            pid, value = int(p.id), p.value
            if pid in _TEXT:
                if not isinstance(value, str):
                    return False
                continue
            bounds = _RANGES.get(pid)
            if bounds is None or not isinstance(value, int) or isinstance(value, bool):
                return False
            lo, hi = bounds
            if pid == ParameterId.REPORT_PERIOD and self.edition == Edition.E2025:
                hi = 30
            if not lo <= value <= hi:
                return False
        return True


    def validate_control(self, control: TerminalControl) -> bool:
        """Accept what the service can execute. A remote upgrade only when upgrades are configured (a
        public key to verify packages with) and its parameters are usable; the sampling link only when
        the public platform's address (0x0E/0x0F) is set. Anything else is ignored: no reply (spec §8)."""
        cid = int(control.command_id)
        if cid == ControlId.REMOTE_UPGRADE:
            return self.upgrade_check is not None and self.upgrade_check(control.params)
        if cid == ControlId.OPEN_SAMPLING_LINK:
            from agent.sampling import PublicPlatform

            return PublicPlatform.from_parameters(dict(self.values)) is not None
        return cid in _CONTROLS


#: terminal control commands the service executes
_CONTROLS = frozenset({ControlId.SHUTDOWN, ControlId.RESET, ControlId.FACTORY_RESET, ControlId.DISCONNECT,
                       ControlId.WARNING})


def _pid(i: int) -> ParameterId | int:
    try:
        return ParameterId(i)
    except ValueError:
        return i


# =========================================================================== the uplink


class TcpUplink(UplinkBase):
    """Runs one terminal's platform link over TCP/TLS until ``stop`` is set; see the module docstring.

    ``on_parameters(items)`` is called after an acknowledged 0x81 set was persisted (the service applies
    new report periods at once); ``on_control(event)`` for an acknowledged 0x82; ``on_event(event)`` sees
    every session event (status views, tests).
    """

    def __init__(
        self,
        session: TerminalSession,
        store: Outbox,
        config: UplinkConfig,
        *,
        handler: AgentHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_parameters: Callable[[tuple[Parameter, ...]], None] | None = None,
        on_control: Callable[[ControlRequested], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        super().__init__(
            session,
            store,
            handler=handler,
            clock=clock,
            on_parameters=on_parameters,
            on_control=on_control,
            on_event=on_event,
        )
        self.config = config
        self.stats = UplinkStats()
        self._writer: asyncio.StreamWriter | None = None
        self._inflight: dict[tuple[int, str, datetime], int] = {}  # session upload key -> record id
        self._inflight_ids: set[int] = set()
        self._unproven: list[tuple[float, int]] = []  # (silently delivered at, record id)
        self._link_done: asyncio.Event | None = None
        self._link_reason = ""
        self._wake: asyncio.Event | None = None
        self._online: asyncio.Event | None = None
        #: built once: bad TLS material is a ConfigError at construction, not a dead link later
        self._ssl = config.tls.context() if config.tls is not None else None
        self._pause_s = 0.0
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ records in

    def _can_send_realtime(self) -> bool:
        return self.session.logged_in and self._writer is not None

    def _wake_drain(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def reconnect(self, pause_s: float = 0.0) -> None:
        """Close the current link (after what is queued is written) and reconnect after ``pause_s``."""
        self._pause_s = pause_s
        self._end("control_disconnect" if pause_s > 0 else "control_reset")

    # ------------------------------------------------------------------ main loop

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, serve, reconnect, until ``stop`` is set; then log out and close."""
        self._wake = asyncio.Event()
        self._online = asyncio.Event()
        delay = self.config.reconnect_min_s
        while not stop.is_set():
            try:
                reader, writer = await self._connect()
            except (OSError, TimeoutError, ssl.SSLError, ssl.CertificateError) as exc:
                self.stats.connect_failures += 1
                log.warning("connect to %s:%d failed: %s; retry in %.1f s", self.config.host,
                            self.config.port, exc, delay)
                await _wait(stop, delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
                continue
            self.stats.connects += 1
            logins = self.stats.logins
            reason = await self._serve(reader, writer, stop)
            if self.stats.logins > logins:  # this link worked: the next one starts from the short delay
                delay = self.config.reconnect_min_s
            if self._pause_s > 0 and not stop.is_set():  # 0x82 "disconnect the data link"
                pause, self._pause_s = self._pause_s, 0.0
                log.info("link closed on the platform's request; reconnecting in %.0f s", pause)
                await _wait(stop, pause)
            elif reason in ("closed", "reset") and not stop.is_set():
                await _wait(stop, delay)
                delay = min(delay * 2, self.config.reconnect_max_s)
            else:
                delay = self.config.reconnect_min_s
        self.stats.link = "stopped"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        cfg = self.config
        ctx = self._ssl
        hostname = (cfg.tls.server_hostname or cfg.host) if cfg.tls is not None else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(cfg.host, cfg.port, ssl=ctx, server_hostname=hostname),
            cfg.connect_timeout_s,
        )
        if cfg.tls is not None and cfg.tls.pin_sha256:
            obj = writer.get_extra_info("ssl_object")
            der = obj.getpeercert(binary_form=True) if obj is not None else None
            digest = hashlib.sha256(der or b"").hexdigest()
            if digest != cfg.tls.pin_sha256.lower().replace(":", ""):
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
                raise ssl.SSLError("server certificate does not match the pinned SHA-256")
        return reader, writer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     stop: asyncio.Event) -> str:
        self._writer = writer
        self._link_done = asyncio.Event()
        self._link_reason = ""
        self.stats.link = "logging_in"
        self._handle(self.session.connection_made(self.clock()))
        if self.on_connected is not None:  # e.g. 2025 activation, right behind the login
            self.on_connected()
        self._flush_out()
        tasks = [asyncio.create_task(self._read_loop(reader)), asyncio.create_task(self._timer_loop()),
                 asyncio.create_task(self._drain_loop())]
        stop_wait = asyncio.create_task(stop.wait())
        done_wait = asyncio.create_task(self._link_done.wait())
        try:
            await asyncio.wait([stop_wait, done_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:  # a task that ended by itself is a bug: log it, recycle the link
                if t.done() and not t.cancelled() and t.exception() is not None:
                    log.error("uplink task failed; reconnecting", exc_info=t.exception())
                    self._end("internal_error")
            if stop.is_set() and not self._link_done.is_set():
                await self._logout()
        finally:
            every: list[asyncio.Task[Any]] = [*tasks, stop_wait, done_wait]
            for t in every:
                t.cancel()
            await asyncio.gather(*tasks, stop_wait, done_wait, return_exceptions=True)
            self._writer = None
            assert self._online is not None
            self._online.clear()
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            self._handle(self.session.connection_lost(self.clock()))
            self.session.data_to_send()  # nothing may leak into the next link
            for _, rid in self._unproven:  # never proven: back to the backlog, reissued later
                self._inflight_ids.discard(rid)
            self.stats.unproven += len(self._unproven)
            self._unproven.clear()
            self.stats.link = "down"
        reason = self._link_reason or ("stopped" if stop.is_set() else "closed")
        log.info("link ended: %s", reason)
        return reason

    async def _logout(self) -> None:
        if not self.session.logged_in:
            return
        self._handle(self.session.logout(self.clock()))
        self._flush_out()
        assert self._link_done is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._link_done.wait(), self.config.logout_wait_s)

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                data = await reader.read(65536)
            except (OSError, ssl.SSLError) as exc:
                log.warning("link read failed: %s", exc)
                self._end("reset")
                return
            if not data:
                self._end("closed")
                return
            self._handle(self.session.receive_data(data, self.clock()))
            # the platform is alive and answering: silent deliveries so far are proven (a heartbeat
            # reply has just proven the uploads written before it, see ClientTiming.barrier_after)
            self._prove()
            self._flush_out()

    async def _timer_loop(self) -> None:
        assert self._wake is not None
        while True:
            deadline = self.session.next_deadline()
            timeout = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            now = self.clock()
            while self._unproven and now - self._unproven[0][0] >= self.config.proof_timeout_s:
                _, rid = self._unproven.pop(0)
                self._inflight_ids.discard(rid)
                self.store.delivered(rid)
            self._handle(self.session.tick(now))
            self._flush_out()

    async def _drain_loop(self) -> None:
        """Send the backlog as reissue at ``reissue_rate``; rescans from the oldest when it runs dry."""
        assert self._online is not None and self._wake is not None
        rate = max(self.config.reissue_rate, 0.1)
        cursor: tuple[int, int] | None = None
        sent_in_pass = False
        tokens = 1.0
        last = self.clock()
        while True:
            await self._online.wait()
            if len(self._inflight) >= self.config.max_inflight:
                await asyncio.sleep(0.05)
                continue
            try:
                batch = self.store.backlog(cursor, limit=64)
            except StoreError as exc:
                log.error("reading the backlog failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                if not sent_in_pass:  # a whole pass found nothing to send: wait for news
                    await asyncio.sleep(0.2)
                cursor, sent_in_pass = None, False
                continue
            for rec in batch:
                if rec.id in self._inflight_ids:
                    cursor = rec.order
                    continue
                now = self.clock()
                tokens = min(max(rate * 0.05, 1.0), tokens + (now - last) * rate)
                last = now
                while tokens < 1.0:
                    await asyncio.sleep(max((1.0 - tokens) / rate, 0.002))
                    now = self.clock()
                    tokens += (now - last) * rate
                    last = now
                if not self.session.logged_in or self._writer is None or not self._send(rec, Command.REISSUE):
                    break
                tokens -= 1.0
                sent_in_pass = True
                cursor = rec.order
                writer = self._writer
                if writer is not None and writer.transport.get_write_buffer_size() > 256 * 1024:
                    with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
                        await writer.drain()

    # ------------------------------------------------------------------ sending and events

    def _send(self, rec: OutboxRecord, command: Command) -> bool:
        key = (int(command), rec.vin, rec.collected_at)
        if key in self._inflight:
            return True  # a record with the same upload key is pending: the next pass takes this one
        try:
            report = stored_report(rec)
            if command == Command.REALTIME:
                events = self.session.send_realtime(report, self.clock())
            else:
                events = self.session.send_reissue(report, self.clock())
        except SessionStateError:
            return False
        except ProtocolError as exc:  # cannot be framed (e.g. too long for the cipher): never resent blindly
            log.error("record %d cannot be sent (%s); held", rec.id, exc)
            self.store.hold(rec.id, datetime.now(UTC).timestamp() + self.config.hold_abandoned_s)
            return True
        self._inflight[key] = rec.id
        self._inflight_ids.add(rec.id)
        if command == Command.REALTIME:
            self.stats.realtime_sent += 1
        else:
            self.stats.reissue_sent += 1
        self._handle(events)
        self._flush_out()
        return True

    def _flush_out(self) -> None:
        data = self.session.data_to_send()
        if data and self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def _prove(self) -> None:
        proven, self._unproven = self._unproven, []
        for _, rid in proven:
            self._inflight_ids.discard(rid)
            self.store.delivered(rid)

    def _end(self, reason: str) -> None:
        if self._link_done is not None and not self._link_done.is_set():
            self._link_reason = reason
            self._link_done.set()

    def _settle(self, command: int, vin: str, t: datetime) -> int | None:
        rid = self._inflight.pop((int(command), vin or self.session.vin, t), None)
        if rid is not None:
            self._inflight_ids.discard(rid)
        return rid

    def _handle(self, events: Iterable[Event]) -> None:
        for ev in events:
            if self.on_event is not None:
                self.on_event(ev)
            if isinstance(ev, UploadDelivered):
                rid = self._settle(int(ev.command), ev.vin, ev.time)
                self.stats.delivered += 1
                self.stats.acknowledged += int(ev.acknowledged)
                if rid is None:
                    continue
                if ev.acknowledged or self._writer is None:
                    self.store.delivered(rid)  # acknowledged, or confirmed by an acknowledged logout
                else:
                    self._inflight_ids.add(rid)
                    self._unproven.append((self.clock(), rid))
            elif isinstance(ev, UploadRejected):
                self.stats.rejected += 1
            elif isinstance(ev, UploadAbandoned):
                rid = self._settle(int(ev.command), ev.vin, ev.time)
                self.stats.abandoned += 1
                if rid is not None:
                    self.store.hold(rid, datetime.now(UTC).timestamp() + self.config.hold_abandoned_s)
                    log.warning("record %d abandoned after %d errors; kept for a later reissue", rid,
                                ev.failures)
            elif isinstance(ev, UploadUnconfirmed):
                self._settle(int(ev.command), ev.vin, ev.time)
                self.stats.unconfirmed += 1
            elif isinstance(ev, LoginSucceeded):
                self.stats.logins += 1
                self.stats.link = "online"
                if self._online is not None:
                    self._online.set()
                if self.config.calibrate_time:
                    self._handle(self.session.request_time_calibration(self.clock()))
            elif isinstance(ev, LoginFailed):
                self.stats.login_failures += 1
                self.stats.link = "backoff" if ev.backoff else "login_wait"
            elif isinstance(ev, ReconnectRequested):
                self.stats.reconnects[ev.reason] = self.stats.reconnects.get(ev.reason, 0) + 1
                log.warning("reconnecting: %s", ev.reason)
                if self._online is not None:
                    self._online.clear()
                self._end(ev.reason)
            elif isinstance(ev, CloseRequested):
                self._end(ev.reason)
            elif isinstance(ev, LoggedOut):
                self.stats.link = "logged_out"
                if ev.acknowledged:
                    self._prove()
            elif isinstance(ev, ParametersChanged):
                self._parameters_changed(ev.items)
            elif isinstance(ev, PlatformChangeRequested):
                task = asyncio.get_running_loop().create_task(self._change_platform(ev.items))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            elif isinstance(ev, ControlRequested):
                if self.on_control is not None:
                    self.on_control(ev)
                else:
                    log.warning("terminal control 0x%02X acknowledged but no handler is wired",
                                int(ev.command_id))
            elif isinstance(ev, KeyExchangeReceived):
                self._key_exchange(ev)
            elif isinstance(ev, TimeCalibrated):
                self.stats.clock_offset_s = self._clock_offset(ev, self.config.clock_max_offset_s)

    async def _change_platform(self, items: tuple[Parameter, ...]) -> None:
        """Spec §6: log in to the new platform; on success move there and persist the address, on
        failure keep the old one and answer the old platform "modification error"."""
        values = {int(p.id): p.value for p in items}
        host = values.get(ParameterId.PLATFORM_DOMAIN, self.config.host)
        port = values.get(ParameterId.PLATFORM_PORT, self.config.port)
        ok = isinstance(host, str) and isinstance(port, int) and bool(host) and await self._probe_login(
            host, port)
        now = self.clock()
        if not ok:
            log.warning("login to the new platform failed: keeping the old address")
            try:
                self._handle(self.session.report_platform_change(False, now))
            except SessionStateError:
                log.warning("the old platform link is gone: the modification error cannot be sent")
            self._flush_out()
            return
        assert isinstance(host, str) and isinstance(port, int)
        self._handle(self.session.report_platform_change(True, now))
        self.config = dataclasses.replace(self.config, host=host, port=port)
        kept: list[tuple[int, ParamValue]] = [
            (ParameterId.PLATFORM_DOMAIN_LENGTH, len(host.encode("latin-1"))),
            (ParameterId.PLATFORM_DOMAIN, host), (ParameterId.PLATFORM_PORT, port)]
        if self.handler is not None:
            self.handler.values.update(dict(kept))
        try:
            self.store.save_parameters(kept)
        except StoreError as exc:
            log.error("new platform address not persisted: %s", exc)
        log.warning("moving to the new platform address")
        self.reconnect()

    async def _probe_login(self, host: str, port: int) -> bool:
        """A login (then logout) on a separate link to ``host:port`` with this terminal's identity."""
        old = self.session
        codec = OutboxCodec(cipher=old.codec.cipher if isinstance(old.codec, DefaultCodec) else None)
        probe = TerminalSession(old.config, wallclock=old.wallclock, serial_store=old.serial_store,
                                codec=codec)
        hostname = (self.config.tls.server_hostname or host) if self.config.tls is not None else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self._ssl, server_hostname=hostname),
                self.config.connect_timeout_s)
        except (OSError, TimeoutError, ssl.SSLError, ssl.CertificateError) as exc:
            log.warning("new platform unreachable: %s", exc)
            return False
        ok = False
        try:
            probe.connection_made(self.clock())
            writer.write(probe.data_to_send())
            end = self.clock() + old.timing.login_timeout
            while not ok and self.clock() < end:
                data = await asyncio.wait_for(reader.read(65536), max(0.0, end - self.clock()))
                if not data:
                    break
                events = probe.receive_data(data, self.clock())
                ok = any(isinstance(e, LoginSucceeded) for e in events)
                if any(isinstance(e, LoginFailed) for e in events):
                    break
            if ok:
                probe.logout(self.clock())
                writer.write(probe.data_to_send())
                await writer.drain()
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.warning("login to the new platform failed: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)
        return ok


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def with_tls(config: UplinkConfig, tls: TlsConfig | None) -> UplinkConfig:
    """A copy of ``config`` with another TLS setting."""
    return dataclasses.replace(config, tls=tls)


__all__ = ["AgentHandler", "OutboxCodec", "StoredReport", "TcpUplink", "TlsConfig", "UplinkConfig",
           "UplinkStats", "stored_report"]
