"""The simulated vehicle: driver, powertrain, battery, thermal, charging, HV safety, 12 V and GNSS."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from sim.vehicle import powertrain as pt
from sim.vehicle.battery import Pack
from sim.vehicle.config import VehicleConfig
from sim.vehicle.cycles import CYCLE_NAMES, DriveCycle, load_cycle
from sim.vehicle.faults import Faults
from sim.vehicle.route import Route
from sim.vehicle.state import ChargeMode, Gear, MotorState, VehicleState

if TYPE_CHECKING:
    from sim.scenarios import Scenario

log = logging.getLogger(__name__)

CHARGE_PROFILES: tuple[str, ...] = ("ac-charge", "dc-charge")
PROFILES: tuple[str, ...] = (*CYCLE_NAMES, "park", *CHARGE_PROFILES)

KP = 0.8          # driver: proportional gain on the speed error (1/s); KP*dt < 2 keeps it stable
KI = 0.05         # driver: integral gain (1/s^2)
THERMAL_RUNAWAY_ONSET_C = 90.0   # exothermic side reactions start (SEI/anode)
THERMAL_EVENT_C = 120.0          # reported as a thermal event
VENT_C = 160.0                   # separator collapse: the cell is lost (0 V)
OVERCHARGE_ONSET_V = 4.45        # electrolyte oxidation / lithium plating heat above this rest voltage
# thermal protection (derate from, trip at, reset below) in degC
MOTOR_PROTECT = (150.0, 180.0, 160.0)
INVERTER_PROTECT = (90.0, 105.0, 90.0)
DCDC_PROTECT = (95.0, 105.0, 90.0)
EMPTY_OCV_V = 3.00               # BMS opens the contactors when a cell's rest voltage falls below this
DEAD_OCV_V = 2.30                # ... even without BMS protection (cell fuse / controller brown-out)


@dataclass(frozen=True)
class _ProfileStart:
    soc_pct: float
    cell_dt_c: float = 0.0       # initial temperatures above ambient
    motor_dt_c: float = 0.0
    inverter_dt_c: float = 0.0
    dcdc_dt_c: float = 0.0


_STARTS: dict[str, _ProfileStart] = {
    "drive": _ProfileStart(80.0, 0.0, 2.0, 2.0, 2.0),
    "park": _ProfileStart(60.0, 7.0, 35.0, 25.0, 15.0),    # just parked after a drive
    "ac-charge": _ProfileStart(30.0, 3.0, 10.0, 8.0, 5.0),
    "dc-charge": _ProfileStart(20.0, 5.0, 20.0, 15.0, 8.0),
}


def _kind(profile: str) -> str:
    if profile in CYCLE_NAMES:
        return "drive"
    return profile


class Vehicle:
    """A battery-electric vehicle following a profile (drive cycle, parked, or a charging session).

    ``step(dt)`` advances every model by ``dt`` seconds (0.01..1 s) and returns the new ``VehicleState``.
    Deterministic for a given ``seed``.
    """

    def __init__(self, config: VehicleConfig, profile: str, *, seed: int, scenario: str | None = None,
                 start_utc: datetime | None = None, scenario_start_s: float | None = None) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        self.config = config
        self.start_utc = start_utc or datetime(2026, 1, 1, tzinfo=UTC)
        self.scenario: Scenario | None = None
        self.scenario_start_s = 0.0
        scenario_soc: float | None = None
        if scenario is not None:
            from sim.scenarios import SCENARIOS  # late: sim.scenarios imports this package

            if scenario not in SCENARIOS:
                raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
            sc = SCENARIOS[scenario]
            self.scenario = sc
            self.scenario_start_s = sc.start_s if scenario_start_s is None else scenario_start_s
            if (sc.needs == "charge" and profile not in CHARGE_PROFILES) or \
                    (sc.needs == "drive" and profile not in CYCLE_NAMES):
                log.warning("scenario %s needs a %s profile; running %s instead of %s",
                            sc.name, sc.needs, sc.default_profile, profile)
                profile = sc.default_profile
            scenario_soc = sc.initial_soc_pct
        self.profile = profile
        self._kind = _kind(profile)
        start = _STARTS[self._kind]
        soc0 = config.initial_soc_pct if config.initial_soc_pct is not None else (
            scenario_soc if scenario_soc is not None else start.soc_pct)
        self.rng = np.random.default_rng(seed)
        sc0 = self.scenario
        amb = sc0.ambient_c if sc0 is not None and sc0.ambient_c is not None else config.ambient_c
        self.ambient_c = amb
        pack_c = sc0.pack_temp_c if sc0 is not None and sc0.pack_temp_c is not None \
            else amb + start.cell_dt_c
        self.pack = Pack(config, self.rng, soc0, pack_c)
        self.pack.coolant_c = pack_c
        self.cycle: DriveCycle | None = load_cycle(profile) if self._kind == "drive" else None
        self.route = Route()
        self.faults = Faults()
        self._weak_applied = False
        self._blocked_applied: int | None = None
        n_m = config.n_motors
        motor_c = sc0.motor_temp_c if sc0 is not None and sc0.motor_temp_c is not None \
            else amb + start.motor_dt_c
        inverter_c = sc0.inverter_temp_c if sc0 is not None and sc0.inverter_temp_c is not None \
            else amb + start.inverter_dt_c
        self.motor_temp = [motor_c] * n_m
        self.inverter_temp = [inverter_c] * n_m
        self.dcdc_temp = amb + start.dcdc_dt_c
        self.motor_tripped = [False] * n_m
        self.dcdc_tripped = False
        self.hv_shutdown = False          # battery empty: the BMS opened the contactors (latched)
        self.tm_heating = False
        self.tm_heater_w = 0.0            # coolant heater power requested by thermal management
        self.lv_soc = 0.85
        self.insulation_base = float(self.rng.uniform(25000.0, 55000.0))
        self.insulation = self.insulation_base
        self.soc_bms = float(np.mean(self.pack.soc_pct))
        self.cap_bms_ah = float(np.mean(self.pack.capacity_ah))
        self.t = 0.0
        self.v = 0.0
        self.distance_m = 0.0
        self.e_int = 0.0
        self.charge_mode = {"ac-charge": ChargeMode.AC, "dc-charge": ChargeMode.DC}.get(
            profile, ChargeMode.NONE)
        self.in_cv = False
        self.heading = self.route.at(0.0).heading_deg
        self._e = dict.fromkeys(("batt", "chem", "lbat", "lmot", "ldl", "aux", "brake", "chg",
                                 "wheels"), 0.0)
        self._probe_starts = (np.arange(config.n_temp_probes) * config.n_cells) // config.n_temp_probes
        self._probe_counts = np.diff(np.append(self._probe_starts, config.n_cells)).astype(np.float64)
        self._state = self._snapshot(key_on=self._kind == "drive", ready=False, contactors=False,
                                     accel=0.0, brake=0.0, motors=self._motor_states(
                                         [0.0] * n_m, [False] * n_m, 0.0, [0.0] * n_m),
                                     pack_i=0.0, dcdc_on=False, chg_v=0.0, chg_i=0.0, chg_pmax=0.0,
                                     limits=(0.0, 0.0), grade=0.0, lv_v=12.6)

    @property
    def state(self) -> VehicleState:
        """The snapshot after the last step."""
        return self._state

    @property
    def utc(self) -> datetime:
        """Wall-clock time of the current state (``start_utc`` + simulated time)."""
        return self.start_utc + timedelta(seconds=self.t)

    # ------------------------------------------------------------------ step
    def step(self, dt: float) -> VehicleState:
        """Advance the physics by ``dt`` seconds and return the new snapshot."""
        if not 0.0 < dt <= 5.0:
            raise ValueError("dt must be in (0, 5] s")
        t0 = self.t
        self.t = t0 + dt
        self._apply_scenario()
        if self._kind == "drive":
            self._state = self._step_drive(t0, dt)
        elif self._kind == "park":
            self._state = self._step_park(dt)
        else:
            self._state = self._step_charge(dt)
        return self._state

    # ------------------------------------------------------------------ faults
    def _apply_scenario(self) -> None:
        sc = self.scenario
        f = self.faults
        if sc is not None and self.t >= self.scenario_start_s:
            sc.activate(f, self.t - self.scenario_start_s)
        pack = self.pack
        if f.weak_cell is not None and not self._weak_applied:
            k = f.weak_cell % pack.n          # scenarios name cells of the default 96s pack
            pack.capacity_ah[k] *= f.weak_cell_capacity_factor
            pack.r0_25[k] *= f.weak_cell_resistance_factor
            pack.r1_25[k] *= f.weak_cell_resistance_factor
            pack.invalidate()
            self._weak_applied = True
        if f.blocked_module != self._blocked_applied:
            pack.ua_coolant = pack.ua_coolant_nominal.copy()
            if f.blocked_module is not None:
                n_mod = int(pack.module[-1]) + 1
                pack.ua_coolant[pack.module == f.blocked_module % n_mod] *= 0.02
            self._blocked_applied = f.blocked_module
        if f.internal_short_cell is not None:
            k = f.internal_short_cell % pack.n
            pack.leak_a[k] = 0.0 if pack.vented[k] else self.config.self_discharge_a + f.internal_short_a
        # exothermic reactions above the onset temperature, electrolyte oxidation in over-charged cells;
        # venting destroys the cell
        hot_cells = float(pack.temp_c.max()) > THERMAL_RUNAWAY_ONSET_C
        overcharged = float(pack.soc_pct.max()) > 100.0
        if hot_cells or overcharged:
            heat = np.zeros(pack.n)
            if hot_cells:
                heat += np.minimum(30.0 * np.exp((pack.temp_c - THERMAL_RUNAWAY_ONSET_C) / 12.0), 30000.0) \
                    * (pack.temp_c > THERMAL_RUNAWAY_ONSET_C)
            if overcharged:
                heat += np.minimum(np.exp((pack.open_circuit() - OVERCHARGE_ONSET_V) / 0.06) - 1.0, 3000.0) \
                    * (pack.open_circuit() > OVERCHARGE_ONSET_V)
            pack.extra_heat_w = np.where(pack.vented, 0.0, heat)
            newly = (pack.temp_c > VENT_C) & ~pack.vented
            if newly.any():
                pack.vented |= newly
                pack.invalidate()
                pack.leak_a = np.where(pack.vented, 0.0, pack.leak_a)
                log.warning("cell(s) %s vented at t=%.1f s", np.flatnonzero(newly).tolist(), self.t)
        elif pack.extra_heat_w.any():
            pack.extra_heat_w = np.zeros(pack.n)

    # ------------------------------------------------------------------ modes
    def _aux_power(self, dcdc_on: bool) -> tuple[float, float]:
        """(HV auxiliary power incl. DC-DC input, DC-DC loss) in W."""
        cfg = self.config
        f = self.faults
        eff = f.dcdc_efficiency if f.dcdc_efficiency is not None else cfg.dcdc_efficiency
        dcdc_in = cfg.lv_load_w / eff if dcdc_on else 0.0
        # thermal management warms a cold pack with the coolant heater (hysteresis 10..15 degC)
        t_min = float(self.pack.temp_c.min())
        self.tm_heating = t_min < (15.0 if self.tm_heating else 10.0)
        self.tm_heater_w = cfg.pack_heater_w if self.tm_heating else 0.0
        return (cfg.aux_hv_w + f.extra_aux_w + dcdc_in + self.tm_heater_w,
                dcdc_in - (cfg.lv_load_w if dcdc_on else 0.0))

    def _step_drive(self, t0: float, dt: float) -> VehicleState:
        cfg = self.config
        f = self.faults
        assert self.cycle is not None
        v = self.v
        min_rest_v = float((self.pack.open_circuit() - self.pack.v1).min())
        if not self.hv_shutdown and (min_rest_v < DEAD_OCV_V or (
                min_rest_v < EMPTY_OCV_V and not f.discharge_cutoff_disabled)):
            log.warning("battery empty at t=%.0f s: contactors open", self.t)
            self.hv_shutdown = True
        contactors = not f.hvil_open and not self.hv_shutdown and self.t >= 0.3
        ready = contactors and self.t >= 0.5
        dcdc_on = contactors and not f.dcdc_failed and not self._dcdc_trip()
        where = self.route.at(self.distance_m)
        aero, roll, grade_f = pt.road_load_n(cfg, v, where.grade)
        f_res = aero + roll + grade_f
        m_eff = cfg.mass_kg * (1.0 + cfg.rotating_mass_factor)
        # --- driver: feed-forward on the trace slope + PI on the speed error ---
        v_ref = self.cycle.speed_ms(t0)
        v_next = self.cycle.speed_ms(t0 + dt)
        err = v_ref - v
        self.e_int = min(max(self.e_int + err * dt, -2.0), 2.0)
        a_cmd = (v_next - v_ref) / dt + KP * err + KI * self.e_int
        f_des = m_eff * a_cmd + f_res
        omega = pt.motor_speed_rad_s(cfg, v)
        n_m = cfg.n_motors
        derate = self._motor_derating()
        t_max = sum(derate) * pt.motor_max_torque(cfg, omega)
        eta = cfg.driveline_efficiency
        r = cfg.wheel_radius_m
        f_trac_max = t_max * cfg.gear_ratio * eta / r
        f_brake_max = cfg.mass_kg * cfg.max_brake_decel_ms2
        if v_next <= 0.01 and v < 0.5:
            accel, brake = 0.0, 0.3       # hold the car at standstill
            self.e_int = 0.0
        elif f_des >= 0.0:
            accel, brake = min(1.0, f_des / f_trac_max) if f_trac_max > 0 else 0.0, 0.0
        else:
            accel, brake = 0.0, min(1.0, -f_des / f_brake_max)
        # --- BMS limits and powertrain ---
        i_dis, i_chg = self.pack.current_limits(
            dt, use_mean=f.cell_supervision_lost, v_max=cfg.cell_v_max,
            v_min=None if f.discharge_cutoff_disabled else cfg.cell_v_min)
        e, rp = self.pack.emf_and_r()
        p_dis_max = e * i_dis - rp * i_dis * i_dis
        p_chg_max = e * i_chg + rp * i_chg * i_chg
        p_aux, dcdc_loss = self._aux_power(dcdc_on) if contactors else (0.0, 0.0)
        drive_shares = self._shares((1.0,) if n_m == 1 else (0.4, 0.6), derate)
        regen_shares = self._shares((1.0,) if n_m == 1 else (0.5, 0.5), derate)
        torque = 0.0
        f_brake_req = brake * f_brake_max
        f_regen = 0.0
        if ready and accel > 0.0:
            t_lim = pt.torque_for_dc_power(cfg, drive_shares, omega, p_dis_max - p_aux)
            torque = min(accel * t_max, t_lim)
        elif ready and f_brake_req > 0.0 and omega > 0.0:
            t_regen = sum(derate) * pt.motor_max_regen_torque(cfg, omega, v * 3.6)
            t_regen = min(t_regen, (p_chg_max + p_aux) / (omega * (1.0 - cfg.inverter_rel_loss)))
            f_regen = min(f_brake_req, t_regen * cfg.gear_ratio / (eta * r))
            torque = -f_regen * r * eta / cfg.gear_ratio
        f_friction = f_brake_req - f_regen
        if f.brake_fault:
            f_friction = min(f_friction, 0.3 * f_brake_max)
        shares = drive_shares if torque >= 0.0 else regen_shares
        motor_t = [torque * s for s in shares]
        # --- longitudinal dynamics ---
        f_wheel = torque * cfg.gear_ratio * (eta if torque >= 0.0 else 1.0 / eta) / r
        a = (f_wheel - f_res - f_friction) / m_eff
        v_new = max(0.0, v + a * dt)
        if v_new == 0.0 and v == 0.0:
            f_friction = 0.0
        v_avg = 0.5 * (v + v_new)
        ds = v_avg * dt
        self.distance_m += ds
        self.v = v_new
        # --- electrical: powers over the step at the mean speed ---
        omega_avg = pt.motor_speed_rad_s(cfg, v_avg)
        p_dc = p_aux
        loss_m = [0.0] * n_m
        loss_i = [0.0] * n_m
        enabled = [ready and not self.motor_tripped[k] for k in range(n_m)]
        for k in range(n_m):
            if enabled[k]:
                lm, li = pt.motor_loss_w(cfg, motor_t[k], omega_avg)
                if k == 0:     # fault losses grow with the load (winding / switching currents)
                    load = 0.2 + 0.8 * abs(motor_t[k]) / cfg.motor_peak_torque_nm
                    lm += f.motor_extra_loss_w * load
                    li += f.inverter_extra_loss_w * load
                loss_m[k], loss_i[k] = lm, li
                p_dc += motor_t[k] * omega_avg + lm + li
        i_pack = self.pack.current_for_power(p_dc) if contactors else 0.0
        p_batt = (e - rp * i_pack) * i_pack
        p_mech = torque * omega_avg
        p_wheel = f_wheel * v_avg
        en = self._e
        en["wheels"] += p_wheel * dt
        en["ldl"] += (p_mech - p_wheel) * dt
        en["lmot"] += (sum(loss_m) + sum(loss_i)) * dt
        en["aux"] += p_aux * dt
        en["brake"] += f_friction * ds
        self._battery_bookkeeping(i_pack, p_batt, dt)
        self.pack.step_electrical(i_pack, dt)
        self._step_thermal(dt, pump_on=contactors, losses=(loss_m, loss_i), dcdc_loss=dcdc_loss)
        lv_v = self._step_lv(dt, dcdc_on, key_on=True)
        self._step_insulation(dt)
        motors = self._motor_states(motor_t, enabled, i_pack, [
            (motor_t[k] * omega_avg + loss_m[k] + loss_i[k]) for k in range(n_m)])
        return self._snapshot(key_on=True, ready=ready, contactors=contactors, accel=accel * 100.0,
                              brake=brake * 100.0, motors=motors, pack_i=i_pack, dcdc_on=dcdc_on,
                              chg_v=0.0, chg_i=0.0, chg_pmax=0.0, limits=(i_chg, i_dis),
                              grade=where.grade, lv_v=lv_v)

    def _step_park(self, dt: float) -> VehicleState:
        n_m = self.config.n_motors
        self.pack.step_electrical(0.0, dt)
        self._step_thermal(dt, pump_on=False, losses=([0.0] * n_m, [0.0] * n_m), dcdc_loss=0.0)
        lv_v = self._step_lv(dt, False, key_on=False)
        self._step_insulation(dt)
        return self._snapshot(key_on=False, ready=False, contactors=False, accel=0.0, brake=0.0,
                              motors=self._motor_states([0.0] * n_m, [False] * n_m, 0.0, [0.0] * n_m),
                              pack_i=0.0, dcdc_on=False, chg_v=0.0, chg_i=0.0, chg_pmax=0.0,
                              limits=(0.0, 0.0), grade=self.route.at(self.distance_m).grade, lv_v=lv_v)

    def _step_charge(self, dt: float) -> VehicleState:
        cfg = self.config
        f = self.faults
        n_m = cfg.n_motors
        ac = self.profile == "ac-charge"
        p_max = (cfg.obc_power_kw * cfg.obc_efficiency if ac else cfg.dc_charger_power_kw) * 1000.0
        i_max = cfg.obc_max_current_a if ac else cfg.dc_charger_max_current_a
        target = cfg.ac_target_soc_pct if ac else cfg.dc_target_soc_pct
        if f.charge_cv_setpoint_v is not None:
            target = math.inf    # the BMS believes the voltage, not its SOC: charges until CV cut-off
        charging = self.charge_mode in (ChargeMode.AC, ChargeMode.DC)
        v_max = f.charge_cv_setpoint_v if f.charge_cv_setpoint_v is not None else cfg.cell_v_max
        i_dis, i_bms = self.pack.current_limits(dt, use_mean=f.cell_supervision_lost, v_max=v_max,
                                                v_min=cfg.cell_v_min)
        e, rp = self.pack.emf_and_r()
        i_chg = 0.0
        dcdc_on = charging and not f.dcdc_failed and not self._dcdc_trip()
        p_aux, dcdc_loss = self._aux_power(dcdc_on) if charging else (0.0, 0.0)
        if charging:
            # the charger feeds the auxiliaries (DC-DC, pumps, pack heater) on top of the battery current
            v_est = e + rp * min(i_bms, i_max)
            i_aux = p_aux / v_est
            i_cc = min(i_max, p_max / v_est)              # charger's own CC limit (power and current)
            if f.charge_never_stops:
                i_bat = min(i_cc - i_aux, 0.3 * self.cap_bms_ah)
            else:
                i_bat = min(i_cc - i_aux, i_bms)
                head = i_bms < i_cc - i_aux
                self.in_cv = self.in_cv or (head and self.soc_bms > 50.0)
                done = self.soc_bms >= target or (self.in_cv and i_bat < cfg.charge_cutoff_c
                                                 * self.cap_bms_ah)
                if done:
                    log.info("charge complete at t=%.0f s, SOC %.1f %%", self.t, self.soc_bms)
                    self.charge_mode = ChargeMode.COMPLETE
                    charging = dcdc_on = False
                    p_aux, dcdc_loss = 0.0, 0.0
            if charging:
                i_chg = max(0.0, i_bat + i_aux)
        contactors = charging
        i_pack = 0.0
        if charging:
            i_pack = p_aux / (e - rp * (i_aux - i_chg)) - i_chg
        p_batt = (e - rp * i_pack) * i_pack
        v_bus = e - rp * i_pack
        self._e["aux"] += p_aux * dt
        self._e["chg"] += v_bus * i_chg * dt
        self._battery_bookkeeping(i_pack, p_batt, dt)
        self.pack.step_electrical(i_pack, dt)
        self._step_thermal(dt, pump_on=charging, losses=([0.0] * n_m, [0.0] * n_m), dcdc_loss=dcdc_loss)
        lv_v = self._step_lv(dt, dcdc_on, key_on=False)
        self._step_insulation(dt)
        pack_v = float(self.pack.terminal_v.sum())
        return self._snapshot(key_on=False, ready=False, contactors=contactors, accel=0.0, brake=0.0,
                              motors=self._motor_states([0.0] * n_m, [False] * n_m, 0.0, [0.0] * n_m),
                              pack_i=i_pack, dcdc_on=dcdc_on,
                              chg_v=pack_v if charging else 0.0, chg_i=i_chg,
                              chg_pmax=p_max / 1000.0, limits=(i_bms, i_dis),
                              grade=self.route.at(self.distance_m).grade, lv_v=lv_v)

    # ------------------------------------------------------------------ sub-models
    def _battery_bookkeeping(self, i_pack: float, p_batt: float, dt: float) -> None:
        pack = self.pack
        r0, _ = pack.resistances()
        loss = i_pack * i_pack * float(r0.sum()) + i_pack * float(pack.v1.sum())
        en = self._e
        en["batt"] += p_batt * dt
        en["lbat"] += loss * dt
        en["chem"] += (p_batt + loss) * dt
        self.soc_bms -= i_pack * dt / (36.0 * self.cap_bms_ah)

    def _step_thermal(self, dt: float, *, pump_on: bool, losses: tuple[list[float], list[float]],
                      dcdc_loss: float) -> None:
        cfg = self.config
        f = self.faults
        amb = self.ambient_c
        heater = f.coolant_heater_w + (self.tm_heater_w if pump_on else 0.0)
        self.pack.step_thermal(dt, pump_on=pump_on or f.coolant_heater_w > 0.0, ambient_c=amb,
                               chiller=pump_on, heater_w=heater,
                               chiller_forced=f.chiller_stuck_on, cooling_lost=f.battery_cooling_lost)
        t_loop = amb + 3.0 if pump_on else amb           # powertrain coolant (radiator outlet)
        flow = 1.0 if pump_on else 0.3                   # natural convection only when parked
        for k in range(cfg.n_motors):
            ua_m = cfg.motor_ua_w_k * flow * (0.03 if f.motor_cooling_lost and k == 0 else 1.0)
            ua_i = cfg.inverter_ua_w_k * flow * (0.03 if f.inverter_cooling_lost and k == 0 else 1.0)
            self.motor_temp[k] += (losses[0][k] - ua_m * (self.motor_temp[k] - t_loop)) * dt \
                / cfg.motor_heat_capacity_j_k
            self.inverter_temp[k] += (losses[1][k] - ua_i * (self.inverter_temp[k] - t_loop)) * dt \
                / cfg.inverter_heat_capacity_j_k
        ua_d = cfg.dcdc_ua_w_k * flow * (0.05 if f.dcdc_cooling_lost else 1.0)
        self.dcdc_temp += (dcdc_loss - ua_d * (self.dcdc_temp - t_loop)) * dt / cfg.dcdc_heat_capacity_j_k

    def _step_lv(self, dt: float, dcdc_on: bool, *, key_on: bool) -> float:
        """12 V battery: charged by the DC-DC (14.0 V) or discharged by the LV load."""
        cfg = self.config
        if dcdc_on:
            self.lv_soc = min(1.0, self.lv_soc + 5.0 * dt / (3600.0 * cfg.lv_battery_ah))
            return 14.0
        i_lv = cfg.lv_load_w / 12.5 if key_on else 0.03
        self.lv_soc = max(0.0, self.lv_soc - i_lv * dt / (3600.0 * cfg.lv_battery_ah))
        return 11.9 + 0.8 * self.lv_soc - 0.01 * i_lv

    def _step_insulation(self, dt: float) -> None:
        """Insulation resistance: slow mean-reverting drift, exponential drop to a fault value."""
        f = self.faults
        self.insulation_base += float(self.rng.normal(0.0, 20.0)) * math.sqrt(dt) \
            - (self.insulation_base - 40000.0) * dt / 36000.0
        self.insulation_base = min(max(self.insulation_base, 20000.0), 60000.0)
        target, tau = (f.insulation_target_kohm, 20.0) if f.insulation_target_kohm is not None \
            else (self.insulation_base, 300.0)
        self.insulation += (target - self.insulation) * (1.0 - math.exp(-dt / tau))

    def _motor_states(self, torques: list[float], enabled: list[bool], i_pack: float,
                      p_dc: list[float]) -> tuple[MotorState, ...]:
        cfg = self.config
        rpm = self.v / (2.0 * math.pi * cfg.wheel_radius_m) * 60.0 * cfg.gear_ratio
        v_bus = float(self.pack.terminal_v.sum()) if i_pack != 0.0 or any(enabled) else 0.0
        return tuple(MotorState(speed_rpm=rpm, torque_nm=torques[k],
                                motor_temp_c=self.motor_temp[k], inverter_temp_c=self.inverter_temp[k],
                                dc_voltage_v=v_bus if enabled[k] else 0.0,
                                dc_current_a=p_dc[k] / v_bus if enabled[k] and v_bus > 0 else 0.0,
                                enabled=enabled[k])
                     for k in range(cfg.n_motors))

    def _motor_derating(self) -> list[float]:
        """Torque available per motor (0..1) from motor and inverter temperatures, with trip latches."""
        out = []
        for k in range(self.config.n_motors):
            tm, ti = self.motor_temp[k], self.inverter_temp[k]
            if self.motor_tripped[k]:
                self.motor_tripped[k] = tm > MOTOR_PROTECT[2] or ti > INVERTER_PROTECT[2]
            elif tm >= MOTOR_PROTECT[1] or ti >= INVERTER_PROTECT[1]:
                log.warning("motor %d over-temperature trip at t=%.0f s", k, self.t)
                self.motor_tripped[k] = True
            if self.motor_tripped[k]:
                out.append(0.0)
                continue
            fm = (MOTOR_PROTECT[1] - tm) / (MOTOR_PROTECT[1] - MOTOR_PROTECT[0])
            fi = (INVERTER_PROTECT[1] - ti) / (INVERTER_PROTECT[1] - INVERTER_PROTECT[0])
            out.append(min(1.0, max(0.0, fm), max(0.0, fi)))
        return out

    @staticmethod
    def _shares(nominal: tuple[float, ...], derate: list[float]) -> tuple[float, ...]:
        """Torque split over the motors that are still available (re-normalised)."""
        w = [n * (1.0 if d > 0.0 else 0.0) for n, d in zip(nominal, derate, strict=True)]
        total = sum(w)
        return tuple(x / total for x in w) if total > 0.0 else tuple(0.0 for _ in w)

    def _dcdc_trip(self) -> bool:
        """DC-DC thermal protection with hysteresis."""
        if self.dcdc_tripped:
            self.dcdc_tripped = self.dcdc_temp > DCDC_PROTECT[2]
        elif self.dcdc_temp >= DCDC_PROTECT[1]:
            log.warning("DC-DC over-temperature trip at t=%.0f s", self.t)
            self.dcdc_tripped = True
        return self.dcdc_tripped

    def _gear(self, ready: bool) -> Gear:
        """D while ready; a car that lost propulsion while moving coasts in N until it stops, then P."""
        if ready:
            return Gear.DRIVE
        return Gear.NEUTRAL if self.v > 0.3 else Gear.PARK

    def _snapshot(self, *, key_on: bool, ready: bool, contactors: bool, accel: float, brake: float,
                  motors: tuple[MotorState, ...], pack_i: float, dcdc_on: bool, chg_v: float,
                  chg_i: float, chg_pmax: float, limits: tuple[float, float], grade: float,
                  lv_v: float) -> VehicleState:
        pack = self.pack
        f = self.faults
        cells = pack.terminal_v.copy()
        temps = np.add.reduceat(pack.temp_c, self._probe_starts) / self._probe_counts
        where = self.route.at(self.distance_m)
        if self.v > 0.3:
            self.heading = where.heading_deg
        en = self._e
        soc = min(100.0, max(0.0, self.soc_bms + f.soc_offset_pct))
        return VehicleState(
            t=self.t, key_on=key_on, ready=ready, gear=self._gear(ready),
            speed_kmh=self.v * 3.6, odometer_km=self.config.initial_odometer_km + self.distance_m / 1000.0,
            accel_pedal_pct=accel, brake_pedal_pct=brake, brake_fault=f.brake_fault,
            dcdc_active=dcdc_on, dcdc_temp_c=self.dcdc_temp, dcdc_fault=f.dcdc_failed, lv_voltage_v=lv_v,
            pack_voltage_v=float(cells.sum()), pack_current_a=pack_i, soc_pct=soc,
            cell_voltages_v=cells, cell_temps_c=temps, insulation_kohm=min(self.insulation, 60000.0),
            hv_interlock_closed=not f.hvil_open, main_contactors_closed=contactors,
            bms_fault_codes=self._fault_codes(), motors=motors, charge_mode=self.charge_mode,
            charger_voltage_v=chg_v, charger_current_a=chg_i, charger_max_power_kw=chg_pmax,
            latitude_deg=where.latitude_deg, longitude_deg=where.longitude_deg,
            altitude_m=where.altitude_m, heading_deg=self.heading, gnss_fix=not f.gnss_lost,
            energy_battery_j=en["batt"], energy_wheels_j=en["wheels"], energy_chemical_j=en["chem"],
            energy_loss_battery_j=en["lbat"], energy_loss_motor_j=en["lmot"],
            energy_loss_driveline_j=en["ldl"], energy_aux_j=en["aux"], energy_brake_j=en["brake"],
            energy_charger_j=en["chg"], cell_soc_mean_pct=float(pack.soc_pct.mean()),
            coolant_temp_c=pack.coolant_c, ambient_temp_c=self.ambient_c, grade_pct=grade * 100.0,
            bms_max_charge_a=limits[0], bms_max_discharge_a=limits[1],
            thermal_event=bool(pack.vented.any() or float(pack.temp_c.max()) > THERMAL_EVENT_C),
        )

    def _fault_codes(self) -> tuple[int, ...]:
        """OEM diagnostic codes the BMS reports (numbers of our DBC's BMS_FaultCode table)."""
        f = self.faults
        codes = []
        if f.hvil_open:
            codes.append(0x0A0A)
        if f.insulation_target_kohm is not None and self.insulation < 500.0 * 0.35 * 1000:
            codes.append(0x0AA6)
        if f.internal_short_cell is not None and f.internal_short_a > 5.0:
            codes.append(0x0B3B)
        return tuple(codes)
