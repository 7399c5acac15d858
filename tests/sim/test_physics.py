"""Physics of the simulated vehicle, checked on real simulated runs."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from sim.vehicle import PROFILES, ChargeMode, Vehicle, VehicleConfig, VehicleState
from sim.vehicle.cycles import load_cycle
from sim.vehicle.powertrain import road_load_n

CFG = VehicleConfig()


def run(profile: str, seconds: float, dt: float, *, seed: int = 7, cfg: VehicleConfig = CFG,
        stop: str | None = None) -> tuple[Vehicle, list[VehicleState]]:
    v = Vehicle(cfg, profile, seed=seed)
    states = [v.state]
    for _ in range(round(seconds / dt)):
        s = v.step(dt)
        states.append(s)
        if stop == "complete" and s.charge_mode is ChargeMode.COMPLETE:
            break
    return v, states


@pytest.fixture(scope="module")
def wltc() -> tuple[Vehicle, list[VehicleState]]:
    return run("wltc3", 1800.0, 0.1)


@pytest.fixture(scope="module")
def nedc() -> tuple[Vehicle, list[VehicleState]]:
    return run("nedc", 1180.0, 0.1)


def test_profiles_listed() -> None:
    assert {"nedc", "wltc3", "park", "ac-charge", "dc-charge"} <= set(PROFILES)


@pytest.mark.parametrize(("name", "duration", "km", "vmax"),
                         [("wltc3", 1800.0, 23.27, 131.3), ("nedc", 1180.0, 11.0, 120.0)])
def test_cycle_tables_match_published_figures(name: str, duration: float, km: float, vmax: float) -> None:
    c = load_cycle(name)
    assert c.duration_s == duration
    assert c.distance_km == pytest.approx(km, rel=0.01)
    assert c.max_speed_kmh == vmax


def test_pack_voltage_is_sum_of_cells(wltc: tuple[Vehicle, list[VehicleState]]) -> None:
    _, states = wltc
    worst = max(abs(s.pack_voltage_v - float(np.sum(s.cell_voltages_v))) for s in states)
    assert worst < 1e-9
    assert all(len(s.cell_voltages_v) == CFG.n_cells and len(s.cell_temps_c) == CFG.n_temp_probes
               for s in states[::500])


def test_soc_change_matches_integrated_current(wltc: tuple[Vehicle, list[VehicleState]]) -> None:
    v, states = wltc
    amp_s = sum(s.pack_current_a * 0.1 for s in states[1:])
    expected = amp_s / 3600.0 / float(np.mean(v.pack.capacity_ah)) * 100.0
    d_true = states[0].cell_soc_mean_pct - states[-1].cell_soc_mean_pct
    d_bms = states[0].soc_pct - states[-1].soc_pct
    assert d_true > 3.0                                  # a WLTC takes ~6-7 % of this battery
    assert d_true == pytest.approx(expected, abs=0.5)
    assert d_bms == pytest.approx(expected, abs=0.5)


def test_motor_speed_matches_vehicle_speed(wltc: tuple[Vehicle, list[VehicleState]]) -> None:
    _, states = wltc
    for s in states[::37]:
        rpm = s.speed_kmh / 3.6 / (2 * math.pi * CFG.wheel_radius_m) * 60 * CFG.gear_ratio
        assert all(m.speed_rpm == pytest.approx(rpm, rel=1e-9, abs=1e-9) for m in s.motors)
    assert max(s.motors[0].speed_rpm for s in states) > 10000        # 131 km/h


@pytest.mark.parametrize("fixture", ["wltc", "nedc"])
def test_energy_balance_and_distance(fixture: str, request: pytest.FixtureRequest) -> None:
    v, states = request.getfixturevalue(fixture)
    end = states[-1]
    # battery terminals = wheels + driveline + motor/inverter + auxiliaries
    accounted = end.energy_wheels_j + end.energy_loss_driveline_j + end.energy_loss_motor_j + end.energy_aux_j
    assert end.energy_battery_j == pytest.approx(accounted, rel=0.01)
    # cells' chemical energy = terminals + I^2R/polarisation losses
    assert end.energy_chemical_j == pytest.approx(end.energy_battery_j + end.energy_loss_battery_j, rel=0.01)
    assert 0 < end.energy_loss_battery_j < 0.05 * end.energy_battery_j
    # wheels: road load + friction brakes (start and end at rest, so no kinetic energy left)
    road = 0.0
    for a, b in itertools.pairwise(states):
        va, vb = a.speed_kmh / 3.6, b.speed_kmh / 3.6
        aero, roll, grade = road_load_n(CFG, va, b.grade_pct / 100.0)
        road += (aero + roll + grade) * 0.5 * (va + vb) * 0.1
    assert end.energy_wheels_j == pytest.approx(road + end.energy_brake_j, rel=0.05)
    # distance vs the published cycle distance
    km = end.odometer_km - CFG.initial_odometer_km
    assert km == pytest.approx(load_cycle(v.profile).distance_km, rel=0.03)
    # consumption of a mid-size BEV: 10..25 kWh/100 km at the battery
    assert 10.0 < end.energy_battery_j / 3.6e6 / km * 100 < 25.0


def test_step_size_independence() -> None:
    _, fine = run("wltc3", 600.0, 0.1)
    _, coarse = run("wltc3", 600.0, 1.0)
    assert coarse[-1].odometer_km == pytest.approx(fine[-1].odometer_km, abs=0.05)
    assert coarse[-1].energy_battery_j == pytest.approx(fine[-1].energy_battery_j, rel=0.05)
    _, tiny = run("wltc3", 30.0, 0.01)
    assert all(np.isfinite(s.pack_voltage_v) for s in tiny)


def test_temperatures_follow_losses(wltc: tuple[Vehicle, list[VehicleState]],
                                    nedc: tuple[Vehicle, list[VehicleState]]) -> None:
    w0, w1 = wltc[1][0], wltc[1][min(len(wltc[1]), len(nedc[1])) - 1]
    n1 = nedc[1][-1]
    assert w1.motors[0].motor_temp_c > w0.motors[0].motor_temp_c + 2.0
    assert w1.motors[0].inverter_temp_c > w0.motors[0].inverter_temp_c
    assert float(np.mean(w1.cell_temps_c)) > float(np.mean(w0.cell_temps_c))
    # WLTC is harder than NEDC: more loss power, hotter motor and cells
    we, ne = wltc[1][-1], n1
    assert we.energy_loss_motor_j / we.t > ne.energy_loss_motor_j / ne.t
    assert we.energy_loss_battery_j / we.t > ne.energy_loss_battery_j / ne.t
    assert max(s.motors[0].motor_temp_c for s in wltc[1]) > max(s.motors[0].motor_temp_c for s in nedc[1])
    assert max(float(np.max(s.cell_temps_c)) for s in wltc[1]) > max(float(np.max(s.cell_temps_c))
                                                                     for s in nedc[1])
    _, parked = run("park", 1180.0, 1.0)
    p0, p1 = parked[0], parked[-1]
    assert float(np.max(p1.cell_temps_c)) < float(np.max(p0.cell_temps_c))
    assert p1.motors[0].motor_temp_c < p0.motors[0].motor_temp_c - 5.0
    assert float(np.mean(p1.cell_temps_c)) < float(np.mean(w1.cell_temps_c)) + 10.0
    assert not p1.main_contactors_closed and not p1.key_on and p1.pack_current_a == 0.0
    assert p1.soc_pct <= p0.soc_pct and p1.lv_voltage_v < 12.8


def test_dc_charge_cc_taper_complete() -> None:
    cfg = replace(CFG, initial_soc_pct=20.0)
    _, states = run("dc-charge", 4 * 3600.0, 1.0, cfg=cfg, stop="complete")
    charging = [s for s in states[1:] if s.charge_mode is ChargeMode.DC]
    assert states[-1].charge_mode is ChargeMode.COMPLETE
    assert states[-1].soc_pct >= cfg.dc_target_soc_pct - 0.5
    i = np.array([s.charger_current_a for s in charging])
    p = np.array([s.charger_current_a * s.charger_voltage_v for s in charging])
    assert p.max() <= cfg.dc_charger_power_kw * 1000.0 * 1.001
    assert i.max() <= cfg.dc_charger_max_current_a + 1e-6
    assert i[:300].min() > 0.9 * i[:300].max()          # constant-current phase
    assert i[-1] < 0.5 * i.max()                         # tapered at high SOC
    assert max(float(np.max(s.cell_voltages_v)) for s in charging) < cfg.cell_v_max + 0.005
    assert all(s.pack_current_a < 0 and s.main_contactors_closed and not s.ready for s in charging)


def test_ac_charge_cc_then_cv_to_full() -> None:
    cfg = replace(CFG, initial_soc_pct=85.0)
    _, states = run("ac-charge", 6 * 3600.0, 1.0, cfg=cfg, stop="complete")
    charging = [s for s in states[1:] if s.charge_mode is ChargeMode.AC]
    assert states[-1].charge_mode is ChargeMode.COMPLETE
    assert states[-1].soc_pct > 98.0
    i = np.array([-s.pack_current_a for s in charging])          # into the battery
    vmax = np.array([float(np.max(s.cell_voltages_v)) for s in charging])
    p_out = np.array([s.charger_current_a * s.charger_voltage_v for s in charging])
    assert p_out.max() <= cfg.obc_power_kw * cfg.obc_efficiency * 1000.0 * 1.001
    cv = vmax > cfg.cell_v_max - 0.002
    assert cv.any() and not cv[:60].any()                # CC first, then CV
    k = int(np.argmax(cv))
    assert i[k:].max() <= i[:k].max() + 1e-6
    assert i[-1] < 0.6 * i[:k].mean()                    # current tapers in CV (to C/20)
    assert i[-1] <= cfg.charge_cutoff_c * cfg.cell_capacity_ah * 1.05
    assert np.all(np.diff(i[k + 5:]) <= 1e-3)
    assert vmax.max() < cfg.cell_v_max + 0.005


def test_determinism() -> None:
    _, a = run("wltc3", 60.0, 0.5, seed=11)
    _, b = run("wltc3", 60.0, 0.5, seed=11)
    _, c = run("wltc3", 60.0, 0.5, seed=12)
    for x, y in zip(a, b, strict=True):
        assert x.speed_kmh == y.speed_kmh and x.insulation_kohm == y.insulation_kohm
        assert np.array_equal(x.cell_voltages_v, y.cell_voltages_v)
        assert np.array_equal(x.cell_temps_c, y.cell_temps_c)
    assert not np.array_equal(a[-1].cell_voltages_v, c[-1].cell_voltages_v)
    va, vc = Vehicle(CFG, "park", seed=11), Vehicle(CFG, "park", seed=12)
    assert not np.array_equal(va.pack.capacity_ah, vc.pack.capacity_ah)
    spread = va.pack.capacity_ah / CFG.cell_capacity_ah - 1.0
    assert 0.002 < float(np.std(spread)) < 0.015 and float(np.max(np.abs(spread))) <= 0.021


def test_hv_and_gnss_signals(wltc: tuple[Vehicle, list[VehicleState]]) -> None:
    _v, states = wltc
    moving = [s for s in states if s.speed_kmh > 20]
    assert all(s.ready and s.main_contactors_closed and s.hv_interlock_closed and s.dcdc_active
               for s in moving)
    assert all(20000.0 <= s.insulation_kohm <= 60000.0 for s in states)
    assert all(13.5 < s.lv_voltage_v < 14.5 for s in moving)
    lat = np.array([s.latitude_deg for s in states])
    lon = np.array([s.longitude_deg for s in states])
    assert lat.min() > 30.2 and lat.max() < 30.3 and lon.min() > 120.1 and lon.max() < 120.2
    # position advances with the odometer: a 0.1 s step moves v*dt metres
    a, b = moving[100], moving[101]
    if a.t + 0.1 == pytest.approx(b.t):
        dn = (b.latitude_deg - a.latitude_deg) * math.pi / 180 * 6371000
        de = (b.longitude_deg - a.longitude_deg) * math.pi / 180 * 6371000 \
            * math.cos(math.radians(a.latitude_deg))
        assert math.hypot(dn, de) == pytest.approx((b.odometer_km - a.odometer_km) * 1000, rel=0.02)
        assert math.degrees(math.atan2(de, dn)) % 360 == pytest.approx(b.heading_deg, abs=0.5)
    assert max(abs(s.grade_pct) for s in states) > 0.5


def test_two_motors_share_the_torque() -> None:
    _, states = run("wltc3", 300.0, 0.5, cfg=replace(CFG, n_motors=2))
    s = max(states, key=lambda x: x.motors[0].torque_nm + x.motors[1].torque_nm)
    assert len(s.motors) == 2 and s.motors[0].torque_nm > 0 and s.motors[1].torque_nm > s.motors[0].torque_nm
    assert s.motors[0].speed_rpm == s.motors[1].speed_rpm


def test_cold_pack_is_heated_before_fast_charging() -> None:
    cfg = replace(CFG, ambient_c=-10.0, initial_soc_pct=20.0)
    _, states = run("dc-charge", 3600.0, 2.0, cfg=cfg)
    first, end = states[1], states[-1]
    assert first.bms_max_charge_a < 0.1 * end.bms_max_charge_a          # cold: hardly any charge current
    assert float(np.min(end.cell_temps_c)) > 5.0 and end.soc_pct > first.soc_pct + 20.0
    assert min(s.soc_pct for s in states[1:]) > first.soc_pct - 0.5    # the charger feeds the heater


def test_regen_is_limited_by_a_full_battery() -> None:
    _, normal = run("wltc3", 1800.0, 0.5)
    _, full = run("wltc3", 1800.0, 0.5, cfg=replace(CFG, initial_soc_pct=99.5))
    assert full[-1].energy_brake_j > 20 * normal[-1].energy_brake_j + 1e5     # friction brakes take over
    assert max(-s.pack_current_a for s in full) < 0.8 * max(-s.pack_current_a for s in normal)
    assert max(float(np.max(s.cell_voltages_v)) for s in full) < CFG.cell_v_max + 0.005
    assert all(-s.pack_current_a <= s.bms_max_charge_a + 1.0 for s in full[2:])
