"""The live agent: CAN → pipeline → outbox → TCP or MQTT uplink, wired in asyncio (``tbox agent run``).

::

    CanSource (reader thread) ─► pipeline.cache ─► ticker: pipeline.tick(now) ─► Emitted
        └ or: simulator messages (injected by the CLI) paced onto a python-can virtual bus,
              or fed straight into the pipeline in simulated time (``accelerated``, tests)
    Emitted ─► TcpUplink / MqttUplink .submit (outbox first, then realtime if logged in) ─► platform / broker
    ticker: outbox.maybe_flush() (batched commits), outbox.expire() once a minute

Parameters set by the platform are persisted by the uplink and applied here: report periods (0x02/0x03)
take effect at once through ``ReportScheduler.set_periods``; timers (0x09-0x0C) through the session.
Shutdown: the uplink logs out, the CAN source stops, the outbox commits and closes.

``agent`` never imports ``sim``: the CLI builds the simulator's message iterator and passes it in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import can

from agent.config import Settings
from agent.errors import ConfigError, StoreError
from agent.peripherals.gnss import GnssReader
from agent.peripherals.identity import login_identity
from agent.pipeline import AgentPipeline, Emitted
from agent.protocol import wire
from agent.protocol.codec import encode_frame
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    ActivationInfo,
    Cipher,
    ControlId,
    Edition,
    Encryption,
    Frame,
    Parameter,
    ParameterId,
    ResponseFlag,
    SignatureType,
    Signer,
)
from agent.protocol.session import (
    ActivationRefused,
    ActivationResultReceived,
    ActivationTimedOut,
    ClientTiming,
    ControlRequested,
    Event,
    SessionStateError,
    TerminalConfig,
    TerminalSession,
)
from agent.sampling import PublicPlatform, SamplingLink
from agent.store import DAY, Outbox, retention_for
from agent.upgrade import UpgradeConfig, UpgradeError, Upgrader, UpgradeStatus, load_public_key
from agent.uplink.mqtt import MqttConfig, MqttUplink
from agent.uplink.tcp import AgentHandler, OutboxCodec, ParamValue, TcpUplink, TlsConfig, UplinkConfig

log = logging.getLogger(__name__)

TICK_S = 0.1
EXPIRE_EVERY_S = 60.0
HARDWARE_VERSION = "H1.00"
FIRMWARE_VERSION = "F0.10"


@dataclass
class ServiceStats:
    """What a run did (``tbox agent run`` prints it)."""

    reports: int = 0
    realtime: int = 0
    reissue: int = 0
    stored: int = 0
    dropped: int = 0
    messages: int = 0


class AgentService:
    """One terminal. ``messages``: CAN messages to use instead of the configured bus (the simulator);
    ``accelerated``: feed them straight into the pipeline in their own (simulated) time instead of
    pacing them in real time onto a virtual bus. ``on_emit`` sees every report (status views, tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        messages: Iterable[can.Message] | None = None,
        accelerated: bool = False,
        virtual_channel: str = "tbox-sim",
        on_emit: Callable[[Emitted], None] | None = None,
    ) -> None:
        self.settings = settings
        self.edition = Edition(settings.vehicle.edition)
        self.messages = messages
        self.accelerated = accelerated
        self.virtual_channel = virtual_channel
        self.on_emit = on_emit
        self.stats = ServiceStats()
        # the login's ICCID: the SIM's (read from the modem) or [vehicle] iccid (docs/peripherals.md)
        self.identity = login_identity(settings.modem, settings.vehicle.iccid)
        st = settings.store
        retention = st.retention_days * DAY if st.retention_days is not None else retention_for(self.edition)
        self.store = Outbox(st.path, retention_s=retention, max_bytes=int(st.max_mb * 1024 * 1024),
                            commit_interval_s=st.commit_interval_s, memory_limit=st.memory_limit)
        self.pipeline = AgentPipeline(settings)
        stored = self.store.load_parameters()
        #: remote upgrades (docs/upgrade.md): None when no public key is configured
        self.upgrader = self._upgrader()
        self.upgrade_status: UpgradeStatus | None = None
        self.handler = AgentHandler(self._initial_parameters(stored), self.edition,
                                    upgrade_check=self.upgrader.accepts if self.upgrader else None)
        self._background: set[asyncio.Future[Any]] = set()
        #: the sampling-monitoring link to the public platform (0x82/0x07; param 0x10)
        self.sampling = SamplingLink(st.path.with_name(st.path.name + ".sampling"), self._sampling_session,
                                     self._sampling_config, retention_s=retention)
        self._sign_public: bytes | None = None  # wire form of the signing key's public half (activation)
        self.cipher, self.signer = self._crypto()
        self.session = self._session()
        self._base_timing = self.session.timing
        self._defaults = self._initial_parameters({})
        self._stop: asyncio.Event | None = None
        #: the live GNSS reader while ``run`` runs (``stats``, ``state``, ``clock.offset_s``)
        self.gnss: GnssReader | None = None
        self.uplink: TcpUplink | MqttUplink | None = None
        up = settings.uplink
        if up.host and up.port and up.transport == "mqtt":
            try:
                mqtt_config = self._mqtt_config()
            except ConfigError:
                self.store.close()
                raise
            self.uplink = MqttUplink(self.session, self.store, mqtt_config, handler=self.handler,
                                     on_parameters=self.apply_parameters, on_control=self.control,
                                     on_event=self._uplink_event)
            if mqtt_config.platform_replies:
                self.uplink.on_connected = self._activate
            elif up.activation_chip_id is not None:
                log.warning("activation_chip_id needs platform_replies over MQTT (the broker cannot "
                            "answer 0x09): not activating")
        elif up.host and up.port:
            self.uplink = TcpUplink(self.session, self.store, self._uplink_config(), handler=self.handler,
                                    on_parameters=self.apply_parameters, on_control=self.control,
                                    on_event=self._uplink_event)
            self.uplink.on_connected = self._activate
        else:
            log.warning("no [uplink] host/port: reports are stored only")
        self._apply_periods(stored)

    # ------------------------------------------------------------------ construction

    def _initial_parameters(self, stored: dict[int, ParamValue]) -> dict[int, ParamValue]:
        s = self.settings
        e25 = self.edition == Edition.E2025
        host = s.uplink.host or ""
        values: dict[int, ParamValue] = {
            ParameterId.LOCAL_STORAGE_PERIOD: round(s.report.sampling_period_s * 1000),
            ParameterId.REPORT_PERIOD: s.report.normal_period_s,
            # 2016: WORD ms; 2025: BYTE s
            ParameterId.ALARM_REPORT_PERIOD: s.report.alarm_period_s * (1 if e25 else 1000),
            ParameterId.PLATFORM_DOMAIN_LENGTH: len(host),
            ParameterId.PLATFORM_DOMAIN: host,
            ParameterId.PLATFORM_PORT: s.uplink.port or 0,
            ParameterId.HARDWARE_VERSION: HARDWARE_VERSION,
            ParameterId.FIRMWARE_VERSION: FIRMWARE_VERSION,
            ParameterId.HEARTBEAT_PERIOD: s.uplink.heartbeat_s,
            ParameterId.TERMINAL_RESPONSE_TIMEOUT: s.uplink.login_timeout_s,
            ParameterId.PLATFORM_RESPONSE_TIMEOUT: s.uplink.reply_timeout_s,
            ParameterId.LOGIN_RETRY_INTERVAL: 30,
            ParameterId.SAMPLING_MONITORING: 2,
        }
        values.update(stored)
        return {int(k): v for k, v in values.items()}

    def _session(self) -> TerminalSession:
        s = self.settings
        v = self.handler.values
        timing = ClientTiming(
            heartbeat_interval=float(_int(v.get(ParameterId.HEARTBEAT_PERIOD), s.uplink.heartbeat_s)),
            login_timeout=float(_int(v.get(ParameterId.TERMINAL_RESPONSE_TIMEOUT), s.uplink.login_timeout_s)),
            reply_timeout=float(_int(v.get(ParameterId.PLATFORM_RESPONSE_TIMEOUT), s.uplink.reply_timeout_s)),
            login_backoff=60.0 * _int(v.get(ParameterId.LOGIN_RETRY_INTERVAL), 30),
            barrier_after=s.uplink.barrier_after,
        )
        vehicle = s.vehicle
        e16 = self.edition == Edition.E2016
        config = TerminalConfig(
            vehicle.vin, self.edition, iccid=self.identity.iccid,
            ress_codes=vehicle.pack_codes if e16 else (),
            packs_per_bms=vehicle.packs_per_bms, pack_codes=() if e16 else vehicle.pack_codes,
            timing=timing,
        )
        # the signer signs the 2025 activation; reports are signed once when stored (``_submit``)
        return TerminalSession(config, wallclock=lambda: datetime.now(UTC), handler=self.handler,
                               serial_store=self.store.serial_store(), codec=OutboxCodec(cipher=self.cipher),
                               signer=self.signer)

    def _crypto(self) -> tuple[Cipher | None, Signer | None]:
        """Data-unit cipher (applied when a frame is sent) and 2025 signer (applied when a report is
        stored, so a reissue carries the original signature) from ``[uplink]``; keys are never logged."""
        from agent.protocol import crypto

        up = self.settings.uplink
        cipher: Cipher | None = None
        signer: Signer | None = None
        try:
            enc = {"aes": Encryption.AES, "sm4": Encryption.SM4, "rsa": Encryption.RSA,
                   "sm2": Encryption.SM2}.get(up.encryption)
            if enc in (Encryption.SM2, Encryption.SM4) and self.edition != Edition.E2025:
                raise ConfigError(f"{up.encryption} encryption exists only in the 2025 edition",
                                  file=str(self.settings.file), key="uplink.encryption")
            if enc in (Encryption.AES, Encryption.SM4) and up.data_key_file is not None:
                key = bytes.fromhex(up.data_key_file.read_text(encoding="ascii").strip())
                cipher = crypto.cipher_for(enc, key=key)
            elif enc is not None and up.data_key_file is not None:  # the platform's public key
                public = crypto.load_public_key(up.data_key_file.read_bytes(), enc)
                own = None
                if up.decrypt_key_file is not None:
                    own = crypto.load_private_key(up.decrypt_key_file.read_bytes(), enc)
                cipher = crypto.cipher_for(enc, public_key=public, private_key=own)
            if up.sign_type is not None and up.sign_key_file is not None:
                if self.edition != Edition.E2025:
                    raise ConfigError("signatures exist only in the 2025 edition", key="uplink.sign_type")
                kind = {"sm2": SignatureType.SM2, "rsa": SignatureType.RSA, "ecc": SignatureType.ECC}
                private = crypto.load_private_key(up.sign_key_file.read_bytes(), kind[up.sign_type])
                signer = crypto.signer_for(kind[up.sign_type], private)
                self._sign_public = crypto.encode_public_key(private)
        except (OSError, ValueError, ProtocolError) as exc:
            reason = exc.reason if isinstance(exc, ProtocolError) else type(exc).__name__
            raise ConfigError(f"cannot load the uplink key material: {reason}", file=str(self.settings.file),
                              key="uplink") from None
        return cipher, signer

    def _tls_config(self) -> TlsConfig | None:
        up = self.settings.uplink
        if not up.tls:
            return None
        return TlsConfig(ca_file=up.ca_file, cert_file=up.cert_file, key_file=up.key_file,
                         pin_sha256=up.pin_sha256, server_hostname=up.server_hostname)

    def _mqtt_config(self) -> MqttConfig:
        """``[uplink] transport = "mqtt"``: the broker's address is the file's (a platform address change
        is refused over MQTT); the password is read from ``password_file`` and never logged."""
        up = self.settings.uplink
        assert up.host is not None and up.port is not None
        password: str | None = None
        if up.password_file is not None:
            try:
                password = up.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read the MQTT password file: {type(exc).__name__}",
                                  file=str(self.settings.file), key="uplink.password_file") from None
        return MqttConfig(up.host, up.port, tls=self._tls_config(), protocol=up.mqtt_protocol,
                          client_id=up.client_id, username=up.username, password=password,
                          keepalive_s=up.keepalive_s, topic_prefix=up.topic_prefix,
                          json_mirror=up.json_mirror, platform_replies=up.platform_replies,
                          reissue_rate=up.reissue_rate, reconnect_max_s=up.reconnect_max_s,
                          session_expiry_s=up.session_expiry_s, max_inflight=up.max_inflight or 100,
                          reconnect_min_s=up.reconnect_min_s, hold_refused_s=up.hold_s,
                          logout_wait_s=up.logout_wait_s, connect_timeout_s=up.connect_timeout_s,
                          calibrate_time=up.calibrate_time,
                          clock_max_offset_s=self.settings.gnss.clock_max_offset_s)

    def _uplink_config(self) -> UplinkConfig:
        up = self.settings.uplink
        tls = self._tls_config()
        assert up.host is not None and up.port is not None
        # an address the platform set (0x05/0x06, persisted after a successful move) wins over the file
        host, port = self.handler.values.get(ParameterId.PLATFORM_DOMAIN), self.handler.values.get(
            ParameterId.PLATFORM_PORT)
        host = host if isinstance(host, str) and host else up.host
        port = port if isinstance(port, int) and 0 < port < 65536 else up.port
        return UplinkConfig(host, port, tls=tls, reissue_rate=up.reissue_rate,
                            max_inflight=up.max_inflight or 3000, hold_abandoned_s=up.hold_s,
                            connect_timeout_s=up.connect_timeout_s, reconnect_min_s=up.reconnect_min_s,
                            reconnect_max_s=up.reconnect_max_s, logout_wait_s=up.logout_wait_s,
                            calibrate_time=up.calibrate_time,
                            clock_max_offset_s=self.settings.gnss.clock_max_offset_s)

    # ------------------------------------------------------------------ parameters

    def apply_parameters(self, items: tuple[Parameter, ...]) -> None:
        """Apply acknowledged (and already persisted) parameters: report periods at once; 0x10 = 0x02
        closes the sampling link, a new public platform address moves an open one."""
        values = {int(p.id): p.value for p in items}
        self._apply_periods(values)
        if values.get(ParameterId.SAMPLING_MONITORING) == 2 and self.sampling.active:
            self._spawn(self.sampling.close())
        elif self.sampling.active and {0x0E, 0x0F} & set(values):
            target = PublicPlatform.from_parameters(dict(self.handler.values))
            if target is not None:
                self.sampling.open(target)

    def control(self, event: ControlRequested) -> None:
        """Execute an acknowledged 0x82 command (the reply already went out)."""
        cid = int(event.command_id)
        log.warning("terminal control 0x%02X from the platform", cid)
        if cid == ControlId.SHUTDOWN:
            if self._stop is not None:
                self._stop.set()  # logout, flush, exit
        elif cid == ControlId.RESET and self.uplink is not None:
            self.uplink.reconnect()
        elif cid == ControlId.DISCONNECT and self.uplink is not None:
            self.uplink.reconnect(self.settings.uplink.reconnect_max_s)
        elif cid == ControlId.FACTORY_RESET:
            self.store.clear_parameters()
            self.handler.values.clear()
            self.handler.values.update(self._defaults)
            self.session.timing = self._base_timing
            self._apply_periods(self._defaults)
        elif cid == ControlId.WARNING:
            log.warning("platform alarm command: %r", event.params)
        elif cid == ControlId.REMOTE_UPGRADE and self.upgrader is not None:
            self._spawn(self._upgrade(event.params))
        elif cid == ControlId.OPEN_SAMPLING_LINK:
            self._open_sampling()

    # ------------------------------------------------------------------ 2025 activation

    def _activation_marker(self) -> str | None:
        chip = self.settings.uplink.activation_chip_id
        if chip is None or self._sign_public is None:
            return None
        return f"{chip}:{hashlib.sha256(self._sign_public).hexdigest()[:16]}"

    @property
    def activated(self) -> bool:
        """True when no activation is configured, or the platform confirmed this chip and key."""
        marker = self._activation_marker()
        return marker is None or self.store.get_value("activation") == marker

    def _activate(self) -> None:
        """On every new link until confirmed: 0x09 with the chip id and the signing public key."""
        chip = self.settings.uplink.activation_chip_id
        if self.activated or chip is None or self._sign_public is None:
            return
        try:
            self.session.activate(time.monotonic(), chip, self._sign_public)
        except SessionStateError as exc:
            log.error("activation not sent: %s", exc)

    def _uplink_event(self, event: Event) -> None:
        if isinstance(event, ActivationResultReceived):
            if event.activated or event.info == ActivationInfo.CHIP_ALREADY_ACTIVATED:
                marker = self._activation_marker()
                if marker is not None:
                    try:
                        self.store.set_value("activation", marker)
                    except StoreError as exc:
                        log.error("activation confirmed but not stored (sent again next link): %s", exc)
                log.warning("activation confirmed by the platform")
            else:
                log.error("activation refused by the platform: status %r info %r", event.status, event.info)
        elif isinstance(event, ActivationTimedOut | ActivationRefused):
            log.error("activation not confirmed (%s); tried again on the next link", type(event).__name__)

    # ------------------------------------------------------------------ upgrade and sampling link

    def _upgrader(self) -> Upgrader | None:
        u = self.settings.upgrade
        if u.public_key_file is None:
            return None
        try:
            key = load_public_key(u.public_key_file.read_bytes())
        except (OSError, UpgradeError) as exc:
            raise ConfigError(f"cannot load the upgrade public key: {exc}", file=str(self.settings.file),
                              key="upgrade.public_key_file") from None
        directory = u.directory or self.settings.store.path.with_name("upgrades")
        return Upgrader(UpgradeConfig(key, directory, install_command=u.install_command, schemes=u.schemes,
                                      max_bytes=int(u.max_mb * 1024 * 1024),
                                      download_timeout_s=u.download_timeout_s,
                                      install_timeout_s=u.install_timeout_s,
                                      hardware_version=HARDWARE_VERSION))

    async def _upgrade(self, params: object) -> None:
        """Download and verify beside the loop (the link stays up); statuses are stored from the loop."""
        assert self.upgrader is not None
        loop = asyncio.get_running_loop()

        def on_status(status: UpgradeStatus) -> None:
            try:
                loop.call_soon_threadsafe(self._upgrade_status, status)
            except RuntimeError:  # the loop has closed (the agent stopped): nothing left to store it
                log.warning("remote upgrade %s after the agent stopped: %s", status.state, status.reason)

        self.upgrader.on_status = on_status
        await loop.run_in_executor(None, self.upgrader.run, params)

    def _upgrade_status(self, status: UpgradeStatus) -> None:
        log.warning("remote upgrade: %s %s %s", status.state, status.version, status.reason)
        self.upgrade_status = status
        try:
            self.store.set_value("upgrade.status", status.to_json())
        except StoreError as exc:
            log.error("upgrade status not stored: %s", exc)

    def _open_sampling(self) -> None:
        target = PublicPlatform.from_parameters(dict(self.handler.values))
        if target is None:
            log.warning("sampling link requested but the public platform address (0x0E/0x0F) is not set")
            return
        self.sampling.open(target)
        self.handler.values[ParameterId.SAMPLING_MONITORING] = 1
        try:
            self.store.save_parameters([(int(ParameterId.SAMPLING_MONITORING), 1)])
        except StoreError as exc:
            log.error("sampling link opened but not persisted: %s", exc)

    def _sampling_session(self, store: Outbox) -> TerminalSession:
        session = self._session()
        return TerminalSession(session.config, wallclock=lambda: datetime.now(UTC), handler=None,
                               serial_store=store.serial_store(), codec=OutboxCodec(cipher=self.cipher))

    def _sampling_config(self, target: PublicPlatform) -> UplinkConfig:
        """The main link's settings at the public platform's address; its TLS trust (CA, client
        certificate) but not its pin or server name, which belong to the main platform."""
        config = self._uplink_config()
        tls = config.tls
        if tls is not None:
            tls = dataclasses.replace(tls, pin_sha256=None, server_hostname=None)
        return dataclasses.replace(config, host=target.host, port=target.port, tls=tls)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _apply_periods(self, values: dict[int, ParamValue]) -> None:
        normal = values.get(ParameterId.REPORT_PERIOD)
        alarm = values.get(ParameterId.ALARM_REPORT_PERIOD)
        normal_s = float(normal) if isinstance(normal, int) else None
        alarm_s: float | None = None
        if isinstance(alarm, int):
            alarm_s = float(alarm) if self.edition == Edition.E2025 else alarm / 1000.0
        if normal_s is None and alarm_s is None:
            return
        try:
            self.pipeline.scheduler.set_periods(normal_s, alarm_s)
        except (ValueError, ConfigError) as exc:
            log.warning("report periods not applied: %s", exc)

    # ------------------------------------------------------------------ running

    async def run(self, seconds: float | None = None, stop: asyncio.Event | None = None) -> ServiceStats:
        """Run until ``stop`` is set, ``seconds`` pass, or the injected messages end (accelerated)."""
        stop = stop if stop is not None else asyncio.Event()
        self._stop = stop
        tasks: list[asyncio.Task[Any]] = []
        source: Any = None
        sender: _Pacer | None = None
        gnss = self.gnss = self._gnss_reader(asyncio.get_running_loop())
        if self.uplink is not None:
            tasks.append(asyncio.create_task(self.uplink.run(stop)))
        if self.handler.values.get(ParameterId.SAMPLING_MONITORING) == 1:  # opened before a restart
            self._open_sampling()
        try:
            if gnss is not None:
                gnss.start()
            if self.messages is not None and self.accelerated:
                tasks.append(asyncio.create_task(self._feed(self.messages, stop)))
            else:
                source = self._can_source()
                source.start()
                if self.messages is not None:
                    sender = _Pacer(self.messages, self.virtual_channel)
                    sender.start()
            tasks.append(asyncio.create_task(self._ticker(stop)))
            for t in tasks:
                t.add_done_callback(_log_failure)
            if seconds is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), seconds)
            else:
                await stop.wait()
        finally:
            stop.set()
            if gnss is not None:
                gnss.stop()
            if sender is not None:
                sender.stop()
            if source is not None:
                source.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.sampling.close()
            if self.upgrader is not None:
                self.upgrader.stop()  # a download in its worker thread ends instead of holding the exit
            for pending in list(self._background):
                pending.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            self.store.close()
        self.stats.dropped = self.store.stats.dropped
        return self.stats

    def _gnss_reader(self, loop: asyncio.AbstractEventLoop) -> GnssReader | None:
        """The reconnecting serial GNSS reader (docs/peripherals.md); positions reach the pipeline with
        the system time they arrived at, so their age is measured on the same clock as the ticks."""
        from agent.peripherals.gnss import ClockCheck, parse_source

        g = self.settings.gnss
        if not g.enabled:
            return None
        kind, device, baud = parse_source(g.source)
        if kind != "serial":
            log.warning("[gnss] source %s is a file: used by tbox replay, not by the live agent", device)
            return None

        def deliver(position: Any, received: float) -> None:
            loop.call_soon_threadsafe(self.pipeline.feed_position, position, received)

        def stepped(offset: float) -> None:  # the tick grid follows the system clock: start a new one
            loop.call_soon_threadsafe(self.pipeline.clock_stepped)

        clock = ClockCheck(g.clock, g.clock_max_offset_s, on_step=stepped)
        return GnssReader(device, baud, deliver, backoff_initial_s=g.reopen_initial_s,
                          backoff_max_s=g.reopen_max_s, clock=clock)

    def _can_source(self) -> Any:
        from agent.canbus.source import CanSource

        config: dict[str, Any] = self.settings.can.source_config()
        if self.messages is not None:
            config = {"interface": "virtual", "channel": self.virtual_channel}
        return CanSource(config, self.pipeline.cache, file=str(self.settings.file))

    async def _ticker(self, stop: asyncio.Event) -> None:
        next_expire = time.monotonic()
        while not stop.is_set():
            if not self.accelerated:
                self._submit(self.pipeline.tick(time.time()))
            self.store.maybe_flush()
            self.sampling.flush()
            if time.monotonic() >= next_expire:
                self.store.expire()
                next_expire = time.monotonic() + EXPIRE_EVERY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    async def _feed(self, messages: Iterable[can.Message], stop: asyncio.Event) -> None:
        """Accelerated simulation: feed the pipeline in simulated time, yielding to the loop often."""
        it: Iterator[can.Message] = iter(messages)
        while not stop.is_set():
            chunk = [m for _, m in zip(range(200), it, strict=False)]
            if not chunk:
                break
            for m in chunk:
                self._submit(self.pipeline.feed(m))
            self.stats.messages += len(chunk)
            await asyncio.sleep(0.001)
        self._submit(self.pipeline.finish())

    def _submit(self, emitted: list[Emitted]) -> None:
        for e in emitted:
            self.stats.reports += 1
            if int(e.command) == 0x03:
                self.stats.reissue += 1
            else:
                self.stats.realtime += 1
            frame = e.frame
            if self.signer is not None:  # 2025: sign the data unit once, at collection
                unsigned = Frame(self.edition, e.command, ResponseFlag.COMMAND, self.settings.vehicle.vin,
                                 Encryption.NONE, e.report)
                frame = encode_frame(unsigned, signer=self.signer, options=self.pipeline.options)
            raw = wire.parse_frame(frame)
            vin = bytes(raw.vin).rstrip(b"\x00").decode("latin-1")
            if self.uplink is not None:
                rid = self.uplink.submit(raw.edition, raw.command, vin, raw.data, e.time, raw.encryption)
            else:
                rid = self.store.add(raw.edition, raw.command, vin, raw.data, e.time, raw.encryption)
            self.stats.stored += int(rid is not None)
            self.sampling.submit(raw.edition, raw.command, vin, raw.data, e.time, raw.encryption)
            if self.on_emit is not None:
                self.on_emit(e)


class _Pacer:
    """Sends injected messages onto a python-can virtual bus at their own pace (real time)."""

    def __init__(self, messages: Iterable[can.Message], channel: str) -> None:
        self.messages = messages
        self.channel = channel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tbox-sim-pacer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        bus = can.Bus(interface="virtual", channel=self.channel)
        try:
            start_wall = time.time()
            start_sim: float | None = None
            for msg in self.messages:
                if start_sim is None:
                    start_sim = msg.timestamp
                delay = start_wall + (msg.timestamp - start_sim) - time.time()
                if delay > 0 and self._stop.wait(delay):
                    return
                if self._stop.is_set():
                    return
                bus.send(msg)
        except can.CanError as exc:
            log.error("simulated bus failed: %s", exc)
        finally:
            bus.shutdown()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("agent task %s failed", task.get_coro(), exc_info=task.exception())


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


__all__ = ["AgentService", "ServiceStats"]
