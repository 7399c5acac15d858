"""Terminal session: every timing rule with injected time (no sleeping). Uses the registry codec."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.protocol import wire
from agent.protocol.model import (
    Activation,
    ActivationInfo,
    ActivationResult,
    ActivationStatus,
    Command,
    ControlId,
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
    RealtimeReport,
    ResponseFlag,
    Signature,
    SignatureType,
    TerminalControl,
    TimeOnly,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
    WarningParams,
)
from agent.protocol.session import (
    ActivationResultReceived,
    ActivationTimedOut,
    ClientState,
    ClientTiming,
    CloseRequested,
    ControlRequested,
    FrameIgnored,
    HeartbeatMissed,
    KeyExchangeReceived,
    LoggedOut,
    LoginFailed,
    LoginSucceeded,
    MemorySerialStore,
    ParametersChanged,
    ParametersRejected,
    PlatformChangeRequested,
    ProtocolViolation,
    ReconnectRequested,
    ResponseForm,
    SessionStateError,
    SignatureRejected,
    TerminalConfig,
    TerminalHandler,
    TerminalSession,
    TimeCalibrated,
    TimeCalibrationFailed,
    UploadAbandoned,
    UploadDelivered,
    UploadRejected,
    UploadUnconfirmed,
    activation_signed_bytes,
    beijing_date,
    next_serial,
)
from tests.protocol.session_support import Clock, RegistryCodec

VIN = "LTBOX000000000001"


class Handler(TerminalHandler):
    def __init__(self) -> None:
        self.values = {int(ParameterId.HEARTBEAT_PERIOD): 30, int(ParameterId.REPORT_PERIOD): 10}

    def query_parameters(self, ids: tuple[int, ...]) -> list[Parameter] | None:
        if any(i not in self.values for i in ids):
            return None
        return [Parameter(i, self.values[i]) for i in ids]

    def validate_parameters(self, items: tuple[Parameter, ...]) -> bool:
        return all(isinstance(p.value, int | str) for p in items) and not any(p.value == 9999 for p in items)


class FakeSigner:
    def __init__(self) -> None:
        self.signed: list[bytes] = []

    def sign(self, data: bytes) -> Signature:
        self.signed.append(data)
        return Signature(SignatureType.SM2, b"R" * 32, b"S" * 32)


class Rig:
    """A terminal under test plus helpers to play the platform."""

    def __init__(self, edition: Edition = Edition.E2016, store: MemorySerialStore | None = None,
                 clock: Clock | None = None, **timing: object) -> None:
        self.clock = clock or Clock()
        self.codec = RegistryCodec()
        self.store = store if store is not None else MemorySerialStore()
        self.signer = FakeSigner()
        cfg = TerminalConfig(VIN, edition, iccid="89860000000000000001", ress_codes=("A" * 24,),
                             packs_per_bms=(1,), pack_codes=("P" * 24,),
                             timing=ClientTiming(**timing))  # type: ignore[arg-type]
        self.term = TerminalSession(cfg, wallclock=self.clock.wall, serial_store=self.store,
                                    handler=Handler(), codec=self.codec, signer=self.signer)
        self.edition = edition

    @property
    def now(self) -> float:
        return self.clock.now

    def at(self, seconds: float) -> list[object]:
        """Advance to ``seconds`` after the start and tick."""
        self.clock.now = self.clock.start_mono + seconds
        return list(self.term.tick(self.clock.now))

    def sent(self) -> list[Frame]:
        return self.codec.frames(self.term.data_to_send())

    def feed(self, command: int, flag: int, body: object = None, *, edition: Edition | None = None,
             vin: str = VIN) -> list[object]:
        frame = Frame(edition or self.edition, command, flag, vin, Encryption.NONE,
                      Empty() if body is None else body)  # type: ignore[arg-type]
        return list(self.term.receive_data(self.codec.encode(frame), self.clock.now))

    def login(self) -> Frame:
        self.term.connection_made(self.now)
        (login,) = self.sent()
        events = self.feed(Command.VEHICLE_LOGIN, ResponseFlag.SUCCESS, TimeOnly(login.body.time))  # type: ignore[attr-defined]
        assert any(isinstance(e, LoginSucceeded) for e in events)
        return login

    def report(self, offset: float = 0.0) -> RealtimeReport:
        return RealtimeReport(self.clock.wall().replace(microsecond=0) + timedelta(seconds=offset))


# ------------------------------------------------------------------------------------------ login


def test_login_2016_on_connection_made() -> None:
    rig = Rig()
    assert rig.term.connection_made(rig.now) == []
    (frame,) = rig.sent()
    assert frame.command == Command.VEHICLE_LOGIN and frame.response == ResponseFlag.COMMAND
    assert frame.edition == Edition.E2016 and frame.vin == VIN
    body = frame.body
    assert isinstance(body, VehicleLogin)
    assert (body.serial, body.iccid, body.subsystem_count, body.code_length, body.codes) == (
        1, "89860000000000000001", 1, 24, ("A" * 24,))
    assert body.time == rig.clock.wall()
    assert rig.term.state is ClientState.LOGGING_IN and not rig.term.logged_in


def test_login_2025_body_and_marker() -> None:
    rig = Rig(Edition.E2025)
    rig.term.connection_made(rig.now)
    data = rig.term.data_to_send()
    assert data[:2] == b"$$"
    (frame,) = rig.codec.frames(data)
    assert isinstance(frame.body, VehicleLogin2025)
    assert frame.body.packs_per_bms == (1,) and frame.body.pack_codes == ("P" * 24,)


def test_nothing_is_sent_before_login_succeeds() -> None:
    rig = Rig()
    with pytest.raises(SessionStateError):
        rig.term.send_realtime(rig.report(), rig.now)
    rig.term.connection_made(rig.now)
    rig.sent()
    with pytest.raises(SessionStateError):
        rig.term.send_reissue(rig.report(), rig.now)
    assert rig.at(29) == [] and rig.sent() == []  # no heartbeat while logging in
    events = rig.feed(Command.VEHICLE_LOGIN, ResponseFlag.SUCCESS)  # L = 0 reply accepted
    assert events == [LoginSucceeded(1)]
    assert rig.term.logged_in
    rig.term.send_realtime(rig.report(), rig.now)
    assert [f.command for f in rig.sent()] == [Command.REALTIME]


@pytest.mark.parametrize(("edition", "interval"), [(Edition.E2016, 60.0), (Edition.E2025, 180.0)])
def test_login_timeout_and_retry_interval_per_edition(edition: Edition, interval: float) -> None:
    rig = Rig(edition)
    rig.term.connection_made(rig.now)
    rig.sent()
    assert rig.term.next_deadline() == rig.now + 60.0  # param 0x0A default
    assert rig.at(59.9) == []
    events = rig.at(60)
    assert events == [LoginFailed(1, 1, None, rig.now + interval, False)]
    assert rig.term.state is ClientState.LOGIN_WAIT
    assert rig.at(60 + interval - 0.1) == [] and rig.sent() == []
    rig.at(60 + interval)
    (again,) = rig.sent()
    assert isinstance(again.body, VehicleLogin | VehicleLogin2025) and again.body.serial == 2


def test_login_retry_interval_is_configurable() -> None:
    rig = Rig(login_retry_interval=180.0)
    rig.term.connection_made(rig.now)
    events = rig.at(60)
    assert isinstance(events[0], LoginFailed) and events[0].retry_at == rig.clock.start_mono + 240


def test_error_reply_counts_as_failure_with_flag() -> None:
    rig = Rig()
    rig.term.connection_made(rig.now)
    rig.sent()
    events = rig.feed(Command.VEHICLE_LOGIN, ResponseFlag.VIN_DUPLICATE)
    assert events == [LoginFailed(1, 1, ResponseFlag.VIN_DUPLICATE, rig.now + 60, False)]
    assert rig.at(59) == []  # the error cancelled the timeout
    rig.at(60)
    (frame,) = rig.sent()
    assert frame.command == Command.VEHICLE_LOGIN


def test_three_failures_wait_0x0c_then_reconnect_then_login() -> None:
    rig = Rig()
    rig.term.connection_made(rig.now)
    failures = []
    t = 0.0
    for _ in range(3):
        t += 60
        failures += [e for e in rig.at(t) if isinstance(e, LoginFailed)]
        t += 60
        rig.at(t)
    # logins at 0, 120, 240; failures at 60, 180, 300
    assert [f.consecutive for f in failures] == [1, 2, 3]
    assert failures[-1].backoff and failures[-1].retry_at == rig.clock.start_mono + 300 + 1800
    assert [f.body.serial for f in rig.sent()] == [1, 2, 3]  # type: ignore[attr-defined]
    assert rig.term.state is ClientState.BACKOFF
    assert rig.at(300 + 1799) == [] and rig.sent() == []
    assert rig.at(300 + 1800) == [ReconnectRequested("login_backoff")]
    assert rig.term.state is ClientState.DISCONNECTED
    rig.term.connection_lost(rig.now)
    rig.term.connection_made(rig.now)
    (login,) = rig.sent()
    assert login.body.serial == 4  # type: ignore[attr-defined]
    assert rig.term.login_failures == 0


def test_reconnect_during_backoff_defers_login_to_backoff_end() -> None:
    rig = Rig(max_login_attempts=1, login_backoff=600.0)
    rig.term.connection_made(rig.now)
    rig.sent()
    rig.at(60)  # backoff until 660
    rig.term.connection_lost(rig.now)
    rig.at(100)
    rig.term.connection_made(rig.now)  # transport came back early
    assert rig.sent() == []
    assert rig.at(660) == []  # fresh link: just log in, no reconnect request
    (login,) = rig.sent()
    assert login.command == Command.VEHICLE_LOGIN


def test_backoff_param_0x0c_via_timing() -> None:
    rig = Rig(login_backoff=5 * 60.0)
    rig.term.connection_made(rig.now)
    events = [e for t in (60, 120, 180, 240, 300) for e in rig.at(t)]
    final = [e for e in events if isinstance(e, LoginFailed) and e.backoff]
    assert final and final[0].retry_at == rig.clock.start_mono + 300 + 300


def test_late_success_during_login_wait_is_accepted() -> None:
    rig = Rig()
    rig.term.connection_made(rig.now)
    rig.sent()
    rig.at(60)
    rig.clock.now += 5
    assert rig.feed(Command.VEHICLE_LOGIN, ResponseFlag.SUCCESS) == [LoginSucceeded(1)]
    rig.at(200)
    assert all(f.command != Command.VEHICLE_LOGIN for f in rig.sent())


# ------------------------------------------------------------------------------------------ serials


def test_serial_cycles_at_beijing_midnight_and_survives_reboot() -> None:
    store = MemorySerialStore()
    clock = Clock(start_wall=datetime(2026, 3, 1, 15, 59, 0, tzinfo=UTC))
    rig = Rig(store=store, clock=clock)
    serials = []
    for _ in range(3):
        rig.term.connection_made(rig.now)
        serials.append(rig.sent()[0].body.serial)  # type: ignore[attr-defined]
        rig.term.connection_lost(rig.now)
        clock.advance(10)
    assert serials == [1, 2, 3]
    assert store.load() == (date(2026, 3, 1), 3)
    # reboot within the Beijing day: a new session with the same store continues the count
    rig2 = Rig(store=store, clock=clock)
    rig2.term.connection_made(clock.now)
    assert rig2.sent()[0].body.serial == 4  # type: ignore[attr-defined]
    # 16:00 UTC = 00:00 Beijing: the count restarts
    clock.now = clock.start_mono + 60
    assert clock.wall() == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    rig3 = Rig(store=store, clock=clock)
    rig3.term.connection_made(clock.now)
    assert rig3.sent()[0].body.serial == 1  # type: ignore[attr-defined]
    assert store.load() == (date(2026, 3, 2), 1)


def test_serial_wraps_after_65531() -> None:
    store = MemorySerialStore(date(2026, 3, 1), 65531)
    assert next_serial(store, datetime(2026, 3, 1, 1, 0, tzinfo=UTC)) == 1
    assert beijing_date(datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC)) == date(2026, 3, 1)
    assert beijing_date(datetime(2026, 3, 1, 16, 0, 0, tzinfo=UTC)) == date(2026, 3, 2)


def test_logout_reuses_login_serial() -> None:
    rig = Rig(store=MemorySerialStore(date(2026, 3, 1), 41))
    rig.login()
    assert rig.term.serial == 42
    assert rig.term.logout(rig.now) == []
    (frame,) = rig.sent()
    assert frame.command == Command.VEHICLE_LOGOUT and isinstance(frame.body, VehicleLogout)
    assert frame.body.serial == 42
    assert rig.term.state is ClientState.LOGGING_OUT
    events = rig.feed(Command.VEHICLE_LOGOUT, ResponseFlag.SUCCESS, TimeOnly(frame.body.time))
    assert events == [LoggedOut(42, True), CloseRequested("logout")]
    assert rig.term.state is ClientState.CLOSED


def test_logout_without_reply_closes_after_timeout() -> None:
    rig = Rig()
    rig.login()
    rig.term.logout(rig.now)
    rig.sent()
    assert rig.at(29) == []
    assert rig.at(30) == [LoggedOut(1, False), CloseRequested("logout")]


def test_logout_not_waiting_for_reply() -> None:
    rig = Rig(wait_logout_reply=False)
    rig.login()
    assert rig.term.logout(rig.now) == [LoggedOut(1, False), CloseRequested("logout")]


# ------------------------------------------------------------------------------------------ heartbeat


def test_heartbeat_cadence_when_idle() -> None:
    rig = Rig()
    rig.login()
    assert rig.at(29.9) == [] and rig.sent() == []
    rig.at(30)
    (hb,) = rig.sent()
    assert hb.command == Command.HEARTBEAT and isinstance(hb.body, Empty)
    rig.clock.now += 1
    assert rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS) == []
    rig.at(60)
    assert [f.command for f in rig.sent()] == [Command.HEARTBEAT]
    # traffic resets the idle timer: a realtime at 70 moves the next heartbeat to 100
    rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS, TimeOnly(rig.clock.wall()))
    rig.at(70)
    rig.term.send_realtime(rig.report(), rig.now)
    rig.sent()
    rig.at(99)
    assert rig.sent() == []
    rig.at(100)
    assert [f.command for f in rig.sent()] == [Command.HEARTBEAT]


def test_heartbeat_period_from_param_0x09() -> None:
    rig = Rig(heartbeat_interval=10.0)
    rig.login()
    rig.at(10)
    assert [f.command for f in rig.sent()] == [Command.HEARTBEAT]


def test_dead_link_after_three_missed_heartbeats() -> None:
    rig = Rig()
    rig.login()
    events: list[object] = []
    for t in range(1, 200):
        events += rig.at(t)
        if t == 100:
            rig.term.send_realtime(rig.report(), rig.now)  # pending when the link dies
        if rig.term.state is not ClientState.ONLINE:
            break
    misses = [e for e in events if isinstance(e, HeartbeatMissed)]
    assert [m.consecutive for m in misses] == [1, 2, 3]
    assert isinstance(events[-1], ReconnectRequested) and events[-1].reason == "heartbeat_timeout"
    assert any(isinstance(e, UploadUnconfirmed) for e in events)
    assert rig.term.state is ClientState.DISCONNECTED
    # heartbeats at 30, 60, 90 (the missed one was the last frame sent); dead at 120
    assert rig.now == rig.clock.start_mono + 120


def test_any_platform_frame_resets_missed_heartbeats() -> None:
    rig = Rig()
    rig.login()
    rig.at(30)
    rig.at(60)  # miss 1
    assert rig.term.heartbeat_misses == 1
    rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS)
    assert rig.term.heartbeat_misses == 0


# ------------------------------------------------------------------------------------------ uploads


@pytest.mark.parametrize("form", ["empty", "time", "echo"])
def test_realtime_error_reply_resend_every_minute_then_give_up(form: str) -> None:
    rig = Rig(heartbeat_interval=None)
    rig.login()
    report = rig.report()

    def body() -> object:
        return {"empty": Empty(), "time": TimeOnly(report.time), "echo": report}[form]

    rig.term.send_realtime(report, rig.now)
    first = rig.sent()
    events = rig.feed(Command.REALTIME, ResponseFlag.ERROR, body())
    assert events == [UploadRejected(Command.REALTIME, report.time, ResponseFlag.ERROR, 1, rig.now + 60, VIN)]
    for n in (1, 2, 3):
        assert rig.at(60 * n - 0.5) == [] and rig.sent() == []
        rig.at(60 * n)
        resent = rig.sent()
        assert [f.command for f in resent] == [Command.REALTIME] and resent[0].body == first[0].body
        events = rig.feed(Command.REALTIME, ResponseFlag.ERROR, body())
    assert events == [UploadAbandoned(Command.REALTIME, report.time, ResponseFlag.ERROR, 4, VIN)]
    assert rig.term.pending_uploads == 0
    rig.at(1000)
    assert rig.sent() == []


@pytest.mark.parametrize("body", ["empty", "time", "echo"])
def test_success_reply_in_every_form_is_accepted(body: str) -> None:
    rig = Rig()
    rig.login()
    report = rig.report()
    rig.term.send_reissue(report, rig.now)
    reply = {"empty": Empty(), "time": TimeOnly(report.time), "echo": report}[body]
    events = rig.feed(Command.REISSUE, ResponseFlag.SUCCESS, reply)
    assert events == [UploadDelivered(Command.REISSUE, report.time, True, VIN)]


def test_silence_means_delivered_after_the_reply_timeout() -> None:
    rig = Rig(heartbeat_interval=None)
    rig.login()
    report = rig.report()
    rig.term.send_realtime(report, rig.now)
    assert rig.at(29) == []
    assert rig.at(30) == [UploadDelivered(Command.REALTIME, report.time, False, VIN)]


def test_heartbeat_after_barrier_after_uploads_proves_those_written_before_it() -> None:
    rig = Rig(heartbeat_interval=None, barrier_after=3)
    rig.login()
    reports = [rig.report(-10 + i) for i in range(5)]
    for r in reports[:3]:
        rig.term.send_reissue(r, rig.now)
    sent = rig.sent()
    assert [f.command for f in sent] == [Command.REISSUE] * 3 + [Command.HEARTBEAT]
    # an error reply to the second one (it comes before the heartbeat reply: one connection, in order)
    rejected = rig.feed(Command.REISSUE, ResponseFlag.ERROR, TimeOnly(reports[1].time))
    assert isinstance(rejected[0], UploadRejected)
    rig.term.send_reissue(reports[3], rig.now)  # written after the heartbeat: not covered by it
    events = rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS)
    assert [e for e in events if isinstance(e, UploadDelivered)] == [
        UploadDelivered(Command.REISSUE, reports[0].time, False, VIN),
        UploadDelivered(Command.REISSUE, reports[2].time, False, VIN),
    ]
    # something was uploaded while the heartbeat was out: the chain goes on with one more barrier
    assert [f.command for f in rig.sent()] == [Command.REISSUE, Command.HEARTBEAT]
    events = rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS)
    assert events == [UploadDelivered(Command.REISSUE, reports[3].time, False, VIN)]
    assert rig.sent() == []  # nothing new: the chain ends
    assert rig.term.pending_uploads == 1  # the rejected one waits for its resend


def test_barrier_heartbeats_lost_with_the_link_prove_nothing_later() -> None:
    rig = Rig(heartbeat_interval=None, barrier_after=2)
    rig.login()
    a, b = rig.report(-2), rig.report(-1)
    rig.term.send_reissue(a, rig.now)
    rig.term.send_reissue(b, rig.now)
    assert [f.command for f in rig.sent()][-1] == Command.HEARTBEAT
    lost = rig.term.connection_lost(rig.now)
    assert len([e for e in lost if isinstance(e, UploadUnconfirmed)]) == 2
    rig.login()
    c = rig.report(0)
    rig.term.send_reissue(c, rig.now)
    rig.sent()
    assert rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS) == []  # a stale reply: proves nothing
    assert rig.term.pending_uploads == 1


def test_no_barrier_when_disabled() -> None:
    rig = Rig(heartbeat_interval=None, barrier_after=0)
    rig.login()
    for i in range(150):
        rig.term.send_reissue(rig.report(-200 + i), rig.now)
    assert {f.command for f in rig.sent()} == {Command.REISSUE}


def test_replies_match_by_time() -> None:
    rig = Rig(heartbeat_interval=None)
    rig.login()
    a, b = rig.report(-2), rig.report(-1)
    rig.term.send_reissue(a, rig.now)
    rig.term.send_reissue(b, rig.now)
    events = rig.feed(Command.REISSUE, ResponseFlag.ERROR, TimeOnly(b.time))
    assert isinstance(events[0], UploadRejected) and events[0].time == b.time
    events = rig.feed(Command.REISSUE, ResponseFlag.SUCCESS)  # L = 0: the oldest pending one
    assert events == [UploadDelivered(Command.REISSUE, a.time, True, VIN)]


def test_late_reply_to_an_upload_settled_by_timeout_is_not_taken_for_a_newer_one() -> None:
    # a slow platform answers after the reply timeout: the late success names the first upload's time,
    # which is no longer pending; it must not settle the second (pending) upload as acknowledged
    rig = Rig(heartbeat_interval=None)
    rig.login()
    a = rig.report(-1)
    rig.term.send_realtime(a, rig.now)
    assert rig.at(30) == [UploadDelivered(Command.REALTIME, a.time, False, VIN)]
    b = rig.report()
    rig.term.send_realtime(b, rig.now)
    assert rig.feed(Command.REALTIME, ResponseFlag.SUCCESS, TimeOnly(a.time)) == []
    assert rig.term.pending_uploads == 1
    assert rig.feed(Command.REALTIME, ResponseFlag.SUCCESS, TimeOnly(b.time)) == [
        UploadDelivered(Command.REALTIME, b.time, True, VIN)]
    # a reply with a time of no upload at all (a platform that puts its own time in) still matches the
    # oldest pending upload, as before
    c = rig.report(1)
    rig.term.send_realtime(c, rig.now)
    other = TimeOnly(c.time + timedelta(seconds=7))
    assert rig.feed(Command.REALTIME, ResponseFlag.SUCCESS, other) == [
        UploadDelivered(Command.REALTIME, c.time, True, VIN)]


def test_signature_error_2025_is_not_resent() -> None:
    rig = Rig(Edition.E2025)
    rig.login()
    report = rig.report()
    rig.term.send_realtime(report, rig.now)
    rig.sent()
    events = rig.feed(Command.REALTIME, ResponseFlag.SIGNATURE_ERROR, TimeOnly(report.time))
    assert events == [
        SignatureRejected(Command.REALTIME, report.time),
        UploadAbandoned(Command.REALTIME, report.time, ResponseFlag.SIGNATURE_ERROR, 1, VIN),
    ]
    rig.at(500)
    assert all(f.command != Command.REALTIME for f in rig.sent())


def test_connection_lost_reports_unconfirmed_uploads() -> None:
    rig = Rig()
    rig.login()
    report = rig.report()
    rig.term.send_realtime(report, rig.now)
    assert rig.term.connection_lost(rig.now) == [UploadUnconfirmed(Command.REALTIME, report.time, VIN)]
    assert rig.term.state is ClientState.DISCONNECTED
    with pytest.raises(SessionStateError):
        rig.term.send_realtime(report, rig.now)


# ------------------------------------------------------------------------------------------ time calibration


def test_time_calibration_retries_until_success() -> None:
    rig = Rig(heartbeat_interval=None)
    rig.login()
    rig.term.request_time_calibration(rig.now)
    assert [f.command for f in rig.sent()] == [Command.TIME_CALIBRATION]
    assert rig.at(30) == [TimeCalibrationFailed(None, rig.now)]  # timeout (param 0x0B): retry now
    assert [f.command for f in rig.sent()] == [Command.TIME_CALIBRATION]
    rig.clock.now += 1
    events = rig.feed(Command.TIME_CALIBRATION, ResponseFlag.ERROR)
    assert events == [TimeCalibrationFailed(ResponseFlag.ERROR, rig.now + 60)]
    assert rig.at(90) == [] and rig.sent() == []
    rig.at(91)
    assert [f.command for f in rig.sent()] == [Command.TIME_CALIBRATION]
    platform_time = datetime(2026, 3, 1, 8, 1, 40, tzinfo=UTC)
    events = rig.feed(Command.TIME_CALIBRATION, ResponseFlag.SUCCESS, TimeOnly(platform_time))
    assert events == [TimeCalibrated(platform_time, rig.clock.start_mono, rig.now)]
    assert rig.at(500) == [] and rig.sent() == []


def test_time_calibration_requested_before_login_goes_out_after_login() -> None:
    rig = Rig()
    rig.term.request_time_calibration(rig.now)
    rig.term.connection_made(rig.now)
    assert [f.command for f in rig.sent()] == [Command.VEHICLE_LOGIN]
    rig.feed(Command.VEHICLE_LOGIN, ResponseFlag.SUCCESS)
    assert [f.command for f in rig.sent()] == [Command.TIME_CALIBRATION]
    rig.term.cancel_time_calibration()
    rig.at(100)
    assert all(f.command != Command.TIME_CALIBRATION for f in rig.sent())


# ------------------------------------------------------------------------------------------ downlink


def _t(rig: Rig) -> datetime:
    return rig.clock.wall().replace(microsecond=0)


def test_parameter_query_reply_and_bad_query_silence() -> None:
    rig = Rig()
    rig.login()
    t = _t(rig)
    assert rig.feed(Command.PARAMETER_QUERY, ResponseFlag.COMMAND, ParameterQuery(t, (0x09, 0x02))) == []
    (reply,) = rig.sent()
    assert (reply.command, reply.response) == (Command.PARAMETER_QUERY, ResponseFlag.SUCCESS)
    assert reply.body == ParameterQueryReply(t, (Parameter(0x09, 30), Parameter(0x02, 10)))
    events = rig.feed(Command.PARAMETER_QUERY, ResponseFlag.COMMAND, ParameterQuery(t + timedelta(seconds=1),
                                                                                     (0x42,)))
    assert [type(e) for e in events] == [FrameIgnored] and rig.sent() == []


def test_parameter_set_success_applies_timers() -> None:
    rig = Rig()
    rig.login()
    t = _t(rig)
    items = (Parameter(ParameterId.HEARTBEAT_PERIOD, 10), Parameter(ParameterId.LOGIN_RETRY_INTERVAL, 5),
             Parameter(ParameterId.PLATFORM_RESPONSE_TIMEOUT, 20))
    events = rig.feed(Command.PARAMETER_SET, ResponseFlag.COMMAND, ParameterSet(t, items))
    assert events == [ParametersChanged(t, items)]
    (reply,) = rig.sent()
    assert (reply.command, reply.response, reply.body) == (Command.PARAMETER_SET, ResponseFlag.SUCCESS,
                                                           TimeOnly(t))
    assert rig.term.timing.heartbeat_interval == 10 and rig.term.timing.login_backoff == 300
    assert rig.term.timing.reply_timeout == 20


@pytest.mark.parametrize("item", [Parameter(ParameterId.FIRMWARE_VERSION, "V1.00"),
                                  Parameter(ParameterId.REPORT_PERIOD, 9999)])
def test_parameter_set_rejected_as_a_whole(item: Parameter) -> None:
    rig = Rig()
    rig.login()
    t = _t(rig)
    items = (Parameter(ParameterId.HEARTBEAT_PERIOD, 10), item)
    events = rig.feed(Command.PARAMETER_SET, ResponseFlag.COMMAND, ParameterSet(t, items))
    assert [type(e) for e in events] == [ParametersRejected]
    (reply,) = rig.sent()
    assert reply.response == ResponseFlag.ERROR
    assert rig.term.timing.heartbeat_interval == 30


def test_platform_change_flow_failure_sends_error_to_old_platform() -> None:
    rig = Rig()
    rig.login()
    t = _t(rig)
    items = (Parameter(ParameterId.PLATFORM_DOMAIN_LENGTH, 11),
             Parameter(ParameterId.PLATFORM_DOMAIN, "example.com"),
             Parameter(ParameterId.PLATFORM_PORT, 19006))
    events = rig.feed(Command.PARAMETER_SET, ResponseFlag.COMMAND, ParameterSet(t, items))
    assert events == [ParametersChanged(t, items), PlatformChangeRequested(t, items)]
    assert rig.sent()[0].response == ResponseFlag.SUCCESS
    assert rig.term.report_platform_change(False, rig.now) == []
    (err,) = rig.sent()
    assert (err.command, err.response, err.body) == (Command.PARAMETER_SET, ResponseFlag.ERROR, TimeOnly(t))
    with pytest.raises(SessionStateError):
        rig.term.report_platform_change(True, rig.now)
    # a retry of that set now gets the error answer again, and nothing is re-applied
    assert rig.feed(Command.PARAMETER_SET, ResponseFlag.COMMAND, ParameterSet(t, items)) == []
    assert rig.sent()[0].response == ResponseFlag.ERROR


def test_platform_change_success_sends_nothing() -> None:
    rig = Rig()
    rig.login()
    items = (Parameter(ParameterId.PLATFORM_PORT, 19006),)
    rig.feed(Command.PARAMETER_SET, ResponseFlag.COMMAND, ParameterSet(_t(rig), items))
    rig.sent()
    assert rig.term.report_platform_change(True, rig.now) == []
    assert rig.sent() == []


def test_control_reply_then_execute_once_despite_platform_resends() -> None:
    rig = Rig()
    rig.login()
    t = _t(rig)
    control = TerminalControl(t, ControlId.WARNING, WarningParams(3))
    events = rig.feed(Command.TERMINAL_CONTROL, ResponseFlag.COMMAND, control)
    assert events == [ControlRequested(t, ControlId.WARNING, WarningParams(3))]
    (reply,) = rig.sent()
    assert (reply.response, reply.body) == (ResponseFlag.SUCCESS, TimeOnly(t))
    rig.clock.now += 60
    assert rig.feed(Command.TERMINAL_CONTROL, ResponseFlag.COMMAND, control) == []  # resend: no re-execution
    (again,) = rig.sent()
    assert again.response == ResponseFlag.SUCCESS


def test_bad_control_is_ignored() -> None:
    rig = Rig()
    rig.login()
    events = rig.feed(Command.TERMINAL_CONTROL, ResponseFlag.COMMAND, TerminalControl(_t(rig), 0x42, b""))
    assert [type(e) for e in events] == [FrameIgnored] and rig.sent() == []


def test_echo_reply_form_for_control() -> None:
    rig = Rig()
    config = replace(rig.term.config, reply_form=ResponseForm.ECHO)
    rig.term = TerminalSession(config, wallclock=rig.clock.wall, codec=rig.codec)
    rig.login()
    control = TerminalControl(_t(rig), ControlId.RESET)
    rig.feed(Command.TERMINAL_CONTROL, ResponseFlag.COMMAND, control)
    assert rig.sent()[0].body == control


def test_downlink_before_login_is_ignored() -> None:
    rig = Rig()
    rig.term.connection_made(rig.now)
    rig.sent()
    control = TerminalControl(_t(rig), ControlId.RESET)
    events = rig.feed(Command.TERMINAL_CONTROL, ResponseFlag.COMMAND, control)
    assert [type(e) for e in events] == [FrameIgnored] and rig.sent() == []


# ------------------------------------------------------------------------------------ 2025 activation, keys


def test_activation_signed_and_result() -> None:
    rig = Rig(Edition.E2025)
    rig.term.connection_made(rig.now)
    rig.sent()
    rig.term.activate(rig.now, "CHIP0001", b"\x04" + b"K" * 64)
    (frame,) = rig.sent()
    assert frame.command == Command.ACTIVATION and isinstance(frame.body, Activation)
    unsigned = replace(frame.body, signature=Signature(0, b""))
    assert rig.signer.signed == [activation_signed_bytes(unsigned)]
    assert frame.body.signature.r == b"R" * 32
    signed = rig.signer.signed[0]
    assert signed[6:22] == b"CHIP0001        " and signed[22:24] == b"\x00\x41"
    assert signed.endswith(VIN.encode())
    events = rig.feed(Command.ACTIVATION_RESULT, ResponseFlag.COMMAND,
                      ActivationResult(ActivationStatus.ACTIVATED, ActivationInfo.SUCCESS))
    assert events == [ActivationResultReceived(ActivationStatus.ACTIVATED, ActivationInfo.SUCCESS)]
    assert events[0].activated  # type: ignore[attr-defined]
    assert rig.at(120) == [] or True


def test_activation_timeout_and_edition_check() -> None:
    rig = Rig(Edition.E2025)
    rig.term.connection_made(rig.now)
    rig.term.activate(rig.now, "CHIP0001", b"key")
    events = [e for t in (60, 120) for e in rig.at(t) if isinstance(e, ActivationTimedOut)]
    assert events == [ActivationTimedOut()]
    with pytest.raises(SessionStateError):
        Rig().term.activate(0.0, "CHIP", b"k")


def test_key_exchange_received() -> None:
    rig = Rig(Edition.E2025)
    rig.login()
    kx = KeyExchange(Encryption.SM4, b"k" * 16, _t(rig), _t(rig) + timedelta(days=30))
    assert rig.feed(Command.KEY_EXCHANGE, ResponseFlag.COMMAND, kx) == [KeyExchangeReceived(kx)]


# ------------------------------------------------------------------------------------------ robustness


def test_other_edition_frame_is_decoded_and_answered_in_session_edition() -> None:
    rig = Rig(Edition.E2016)
    rig.login()
    t = _t(rig)
    rig.feed(Command.PARAMETER_QUERY, ResponseFlag.COMMAND, ParameterQuery(t, (0x09,)), edition=Edition.E2025)
    data = rig.term.data_to_send()
    assert data[:2] == b"##"


def test_bad_bcc_and_foreign_vin_are_violations() -> None:
    rig = Rig()
    rig.login()
    good = rig.codec.encode(Frame(Edition.E2016, Command.HEARTBEAT, ResponseFlag.SUCCESS, VIN))
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    events = rig.term.receive_data(bad, rig.now)
    assert [type(e) for e in events] == [ProtocolViolation] and events[0].field == "bcc"  # type: ignore[attr-defined]
    events = rig.feed(Command.HEARTBEAT, ResponseFlag.SUCCESS, vin="LOTHER00000000000")
    assert [type(e) for e in events] == [ProtocolViolation]
    events = rig.term.receive_data(wire.build_frame(2016, 0x80, 0xFE, VIN.encode(), 1, b"\x01"), rig.now)
    assert [type(e) for e in events] == [ProtocolViolation]  # undecodable body


@given(st.binary(max_size=300), st.integers(1, 40))
def test_garbage_never_raises(data: bytes, chunk: int) -> None:
    rig = Rig()
    rig.login()
    # random bytes, optionally framed correctly so they reach the decoders
    framed = wire.build_frame(2016, data[0] if data else 0x80, 0xFE, VIN.encode(), 1, data[:64])
    stream = data + framed + data
    for i in range(0, len(stream), chunk):
        for event in rig.term.receive_data(stream[i : i + chunk], rig.now):
            assert isinstance(event, ProtocolViolation | FrameIgnored)
    rig.at(10)


def test_connection_after_an_unticked_backoff_restarts_the_count() -> None:
    rig = Rig(max_login_attempts=1, login_backoff=600.0)
    rig.term.connection_made(rig.now)
    rig.sent()
    rig.at(60)  # backoff until 660
    rig.term.connection_lost(rig.now)
    rig.clock.now = rig.clock.start_mono + 700  # nobody ticked at 660
    rig.term.connection_made(rig.now)
    assert [f.command for f in rig.sent()] == [Command.VEHICLE_LOGIN]
    assert rig.term.login_failures == 0 and rig.term.state is ClientState.LOGGING_IN


def test_tracking_limit_never_drops_uploads_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.protocol import session

    monkeypatch.setattr(session, "_UPLOAD_TRACK_LIMIT", 2)
    rig = Rig()
    rig.login()
    reports = [rig.report(-i) for i in range(3)]
    assert rig.term.send_reissue(reports[0], rig.now) == []
    assert rig.term.send_reissue(reports[1], rig.now) == []
    assert rig.term.send_reissue(reports[2], rig.now) == [
        UploadUnconfirmed(Command.REISSUE, reports[0].time, VIN)]


def test_platform_change_report_needs_the_link_for_failure() -> None:
    rig = Rig()
    rig.login()
    rig.feed(Command.PARAMETER_SET, ResponseFlag.COMMAND,
             ParameterSet(_t(rig), (Parameter(ParameterId.PLATFORM_PORT, 1),)))
    rig.term.connection_lost(rig.now)
    with pytest.raises(SessionStateError):
        rig.term.report_platform_change(False, rig.now)
    assert rig.term.report_platform_change(True, rig.now) == []  # still pending: can be reported


def test_relogin_after_battery_swap_uses_a_new_serial() -> None:
    rig = Rig(Edition.E2025)
    rig.login()
    rig.term.relogin(rig.now)
    (login,) = rig.sent()
    assert isinstance(login.body, VehicleLogin2025) and login.body.serial == 2
    with pytest.raises(SessionStateError):
        rig.term.send_realtime(rig.report(), rig.now)
    reply = TimeOnly(login.body.time)
    assert rig.feed(Command.VEHICLE_LOGIN, ResponseFlag.SUCCESS, reply) == [LoginSucceeded(2)]
    rig.term.connection_lost(rig.now)
    with pytest.raises(SessionStateError):
        rig.term.relogin(rig.now)
