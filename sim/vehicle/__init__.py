"""Vehicle physics: drive cycles, powertrain, battery cells, thermal, charging, GNSS track."""

from sim.vehicle.config import VehicleConfig
from sim.vehicle.state import ChargeMode, Gear, MotorState, VehicleState
from sim.vehicle.vehicle import CHARGE_PROFILES, PROFILES, Vehicle

__all__ = ["CHARGE_PROFILES", "PROFILES", "ChargeMode", "Gear", "MotorState", "Vehicle", "VehicleConfig",
           "VehicleState"]
