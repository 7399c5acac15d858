"""Longitudinal dynamics and the motor/inverter loss map (speed and torque dependent)."""

from __future__ import annotations

import math

from sim.vehicle.config import VehicleConfig

G = 9.81


def road_load_n(cfg: VehicleConfig, v: float, grade: float) -> tuple[float, float, float]:
    """(aero, rolling, grade) resistance forces in N at speed ``v`` (m/s) on ``grade`` (rise/run)."""
    theta = math.atan(grade)
    aero = 0.5 * cfg.air_density * cfg.drag_coefficient * cfg.frontal_area_m2 * v * v
    rolling = cfg.mass_kg * G * cfg.rolling_resistance * math.cos(theta) if v > 0.0 else 0.0
    return aero, rolling, cfg.mass_kg * G * math.sin(theta)


def motor_speed_rad_s(cfg: VehicleConfig, v: float) -> float:
    """Motor shaft speed for vehicle speed ``v`` through the fixed reduction."""
    return v / cfg.wheel_radius_m * cfg.gear_ratio


def motor_max_torque(cfg: VehicleConfig, omega: float) -> float:
    """Drive torque envelope of one motor: constant torque, then constant power, zero past max speed."""
    if omega * 60.0 / (2.0 * math.pi) >= cfg.motor_max_rpm:
        return 0.0
    return min(cfg.motor_peak_torque_nm, cfg.motor_peak_power_kw * 1000.0 / max(omega, 1e-6))


def motor_max_regen_torque(cfg: VehicleConfig, omega: float, v_kmh: float) -> float:
    """Regenerative torque envelope (magnitude) of one motor, faded out at low speed."""
    lo, hi = cfg.regen_fade_kmh
    fade = min(1.0, max(0.0, (v_kmh - lo) / (hi - lo)))
    return fade * min(cfg.motor_peak_torque_nm, cfg.regen_max_power_kw * 1000.0 / max(omega, 1e-6))


def motor_loss_w(cfg: VehicleConfig, torque: float, omega: float) -> tuple[float, float]:
    """(motor loss, inverter loss) in W of one enabled motor at ``torque`` (N m) and ``omega`` (rad/s).

    Motor: copper k*T^2 + iron k*omega^1.5 + windage/friction k*omega^3. Inverter: a fixed part plus a
    share of the shaft power. Together they give a map with ~95 % peak and ~85 % at light load.
    """
    w = abs(omega)
    motor = cfg.motor_cu_loss_w_nm2 * torque * torque + cfg.motor_fe_loss * w ** 1.5 \
        + cfg.motor_windage * w ** 3
    inverter = cfg.inverter_fixed_w + cfg.inverter_rel_loss * abs(torque * omega)
    return motor, inverter


def torque_for_dc_power(cfg: VehicleConfig, shares: tuple[float, ...], omega: float,
                        p_dc_w: float) -> float:
    """Largest total drive torque whose DC power (shaft + losses, all motors) stays within ``p_dc_w``."""
    fixed = sum(cfg.motor_fe_loss * omega ** 1.5 + cfg.motor_windage * omega ** 3
                + cfg.inverter_fixed_w for _ in shares)
    a = cfg.motor_cu_loss_w_nm2 * sum(s * s for s in shares)
    b = omega * (1.0 + cfg.inverter_rel_loss)
    c = fixed - p_dc_w
    if c >= 0.0:
        return 0.0
    return (-b + math.sqrt(b * b - 4.0 * a * c)) / (2.0 * a)
