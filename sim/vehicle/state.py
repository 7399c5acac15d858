"""The snapshot of the whole vehicle at one physics step: the contract between physics and ECUs.

Physics (``sim.vehicle``) fills one ``VehicleState`` per step; the ECU layer (``sim.ecus``) reads
it to fill DBC signals. Engineering units, SI unless the name says otherwise. Sign conventions:
pack/DC current is positive when the battery discharges (drive), negative when it charges
(regeneration, plug-in charging); motor torque is positive when driving, negative when
regenerating. New fields may be appended (with defaults); existing ones are not renamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Gear(Enum):
    PARK = "P"
    REVERSE = "R"
    NEUTRAL = "N"
    DRIVE = "D"


class ChargeMode(Enum):
    NONE = "none"          # not plugged in
    AC = "ac"              # on-board charger (OBC)
    DC = "dc"              # off-board DC fast charger
    COMPLETE = "complete"  # plugged in, charge finished


@dataclass(slots=True)
class MotorState:
    """One drive motor and its inverter (motor controller)."""

    speed_rpm: float = 0.0
    torque_nm: float = 0.0
    motor_temp_c: float = 25.0
    inverter_temp_c: float = 25.0
    dc_voltage_v: float = 0.0
    dc_current_a: float = 0.0   # + = drawing from the HV bus
    enabled: bool = False        # inverter ready / enabled


@dataclass(slots=True)
class VehicleState:
    """Everything the ECUs may put on the bus at simulated time ``t``."""

    t: float                                 # simulated seconds since the run started
    # --- VCU ---
    key_on: bool = False                     # KL15
    ready: bool = False                      # HV ready to drive
    gear: Gear = Gear.PARK
    speed_kmh: float = 0.0
    odometer_km: float = 0.0
    accel_pedal_pct: float = 0.0             # 0..100
    brake_pedal_pct: float = 0.0             # 0..100
    brake_fault: bool = False
    dcdc_active: bool = False
    dcdc_temp_c: float = 25.0
    dcdc_fault: bool = False
    lv_voltage_v: float = 12.6               # 12 V network
    # --- BMS ---
    pack_voltage_v: float = 0.0              # = sum of cell voltages
    pack_current_a: float = 0.0              # + = discharge
    soc_pct: float = 0.0                     # displayed SOC (coulomb counting), 0..100
    cell_voltages_v: FloatArray = field(default_factory=lambda: np.zeros(0))
    cell_temps_c: FloatArray = field(default_factory=lambda: np.zeros(0))   # one per probe
    insulation_kohm: float = 60000.0         # min(positive, negative) to chassis
    hv_interlock_closed: bool = True
    main_contactors_closed: bool = False
    bms_fault_codes: tuple[int, ...] = ()    # active OEM fault codes (DTC-like)
    # --- motors (one or two) ---
    motors: tuple[MotorState, ...] = ()
    # --- charging ---
    charge_mode: ChargeMode = ChargeMode.NONE
    charger_voltage_v: float = 0.0           # charger output measured at the inlet
    charger_current_a: float = 0.0          # charger output current (+ into the pack)
    charger_max_power_kw: float = 0.0
    # --- GNSS ---
    latitude_deg: float = 0.0
    longitude_deg: float = 0.0
    altitude_m: float = 0.0
    heading_deg: float = 0.0
    gnss_fix: bool = True
    # --- bookkeeping for tests ---
    energy_battery_j: float = 0.0            # integral of pack V*I since start (+ = delivered)
    energy_wheels_j: float = 0.0             # integral of tractive power at the wheels
    # --- appended by the physics: extra bookkeeping (energies in J since start) and signals ---
    energy_chemical_j: float = 0.0           # integral of sum(cell OCV) * I: energy taken from the cells
    energy_loss_battery_j: float = 0.0       # ohmic + polarisation losses in the cells
    energy_loss_motor_j: float = 0.0         # motor + inverter losses, all motors
    energy_loss_driveline_j: float = 0.0     # reduction gear losses
    energy_aux_j: float = 0.0                # HV auxiliaries incl. the DC-DC input
    energy_brake_j: float = 0.0              # dissipated by the friction brakes
    energy_charger_j: float = 0.0            # delivered by the charger to the HV bus
    cell_soc_mean_pct: float = 0.0           # true mean cell SOC (the BMS shows soc_pct)
    coolant_temp_c: float = 25.0             # battery coolant
    ambient_temp_c: float = 25.0
    grade_pct: float = 0.0                   # road grade under the vehicle
    bms_max_charge_a: float = 0.0            # BMS allowed charge (and regen) current
    bms_max_discharge_a: float = 0.0         # BMS allowed discharge current
    thermal_event: bool = False              # a cell is in thermal runaway (GB/T 32960-2025 level 4)
