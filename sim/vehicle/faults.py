"""Physical fault inputs: knobs that scenarios (``sim.scenarios``) turn and the physics obeys."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Everything a physics fault can change. The defaults are a healthy vehicle."""

    # battery cells and BMS
    weak_cell: int | None = None             # index of a weak cell ...
    weak_cell_capacity_factor: float = 1.0   # ... its capacity relative to nominal
    weak_cell_resistance_factor: float = 1.0
    cell_supervision_lost: bool = False      # BMS limits on mean cell voltage, not min/max
    charge_cv_setpoint_v: float | None = None    # wrong CV setpoint per cell (charger/BMS)
    charge_never_stops: bool = False         # BMS does not stop charging at full
    discharge_cutoff_disabled: bool = False  # BMS low-voltage/SOC cut-off lost
    internal_short_cell: int | None = None   # cell with a growing internal short
    internal_short_a: float = 0.0            # current through the short
    soc_offset_pct: float = 0.0              # error of the BMS SOC estimate (jump)
    # thermal systems
    coolant_heater_w: float = 0.0            # PTC coolant heater stuck on
    chiller_stuck_on: bool = False
    battery_cooling_lost: bool = False      # battery radiator fan and chiller unavailable
    blocked_module: int | None = None        # no coolant flow through this module's plate
    motor_cooling_lost: bool = False
    motor_extra_loss_w: float = 0.0
    inverter_cooling_lost: bool = False
    inverter_extra_loss_w: float = 0.0
    dcdc_cooling_lost: bool = False
    dcdc_efficiency: float | None = None     # degraded DC-DC efficiency
    # HV safety
    insulation_target_kohm: float | None = None
    hvil_open: bool = False
    # others
    dcdc_failed: bool = False
    brake_fault: bool = False
    extra_aux_w: float = 0.0
    gnss_lost: bool = False
