"""A light-weight vehicle for fleets: a few floats of physics per vehicle, reports without CAN.

``LiteVehicle`` keeps drive/park/charge mode, speed, distance along a route, SOC, pack current and a few
temperatures. ``step(dt)`` integrates them (sub-steps of at most 1 s, a handful of float operations each);
``report(t)`` builds a ``RealtimeReport`` of the vehicle's edition from that state: cell voltages are the
open-circuit voltage at the SOC minus the ohmic drop plus a fixed per-cell offset, so they sum to the pack
voltage; extremes are taken from the cells and probes; speed is 0 in P; SOC moves with the current.

Per-vehicle memory is small: the per-cell/per-probe offsets come from a few shared templates, and the
random source is a 64-bit integer (splitmix64), not a ``random.Random``.

Scenario ``alarm-burst``: from ``ALARM_BURST_START`` s after ``start`` (collection time) and then every
``ALARM_BURST_PERIOD`` seconds the whole fleet raises a level-2 insulation alarm (resistance falls below
500 Ω/V × pack voltage) for ``ALARM_BURST_SECONDS`` seconds; level 2 keeps the platform's level-3
alarm-window rule out of play (the lite vehicle keeps no per-second history to reissue). Other scenario
names are accepted and do not change the physics (they act on the link, see ``sim.fleet.runner``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from agent.protocol.model import (
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    CoordinateSystem,
    DcDcState,
    DriveMotor,
    DriveMotor2025,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Extremes,
    FlagLevel,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    InfoBlock,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    PackVoltages,
    ParallelUnitVoltages,
    RealtimeReport,
    RunningMode,
    SubsystemTemperatures,
    SubsystemVoltages,
    Temperatures,
    VehicleData,
    VehicleData2025,
    VehicleState,
)
from sim.vehicle.route import Route

VIN_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"  # ISO 3779: no I, O, Q
N_CELLS: Final = 96
N_PROBES: Final = 32
CAPACITY_AH: Final = 150.0
CELL_R_OHM: Final = 0.0009  # ohmic + polarisation, lumped
MASS_KG: Final = 1900.0
WHEEL_RADIUS_M: Final = 0.334
GEAR_RATIO: Final = 9.7
AUX_W: Final = 600.0
ALARM_BURST_PERIOD: Final = 60.0
ALARM_BURST_START: Final = 5.0
ALARM_BURST_SECONDS: Final = 10.0
SCENARIOS: Final = ("login-storm", "outage", "duplicate-vin", "malformed", "silent", "slow", "alarm-burst",
                    "clock-skew")

DRIVE, PARK, CHARGE, COMPLETE = 0, 1, 2, 3
_MASK64: Final = (1 << 64) - 1
_TEMPLATES: Final = 16
_ROUTE: Route | None = None


def _route() -> Route:
    global _ROUTE
    if _ROUTE is None:
        _ROUTE = Route()
    return _ROUTE


def _splitmix(x: int) -> tuple[int, float]:
    """One splitmix64 step: the new state and a uniform float in [0, 1)."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    z ^= z >> 31
    return x, (z >> 11) / float(1 << 53)


class _Spread:
    """Fixed per-cell (mV) or per-probe (°C) integer offsets shared by many vehicles, with the argmax/argmin
    precomputed (the order of ``base + offset`` does not depend on the base) and a bounded cache of the
    value tuples by base, so a report costs no per-cell arithmetic when the base repeats."""

    __slots__ = ("_cache", "_scale", "hi", "lo", "offsets", "total")

    def __init__(self, n: int, k: int, spread: int, salt: int, scale: int) -> None:
        state = salt * 1000003 + k * 7919 + n
        values = []
        for _ in range(n):
            state, u = _splitmix(state)
            values.append(round((u - 0.5) * 2.0 * spread))
        self.offsets = tuple(values)
        self.total = sum(values)
        self.hi = values.index(max(values))
        self.lo = values.index(min(values))
        self._scale = scale
        self._cache: dict[int, tuple[Any, ...]] = {}

    def values(self, base: int) -> tuple[Any, ...]:
        got = self._cache.get(base)
        if got is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            if self._scale == 1:
                got = tuple(base + o for o in self.offsets)
            else:
                scale = float(self._scale)
                got = tuple((base + o) / scale for o in self.offsets)
            self._cache[base] = got
        return got


_CACHE_LIMIT: Final = 1024
_SPREADS: dict[tuple[int, int, int], _Spread] = {}


def _spread(kind: int, n: int, k: int) -> _Spread:
    got = _SPREADS.get((kind, n, k))
    if got is None:
        cells = kind == 0
        got = _SPREADS[(kind, n, k)] = _Spread(n, k, 4 if cells else 2, kind + 1, 1000 if cells else 1)
    return got


def vin_for(index: int, prefix: str = "LTBXFLT0") -> str:
    """A 17-character VIN, unique per ``index`` ≥ 0: ``prefix`` then the index in base 33 over the VIN
    alphabet (no I, O, Q), left-padded with '0'. The prefix is taken as given (upper-case letters and
    digits; the default keeps to the VIN alphabet, as the agent's config demands). Raises
    ``ValueError`` when the index does not fit."""
    if index < 0:
        raise ValueError(f"VIN index {index} is negative")
    if len(prefix) >= 17 or not all(c.isascii() and (c.isdigit() or c.isupper()) for c in prefix):
        raise ValueError(f"VIN prefix {prefix!r}: at most 16 upper-case ASCII letters and digits")
    width = 17 - len(prefix)
    digits = []
    n = index
    for _ in range(width):
        n, r = divmod(n, len(VIN_ALPHABET))
        digits.append(VIN_ALPHABET[r])
    if n:
        raise ValueError(f"VIN index {index} does not fit in {width} characters after {prefix!r}")
    return prefix + "".join(reversed(digits))


def iccid_for(index: int) -> str:
    """A 20-digit ICCID, unique per ``index`` in 0..10¹¹−1: '89' (telecom), '86' (China), '0' + index
    in 11 digits, then '00000' — all digits, as the platform's ``login_content`` check wants."""
    if not 0 <= index < 10**11:
        raise ValueError(f"ICCID index {index} outside 0..{10**11 - 1}")
    return f"89860{index:011d}0000"


def ocv(soc: float) -> float:
    """Open-circuit voltage of one NMC cell (V) at ``soc`` percent: a smooth 3.30..4.18 V curve."""
    x = min(100.0, max(0.0, soc)) / 100.0
    return 3.30 + 0.62 * x + 0.26 * x * x * x - 0.12 * math.exp(-12.0 * x)


class LiteVehicle:
    """One light vehicle; see the module docstring. ``step`` advances, ``report`` samples."""

    __slots__ = ("_cells_off", "_probe_off", "_rng", "alarm", "ambient", "current", "distance", "edition",
                 "elapsed", "mileage", "mode", "mode_left", "motor_temp", "n_cells", "n_probes",
                 "pack_temp", "scenario", "seed", "soc", "speed", "start", "target_left", "target_speed",
                 "torque", "vin")

    def __init__(self, vin: str, seed: int, edition: Edition, start: datetime, *,
                 scenario: str | None = None, n_cells: int = N_CELLS, n_probes: int = N_PROBES) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if not 1 <= n_cells <= 200 or not 1 <= n_probes <= 200:
            raise ValueError(f"{n_cells} cells / {n_probes} probes: each must be 1..200")
        self.vin = vin
        self.seed = seed
        self.edition = Edition(edition)
        self.start = start
        self.scenario = scenario
        self.n_cells = n_cells
        self.n_probes = n_probes
        self._rng = (seed * 0x2545F4914F6CDD1D + 12345) & _MASK64
        k = self._uniform(0, _TEMPLATES - 0.001)
        self._cells_off = _spread(0, n_cells, int(k))
        self._probe_off = _spread(1, n_probes, int(k))
        self.elapsed = 0.0
        self.distance = self._uniform(0.0, _route().length_m)
        self.mileage = self._uniform(500.0, 60000.0)
        self.soc = self._uniform(35.0, 95.0)
        self.ambient = self._uniform(12.0, 30.0)
        self.pack_temp = self.ambient + self._uniform(0.0, 5.0)
        self.motor_temp = self.ambient
        self.speed = 0.0  # km/h
        self.current = 0.0  # A, + = discharge
        self.torque = 0.0  # N·m at the motor
        self.alarm = 0
        self.target_speed = 0.0
        self.target_left = 0.0
        self.mode = DRIVE if self._uniform(0, 1) < 0.7 else PARK
        self.mode_left = self._uniform(60.0, 1200.0)

    # ---- randomness

    def _uniform(self, lo: float, hi: float) -> float:
        self._rng, u = _splitmix(self._rng)
        return lo + (hi - lo) * u

    # ---- physics

    @property
    def pack_voltage(self) -> float:
        """Pack voltage (V): the sum of the cell voltages at the present current."""
        return self.n_cells * (ocv(self.soc) - self.current * CELL_R_OHM)

    def step(self, dt: float) -> None:
        """Advance the physics by ``dt`` seconds (sub-steps of at most 1 s)."""
        if dt < 0:
            raise ValueError(f"dt {dt} is negative")
        while dt > 1e-9:
            h = 1.0 if dt > 1.0 else dt
            self._substep(h)
            dt -= h

    def _substep(self, h: float) -> None:
        self.elapsed += h
        self.mode_left -= h
        if self.mode_left <= 0:
            self._next_mode()
        if self.mode == DRIVE:
            self._drive(h)
        else:
            self.speed = 0.0
            self.torque = 0.0
            if self.mode == CHARGE:
                self.current = -min(32.0, 2.0 + 3.0 * (100.0 - self.soc))  # CC, tapering near full
                if self.soc >= 99.5:
                    self.mode, self.mode_left = COMPLETE, self._uniform(60.0, 300.0)
            else:
                self.current = 0.0
        self.soc = min(100.0, max(0.0, self.soc - self.current * h / 36.0 / CAPACITY_AH))
        heat = self.current * self.current * CELL_R_OHM * self.n_cells  # W
        self.pack_temp += h * (heat / 250000.0 - (self.pack_temp - self.ambient) / 1800.0)
        motor_heat = abs(self.torque) * 0.3 if self.mode == DRIVE else 0.0
        self.motor_temp += h * (motor_heat / 9000.0 - (self.motor_temp - self.ambient) / 600.0)

    def _next_mode(self) -> None:
        if self.mode == DRIVE:
            if self.soc < 30.0:
                self.mode, self.mode_left = CHARGE, 1e9  # until full
            else:
                self.mode, self.mode_left = PARK, self._uniform(60.0, 600.0)
        elif self.mode in (PARK, COMPLETE):
            self.mode, self.mode_left = DRIVE, self._uniform(300.0, 1800.0)
        else:  # CHARGE ends on SOC, see _substep
            self.mode_left = 1e9

    def _drive(self, h: float) -> None:
        self.target_left -= h
        if self.target_left <= 0:
            u = self._uniform(0, 1)
            self.target_speed = 0.0 if u < 0.15 else self._uniform(15.0, 60.0 if u < 0.8 else 110.0)
            self.target_left = self._uniform(8.0, 40.0)
        v0 = self.speed / 3.6
        diff = self.target_speed / 3.6 - v0
        a = max(-2.5, min(1.8, diff / 3.0))
        v1 = max(0.0, v0 + a * h)
        self.distance += 0.5 * (v0 + v1) * h
        self.mileage += 0.5 * (v0 + v1) * h / 1000.0
        self.speed = v1 * 3.6
        v = 0.5 * (v0 + v1)
        force = MASS_KG * a + 0.5 * 1.2 * 0.28 * 2.4 * v * v + MASS_KG * 9.81 * 0.010 * (1 if v > 0 else 0)
        wheel_power = force * v
        power = wheel_power / 0.88 if wheel_power > 0 else wheel_power * 0.7
        self.torque = force * WHEEL_RADIUS_M / GEAR_RATIO
        voltage = self.n_cells * ocv(self.soc)
        self.current = max(-300.0, min(450.0, (power + AUX_W) / voltage))

    def alarm_at(self, t: datetime) -> int:
        """The alarm level at collection time ``t``: 2 inside an alarm burst (scenario ``alarm-burst``;
        counted from ``start``, so every vehicle of a fleet is in the same burst at once), else 0."""
        if self.scenario != "alarm-burst":
            return 0
        phase = (t - self.start).total_seconds() % ALARM_BURST_PERIOD
        return 2 if ALARM_BURST_START <= phase < ALARM_BURST_START + ALARM_BURST_SECONDS else 0

    # ---- reporting

    @property
    def gear(self) -> GearPosition:
        return GearPosition.DRIVE if self.mode == DRIVE else GearPosition.PARK

    def insulation(self) -> int:
        """Insulation resistance (kΩ): healthy 30-60 MΩ, or about 300 Ω/V during an alarm burst."""
        if self.alarm:
            return int(self.pack_voltage * 0.3)
        return 40000 + self.seed % 20000

    def report(self, t: datetime) -> RealtimeReport:
        """The realtime report collected at the UTC-aware ``t`` (whole second) from the present state."""
        if t.tzinfo is None:
            raise ValueError("report time must be timezone-aware (UTC)")
        t = t.replace(microsecond=0)
        self.alarm = self.alarm_at(t)
        e25 = self.edition is Edition.E2025
        spread, probes = self._cells_off, self._probe_off
        base_mv = round((ocv(self.soc) - self.current * CELL_R_OHM) * 1000.0)
        cells: tuple[float, ...] = spread.values(base_mv)
        pack_v = round((base_mv * self.n_cells + spread.total) / 1000.0, 1)  # the sum of the cells
        current = round(self.current, 1)
        temps: tuple[int, ...] = probes.values(round(self.pack_temp))
        driving = self.mode == DRIVE
        charging = self.mode == CHARGE
        state = VehicleState.STARTED if driving else VehicleState.STOPPED
        if charging:
            cstate = ChargingState.PARKED_CHARGING
        elif self.mode == COMPLETE:
            cstate = ChargingState.CHARGING_COMPLETE
        else:
            cstate = ChargingState.NOT_CHARGING
        dcdc = DcDcState.WORKING if driving or charging else DcDcState.DISCONNECTED
        speed = round(self.speed, 1) if driving else 0.0
        gear = Gear(self.gear, drive_force=driving and self.torque > 0,
                    brake_force=driving and self.torque < 0)
        soc = round(self.soc)
        mileage = round(self.mileage, 1)
        insulation = self.insulation()
        blocks: list[InfoBlock] = []
        if e25:
            blocks.append(VehicleData2025(state, cstate, RunningMode.ELECTRIC, speed, mileage, pack_v,
                                          current, soc, dcdc, gear, insulation))
        else:
            accel = min(100, max(0, round(self.torque / 3.1))) if driving else 0
            brake = min(100, max(0, round(-self.torque / 3.1))) if driving else 0
            blocks.append(VehicleData(state, cstate, RunningMode.ELECTRIC, speed, mileage, pack_v, current,
                                      soc, dcdc, gear, insulation, accel, brake))
        if not charging:
            blocks.append(self._motors(e25, pack_v, current))
        point = _route().at(self.distance)
        lon, lat = round(point.longitude_deg, 6), round(point.latitude_deg, 6)
        if e25:
            blocks.append(Location2025(LocationStatus(0), CoordinateSystem.WGS84, lon, lat))
            blocks.append(self._alarm_2025())
            blocks.append(ParallelUnitVoltages((PackVoltages(1, pack_v, current, cells),)))
        else:
            blocks.append(Location(LocationStatus(0), lon, lat))
            blocks.append(Extremes(1, spread.hi + 1, cells[spread.hi], 1, spread.lo + 1, cells[spread.lo],
                                   1, probes.hi + 1, temps[probes.hi], 1, probes.lo + 1, temps[probes.lo]))
            flags = GeneralAlarmFlag.INSULATION if self.alarm else GeneralAlarmFlag(0)
            blocks.append(Alarm(AlarmLevel(self.alarm), flags))
            blocks.append(CellVoltages((SubsystemVoltages(1, pack_v, current, len(cells), 1, cells),)))
        blocks.append(Temperatures((SubsystemTemperatures(1, temps),)))
        return RealtimeReport(t, tuple(blocks))

    def _motors(self, e25: bool, pack_v: float, current: float) -> DriveMotors | DriveMotors2025:
        driving = self.mode == DRIVE
        rpm = round(self.speed / 3.6 / WHEEL_RADIUS_M * GEAR_RATIO * 60.0 / (2.0 * math.pi))
        torque = round(self.torque, 1) if driving else 0.0
        if not driving:
            mstate = MotorState.OFF
        elif torque > 0.5:
            mstate = MotorState.CONSUMING
        elif torque < -0.5:
            mstate = MotorState.GENERATING
        else:
            mstate = MotorState.READY
        inverter = round(self.motor_temp - 5.0)
        motor = round(self.motor_temp)
        if e25:
            return DriveMotors2025((DriveMotor2025(1, mstate, inverter, rpm, torque, motor),))
        mcurrent = round(max(-1000.0, min(1000.0, current - AUX_W / max(pack_v, 1.0))), 1) if driving else 0.0
        return DriveMotors((DriveMotor(1, mstate, inverter, rpm, torque, motor, pack_v if driving else 0.0,
                                       mcurrent),))

    def _alarm_2025(self) -> Alarm2025:
        if self.alarm:
            bit = 11  # insulation
            return Alarm2025(AlarmLevel(self.alarm), GeneralAlarmFlag.INSULATION,
                             flag_levels=(FlagLevel(bit, AlarmLevel(self.alarm)),))
        return Alarm2025(AlarmLevel.NONE, GeneralAlarmFlag(0))


__all__ = ["SCENARIOS", "LiteVehicle", "iccid_for", "ocv", "vin_for"]
