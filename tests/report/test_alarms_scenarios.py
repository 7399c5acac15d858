"""The default (NMC) alarm thresholds against the simulator's physics fault scenarios.

Each scenario of ``sim.scenarios`` documents the general flags and the level a T-Box should raise
(docs/simulator-physics.md) within ``run_s`` of its start. The physics ``VehicleState`` is turned into a
``Snapshot`` the way a mapping would (cells, probes, pack values, motors, HV state; the brake fault as an
ECU fault input), sampled at 1 Hz, and fed to the alarm engine until the documented flags and level are
raised (or ``start_s + run_s``). The defaults and the documentation agree on every scenario; so does the
simulated BMS's own fault level (``sim.ecus.fault_flags``), which never says more than the documented
level and says the same for the faults it supervises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

np = pytest.importorskip("numpy")

from agent.protocol.model import (  # noqa: E402
    AlarmLevel,
    ChargingState,
    DcDcState,
    GeneralAlarmFlag,
    MotorState,
    VehicleState,
)
from agent.report.alarms import AlarmConfig, AlarmEngine  # noqa: E402
from agent.report.snapshot import MotorSnapshot, Snapshot, SubsystemSnapshot  # noqa: E402
from sim.ecus import EcuContext, fault_flags  # noqa: E402
from sim.scenarios import SCENARIOS  # noqa: E402
from sim.vehicle import Vehicle, VehicleConfig  # noqa: E402
from sim.vehicle.state import ChargeMode  # noqa: E402
from sim.vehicle.state import VehicleState as SimState  # noqa: E402

T0 = datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC)

#: scenarios the simulated BMS supervises itself (cell and pack voltages, temperatures, SOC, insulation,
#: HVIL): its fault level must reach the documented level. The others (temperature difference below its
#: 12 °C flag, thermal event, motor, DC-DC, brake, SOC jump, GNSS) it reports lower or not at all.
BMS_LEVEL = {
    "cell-over-voltage", "cell-under-voltage", "pack-over-voltage", "pack-under-voltage", "over-temperature",
    "low-soc", "insulation-fault", "hvil-open", "over-charge",
}

_CHARGING = {
    ChargeMode.AC: ChargingState.PARKED_CHARGING,
    ChargeMode.DC: ChargingState.PARKED_CHARGING,
    ChargeMode.COMPLETE: ChargingState.CHARGING_COMPLETE,
    ChargeMode.NONE: ChargingState.NOT_CHARGING,
}


def to_snapshot(s: SimState) -> Snapshot:
    """What a mapping of the simulator's DBC produces, straight from the physics state."""
    vehicle: dict[str, Any] = {
        "vehicle_state": VehicleState.STARTED if s.key_on else VehicleState.STOPPED,
        "charging_state": _CHARGING[s.charge_mode],
        "speed": s.speed_kmh,
        "mileage": s.odometer_km,
        "total_voltage": s.pack_voltage_v,
        "total_current": s.pack_current_a,
        "soc": s.soc_pct,
        "dcdc_state": DcDcState.WORKING if s.dcdc_active and not s.dcdc_fault else DcDcState.DISCONNECTED,
        "insulation_resistance": s.insulation_kohm,
        "dcdc_temperature": s.dcdc_temp_c,
        "hv_interlock_closed": s.hv_interlock_closed,
        "hv_on": s.main_contactors_closed,
    }
    motors = tuple(
        MotorSnapshot(
            i + 1,
            MappingProxyType(
                {
                    "state": MotorState.CONSUMING if m.enabled else MotorState.OFF,
                    "speed": m.speed_rpm,
                    "torque": m.torque_nm,
                    "temperature": m.motor_temp_c,
                    "controller_temperature": m.inverter_temp_c,
                }
            ),
        )
        for i, m in enumerate(s.motors)
    )
    cells = tuple(float(x) for x in np.asarray(s.cell_voltages_v))
    temps = tuple(float(x) for x in np.asarray(s.cell_temps_c))
    return Snapshot(
        time=T0 + timedelta(seconds=s.t),
        vehicle=MappingProxyType(vehicle),
        motors=motors,
        subsystems=(SubsystemSnapshot(1, cells, temps),),
        faults=MappingProxyType({"brake_system": s.brake_fault}),
        fault_codes=MappingProxyType({"ress": tuple(s.bms_fault_codes)}),
    )


@dataclass
class Outcome:
    flags: GeneralAlarmFlag
    level: AlarmLevel
    fault_point: datetime | None
    reached_s: float | None   # simulated s when the documented flags and level had all been raised
    bms_level: int            # highest level of the simulated BMS (BMS_FaultLevel) meanwhile
    ahead: list[tuple[float, int, int]]   # (t, BMS level, engine level) where the BMS said more


def run_scenario(name: str) -> Outcome:
    sc = SCENARIOS[name]
    profile = sc.default_profile if sc.needs != "any" else "wltc3"
    vehicle = Vehicle(VehicleConfig(), profile, seed=1, scenario=name)
    engine = AlarmEngine(AlarmConfig.nmc())
    bms = EcuContext(n_motors=1, n_cells=96, n_probes=32)
    expected = GeneralAlarmFlag(sum(1 << b for b in sc.flags))
    flags = GeneralAlarmFlag(0)
    top = AlarmLevel.NONE
    first_fault: datetime | None = None
    reached: float | None = None
    bms_level = 0
    bms_flagged: list[tuple[float, int]] = []     # (t, level) of samples where a BMS fault flag is set
    levels: list[int] = []
    for _ in range(math.ceil(sc.start_s + sc.run_s)):
        s = vehicle.step(1.0)
        state = engine.update(to_snapshot(s))
        bms.cells = [float(x) for x in s.cell_voltages_v]
        bms.temps = [float(x) for x in s.cell_temps_c]
        bms_flags, level = fault_flags(s, bms)
        bms_level = max(bms_level, level)
        bms_flagged.append((s.t, level if any(bms_flags) else 0))
        levels.append(int(state.max_level))
        flags |= state.flags
        top = max(top, state.max_level)
        first_fault = first_fault or state.fault_point
        if expected and flags & expected == expected and top == sc.level:
            reached = s.t
            break
    # the engine debounces (2 samples): compare the BMS with the engine's level up to 2 samples later
    ahead = [(t, lv, max(levels[k:k + 3])) for k, (t, lv) in enumerate(bms_flagged[:-2])
             if lv > max(levels[k:k + 3])]
    return Outcome(flags, AlarmLevel(top), first_fault, reached, bms_level, ahead)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_raises_its_documented_flags_and_level(name: str) -> None:
    sc = SCENARIOS[name]
    out = run_scenario(name)
    raised = {bit for bit in range(32) if out.flags >> bit & 1}
    assert set(sc.flags) <= raised, f"{name}: raised {sorted(raised)}, documented {sc.flags}"
    assert out.level == sc.level, f"{name}: level {out.level}, flags {sorted(raised)}"
    assert (out.reached_s is not None) == bool(sc.flags)
    assert (out.fault_point is not None) == (out.level >= AlarmLevel.LEVEL_3)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_simulated_bms_level_agrees(name: str) -> None:
    """The BMS's own fault level never exceeds the documented level (level 4, a thermal event, is
    beyond a BMS fault level: at most 3) and equals it where the BMS supervises the fault. While one of
    its fault flags is set it never says more than the T-Box's engine (same staging; e.g. 55 °C is level
    2, not 3). Its level 1 for a diagnostic code alone (internal short) has no GB/T flag: not compared."""
    sc = SCENARIOS[name]
    out = run_scenario(name)
    assert not out.ahead, f"{name}: (t, BMS level, engine level) {out.ahead[:5]}"
    assert out.bms_level <= min(sc.level, 3), f"{name}: BMS level {out.bms_level}"
    if name in BMS_LEVEL:
        assert out.bms_level == sc.level, f"{name}: BMS level {out.bms_level}, documented {sc.level}"
