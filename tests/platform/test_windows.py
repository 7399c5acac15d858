"""Alarm windows and the 2025 post-HV-off window: decided by the server (logout, timeout), stored as
violations with their frame, kept open across a server restart, counted once by ``check``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from agent.protocol.model import (
    Alarm2025,
    ChargingState,
    Command,
    DcDcState,
    Edition,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    RealtimeReport,
    RunningMode,
    VehicleData2025,
    VehicleState,
)
from sim.platform.checks import Limits
from sim.platform.cli import conformance_summary
from sim.platform.db import PlatformDB
from tests.platform.support import VIN, Client, frame_bytes, now_utc, report, run, settle, start


def _alarm_frames(t: datetime, pre: int) -> list[bytes]:
    """``pre`` of the 30 pre-fault seconds as reissue (the latest ones), then the level-3 fault point."""
    frames = [frame_bytes(Command.REISSUE, report(t - timedelta(seconds=s), level=0))
              for s in range(pre, 0, -1)]
    frames.append(frame_bytes(Command.REALTIME, report(t, level=3)))
    return frames


async def _send(port: int, frames: list[bytes], *, edition: Edition = Edition.E2016, logout: bool = True,
                hold: float = 0.3) -> None:
    c = Client(port, edition=edition)
    await c.login()
    for data in frames:
        await c.raw(data)
    await c.pump(hold)
    if logout:
        c.events += c.session.logout(c.loop.time())
        await c.flush()
        await c.pump(0.3)
    await c.close()


def _violations(db_path: Path) -> list[tuple[int | None, str, str]]:
    db = PlatformDB(db_path)
    try:
        return [(fid, kind, reason) for fid, _vin, kind, reason in db.violations()]
    finally:
        db.close()


def _windows(db_path: Path) -> list[tuple[str, str]]:
    db = PlatformDB(db_path)
    try:
        return [(w.kind, w.status) for w in db.windows()]
    finally:
        db.close()


def _fault_frame(db_path: Path, t: datetime) -> int:
    db = PlatformDB(db_path)
    try:
        return next(r.id for r in db.frames()
                    if r.command == Command.REALTIME and r.collected == t.isoformat())
    finally:
        db.close()


def test_alarm_window_gap_is_recorded_at_logout_with_the_fault_frame(tmp_path: Path) -> None:
    t = now_utc() - timedelta(seconds=2)

    async def main() -> None:
        server = await start(tmp_path)
        try:
            await _send(server.port, _alarm_frames(t, pre=20))
            await settle(server)
        finally:
            await server.stop()

    run(main())
    db_path = tmp_path / "p.db"
    found = [(fid, kind) for fid, kind, _ in _violations(db_path)]
    assert found == [(_fault_frame(db_path, t), "alarm_window_gap")]
    assert "10 of 31 seconds missing" in _violations(db_path)[0][2]
    assert _windows(db_path) == [("alarm", "gap")]
    summary = conformance_summary(str(db_path))  # counted once, as decided by the server
    assert summary["vins"][VIN]["violations"] == {"alarm_window_gap": 1}
    assert [g["decided"] for g in summary["alarm_window_gaps"]] == [True]


def test_complete_alarm_window_is_decided_without_violation(tmp_path: Path) -> None:
    t = now_utc() - timedelta(seconds=2)

    async def main() -> None:
        server = await start(tmp_path)
        try:
            await _send(server.port, _alarm_frames(t, pre=30))
            await settle(server)
        finally:
            await server.stop()

    run(main())
    assert _violations(tmp_path / "p.db") == []
    assert _windows(tmp_path / "p.db") == [("alarm", "complete")]
    assert conformance_summary(str(tmp_path / "p.db"))["violations"] == 0


def test_alarm_window_decided_by_timeout_while_logged_in(tmp_path: Path) -> None:
    t = now_utc() - timedelta(seconds=2)

    async def main() -> None:
        server = await start(tmp_path, limits=replace(Limits(), window_timeout=0.5, alarm_post_seconds=0))
        try:  # no logout: the 1 s poller decides once the window is 0.5 s past and the VIN online
            await _send(server.port, _alarm_frames(t, pre=25), logout=False, hold=2.5)
            await settle(server)
        finally:
            await server.stop()

    run(main())
    found = _violations(tmp_path / "p.db")
    assert [k for _, k, _ in found] == ["alarm_window_gap"]
    assert "after the window's end while logged in" in found[0][2]


def test_open_window_survives_a_restart_and_is_completed_by_a_later_reissue(tmp_path: Path) -> None:
    t = now_utc() - timedelta(seconds=2)

    async def first() -> None:
        server = await start(tmp_path)
        try:  # the link drops before the pre-fault data: nothing is decided at the server stop
            await _send(server.port, [frame_bytes(Command.REALTIME, report(t, level=3))], logout=False)
            await settle(server)
        finally:
            await server.stop()

    async def second() -> None:
        server = await start(tmp_path)
        try:  # the backlog arrives as reissue on the next run, then the logout decides
            await _send(server.port, _alarm_frames(t, pre=30)[:-1])
            await settle(server)
        finally:
            await server.stop()

    run(first())
    assert _windows(tmp_path / "p.db") == [("alarm", "open")]
    summary = conformance_summary(str(tmp_path / "p.db"))  # undecided: `check` computes it now
    assert summary["vins"][VIN]["violations"] == {"alarm_window_gap": 1}
    assert [g["decided"] for g in summary["alarm_window_gaps"]] == [False]
    run(second())
    assert _windows(tmp_path / "p.db") == [("alarm", "complete")]
    assert _violations(tmp_path / "p.db") == []
    assert conformance_summary(str(tmp_path / "p.db"))["violations"] == 0


# ---- 2025 post-HV-off window (reissue keeps the hour-old collection times free of latency violations)


def _report_2025(t: datetime, state: VehicleState, charging: ChargingState = ChargingState.NOT_CHARGING,
                 speed: float = 0.0) -> RealtimeReport:
    gear = GearPosition.DRIVE if state == VehicleState.STARTED else GearPosition.PARK
    v = VehicleData2025(state, charging, RunningMode.ELECTRIC, speed, 1200.0, 350.0, 0.0, 70,
                        DcDcState.WORKING, Gear(gear), 5000)
    alarm = Alarm2025(0, GeneralAlarmFlag(0), flag_levels=())
    return RealtimeReport(t, (v, alarm))


def _reissue(t: datetime, state: VehicleState, **kw: object) -> bytes:
    return frame_bytes(Command.REISSUE, _report_2025(t, state, **kw), edition=Edition.E2025)  # type: ignore[arg-type]


def _hv_off_run(tmp_path: Path, frames: list[bytes]) -> list[tuple[int | None, str, str]]:
    async def main() -> None:
        server = await start(tmp_path)
        try:
            await _send(server.port, frames, edition=Edition.E2025)
            await settle(server)
        finally:
            await server.stop()

    run(main())
    return _violations(tmp_path / "p.db")


T0 = timedelta(seconds=4000)


def test_hv_off_without_the_59_30_report_is_a_violation(tmp_path: Path) -> None:
    off = now_utc() - T0
    frames = [_reissue(off - timedelta(seconds=1), VehicleState.STARTED, speed=20.0),
              _reissue(off, VehicleState.STOPPED),
              _reissue(off + timedelta(seconds=3400), VehicleState.STOPPED)]  # in the hour, not the window
    found = _hv_off_run(tmp_path, frames)
    assert [k for _, k, _ in found] == ["hv_off_window"]
    assert "59:30–60:00" in found[0][2] and "logout" in found[0][2]
    db = PlatformDB(tmp_path / "p.db")
    off_frame = next(r.id for r in db.frames() if r.collected == off.isoformat())
    db.close()
    assert found[0][0] == off_frame
    assert _windows(tmp_path / "p.db") == [("hv_off", "gap")]
    assert conformance_summary(str(tmp_path / "p.db"))["vins"][VIN]["violations"] == {"hv_off_window": 1}


def test_hv_off_with_a_report_in_the_window_conforms(tmp_path: Path) -> None:
    off = now_utc() - T0
    frames = [_reissue(off - timedelta(seconds=1), VehicleState.STARTED, speed=20.0),
              _reissue(off, VehicleState.STOPPED),
              _reissue(off + timedelta(seconds=3575), VehicleState.STOPPED)]
    assert _hv_off_run(tmp_path, frames) == []
    assert _windows(tmp_path / "p.db") == [("hv_off", "complete")]


def test_hv_on_again_before_the_window_cancels_it_and_charging_counts_as_on(tmp_path: Path) -> None:
    off = now_utc() - T0
    charging = ChargingState.PARKED_CHARGING
    frames = [_reissue(off - timedelta(seconds=1), VehicleState.STOPPED, charging=charging),
              _reissue(off, VehicleState.STOPPED),
              _reissue(off + timedelta(seconds=600), VehicleState.STARTED, speed=10.0)]
    assert _hv_off_run(tmp_path, frames) == []
    assert _windows(tmp_path / "p.db") == [("hv_off", "cancelled")]


def test_hv_off_window_not_yet_over_at_logout_stays_open(tmp_path: Path) -> None:
    off = now_utc() - timedelta(seconds=100)
    frames = [_reissue(off - timedelta(seconds=1), VehicleState.STARTED, speed=20.0),
              _reissue(off, VehicleState.STOPPED)]
    assert _hv_off_run(tmp_path, frames) == []
    assert _windows(tmp_path / "p.db") == [("hv_off", "open")]
    assert conformance_summary(str(tmp_path / "p.db"))["violations"] == 0


def test_2016_has_no_hv_off_rule(tmp_path: Path) -> None:
    off = now_utc() - T0
    frames = [frame_bytes(Command.REISSUE, report(off - timedelta(seconds=1))),
              frame_bytes(Command.REISSUE, report(off, state=VehicleState.STOPPED, speed=0.0))]

    async def main() -> None:
        server = await start(tmp_path)
        try:
            await _send(server.port, frames)
            await settle(server)
        finally:
            await server.stop()

    run(main())
    assert _windows(tmp_path / "p.db") == []
