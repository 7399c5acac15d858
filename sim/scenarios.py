"""Physics fault scenarios: each turns knobs of ``sim.vehicle.faults.Faults`` from its start time on.

A scenario acts through the physics (a weak cell, a blocked cooling plate, an internal short ...) so the
whole ``VehicleState`` stays consistent. ``flags`` are the GB/T 32960 general alarm flag bits the T-Box
should raise (0 temperature difference, 1 battery high temperature, 2 pack over-voltage, 3 pack
under-voltage, 4 low SOC, 5 cell over-voltage, 6 cell under-voltage, 7 high SOC, 8 SOC jump, 10 poor cell
consistency, 11 insulation, 12 DC-DC temperature, 13 brake system, 14 DC-DC status, 15 motor controller
temperature, 16 HV interlock, 17 motor temperature, 18 over-charge, 23 thermal event (2025)), ``level``
the highest alarm level (1..3; 4 = thermal event, GB/T 32960-2025) the T-Box's default thresholds
(docs/alarms.md) reach; both appear within ``run_s`` simulated seconds after ``start_s`` (the tests run
each scenario until they do). Flags the engine legitimately raises on the way are listed too (e.g. low
SOC when a scenario starts nearly empty). ``signature`` tells whether a recorded run shows the fault
(used by the tests; thresholds are documented in docs/simulator-physics.md). A scenario may start from
its own SOC, ambient and component temperatures (a pack heat-soaked by a fast charge, a motor warm from
the motorway), so that the fault develops within minutes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from sim.vehicle.faults import Faults
from sim.vehicle.state import ChargeMode, VehicleState

States = Sequence[VehicleState]

# Signature thresholds (documented in docs/simulator-physics.md)
CELL_OV_V = 4.25
CELL_UV_V = 2.80
PACK_OV_PER_CELL_V = 4.25
PACK_UV_PER_CELL_V = 3.00
BATTERY_HIGH_TEMP_C = 55.0
TEMP_DIFF_C = 12.0
LOW_SOC_PCT = 10.0
SOC_JUMP_PCT = 5.0
INSULATION_LOW_KOHM = 50.0
MOTOR_HIGH_TEMP_C = 150.0
INVERTER_HIGH_TEMP_C = 85.0
DCDC_HIGH_TEMP_C = 85.0


@dataclass(frozen=True)
class Scenario:
    """A named physics fault."""

    name: str
    description: str
    flags: tuple[int, ...]                       # GB/T 32960 general alarm flag bits
    level: int                                   # highest alarm level it should produce (in run_s)
    activate: Callable[[Faults, float], None]    # (faults, seconds since start) -> set knobs
    signature: Callable[[States], bool]          # does a recorded run show the fault?
    start_s: float = 60.0
    needs: Literal["drive", "charge", "any"] = "any"
    default_profile: str = "wltc3"               # used when the requested profile cannot show it
    initial_soc_pct: float | None = None
    #: simulated seconds from ``start_s`` within which the documented flags and level appear
    run_s: float = 600.0
    #: ambient temperature (degC) of the scenario (None: ``VehicleConfig.ambient_c``)
    ambient_c: float | None = None
    #: initial temperatures (degC) of a component that is already hot or cold (None: the profile's)
    pack_temp_c: float | None = None             # cells and battery coolant (soaked pack)
    motor_temp_c: float | None = None            # every motor's winding
    inverter_temp_c: float | None = None         # every inverter

    def starting_at(self, start_s: float) -> Scenario:
        """The same scenario with another start time."""
        return replace(self, start_s=start_s)


def _any(pred: Callable[[VehicleState], bool]) -> Callable[[States], bool]:
    return lambda states: any(pred(s) for s in states)


def _set(**knobs: object) -> Callable[[Faults, float], None]:
    def act(f: Faults, _elapsed: float) -> None:
        for k, v in knobs.items():
            setattr(f, k, v)
    return act


def _thermal_runaway(f: Faults, elapsed: float) -> None:
    f.internal_short_cell = 40            # module 3 (cells 36..47)
    f.internal_short_a = min(800.0, 1.0 * math.exp(elapsed / 30.0))


def _soc_jump(states: States) -> bool:
    return any(abs(b.soc_pct - a.soc_pct) > SOC_JUMP_PCT for a, b in itertools.pairwise(states))


def _probe_spread(s: VehicleState) -> float:
    return float(np.max(s.cell_temps_c) - np.min(s.cell_temps_c))


def _thermal_runaway_sig(states: States) -> bool:
    return any(s.thermal_event for s in states) and any(
        float(np.min(s.cell_voltages_v)) < 3.0 and _probe_spread(s) > TEMP_DIFF_C for s in states)


_LIST: tuple[Scenario, ...] = (
    Scenario("cell-over-voltage",
             "one weak cell (70 % capacity, 2x resistance) with lost cell supervision: it overshoots at "
             "the end of a DC charge (by ~0.16 V: a single cell, not poor consistency)",
             (5,), 2, _set(weak_cell=17, weak_cell_capacity_factor=0.7, weak_cell_resistance_factor=2.0,
                           cell_supervision_lost=True),
             _any(lambda s: float(np.max(s.cell_voltages_v)) > CELL_OV_V
                  and s.pack_voltage_v < PACK_OV_PER_CELL_V * len(s.cell_voltages_v)),
             start_s=1.0, needs="charge", default_profile="dc-charge", initial_soc_pct=75.0, run_s=300.0),
    Scenario("cell-under-voltage",
             "one weak cell (50 % capacity, 3x resistance) with lost cell supervision and cut-off, driving "
             "from 2 % SOC with the air conditioning on (2.5 kW)",
             (6, 10, 4), 2, _set(weak_cell=58, weak_cell_capacity_factor=0.5, weak_cell_resistance_factor=3.0,
                                 cell_supervision_lost=True, discharge_cutoff_disabled=True,
                                 extra_aux_w=2500.0),
             _any(lambda s: float(np.min(s.cell_voltages_v)) < CELL_UV_V),
             start_s=10.0, needs="drive", initial_soc_pct=2.0),
    Scenario("pack-over-voltage",
             "charger CV setpoint wrong (4.32 V per cell) from plug-in, DC top-up from 99 %: the BMS trusts "
             "the voltage and charges the whole pack above its limit (over-charge and high SOC too)",
             (2, 5, 7, 18), 3, _set(charge_cv_setpoint_v=4.32),
             _any(lambda s: s.pack_voltage_v > PACK_OV_PER_CELL_V * len(s.cell_voltages_v)),
             start_s=0.1, needs="charge", default_profile="dc-charge", initial_soc_pct=99.0),
    Scenario("pack-under-voltage",
             "BMS low-voltage cut-off lost on a winter morning (-20 degC, cold-soaked pack, 5 kW cabin "
             "heater): the pack is driven from 1.5 % SOC into deep discharge",
             (3, 4, 6), 3, _set(discharge_cutoff_disabled=True, extra_aux_w=5000.0),
             _any(lambda s: s.pack_voltage_v < PACK_UV_PER_CELL_V * len(s.cell_voltages_v)),
             start_s=1.0, needs="drive", initial_soc_pct=1.5, ambient_c=-20.0, pack_temp_c=-20.0),
    Scenario("over-temperature",
             "thermal management fault on a summer day (35 degC): radiator fan and chiller unavailable "
             "since a DC fast charge left the pack at 52 degC, then the PTC coolant heater sticks on "
             "(10 kW): the pack heats above its limit",
             (1,), 3, _set(coolant_heater_w=10000.0, battery_cooling_lost=True),
             _any(lambda s: float(np.max(s.cell_temps_c)) > BATTERY_HIGH_TEMP_C),
             start_s=10.0, ambient_c=35.0, pack_temp_c=52.0),
    Scenario("temperature-difference",
             "cooling plate of module 2 blocked while the chiller is stuck on, the pack warm (45 degC) "
             "after a fast charge: modules drift apart",
             (0,), 2, _set(blocked_module=2, chiller_stuck_on=True),
             _any(lambda s: _probe_spread(s) > TEMP_DIFF_C), start_s=10.0, pack_temp_c=45.0),
    Scenario("thermal-runaway-precursor",
             "growing internal short in cell 40 (module 3): local heating, spreading temperature "
             "difference, falling cell voltage, then thermal runaway (thermal event; the vented cell "
             "reads 0.3 V)",
             (0, 1, 6, 10, 23), 4, _thermal_runaway, _thermal_runaway_sig, start_s=10.0),
    Scenario("low-soc",
             "driving on an almost empty battery with the cabin heater on (3 kW)",
             (4,), 1, _set(extra_aux_w=3000.0), _any(lambda s: s.soc_pct < LOW_SOC_PCT),
             start_s=10.0, needs="drive", initial_soc_pct=11.0),
    Scenario("soc-jump",
             "BMS SOC estimate re-calibrates by -15 points in one step (coulomb-count drift reset)",
             (8,), 2, _set(soc_offset_pct=-15.0), _soc_jump, run_s=300.0),
    Scenario("insulation-fault",
             "coolant leak into the HV junction box: insulation resistance falls to ~20 kOhm",
             (11,), 3, _set(insulation_target_kohm=20.0),
             _any(lambda s: s.insulation_kohm < INSULATION_LOW_KOHM), run_s=300.0),
    Scenario("motor-over-temperature",
             "motor coolant pump fails after a motorway run (winding at 110 degC) and a winding "
             "inter-turn fault adds up to 6 kW of loss",
             (17,), 2, _set(motor_cooling_lost=True, motor_extra_loss_w=6000.0),
             _any(lambda s: max(m.motor_temp_c for m in s.motors) > MOTOR_HIGH_TEMP_C), needs="drive",
             start_s=10.0, motor_temp_c=110.0),
    Scenario("controller-over-temperature",
             "inverter cold plate blocked after a motorway run (inverter at 60 degC) and a degraded gate "
             "driver adds 800 W of switching loss",
             (15,), 2, _set(inverter_cooling_lost=True, inverter_extra_loss_w=800.0),
             _any(lambda s: max(m.inverter_temp_c for m in s.motors) > INVERTER_HIGH_TEMP_C),
             needs="drive", start_s=10.0, inverter_temp_c=60.0),
    Scenario("hvil-open",
             "HV interlock loop opens (connector unlatched): contactors open, the car coasts",
             (16,), 3, _set(hvil_open=True),
             _any(lambda s: not s.hv_interlock_closed and not s.main_contactors_closed and not s.ready),
             run_s=300.0),
    Scenario("dcdc-fault",
             "DC-DC converter shuts down: the 12 V network runs on its battery",
             (14,), 2, _set(dcdc_failed=True),
             _any(lambda s: s.dcdc_fault and not s.dcdc_active and s.lv_voltage_v < 13.0), run_s=300.0),
    Scenario("dcdc-over-temperature",
             "DC-DC cooling lost and its efficiency degraded to 65 %",
             (12,), 2, _set(dcdc_cooling_lost=True, dcdc_efficiency=0.65),
             _any(lambda s: s.dcdc_temp_c > DCDC_HIGH_TEMP_C), start_s=10.0),
    Scenario("brake-fault",
             "brake booster failure: friction brakes limited to 30 % of their force",
             (13,), 2, _set(brake_fault=True), _any(lambda s: s.brake_fault), needs="drive", run_s=300.0),
    Scenario("over-charge",
             "BMS fails to stop the charge (from plug-in, DC top-up from 98 %): the charger keeps pushing "
             "0.3 C into full cells",
             (18, 7, 5, 2), 3, _set(charge_never_stops=True),
             _any(lambda s: s.charge_mode in (ChargeMode.AC, ChargeMode.DC) and s.charger_current_a > 1.0
                  and s.soc_pct >= 99.5 and float(np.max(s.cell_voltages_v)) > CELL_OV_V),
             start_s=0.1, needs="charge", default_profile="dc-charge", initial_soc_pct=98.0),
    Scenario("gnss-loss",
             "GNSS antenna disconnected: no fix (no GB/T 32960 alarm; position reported invalid)",
             (), 0, _set(gnss_lost=True), _any(lambda s: not s.gnss_fix), run_s=300.0),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in _LIST}
