"""Platform session and platform-to-platform forwarding, with injected time (registry codec)."""

from __future__ import annotations

import types
from datetime import datetime, timedelta

import pytest

from agent.protocol import session as session_module
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
    Parameter,
    ParameterId,
    ParameterQuery,
    PlatformLogin,
    PlatformLogout,
    RealtimeReport,
    ResponseFlag,
    Signature,
    SignatureType,
    TimeOnly,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
)
from agent.protocol.session import (
    ActivationHandled,
    BeforeLogin,
    ClientState,
    CloseRequested,
    DownlinkAbandoned,
    DownlinkReplied,
    ForwardingConfig,
    ForwardingSession,
    FrameIgnored,
    FrameReceived,
    LoggedOut,
    LoginFailed,
    LoginRefused,
    LoginSucceeded,
    PlatformConfig,
    PlatformLoggedIn,
    PlatformLoggedOut,
    PlatformSession,
    PlatformState,
    ProtocolViolation,
    ReportReceived,
    ReportRefused,
    ResponseForm,
    SessionEnded,
    SessionStateError,
    UploadDelivered,
    UploadRejected,
    VehicleLoggedIn,
    VehicleLoggedOut,
)
from tests.protocol.session_support import Clock, RegistryCodec

VIN = "LTBOX000000000001"


class PRig:
    def __init__(self, config: PlatformConfig | None = None, **kwargs: object) -> None:
        self.clock = Clock()
        self.codec = RegistryCodec()
        self.plat = PlatformSession(config, wallclock=self.clock.wall, codec=self.codec, **kwargs)  # type: ignore[arg-type]
        self.plat.connection_made(self.clock.now)

    @property
    def now(self) -> float:
        return self.clock.now

    def at(self, seconds: float) -> list[object]:
        self.clock.now = self.clock.start_mono + seconds
        return list(self.plat.tick(self.clock.now))

    def send(self, command: int, body: object = None, *, flag: int = ResponseFlag.COMMAND,
             edition: Edition = Edition.E2016, vin: str = VIN) -> list[object]:
        frame = Frame(edition, command, flag, vin, Encryption.NONE,
                      Empty() if body is None else body)  # type: ignore[arg-type]
        return list(self.plat.receive_data(self.codec.encode(frame), self.clock.now))

    def sent(self) -> list[Frame]:
        return self.codec.frames(self.plat.data_to_send())

    def wall(self) -> datetime:
        return self.clock.wall().replace(microsecond=0)

    def login(self, edition: Edition = Edition.E2016) -> VehicleLogin | VehicleLogin2025:
        body: VehicleLogin | VehicleLogin2025
        if edition == Edition.E2016:
            body = VehicleLogin(self.wall(), 7, "89860000000000000001", 1, 0)
        else:
            body = VehicleLogin2025(self.wall(), 7, "89860000000000000001", (1,), ("P" * 24,))
        events = self.send(Command.VEHICLE_LOGIN, body, edition=edition)
        assert events == [VehicleLoggedIn(VIN, 7, body)]
        return body


@pytest.mark.parametrize("edition", [Edition.E2016, Edition.E2025])
def test_login_reply_time_only_in_request_edition(edition: Edition) -> None:
    rig = PRig()
    body = rig.login(edition)
    data = rig.plat.data_to_send()
    assert data[:2] == (b"##" if edition == Edition.E2016 else b"$$")
    (reply,) = rig.codec.frames(data)
    assert (reply.command, reply.response, reply.body, reply.vin) == (
        Command.VEHICLE_LOGIN, ResponseFlag.SUCCESS, TimeOnly(body.time), VIN)
    assert rig.plat.state is PlatformState.VEHICLE and rig.plat.vin == VIN and rig.plat.serial == 7


def test_login_reply_echo_and_empty_forms() -> None:
    rig = PRig(PlatformConfig(response_form=ResponseForm.ECHO))
    rig.clock.advance(0.5)
    body = rig.login()
    (reply,) = rig.sent()
    assert isinstance(reply.body, VehicleLogin) and reply.body.serial == 7
    rig = PRig(PlatformConfig(response_form=ResponseForm.EMPTY))
    rig.login()
    assert rig.sent()[0].body == Empty()
    del body


def test_login_refused_duplicate_vin_and_ignored() -> None:
    rig = PRig(authorize_login=lambda frame: ResponseFlag.VIN_DUPLICATE)
    body = VehicleLogin(rig.wall(), 1, "8986", 1, 0)
    assert rig.send(Command.VEHICLE_LOGIN, body) == [LoginRefused(VIN, ResponseFlag.VIN_DUPLICATE)]
    assert rig.sent()[0].response == ResponseFlag.VIN_DUPLICATE
    rig = PRig(authorize_login=lambda frame: None)
    assert rig.send(Command.VEHICLE_LOGIN, body) == [LoginRefused(VIN, None)]
    assert rig.sent() == []


def test_bad_bcc_login_is_ignored_but_bad_realtime_gets_error() -> None:
    rig = PRig()
    login = VehicleLogin(rig.wall(), 1, "8986", 1, 0)
    raw = rig.codec.encode(Frame(Edition.E2016, Command.VEHICLE_LOGIN, ResponseFlag.COMMAND, VIN,
                                 Encryption.NONE, login))
    events = rig.plat.receive_data(raw[:-1] + bytes([raw[-1] ^ 1]), rig.now)
    assert [type(e) for e in events] == [ProtocolViolation] and rig.sent() == []
    rig.login()
    rig.sent()
    t = rig.wall()
    local = t.astimezone(session_module.BEIJING)
    fields = (local.year, local.month, local.day, local.hour, local.minute, local.second)
    data = wire.encode_time(fields) + b"\x01"
    frame = wire.build_frame(2016, 0x02, 0xFE, VIN.encode(), 1, data)
    events = rig.plat.receive_data(frame[:-1] + bytes([frame[-1] ^ 1]), rig.now)
    assert [type(e) for e in events] == [ProtocolViolation, ReportRefused]
    (reply,) = rig.sent()
    assert (reply.command, reply.response, reply.body) == (Command.REALTIME, ResponseFlag.ERROR, TimeOnly(t))


def test_undecodable_realtime_gets_structure_error_in_2025() -> None:
    rig = PRig()
    rig.login(Edition.E2025)
    rig.sent()
    events = rig.plat.receive_data(wire.build_frame(2025, 0x02, 0xFE, VIN.encode(), 1, b"\x00"), rig.now)
    assert [type(e) for e in events] == [ProtocolViolation, ReportRefused]
    assert rig.sent()[0].response == ResponseFlag.STRUCTURE_ERROR


@pytest.mark.parametrize("policy", [BeforeLogin.IGNORE, BeforeLogin.CLOSE])
def test_frames_before_login(policy: BeforeLogin) -> None:
    rig = PRig(PlatformConfig(before_login=policy))
    events = rig.send(Command.REALTIME, RealtimeReport(rig.wall()))
    if policy is BeforeLogin.IGNORE:
        assert [type(e) for e in events] == [FrameIgnored]
        assert rig.plat.state is PlatformState.AWAITING_LOGIN
    else:
        assert [type(e) for e in events] == [FrameIgnored, SessionEnded, CloseRequested]
        assert rig.plat.state is PlatformState.ENDED
    assert rig.sent() == []


def test_realtime_silent_by_default_or_acknowledged() -> None:
    rig = PRig()
    rig.login()
    rig.sent()
    report = RealtimeReport(rig.wall())
    assert rig.send(Command.REALTIME, report) == [ReportReceived(VIN, Command.REALTIME, report, None)]
    assert rig.sent() == []
    rig = PRig(PlatformConfig(reply_realtime_success=True))
    rig.login()
    rig.sent()
    rig.send(Command.REISSUE, report)
    (reply,) = rig.sent()
    assert (reply.command, reply.response, reply.body) == (Command.REISSUE, ResponseFlag.SUCCESS,
                                                           TimeOnly(report.time))


@pytest.mark.parametrize("edition", [Edition.E2016, Edition.E2025])
@pytest.mark.parametrize("form", [ResponseForm.TIME_ONLY, ResponseForm.EMPTY])
def test_accept_report_replies_as_receive_frame_does(edition: Edition, form: ResponseForm) -> None:
    """The fast path for a report the caller checked: the same reply bytes and idle clock as
    ``receive_frame`` (no event); refused, with nothing done, where the session would decide otherwise."""
    config = PlatformConfig(reply_realtime_success=True, response_form=form)
    slow, fast = PRig(config), PRig(config)
    for rig in (slow, fast):
        rig.login(edition)
        rig.sent()
        rig.clock.advance(3.0)
    report = RealtimeReport(slow.wall())
    slow.send(Command.REALTIME, report, edition=edition)
    assert fast.plat.accept_report(edition, Command.REALTIME, VIN, report.time, fast.now) is True
    assert fast.sent() == slow.sent() != []  # (the registry codec's bytes differ by its keys)
    assert fast.plat.next_deadline() == slow.plat.next_deadline()
    assert fast.plat.accept_report(edition, Command.REISSUE, VIN, report.time, fast.now) is True
    assert fast.plat.accept_report(edition, Command.REALTIME, "LTBOX000000000002", report.time,
                                   fast.now) is False
    assert fast.plat.accept_report(edition, Command.HEARTBEAT, VIN, report.time, fast.now) is False
    fast.plat.data_to_send()
    assert PRig(config).plat.accept_report(edition, Command.REALTIME, VIN, report.time, 0.0) is False
    echo = PRig(PlatformConfig(reply_realtime_success=True, response_form=ResponseForm.ECHO))
    echo.login(edition)
    assert echo.plat.accept_report(edition, Command.REALTIME, VIN, report.time, echo.now) is False
    signed = PRig(config, verifier=object())
    signed.login(edition)
    signed.sent()
    took = signed.plat.accept_report(edition, Command.REALTIME, VIN, report.time, signed.now)
    assert took is (edition == Edition.E2016) and (signed.plat.data_to_send() != b"") is took


def test_2025_signature_checked_through_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(signed_range=lambda edition, report: b"signed:" + bytes(len(report.blocks)))
    monkeypatch.setattr(session_module, "_codec_module", lambda: fake)

    class Verifier:
        def verify(self, data: bytes, signature: Signature) -> bool:
            return data.startswith(b"signed:") and signature.r == b"good"

    rig = PRig(verifier=Verifier())
    rig.login(Edition.E2025)
    rig.sent()
    good = RealtimeReport(rig.wall(), (), Signature(SignatureType.SM2, b"good"))
    assert rig.send(Command.REALTIME, good, edition=Edition.E2025) == [
        ReportReceived(VIN, Command.REALTIME, good, True)]
    bad = RealtimeReport(rig.wall(), (), Signature(SignatureType.SM2, b"evil"))
    events = rig.send(Command.REALTIME, bad, edition=Edition.E2025)
    assert events == [ReportRefused(VIN, Command.REALTIME, ResponseFlag.SIGNATURE_ERROR, "signature")]
    (reply,) = rig.sent()
    assert reply.response == ResponseFlag.SIGNATURE_ERROR and reply.body == TimeOnly(bad.time)
    unsigned = RealtimeReport(rig.wall())
    assert isinstance(rig.send(Command.REALTIME, unsigned, edition=Edition.E2025)[0], ReportRefused)


def test_heartbeat_calibration_and_logout() -> None:
    rig = PRig()
    rig.login()
    rig.sent()
    assert rig.send(Command.HEARTBEAT) == []
    (hb,) = rig.sent()
    assert (hb.command, hb.response) == (Command.HEARTBEAT, ResponseFlag.SUCCESS)
    assert isinstance(hb.body, TimeOnly)  # time-only form: the server's time
    events = rig.send(Command.TIME_CALIBRATION)
    assert [type(e) for e in events] == [FrameReceived]
    (tc,) = rig.sent()
    assert tc.body == TimeOnly(rig.wall())
    logout = VehicleLogout(rig.wall(), 7)
    events = rig.send(Command.VEHICLE_LOGOUT, logout)
    assert events == [VehicleLoggedOut(VIN, 7), SessionEnded("logout"), CloseRequested("logout")]
    assert rig.sent()[0].body == TimeOnly(logout.time)
    assert rig.plat.next_deadline() is None


def test_idle_session_is_dropped() -> None:
    rig = PRig(PlatformConfig(heartbeat_interval=10, idle_factor=3))
    rig.login()
    assert rig.plat.next_deadline() == rig.now + 30
    assert rig.at(29) == []
    rig.send(Command.HEARTBEAT)
    assert rig.at(58) == []
    assert rig.at(59) == [SessionEnded("idle"), CloseRequested("idle")]


def test_activation_answered_with_0x0a_command() -> None:
    result = ActivationResult(ActivationStatus.ACTIVATED, ActivationInfo.SUCCESS)
    rig = PRig(on_activation=lambda frame: result)
    act = Activation(rig.wall(), "CHIP", b"key", VIN, Signature(SignatureType.SM2, b"r", b"s"))
    events = rig.send(Command.ACTIVATION, act, edition=Edition.E2025)
    assert events == [ActivationHandled(VIN, act, result)]
    (frame,) = rig.sent()
    assert (frame.command, frame.response, frame.body, frame.edition) == (
        Command.ACTIVATION_RESULT, ResponseFlag.COMMAND, result, Edition.E2025)


def test_downlink_resend_every_minute_then_abandon() -> None:
    rig = PRig(PlatformConfig(heartbeat_interval=1000))
    rig.login()
    rig.sent()
    t = rig.plat.query([ParameterId.HEARTBEAT_PERIOD], rig.now)
    (q,) = rig.sent()
    assert q.body == ParameterQuery(t, (ParameterId.HEARTBEAT_PERIOD,))
    assert rig.at(59) == [] and rig.sent() == []
    rig.at(60)
    assert [f.body for f in rig.sent()] == [q.body]
    rig.at(120)
    assert [f.body for f in rig.sent()] == [q.body]
    rig.at(180)
    assert [f.body for f in rig.sent()] == [q.body]  # third resend
    assert rig.at(240) == [DownlinkAbandoned(Command.PARAMETER_QUERY, t, 4)]
    assert rig.sent() == []


def test_downlink_retry_interval_configurable_and_replies_matched() -> None:
    rig = PRig(PlatformConfig(downlink_retry_interval=8, heartbeat_interval=1000))
    rig.login()
    rig.sent()
    t_set = rig.plat.set_parameters([Parameter(ParameterId.HEARTBEAT_PERIOD, 10)], rig.now)
    t_ctl = rig.plat.control(ControlId.RESET, b"", rig.now)
    rig.sent()
    rig.at(8)
    assert len(rig.sent()) == 2
    events = rig.send(Command.TERMINAL_CONTROL, TimeOnly(t_ctl), flag=ResponseFlag.SUCCESS)
    assert events == [DownlinkReplied(Command.TERMINAL_CONTROL, t_ctl, ResponseFlag.SUCCESS, TimeOnly(t_ctl))]
    events = rig.send(Command.PARAMETER_SET, Empty(), flag=ResponseFlag.ERROR)
    assert events == [DownlinkReplied(Command.PARAMETER_SET, t_set, ResponseFlag.ERROR, Empty())]
    rig.at(100)
    assert rig.sent() == []
    assert [type(e) for e in rig.send(Command.PARAMETER_SET, Empty(), flag=ResponseFlag.SUCCESS)] == [
        ProtocolViolation]


def test_downlinks_need_a_vehicle_and_get_unique_times() -> None:
    rig = PRig()
    with pytest.raises(SessionStateError):
        rig.plat.query([1], rig.now)
    rig.login()
    a = rig.plat.control(ControlId.RESET, b"", rig.now)
    b = rig.plat.control(ControlId.RESET, b"", rig.now)
    assert b == a + timedelta(seconds=1)


def test_platform_login_0x05_and_logout_0x06_server_side() -> None:
    rig = PRig()
    login = PlatformLogin(rig.wall(), 3, "user", "secret", Encryption.NONE)
    assert rig.send(Command.PLATFORM_LOGIN, login, vin="PLATFORM000000001") == [
        PlatformLoggedIn("PLATFORM000000001", "user", 3, Encryption.NONE)]
    assert rig.sent()[0].response == ResponseFlag.SUCCESS
    report = RealtimeReport(rig.wall())
    assert rig.send(Command.REALTIME, report, vin="LANYVIN0000000001") == [
        ReportReceived("LANYVIN0000000001", Command.REALTIME, report, None)]
    events = rig.send(Command.PLATFORM_LOGOUT, PlatformLogout(rig.wall(), 3), vin="PLATFORM000000001")
    assert events[0] == PlatformLoggedOut("PLATFORM000000001", 3)


# ------------------------------------------------------------------------------------------ forwarding


def test_forwarding_client_login_retry_forward_logout() -> None:
    clock = Clock()
    codec = RegistryCodec()
    fwd = ForwardingSession(ForwardingConfig("PLATFORM000000001", "user", "secret"), wallclock=clock.wall,
                            codec=codec)
    plat = PlatformSession(PlatformConfig(reply_realtime_success=True), wallclock=clock.wall, codec=codec,
                           authorize_platform_login=lambda f: None)
    fwd.connection_made(clock.now)
    plat.connection_made(clock.now)
    (login,) = codec.frames(fwd.data_to_send())
    assert login.command == Command.PLATFORM_LOGIN and isinstance(login.body, PlatformLogin)
    assert (login.body.username, login.body.password, login.body.serial) == ("user", "secret", 1)
    assert fwd.next_deadline() == clock.now + 60
    events = fwd.tick(clock.advance(60))
    assert isinstance(events[0], LoginFailed) and events[0].retry_at == clock.now + 60
    plat.authorize_platform_login = lambda f: ResponseFlag.SUCCESS
    fwd.tick(clock.advance(60))
    events = plat.receive_data(fwd.data_to_send(), clock.now)
    assert isinstance(events[-1], PlatformLoggedIn) and events[-1].serial == 2
    assert fwd.receive_data(plat.data_to_send(), clock.now) == [LoginSucceeded(2)]
    report = RealtimeReport(clock.wall().replace(microsecond=0))
    fwd.forward("LANYVIN0000000001", Command.REALTIME, report, clock.now)
    events = plat.receive_data(fwd.data_to_send(), clock.now)
    assert events == [ReportReceived("LANYVIN0000000001", Command.REALTIME, report, None)]
    assert fwd.receive_data(plat.data_to_send(), clock.now) == [
        UploadDelivered(Command.REALTIME, report.time, True, "LANYVIN0000000001")]
    fwd.logout(clock.now)
    events = plat.receive_data(fwd.data_to_send(), clock.now)
    assert events[0] == PlatformLoggedOut("PLATFORM000000001", 2)
    assert fwd.receive_data(plat.data_to_send(), clock.now) == [LoggedOut(2, True), CloseRequested("logout")]
    assert fwd.state is ClientState.CLOSED


def test_forwarding_error_reply_per_vin() -> None:
    clock = Clock()
    codec = RegistryCodec()
    config = ForwardingConfig("PLATFORM000000001", "u", "p")
    fwd = ForwardingSession(config, wallclock=clock.wall, codec=codec)
    fwd.connection_made(clock.now)
    ok = Frame(Edition.E2016, Command.PLATFORM_LOGIN, ResponseFlag.SUCCESS, "PLATFORM000000001")
    fwd.receive_frame(ok, clock.now)
    report = RealtimeReport(clock.wall().replace(microsecond=0))
    fwd.forward("LVIN0000000000001", Command.REISSUE, report, clock.now)
    events = fwd.receive_frame(Frame(Edition.E2016, Command.REISSUE, ResponseFlag.ERROR, "LVIN0000000000001",
                                     Encryption.NONE, TimeOnly(report.time)), clock.now)
    assert isinstance(events[0], UploadRejected) and events[0].vin == "LVIN0000000000001"
    with pytest.raises(SessionStateError):
        fwd.forward("LVIN0000000000001", Command.HEARTBEAT, report, clock.now)


def test_close_and_connection_lost_end_the_session_once() -> None:
    rig = PRig()
    rig.login()
    rig.plat.query([1], rig.now)
    assert rig.plat.close("duplicate_vin") == [SessionEnded("duplicate_vin"), CloseRequested("duplicate_vin")]
    assert rig.plat.close("again") == [] and rig.plat.connection_lost(rig.now) == []
    assert rig.plat.next_deadline() is None and rig.plat.tick(rig.now + 1000) == []
    assert [type(e) for e in rig.send(Command.HEARTBEAT)] == [FrameIgnored]
    other = PRig()
    assert other.plat.connection_lost(other.now) == [SessionEnded("connection_lost")]


def test_forwarding_sends_no_heartbeats_by_default() -> None:
    clock = Clock()
    codec = RegistryCodec()
    config = ForwardingConfig("PLATFORM000000001", "u", "p")
    fwd = ForwardingSession(config, wallclock=clock.wall, codec=codec)
    fwd.connection_made(clock.now)
    ok = Frame(Edition.E2016, Command.PLATFORM_LOGIN, ResponseFlag.SUCCESS, "PLATFORM000000001")
    assert fwd.receive_frame(ok, clock.now) == [LoginSucceeded(1)]
    fwd.data_to_send()
    assert fwd.next_deadline() is None
    fwd.tick(clock.now + 3600)
    assert fwd.data_to_send() == b""
    assert "secret" not in repr(ForwardingConfig("P", "u", "secret"))
