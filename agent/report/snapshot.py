"""The edition-neutral snapshot of the vehicle at one sampling instant: the agent's central contract.

``agent.canbus`` (cache + mapping + sampler) produces a ``Snapshot`` at each sampling tick (≥ 1 Hz);
``agent.report`` turns snapshots into GB/T 32960 realtime reports of either edition, computes alarms
and decides the cadence; the store keeps snapshots so a reissue can be re-encoded for any edition.

Values are engineering units (the protocol's own units: km/h, km, V, A, %, kΩ, °C, r/min, N·m). A
field holds:

* ``None`` — not mapped on this vehicle: the builder leaves it out, or sends the invalid code where
  the info type is mandatory;
* ``Special.INVALID`` — mapped, but its frame is stale (older than the configured multiple of its
  cycle time), failed its counter/checksum check, or the signal carried its own SNA value;
  ``Special.ABNORMAL`` — the source signals a fault value;
* a number, ``bool`` or one of the model's enums (``VehicleState``, ``GearPosition`` …) otherwise.

Field names below are the vocabulary of the mapping files (``dbc/*.toml``): a mapping may fill any
subset of them, never other names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from agent.protocol.model import (
    ChargingState,
    DcDcState,
    EngineState,
    GearPosition,
    MotorState,
    RunningMode,
    Special,
    VehicleState,
)

Number = float | int
Value = float | int | bool | Special | VehicleState | ChargingState | RunningMode | DcDcState | GearPosition
MotorValue = float | int | Special | MotorState
EngineValue = float | int | Special | EngineState


#: whole-vehicle fields (2016 0x01 / 2025 0x01), name -> unit or value type
VEHICLE_FIELDS: Final = MappingProxyType(
    {
        "vehicle_state": "VehicleState",
        "charging_state": "ChargingState",
        "running_mode": "RunningMode",
        "speed": "km/h",
        "mileage": "km",
        "total_voltage": "V",
        "total_current": "A (+ discharge)",
        "soc": "%",
        "dcdc_state": "DcDcState",
        "gear": "GearPosition",
        "drive_force": "bool",
        "brake_force": "bool",
        "insulation_resistance": "kΩ",
        "accelerator_pedal": "%",
        "brake_pedal": "% (101 = brake on, no travel value)",
        # inputs of alarms that have no field of their own in 0x01
        "dcdc_temperature": "°C",
        "hv_interlock_closed": "bool",
        "hv_on": "bool (high voltage up: contactors closed)",
    }
)

#: per drive motor (2016 0x02 / 2025 0x02)
MOTOR_FIELDS: Final = MappingProxyType(
    {
        "state": "MotorState",
        "controller_temperature": "°C",
        "speed": "r/min",
        "torque": "N·m",
        "temperature": "°C",
        "controller_voltage": "V",
        "controller_current": "A",
    }
)

#: optional extremes as the BMS reports them (2016 0x06); the builder computes them from the cells when
#: these are absent. Indices are 1-based cell/probe numbers within their subsystem.
EXTREME_FIELDS: Final = MappingProxyType(
    {
        "max_cell_voltage": "V",
        "max_cell_voltage_subsystem": "int",
        "max_cell_voltage_index": "int",
        "min_cell_voltage": "V",
        "min_cell_voltage_subsystem": "int",
        "min_cell_voltage_index": "int",
        "max_temperature": "°C",
        "max_temperature_subsystem": "int",
        "max_temperature_index": "int",
        "min_temperature": "°C",
        "min_temperature_subsystem": "int",
        "min_temperature_index": "int",
    }
)

#: boolean alarm inputs straight from ECU fault signals (True = the ECU reports the fault). The alarm
#: engine ORs them with its own threshold checks; names follow GB/T 32960 general alarm flags (bit).
FAULT_FIELDS: Final = MappingProxyType(
    {
        "temperature_difference": 0,
        "battery_high_temperature": 1,
        "storage_overvoltage": 2,
        "storage_undervoltage": 3,
        "low_soc": 4,
        "cell_overvoltage": 5,
        "cell_undervoltage": 6,
        "high_soc": 7,
        "soc_jump": 8,
        "storage_mismatch": 9,
        "cell_inconsistency": 10,
        "insulation": 11,
        "dcdc_temperature": 12,
        "brake_system": 13,
        "dcdc_status": 14,
        "motor_controller_temperature": 15,
        "hv_interlock": 16,
        "motor_temperature": 17,
        "storage_overcharge": 18,
        "motor_overspeed": 19,
        "motor_overcurrent": 20,
        "supercapacitor_overtemperature": 21,
        "supercapacitor_overvoltage": 22,
        "thermal_event": 23,
        "hydrogen_leak": 24,
        "hydrogen_pressure": 25,
        "hydrogen_temperature": 26,
        "fuel_cell_stack_overtemperature": 27,
    }
)

#: OEM fault-code lists of the alarm block
FAULT_CODE_LISTS: Final = ("ress", "motor", "engine", "other")

#: engine (2016 0x04 / 2025 0x04), for hybrids
ENGINE_FIELDS: Final = MappingProxyType(
    {"state": "EngineState", "crankshaft_speed": "r/min", "fuel_consumption": "L/100 km"}
)


@dataclass(frozen=True)
class MotorSnapshot:
    """One drive motor and its controller; ``number`` is the 1-based motor sequence number."""

    number: int
    values: Mapping[str, MotorValue] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class SubsystemSnapshot:
    """One rechargeable energy storage subsystem (2016) / traction battery pack (2025).

    ``cell_voltages`` (V) and ``temperatures`` (°C) are in cell/probe order (index 0 = cell 1); an
    entry is ``Special.INVALID`` when its frame is stale. ``voltage``/``current`` are the subsystem's
    own (None when not mapped: the builder then uses the pack totals for a single subsystem).
    """

    number: int
    cell_voltages: tuple[float | Special, ...] = ()
    temperatures: tuple[float | Special, ...] = ()
    voltage: float | Special | None = None
    current: float | Special | None = None


@dataclass(frozen=True)
class Position:
    """A GNSS fix (WGS-84 degrees, signed); ``valid`` False = no current fix (last known position)."""

    latitude: float
    longitude: float
    valid: bool = True
    speed_kmh: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything sampled at ``time`` (UTC, timezone-aware): the source of one realtime record."""

    time: datetime
    vehicle: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    motors: tuple[MotorSnapshot, ...] = ()
    subsystems: tuple[SubsystemSnapshot, ...] = ()
    extremes: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    faults: Mapping[str, bool | Special] = field(default_factory=lambda: MappingProxyType({}))
    fault_codes: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: MappingProxyType({}))
    engine: Mapping[str, EngineValue] | None = None
    position: Position | None = None

    def value(self, name: str) -> Value | None:
        """A whole-vehicle field, or None when not mapped."""
        return self.vehicle.get(name)
