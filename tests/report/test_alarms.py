"""Alarm engine: every rule's thresholds, hysteresis, debounce, levels, stale inputs, fault inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.protocol.model import (
    AlarmLevel,
    ChargingState,
    DcDcState,
    GeneralAlarmFlag,
    Special,
    VehicleState,
)
from agent.report.alarms import AlarmConfig, AlarmEngine, AlarmState, Debounce, Rule, Threshold
from agent.report.snapshot import MotorSnapshot, Snapshot, SubsystemSnapshot

F = GeneralAlarmFlag
L = AlarmLevel
T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
INV = Special.INVALID
N_CELLS = 100


def snap(
    t: float,
    *,
    cells: Any = None,
    temps: Any = None,
    motor: dict[str, Any] | None = None,
    faults: dict[str, Any] | None = None,
    codes: dict[str, tuple[int, ...]] | None = None,
    **vehicle: Any,
) -> Snapshot:
    v: dict[str, Any] = {
        "vehicle_state": VehicleState.STARTED,
        "charging_state": ChargingState.NOT_CHARGING,
        "soc": 50.0,
        "total_voltage": 400.0,
        "total_current": 10.0,
        "insulation_resistance": 40000,
        "hv_interlock_closed": True,
        "hv_on": True,
        "dcdc_state": DcDcState.WORKING,
        "dcdc_temperature": 40.0,
    }
    v.update(vehicle)
    m = {"temperature": 60.0, "controller_temperature": 50.0}
    m.update(motor or {})
    return Snapshot(
        time=T0 + timedelta(seconds=t),
        vehicle=MappingProxyType(v),
        motors=(MotorSnapshot(1, MappingProxyType(m)),),
        subsystems=(SubsystemSnapshot(1, tuple(cells or [4.0] * N_CELLS), tuple(temps or [25.0] * 8)),),
        faults=MappingProxyType(faults or {}),
        fault_codes=MappingProxyType(codes or {}),
    )


def cells_with(i: int, x: float) -> list[float]:
    c = [4.0] * N_CELLS
    c[i] = x
    return c


@dataclass(frozen=True)
class Case:
    flag: GeneralAlarmFlag
    make: Callable[[float, float], Snapshot]  # (t, metric value) -> snapshot
    normal: float
    set: float  # raises ``level``
    band: float  # inside the hysteresis band: holds
    clear: float  # releases
    level: AlarmLevel


CASES = [
    Case(F.CELL_OVERVOLTAGE, lambda t, x: snap(t, cells=cells_with(5, x)), 4.1, 4.26, 4.23, 4.21, L.LEVEL_2),
    Case(F.CELL_OVERVOLTAGE, lambda t, x: snap(t, cells=cells_with(5, x)), 4.1, 4.36, 4.32, 4.21, L.LEVEL_3),
    Case(F.CELL_UNDERVOLTAGE, lambda t, x: snap(t, cells=cells_with(7, x)), 3.6, 2.79, 2.9, 3.0, L.LEVEL_2),
    Case(F.CELL_UNDERVOLTAGE, lambda t, x: snap(t, cells=cells_with(7, x)), 3.6, 2.49, 2.6, 3.0, L.LEVEL_3),
    Case(
        F.STORAGE_OVERVOLTAGE,
        lambda t, x: snap(t, total_voltage=x * N_CELLS),
        4.0,
        4.235,
        4.22,
        4.2,
        L.LEVEL_2,
    ),
    Case(
        F.STORAGE_OVERVOLTAGE,
        lambda t, x: snap(t, total_voltage=x * N_CELLS),
        4.0,
        4.26,
        4.225,
        4.2,
        L.LEVEL_3,
    ),
    Case(
        F.STORAGE_UNDERVOLTAGE,
        lambda t, x: snap(t, total_voltage=x * N_CELLS),
        3.6,
        2.99,
        3.05,
        3.2,
        L.LEVEL_2,
    ),
    Case(
        F.STORAGE_UNDERVOLTAGE, lambda t, x: snap(t, total_voltage=x * N_CELLS), 3.6, 2.4, 2.6, 3.2, L.LEVEL_3
    ),
    Case(F.BATTERY_HIGH_TEMPERATURE, lambda t, x: snap(t, temps=[x] * 8), 30, 55, 52, 49, L.LEVEL_2),
    Case(F.BATTERY_HIGH_TEMPERATURE, lambda t, x: snap(t, temps=[x] * 8), 30, 61, 57, 49, L.LEVEL_3),
    Case(
        F.TEMPERATURE_DIFFERENCE, lambda t, x: snap(t, temps=[25.0 + x] + [25.0] * 7), 2, 9, 7, 5, L.LEVEL_2
    ),
    Case(
        F.TEMPERATURE_DIFFERENCE, lambda t, x: snap(t, temps=[25.0 + x] + [25.0] * 7), 2, 16, 13, 5, L.LEVEL_3
    ),
    Case(F.LOW_SOC, lambda t, x: snap(t, soc=x), 50, 9, 11, 13, L.LEVEL_1),
    Case(F.LOW_SOC, lambda t, x: snap(t, soc=x), 50, 4, 6, 13, L.LEVEL_2),
    Case(
        F.CELL_POOR_CONSISTENCY,
        lambda t, x: snap(t, cells=cells_with(3, 4.0 - x)),
        0.05,
        0.31,
        0.27,
        0.2,
        L.LEVEL_1,
    ),
    Case(
        F.CELL_POOR_CONSISTENCY,
        lambda t, x: snap(t, cells=cells_with(3, 4.0 - x)),
        0.05,
        0.55,
        0.47,
        0.2,
        L.LEVEL_2,
    ),
    # insulation in Ω/V at 400 V: kΩ = x * 400 / 1000
    Case(F.INSULATION, lambda t, x: snap(t, insulation_resistance=x * 0.4), 50000, 450, 520, 600, L.LEVEL_2),
    Case(F.INSULATION, lambda t, x: snap(t, insulation_resistance=x * 0.4), 50000, 50, 110, 600, L.LEVEL_3),
    Case(F.DCDC_TEMPERATURE, lambda t, x: snap(t, dcdc_temperature=x), 50, 86, 82, 70, L.LEVEL_2),
    Case(
        F.MOTOR_CONTROLLER_TEMPERATURE,
        lambda t, x: snap(t, motor={"controller_temperature": x}),
        50,
        81,
        77,
        70,
        L.LEVEL_1,
    ),
    Case(F.MOTOR_TEMPERATURE, lambda t, x: snap(t, motor={"temperature": x}), 60, 151, 147, 130, L.LEVEL_2),
    Case(F.HV_INTERLOCK, lambda t, x: snap(t, hv_interlock_closed=x < 0.5), 0, 1, 1, 0, L.LEVEL_3),
    Case(
        F.DCDC_STATE,
        lambda t, x: snap(t, dcdc_state=DcDcState.DISCONNECTED if x else DcDcState.WORKING),
        0,
        1,
        1,
        0,
        L.LEVEL_2,
    ),
]


def feed(engine: AlarmEngine, snaps: list[Snapshot]) -> list[AlarmState]:
    return [engine.update(s) for s in snaps]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.flag.name}-{int(c.level)}")
def test_rule_sets_holds_and_clears_with_hysteresis_and_debounce(case: Case) -> None:
    engine = AlarmEngine(AlarmConfig.nmc())
    rule = engine.config.rules[case.flag]
    t = 0.0

    def step(x: float) -> AlarmState:
        nonlocal t
        t += 1
        return engine.update(case.make(t, x))

    for _ in range(3):
        assert not step(case.normal).flags & case.flag
    states = [step(case.set) for _ in range(rule.debounce.set_samples)]
    assert all(not s.flags & case.flag for s in states[:-1])  # debounced
    assert states[-1].levels[case.flag] == case.level
    for _ in range(20):
        assert step(case.band).levels[case.flag] >= min(case.level, L.LEVEL_3)  # hysteresis band holds
    states = [step(case.clear) for _ in range(rule.debounce.clear_samples)]
    assert all(s.flags & case.flag for s in states[:-1])
    assert not states[-1].flags & case.flag


def test_levels_step_down_before_clearing_and_max_level() -> None:
    engine = AlarmEngine()
    states = feed(engine, [snap(i, temps=[62.0] * 8) for i in range(2)])
    assert states[-1].max_level == L.LEVEL_3 and states[-1].levels[F.BATTERY_HIGH_TEMPERATURE] == L.LEVEL_3
    states = feed(engine, [snap(2 + i, temps=[53.0] * 8) for i in range(3)])
    assert states[-1].levels[F.BATTERY_HIGH_TEMPERATURE] == L.LEVEL_2 and states[-1].max_level == L.LEVEL_2


def test_single_spikes_do_not_set() -> None:
    engine = AlarmEngine()
    for i in range(40):
        s = engine.update(snap(i, temps=[61.0 if i % 2 else 30.0] * 8))
        assert not s.flags & F.BATTERY_HIGH_TEMPERATURE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=55.0, max_value=59.99), min_size=5, max_size=60))
def test_no_flicker_in_the_level_3_band(noise: list[float]) -> None:
    """Noise between the level-3 clear (55 °C) and set (60 °C) values never releases level 3."""
    engine = AlarmEngine()
    feed(engine, [snap(i, temps=[62.0] * 8) for i in range(3)])
    for i, x in enumerate(noise):
        assert engine.update(snap(10 + i, temps=[x] * 8)).levels[F.BATTERY_HIGH_TEMPERATURE] == L.LEVEL_3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=50.0, max_value=59.99), min_size=5, max_size=60))
def test_no_flicker_around_the_level_2_threshold(noise: list[float]) -> None:
    """Noise around the level-2 set value (55 °C) above its clear value (50 °C) keeps exactly level 2."""
    engine = AlarmEngine()
    feed(engine, [snap(i, temps=[56.0] * 8) for i in range(3)])
    for i, x in enumerate(noise):
        assert engine.update(snap(10 + i, temps=[x] * 8)).levels[F.BATTERY_HIGH_TEMPERATURE] == L.LEVEL_2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([30.0, 54.0, 56.0, 58.0]), min_size=2, max_size=80))
def test_debounce_needs_consecutive_samples(values: list[float]) -> None:
    """A level-2 set needs 2 consecutive samples ≥ 55 °C; any run shorter than that never raises."""
    engine = AlarmEngine()
    run = 0
    ever = False
    for i, x in enumerate(values):
        run = run + 1 if x >= 55 else 0
        ever |= run >= 2
        s = engine.update(snap(i, temps=[x] * 8))
        if not ever:
            assert not s.flags & F.BATTERY_HIGH_TEMPERATURE


def test_duration_debounce() -> None:
    rule = Rule(
        (Threshold(L.LEVEL_2, 55, 50),),
        Debounce(set_samples=1, clear_samples=1, set_seconds=5, clear_seconds=10),
    )
    engine = AlarmEngine(AlarmConfig.nmc().with_rule(F.BATTERY_HIGH_TEMPERATURE, rule))
    on = [engine.update(snap(i, temps=[56.0] * 8)).flags & F.BATTERY_HIGH_TEMPERATURE for i in range(8)]
    assert [bool(x) for x in on] == [False] * 5 + [True] * 3  # set at t0 + 5 s
    off = [engine.update(snap(8 + i, temps=[40.0] * 8)).flags & F.BATTERY_HIGH_TEMPERATURE for i in range(12)]
    assert [bool(x) for x in off] == [True] * 10 + [False] * 2


def test_stale_input_holds_the_decision() -> None:
    engine = AlarmEngine()
    feed(engine, [snap(i, soc=4.0) for i in range(3)])
    assert engine.state.levels[F.LOW_SOC] == L.LEVEL_2
    for i in range(3, 20):
        assert engine.update(snap(i, soc=INV)).levels[F.LOW_SOC] == L.LEVEL_2
    fresh = AlarmEngine()
    for i in range(20):
        assert not fresh.update(snap(i, soc=INV, insulation_resistance=INV)).flags
    # a stale sample neither counts towards nor resets a debounce run
    engine = AlarmEngine()
    engine.update(snap(0, temps=[56.0] * 8))
    engine.update(snap(1, temps=[INV] * 8))
    assert engine.update(snap(2, temps=[56.0] * 8)).flags & F.BATTERY_HIGH_TEMPERATURE


def test_partly_stale_cells_may_raise_but_never_clear() -> None:
    engine = AlarmEngine()
    hot = cells_with(5, 4.4)
    hot[50] = INV
    feed(engine, [snap(i, cells=hot) for i in range(2)])
    assert engine.state.levels[F.CELL_OVERVOLTAGE] == L.LEVEL_3
    partial = [4.0] * N_CELLS
    partial[5] = INV  # the over-voltage cell's frame is stale
    for i in range(2, 12):
        assert engine.update(snap(i, cells=partial)).levels[F.CELL_OVERVOLTAGE] == L.LEVEL_3
    for i in range(12, 15):
        s = engine.update(snap(i, cells=[4.0] * N_CELLS))
    assert not s.flags & F.CELL_OVERVOLTAGE


def test_fault_inputs_are_ored_with_their_level_and_stale_holds() -> None:
    engine = AlarmEngine()
    s = engine.update(snap(0, faults={"brake_system": True, "storage_mismatch": True, "low_soc": False}))
    assert s.levels == {F.BRAKE_SYSTEM: L.LEVEL_2, F.STORAGE_MISMATCH: L.LEVEL_2}
    s = engine.update(snap(1, faults={"brake_system": INV, "storage_mismatch": False}))
    assert s.flags == F.BRAKE_SYSTEM
    assert not engine.update(snap(2, faults={"brake_system": False})).flags
    s = engine.update(snap(3, faults={"hv_interlock": True, "thermal_event": True, "hydrogen_leak": True}))
    assert s.levels == {F.HV_INTERLOCK: L.LEVEL_3, F.THERMAL_EVENT: L.LEVEL_4, F.HYDROGEN_LEAK: L.LEVEL_3}
    assert s.max_level == L.LEVEL_4


def test_fault_input_raises_a_measured_level() -> None:
    engine = AlarmEngine()
    feed(engine, [snap(i, soc=8.0) for i in range(2)])
    assert engine.state.levels[F.LOW_SOC] == L.LEVEL_1
    assert engine.update(snap(2, soc=8.0, faults={"low_soc": True})).levels[F.LOW_SOC] == L.LEVEL_1
    rule = Rule(AlarmConfig.nmc().rules[F.LOW_SOC].thresholds, fault_level=L.LEVEL_3)
    engine = AlarmEngine(AlarmConfig.nmc().with_rule(F.LOW_SOC, rule))
    assert engine.update(snap(0, soc=8.0, faults={"low_soc": True})).levels[F.LOW_SOC] == L.LEVEL_3


def test_fault_code_lists() -> None:
    s = AlarmEngine().update(snap(0, codes={"ress": (0x0A0A, 0x0AA6), "motor": (0x151,), "other": (7,)}))
    assert (s.ress_faults, s.motor_faults, s.engine_faults, s.other_faults) == (
        (0x0A0A, 0x0AA6),
        (0x151,),
        (),
        (7,),
    )
    assert s.max_level == L.NONE  # codes alone raise no flag and no level


def test_soc_jump_set_held_and_cleared() -> None:
    engine = AlarmEngine()
    engine.update(snap(0, soc=70.0))
    assert not engine.update(snap(1, soc=68.0)).flags
    s = engine.update(snap(2, soc=55.0))
    assert s.levels[F.SOC_JUMP] == L.LEVEL_2
    for i in range(3, 32):
        assert engine.update(snap(i, soc=55.0)).flags & F.SOC_JUMP  # held for soc_jump_hold (30 s)
    assert not engine.update(snap(32, soc=55.0)).flags & F.SOC_JUMP
    # samples further apart than soc_jump_max_gap are not compared
    engine = AlarmEngine()
    engine.update(snap(0, soc=70.0))
    assert not engine.update(snap(60, soc=50.0)).flags & F.SOC_JUMP


def test_high_soc_and_overcharge() -> None:
    engine = AlarmEngine()
    full = cells_with(3, 4.30)
    charging = {"charging_state": ChargingState.PARKED_CHARGING, "total_current": -40.0}
    states = feed(engine, [snap(i, soc=100.0, cells=full, **charging) for i in range(3)])
    assert states[-1].levels[F.STORAGE_OVERCHARGE] == L.LEVEL_3
    assert states[-1].levels[F.HIGH_SOC] == L.LEVEL_1
    assert states[-1].fault_point == T0 + timedelta(seconds=1)
    # a normal full charge: 100 % at 4.20 V and the current stops
    done = AlarmEngine()
    states = feed(
        done,
        [
            snap(i, soc=100.0, total_current=0.0, charging_state=ChargingState.CHARGING_COMPLETE)
            for i in range(5)
        ],
    )
    assert not states[-1].flags
    # a BMS counting past full
    assert AlarmEngine().update(snap(0, soc=101.0)).flags == F(0)
    over = AlarmEngine()
    assert feed(over, [snap(i, soc=101.0) for i in range(2)])[-1].flags == F.HIGH_SOC


def test_dcdc_state_only_while_high_voltage_is_up() -> None:
    engine = AlarmEngine()
    off = [
        snap(i, dcdc_state=DcDcState.DISCONNECTED, hv_on=False, vehicle_state=VehicleState.STOPPED)
        for i in range(5)
    ]
    assert not feed(engine, off)[-1].flags


def tr_snap(t: float, vmin: float, tmax: float) -> Snapshot:
    return snap(t, cells=cells_with(40, vmin), temps=[tmax] + [30.0] * 7)


def test_thermal_event_voltage_collapse_in_a_hot_pack_is_level_4() -> None:
    engine = AlarmEngine()
    feed(engine, [tr_snap(i, 3.9, 40.0 + i) for i in range(20)])  # hot and rising slowly: no event
    assert not engine.state.flags & F.THERMAL_EVENT
    s = engine.update(tr_snap(20, 0.3, 70.0))  # a cell collapses (vent) while above 60 °C
    assert s.levels[F.THERMAL_EVENT] == L.LEVEL_4 and s.max_level == L.LEVEL_4
    assert s.fault_point is not None


def test_thermal_event_rapid_rise_needs_3_seconds_and_a_second_criterion() -> None:
    engine = AlarmEngine()
    feed(engine, [tr_snap(i, 3.9, 30.0) for i in range(5)])
    rise = [engine.update(tr_snap(5 + i, 3.9, 30.0 + 2.0 * i)) for i in range(10)]
    assert not any(s.flags & F.THERMAL_EVENT for s in rise[:8])  # rising, but below 60 °C, no voltage drop
    engine = AlarmEngine()
    feed(engine, [tr_snap(i, 3.9, 30.0) for i in range(5)])
    rise = [engine.update(tr_snap(5 + i, 2.5, 30.0 + 2.0 * i)) for i in range(6)]
    flags = [bool(s.flags & F.THERMAL_EVENT) for s in rise]
    assert flags == [False, False, False, False, True, True]  # rising from 6 s, 3 s at 9 s, with a drop
    assert AlarmEngine().update(tr_snap(0, 3.9, 75.0)).flags & F.THERMAL_EVENT == 0  # hot alone: no event


def test_fault_point_is_the_first_level_3_sample_per_episode() -> None:
    engine = AlarmEngine()
    states = feed(engine, [snap(i, hv_interlock_closed=not 5 <= i < 10) for i in range(20)])
    assert [s.fault_point for s in states[:5]] == [None] * 5
    assert {s.fault_point for s in states[5:12]} == {T0 + timedelta(seconds=5)}
    assert states[-1].fault_point is None and states[-1].max_level == L.NONE


def test_config_validation_and_presets() -> None:
    with pytest.raises(ConfigError):
        AlarmConfig.nmc().with_rule(F.LOW_SOC, Rule((Threshold(L.LEVEL_1, 10, 8),)))  # clear below set (LOW)
    with pytest.raises(ConfigError):
        AlarmConfig.nmc().with_rule(F.BRAKE_SYSTEM, Rule((Threshold(L.LEVEL_1, 1, 0),)))  # no measured input
    with pytest.raises(ConfigError):
        AlarmConfig.nmc().with_rule(F.LOW_SOC, Rule(debounce=Debounce(set_samples=0)))
    lfp = AlarmEngine(AlarmConfig.lfp())
    lfp_cells = [3.3] * N_CELLS
    lfp_cells[2] = 3.72
    states = feed(lfp, [snap(i, cells=lfp_cells, total_voltage=330.0) for i in range(2)])
    assert states[-1].levels[F.CELL_OVERVOLTAGE] == L.LEVEL_2
    assert not feed(AlarmEngine(), [snap(i, cells=[3.72] * N_CELLS, total_voltage=372.0) for i in range(2)])[
        -1
    ].flags


def test_unmapped_inputs_raise_nothing() -> None:
    s = AlarmEngine().update(Snapshot(time=T0))
    assert s == AlarmState()


def test_nan_readings_count_as_stale() -> None:
    engine = AlarmEngine()
    feed(engine, [snap(i, temps=[62.0] * 8, soc=4.0) for i in range(3)])
    nan = float("nan")
    for i in range(3, 10):
        s = engine.update(snap(i, temps=[nan] * 8, soc=nan))
        assert s.levels[F.BATTERY_HIGH_TEMPERATURE] == L.LEVEL_3 and s.levels[F.LOW_SOC] == L.LEVEL_2
