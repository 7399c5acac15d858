"""GB/T 32960 session state machines, sans-I/O: terminal (T-Box), platform, and platform forwarding.

Like ``h11``/``wsproto``: no sockets, clocks, sleeps or threads. A transport feeds received bytes
(``receive_data``) and the passage of time (``tick``), calls commands (``send_realtime``, ``logout``…),
writes out whatever ``data_to_send()`` returns and acts on the returned events. Every method that takes
``now`` returns the list of events it caused. ``next_deadline()`` says when ``tick`` is next needed.

Two clocks are injected: ``now`` — monotonic seconds for timers, passed to every call — and
``wallclock`` — a callable returning the UTC wall time (aware ``datetime``) for frame timestamps and
the Beijing-date cycle of login serials, given at construction.

Layers: ``wire.Framer`` → ``FrameCodec.decode`` → ``receive_frame`` (the state machine, on ``Frame``
objects) → ``FrameCodec.encode`` → ``data_to_send``. A corrupt or undecodable frame never raises out of
``receive_data``: it becomes a ``ProtocolViolation`` event and the session goes on.

The rules, defaults and inferences are documented in docs/session.md.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, Protocol

from agent.protocol import codec, wire
from agent.protocol.codec import CodecOptions, ResponseForm
from agent.protocol.errors import ProtocolError, TboxError
from agent.protocol.model import (
    Activation,
    ActivationInfo,
    ActivationResult,
    ActivationStatus,
    Cipher,
    Command,
    ControlId,
    DataUnit,
    Edition,
    Empty,
    Encryption,
    Frame,
    KeyExchange,
    Parameter,
    ParameterId,
    ParameterQuery,
    ParameterQueryReply,
    ParameterSet,
    PlatformLogin,
    PlatformLogout,
    RealtimeReport,
    ResponseFlag,
    Signature,
    Signer,
    TerminalControl,
    TimeOnly,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
    Verifier,
)

log = logging.getLogger(__name__)

BEIJING = timezone(timedelta(hours=8))
MAX_SERIAL = 65531
#: parameters the platform may query but never set (Table B.12: hardware/firmware version)
READ_ONLY_PARAMETERS = frozenset({ParameterId.HARDWARE_VERSION, ParameterId.FIRMWARE_VERSION})
#: parameters whose change moves the terminal to another platform (spec §6 "Set")
PLATFORM_ADDRESS_PARAMETERS = frozenset(
    {ParameterId.PLATFORM_DOMAIN_LENGTH, ParameterId.PLATFORM_DOMAIN, ParameterId.PLATFORM_PORT}
)
_DEDUPE_SIZE = 64
_DECODE_BUGS = (ValueError, IndexError, KeyError, TypeError, struct.error)
_UPLOAD_TRACK_LIMIT = 4096
_SETTLED_LIMIT = 4096  # uploads settled without a reply that are remembered for late replies
_MAX_BARRIERS = 32  # unanswered heartbeats tracked as delivery barriers


class SessionStateError(TboxError):
    """A command was called in a state that does not allow it (e.g. realtime before login)."""


# =========================================================================== time helpers


def beijing_date(utc: datetime) -> date:
    """The Beijing (UTC+8) calendar date of an aware UTC time: the login-serial day."""
    return utc.astimezone(BEIJING).date()


def _second(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def _time_of(body: object) -> datetime | None:
    value = getattr(body, "time", None)
    return value if isinstance(value, datetime) else None


def _flag(value: int) -> ResponseFlag | int:
    try:
        return ResponseFlag(value)
    except ValueError:
        return value


# =========================================================================== codec seam


class FrameCodec(Protocol):
    """Turns frames into bytes and back; ``DefaultCodec`` wraps ``agent.protocol.codec``."""

    def encode(self, frame: Frame) -> bytes: ...

    def decode(self, raw: wire.RawFrame) -> Frame: ...


def _codec_module() -> Any:
    """The codec module (a seam for tests)."""
    return codec


class DefaultCodec:
    """``FrameCodec`` over ``agent.protocol.codec`` with this link's cipher and signer."""

    def __init__(
        self,
        *,
        cipher: Cipher | None = None,
        signer: Signer | None = None,
        options: CodecOptions | None = None,
    ) -> None:
        self.cipher = cipher
        self.signer = signer
        self.options = options

    def encode(self, frame: Frame) -> bytes:
        """Encode, encrypting every non-empty data unit when a cipher is set."""
        cipher = self.cipher
        if cipher is not None and frame.encryption == Encryption.NONE and not isinstance(frame.body, Empty):
            frame = dataclasses.replace(frame, encryption=cipher.encryption)
        options = self.options or codec.DEFAULT
        return codec.encode_frame(frame, cipher=cipher, signer=self.signer, options=options)

    def decode(self, raw: wire.RawFrame) -> Frame:
        return codec.decode_raw(raw, cipher=self.cipher, options=self.options or codec.DEFAULT)


# =========================================================================== serial store


class SerialStore(Protocol):
    """Persists the daily login serial so a reboot within the (Beijing) day continues the count."""

    def load(self) -> tuple[date, int] | None: ...

    def save(self, day: date, serial: int) -> None: ...


class MemorySerialStore:
    """In-memory ``SerialStore`` (tests; a terminal without persistence)."""

    def __init__(self, day: date | None = None, serial: int = 0) -> None:
        self.value: tuple[date, int] | None = (day, serial) if day is not None else None

    def load(self) -> tuple[date, int] | None:
        return self.value

    def save(self, day: date, serial: int) -> None:
        self.value = (day, serial)


def next_serial(store: SerialStore, utc_now: datetime) -> int:
    """Take the next login serial: +1 per login, 1..65531, restarting at 1 each Beijing day; saved."""
    today = beijing_date(utc_now)
    saved = store.load()
    serial = saved[1] + 1 if saved is not None and saved[0] == today else 1
    if not 1 <= serial <= MAX_SERIAL:
        serial = 1
    store.save(today, serial)
    return serial


# =========================================================================== events


@dataclass(frozen=True)
class Event:
    """Base of every session event."""


@dataclass(frozen=True)
class ProtocolViolation(Event):
    """A received frame was corrupt, undecodable, unexpected or for another VIN; it was dropped."""

    reason: str
    offset: int | None = None
    field: str | None = None
    command: int | None = None


@dataclass(frozen=True)
class CloseRequested(Event):
    """The transport should close the connection (after logout, or on the peer's policy)."""

    reason: str


@dataclass(frozen=True)
class ReconnectRequested(Event):
    """The transport should close the link and open a new one, then call ``connection_made``."""

    reason: str  # "login_backoff" | "heartbeat_timeout"


# ---- client (terminal / forwarding platform) events


@dataclass(frozen=True)
class LoginSucceeded(Event):
    """The platform accepted the login: uploads may flow now."""

    serial: int


@dataclass(frozen=True)
class LoginFailed(Event):
    """A login attempt failed: ``flag`` None = no reply in time, else the platform's error flag.

    ``retry_at`` is when the next login goes out; with ``backoff`` the 0x0C wait started instead and
    ``ReconnectRequested`` follows at ``retry_at``.
    """

    serial: int
    consecutive: int
    flag: ResponseFlag | int | None
    retry_at: float
    backoff: bool


@dataclass(frozen=True)
class HeartbeatMissed(Event):
    """A heartbeat got no reply within the platform response timeout."""

    consecutive: int


@dataclass(frozen=True)
class LoggedOut(Event):
    """Logout finished (``acknowledged``: the platform replied before the timeout); close follows."""

    serial: int
    acknowledged: bool


@dataclass(frozen=True)
class UploadDelivered(Event):
    """A realtime/reissue frame is delivered: acknowledged by the platform, or no error reply came
    within the platform response timeout while the link held (Annex B: success is silent)."""

    command: Command | int
    time: datetime
    acknowledged: bool
    vin: str = ""


@dataclass(frozen=True)
class UploadRejected(Event):
    """The platform answered an upload with an error; it is resent at ``resend_at``."""

    command: Command | int
    time: datetime
    flag: ResponseFlag | int
    failures: int
    resend_at: float
    vin: str = ""


@dataclass(frozen=True)
class UploadAbandoned(Event):
    """An upload failed too often (or got a 2025 signature error, which is never blindly resent)."""

    command: Command | int
    time: datetime
    flag: ResponseFlag | int
    failures: int
    vin: str = ""


@dataclass(frozen=True)
class UploadUnconfirmed(Event):
    """The link ended before an upload's fate was known: the caller's store should keep it."""

    command: Command | int
    time: datetime
    vin: str = ""


@dataclass(frozen=True)
class SignatureRejected(Event):
    """2025 reply 0x05 (signature verification error) to an upload: keys need checking; not resent."""

    command: Command | int
    time: datetime | None


# ---- terminal-only events


@dataclass(frozen=True)
class TimeCalibrated(Event):
    """The platform's time from a 0x08 reply (UTC); nothing global is changed."""

    platform_time: datetime
    requested_at: float
    received_at: float


@dataclass(frozen=True)
class TimeCalibrationFailed(Event):
    """A time calibration attempt failed (``flag`` None = timeout); it is retried at ``retry_at``."""

    flag: ResponseFlag | int | None
    retry_at: float


@dataclass(frozen=True)
class ParametersChanged(Event):
    """A parameter set was acknowledged: apply these items (timers 0x09-0x0C already applied)."""

    time: datetime
    items: tuple[Parameter, ...]


@dataclass(frozen=True)
class ParametersRejected(Event):
    """A parameter set was rejected (reply 0x02 sent)."""

    time: datetime
    items: tuple[Parameter, ...]
    reason: str


@dataclass(frozen=True)
class PlatformChangeRequested(Event):
    """An acknowledged set changed the platform address: log in to the new platform, then call
    ``report_platform_change(succeeded, now)`` on this (old) session."""

    time: datetime
    items: tuple[Parameter, ...]


@dataclass(frozen=True)
class ControlRequested(Event):
    """A terminal control command was acknowledged: execute it now."""

    time: datetime
    command_id: ControlId | int
    params: object


@dataclass(frozen=True)
class ActivationResultReceived(Event):
    """2025 activation result 0x0A."""

    status: ActivationStatus | int
    info: ActivationInfo | int

    @property
    def activated(self) -> bool:
        return self.status == ActivationStatus.ACTIVATED


@dataclass(frozen=True)
class ActivationTimedOut(Event):
    """No 0x0A (nor an error reply) arrived within the timeout after an activation request."""


@dataclass(frozen=True)
class ActivationRefused(Event):
    """The platform answered the 0x09 frame itself with an error flag."""

    flag: ResponseFlag | int


@dataclass(frozen=True)
class KeyExchangeReceived(Event):
    """2025 key exchange 0x0B from the platform: build a new ``Cipher`` and ``set_cipher`` it."""

    key_exchange: KeyExchange = field(repr=False)  # carries a key: never in logs


# ---- platform-side events


@dataclass(frozen=True)
class VehicleLoggedIn(Event):
    """A vehicle login was accepted (success reply sent)."""

    vin: str
    serial: int
    login: object


@dataclass(frozen=True)
class LoginRefused(Event):
    """A login (vehicle or platform) was refused with ``flag`` (or ignored when ``flag`` is None)."""

    vin: str
    flag: ResponseFlag | int | None


@dataclass(frozen=True)
class ReportReceived(Event):
    """A realtime (0x02) or reissue (0x03) report; ``verified`` None = not checked (no verifier)."""

    vin: str
    command: Command | int
    report: RealtimeReport
    verified: bool | None


@dataclass(frozen=True)
class ReportRefused(Event):
    """An upload was answered with an error flag (bad BCC, undecodable, bad signature)."""

    vin: str
    command: Command | int
    flag: ResponseFlag | int
    reason: str


@dataclass(frozen=True)
class VehicleLoggedOut(Event):
    """The vehicle logged out (reply sent); the session is over."""

    vin: str
    serial: int


@dataclass(frozen=True)
class PlatformLoggedIn(Event):
    """A lower platform logged in (0x05) on this connection."""

    unique_id: str
    username: str
    serial: int
    encryption_rule: Encryption | int


@dataclass(frozen=True)
class PlatformLoggedOut(Event):
    """A lower platform logged out (0x06)."""

    unique_id: str
    serial: int


@dataclass(frozen=True)
class FrameIgnored(Event):
    """A well-formed frame was dropped by policy (e.g. before login)."""

    command: int
    reason: str


@dataclass(frozen=True)
class ActivationHandled(Event):
    """A 2025 activation request was answered with ``result`` (None: no answer)."""

    vin: str
    activation: Activation
    result: ActivationResult | None


@dataclass(frozen=True)
class DownlinkReplied(Event):
    """The terminal answered a downlink command (query/set/control)."""

    command: Command | int
    time: datetime
    flag: ResponseFlag | int
    body: object


@dataclass(frozen=True)
class DownlinkAbandoned(Event):
    """A downlink command got no reply after all attempts."""

    command: Command | int
    time: datetime
    attempts: int


@dataclass(frozen=True)
class SessionEnded(Event):
    """The platform session is over (logout, idle, policy); a ``CloseRequested`` accompanies it."""

    reason: str


@dataclass(frozen=True)
class FrameReceived(Event):
    """Any other accepted frame (heartbeat, time calibration, key exchange, vendor data…)."""

    frame: Frame


# =========================================================================== settings


class BeforeLogin(Enum):
    """What a platform does with frames that arrive before a successful login."""

    IGNORE = "ignore"
    CLOSE = "close"  # EMQX


def default_login_retry_interval(edition: Edition) -> float:
    """Annex B: 2016 re-login after 1 min (one paragraph says 3 min), 2025 after 3 min."""
    return 60.0 if edition == Edition.E2016 else 180.0


@dataclass(frozen=True)
class ClientTiming:
    """Timers of the uplink (terminal or forwarding-platform) side, seconds. See docs/session.md."""

    heartbeat_interval: float | None = 30.0  # param 0x09 (1-240 s); None: no heartbeats
    login_timeout: float = 60.0  # param 0x0A, "terminal response timeout" (our inference)
    reply_timeout: float = 30.0  # param 0x0B, "platform response timeout"
    login_retry_interval: float | None = None  # None: per edition, 60 s (2016) / 180 s (2025)
    login_backoff: float = 1800.0  # param 0x0C (1-240 min), after `max_login_attempts` failures
    max_login_attempts: int = 3
    heartbeat_misses: int = 3  # unanswered heartbeats before the link is declared dead
    resend_interval: float = 60.0  # upload resend after an error reply (Annex B: 1 min)
    max_resends: int = 3  # Annex B: give up after 3 failures
    calibration_retry_interval: float = 60.0  # after a 0x02 reply to time calibration
    wait_logout_reply: bool = True
    activation_timeout: float = 60.0
    #: a heartbeat goes out after this many uploads awaiting silent confirmation (0: never). Its reply
    #: proves every upload written before it: the platform reads one connection in order, so an error
    #: reply to any of them would have come first (docs/session.md "Delivery barrier")
    barrier_after: int = 100

    def retry_interval(self, edition: Edition) -> float:
        if self.login_retry_interval is not None:
            return self.login_retry_interval
        return default_login_retry_interval(edition)


@dataclass(frozen=True)
class TerminalConfig:
    """Identity and login contents of a terminal session.

    2016 login: ``ress_codes`` (all the same length m; empty → m = 0) and ``subsystem_count`` (None →
    number of codes, at least 1). 2025 login: ``packs_per_bms`` and ``pack_codes`` (24 chars each).
    """

    vin: str
    edition: Edition = Edition.E2016
    iccid: str = ""
    ress_codes: tuple[str, ...] = ()
    subsystem_count: int | None = None
    packs_per_bms: tuple[int, ...] = ()
    pack_codes: tuple[str, ...] = ()
    timing: ClientTiming = field(default_factory=ClientTiming)
    #: data unit of our replies to 0x81/0x82: TIME_ONLY keeps the request's time (default)
    reply_form: ResponseForm = ResponseForm.TIME_ONLY
    apply_timer_parameters: bool = True  # a successful set of 0x09-0x0C updates `timing`


class TerminalHandler:
    """Downlink policy for a terminal; subclass it. The defaults answer nothing and accept nothing."""

    def query_parameters(self, ids: tuple[int, ...]) -> Sequence[Parameter] | None:
        """Values for a 0x80 query; None = bad query, stay silent."""
        return None

    def validate_parameters(self, items: tuple[Parameter, ...]) -> bool:
        """Whether every item of a 0x81 set is acceptable (0x07/0x08 are refused before this)."""
        return False

    def validate_control(self, control: TerminalControl) -> bool:
        """Whether a 0x82 command can be executed; False = ignore it silently."""
        return isinstance(control.command_id, ControlId)


# =========================================================================== shared machinery


@dataclass
class _Upload:
    command: Command | int
    vin: str
    time: datetime
    data: bytes
    failures: int = 0
    confirm_at: float | None = None
    resend_at: float | None = None
    seq: int = 0  # output order of its last transmission (delivery barrier)


class _Base:
    """Framing, decoding and the output buffer shared by every session kind."""

    def __init__(
        self,
        edition: Edition,
        wallclock: Callable[[], datetime],
        codec: FrameCodec | None,
        cipher: Cipher | None,
        signer: Signer | None,
        verifier: Verifier | None,
    ) -> None:
        self.edition = edition
        self.wallclock = wallclock
        self.verifier = verifier
        self.codec: FrameCodec = codec if codec is not None else DefaultCodec(cipher=cipher, signer=signer)
        self._framer = wire.Framer()
        self._out = bytearray()

    # ---- output

    def data_to_send(self) -> bytes:
        """Bytes to write to the link, in order; the buffer is emptied."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def set_cipher(self, cipher: Cipher | None) -> None:
        """Use another data-unit cipher from now on (e.g. after a 2025 key exchange)."""
        if isinstance(self.codec, DefaultCodec):
            self.codec.cipher = cipher
        else:
            raise SessionStateError("set_cipher needs the DefaultCodec; reconfigure the custom codec")

    def _utc(self) -> datetime:
        return _second(self.wallclock().astimezone(UTC))

    def _emit(self, frame: Frame) -> bytes:
        data = self.codec.encode(frame)
        self._out += data
        log.debug("sent cmd 0x%02X flag 0x%02X, %d bytes", int(frame.command), int(frame.response), len(data))
        return data

    # ---- input

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed received bytes (any chunking); returns the events they caused. Never raises on bad data."""
        events: list[Event] = []
        for raw in self._framer.feed(data):
            if not raw.bcc_ok:
                events.extend(self._bad_bcc(raw, now))
                continue
            try:
                frame = self.codec.decode(raw)
            except ProtocolError as exc:
                events.extend(self._undecodable(raw, exc, now))
                continue
            except _DECODE_BUGS as exc:  # a decoder bug must not kill the link: report it as corrupt data
                log.exception("decoder failed on cmd 0x%02X", raw.command)
                error = ProtocolError(f"decoder failed: {exc!r}", 24, "data")
                events.extend(self._undecodable(raw, error, now))
                continue
            events.extend(self.receive_frame(frame, now))
        return events

    def receive_frame(self, frame: Frame, now: float) -> list[Event]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bad_bcc(self, raw: wire.RawFrame, now: float) -> list[Event]:
        log.warning("dropped a frame with a bad BCC (cmd 0x%02X)", raw.command)
        return [ProtocolViolation("BCC mismatch", len(raw.raw) - 1, "bcc", raw.command)]

    def _undecodable(self, raw: wire.RawFrame, exc: ProtocolError, now: float) -> list[Event]:
        log.warning("dropped an undecodable frame (cmd 0x%02X): %s", raw.command, exc)
        return [ProtocolViolation(exc.reason, exc.offset, exc.field, raw.command)]


# =========================================================================== client side


class ClientState(Enum):
    """States of the uplink side (terminal, forwarding platform). See docs/session.md."""

    DISCONNECTED = "disconnected"  # no link; waiting for connection_made
    LOGGING_IN = "logging_in"  # login sent, waiting for the reply
    LOGIN_WAIT = "login_wait"  # a login failed; the next one goes out at the retry time
    BACKOFF = "backoff"  # max_login_attempts failed; waiting param 0x0C, then reconnect
    ONLINE = "online"  # logged in
    LOGGING_OUT = "logging_out"  # logout sent, waiting for the reply
    CLOSED = "closed"  # logged out; connection_made starts again


class _ClientSession(_Base):
    """Login with retries and backoff, heartbeat, upload tracking and logout (uplink side)."""

    login_command: Command = Command.VEHICLE_LOGIN
    logout_command: Command = Command.VEHICLE_LOGOUT

    def __init__(
        self,
        identity: str,
        edition: Edition,
        timing: ClientTiming,
        wallclock: Callable[[], datetime],
        serial_store: SerialStore | None,
        codec: FrameCodec | None,
        cipher: Cipher | None,
        signer: Signer | None,
        verifier: Verifier | None,
    ) -> None:
        super().__init__(edition, wallclock, codec, cipher, signer, verifier)
        self.identity = identity
        self.timing = timing
        self.serial_store: SerialStore = serial_store if serial_store is not None else MemorySerialStore()
        self.state = ClientState.DISCONNECTED
        self.serial: int | None = None  # serial of the current (or last attempted) login
        self.connected = False
        self.login_failures = 0  # consecutive
        self._fresh_connection = False
        self._login_deadline: float | None = None
        self._login_retry_at: float | None = None
        self._backoff_until: float | None = None
        self._last_sent: float = 0.0
        self._heartbeat_deadline: float | None = None
        self.heartbeat_misses = 0
        self._logout_deadline: float | None = None
        self._uploads: OrderedDict[tuple[int, str, datetime], _Upload] = OrderedDict()
        #: uploads settled without their reply (timeout, delivery barrier), newest last: a late reply to one
        #: of them must not be taken for the reply to another pending upload (see ``_find_upload``)
        self._settled: OrderedDict[tuple[int, str, datetime], None] = OrderedDict()
        self._seq = 0  # uploads written so far (incl. resends)
        #: _seq when each unanswered heartbeat was written, oldest first (replies come in order)
        self._barriers: deque[int] = deque()
        self._since_barrier = 0  # uploads awaiting silent confirmation written after the last heartbeat

    # ---- state queries

    @property
    def logged_in(self) -> bool:
        """True when uploads may be sent."""
        return self.state is ClientState.ONLINE

    def next_deadline(self) -> float | None:
        """The earliest time ``tick`` has work to do (None: nothing scheduled)."""
        times = [t for t in self._deadlines() if t is not None]
        return min(times) if times else None

    def _deadlines(self) -> list[float | None]:
        out: list[float | None] = [
            self._login_deadline,
            self._login_retry_at,
            self._backoff_until,
            self._heartbeat_deadline,
            self._logout_deadline,
            self._heartbeat_due(),
        ]
        for up in self._uploads.values():
            out.append(up.confirm_at)
            out.append(up.resend_at)
        return out

    def _heartbeat_due(self) -> float | None:
        interval = self.timing.heartbeat_interval
        if self.state is not ClientState.ONLINE or not interval or self._heartbeat_deadline is not None:
            return None
        return self._last_sent + interval

    # ---- link lifecycle

    def connection_made(self, now: float) -> list[Event]:
        """The transport connected: log in now (or when a running 0x0C backoff ends)."""
        self.connected = True
        self._framer = wire.Framer()
        backoff = self._backoff_until
        if self.state is ClientState.BACKOFF and backoff is not None and now < backoff:
            self._fresh_connection = True
            return []
        if backoff is not None:  # the wait ended before anyone ticked: the count restarts too
            self._backoff_until = None
            self.login_failures = 0
        self._send_login(now)
        return []

    def relogin(self, now: float) -> list[Event]:
        """Log in again on the open link with a new serial (2025: after a battery swap). Uploads wait
        for the success reply like after a first login."""
        if not self.connected:
            raise SessionStateError("relogin needs an open link")
        self._heartbeat_deadline = None
        self._send_login(now)
        return []

    def connection_lost(self, now: float) -> list[Event]:
        """The transport lost the link: pending uploads become unconfirmed; wait for connection_made."""
        self.connected = False
        events = self._drop_uploads()
        self._settled.clear()  # no reply of the lost link can arrive on the next one
        self._login_deadline = self._login_retry_at = None
        self._heartbeat_deadline = self._logout_deadline = None
        self._on_link_down()
        if self.state is not ClientState.BACKOFF:
            self.state = ClientState.DISCONNECTED if self.state is not ClientState.CLOSED else self.state
        self._fresh_connection = False
        return events

    def _on_link_down(self) -> None:
        """Hook: forget per-connection state of subclasses."""

    def _drop_uploads(self) -> list[Event]:
        events: list[Event] = [UploadUnconfirmed(u.command, u.time, u.vin) for u in self._uploads.values()]
        self._uploads.clear()
        self._barriers.clear()  # replies to heartbeats of a lost link never come
        self._since_barrier = 0
        return events

    # ---- login

    def _login_body(self, utc: datetime, serial: int) -> DataUnit:  # pragma: no cover - abstract
        raise NotImplementedError

    def _logout_body(self, utc: datetime, serial: int) -> DataUnit:
        return VehicleLogout(utc, serial)

    def _frame(self, command: Command | int, body: DataUnit, vin: str | None = None) -> Frame:
        target = self.identity if vin is None else vin
        return Frame(self.edition, command, ResponseFlag.COMMAND, target, Encryption.NONE, body)

    def _send_login(self, now: float) -> None:
        utc = self._utc()
        self.serial = next_serial(self.serial_store, utc)
        self._emit(self._frame(self.login_command, self._login_body(utc, self.serial)))
        self._last_sent = now
        self.state = ClientState.LOGGING_IN
        self._login_deadline = now + self.timing.login_timeout
        self._login_retry_at = None
        log.info("login sent, serial %d", self.serial)

    def _login_failed(self, now: float, flag: ResponseFlag | int | None) -> list[Event]:
        self.login_failures += 1
        self._login_deadline = None
        serial = self.serial or 0
        if self.login_failures >= self.timing.max_login_attempts:
            self.state = ClientState.BACKOFF
            self._backoff_until = now + self.timing.login_backoff
            self._fresh_connection = False
            log.warning("%d consecutive logins failed; waiting %.0f s", self.login_failures,
                        self.timing.login_backoff)
            return [LoginFailed(serial, self.login_failures, flag, self._backoff_until, True)]
        self.state = ClientState.LOGIN_WAIT
        self._login_retry_at = now + self.timing.retry_interval(self.edition)
        log.warning("login failed (%s); retry at %.0f", "timeout" if flag is None else f"flag {flag}",
                    self._login_retry_at)
        return [LoginFailed(serial, self.login_failures, flag, self._login_retry_at, False)]

    def _login_reply(self, frame: Frame, now: float) -> list[Event]:
        if self.state not in (ClientState.LOGGING_IN, ClientState.LOGIN_WAIT):
            return [ProtocolViolation("login reply while not logging in", None, None, frame.command)]
        if frame.response == ResponseFlag.SUCCESS:
            self.state = ClientState.ONLINE
            self.login_failures = 0
            self._login_deadline = self._login_retry_at = None
            self.heartbeat_misses = 0
            self._heartbeat_deadline = None
            log.info("logged in, serial %s", self.serial)
            return [LoginSucceeded(self.serial or 0), *self._on_logged_in(now)]
        if self.state is ClientState.LOGIN_WAIT:  # a late error to an attempt already counted
            return []
        return self._login_failed(now, _flag(frame.response))

    def _on_logged_in(self, now: float) -> list[Event]:
        """Hook: work to resume once logged in."""
        return []

    # ---- uploads

    def _require_online(self, what: str) -> None:
        if self.state is not ClientState.ONLINE:
            raise SessionStateError(f"cannot send {what} in state {self.state.value}: not logged in")

    def _send_upload(self, command: Command, body: RealtimeReport, now: float,
                     vin: str | None = None) -> list[Event]:
        self._require_online(command.name.lower())
        target = self.identity if vin is None else vin
        data = self._emit(self._frame(command, body, vin=target))
        self._last_sent = now
        key = (int(command), target, body.time)
        if key in self._uploads:
            log.warning("a %s with the same time is already pending; tracking the newer one", command.name)
            del self._uploads[key]
        confirm_at = now + self.timing.reply_timeout
        self._seq += 1
        self._uploads[key] = _Upload(command, target, body.time, data, confirm_at=confirm_at, seq=self._seq)
        events: list[Event] = []
        while len(self._uploads) > _UPLOAD_TRACK_LIMIT:  # never silently: the store keeps the oldest
            _, old = self._uploads.popitem(last=False)
            events.append(UploadUnconfirmed(old.command, old.time, old.vin))
        self._since_barrier += 1
        if self.timing.barrier_after and self._since_barrier >= self.timing.barrier_after:
            self._send_heartbeat(now)
        return events

    def _send_heartbeat(self, now: float) -> None:
        """Write a heartbeat; its reply is also a delivery barrier. Barriers are pipelined (at most
        ``_MAX_BARRIERS`` unanswered); the missed-heartbeat deadline runs from the oldest unanswered one."""
        if len(self._barriers) >= _MAX_BARRIERS:
            return
        self._emit(self._frame(Command.HEARTBEAT, Empty()))
        self._last_sent = now
        if self._heartbeat_deadline is None:
            self._heartbeat_deadline = now + self.timing.reply_timeout
        self._barriers.append(self._seq)
        self._since_barrier = 0

    def _heartbeat_reply(self, now: float) -> list[Event]:
        """Every upload written before the heartbeat and not answered with an error got through; a
        barrier chain ends with the first heartbeat after which nothing more was uploaded."""
        self._heartbeat_deadline = None
        if not self._barriers:
            return []
        barrier = self._barriers.popleft()  # a lost reply makes later ones prove less, never more
        events: list[Event] = []
        for key, up in list(self._uploads.items()):
            if up.seq <= barrier and up.confirm_at is not None:
                del self._uploads[key]
                self._settle_unanswered(up)
                events.append(UploadDelivered(up.command, up.time, False, up.vin))
        if (self._since_barrier and not self._barriers and self.timing.barrier_after
                and self.state is ClientState.ONLINE):  # the last barrier is back: cover the tail
            self._send_heartbeat(now)
        return events

    def _settle_unanswered(self, up: _Upload) -> None:
        """Remember an upload settled without its reply (bounded)."""
        self._settled[(int(up.command), up.vin, up.time)] = None
        if len(self._settled) > _SETTLED_LIMIT:
            self._settled.popitem(last=False)

    def _find_upload(self, command: int, vin: str, body: object) -> _Upload | None:
        t = _time_of(body)
        if t is not None:
            up = self._uploads.get((command, vin, t))
            if up is not None:
                return up
            if (command, vin, t) in self._settled:
                return None  # a late reply to an upload already settled by its timeout or a barrier
        # no (matching) time: the oldest pending upload of that command (L = 0 replies, and platforms
        # that put their own time in the reply)
        for up in self._uploads.values():
            if int(up.command) == command and up.vin == vin:
                return up
        return None

    def _upload_reply(self, frame: Frame, now: float) -> list[Event]:
        up = self._find_upload(int(frame.command), frame.vin, frame.body)
        if up is None:
            if frame.response == ResponseFlag.SUCCESS:
                return []  # a late success for something already settled: harmless
            return [ProtocolViolation("error reply matches no pending upload", None, None, frame.command)]
        key = (int(up.command), up.vin, up.time)
        flag = _flag(frame.response)
        if flag == ResponseFlag.SUCCESS:
            del self._uploads[key]
            return [UploadDelivered(up.command, up.time, True, up.vin)]
        up.failures += 1
        if self.edition == Edition.E2025 and flag == ResponseFlag.SIGNATURE_ERROR:
            del self._uploads[key]
            log.warning("signature rejected for %s", up.command)
            return [SignatureRejected(up.command, up.time),
                    UploadAbandoned(up.command, up.time, flag, up.failures, up.vin)]
        if up.failures > self.timing.max_resends:
            del self._uploads[key]
            log.warning("giving up on a %s after %d error replies", up.command, up.failures)
            return [UploadAbandoned(up.command, up.time, flag, up.failures, up.vin)]
        up.confirm_at = None
        up.resend_at = now + self.timing.resend_interval
        return [UploadRejected(up.command, up.time, flag, up.failures, up.resend_at, up.vin)]

    # ---- logout

    def logout(self, now: float) -> list[Event]:
        """Send logout (0x04; 0x06 for a forwarding platform) with the current login's serial."""
        if self.state is not ClientState.ONLINE:
            self.state = ClientState.CLOSED
            self._login_deadline = self._login_retry_at = self._backoff_until = None
            return [*self._drop_uploads(), CloseRequested("logout")]
        serial = self.serial or 0
        self._emit(self._frame(self.logout_command, self._logout_body(self._utc(), serial)))
        self._last_sent = now
        self.state = ClientState.LOGGING_OUT
        self._heartbeat_deadline = None
        if self.timing.wait_logout_reply:
            self._logout_deadline = now + self.timing.reply_timeout
            return []
        return self._finish_logout(False)

    def _finish_logout(self, acknowledged: bool) -> list[Event]:
        events: list[Event] = []
        for up in self._uploads.values():
            if acknowledged and up.resend_at is None:
                events.append(UploadDelivered(up.command, up.time, False, up.vin))
            else:
                events.append(UploadUnconfirmed(up.command, up.time, up.vin))
        self._uploads.clear()
        self._logout_deadline = None
        self.state = ClientState.CLOSED
        events += [LoggedOut(self.serial or 0, acknowledged), CloseRequested("logout")]
        return events

    # ---- timers

    def tick(self, now: float) -> list[Event]:
        """Run every timer due at ``now``: login timeout/retry/backoff, heartbeats, resends, logout."""
        events: list[Event] = []
        if self._login_deadline is not None and now >= self._login_deadline:
            events += self._login_failed(now, None)
        if self._login_retry_at is not None and now >= self._login_retry_at:
            self._login_retry_at = None
            if self.connected:
                self._send_login(now)
        if self._backoff_until is not None and now >= self._backoff_until:
            self._backoff_until = None
            self.login_failures = 0
            if self.connected and self._fresh_connection:
                self._send_login(now)
            else:
                self.connected = False
                self.state = ClientState.DISCONNECTED
                events.append(ReconnectRequested("login_backoff"))
        if self._logout_deadline is not None and now >= self._logout_deadline:
            events += self._finish_logout(False)
        if self.state is ClientState.ONLINE:
            events += self._tick_heartbeat(now)
        if self.state is ClientState.ONLINE:
            events += self._tick_uploads(now)
        events += self._tick_extra(now)
        return events

    def _tick_extra(self, now: float) -> list[Event]:
        return []

    def _tick_heartbeat(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self._heartbeat_deadline is not None and now >= self._heartbeat_deadline:
            self._heartbeat_deadline = None
            self.heartbeat_misses += 1
            events.append(HeartbeatMissed(self.heartbeat_misses))
            if self.heartbeat_misses >= self.timing.heartbeat_misses:
                log.warning("%d heartbeats unanswered: link dead", self.heartbeat_misses)
                events += self._drop_uploads()
                self.connected = False
                self.state = ClientState.DISCONNECTED
                self.heartbeat_misses = 0
                self._on_link_down()
                events.append(ReconnectRequested("heartbeat_timeout"))
                return events
        due = self._heartbeat_due()
        if due is not None and now >= due:
            self._send_heartbeat(now)
        return events

    def _tick_uploads(self, now: float) -> list[Event]:
        events: list[Event] = []
        for key, up in list(self._uploads.items()):
            if up.confirm_at is not None and now >= up.confirm_at:
                del self._uploads[key]
                self._settle_unanswered(up)
                events.append(UploadDelivered(up.command, up.time, False, up.vin))
            elif up.resend_at is not None and now >= up.resend_at:
                self._out += up.data
                self._last_sent = now
                self._seq += 1
                up.seq = self._seq
                up.resend_at = None
                up.confirm_at = now + self.timing.reply_timeout
                log.info("resent %s (failure %d)", up.command, up.failures)
        return events

    # ---- dispatch

    def receive_frame(self, frame: Frame, now: float) -> list[Event]:
        """Handle one decoded frame from the platform (the byte layer calls this)."""
        if self.state in (ClientState.DISCONNECTED, ClientState.CLOSED) and not self.connected:
            return [ProtocolViolation("frame while not connected", None, None, int(frame.command))]
        if not self._accept_identity(frame):
            return [ProtocolViolation(f"frame for another identity {frame.vin!r}", 4, "vin",
                                      int(frame.command))]
        # any well-formed frame from the platform proves the link is alive
        self.heartbeat_misses = 0
        self._heartbeat_deadline = None
        if frame.response == ResponseFlag.COMMAND:
            return self._command(frame, now)
        return self._response(frame, now)

    def _accept_identity(self, frame: Frame) -> bool:
        return frame.vin == self.identity

    def _response(self, frame: Frame, now: float) -> list[Event]:
        cmd = int(frame.command)
        if cmd == self.login_command:
            return self._login_reply(frame, now)
        if cmd in (Command.REALTIME, Command.REISSUE):
            return self._upload_reply(frame, now)
        if cmd == Command.HEARTBEAT:
            return self._heartbeat_reply(now)
        if cmd == self.logout_command:
            if self.state is ClientState.LOGGING_OUT:
                return self._finish_logout(frame.response == ResponseFlag.SUCCESS)
            return []
        return self._other_response(frame, now)

    def _other_response(self, frame: Frame, now: float) -> list[Event]:
        return [ProtocolViolation("unsolicited response", 2, "command", int(frame.command))]

    def _command(self, frame: Frame, now: float) -> list[Event]:
        return [ProtocolViolation("unexpected command", 2, "command", int(frame.command))]


# =========================================================================== terminal


class TerminalSession(_ClientSession):
    """The T-Box side of one platform link (spec §6, 2025 §4). See docs/session.md.

    Commands: ``connection_made``, ``connection_lost``, ``relogin``, ``send_realtime``, ``send_reissue``,
    ``request_time_calibration``, ``cancel_time_calibration``, ``activate``, ``send_key_exchange``,
    ``report_platform_change``, ``logout``. Input: ``receive_data`` / ``receive_frame``, ``tick``.
    """

    def __init__(
        self,
        config: TerminalConfig,
        *,
        wallclock: Callable[[], datetime],
        serial_store: SerialStore | None = None,
        handler: TerminalHandler | None = None,
        codec: FrameCodec | None = None,
        cipher: Cipher | None = None,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        super().__init__(config.vin, config.edition, config.timing, wallclock, serial_store, codec, cipher,
                         signer, verifier)
        self.config = config
        self.handler = handler if handler is not None else TerminalHandler()
        self.signer = signer
        self._handled: OrderedDict[tuple[int, datetime], bytes | None] = OrderedDict()
        self._calibration_wanted = False
        self._calibration_requested_at = 0.0
        self._calibration_deadline: float | None = None
        self._calibration_retry_at: float | None = None
        self._activation_deadline: float | None = None
        self._platform_change: ParameterSet | None = None

    @property
    def vin(self) -> str:
        return self.identity

    # ---- login contents

    def _login_body(self, utc: datetime, serial: int) -> DataUnit:
        c = self.config
        if self.edition == Edition.E2025:
            return VehicleLogin2025(utc, serial, c.iccid, c.packs_per_bms, c.pack_codes)
        codes = c.ress_codes
        length = len(codes[0]) if codes else 0
        count = c.subsystem_count if c.subsystem_count is not None else max(1, len(codes))
        return VehicleLogin(utc, serial, c.iccid, count, length, codes)

    # ---- uploads

    def send_realtime(self, report: RealtimeReport, now: float) -> list[Event]:
        """Send a realtime report (0x02). Raises ``SessionStateError`` unless logged in: the caller's
        store keeps the report (it goes out later as a reissue)."""
        return self._send_upload(Command.REALTIME, report, now)

    def send_reissue(self, report: RealtimeReport, now: float) -> list[Event]:
        """Send a stored report as reissue (0x03), original collection time. Same rules as realtime."""
        return self._send_upload(Command.REISSUE, report, now)

    @property
    def pending_uploads(self) -> int:
        """Uploads whose fate is not known yet."""
        return len(self._uploads)

    # ---- time calibration

    def request_time_calibration(self, now: float) -> list[Event]:
        """Ask the platform's time (0x08), retrying until it succeeds; sent once logged in."""
        self._calibration_wanted = True
        self._calibration_requested_at = now
        if self.state is ClientState.ONLINE and self._calibration_deadline is None:
            self._send_calibration(now)
        return []

    def cancel_time_calibration(self) -> None:
        """Stop retrying (e.g. GNSS time came back)."""
        self._calibration_wanted = False
        self._calibration_deadline = self._calibration_retry_at = None

    def _send_calibration(self, now: float) -> None:
        self._emit(self._frame(Command.TIME_CALIBRATION, Empty()))
        self._last_sent = now
        self._calibration_retry_at = None
        self._calibration_deadline = now + self.timing.reply_timeout

    def _calibration_reply(self, frame: Frame, now: float) -> list[Event]:
        if not self._calibration_wanted:
            return []
        self._calibration_deadline = None
        t = _time_of(frame.body)
        if frame.response == ResponseFlag.SUCCESS and t is not None:
            self.cancel_time_calibration()
            return [TimeCalibrated(t, self._calibration_requested_at, now)]
        self._calibration_retry_at = now + self.timing.calibration_retry_interval
        return [TimeCalibrationFailed(_flag(frame.response), self._calibration_retry_at)]

    def _on_logged_in(self, now: float) -> list[Event]:
        if self._calibration_wanted:
            self._send_calibration(now)
        return []

    def _on_link_down(self) -> None:
        self._calibration_deadline = self._calibration_retry_at = None
        self._activation_deadline = None

    # ---- activation and keys (2025)

    def activate(self, now: float, chip_id: str, public_key: bytes) -> list[Event]:
        """Send 2025 activation 0x09, signed by the injected ``Signer`` over time..VIN.

        Allowed on any open link, also before login (the standard does not order the two)."""
        if self.edition != Edition.E2025:
            raise SessionStateError("activation exists only in the 2025 edition")
        if self.signer is None:
            raise SessionStateError("activation needs a Signer")
        if not self.connected:
            raise SessionStateError("activation needs an open link")
        utc = self._utc()
        unsigned = Activation(utc, chip_id, public_key, self.vin, Signature(0, b""))
        signature = self.signer.sign(activation_signed_bytes(unsigned))
        self._emit(self._frame(Command.ACTIVATION, dataclasses.replace(unsigned, signature=signature)))
        self._last_sent = now
        self._activation_deadline = now + self.timing.activation_timeout
        return []

    def send_key_exchange(self, key_exchange: KeyExchange, now: float) -> list[Event]:
        """Send a 2025 key exchange 0x0B to the platform (logged in)."""
        self._require_online("key exchange")
        self._emit(self._frame(Command.KEY_EXCHANGE, key_exchange))
        self._last_sent = now
        return []

    # ---- timers

    def _deadlines(self) -> list[float | None]:
        return [*super()._deadlines(), self._calibration_deadline, self._calibration_retry_at,
                self._activation_deadline]

    def _tick_extra(self, now: float) -> list[Event]:
        events: list[Event] = []
        if self._activation_deadline is not None and now >= self._activation_deadline:
            self._activation_deadline = None
            events.append(ActivationTimedOut())
        if self.state is not ClientState.ONLINE or not self._calibration_wanted:
            return events
        if self._calibration_deadline is not None and now >= self._calibration_deadline:
            self._calibration_deadline = None
            events.append(TimeCalibrationFailed(None, now))
            self._send_calibration(now)
        elif self._calibration_retry_at is not None and now >= self._calibration_retry_at:
            self._send_calibration(now)
        return events

    # ---- responses and downlink commands

    def _other_response(self, frame: Frame, now: float) -> list[Event]:
        cmd = int(frame.command)
        if cmd == Command.TIME_CALIBRATION:
            return self._calibration_reply(frame, now)
        if cmd == Command.ACTIVATION:
            if frame.response == ResponseFlag.SUCCESS:
                return []
            self._activation_deadline = None
            return [ActivationRefused(_flag(frame.response))]
        if cmd == Command.KEY_EXCHANGE:
            return []
        return super()._other_response(frame, now)

    def _command(self, frame: Frame, now: float) -> list[Event]:
        cmd = int(frame.command)
        body = frame.body
        if cmd == Command.ACTIVATION_RESULT and isinstance(body, ActivationResult):
            self._activation_deadline = None
            return [ActivationResultReceived(body.status, body.info)]
        if cmd == Command.KEY_EXCHANGE and isinstance(body, KeyExchange):
            return [KeyExchangeReceived(body)]
        if cmd not in (Command.PARAMETER_QUERY, Command.PARAMETER_SET, Command.TERMINAL_CONTROL):
            return [ProtocolViolation("unexpected command", 2, "command", cmd)]
        if self.state is not ClientState.ONLINE:
            return [FrameIgnored(cmd, "downlink command before login")]
        t = _time_of(body)
        if t is None:
            return [ProtocolViolation("downlink command without a time", 24, "time", cmd)]
        key = (cmd, t)
        if key in self._handled:  # the platform resent it: answer again, never execute twice
            reply = self._handled[key]
            if reply is not None:
                self._out += reply
                self._last_sent = now
            return []
        if isinstance(body, ParameterQuery):
            events, reply = self._query(frame, body)
        elif isinstance(body, ParameterSet):
            events, reply = self._set(frame, body)
        elif isinstance(body, TerminalControl):
            events, reply = self._control(frame, body)
        else:
            return [ProtocolViolation("undecoded downlink body", 24, "data", cmd)]
        if reply is not None:
            self._last_sent = now
        self._handled[key] = reply
        while len(self._handled) > _DEDUPE_SIZE:
            self._handled.popitem(last=False)
        return events

    def _reply(self, frame: Frame, flag: ResponseFlag, body: DataUnit) -> bytes:
        return self._emit(Frame(self.edition, frame.command, flag, self.vin, Encryption.NONE, body))

    def _reply_body(self, request: DataUnit, t: datetime) -> DataUnit:
        form = self.config.reply_form
        if form is ResponseForm.EMPTY:
            return Empty()
        if form is ResponseForm.ECHO:
            return request
        return TimeOnly(t)

    def _query(self, frame: Frame, body: ParameterQuery) -> tuple[list[Event], bytes | None]:
        items = self.handler.query_parameters(tuple(int(i) for i in body.ids))
        if items is None:
            return [FrameIgnored(int(frame.command), "query refused by the handler")], None
        return [], self._reply(frame, ResponseFlag.SUCCESS, ParameterQueryReply(body.time, tuple(items)))

    def _set(self, frame: Frame, body: ParameterSet) -> tuple[list[Event], bytes | None]:
        read_only = [p for p in body.items if int(p.id) in READ_ONLY_PARAMETERS]
        reason = ""
        if read_only:
            reason = f"read-only parameter 0x{int(read_only[0].id):02X}"
        elif not body.items or not self.handler.validate_parameters(body.items):
            reason = "rejected by the handler"
        if reason:
            reply = self._reply(frame, ResponseFlag.ERROR, self._reply_body(body, body.time))
            return [ParametersRejected(body.time, body.items, reason)], reply
        reply = self._reply(frame, ResponseFlag.SUCCESS, self._reply_body(body, body.time))
        if self.config.apply_timer_parameters:
            self._apply_timers(body.items)
        events: list[Event] = [ParametersChanged(body.time, body.items)]
        if any(int(p.id) in PLATFORM_ADDRESS_PARAMETERS for p in body.items):
            self._platform_change = body
            events.append(PlatformChangeRequested(body.time, body.items))
        return events, reply

    def _apply_timers(self, items: tuple[Parameter, ...]) -> None:
        changes: dict[str, float] = {}
        for p in items:
            if not isinstance(p.value, int) or isinstance(p.value, bool):
                continue
            pid = int(p.id)
            if pid == ParameterId.HEARTBEAT_PERIOD:
                changes["heartbeat_interval"] = float(p.value)
            elif pid == ParameterId.TERMINAL_RESPONSE_TIMEOUT:
                changes["login_timeout"] = float(p.value)
            elif pid == ParameterId.PLATFORM_RESPONSE_TIMEOUT:
                changes["reply_timeout"] = float(p.value)
            elif pid == ParameterId.LOGIN_RETRY_INTERVAL:
                changes["login_backoff"] = 60.0 * p.value
        if changes:
            self.timing = dataclasses.replace(self.timing, **changes)  # type: ignore[arg-type]

    def report_platform_change(self, succeeded: bool, now: float) -> list[Event]:
        """Outcome of the login to the new platform after ``PlatformChangeRequested``. On failure the
        caller restores its old settings and this session sends 0x81 "error" to the old platform."""
        request = self._platform_change
        if request is None:
            raise SessionStateError("no platform change is pending")
        if not succeeded:
            self._require_online("the platform-change error response")
        self._platform_change = None
        if succeeded:
            return []
        frame = Frame(self.edition, Command.PARAMETER_SET, ResponseFlag.COMMAND, self.vin)
        data = self._reply(frame, ResponseFlag.ERROR, self._reply_body(request, request.time))
        self._handled[(int(Command.PARAMETER_SET), request.time)] = data
        self._last_sent = now
        return []

    def _control(self, frame: Frame, body: TerminalControl) -> tuple[list[Event], bytes | None]:
        if not self.handler.validate_control(body):
            return [FrameIgnored(int(frame.command), "control refused by the handler")], None
        reply = self._reply(frame, ResponseFlag.SUCCESS, self._reply_body(body, body.time))
        return [ControlRequested(body.time, body.command_id, body.params)], reply


def activation_signed_bytes(activation: Activation) -> bytes:
    """The bytes a 2025 activation signature covers: time, chip id (16, space-padded), key length,
    public key, VIN (Table B.3; spec 2025 §3.8) — ``codec.signed_range``."""
    data: bytes = _codec_module().signed_range(Edition.E2025, activation)
    return data


# =========================================================================== forwarding client


@dataclass(frozen=True)
class ForwardingConfig:
    """A lower platform forwarding data to an upper one (Body: platform login 0x05 / logout 0x06)."""

    unique_id: str  # the 17-character "VIN" field of platform login/logout frames
    username: str
    password: str = field(repr=False)
    edition: Edition = Edition.E2016
    encryption_rule: Encryption | int = Encryption.NONE
    timing: ClientTiming = field(default_factory=lambda: ClientTiming(heartbeat_interval=None))


class ForwardingSession(_ClientSession):
    """Client side of platform-to-platform forwarding: platform login/logout with the vehicle-login
    retry rules, then ``forward`` of vehicles' realtime/reissue reports (replies tracked per VIN)."""

    login_command = Command.PLATFORM_LOGIN
    logout_command = Command.PLATFORM_LOGOUT

    def __init__(
        self,
        config: ForwardingConfig,
        *,
        wallclock: Callable[[], datetime],
        serial_store: SerialStore | None = None,
        codec: FrameCodec | None = None,
        cipher: Cipher | None = None,
        signer: Signer | None = None,
    ) -> None:
        super().__init__(config.unique_id, config.edition, config.timing, wallclock, serial_store, codec,
                         cipher, signer, None)
        self.config = config

    def _login_body(self, utc: datetime, serial: int) -> DataUnit:
        c = self.config
        return PlatformLogin(utc, serial, c.username, c.password, c.encryption_rule)

    def _logout_body(self, utc: datetime, serial: int) -> DataUnit:
        return PlatformLogout(utc, serial)

    def _accept_identity(self, frame: Frame) -> bool:
        return True  # replies to forwarded data carry the vehicles' VINs

    def forward(self, vin: str, command: Command, report: RealtimeReport, now: float) -> list[Event]:
        """Forward one vehicle's realtime (0x02) or reissue (0x03) report."""
        if command not in (Command.REALTIME, Command.REISSUE):
            raise SessionStateError("only realtime and reissue reports are forwarded")
        return self._send_upload(command, report, now, vin=vin)

    def _response(self, frame: Frame, now: float) -> list[Event]:
        if frame.vin != self.identity and int(frame.command) not in (Command.REALTIME, Command.REISSUE):
            return [ProtocolViolation(f"frame for another identity {frame.vin!r}", 4, "vin",
                                      int(frame.command))]
        return super()._response(frame, now)


# =========================================================================== platform side


@dataclass(frozen=True)
class PlatformConfig:
    """Policy of the platform (server) side of one connection. See docs/session.md."""

    response_form: ResponseForm = ResponseForm.TIME_ONLY
    before_login: BeforeLogin = BeforeLogin.IGNORE
    reply_realtime_success: bool = False  # Body-style platforms acknowledge every upload
    downlink_retry_interval: float = 60.0  # Annex B: 1 min (EMQX: 8 s)
    downlink_resends: int = 3  # Annex B: resent 3 times, then given up one interval after the last
    heartbeat_interval: float = 30.0  # the terminals' expected heartbeat period (param 0x09)
    idle_factor: float = 3.0  # drop after idle_factor × heartbeat_interval of silence
    allow_activation_before_login: bool = True


def _accept_all(frame: Frame) -> ResponseFlag:
    return ResponseFlag.SUCCESS


class PlatformState(Enum):
    """States of one platform connection."""

    AWAITING_LOGIN = "awaiting_login"
    VEHICLE = "vehicle"  # a vehicle is logged in
    PLATFORM = "platform"  # a lower platform is logged in (forwarding link)
    ENDED = "ended"


@dataclass
class _Downlink:
    command: Command
    time: datetime
    data: bytes
    attempts: int
    next_at: float


class PlatformSession(_Base):
    """The enterprise-platform side of one TCP connection (also used by the reference platform).

    Callbacks: ``authorize_login(frame) -> ResponseFlag`` (duplicate VINs: return ``VIN_DUPLICATE``;
    None = ignore the login), ``authorize_platform_login(frame)`` likewise for 0x05, and
    ``on_activation(frame) -> ActivationResult | None``.
    """

    def __init__(
        self,
        config: PlatformConfig | None = None,
        *,
        wallclock: Callable[[], datetime],
        authorize_login: Callable[[Frame], ResponseFlag | None] = _accept_all,
        authorize_platform_login: Callable[[Frame], ResponseFlag | None] = _accept_all,
        on_activation: Callable[[Frame], ActivationResult | None] | None = None,
        edition: Edition = Edition.E2016,
        codec: FrameCodec | None = None,
        cipher: Cipher | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        super().__init__(edition, wallclock, codec, cipher, None, verifier)
        self.config = config if config is not None else PlatformConfig()
        self.authorize_login = authorize_login
        self.authorize_platform_login = authorize_platform_login
        self.on_activation = on_activation
        self.state = PlatformState.AWAITING_LOGIN
        self.vin: str | None = None
        self.serial: int | None = None
        self._last_received: float | None = None
        self._downlinks: list[_Downlink] = []

    # ---- lifecycle

    def connection_made(self, now: float) -> list[Event]:
        """A terminal connected; the idle timer starts."""
        self._last_received = now
        return []

    def connection_lost(self, now: float) -> list[Event]:
        """The link is gone; pending downlinks are dropped."""
        self._downlinks.clear()
        if self.state is PlatformState.ENDED:
            return []
        self.state = PlatformState.ENDED
        return [SessionEnded("connection_lost")]

    def close(self, reason: str) -> list[Event]:
        """End the session by policy (e.g. the same VIN connected again elsewhere)."""
        return self._end(reason)

    def _end(self, reason: str) -> list[Event]:
        if self.state is PlatformState.ENDED:
            return []
        self.state = PlatformState.ENDED
        self._downlinks.clear()
        return [SessionEnded(reason), CloseRequested(reason)]

    @property
    def idle_timeout(self) -> float:
        return self.config.heartbeat_interval * self.config.idle_factor

    def next_deadline(self) -> float | None:
        if self.state is PlatformState.ENDED:
            return None
        times = [d.next_at for d in self._downlinks]
        if self._last_received is not None:
            times.append(self._last_received + self.idle_timeout)
        return min(times) if times else None

    def tick(self, now: float) -> list[Event]:
        """Idle detection and downlink resends."""
        if self.state is PlatformState.ENDED:
            return []
        if self._last_received is not None and now >= self._last_received + self.idle_timeout:
            return self._end("idle")
        events: list[Event] = []
        for d in list(self._downlinks):
            if now < d.next_at:
                continue
            if d.attempts > self.config.downlink_resends:
                self._downlinks.remove(d)
                events.append(DownlinkAbandoned(d.command, d.time, d.attempts))
                continue
            self._out += d.data
            d.attempts += 1
            d.next_at = now + self.config.downlink_retry_interval
        return events

    # ---- replies

    def _respond(self, request: Frame, flag: ResponseFlag | int, body: DataUnit | None = None) -> None:
        if body is None:
            body = self._response_body(request)
        self._emit(Frame(request.edition, request.command, flag, request.vin, Encryption.NONE, body))

    def _response_body(self, request: Frame) -> DataUnit:
        form = self.config.response_form
        t = _time_of(request.body)
        if form is ResponseForm.EMPTY:
            return Empty()
        if form is ResponseForm.ECHO and t is not None and dataclasses.is_dataclass(request.body):
            echoed: DataUnit = dataclasses.replace(request.body, time=self._utc())  # type: ignore[arg-type]
            return echoed
        return TimeOnly(t if t is not None else self._utc())

    def _bad_bcc(self, raw: wire.RawFrame, now: float) -> list[Event]:
        self._last_received = now
        events = super()._bad_bcc(raw, now)
        if raw.command in (Command.REALTIME, Command.REISSUE) and raw.response == ResponseFlag.COMMAND:
            events += self._refuse_raw(raw, ResponseFlag.ERROR, "BCC mismatch")
        return events  # a bad login is ignored (Annex B)

    def _undecodable(self, raw: wire.RawFrame, exc: ProtocolError, now: float) -> list[Event]:
        self._last_received = now
        events = super()._undecodable(raw, exc, now)
        if raw.command in (Command.REALTIME, Command.REISSUE) and raw.response == ResponseFlag.COMMAND:
            flag = ResponseFlag.ERROR
            if raw.edition == Edition.E2025:
                decrypt = "decrypt" in exc.reason or exc.field == "encryption"
                flag = ResponseFlag.DECRYPTION_ERROR if decrypt else ResponseFlag.STRUCTURE_ERROR
            events += self._refuse_raw(raw, flag, exc.reason)
        return events

    def _refuse_raw(self, raw: wire.RawFrame, flag: ResponseFlag, reason: str) -> list[Event]:
        vin = raw.vin.rstrip(b"\x00").decode("latin-1")
        if self.state is PlatformState.AWAITING_LOGIN:
            return []
        t: datetime | None = None
        if raw.encryption == Encryption.NONE:
            try:
                y, mo, d, h, mi, s = wire.decode_time(raw.data)
                t = datetime(y, mo, d, h, mi, s, tzinfo=BEIJING).astimezone(UTC)
            except ProtocolError:
                t = None
        edition = Edition(raw.edition)
        body: DataUnit = (
            Empty() if self.config.response_form is ResponseForm.EMPTY else TimeOnly(t or self._utc())
        )
        self._emit(Frame(edition, raw.command, flag, vin, Encryption.NONE, body))
        return [ReportRefused(vin, _command(raw.command), flag, reason)]

    # ---- dispatch

    def receive_frame(self, frame: Frame, now: float) -> list[Event]:
        """Handle one decoded frame from the terminal (or lower platform)."""
        if self.state is PlatformState.ENDED:
            return [FrameIgnored(int(frame.command), "session ended")]
        self._last_received = now
        cmd = int(frame.command)
        if frame.response != ResponseFlag.COMMAND:
            return self._terminal_reply(frame)
        if cmd == Command.VEHICLE_LOGIN:
            return self._vehicle_login(frame)
        if cmd == Command.PLATFORM_LOGIN:
            return self._platform_login(frame)
        if cmd == Command.ACTIVATION and (
            self.config.allow_activation_before_login or self.state is not PlatformState.AWAITING_LOGIN
        ):
            return self._activation(frame)
        if self.state is PlatformState.AWAITING_LOGIN:
            if self.config.before_login is BeforeLogin.CLOSE:
                return [FrameIgnored(cmd, "frame before login"), *self._end("frame_before_login")]
            return [FrameIgnored(cmd, "frame before login")]
        if self.state is PlatformState.VEHICLE and frame.vin != self.vin:
            return [ProtocolViolation(f"frame for another VIN {frame.vin!r}", 4, "vin", cmd)]
        if cmd in (Command.REALTIME, Command.REISSUE):
            return self._report(frame)
        if cmd in (Command.HEARTBEAT,):
            self._respond(frame, ResponseFlag.SUCCESS)
            return []
        if cmd == Command.TIME_CALIBRATION:
            self._respond(frame, ResponseFlag.SUCCESS, TimeOnly(self._utc()))
            return [FrameReceived(frame)]
        if cmd in (Command.VEHICLE_LOGOUT, Command.PLATFORM_LOGOUT):
            return self._logout(frame)
        return [FrameReceived(frame)]

    def accept_report(self, edition: Edition, command: int, vin: str, time: datetime, now: float) -> bool:
        """A plain realtime/reissue report (response 0xFE) whose data unit the caller has parsed and
        found valid itself: handled as ``receive_frame`` handles such a report — acknowledged when
        configured — and True, without a ``ReportReceived`` event (the caller has the report's facts).
        False, and nothing done, when the session would treat the frame in any other way (no vehicle
        logged in, another VIN, a 2025 signature to verify, echo replies): decode it and call
        ``receive_frame``."""
        if (self.state is not PlatformState.VEHICLE or vin != self.vin
                or command not in (Command.REALTIME, Command.REISSUE)
                or (edition == Edition.E2025 and self.verifier is not None)
                or self.config.response_form is ResponseForm.ECHO):
            return False
        self._last_received = now
        if self.config.reply_realtime_success:
            self._acknowledge(edition, command, vin, time)
        return True

    def _acknowledge(self, edition: Edition, command: int, vin: str, time: datetime) -> None:
        """The success reply to a report ``accept_report`` took (as ``_respond`` gives it)."""
        request = Frame(edition, _command(command), ResponseFlag.COMMAND, vin, Encryption.NONE,
                        TimeOnly(time))
        self._respond(request, ResponseFlag.SUCCESS)

    def _vehicle_login(self, frame: Frame) -> list[Event]:
        body = frame.body
        serial = getattr(body, "serial", None)
        if not isinstance(body, VehicleLogin | VehicleLogin2025) or not isinstance(serial, int):
            return [LoginRefused(frame.vin, None)]
        flag = self.authorize_login(frame)
        if flag is None:
            return [LoginRefused(frame.vin, None)]
        self._respond(frame, flag)
        if flag != ResponseFlag.SUCCESS:
            return [LoginRefused(frame.vin, _flag(flag))]
        self.state = PlatformState.VEHICLE
        self.vin = frame.vin
        self.serial = serial
        self.edition = frame.edition
        log.debug("vehicle %s logged in, serial %d", frame.vin, serial)
        return [VehicleLoggedIn(frame.vin, serial, body)]

    def _platform_login(self, frame: Frame) -> list[Event]:
        body = frame.body
        if not isinstance(body, PlatformLogin):
            return [LoginRefused(frame.vin, None)]
        flag = self.authorize_platform_login(frame)
        if flag is None:
            return [LoginRefused(frame.vin, None)]
        self._respond(frame, flag)
        if flag != ResponseFlag.SUCCESS:
            return [LoginRefused(frame.vin, _flag(flag))]
        self.state = PlatformState.PLATFORM
        self.vin = frame.vin
        self.serial = body.serial
        self.edition = frame.edition
        return [PlatformLoggedIn(frame.vin, body.username, body.serial, body.encryption_rule)]

    def _logout(self, frame: Frame) -> list[Event]:
        self._respond(frame, ResponseFlag.SUCCESS)
        serial = getattr(frame.body, "serial", 0)
        event: Event
        if int(frame.command) == Command.PLATFORM_LOGOUT:
            event = PlatformLoggedOut(frame.vin, serial)
        else:
            event = VehicleLoggedOut(frame.vin, serial)
        return [event, *self._end("logout")]

    def _report(self, frame: Frame) -> list[Event]:
        cmd = _command(int(frame.command))
        report = frame.body
        if not isinstance(report, RealtimeReport):
            flag = ResponseFlag.STRUCTURE_ERROR if frame.edition == Edition.E2025 else ResponseFlag.ERROR
            self._respond(frame, flag)
            return [ReportRefused(frame.vin, cmd, flag, "not a realtime report")]
        verified: bool | None = None
        if frame.edition == Edition.E2025 and self.verifier is not None:
            verified = self._verify(frame.edition, report)
            if not verified:
                self._respond(frame, ResponseFlag.SIGNATURE_ERROR)
                return [ReportRefused(frame.vin, cmd, ResponseFlag.SIGNATURE_ERROR, "signature")]
        if self.config.reply_realtime_success:
            self._respond(frame, ResponseFlag.SUCCESS)
        return [ReportReceived(frame.vin, cmd, report, verified)]

    def _verify(self, edition: Edition, report: RealtimeReport) -> bool:
        if report.signature is None or self.verifier is None:
            return False
        try:
            data: bytes = _codec_module().signed_range(edition, report)
        except ProtocolError:
            return False
        return bool(self.verifier.verify(data, report.signature))

    def _activation(self, frame: Frame) -> list[Event]:
        if not isinstance(frame.body, Activation):
            return [ProtocolViolation("activation without a body", 24, "data", int(frame.command))]
        result = self.on_activation(frame) if self.on_activation is not None else None
        if result is not None:
            self._emit(Frame(frame.edition, Command.ACTIVATION_RESULT, ResponseFlag.COMMAND, frame.vin,
                             Encryption.NONE, result))
        return [ActivationHandled(frame.vin, frame.body, result)]

    # ---- downlink commands

    def query(self, ids: Sequence[ParameterId | int], now: float) -> datetime:
        """Send a parameter query (0x80); returns its time, which names it in the events."""
        return self._downlink(Command.PARAMETER_QUERY, lambda t: ParameterQuery(t, tuple(ids)), now)

    def set_parameters(self, items: Sequence[Parameter], now: float) -> datetime:
        """Send a parameter set (0x81)."""
        return self._downlink(Command.PARAMETER_SET, lambda t: ParameterSet(t, tuple(items)), now)

    def control(self, command_id: ControlId | int, params: object, now: float) -> datetime:
        """Send a terminal control (0x82); ``params`` as ``TerminalControl.params``."""
        return self._downlink(
            Command.TERMINAL_CONTROL,
            lambda t: TerminalControl(t, command_id, params),  # type: ignore[arg-type]
            now,
        )

    def send_key_exchange(self, key_exchange: KeyExchange, now: float) -> list[Event]:
        """Send a 2025 key exchange 0x0B to the terminal."""
        self._require_vehicle()
        self._emit(Frame(self.edition, Command.KEY_EXCHANGE, ResponseFlag.COMMAND, self.vin or "",
                         Encryption.NONE, key_exchange))
        return []

    def _require_vehicle(self) -> None:
        if self.state is not PlatformState.VEHICLE or self.vin is None:
            raise SessionStateError(f"no vehicle is logged in (state {self.state.value})")

    def _downlink(self, command: Command, build: Callable[[datetime], DataUnit], now: float) -> datetime:
        self._require_vehicle()
        t = self._utc()
        # two commands of one kind within a second would share a time: keep times unique
        while any(d.command == command and d.time == t for d in self._downlinks):
            t += timedelta(seconds=1)
        data = self._emit(Frame(self.edition, command, ResponseFlag.COMMAND, self.vin or "",
                                Encryption.NONE, build(t)))
        self._downlinks.append(_Downlink(command, t, data, 1, now + self.config.downlink_retry_interval))
        return t

    def _terminal_reply(self, frame: Frame) -> list[Event]:
        cmd = int(frame.command)
        t = _time_of(frame.body)
        match = next((d for d in self._downlinks if d.command == cmd and d.time == t), None)
        if match is None:
            match = next((d for d in self._downlinks if d.command == cmd), None)
        if match is None:
            return [ProtocolViolation("reply matches no pending command", 2, "command", cmd)]
        self._downlinks.remove(match)
        return [DownlinkReplied(match.command, match.time, _flag(frame.response), frame.body)]


def _command(value: int) -> Command | int:
    try:
        return Command(value)
    except ValueError:
        return value


__all__ = [
    "ActivationHandled",
    "ActivationRefused",
    "ActivationResultReceived",
    "ActivationTimedOut",
    "BeforeLogin",
    "ClientState",
    "ClientTiming",
    "CloseRequested",
    "ControlRequested",
    "DefaultCodec",
    "DownlinkAbandoned",
    "DownlinkReplied",
    "Event",
    "ForwardingConfig",
    "ForwardingSession",
    "FrameCodec",
    "FrameIgnored",
    "FrameReceived",
    "HeartbeatMissed",
    "KeyExchangeReceived",
    "LoggedOut",
    "LoginFailed",
    "LoginRefused",
    "LoginSucceeded",
    "MemorySerialStore",
    "ParametersChanged",
    "ParametersRejected",
    "PlatformChangeRequested",
    "PlatformConfig",
    "PlatformLoggedIn",
    "PlatformLoggedOut",
    "PlatformSession",
    "PlatformState",
    "ProtocolViolation",
    "ReconnectRequested",
    "ReportReceived",
    "ReportRefused",
    "ResponseForm",
    "SerialStore",
    "SessionEnded",
    "SessionStateError",
    "SignatureRejected",
    "TerminalConfig",
    "TerminalHandler",
    "TerminalSession",
    "TimeCalibrated",
    "TimeCalibrationFailed",
    "UploadAbandoned",
    "UploadDelivered",
    "UploadRejected",
    "UploadUnconfirmed",
    "VehicleLoggedIn",
    "VehicleLoggedOut",
    "activation_signed_bytes",
    "beijing_date",
    "next_serial",
]
