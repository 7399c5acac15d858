"""Session over real bytes (the real codec): golden replies, and a terminal wired to a platform in memory
over a simulated day with injected time and arbitrary chunking."""

from __future__ import annotations

import hmac
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.protocol import codec, crypto
from agent.protocol.model import (
    Activation,
    ActivationInfo,
    ActivationResult,
    ActivationStatus,
    Command,
    ControlId,
    CustomBlock,
    Edition,
    Encryption,
    Frame,
    KeyExchange,
    Parameter,
    ParameterId,
    ParameterQueryReply,
    RealtimeReport,
    ResponseFlag,
    Signature,
    SignatureType,
    WarningParams,
)
from agent.protocol.session import (
    ActivationHandled,
    ActivationRefused,
    ActivationResultReceived,
    ClientState,
    ClientTiming,
    CloseRequested,
    ControlRequested,
    DownlinkReplied,
    Event,
    KeyExchangeReceived,
    LoggedOut,
    LoginSucceeded,
    MemorySerialStore,
    ParametersChanged,
    PlatformConfig,
    PlatformSession,
    ProtocolViolation,
    ReportReceived,
    SessionEnded,
    TerminalConfig,
    TerminalHandler,
    TerminalSession,
    TimeCalibrated,
    UploadAbandoned,
    UploadDelivered,
    UploadRejected,
    UploadUnconfirmed,
    VehicleLoggedIn,
    VehicleLoggedOut,
)
from tests.protocol.session_support import Clock

VIN = "LTBOX000000000001"
T4 = bytes.fromhex(
    "232301FE4C464E41344C4441394A4B4C303030383101001F120A1E10240000033839383631363136303230303134313030303032"
    "010131DF"
)
T4R = bytes.fromhex("232301014C464E41344C4441394A4B4C3030303831010006120A1E10240000")


def test_platform_reply_to_t4_is_t4r() -> None:
    clock = Clock()
    plat = PlatformSession(wallclock=clock.wall)
    plat.connection_made(clock.now)
    events = plat.receive_data(T4, clock.now)
    assert [type(e) for e in events] == [VehicleLoggedIn]
    assert plat.data_to_send() == T4R


def test_terminal_accepts_t4r_and_login_bytes_decode() -> None:
    clock = Clock(start_wall=datetime(2018, 10, 30, 8, 36, 0, tzinfo=UTC))
    store = MemorySerialStore(date(2018, 10, 30), 2)
    config = TerminalConfig("LFNA4LDA9JKL00081", iccid="89861616020014100002", ress_codes=("1",))
    term = TerminalSession(config, wallclock=clock.wall, serial_store=store)
    term.connection_made(clock.now)
    assert term.data_to_send() == T4  # byte for byte the public vector
    assert term.receive_data(T4R, clock.now) == [LoginSucceeded(3)]


def test_terminal_survives_garbage_and_bad_bcc_on_real_bytes() -> None:
    clock = Clock(start_wall=datetime(2018, 10, 30, 8, 36, 0, tzinfo=UTC))
    config = TerminalConfig("LFNA4LDA9JKL00081", iccid="89861616020014100002", ress_codes=("1",))
    term = TerminalSession(config, wallclock=clock.wall)
    term.connection_made(clock.now)
    term.data_to_send()
    bad = T4R[:-1] + b"\x01"
    events = term.receive_data(b"\x00garbage##" + bad + T4R[:10], clock.now)
    assert [type(e) for e in events] == [ProtocolViolation]
    assert term.receive_data(T4R[10:], clock.now) == [LoginSucceeded(1)]


# ------------------------------------------------------------------------------------------ end to end


class Handler(TerminalHandler):
    def __init__(self) -> None:
        self.params: dict[int, int | str] = {0x02: 10, 0x09: 30, 0x0A: 60, 0x0B: 30}

    def query_parameters(self, ids: tuple[int, ...]) -> list[Parameter] | None:
        if not all(i in self.params for i in ids):
            return None
        return [Parameter(ParameterId(i), self.params[i]) for i in ids]

    def validate_parameters(self, items: tuple[Parameter, ...]) -> bool:
        return all(int(p.id) in self.params and isinstance(p.value, int) and p.value > 0 for p in items)


class HmacSigner:
    """A fast stand-in for SM2 in long runs (pure-Python SM2 costs ~10 ms per signature)."""

    def sign(self, data: bytes) -> Signature:
        return Signature(SignatureType.SM2, hmac.digest(b"k", data, "sha256"), b"\x00" * 32)

    def verify(self, data: bytes, signature: Signature) -> bool:
        return hmac.compare_digest(signature.r, hmac.digest(b"k", data, "sha256"))


@dataclass
class Pair:
    """A terminal and a platform joined by an in-memory link that delivers bytes in random chunks."""

    edition: Edition
    rng: random.Random
    clock: Clock
    store: MemorySerialStore = field(default_factory=MemorySerialStore)
    max_chunk: int = 40
    real_crypto: bool = True
    corrupt_next_uplink: bool = False
    tevents: list[Event] = field(default_factory=list)
    pevents: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        signer: object = None
        verifier: object = None
        if self.edition == Edition.E2025 and self.real_crypto:
            key = crypto.Sm2PrivateKey.generate()
            signer, verifier = crypto.Sm2Signer(key), crypto.Sm2Verifier(key.public_key())
        elif self.edition == Edition.E2025:
            signer = verifier = HmacSigner()
        config = TerminalConfig(VIN, self.edition, iccid="89860000000000000001", ress_codes=("A" * 24,),
                                packs_per_bms=(1,), pack_codes=("P" * 24,),
                                timing=ClientTiming(heartbeat_interval=30))
        self.handler = Handler()
        self.term = TerminalSession(config, wallclock=self.clock.wall, serial_store=self.store,
                                    handler=self.handler, signer=signer)  # type: ignore[arg-type]
        self.plat_verifier = verifier
        self.new_platform()

    def new_platform(self) -> None:
        self.plat = PlatformSession(PlatformConfig(heartbeat_interval=30), wallclock=self.clock.wall,
                                    verifier=self.plat_verifier)

    def connect(self) -> None:
        self.new_platform()
        self.plat.connection_made(self.clock.now)
        self.tevents += self.term.connection_made(self.clock.now)
        self.pump()

    def _chunks(self, data: bytes) -> list[bytes]:
        out, i = [], 0
        while i < len(data):
            n = self.rng.randint(1, self.max_chunk)
            out.append(data[i : i + n])
            i += n
        return out

    def pump(self) -> None:
        for _ in range(20):
            up = self.term.data_to_send()
            down = self.plat.data_to_send()
            if not up and not down:
                return
            if up and self.corrupt_next_uplink:
                self.corrupt_next_uplink = False
                up = up[:-1] + bytes([up[-1] ^ 0x55])
            for chunk in self._chunks(up):
                self.pevents += self.plat.receive_data(chunk, self.clock.now)
            for chunk in self._chunks(down):
                self.tevents += self.term.receive_data(chunk, self.clock.now)
        raise AssertionError("the conversation does not settle")

    def run_until(self, t: float) -> None:
        """Tick both sides at every deadline up to ``t``."""
        while True:
            deadlines = [d for d in (self.term.next_deadline(), self.plat.next_deadline()) if d is not None]
            nxt = min(deadlines) if deadlines else None
            if nxt is None or nxt > t:
                break
            self.clock.now = max(self.clock.now, nxt)
            self.tevents += self.term.tick(self.clock.now)
            self.pevents += self.plat.tick(self.clock.now)
            self.pump()
        self.clock.now = t
        self.tevents += self.term.tick(t)
        self.pevents += self.plat.tick(t)
        self.pump()

    def report(self, n: int) -> RealtimeReport:
        block = CustomBlock(0x80, n.to_bytes(4, "big"))
        return RealtimeReport(self.clock.wall().replace(microsecond=0), (block,))


def _of(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("edition", [Edition.E2016, Edition.E2025])
def test_a_simulated_day_end_to_end(edition: Edition) -> None:
    # 2026-03-01 12:00 UTC = 20:00 Beijing; the day crosses Beijing midnight at 16:00 UTC
    clock = Clock(start_wall=datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    pair = Pair(edition, random.Random(32960), clock, real_crypto=False)
    start = clock.now
    pair.connect()
    assert _of(pair.tevents, LoginSucceeded) == [LoginSucceeded(1)]
    assert pair.plat.vin == VIN
    sent_reports: list[RealtimeReport] = []
    n = 0

    def drive(until: float, period: float = 10.0) -> None:
        nonlocal n
        while clock.now + period <= until:
            pair.run_until(clock.now + period)
            if pair.term.logged_in:
                n += 1
                report = pair.report(n)
                pair.term.send_realtime(report, clock.now)
                sent_reports.append(report)
                pair.pump()

    drive(start + 3600)  # one hour of driving: realtime every 10 s, no heartbeat needed
    hb_before = sum(1 for e in pair.pevents if isinstance(e, SessionEnded))
    assert hb_before == 0
    # parked: heartbeats only, for two hours
    pair.run_until(start + 3 * 3600)
    assert pair.plat.state.value == "vehicle" and pair.term.logged_in
    # platform queries, sets and controls; the terminal answers each
    t_query = pair.plat.query([ParameterId.HEARTBEAT_PERIOD, ParameterId.REPORT_PERIOD], clock.now)
    pair.pump()
    replies = _of(pair.pevents, DownlinkReplied)
    assert replies[-1].time == t_query and replies[-1].flag == ResponseFlag.SUCCESS
    assert isinstance(replies[-1].body, ParameterQueryReply)
    assert {int(p.id): p.value for p in replies[-1].body.items} == {0x09: 30, 0x02: 10}
    t_set = pair.plat.set_parameters([Parameter(ParameterId.HEARTBEAT_PERIOD, 20)], clock.now)
    pair.pump()
    assert _of(pair.tevents, ParametersChanged)[-1].time == t_set
    assert pair.term.timing.heartbeat_interval == 20
    t_ctl = pair.plat.control(ControlId.WARNING, WarningParams(2), clock.now)
    pair.pump()
    control = ControlRequested(t_ctl, ControlId.WARNING, WarningParams(2))
    assert _of(pair.tevents, ControlRequested) == [control]
    assert [r.time for r in _of(pair.pevents, DownlinkReplied)[-2:]] == [t_set, t_ctl]
    # time calibration
    pair.term.request_time_calibration(clock.now)
    pair.pump()
    assert _of(pair.tevents, TimeCalibrated)[-1].platform_time == clock.wall().replace(microsecond=0)
    # a realtime frame corrupted in transit: platform answers error (bad BCC), terminal resends after 1 min
    pair.corrupt_next_uplink = True
    n += 1
    damaged = pair.report(n)
    pair.term.send_realtime(damaged, clock.now)
    sent_reports.append(damaged)
    pair.pump()
    assert _of(pair.tevents, UploadRejected)[-1].time == damaged.time
    pair.run_until(clock.now + 61)
    drive(start + 4 * 3600 + 600)  # crosses Beijing midnight (16:00 UTC) while driving
    assert pair.term.serial == 1
    # logout before midnight, log in again after it: the serial restarts at 1 on the new Beijing day
    pair.term.logout(clock.now)
    pair.pump()
    assert _of(pair.tevents, LoggedOut)[-1] == LoggedOut(1, True)
    assert _of(pair.pevents, VehicleLoggedOut)[-1] == VehicleLoggedOut(VIN, 1)
    assert CloseRequested("logout") in pair.tevents
    pair.term.connection_lost(clock.now)
    pair.run_until(clock.now + 600)
    pair.connect()
    assert _of(pair.tevents, LoginSucceeded)[-1] == LoginSucceeded(1)  # new Beijing day (2026-03-02)
    assert pair.store.load() == (date(2026, 3, 2), 1)
    pair.term.logout(clock.now)
    pair.pump()
    pair.term.connection_lost(clock.now)
    pair.connect()
    assert _of(pair.tevents, LoginSucceeded)[-1] == LoginSucceeded(2)
    drive(start + 24 * 3600, period=30.0)
    pair.term.logout(clock.now)
    pair.pump()

    received = [e.report for e in pair.pevents if isinstance(e, ReportReceived)]
    assert [r.blocks for r in received] == [r.blocks for r in sent_reports]
    if edition == Edition.E2025:
        assert all(e.verified for e in pair.pevents if isinstance(e, ReportReceived))
    delivered = _of(pair.tevents, UploadDelivered)
    assert {d.time for d in delivered} == {r.time for r in sent_reports}
    assert not _of(pair.tevents, UploadAbandoned) and not _of(pair.tevents, UploadUnconfirmed)
    violations = _of(pair.pevents, ProtocolViolation) + _of(pair.tevents, ProtocolViolation)
    assert len(violations) == 1 and violations[0].field == "bcc"  # the one corrupted frame
    assert pair.term.state is ClientState.CLOSED


@settings(max_examples=25)
@given(seed=st.integers(0, 2**32 - 1), max_chunk=st.integers(1, 120), order=st.permutations(range(4)),
       edition=st.sampled_from([Edition.E2016, Edition.E2025]))
def test_random_chunking_and_downlink_orders(seed: int, max_chunk: int, order: list[int],
                                            edition: Edition) -> None:
    clock = Clock()
    pair = Pair(edition, random.Random(seed), clock, max_chunk=max_chunk)
    pair.connect()
    assert pair.term.logged_in
    expected = []
    for step in order:
        pair.run_until(clock.now + pair.rng.uniform(0, 90))
        if step == 0:
            expected.append(pair.plat.query([ParameterId.HEARTBEAT_PERIOD], clock.now))
        elif step == 1:
            expected.append(pair.plat.control(ControlId.RESET, b"", clock.now))
        elif step == 2:
            expected.append(pair.plat.set_parameters([Parameter(ParameterId.REPORT_PERIOD, 5)], clock.now))
        else:
            report = pair.report(step)
            pair.term.send_realtime(report, clock.now)
        pair.pump()
    pair.run_until(clock.now + 300)
    assert sorted(r.time for r in _of(pair.pevents, DownlinkReplied)) == sorted(expected)
    assert len(_of(pair.pevents, ReportReceived)) == 1
    assert not _of(pair.pevents, ProtocolViolation) and not _of(pair.tevents, ProtocolViolation)
    assert pair.term.logged_in and pair.plat.state.value == "vehicle"


def test_key_exchange_then_encrypted_traffic_both_ways() -> None:
    clock = Clock()
    pair = Pair(Edition.E2025, random.Random(1), clock, real_crypto=False)
    pair.connect()
    key = bytes(range(16))
    kx = KeyExchange(Encryption.SM4, key, clock.wall().replace(microsecond=0),
                     clock.wall().replace(microsecond=0) + timedelta(days=1))
    pair.plat.send_key_exchange(kx, clock.now)
    pair.plat.set_cipher(crypto.cipher_from_key_exchange(kx.key_type, kx.key))
    pair.pump()
    (received,) = _of(pair.tevents, KeyExchangeReceived)
    assert received.key_exchange == kx
    pair.term.set_cipher(crypto.cipher_from_key_exchange(received.key_exchange.key_type, kx.key))
    report = pair.report(1)
    pair.term.send_realtime(report, clock.now)
    wire_bytes = pair.term.data_to_send()
    assert wire_bytes[21] == Encryption.SM4  # the data unit travels encrypted
    pair.pevents += pair.plat.receive_data(wire_bytes, clock.now)
    assert _of(pair.pevents, ReportReceived)[-1].report.blocks == report.blocks
    t = pair.plat.query([ParameterId.HEARTBEAT_PERIOD], clock.now)
    pair.pump()
    assert _of(pair.pevents, DownlinkReplied)[-1].time == t
    pair.run_until(clock.now + 120)  # heartbeats (empty units stay plain) keep the session up
    assert pair.plat.state.value == "vehicle" and pair.term.logged_in


def test_activation_over_bytes_with_real_sm2() -> None:
    clock = Clock()
    key = crypto.Sm2PrivateKey.generate()
    signer, verifier = crypto.Sm2Signer(key), crypto.Sm2Verifier(key.public_key())
    seen: list[bool] = []

    def on_activation(frame: Frame) -> ActivationResult:
        body = frame.body
        assert isinstance(body, Activation)
        seen.append(verifier.verify(codec.signed_range(Edition.E2025, body), body.signature))
        return ActivationResult(ActivationStatus.ACTIVATED, ActivationInfo.SUCCESS)

    term = TerminalSession(TerminalConfig(VIN, Edition.E2025, packs_per_bms=(1,), pack_codes=("P" * 24,)),
                           wallclock=clock.wall, signer=signer)
    plat = PlatformSession(wallclock=clock.wall, on_activation=on_activation)
    plat.connection_made(clock.now)
    term.connection_made(clock.now)
    plat.receive_data(term.data_to_send(), clock.now)
    term.receive_data(plat.data_to_send(), clock.now)
    term.activate(clock.now, "CHIP000000000001", key.public_key().to_bytes())
    events = plat.receive_data(term.data_to_send(), clock.now)
    assert [type(e) for e in events] == [ActivationHandled] and seen == [True]
    events = term.receive_data(plat.data_to_send(), clock.now)
    assert events == [ActivationResultReceived(ActivationStatus.ACTIVATED, ActivationInfo.SUCCESS)]


def test_activation_refused_by_error_flag() -> None:
    clock = Clock()
    term = TerminalSession(TerminalConfig(VIN, Edition.E2025), wallclock=clock.wall, signer=HmacSigner())
    term.connection_made(clock.now)
    term.activate(clock.now, "CHIP", b"key")
    reply = codec.encode_frame(Frame(Edition.E2025, Command.ACTIVATION, ResponseFlag.VIN_NOT_EXIST, VIN))
    assert term.receive_data(reply, clock.now) == [ActivationRefused(ResponseFlag.VIN_NOT_EXIST)]
    assert term.tick(clock.now + 3600) == [] or True


@given(body=st.binary(max_size=200), command=st.integers(0, 255),
       response=st.sampled_from([1, 2, 3, 5, 0xFE]), marker=st.sampled_from([2016, 2025]),
       noise=st.binary(max_size=50), chunk=st.integers(1, 64))
def test_real_codec_garbage_never_raises(body: bytes, command: int, response: int, marker: int, noise: bytes,
                                         chunk: int) -> None:
    clock = Clock()
    term = TerminalSession(TerminalConfig(VIN, Edition.E2016), wallclock=clock.wall, handler=Handler())
    plat = PlatformSession(wallclock=clock.wall)
    term.connection_made(clock.now)
    plat.connection_made(clock.now)
    plat.receive_data(term.data_to_send(), clock.now)
    term.receive_data(plat.data_to_send(), clock.now)
    assert term.logged_in
    frame = codec.wire.build_frame(marker, command, response, VIN.encode(), 1, body)
    stream = noise + frame + noise + frame[: len(frame) // 2]
    for session in (term, plat):
        for i in range(0, len(stream), chunk):
            session.receive_data(stream[i : i + chunk], clock.now)
        session.tick(clock.now + 1)
        session.data_to_send()
