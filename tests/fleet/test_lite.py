"""The light fleet vehicle: identities, physics plausibility, and reports the strict platform accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.protocol import codec
from agent.protocol.model import (
    Alarm,
    Alarm2025,
    CellVoltages,
    Command,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Encryption,
    Extremes,
    Frame,
    GearPosition,
    Location,
    Location2025,
    ParallelUnitVoltages,
    ResponseFlag,
    Temperatures,
    VehicleData,
    VehicleData2025,
    VehicleState,
)
from sim.fleet.frames import EncodedReport, FleetCodec
from sim.fleet.lite import CHARGE, DRIVE, PARK, VIN_ALPHABET, LiteVehicle, iccid_for, vin_for
from sim.platform.checks import Limits, VinState, check_report

START = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def test_vins_are_valid_and_unique() -> None:
    vins = [vin_for(i) for i in range(5000)]
    assert len(set(vins)) == len(vins)
    for v in vins[:50] + vins[-50:]:
        assert len(v) == 17
        assert all(c in VIN_ALPHABET for c in v[8:])
    assert vin_for(0) == "LTBXFLT0000000000"
    assert vin_for(33) == "LTBXFLT0000000010"
    assert len(set(vin_for(i, "LTBXDUP") for i in range(10))) == 10
    assert not set(vin_for(0)) & set("IOQ")  # a VIN the agent's own config would accept


def test_vin_errors() -> None:
    with pytest.raises(ValueError, match="negative"):
        vin_for(-1)
    with pytest.raises(ValueError, match="prefix"):
        vin_for(1, "ltbox")
    with pytest.raises(ValueError, match="does not fit"):
        vin_for(33**2, "LTBXFLT0ABCDEFG")


def test_iccids_are_20_digits_and_unique() -> None:
    ids = [iccid_for(i) for i in range(0, 10**6, 997)]
    assert len(set(ids)) == len(ids)
    assert all(len(x) == 20 and x.isdigit() for x in ids)
    with pytest.raises(ValueError):
        iccid_for(10**11)


def test_same_seed_same_vehicle() -> None:
    a = LiteVehicle(vin_for(1), 7, Edition.E2016, START)
    b = LiteVehicle(vin_for(1), 7, Edition.E2016, START)
    for _ in range(30):
        a.step(10)
        b.step(10)
    assert a.report(START) == b.report(START)
    c = LiteVehicle(vin_for(2), 8, Edition.E2016, START)
    c.step(300)
    assert c.report(START) != a.report(START)


@pytest.mark.parametrize("edition", [Edition.E2016, Edition.E2025])
@pytest.mark.parametrize("scenario", [None, "alarm-burst"])
def test_reports_pass_the_strict_checks(edition: Edition, scenario: str | None) -> None:
    """Several vehicles over one simulated hour at a 10 s period: no violation of any per-report check,
    every report round-trips through the codec byte for byte."""
    limits = Limits(report_period=10.0)
    modes: set[int] = set()
    alarms = 0
    for seed in range(6):
        car = LiteVehicle(vin_for(seed), seed, edition, START, scenario=scenario)
        state = VinState()
        t = START
        for _ in range(360):
            car.step(10.0)
            t += timedelta(seconds=10)
            modes.add(car.mode)
            rep = car.report(t)
            violations = check_report(state, Command.REALTIME, edition, rep, limits)
            assert violations == [], (seed, t, violations)
            alarms += car.alarm > 0
        frame = Frame(edition, Command.REALTIME, ResponseFlag.COMMAND, car.vin, Encryption.NONE, rep)
        raw = codec.encode_frame(frame)
        assert codec.encode_frame(codec.decode_frame(raw)) == raw
    assert DRIVE in modes and PARK in modes
    assert (alarms > 0) == (scenario == "alarm-burst")


def test_soc_follows_current_and_charging_happens() -> None:
    car = LiteVehicle(vin_for(3), 3, Edition.E2016, START)
    car.soc = 31.0
    car.mode, car.mode_left = DRIVE, 2000.0
    soc0 = car.soc
    car.step(600)
    assert car.soc < soc0  # driving drains
    car.mode_left = 0.0
    car.soc = 29.0
    car.step(1)
    assert car.mode == CHARGE
    rep = car.report(START)
    v = rep.blocks[0]
    assert isinstance(v, VehicleData)
    assert isinstance(v.total_current, float) and v.total_current < 0
    assert not any(isinstance(b, DriveMotors) for b in rep.blocks)  # parked charging: no motor block
    soc1 = car.soc
    car.step(600)
    assert car.soc > soc1


def test_report_is_consistent_2016() -> None:
    car = LiteVehicle(vin_for(4), 4, Edition.E2016, START)
    car.mode, car.mode_left = DRIVE, 3000.0
    positions = set()
    for _ in range(60):
        car.step(5)
        rep = car.report(START)
        v = rep.blocks[0]
        assert isinstance(v, VehicleData)
        cells = next(b for b in rep.blocks if isinstance(b, CellVoltages))
        sub = cells.subsystems[0]
        assert abs(sum(sub.cell_voltages) - v.total_voltage) < 0.1
        ex = next(b for b in rep.blocks if isinstance(b, Extremes))
        assert ex.max_cell_voltage == max(sub.cell_voltages)
        assert ex.min_cell_voltage == min(sub.cell_voltages)
        temps = next(b for b in rep.blocks if isinstance(b, Temperatures))
        probes = temps.subsystems[0].temperatures
        assert ex.max_temperature == max(probes)
        loc = next(b for b in rep.blocks if isinstance(b, Location))
        positions.add((loc.longitude, loc.latitude))
        assert v.vehicle_state == VehicleState.STARTED and v.gear.gear == GearPosition.DRIVE
    assert len(positions) > 10  # it moves along the route
    car.mode, car.mode_left = PARK, 600.0
    car.step(1)
    v = car.report(START).blocks[0]
    assert isinstance(v, VehicleData)
    assert v.speed == 0.0 and v.gear.gear == GearPosition.PARK and v.vehicle_state == VehicleState.STOPPED


def test_report_2025_blocks_and_alarm_burst() -> None:
    car = LiteVehicle(vin_for(5), 5, Edition.E2025, START, scenario="alarm-burst")
    car.step(4)
    assert car.alarm_at(START + timedelta(seconds=4)) == 0
    car.step(2)
    rep = car.report(START + timedelta(seconds=6))
    kinds = [type(b) for b in rep.blocks]
    assert kinds[0] is VehicleData2025 and Location2025 in kinds and ParallelUnitVoltages in kinds
    assert Temperatures in kinds
    assert DriveMotors2025 in kinds or car.mode == CHARGE
    alarm = next(b for b in rep.blocks if isinstance(b, Alarm2025))
    assert int(alarm.max_level) == 3 and alarm.flag_levels[0].bit == 11
    v = rep.blocks[0]
    assert isinstance(v, VehicleData2025) and isinstance(v.insulation_resistance, int)
    assert v.insulation_resistance < 0.5 * v.total_voltage  # < 500 Ω/V
    car.step(10)
    alarm = next(b for b in car.report(START + timedelta(seconds=16)).blocks if isinstance(b, Alarm2025))
    assert int(alarm.max_level) == 0
    assert car.alarm_at(START + timedelta(seconds=66)) == 3  # the next burst, a minute after the first
    assert LiteVehicle(vin_for(6), 6, Edition.E2025, START).alarm_at(START + timedelta(seconds=6)) == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="timezone"):
        LiteVehicle(vin_for(0), 0, Edition.E2016, datetime(2026, 1, 1))
    car = LiteVehicle(vin_for(0), 0, Edition.E2016, START)
    with pytest.raises(ValueError, match="negative"):
        car.step(-1)
    with pytest.raises(ValueError, match="timezone"):
        car.report(datetime(2026, 1, 1))
    assert not any(isinstance(b, Alarm) and int(b.max_level) for b in car.report(START).blocks)


@pytest.mark.parametrize("edition", [Edition.E2016, Edition.E2025])
@pytest.mark.parametrize("scenario", [None, "alarm-burst"])
def test_encode_is_the_codecs_encoding_of_report(edition: Edition, scenario: str | None) -> None:
    """``encode`` packs the data unit straight from the state: byte for byte what the protocol codec makes
    of ``report`` — across drive, park and charge, alarms, odd cell/probe counts and uneven steps."""
    modes: set[int] = set()
    checked = 0
    for k in range(24):
        cells, probes = (96, 32) if k % 3 else (1 + 7 * k, 1 + 3 * k)
        car = LiteVehicle(vin_for(k), 77 + k, edition, START, scenario=scenario, n_cells=cells,
                          n_probes=probes)
        if k % 4 == 3:
            car.soc = 29.0  # the next mode change goes to charging
        t = START
        for i in range(150):
            car.step(1.0 + (i % 5) * 7.0)
            t += timedelta(seconds=1 + i % 3)
            report = car.report(t)
            want = codec.encode_body(edition, Command.REALTIME, ResponseFlag.COMMAND, report)
            assert car.encode(t) == want, (k, i)
            modes.add(car.mode)
            checked += 1
    assert checked == 24 * 150
    assert {DRIVE, PARK, CHARGE} <= modes


def test_encoded_frame_is_the_codecs_frame() -> None:
    """The fleet's session codec frames an ``EncodedReport`` exactly as the codec frames the report."""
    car = LiteVehicle(vin_for(5), 5, Edition.E2016, START)
    car.step(30.0)
    t = START + timedelta(seconds=30)
    fleet = FleetCodec()
    for command in (Command.REALTIME, Command.REISSUE):
        fast = fleet.encode(Frame(Edition.E2016, command, ResponseFlag.COMMAND, car.vin, Encryption.NONE,
                                  EncodedReport(t, data=car.encode(t))))
        slow = codec.encode_frame(Frame(Edition.E2016, command, ResponseFlag.COMMAND, car.vin,
                                        Encryption.NONE, car.report(t)))
        assert fast == slow
