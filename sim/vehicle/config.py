"""Vehicle parameters: a mid-size battery-electric sedan (defaults), all in SI unless the name says."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VehicleConfig:
    """Parameters of the simulated vehicle. Defaults: ~1.9 t BEV, 96s1p NMC 150 Ah (~350 V, 52 kWh)."""

    # --- battery pack ---
    n_cells: int = 96                    # series cells (one parallel group each)
    n_temp_probes: int = 32              # each probe sees a contiguous group of cells
    n_motors: int = 1                    # 1 (rear) or 2 (front + rear)
    cells_per_module: int = 12
    cell_capacity_ah: float = 150.0
    cell_r0_ohm: float = 0.00055         # ohmic resistance at 25 degC
    cell_r1_ohm: float = 0.00035         # polarisation resistance (one RC pair) at 25 degC
    cell_tau_s: float = 40.0             # RC time constant
    cell_v_max: float = 4.20             # BMS charge voltage limit
    cell_v_min: float = 2.90             # BMS discharge (under load) limit
    capacity_spread: float = 0.007       # 1 sigma, clipped at 3 sigma (~ +-2 %)
    resistance_spread: float = 0.017     # 1 sigma (~ +-5 %)
    soc_spread_pct: float = 0.35         # 1 sigma of initial cell SOC (~ +-1 %)
    max_discharge_c: float = 3.0         # BMS peak discharge current, C-rate
    max_charge_c: float = 1.5            # BMS peak charge current at 20..45 degC, C-rate
    self_discharge_a: float = 0.004      # per cell, ~2 %/month
    # --- battery thermal ---
    cell_heat_capacity_j_k: float = 2800.0   # ~2.8 kg prismatic cell
    cell_ua_coolant_w_k: float = 3.0         # cell to cooling plate, pump on
    cell_ua_ambient_w_k: float = 0.03        # cell to ambient through the housing
    cell_neighbour_w_k: float = 1.0          # conduction between adjacent cells of a module
    module_cooling_spread: float = 0.12      # 1 sigma, per-module cooling plate effectiveness
    coolant_heat_capacity_j_k: float = 25000.0
    radiator_ua_w_k: float = 300.0
    chiller_power_w: float = 6000.0
    chiller_on_c: float = 33.0               # coolant temperature that starts the chiller
    pack_heater_w: float = 5000.0            # PTC coolant heater used to warm a cold pack
    # --- body and driveline ---
    mass_kg: float = 1900.0              # curb + driver + luggage
    rotating_mass_factor: float = 0.04
    drag_coefficient: float = 0.28
    frontal_area_m2: float = 2.4
    rolling_resistance: float = 0.010
    wheel_radius_m: float = 0.334        # 235/45 R18
    gear_ratio: float = 9.7
    driveline_efficiency: float = 0.97
    max_brake_decel_ms2: float = 9.0
    air_density: float = 1.2
    # --- motor + inverter (per motor) ---
    motor_peak_torque_nm: float = 310.0
    motor_peak_power_kw: float = 150.0
    motor_max_rpm: float = 16000.0
    regen_max_power_kw: float = 60.0
    regen_fade_kmh: tuple[float, float] = (3.0, 12.0)   # regen fades to zero below these speeds
    motor_cu_loss_w_nm2: float = 0.03         # copper loss = k * T^2
    motor_fe_loss: float = 0.017              # iron loss = k * omega^1.5
    motor_windage: float = 1.9e-7             # windage/friction = k * omega^3
    inverter_fixed_w: float = 90.0
    inverter_rel_loss: float = 0.015          # conduction + switching, fraction of |shaft power|
    motor_heat_capacity_j_k: float = 9000.0
    motor_ua_w_k: float = 60.0
    inverter_heat_capacity_j_k: float = 2500.0
    inverter_ua_w_k: float = 40.0
    # --- auxiliaries ---
    aux_hv_w: float = 300.0              # HVAC, pumps, BMS on the HV bus while ready or charging
    lv_load_w: float = 350.0             # 12 V network load (ECUs, lights) while key on
    dcdc_efficiency: float = 0.94
    dcdc_heat_capacity_j_k: float = 800.0
    dcdc_ua_w_k: float = 5.0
    lv_battery_ah: float = 60.0
    # --- charging ---
    obc_power_kw: float = 7.0            # AC input (7 kW wallbox; 11 kW for three-phase)
    obc_efficiency: float = 0.94
    obc_max_current_a: float = 32.0      # DC output current limit
    dc_charger_power_kw: float = 120.0
    dc_charger_max_current_a: float = 250.0
    ac_target_soc_pct: float = 100.0
    dc_target_soc_pct: float = 90.0
    charge_cutoff_c: float = 0.05        # CV ends below this C-rate
    # --- environment and start ---
    ambient_c: float = 25.0
    initial_soc_pct: float | None = None     # None: the profile's default
    initial_odometer_km: float = 12000.0

    def __post_init__(self) -> None:
        if self.n_motors not in (1, 2):
            raise ValueError("n_motors must be 1 or 2")
        if not 1 <= self.n_temp_probes <= self.n_cells:
            raise ValueError("n_temp_probes must be between 1 and n_cells")
        if self.n_cells < 1 or self.cells_per_module < 1:
            raise ValueError("n_cells and cells_per_module must be positive")

    @property
    def pack_energy_kwh(self) -> float:
        """Nominal pack energy (3.65 V mean cell voltage)."""
        return self.n_cells * 3.65 * self.cell_capacity_ah / 1000.0
