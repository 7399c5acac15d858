"""MQTT uplink: a thin adapter that carries the sans-I/O ``TerminalSession``'s frames over an MQTT broker.

The terminal talks to a broker directly (not through EMQX's GB/T 32960 TCP gateway); the topics follow the
gateway's layout in spirit, with the raw GB/T 32960 frame as the payload (docs/mqtt.md):

* ``{prefix}/{vin}/upstream/{kind}`` — one whole frame per message, QoS 1; ``kind`` by command:
  ``vlogin`` 0x01, ``info`` 0x02, ``reinfo`` 0x03, ``vlogout`` 0x04, ``heartbeat`` 0x07, ``timing`` 0x08,
  ``activation`` 0x09, ``keyexchange`` 0x0B, ``response`` (our replies to 0x80-0x82), ``other``.
* ``{prefix}/{vin}/upstream/{kind}/json`` — optional JSON mirror (``frame_to_json``), QoS 0.
* ``{prefix}/{vin}/dnstream`` — subscribed, QoS 1: raw platform frames fed to ``session.receive_data``
  (0x80 query, 0x81 set, 0x82 control, and in ``platform_replies`` mode the platform's replies).
* ``{prefix}/{vin}/status`` — retained ``online`` / ``offline`` (the will).

Delivery: every frame is published with QoS 1 and tracked by its mid; a record leaves the outbox only when
its PUBACK arrives (MQTT 5: with a success reason code). paho keeps unacknowledged messages across
reconnects and resends them, so an in-flight record is neither lost nor reissued twice by us. Records not
in flight (collected while the link was down, refused by the broker) are drained as reissue (0x03) in
(collection time, id) order at ``reissue_rate`` frames/s; ``submit`` sends the newest realtime at once.

Login and heartbeat: with ``platform_replies=False`` (default) the broker is the platform's front door: the
login frame is published on ``vlogin`` and its PUBACK stands for the success reply (likewise heartbeat,
logout, realtime/reissue), so the session goes online and downlink commands are served. With
``platform_replies=True`` a platform behind the broker must answer on ``dnstream`` as it would over TCP.

Threads: paho's network thread only forwards callbacks onto the asyncio loop (``call_soon_threadsafe``);
the session and the outbox are used from the loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent.errors import ConfigError, ProtocolError, StoreError
from agent.protocol import wire
from agent.protocol.jsonform import frame_to_json
from agent.protocol.model import Command, Empty, Encryption, Frame, Parameter, ResponseFlag, TimeOnly
from agent.protocol.session import (
    CloseRequested,
    ControlRequested,
    Event,
    KeyExchangeReceived,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
    ParametersChanged,
    PlatformChangeRequested,
    ReconnectRequested,
    SessionStateError,
    TerminalSession,
    TimeCalibrated,
)
from agent.store import Outbox, OutboxRecord
from agent.uplink.common import UplinkBase
from agent.uplink.tcp import AgentHandler, TlsConfig, stored_report

log = logging.getLogger(__name__)

#: upstream topic suffix per command (EMQX gateway names where it has one)
KINDS: dict[int, str] = {
    Command.VEHICLE_LOGIN: "vlogin",
    Command.REALTIME: "info",
    Command.REISSUE: "reinfo",
    Command.VEHICLE_LOGOUT: "vlogout",
    Command.HEARTBEAT: "heartbeat",
    Command.TIME_CALIBRATION: "timing",
    Command.ACTIVATION: "activation",
    Command.KEY_EXCHANGE: "keyexchange",
}
#: commands whose PUBACK stands for the platform's success reply when ``platform_replies`` is off
_BROKER_ANSWERS = frozenset({Command.VEHICLE_LOGIN, Command.REALTIME, Command.REISSUE, Command.HEARTBEAT,
                             Command.VEHICLE_LOGOUT})
_DECODE_ERRORS = (ProtocolError, ValueError, IndexError, KeyError, TypeError)


def upstream_kind(command: int, response: int) -> str:
    """Topic suffix of an upstream frame: replies to downlink commands go to ``response``."""
    if response != ResponseFlag.COMMAND:
        return "response"
    return KINDS.get(command, "other")


# =========================================================================== settings


@dataclass(frozen=True)
class MqttConfig:
    """Broker, identity and pacing (defaults in docs/mqtt.md)."""

    host: str
    port: int = 1883
    tls: TlsConfig | None = None  # ca_file, cert_file/key_file, server_hostname, pin_sha256, check_hostname
    protocol: int = 4  # 4: MQTT 3.1.1, 5: MQTT 5
    client_id: str | None = None  # default "tbox-{vin}"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400  # MQTT 5: the broker keeps our session (and queued downlink)
    topic_prefix: str = "gbt32960"
    json_mirror: bool = False
    platform_replies: bool = False  # True: a platform answers on dnstream; False: PUBACK is the answer
    reissue_rate: float = 50.0  # frames/s of backlog
    max_inflight: int = 100  # unacknowledged publishes (paho window and our drain's bound)
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    hold_refused_s: float = 600.0  # a record the broker refused (MQTT 5 reason >= 0x80) waits this long
    logout_wait_s: float = 5.0
    connect_timeout_s: float = 10.0
    #: a time calibration (0x08) after every login (only with ``platform_replies``: the broker cannot
    #: answer one); the platform's time is compared with ours (``MqttStats.clock_offset_s``)
    calibrate_time: bool = False
    clock_max_offset_s: float = 2.0  # a larger difference is logged as a skewed clock


@dataclass
class MqttStats:
    """Counters (``link`` is the current state's name)."""

    link: str = "down"
    connects: int = 0
    logins: int = 0  # LoginSucceeded (PUBACK of vlogin, or the platform's reply): as ``UplinkStats.logins``
    disconnects: int = 0
    connect_failures: int = 0
    published: int = 0
    acked: int = 0
    realtime_sent: int = 0
    reissue_sent: int = 0
    delivered: int = 0
    refused: int = 0
    downlink_frames: int = 0
    reconnects: dict[str, int] = field(default_factory=dict)
    clock_offset_s: float | None = None  # platform time − ours at the last time calibration


@dataclass(frozen=True)
class _Pub:
    command: int
    response: int
    record_id: int | None = None
    time: datetime | None = None


class _NamedContext(ssl.SSLContext):
    """An ``SSLContext`` that verifies a fixed server name (paho passes the connect host)."""

    expected_name: str | None = None

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | bytes | None = None,
                    session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                   self.expected_name or server_hostname, session)


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """Client context: TLS >= 1.2, only ``ca_file`` trusted when given, optional client certificate."""
    try:
        ctx = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.expected_name = tls.server_hostname
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = tls.check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
        if tls.ca_file is not None:
            ctx.load_verify_locations(str(tls.ca_file))
        else:
            ctx.load_default_certs()
        if tls.cert_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS setup failed: {exc}", key="mqtt") from exc
    return ctx


# =========================================================================== the uplink


class MqttUplink(UplinkBase):
    """Runs one terminal's link through an MQTT broker until ``stop`` is set (same interface as
    ``TcpUplink``: ``submit``, ``backlog``, ``run``, ``stats``; callbacks ``on_parameters``,
    ``on_control``, ``on_event``)."""

    def __init__(
        self,
        session: TerminalSession,
        store: Outbox,
        config: MqttConfig,
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
        self.stats = MqttStats()
        if config.calibrate_time and not config.platform_replies:
            log.warning("calibrate_time needs platform_replies over MQTT (the broker cannot tell the "
                        "platform's time): no time calibration")
        vin = session.vin
        self.client_id = config.client_id or f"tbox-{vin}"
        base = f"{config.topic_prefix}/{vin}"
        self.upstream = f"{base}/upstream"
        self.dnstream = f"{base}/dnstream"
        self.status_topic = f"{base}/status"
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = False
        self._pubs: dict[int, _Pub] = {}  # mid -> what it carried
        self._inflight_ids: set[int] = set()  # records published, PUBACK not seen
        self._early: deque[bytes] = deque(maxlen=256)  # downlink received before login
        self._pause_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # timer loop
        self._news = asyncio.Event()  # drain loop: a record joined the backlog
        self._room = asyncio.Event()  # drain loop: a PUBACK freed a place in the window
        self._online = asyncio.Event()
        self._logged_out = asyncio.Event()

    # ------------------------------------------------------------------ records in

    def _can_send_realtime(self) -> bool:
        return self._connected and self.session.logged_in

    def _wake_drain(self) -> None:
        self._news.set()

    def reconnect(self, pause_s: float = 0.0) -> None:
        """Drop the link (0x82 reset/disconnect): paho reconnects at once, or after ``pause_s``."""
        if pause_s <= 0:
            self._recycle()
            return
        if self._loop is not None and self._client is not None:
            self._pause_task = self._loop.create_task(self._pause(pause_s))

    async def _pause(self, seconds: float) -> None:
        client = self._client
        client.disconnect()  # ends paho's loop thread; unacknowledged messages stay queued in the client
        await asyncio.to_thread(client.loop_stop)
        self._link_lost_if_connected()
        await asyncio.sleep(seconds)
        client.connect_async(self.config.host, self.config.port, self.config.keepalive_s,
                             **self._connect_kwargs())
        client.loop_start()

    # ------------------------------------------------------------------ main loop

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (paho reconnects by itself with backoff), serve, until ``stop``; then log out."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._news = asyncio.Event()
        self._room = asyncio.Event()
        self._online = asyncio.Event()
        self._logged_out = asyncio.Event()
        client = self._make_client()
        self._client = client
        self.stats.link = "connecting"
        client.connect_async(self.config.host, self.config.port, self.config.keepalive_s,
                             **self._connect_kwargs())
        client.loop_start()
        tasks = [asyncio.create_task(self._timer_loop()), asyncio.create_task(self._drain_loop())]
        try:
            stop_wait = asyncio.create_task(stop.wait())
            await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    log.error("mqtt uplink task failed", exc_info=t.exception())
            stop_wait.cancel()
            await self._logout()
        finally:
            if self._pause_task is not None:
                tasks.append(self._pause_task)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._connected:
                with contextlib.suppress(ValueError, RuntimeError):
                    client.publish(self.status_topic, b"offline", qos=1, retain=True)
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            if self._connected:
                self._link_lost()
            self.stats.link = "stopped"

    def _make_client(self) -> Any:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        cfg = self.config
        if cfg.protocol == 5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                 protocol=mqtt.MQTTv5)
        elif cfg.protocol == 4:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                 clean_session=False, protocol=mqtt.MQTTv311)
        else:
            raise ConfigError(f"unsupported MQTT protocol level {cfg.protocol} (4 or 5)", key="mqtt")
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            client.tls_set_context(tls_context(cfg.tls))
        client.reconnect_delay_set(max(1, round(cfg.reconnect_min_s)), max(1, round(cfg.reconnect_max_s)))
        client.max_inflight_messages_set(cfg.max_inflight)
        client.max_queued_messages_set(0)
        client.connect_timeout = cfg.connect_timeout_s
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message
        return client

    def _connect_kwargs(self) -> dict[str, Any]:
        if self.config.protocol != 5:
            return {}
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry_s
        return {"clean_start": False, "properties": props}

    # ------------------------------------------------------------------ paho thread -> loop

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
                loop.call_soon_threadsafe(fn, *args)

    def _cb_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._post(self._connect_refused, str(reason))
            return
        pin = self.config.tls.pin_sha256 if self.config.tls is not None else None
        if pin:
            sock = client.socket()
            der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            if hashlib.sha256(der or b"").hexdigest() != pin.lower().replace(":", ""):
                self._post(self._connect_refused, "server certificate does not match the pinned SHA-256")
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                return
        self._post(self._connected_now, bool(getattr(flags, "session_present", False)))

    def _cb_connect_fail(self, client: Any, userdata: Any) -> None:
        self._post(self._connect_refused, "connect failed")

    def _cb_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._post(self._disconnected, str(reason))

    def _cb_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        self._post(self._puback, mid, int(getattr(reason, "value", 0) or 0))

    def _cb_message(self, client: Any, userdata: Any, message: Any) -> None:
        self._post(self._downlink, bytes(message.payload))

    # ------------------------------------------------------------------ link events (loop)

    def _connect_refused(self, reason: str) -> None:
        self.stats.connect_failures += 1
        log.warning("mqtt connect to %s:%d failed: %s", self.config.host, self.config.port, reason)

    def _connected_now(self, session_present: bool) -> None:
        if self._connected:  # paho reconnected before we saw the disconnect
            self._link_lost()
        self._connected = True
        self.stats.connects += 1
        self.stats.link = "logging_in"
        log.info("mqtt connected to %s:%d (session present: %s)", self.config.host, self.config.port,
                 session_present)
        self._client.subscribe(self.dnstream, qos=1)
        self._client.publish(self.status_topic, b"online", qos=1, retain=True)
        self._handle(self.session.connection_made(self.clock()))
        if self.on_connected is not None:  # e.g. 2025 activation, right behind the login
            self.on_connected()
        self._flush_out()

    def _disconnected(self, reason: str) -> None:
        if not self._connected:
            return
        self.stats.disconnects += 1
        log.warning("mqtt link lost: %s", reason)
        self._link_lost()

    def _link_lost_if_connected(self) -> None:
        if self._connected:
            self.stats.disconnects += 1
            self._link_lost()

    def _link_lost(self) -> None:
        self._connected = False
        self._online.clear()
        self._handle(self.session.connection_lost(self.clock()))
        self.session.data_to_send()  # nothing may leak into the next link
        self.stats.link = "down"

    def _puback(self, mid: int, reason: int) -> None:
        pub = self._pubs.pop(mid, None)
        if pub is None:
            return
        self.stats.acked += 1
        if pub.record_id is not None:
            self._inflight_ids.discard(pub.record_id)
            self._room.set()
            if reason >= 0x80:
                self.stats.refused += 1
                log.warning("broker refused record %d (reason 0x%02X); held", pub.record_id, reason)
                self.store.hold(pub.record_id, datetime.now(UTC).timestamp() + self.config.hold_refused_s)
                return
            self.store.delivered(pub.record_id)
            self.stats.delivered += 1
        if reason >= 0x80 or self.config.platform_replies or pub.response != ResponseFlag.COMMAND:
            return
        if pub.command in _BROKER_ANSWERS and self._connected:
            body: Any = TimeOnly(pub.time) if pub.time is not None else Empty()
            reply = Frame(self.session.edition, pub.command, ResponseFlag.SUCCESS, self.session.vin,
                          Encryption.NONE, body)
            self._handle(self.session.receive_frame(reply, self.clock()))
            self._flush_out()

    def _downlink(self, payload: bytes) -> None:
        self.stats.downlink_frames += 1
        if not self.session.logged_in and not self.config.platform_replies:
            self._early.append(payload)  # queued by the broker for us: serve it once logged in
            return
        self._handle(self.session.receive_data(payload, self.clock()))
        self._flush_out()

    # ------------------------------------------------------------------ sending

    def _send(self, rec: OutboxRecord, command: Command) -> bool:
        self._flush_out()  # whatever the session had pending goes first, on its own topic
        try:
            report = stored_report(rec)
            if command == Command.REALTIME:
                events = self.session.send_realtime(report, self.clock())
            else:
                events = self.session.send_reissue(report, self.clock())
        except SessionStateError:
            return False
        except ProtocolError as exc:  # cannot be framed: never resent blindly
            log.error("record %d cannot be sent (%s); held", rec.id, exc)
            self.store.hold(rec.id, datetime.now(UTC).timestamp() + self.config.hold_refused_s)
            return True
        self._inflight_ids.add(rec.id)
        if command == Command.REALTIME:
            self.stats.realtime_sent += 1
        else:
            self.stats.reissue_sent += 1
        self._flush_out(rec)
        self._handle(events)
        return True

    def _flush_out(self, record: OutboxRecord | None = None) -> None:
        """Publish the session's pending output, one message per frame, on the frame's topic."""
        data = self.session.data_to_send()
        if not data or self._client is None:
            return
        for raw in wire.Framer().feed(data):
            command, response = raw.command, raw.response
            rid = when = None
            if (record is not None and command in (Command.REALTIME, Command.REISSUE)
                    and response == ResponseFlag.COMMAND):
                rid, when, record = record.id, record.collected_at, None
            kind = upstream_kind(command, response)
            info = self._client.publish(f"{self.upstream}/{kind}", bytes(raw.raw), qos=1)
            self._pubs[info.mid] = _Pub(command, response, rid, when)
            self.stats.published += 1
            if self.config.json_mirror:
                self._mirror(raw, kind)

    def _mirror(self, raw: wire.RawFrame, kind: str) -> None:
        try:
            doc = frame_to_json(self.session.codec.decode(raw))
        except _DECODE_ERRORS as exc:
            log.debug("no JSON mirror for a %s frame: %s", kind, exc)
            return
        self._client.publish(f"{self.upstream}/{kind}/json", json.dumps(doc).encode(), qos=0)

    async def _logout(self) -> None:
        if not (self._connected and self.session.logged_in):
            return
        self._handle(self.session.logout(self.clock()))
        self._flush_out()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._logged_out.wait(), self.config.logout_wait_s)

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.session.next_deadline()
            timeout = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._connected:
                self._handle(self.session.tick(self.clock()))
                self._flush_out()

    async def _drain_loop(self) -> None:
        """Publish the backlog as reissue at ``reissue_rate`` (token bucket), at most ``max_inflight``
        unacknowledged; rescans from the oldest when a pass ends."""
        rate = max(self.config.reissue_rate, 0.1)
        cursor: tuple[int, int] | None = None
        sent_in_pass = False
        tokens, last = 1.0, self.clock()
        while True:
            await self._online.wait()
            if len(self._inflight_ids) >= self.config.max_inflight:
                self._room.clear()
                with contextlib.suppress(TimeoutError):  # woken by the next PUBACK
                    await asyncio.wait_for(self._room.wait(), 0.05)
                continue
            try:
                batch = self.store.backlog(cursor, limit=64)
            except StoreError as exc:
                log.error("reading the backlog failed: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                if not sent_in_pass:  # a whole pass found nothing to send: wait for news (or 0.2 s)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._news.wait(), 0.2)
                    self._news.clear()
                cursor, sent_in_pass = None, False
                await asyncio.sleep(0)  # never hog the loop (PUBACKs are handled on it)
                continue
            for rec in batch:
                if rec.id in self._inflight_ids:
                    cursor = rec.order
                    continue
                if len(self._inflight_ids) >= self.config.max_inflight:
                    break
                now = self.clock()
                tokens = min(max(rate * 0.05, 1.0), tokens + (now - last) * rate)
                last = now
                if tokens < 1.0:
                    await asyncio.sleep(max((1.0 - tokens) / rate, 0.002))
                    now = self.clock()
                    tokens, last = tokens + (now - last) * rate, now
                if not (self._connected and self.session.logged_in) or not self._send(rec, Command.REISSUE):
                    break
                tokens -= 1.0
                sent_in_pass = True
                cursor = rec.order

    # ------------------------------------------------------------------ session events

    def _handle(self, events: Iterable[Event]) -> None:
        for ev in events:
            if self.on_event is not None:
                self.on_event(ev)
            if isinstance(ev, LoginSucceeded):
                self.stats.logins += 1
                self.stats.link = "online"
                self._online.set()
                early, self._early = list(self._early), deque(maxlen=256)
                for payload in early:
                    self._handle(self.session.receive_data(payload, self.clock()))
                if self.config.calibrate_time and self.config.platform_replies:
                    self._handle(self.session.request_time_calibration(self.clock()))
            elif isinstance(ev, LoginFailed):
                self.stats.link = "backoff" if ev.backoff else "login_wait"
            elif isinstance(ev, ReconnectRequested | CloseRequested):
                self._online.clear()
                if isinstance(ev, ReconnectRequested):
                    self.stats.reconnects[ev.reason] = self.stats.reconnects.get(ev.reason, 0) + 1
                    log.warning("reconnecting: %s", ev.reason)
                    self._recycle()
            elif isinstance(ev, LoggedOut):
                self.stats.link = "logged_out"
                self._logged_out.set()
            elif isinstance(ev, ParametersChanged):
                self._parameters_changed(ev.items)
            elif isinstance(ev, PlatformChangeRequested):
                log.warning("platform address change requested; not supported over MQTT, refused")
                self._handle(self.session.report_platform_change(False, self.clock()))
            elif isinstance(ev, KeyExchangeReceived):
                self._key_exchange(ev)
            elif isinstance(ev, TimeCalibrated):
                self.stats.clock_offset_s = self._clock_offset(ev, self.config.clock_max_offset_s)
            elif isinstance(ev, ControlRequested):
                if self.on_control is not None:
                    self.on_control(ev)
                else:
                    log.warning("terminal control 0x%02X acknowledged but no handler is wired",
                                int(ev.command_id))

    def _recycle(self) -> None:
        """Drop the network connection; paho reconnects (its in-flight messages are resent)."""
        client = self._client
        sock = client.socket() if client is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


__all__ = ["KINDS", "MqttConfig", "MqttStats", "MqttUplink", "tls_context", "upstream_kind"]
