"""Sampler on real simulator traffic: dbc/tbox_ev.toml + FrameCache + Sampler vs the physics' ground truth.

Every value is compared with the simulator state that produced the very frame it was decoded from, so
the tolerance is the DBC resolution (half a step, plus float noise).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.canbus.mapping import CompiledMapping, load_mapping
from agent.canbus.sampler import Sampler
from agent.protocol.model import (
    ChargingState,
    GearPosition,
    MotorState,
    Special,
    VehicleState,
)
from agent.report.snapshot import Snapshot

pytest.importorskip("sim.vehicle")
from sim.run import simulate_windows
from sim.vehicle.state import ChargeMode, Gear

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "dbc" / "tbox_ev.toml"
MUXED = (0x180, 0x181)
INVALID = Special.INVALID


@dataclass
class Sample:
    t: float
    snap: Snapshot
    source: dict[tuple[int, int | None], Any]  # (id, mux) -> the VehicleState its latest frame came from

    def state(self, frame_id: int, mux: int | None = None) -> Any:
        return self.source[(frame_id, mux)]


@pytest.fixture(scope="module")
def mapping() -> CompiledMapping:
    return load_mapping(MAPPING)


def run(
    mapping: CompiledMapping,
    seconds: float,
    *,
    profile: str = "wltc3",
    scenario: str | None = None,
    seed: int = 1,
    n_motors: int = 2,
    every: float = 1.0,
    fault_start_s: float | None = None,
) -> Iterator[Sample]:
    """Simulate, feed every frame to a FrameCache and sample every ``every`` s of simulated time."""
    cache = mapping.new_cache()
    sampler = Sampler(mapping, cache)
    source: dict[tuple[int, int | None], Any] = {}
    next_t = every
    for w in simulate_windows(
        profile=profile,
        seed=seed,
        seconds=seconds,
        scenario=scenario,
        n_motors=n_motors,
        fault_start_s=fault_start_s,
    ):
        for t, can_id, data in w.frames:
            if can_id < 0:
                cache.put_error(t)
                continue
            cache.put(can_id, data, t)
            source[(can_id, data[0] if can_id in MUXED and data else None)] = w.state
        if w.t1 >= next_t - 1e-9:
            next_t += every
            yield Sample(w.t1, sampler.sample(w.t1), dict(source))


def close(value: Any, expected: float, resolution: float) -> bool:
    return not isinstance(value, Special) and abs(value - expected) <= resolution / 2 + 1e-6


def test_mapping_fills_every_field_the_dbc_can(mapping: CompiledMapping) -> None:
    names = set(mapping.field_names())
    for field in (
        "vehicle.vehicle_state",
        "vehicle.charging_state",
        "vehicle.running_mode",
        "vehicle.speed",
        "vehicle.mileage",
        "vehicle.total_voltage",
        "vehicle.total_current",
        "vehicle.soc",
        "vehicle.dcdc_state",
        "vehicle.gear",
        "vehicle.drive_force",
        "vehicle.brake_force",
        "vehicle.insulation_resistance",
        "vehicle.accelerator_pedal",
        "vehicle.brake_pedal",
        "vehicle.dcdc_temperature",
        "vehicle.hv_interlock_closed",
        "vehicle.hv_on",
        "motors.1.speed",
        "motors.2.torque",
        "extremes.max_cell_voltage",
        "faults.hv_interlock",
        "fault_codes.ress",
        "fault_codes.motor",
    ):
        assert field in names, field
    assert len(mapping.subsystems) == 1
    assert len(mapping.subsystems[0].cells.inputs) == 96
    assert len(mapping.subsystems[0].temperatures.inputs) == 32
    # kernel filters: only the ids the mapping reads
    assert 0x090 not in mapping.wanted_ids and 0x0E0 not in mapping.wanted_ids
    assert {0x100, 0x120, 0x180, 0x181} <= mapping.wanted_ids


_GEAR = {
    Gear.PARK: GearPosition.PARK,
    Gear.REVERSE: GearPosition.REVERSE,
    Gear.NEUTRAL: GearPosition.NEUTRAL,
    Gear.DRIVE: GearPosition.DRIVE,
}


def test_driving_matches_ground_truth(mapping: CompiledMapping) -> None:
    samples = list(run(mapping, 120.0))
    assert len(samples) == 120
    moving = 0
    for s in samples[2:]:  # the first second: 1 s odometer / 500 ms temperature sweep not complete yet
        v = s.snap.vehicle
        st = s.state(0x100)
        assert close(v["speed"], abs(st.speed_kmh), 0.01), (s.t, v["speed"], st.speed_kmh)
        moving += st.speed_kmh > 1
        assert v["gear"] is _GEAR[st.gear]
        assert v["vehicle_state"] is (VehicleState.STARTED if st.key_on else VehicleState.STOPPED)
        regen = st.key_on and st.pack_current_a < 0 and st.speed_kmh > 0.5
        assert v["charging_state"] is (
            ChargingState.DRIVING_CHARGING if regen else ChargingState.NOT_CHARGING
        )
        assert v["running_mode"].name == "ELECTRIC"
        pack = s.state(0x120)
        assert close(v["total_voltage"], pack.pack_voltage_v, 0.1)
        assert close(v["total_current"], pack.pack_current_a, 0.05)
        bms = s.state(0x121)
        assert close(v["soc"], bms.soc_pct, 0.1)
        assert close(v["insulation_resistance"], min(bms.insulation_kohm, 65534), 1)
        assert v["hv_interlock_closed"] is True and v["hv_on"] is bms.main_contactors_closed
        assert close(v["mileage"], s.state(0x3F0).odometer_km, 0.1)
        ped = s.state(0x101)
        assert close(v["accelerator_pedal"], ped.accel_pedal_pct, 0.4)
        assert close(v["brake_pedal"], ped.brake_pedal_pct, 0.4)
        assert v["brake_force"] is (ped.brake_pedal_pct > 2.0)
        # every cell and probe, each from the frame (mux page) it came from
        sub = s.snap.subsystems[0]
        assert len(sub.cell_voltages) == 96 and len(sub.temperatures) == 32
        for i, cell in enumerate(sub.cell_voltages):
            truth = s.state(0x180, i // 3).cell_voltages_v[i]
            assert close(cell, truth, 0.001), (s.t, i, cell, truth)
        for i, temp in enumerate(sub.temperatures):
            truth = s.state(0x181, i // 7).cell_temps_c[i]
            assert close(temp, truth, 1.0), (s.t, i, temp, truth)
        assert [m.number for m in s.snap.motors] == [1, 2]
        for motor in s.snap.motors:
            k = motor.number - 1
            mv = motor.values
            ms = s.state(0x0A0 + k).motors[k]
            assert close(mv["speed"], ms.speed_rpm, 1)
            assert close(mv["torque"], ms.torque_nm, 0.1)
            expected_state = (
                MotorState.OFF
                if not ms.enabled
                else MotorState.CONSUMING
                if ms.torque_nm > 1
                else MotorState.GENERATING
                if ms.torque_nm < -1
                else MotorState.READY
            )
            assert mv["state"] is expected_state
            me = s.state(0x0B0 + k).motors[k]
            assert close(mv["controller_voltage"], me.dc_voltage_v, 0.1)
            assert close(mv["controller_current"], me.dc_current_a, 0.05)
            mt = s.state(0x2A0 + k).motors[k]
            assert close(mv["temperature"], mt.motor_temp_c, 1)
            assert close(mv["controller_temperature"], mt.inverter_temp_c, 1)
        ext = s.snap.extremes
        cells = s.state(0x122)
        assert close(ext["max_cell_voltage"], max(cells.cell_voltages_v), 0.001)
        assert ext["max_cell_voltage_subsystem"] == 1
        assert 1 <= ext["min_cell_voltage_index"] <= 96
        assert all(f is False for f in s.snap.faults.values()), s.snap.faults
        assert s.snap.fault_codes == {"ress": (), "motor": ()}
    assert moving > 30


def test_one_motor_vehicle_leaves_motor_2_out(mapping: CompiledMapping) -> None:
    last = list(run(mapping, 5.0, n_motors=1))[-1]
    assert [m.number for m in last.snap.motors] == [1]
    # an OR with one side never received is still decided by the other side
    assert last.snap.faults["motor_temperature"] is False


@pytest.mark.parametrize("profile", ["ac-charge", "dc-charge"])
def test_charging(mapping: CompiledMapping, profile: str) -> None:
    last = list(run(mapping, 10.0, profile=profile))[-1]
    st = last.state(0x100)
    assert st.charge_mode in (ChargeMode.AC, ChargeMode.DC)
    assert last.snap.vehicle["vehicle_state"] is VehicleState.STOPPED
    assert close(last.snap.vehicle["total_current"], last.state(0x120).pack_current_a, 0.05)
    assert last.snap.vehicle["charging_state"] is ChargingState.PARKED_CHARGING
    assert last.snap.vehicle["total_current"] < 0
    # key off: the motor controllers sleep; motor 1 is mapped (invalid), the optional motor 2 left out
    assert [m.number for m in last.snap.motors] == [1]
    assert all(v is INVALID for v in last.snap.motors[0].values.values())


def test_hvil_open_sets_the_fault(mapping: CompiledMapping) -> None:
    samples = list(run(mapping, 70.0, scenario="hvil-open", fault_start_s=20.0))
    before = [s for s in samples if s.t < 19]
    after = [s for s in samples if s.t > 22]
    assert all(s.snap.faults["hv_interlock"] is False for s in before[1:])
    assert after and all(s.snap.faults["hv_interlock"] is True for s in after)
    assert after[-1].snap.vehicle["hv_interlock_closed"] is False


def test_ecu_silent_invalidates_bms_fields_then_recovers(mapping: CompiledMapping) -> None:
    samples = {round(s.t, 1): s for s in run(mapping, 60.0, scenario="ecu-silent", every=0.5)}
    # the BMS is silent from 30 s to 40 s
    ok = samples[29.5].snap
    assert not isinstance(ok.vehicle["soc"], Special)
    for t in (32.0, 35.0, 39.5):  # staleness: 0.1 s (10 ms frames) .. 1.5 s (5 temperature pages)
        snap = samples[t].snap
        for name in ("soc", "total_voltage", "total_current", "insulation_resistance", "hv_interlock_closed"):
            assert snap.vehicle[name] is INVALID, (t, name)
        assert all(c is INVALID for c in snap.subsystems[0].cell_voltages)
        assert all(c is INVALID for c in snap.subsystems[0].temperatures)
        assert snap.extremes["max_cell_voltage"] is INVALID
        assert snap.extremes["max_cell_voltage_subsystem"] == 1  # a constant stays
        assert snap.faults["hv_interlock"] is INVALID
        assert not isinstance(snap.vehicle["speed"], Special)  # the VCU still talks
    back = samples[42.0]
    assert not isinstance(back.snap.vehicle["soc"], Special)
    assert not isinstance(back.snap.vehicle["total_voltage"], Special)
    assert all(not isinstance(c, Special) for c in back.snap.subsystems[0].cell_voltages)


def test_bad_crc_invalidates_that_message_only_while_bad(mapping: CompiledMapping) -> None:
    # every 10th BMS_PackStatus frame (10 ms) has a wrong CRC: sample right after those frames
    cache = mapping.new_cache()
    sampler = Sampler(mapping, cache)
    bad_hits = good_hits = 0
    for w in simulate_windows(profile="wltc3", seed=1, seconds=45.0, scenario="bad-crc"):
        for t, can_id, data in w.frames:
            if can_id < 0:
                continue
            cache.put(can_id, data, t)
            if can_id == 0x120 and 31.0 < t < 39.0:
                from agent.canbus.checks import crc8

                crc_ok = data[0] == crc8(bytes((0x20, 0x01)) + data[1:])
                snap = sampler.sample(t)
                if crc_ok:
                    good_hits += not isinstance(snap.vehicle["total_voltage"], Special)
                else:
                    bad_hits += 1
                    assert snap.vehicle["total_voltage"] is INVALID
                    assert snap.vehicle["total_current"] is INVALID
                    assert not isinstance(snap.vehicle["soc"], Special)  # BMS_Status is fine
    assert bad_hits > 50 and good_hits > 400
    assert sampler.counters["BMS_PackStatus"]["check"] >= bad_hits


def test_bad_counter_invalidates_the_motor_frame(mapping: CompiledMapping) -> None:
    # MCU1_Status's counter jumps by 2 on every 5th frame: those frames fail the check
    cache = mapping.new_cache()
    sampler = Sampler(mapping, cache)
    bad = good = 0
    for w in simulate_windows(profile="wltc3", seed=1, seconds=40.0, scenario="bad-counter"):
        for t, can_id, data in w.frames:
            if can_id < 0:
                continue
            cache.put(can_id, data, t)
            if can_id == 0x0A0 and 31.0 < t < 39.0:
                snap = sampler.sample(t)
                motor1 = snap.motors[0].values
                if motor1["speed"] is INVALID:
                    bad += 1
                    assert motor1["torque"] is INVALID and motor1["state"] is INVALID
                    assert not isinstance(motor1["controller_voltage"], Special)  # MCU1_Electrical is fine
                else:
                    good += 1
    assert 100 < bad < good  # every 5th frame of 800
