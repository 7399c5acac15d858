"""Report builder: every block of both editions, sentinels, extremes, encode -> decode round trips."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pytest

from agent.protocol.codec import CodecOptions, decode_body, encode_body, split_cell_records
from agent.protocol.model import (
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    Command,
    CoordinateSystem,
    DcDcState,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Engine,
    Engine2025,
    Extremes,
    FlagLevel,
    GearPosition,
    GeneralAlarmFlag,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    ParallelUnitVoltages,
    RealtimeReport,
    ResponseFlag,
    RunningMode,
    Special,
    Temperatures,
    VehicleData,
    VehicleData2025,
    VehicleState,
)
from agent.report.alarms import AlarmState
from agent.report.builder import INSULATION_UNKNOWN_2016, BuildOptions, build_report
from agent.report.snapshot import MotorSnapshot, Position, Snapshot, SubsystemSnapshot

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
INV, ABN = Special.INVALID, Special.ABNORMAL
E16, E25 = Edition.E2016, Edition.E2025


def vehicle(**over: Any) -> dict[str, Any]:
    v: dict[str, Any] = {
        "vehicle_state": VehicleState.STARTED,
        "charging_state": ChargingState.NOT_CHARGING,
        "running_mode": RunningMode.ELECTRIC,
        "speed": 63.27,
        "mileage": 12345.67,
        "total_voltage": 371.04,
        "total_current": -12.36,
        "soc": 67.4,
        "dcdc_state": DcDcState.WORKING,
        "gear": GearPosition.DRIVE,
        "drive_force": True,
        "brake_force": False,
        "insulation_resistance": 41000.4,
        "accelerator_pedal": 23.6,
        "brake_pedal": 0,
    }
    v.update(over)
    return v


def snapshot(**over: Any) -> Snapshot:
    cells = tuple(3.9 + 0.001 * i for i in range(12))
    fields: dict[str, Any] = {
        "time": T0,
        "vehicle": MappingProxyType(vehicle()),
        "motors": (
            MotorSnapshot(
                1,
                MappingProxyType(
                    {
                        "state": MotorState.CONSUMING,
                        "controller_temperature": 41.4,
                        "speed": 5230.4,
                        "torque": 120.37,
                        "temperature": 55.6,
                        "controller_voltage": 370.9,
                        "controller_current": 35.26,
                    }
                ),
            ),
        ),
        "subsystems": (
            SubsystemSnapshot(1, cells, (25.2, 26.0, 31.4, 24.6)),
            SubsystemSnapshot(2, tuple(c - 0.01 for c in cells), (27.0, 22.2), voltage=185.0, current=-12.3),
        ),
        "position": Position(30.259924, 120.130063),
    }
    fields.update(over)
    return Snapshot(**fields)


ALARM = AlarmState(
    max_level=AlarmLevel.LEVEL_2,
    flags=GeneralAlarmFlag.LOW_SOC | GeneralAlarmFlag.CELL_POOR_CONSISTENCY,
    levels=MappingProxyType(
        {
            GeneralAlarmFlag.LOW_SOC: AlarmLevel.LEVEL_1,
            GeneralAlarmFlag.CELL_POOR_CONSISTENCY: AlarmLevel.LEVEL_2,
        }
    ),
    ress_faults=(0x0A0A, 0x0B3B),
    motor_faults=(0x0151,),
)


def roundtrip(report: RealtimeReport, edition: Edition, strict: bool = True) -> RealtimeReport:
    opts = CodecOptions(strict=strict)
    data = encode_body(edition, Command.REALTIME, ResponseFlag.COMMAND, report, options=opts)
    body = decode_body(edition, Command.REALTIME, ResponseFlag.COMMAND, data)
    assert isinstance(body, RealtimeReport)
    return body


def block(report: RealtimeReport, cls: type) -> Any:
    found = [b for b in report.blocks if isinstance(b, cls)]
    assert len(found) == 1, f"{cls.__name__}: {found}"
    return found[0]


@pytest.mark.parametrize("edition", [E16, E25])
def test_roundtrip_strict(edition: Edition) -> None:
    report = build_report(snapshot(), ALARM, edition)
    assert report.time == T0
    assert roundtrip(report, edition) == report


def test_2016_blocks_in_type_order() -> None:
    r = build_report(
        snapshot(engine={"state": 1, "crankshaft_speed": 1500, "fuel_consumption": 6.237}), ALARM, E16
    )
    assert [type(b).__name__ for b in r.blocks] == [
        "VehicleData",
        "DriveMotors",
        "Engine",
        "Location",
        "Extremes",
        "Alarm",
        "CellVoltages",
        "Temperatures",
    ]
    v = block(r, VehicleData)
    assert (v.speed, v.mileage, v.total_voltage, v.total_current, v.soc) == (63.3, 12345.7, 371.0, -12.4, 67)
    assert (v.accelerator_pedal, v.brake_pedal, v.insulation_resistance) == (24, 0, 41000)
    assert v.gear.gear is GearPosition.DRIVE and v.gear.drive_force and not v.gear.brake_force
    assert block(r, Engine) == Engine(1, 1500, 6.24)
    m = block(r, DriveMotors).motors[0]
    assert (m.number, m.state, m.controller_temperature, m.speed, m.torque, m.temperature) == (
        1,
        MotorState.CONSUMING,
        41,
        5230,
        120.4,
        56,
    )
    assert (m.controller_voltage, m.controller_current) == (370.9, 35.3)
    assert roundtrip(r, E16) == r


def test_2025_blocks_in_type_order() -> None:
    r = build_report(snapshot(engine={"crankshaft_speed": 900}), ALARM, E25)
    assert [type(b).__name__ for b in r.blocks] == [
        "VehicleData2025",
        "DriveMotors2025",
        "Engine2025",
        "Location2025",
        "Alarm2025",
        "ParallelUnitVoltages",
        "Temperatures",
    ]
    assert block(r, Engine2025) == Engine2025(900)
    m = block(r, DriveMotors2025).motors[0]
    assert (m.speed, m.torque) == (5230, 120.4)
    assert not hasattr(m, "controller_voltage")
    packs = block(r, ParallelUnitVoltages).packs
    # single values of subsystem 1 fall back to the pack totals only when there is one subsystem
    assert packs[0].voltage is INV and packs[0].current is INV
    assert (packs[1].voltage, packs[1].current) == (185.0, -12.3)
    assert packs[0].cell_voltages[:2] == (3.9, 3.901)
    assert roundtrip(r, E25) == r


def test_single_subsystem_uses_pack_totals() -> None:
    s = snapshot(subsystems=(SubsystemSnapshot(1, (3.7, 3.8), (20,)),))
    rec = block(build_report(s, ALARM, E16), CellVoltages).subsystems[0]
    assert (rec.voltage, rec.current, rec.cell_count, rec.start_index) == (371.0, -12.4, 2, 1)


def test_stale_and_unmapped_fields_become_sentinels() -> None:
    v = vehicle(
        speed=INV, soc=INV, total_current=ABN, gear=INV, insulation_resistance=INV, accelerator_pedal=None
    )
    del v["mileage"]
    s = snapshot(
        vehicle=MappingProxyType(v),
        motors=(MotorSnapshot(1, MappingProxyType({"state": INV, "speed": INV, "torque": INV})),),
        subsystems=(SubsystemSnapshot(1, (3.7, INV, 3.8), (20.0, INV)),),
    )
    for edition in (E16, E25):
        r = build_report(s, AlarmState(), edition)
        vb = r.blocks[0]
        assert isinstance(vb, (VehicleData, VehicleData2025))
        assert (vb.speed, vb.soc, vb.total_current, vb.mileage) == (INV, INV, ABN, INV)
        motor = r.blocks[1]
        assert isinstance(motor, (DriveMotors, DriveMotors2025))
        assert not isinstance(motor.motors, Special)
        mo = motor.motors[0]
        assert (mo.state, mo.speed, mo.torque, mo.temperature, mo.controller_temperature) == (INV,) * 5
        temps = block(r, Temperatures).subsystems[0].temperatures
        assert temps == (20, INV)
        assert roundtrip(r, edition, strict=edition is E25) == r
    v16 = build_report(s, AlarmState(), E16).blocks[0]
    assert isinstance(v16, VehicleData)
    assert v16.accelerator_pedal is INV
    assert v16.insulation_resistance == INSULATION_UNKNOWN_2016  # 2016: no sentinel defined
    assert v16.gear.gear is GearPosition.NEUTRAL and not v16.gear.invalid
    v25 = build_report(s, AlarmState(), E25).blocks[0]
    assert isinstance(v25, VehicleData2025)
    assert v25.insulation_resistance is INV
    assert v25.gear.invalid  # 2025 gear-invalid bit


def test_out_of_range_is_abnormal_soc_and_insulation_clamped() -> None:
    s = snapshot(
        vehicle=MappingProxyType(
            vehicle(speed=260.0, soc=100.7, insulation_resistance=65000, total_voltage=-3)
        )
    )
    v16 = block(build_report(s, ALARM, E16), VehicleData)
    assert (v16.speed, v16.soc, v16.insulation_resistance, v16.total_voltage) == (ABN, 100, 60000, ABN)
    v25 = block(build_report(s, ALARM, E25), VehicleData2025)
    assert v25.speed == 260.0  # 2025 range is 0..500 km/h
    neg = block(
        build_report(snapshot(vehicle=MappingProxyType(vehicle(speed=-4.2))), ALARM, E16), VehicleData
    )
    assert neg.speed == 4.2


def test_parked_charging_omits_motors_and_engine() -> None:
    s = snapshot(
        vehicle=MappingProxyType(vehicle(charging_state=ChargingState.PARKED_CHARGING)),
        engine={"crankshaft_speed": 0},
    )
    for edition in (E16, E25):
        names = [type(b).__name__ for b in build_report(s, ALARM, edition).blocks]
        assert not any("Motor" in n or "Engine" in n for n in names)
    driving = snapshot(vehicle=MappingProxyType(vehicle(charging_state=ChargingState.DRIVING_CHARGING)))
    assert any(isinstance(b, DriveMotors) for b in build_report(driving, ALARM, E16).blocks)


def test_extremes_computed_argmax_argmin_one_based() -> None:
    s = snapshot(
        subsystems=(
            SubsystemSnapshot(1, (3.70, 3.81, INV, 3.65), (25.0, 33.4, 25.0)),
            SubsystemSnapshot(2, (3.90, 3.60, 3.90), (19.6, 40.0, 40.0)),
        )
    )
    ex = block(build_report(s, ALARM, E16), Extremes)
    assert (ex.max_voltage_subsystem, ex.max_voltage_cell, ex.max_cell_voltage) == (2, 1, 3.9)
    assert (ex.min_voltage_subsystem, ex.min_voltage_cell, ex.min_cell_voltage) == (2, 2, 3.6)
    assert (ex.max_temperature_subsystem, ex.max_temperature_probe, ex.max_temperature) == (2, 2, 40)
    assert (ex.min_temperature_subsystem, ex.min_temperature_probe, ex.min_temperature) == (2, 1, 20)


def test_extremes_from_bms_when_mapped() -> None:
    ex_in = {
        "max_cell_voltage": 4.101,
        "max_cell_voltage_index": 7,
        "min_cell_voltage": INV,
        "max_temperature": 31.0,
        "max_temperature_subsystem": 1,
        "max_temperature_index": 3,
    }
    s = snapshot(extremes=MappingProxyType(ex_in), subsystems=(SubsystemSnapshot(1, (3.7, 3.9), (20.0,)),))
    ex = block(build_report(s, ALARM, E16), Extremes)
    assert (ex.max_voltage_subsystem, ex.max_voltage_cell, ex.max_cell_voltage) == (1, 7, 4.101)
    assert ex.min_cell_voltage is INV and ex.min_voltage_cell is INV
    assert (ex.max_temperature_subsystem, ex.max_temperature_probe, ex.max_temperature) == (1, 3, 31)
    assert (ex.min_temperature_probe, ex.min_temperature) == (1, 20)  # not mapped: computed


def test_extremes_cell_code_above_250_is_abnormal_and_no_cells_no_block() -> None:
    cells = tuple([3.7] * 300 + [3.95])
    ex = block(build_report(snapshot(subsystems=(SubsystemSnapshot(1, cells, ()),)), ALARM, E16), Extremes)
    assert (ex.max_voltage_cell, ex.max_cell_voltage) == (ABN, 3.95)
    assert ex.max_temperature is INV
    bare = build_report(snapshot(subsystems=()), ALARM, E16)
    assert not any(isinstance(b, (Extremes, CellVoltages, Temperatures)) for b in bare.blocks)


def test_more_than_200_cells_split_by_codec() -> None:
    cells = tuple(3.5 + 0.001 * (i % 400) for i in range(450))
    r = build_report(snapshot(subsystems=(SubsystemSnapshot(1, cells, (25.0,)),)), ALARM, E16)
    back = roundtrip(r, E16)
    recs = block(back, CellVoltages).subsystems
    assert [(x.start_index, len(x.cell_voltages), x.cell_count) for x in recs] == [
        (1, 200, 450),
        (201, 200, 450),
        (401, 50, 450),
    ]
    assert block(back, CellVoltages) == split_cell_records(block(r, CellVoltages))
    r25 = build_report(snapshot(subsystems=(SubsystemSnapshot(1, cells, (25.0,)),)), ALARM, E25)
    assert len(block(roundtrip(r25, E25), ParallelUnitVoltages).packs[0].cell_voltages) == 450


def test_location_fix_last_known_and_none() -> None:
    west = snapshot(position=Position(-33.868820, -151.209296))
    loc = block(build_report(west, ALARM, E16), Location)
    assert loc == Location(LocationStatus.SOUTH | LocationStatus.WEST, -151.209296, -33.86882)
    back = block(roundtrip(build_report(west, ALARM, E16), E16), Location)
    assert back.status == LocationStatus.SOUTH | LocationStatus.WEST and back.longitude == -151.209296
    lost = snapshot(position=Position(30.1, 120.2, valid=False))
    loc25 = block(
        build_report(lost, ALARM, E25, BuildOptions(coordinate_system=CoordinateSystem.GCJ02)), Location2025
    )
    assert loc25 == Location2025(LocationStatus.INVALID_FIX, CoordinateSystem.GCJ02, 120.2, 30.1)
    never = block(build_report(snapshot(position=None), ALARM, E25), Location2025)
    assert never.status == LocationStatus.INVALID_FIX and never.longitude is INV and never.latitude is INV
    assert block(roundtrip(build_report(snapshot(position=None), ALARM, E25), E25), Location2025) == never


def test_alarm_blocks_per_edition() -> None:
    state = AlarmState(
        max_level=AlarmLevel.LEVEL_4,
        flags=GeneralAlarmFlag.THERMAL_EVENT | GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE,
        levels=MappingProxyType(
            {
                GeneralAlarmFlag.THERMAL_EVENT: AlarmLevel.LEVEL_4,
                GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE: AlarmLevel.LEVEL_3,
            }
        ),
        ress_faults=tuple(range(300)),
    )
    a16 = block(build_report(snapshot(), state, E16), Alarm)
    assert (
        a16.max_level == AlarmLevel.LEVEL_3 and a16.general_flags == GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE
    )
    assert len(a16.ress_faults) == 252
    a25 = block(build_report(snapshot(), state, E25), Alarm2025)
    assert a25.max_level == AlarmLevel.LEVEL_4
    assert a25.flag_levels == (FlagLevel(1, AlarmLevel.LEVEL_3), FlagLevel(23, AlarmLevel.LEVEL_4))
    assert len(a25.ress_faults) == 253
    for edition in (E16, E25):
        r = build_report(snapshot(), state, edition)
        assert roundtrip(r, edition) == r
    quiet = block(build_report(snapshot(), AlarmState(), E25), Alarm2025)
    assert (quiet.max_level, quiet.general_flags, quiet.flag_levels) == (AlarmLevel.NONE, 0, ())


def test_mandatory_blocks_with_nothing_mapped() -> None:
    empty = Snapshot(time=T0)
    for edition, names in (
        (E16, ["VehicleData", "Location", "Alarm"]),
        (E25, ["VehicleData2025", "Location2025", "Alarm2025"]),
    ):
        r = build_report(empty, AlarmState(), edition)
        assert [type(b).__name__ for b in r.blocks] == names
        assert roundtrip(r, edition, strict=False) == r
