"""Battery pack: per-cell equivalent circuits (OCV(SOC) + R0 + one RC pair) and per-cell thermal nodes.

All cells are numpy arrays; one ``step`` costs a few dozen vectorised operations whatever the cell count.
Sign convention: current ``i`` > 0 discharges the pack.
"""

from __future__ import annotations

import math

import numpy as np

from sim.vehicle.config import VehicleConfig
from sim.vehicle.state import FloatArray

# Open-circuit voltage of an NMC/graphite cell vs SOC (%), typical of published NMC 811/622 curves.
# Outside 0..100 % the curve continues steeply (over-charge / over-discharge regions used by faults).
OCV_SOC_PCT = np.array([-20.0, -10.0, -5.0, 0.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                        60.0, 70.0, 80.0, 90.0, 95.0, 100.0, 102.0, 105.0, 110.0, 120.0])
OCV_V = np.array([1.5, 2.2, 2.6, 3.00, 3.20, 3.35, 3.47, 3.54, 3.59, 3.65, 3.71, 3.77,
                  3.85, 3.94, 4.03, 4.11, 4.15, 4.20, 4.26, 4.36, 4.55, 4.80])

PTC_LIMIT_C = 85.0    # a PTC coolant heater's output falls to zero at this coolant temperature
R_TEMP_COEFF = 0.03   # resistance rises ~3 %/K below 25 degC (Arrhenius-like, simplified)


def ocv(soc_pct: FloatArray) -> FloatArray:
    """Open-circuit voltage (V) of cells at ``soc_pct``."""
    out: FloatArray = np.interp(soc_pct, OCV_SOC_PCT, OCV_V)
    return out


def charge_c_rate_limit(temp_c: float) -> float:
    """BMS charge C-rate allowed at a cell temperature (typical NMC derating table)."""
    return float(np.interp(temp_c, [-10.0, 0.0, 10.0, 20.0, 45.0, 50.0, 55.0],
                           [0.0, 0.05, 0.5, 1.0, 1.0, 0.4, 0.0]))


def discharge_c_rate_factor(temp_c: float) -> float:
    """Fraction of the peak discharge current allowed at a cell temperature."""
    return float(np.interp(temp_c, [-30.0, -10.0, 10.0, 50.0, 60.0, 65.0],
                           [0.2, 0.4, 1.0, 1.0, 0.3, 0.0]))


def soc_charge_taper(soc_pct: float) -> float:
    """Fraction of the charge current allowed at a SOC (fast-charge taper above ~75 %)."""
    return float(np.interp(soc_pct, [0.0, 75.0, 85.0, 95.0, 100.0], [1.0, 1.0, 0.6, 0.3, 0.1]))


class Pack:
    """Series string of cells with manufacturing spread, RC dynamics and lumped thermal model."""

    def __init__(self, cfg: VehicleConfig, rng: np.random.Generator, soc_pct: float,
                 temp_c: float) -> None:
        n = cfg.n_cells
        self.cfg = cfg
        self.n = n

        def spread(sigma: float) -> FloatArray:
            return 1.0 + np.clip(rng.normal(0.0, sigma, n), -3 * sigma, 3 * sigma)

        self.capacity_ah: FloatArray = cfg.cell_capacity_ah * spread(cfg.capacity_spread)
        r_factor = spread(cfg.resistance_spread)
        self.r0_25: FloatArray = cfg.cell_r0_ohm * r_factor
        self.r1_25: FloatArray = cfg.cell_r1_ohm * r_factor
        s = cfg.soc_spread_pct
        self.soc_pct: FloatArray = np.clip(soc_pct + np.clip(rng.normal(0.0, s, n), -3 * s, 3 * s),
                                           0.0, 100.0)
        self.v1: FloatArray = np.zeros(n)            # RC-pair voltage (V), > 0 while discharging
        self.temp_c: FloatArray = np.full(n, temp_c)
        self.leak_a: FloatArray = np.full(n, cfg.self_discharge_a)
        self.extra_heat_w: FloatArray = np.zeros(n)
        self.module: np.ndarray = np.arange(n) // cfg.cells_per_module
        n_mod = int(self.module[-1]) + 1
        mod_factor = np.clip(rng.normal(1.0, cfg.module_cooling_spread, n_mod), 0.6, 1.4)
        self.ua_coolant_nominal: FloatArray = cfg.cell_ua_coolant_w_k * mod_factor[self.module]
        self.ua_coolant: FloatArray = self.ua_coolant_nominal.copy()
        # neighbour conduction only inside a module
        self.same_module_link: FloatArray = (self.module[1:] == self.module[:-1]).astype(np.float64)
        self.vented = np.zeros(n, dtype=bool)        # cell destroyed by thermal runaway
        self.coolant_c = temp_c
        self._ocv: FloatArray | None = None
        self._res: tuple[FloatArray, FloatArray] | None = None
        self.terminal_v: FloatArray = self.open_circuit()
        self.heat_w: FloatArray = np.zeros(n)

    # --- electrical ---
    def invalidate(self) -> None:
        """Forget cached OCV/resistances (after changing cell parameters from outside)."""
        self._ocv = None
        self._res = None

    def open_circuit(self) -> FloatArray:
        """Cell open-circuit voltages (cached until the SOC changes)."""
        if self._ocv is None:
            v = ocv(self.soc_pct)
            if self.vented.any():
                v = np.where(self.vented, 0.3, v)
            self._ocv = v
        return self._ocv

    def resistances(self) -> tuple[FloatArray, FloatArray]:
        """(R0, R1) per cell at the cell temperatures (cached until the temperatures change)."""
        if self._res is None:
            f = np.exp(np.clip(R_TEMP_COEFF * (25.0 - self.temp_c), -0.5, 2.0))
            self._res = (self.r0_25 * f, self.r1_25 * f)
        return self._res

    def emf_and_r(self) -> tuple[float, float]:
        """Pack source voltage (sum of OCV - v1) and total ohmic resistance."""
        r0, _ = self.resistances()
        return float((self.open_circuit() - self.v1).sum()), float(r0.sum())

    def current_for_power(self, power_w: float) -> float:
        """Pack current that delivers ``power_w`` at the terminals (negative power = charging)."""
        e, r = self.emf_and_r()
        disc = e * e - 4.0 * r * power_w
        if disc <= 0.0:
            return e / (2.0 * r)
        return (e - math.sqrt(disc)) / (2.0 * r)

    def current_limits(self, dt: float, *, use_mean: bool, v_max: float, v_min: float | None
                       ) -> tuple[float, float]:
        """(max discharge A, max charge A) from temperature, SOC and cell-voltage limits.

        The voltage limits predict the RC voltage at the end of the step, so the limiting cell lands on
        ``v_max`` / ``v_min`` whatever ``dt``. ``use_mean`` models a BMS that lost cell-level supervision.
        """
        cfg = self.cfg
        cap = float(self.capacity_ah.mean())
        r0, r1 = self.resistances()
        a = math.exp(-dt / cfg.cell_tau_s)
        oc = self.open_circuit()
        denom = r0 + r1 * (1.0 - a)
        head_up = (v_max - oc + self.v1 * a) / denom
        t_max = float(self.temp_c.max())
        t_min = float(self.temp_c.min())
        soc_max = float(self.soc_pct.max())
        i_chg = cap * cfg.max_charge_c * min(charge_c_rate_limit(t_max), charge_c_rate_limit(t_min))
        i_chg *= soc_charge_taper(float(self.soc_pct.mean()) if use_mean else soc_max)
        i_chg = min(i_chg, float(head_up.mean()) if use_mean else float(head_up.min()))
        i_dis = cap * cfg.max_discharge_c * discharge_c_rate_factor(t_max)
        if v_min is not None:
            head_down = (oc - self.v1 * a - v_min) / denom
            i_dis = min(i_dis, float(head_down.mean()) if use_mean else float(head_down.min()))
        return max(i_dis, 0.0), max(i_chg, 0.0)

    def step_electrical(self, i: float, dt: float) -> FloatArray:
        """Advance SOC and RC state with pack current ``i``; returns the cell terminal voltages."""
        r0, r1 = self.resistances()
        oc0 = self.open_circuit()
        a = math.exp(-dt / self.cfg.cell_tau_s)
        v1_new = self.v1 * a + i * r1 * (1.0 - a)
        cell_i = i + self.leak_a                               # the leak discharges each cell
        self.soc_pct = self.soc_pct - cell_i * dt / (36.0 * self.capacity_ah)
        self._ocv = None
        # heat: ohmic + polarisation (mean of the step) + energy released through the leak
        v1_mean = 0.5 * (self.v1 + v1_new)
        self.heat_w = i * i * r0 + v1_mean * v1_mean / r1 + self.leak_a * oc0 + self.extra_heat_w
        self.v1 = v1_new
        self.terminal_v = self.open_circuit() - i * r0 - self.v1
        return self.terminal_v

    # --- thermal ---
    def step_thermal(self, dt: float, *, pump_on: bool, ambient_c: float, chiller: bool,
                     heater_w: float, chiller_forced: bool, cooling_lost: bool = False) -> None:
        """Cells <-> coolant plate <-> radiator/chiller, neighbour conduction, housing to ambient."""
        cfg = self.cfg
        ua = self.ua_coolant if pump_on else self.ua_coolant * 0.15
        to_coolant = ua * (self.temp_c - self.coolant_c)
        flow = np.zeros(self.n)
        if self.n > 1:
            link = cfg.cell_neighbour_w_k * self.same_module_link * (self.temp_c[1:] - self.temp_c[:-1])
            flow[:-1] += link
            flow[1:] -= link
        dq = self.heat_w - to_coolant - cfg.cell_ua_ambient_w_k * (self.temp_c - ambient_c) + flow
        self.temp_c = np.minimum(self.temp_c + dq * dt / cfg.cell_heat_capacity_j_k, 1000.0)
        self._res = None
        ptc = min(1.0, max(0.0, (PTC_LIMIT_C - self.coolant_c) / 20.0))   # PTC heaters self-limit
        q_cool = float(to_coolant.sum()) + heater_w * ptc
        bypass = cooling_lost or heater_w > 0.0          # the radiator is bypassed while heating
        radiator = cfg.radiator_ua_w_k * (1.0 if pump_on and not bypass else 0.1) \
            * (self.coolant_c - ambient_c)
        q_chill = 0.0
        if chiller_forced or (chiller and pump_on and not cooling_lost and self.coolant_c > cfg.chiller_on_c):
            q_chill = cfg.chiller_power_w * min(1.0, max(0.0, (self.coolant_c + 5.0) / 10.0))
        self.coolant_c += (q_cool - radiator - q_chill) * dt / cfg.coolant_heat_capacity_j_k
