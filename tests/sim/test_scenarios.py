"""Each physics fault scenario shows its signature in the VehicleState, and only after it starts."""

from __future__ import annotations

import numpy as np
import pytest

from sim.scenarios import SCENARIOS, Scenario
from sim.vehicle import CHARGE_PROFILES, PROFILES, Vehicle, VehicleConfig, VehicleState

REQUIRED = {
    "cell-over-voltage", "cell-under-voltage", "pack-over-voltage", "pack-under-voltage", "over-temperature",
    "temperature-difference", "thermal-runaway-precursor", "low-soc", "soc-jump", "insulation-fault",
    "motor-over-temperature", "controller-over-temperature", "hvil-open", "dcdc-fault",
    "dcdc-over-temperature", "brake-fault", "over-charge",
}
VALID_BITS = set(range(19)) | {23}


def run_scenario(name: str, max_s: float = 2700.0, dt: float = 1.0) -> tuple[Vehicle, list[VehicleState]]:
    sc = SCENARIOS[name]
    profile = sc.default_profile if sc.needs != "any" else "wltc3"
    v = Vehicle(VehicleConfig(), profile, seed=5, scenario=name)
    states = [v.state]
    checked = 0
    for k in range(round(max_s / dt)):
        states.append(v.step(dt))
        if k % 20 == 0 and states[-1].t > sc.start_s:
            if sc.signature(states[max(0, checked - 1):]):   # the window overlaps: pairs are seen
                break
            checked = len(states)
    return v, states


def test_required_scenarios_exist_and_are_well_formed() -> None:
    assert set(SCENARIOS) >= REQUIRED
    for name, sc in SCENARIOS.items():
        assert isinstance(sc, Scenario) and sc.name == name and sc.description
        assert set(sc.flags) <= VALID_BITS
        assert 0 <= sc.level <= 4 and (sc.level == 0) == (not sc.flags)
        assert sc.default_profile in PROFILES
        assert sc.start_s > 0.0 and 0.0 < sc.run_s <= 600.0     # bounded: documented state within 600 s
    runaway = SCENARIOS["thermal-runaway-precursor"]
    assert runaway.level == 4 and 23 in runaway.flags
    assert SCENARIOS["over-charge"].flags[0] == 18


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_signature_appears_after_start(name: str) -> None:
    sc = SCENARIOS[name]
    v, states = run_scenario(name)
    before = [s for s in states if s.t < sc.start_s]
    assert before and not sc.signature(before), "signature present before the fault"
    assert sc.signature(states), f"{name}: no signature within {states[-1].t:.0f} s"
    if sc.needs == "charge":
        assert v.profile in CHARGE_PROFILES


def test_thermal_runaway_escalates() -> None:
    _, states = run_scenario("thermal-runaway-precursor", max_s=900.0)
    t_max = [float(np.max(s.cell_temps_c)) for s in states]
    spread = [float(np.max(s.cell_temps_c) - np.min(s.cell_temps_c)) for s in states]
    v_min = [float(np.min(s.cell_voltages_v)) for s in states]
    start = next(i for i, s in enumerate(states) if s.t >= 60.0)
    assert t_max[-1] > t_max[start] + 30 and spread[-1] > spread[start] + 20
    assert v_min[-1] < v_min[start] - 1.0
    assert states[-1].thermal_event and not any(s.thermal_event for s in states[:start])


def test_cell_over_voltage_is_one_cell() -> None:
    _, states = run_scenario("cell-over-voltage")
    s = states[-1]
    assert int(np.sum(s.cell_voltages_v > 4.25)) == 1 and s.pack_voltage_v < 4.25 * len(s.cell_voltages_v)


def test_hvil_open_cuts_hv_and_the_car_coasts() -> None:
    v = Vehicle(VehicleConfig(), "wltc3", seed=5, scenario="hvil-open", scenario_start_s=120.0)
    states = [v.step(0.5) for _ in range(400)]
    after = [s for s in states if s.t > 121.0]
    assert all(s.pack_current_a == 0.0 and not s.ready and s.motors[0].torque_nm == 0.0 for s in after)
    assert after[0].speed_kmh > 0.0 or after[-1].speed_kmh == 0.0


def test_scenario_start_is_configurable() -> None:
    sc = SCENARIOS["insulation-fault"].starting_at(300.0)
    assert sc.start_s == 300.0 and SCENARIOS["insulation-fault"].start_s == 60.0
    v = Vehicle(VehicleConfig(), "park", seed=1, scenario="insulation-fault", scenario_start_s=300.0)
    states = [v.step(1.0) for _ in range(600)]
    assert min(s.insulation_kohm for s in states if s.t < 300) > 20000
    assert states[-1].insulation_kohm < 50.0


def test_unknown_scenario_and_profile_are_rejected() -> None:
    with pytest.raises(ValueError):
        Vehicle(VehicleConfig(), "wltc3", seed=1, scenario="no-such-thing")
    with pytest.raises(ValueError):
        Vehicle(VehicleConfig(), "no-such-cycle", seed=1)


def _long_run(name: str | None, seconds: float, soc: float | None = None) -> list[VehicleState]:
    cfg = VehicleConfig(initial_soc_pct=soc)
    v = Vehicle(cfg, "wltc3", seed=4, scenario=name)
    return [v.step(2.0) for _ in range(round(seconds / 2.0))]


def test_protections_keep_faults_physical() -> None:
    motor = _long_run("motor-over-temperature", 7200.0)
    assert max(s.motors[0].motor_temp_c for s in motor) < 200.0
    assert any(not s.motors[0].enabled and s.ready for s in motor)        # tripped, then back
    inverter = _long_run("controller-over-temperature", 7200.0)
    assert max(s.motors[0].inverter_temp_c for s in inverter) < 120.0
    dcdc = _long_run("dcdc-over-temperature", 7200.0)
    assert max(s.dcdc_temp_c for s in dcdc) < 120.0 and any(s.ready and not s.dcdc_active for s in dcdc)
    hot = _long_run("over-temperature", 7200.0)
    assert not any(s.thermal_event for s in hot) and max(float(np.max(s.cell_temps_c)) for s in hot) < 90.0


def test_empty_battery_opens_the_contactors() -> None:
    states = _long_run(None, 3600.0, soc=3.0)
    end = states[-1]
    assert not end.main_contactors_closed and not end.ready and end.pack_current_a == 0.0
    assert end.speed_kmh == 0.0 and end.cell_soc_mean_pct > -1.0
    assert min(float(np.min(s.cell_voltages_v)) for s in states) > 2.7
