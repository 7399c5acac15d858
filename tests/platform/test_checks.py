"""The pure conformance checks (2016 rules and the 2025 §4.3 data-governance rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.protocol.model import (
    Alarm2025,
    CellVoltages,
    Command,
    Edition,
    FlagLevel,
    GearPosition,
    GeneralAlarmFlag,
    PackVoltages,
    ParallelUnitVoltages,
    RealtimeReport,
    SubsystemVoltages,
    VehicleState,
)
from sim.platform import checks
from sim.platform.checks import Limits, VinState
from tests.platform.support import report, vehicle

T = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
L = Limits()


def _kinds(vs: list[checks.Violation]) -> list[str]:
    return [v.kind for v in vs]


def test_alarm_level_vs_n5_and_level4_without_thermal_bit() -> None:
    flags = GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE
    ok = Alarm2025(3, flags, flag_levels=(FlagLevel(1, 3),))
    mismatch = Alarm2025(2, flags, flag_levels=(FlagLevel(1, 3),))
    level4 = Alarm2025(4, flags, flag_levels=(FlagLevel(1, 4),))
    empty = Alarm2025(2, GeneralAlarmFlag(0))
    assert checks.check_consistency(Edition.E2025, RealtimeReport(T, (ok,)), L) == []
    found = checks.check_consistency(Edition.E2025, RealtimeReport(T, (mismatch,)), L)
    assert _kinds(found) == ["alarm_level"]
    found = checks.check_consistency(Edition.E2025, RealtimeReport(T, (level4,)), L)
    assert any("bit 23" in v.reason for v in found)
    assert _kinds(checks.check_consistency(Edition.E2025, RealtimeReport(T, (empty,)), L)) == ["alarm_flags"]


def test_voltage_sum_2016_and_2025() -> None:
    good = SubsystemVoltages(1, 3.6 * 100, 10.0, 100, 1, (3.6,) * 100)
    bad = SubsystemVoltages(1, 370.0, 10.0, 100, 1, (3.6,) * 100)
    split = SubsystemVoltages(1, 370.0, 10.0, 200, 1, (3.6,) * 100)  # part of a split record: skipped
    for rec, expected in ((good, []), (bad, ["voltage_sum"]), (split, [])):
        rep = RealtimeReport(T, (CellVoltages((rec,)),))
        assert _kinds(checks.check_consistency(Edition.E2016, rep, L)) == expected
    pack = PackVoltages(1, 300.0, 5.0, (3.0,) * 90)
    rep = RealtimeReport(T, (ParallelUnitVoltages((pack,)),))
    assert _kinds(checks.check_consistency(Edition.E2025, rep, L)) == ["voltage_sum"]


def test_speed_in_park_and_off_with_speed() -> None:
    rep = RealtimeReport(T, (vehicle(speed=3.0, gear=GearPosition.PARK),))
    assert _kinds(checks.check_consistency(Edition.E2016, rep, L)) == ["speed_in_park"]
    rep = RealtimeReport(T, (vehicle(speed=30.0, state=VehicleState.STOPPED),))
    assert _kinds(checks.check_consistency(Edition.E2016, rep, L)) == ["off_with_speed"]


def test_mileage_jump_and_report_period() -> None:
    state = VinState()
    assert checks.check_report(state, Command.REALTIME, Edition.E2016, report(T, mileage=100.0), L) == []
    later = report(T + timedelta(seconds=10), mileage=105.0)
    assert _kinds(checks.check_report(state, Command.REALTIME, Edition.E2016, later, L)) == ["mileage_jump"]
    late = report(T + timedelta(seconds=60), mileage=105.5)
    assert _kinds(checks.check_report(state, Command.REALTIME, Edition.E2016, late, L)) == ["report_period"]
    parked = report(T + timedelta(seconds=70), mileage=105.5, speed=0.0, state=VehicleState.STOPPED)
    assert checks.check_report(state, Command.REALTIME, Edition.E2016, parked, L) == []
    after = report(T + timedelta(seconds=500), mileage=105.5, speed=0.0, state=VehicleState.STOPPED)
    assert checks.check_report(state, Command.REALTIME, Edition.E2016, after, L) == []  # parked: no period


def test_login_serial_day_cycle() -> None:
    state = VinState()
    assert checks.check_login(state, T, 3) == []
    assert _kinds(checks.check_login(state, T + timedelta(hours=1), 3)) == ["login_serial"]
    assert checks.check_login(state, T + timedelta(days=1), 1) == []  # a new Beijing day restarts at 1
    assert _kinds(checks.check_logout(state, 2)) == ["logout_serial"]
    assert checks.check_logout(state, 1) == []


def test_reissue_window_per_edition() -> None:
    old = T - timedelta(days=5)
    assert _kinds(checks.check_time(Command.REISSUE, old, T, Edition.E2016, L)) == ["reissue_too_old"]
    assert checks.check_time(Command.REISSUE, old, T, Edition.E2025, L) == []


def test_alarm_window_gaps() -> None:
    fault = T
    full = [(fault + timedelta(seconds=s), 3 if s >= 0 else 0) for s in range(-30, 31)]
    assert checks.alarm_window_gaps(full, Edition.E2016, L) == []
    holed = [x for x in full if x[0] != fault - timedelta(seconds=5)]
    gaps = checks.alarm_window_gaps(holed, Edition.E2016, L)
    assert len(gaps) == 1 and gaps[0][0] == fault and "1 of 61" in gaps[0][1].reason
    # 2025: until the alarm clears; data ends at the last second received
    long = [(fault + timedelta(seconds=s), 3 if s >= 0 else 0) for s in range(-30, 90) if s != 70]
    assert "1 of 120" in checks.alarm_window_gaps(long, Edition.E2025, L)[0][1].reason


def test_login_content() -> None:
    from agent.protocol.model import VehicleLogin, VehicleLogin2025

    assert checks.check_login_body(VehicleLogin(T, 1, "89860000000000000001", 1, 0)) == []
    assert _kinds(checks.check_login_body(VehicleLogin(T, 1, "8986ABC", 1, 0))) == ["login_content"]
    bad = VehicleLogin2025(T, 1, "89860000000000000001", (1, 2), ("A" * 24,) * 2)
    assert _kinds(checks.check_login_body(bad)) == ["login_content"]


def test_unit_count_change_crankshaft_in_ev_and_required_types() -> None:
    from agent.protocol.model import Engine2025

    state = VinState()
    for cells, expected in ((100, []), (100, []), (99, ["unit_count"])):
        rec = SubsystemVoltages(1, 3.6 * cells, 10.0, cells, 1, (3.6,) * cells)
        rep = RealtimeReport(T, (*report(T).blocks, CellVoltages((rec,))))
        state.last_realtime = None
        state.realtime_times.clear()
        assert _kinds(checks.check_report(state, Command.REALTIME, Edition.E2016, rep, L)) == expected
    ev = RealtimeReport(T, (vehicle(), Engine2025(800)))
    assert _kinds(checks.check_consistency(Edition.E2025, ev, L)) == ["crankshaft_in_ev"]
    found = checks.check_info_types(report(T))
    assert _kinds(found) == ["info_types"] and "location" in found[0].reason


def test_silence_beyond_the_heartbeat_period() -> None:
    assert checks.check_silence(35.0, L) == []
    assert _kinds(checks.check_silence(41.0, L)) == ["heartbeat"]


def test_time_checks() -> None:
    assert checks.check_time(Command.REALTIME, T - timedelta(seconds=29), T, Edition.E2016, L) == []
    assert _kinds(checks.check_time(Command.REALTIME, T - timedelta(seconds=31), T, Edition.E2016, L)) \
        == ["time_skew"]
    assert checks.check_time(Command.REISSUE, T - timedelta(hours=1), T, Edition.E2016, L) == []
    assert _kinds(checks.check_time(Command.VEHICLE_LOGIN, T + timedelta(minutes=2), T, Edition.E2016, L)) \
        == ["time_skew"]


def test_sentinel_of_the_wrong_width() -> None:
    from dataclasses import replace

    from agent.protocol.model import Location, LocationStatus

    v = replace(vehicle(), total_current=-974.6)  # raw 0x00FE in a WORD with offset 1000 A
    found = checks.check_values(Edition.E2016, RealtimeReport(T, (v,)))
    assert _kinds(found) == ["sentinel_width"] and "0x00FE" in found[0].reason
    loc = Location(LocationStatus(0), 0.065535, 31.2)
    assert _kinds(checks.check_values(Edition.E2016, RealtimeReport(T, (loc,)))) == ["sentinel_width"]
    fine = Location(LocationStatus(0), 121.47, 31.23)
    assert checks.check_values(Edition.E2016, RealtimeReport(T, (vehicle(), fine))) == []
    for odd in (float("nan"), float("-inf"), None):  # no reading at all: out_of_range, never a crash
        bad = RealtimeReport(T, (replace(vehicle(), total_current=odd),))
        assert _kinds(checks.check_sentinel_widths(Edition.E2016, bad)) == []
        assert _kinds(checks.check_values(Edition.E2016, bad)) == ["out_of_range"]


def test_duplicate_memory_is_bounded() -> None:
    from dataclasses import replace

    limits = replace(L, duplicate_memory=10.0)
    state = VinState()
    for s in range(100):
        rep = RealtimeReport(T + timedelta(seconds=s), ())
        assert checks.check_report(state, Command.REALTIME, Edition.E2016, rep, limits) == []
    assert len(state.realtime_times) <= 21
    again = RealtimeReport(T + timedelta(seconds=99), ())
    assert _kinds(checks.check_report(state, Command.REALTIME, Edition.E2016, again, limits)) \
        == ["duplicate_realtime"]


def _motor_2016(speed: bytes, torque: bytes = b"\x4e\x20", current: bytes = b"\x27\x10") -> RealtimeReport:
    """A 2016 drive-motor block straight from the wire: count 1, motor 1, state 1, controller 50 °C …"""
    from agent.protocol.codec import decode_info_blocks

    data = bytes([0x02, 1, 1, 1, 90]) + speed + torque + bytes([90]) + b"\x0d\xac" + current
    blocks, _ = decode_info_blocks(Edition.E2016, data)
    return RealtimeReport(T, blocks)


def test_narrow_sentinels_in_offset_fields_of_the_drive_motor() -> None:
    found = checks.check_sentinel_widths(Edition.E2016, _motor_2016(b"\x00\xfe"))  # −19,746 r/min
    assert _kinds(found) == ["sentinel_width"] and "motors[0].speed is 0x00FE" in found[0].reason
    found = checks.check_sentinel_widths(Edition.E2016, _motor_2016(b"\x4e\x20", torque=b"\x00\xff"))
    assert _kinds(found) == ["sentinel_width"] and "torque" in found[0].reason
    found = checks.check_sentinel_widths(Edition.E2016, _motor_2016(b"\x4e\x20", current=b"\x00\xfe"))
    assert _kinds(found) == ["sentinel_width"] and "controller_current" in found[0].reason
    # real readings: 3000 r/min, 0 N·m, 0 A, and a reverse speed well inside what a motor does
    assert checks.check_sentinel_widths(Edition.E2016, _motor_2016(b"\x55\xf0")) == []
    assert checks.check_sentinel_widths(Edition.E2016, _motor_2016(b"\x4d\x58")) == []  # −200 r/min
    # the right-width sentinel decodes to Special and is not a wrong width
    assert checks.check_sentinel_widths(Edition.E2016, _motor_2016(b"\xff\xfe")) == []


def test_narrow_sentinel_in_the_2025_dword_torque() -> None:
    from agent.protocol.codec import decode_info_blocks

    def motor(torque: bytes) -> RealtimeReport:  # 2025: speed offset 32000, DWORD torque offset 20000 N·m
        data = bytes([0x02, 1, 1, 1, 90]) + (32000).to_bytes(2, "big") + torque + bytes([90])
        return RealtimeReport(T, decode_info_blocks(Edition.E2025, data)[0])

    found = checks.check_sentinel_widths(Edition.E2025, motor(b"\x00\x00\xff\xff"))  # −13,446.5 N·m
    assert _kinds(found) == ["sentinel_width"] and "0x0000FFFF" in found[0].reason
    assert checks.check_sentinel_widths(Edition.E2025, motor((200000).to_bytes(4, "big"))) == []


def test_second_set_remembers_exactly_the_memory_window() -> None:
    seen = checks.SecondSet(10.0)
    times = [T + timedelta(seconds=s) for s in (0, 3, 5, 4)]  # out of order inside the window
    for t in times:
        assert t not in seen
        seen.add(t)
    assert all(t in seen for t in times) and T + timedelta(seconds=1) not in seen
    seen.add(T + timedelta(seconds=12))  # the ring moves on: 0 and 1 are forgotten, 3..5 kept
    assert T not in seen and T + timedelta(seconds=3) in seen and T + timedelta(seconds=12) in seen
    seen.add(T)  # older than the memory: ignored, never a false duplicate later
    assert T not in seen and len(seen) == 4
    seen.add(T + timedelta(hours=1))  # a jump past the whole ring clears it
    assert len(seen) == 1 and T + timedelta(seconds=12) not in seen
    assert T + timedelta(hours=2) not in seen  # later than the latest: not seen yet
