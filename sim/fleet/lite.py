"""A light-weight vehicle for fleets: a few floats of physics per vehicle, reports without CAN.

``LiteVehicle`` keeps drive/park/charge mode, speed, distance along a route, SOC, pack current and a few
temperatures. ``step(dt)`` integrates them (sub-steps of at most 1 s, a handful of float operations each);
``report(t)`` builds a ``RealtimeReport`` of the vehicle's edition from that state: cell voltages are the
open-circuit voltage at the SOC minus the ohmic drop plus a fixed per-cell offset, so they sum to the pack
voltage; extremes are taken from the cells and probes; speed is 0 in P; SOC moves with the current.

Per-vehicle memory is small: the per-cell/per-probe offsets come from a few shared templates, and the
random source is a 64-bit integer (splitmix64), not a ``random.Random``.

Scenario ``alarm-burst``: from ``ALARM_BURST_START`` s after ``start`` (collection time) and then every
``ALARM_BURST_PERIOD`` seconds the whole fleet raises a level-3 insulation alarm (resistance falls below
500 Ω/V × pack voltage) for ``ALARM_BURST_SECONDS`` seconds. The level-3 reporting rule (the 30 s before
each fault point as reissue, 1 s reports until 30 s after) is the fleet vehicle's job
(``sim.fleet.client``), which samples every second in this scenario. Other scenario names are accepted
and do not change the physics (they act on the link, see ``sim.fleet.runner``).
"""

from __future__ import annotations

import math
import struct
from datetime import datetime
from typing import Any, Final, NamedTuple

from agent.protocol import wire
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
from agent.protocol.session import BEIJING
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
ALARM_BURST_LEVEL: Final = 3  # level 3: the platform wants the 30 s before each fault point and 1 s after
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

    __slots__ = ("_cache", "_lanes", "_ones", "_raw_max", "_raw_off", "_scale", "_size", "hi", "lo",
                 "offsets", "total")

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
        width = 1 if scale == 1 else 2  # probes: BYTE °C + 40; cells: WORD mV
        self._raw_off = 40 if scale == 1 else 0
        self._raw_max = 0xFD if scale == 1 else 0xFFFD  # the largest raw value below the sentinels
        self._size = width * n
        self._lanes = int.from_bytes(b"".join((o + _BIAS).to_bytes(width, "big") for o in values), "big")
        self._ones = int.from_bytes((1).to_bytes(width, "big") * n, "big")

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

    def encoded(self, base: int) -> bytes:
        """The wire bytes of ``values(base)``: cells as big-endian WORDs in mV, probes as BYTEs of °C + 40.

        One integer addition instead of a loop: ``_lanes`` holds ``offset + bias`` in lanes of the field
        width, ``_ones`` a 1 in every lane, so ``_lanes + (base − bias) · _ones`` is ``base + offset`` in
        every lane as long as each lane stays within its width (checked through the extremes)."""
        low = base + self.offsets[self.lo] + self._raw_off
        high = base + self.offsets[self.hi] + self._raw_off
        if low < 0 or high > self._raw_max:
            raise ValueError(f"base {base} puts a value outside the field (raw {low}..{high})")
        return (self._lanes + (base + self._raw_off - _BIAS) * self._ones).to_bytes(self._size, "big")


_BIAS: Final = 100
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
        """The alarm level at collection time ``t``: 3 inside an alarm burst (scenario ``alarm-burst``;
        counted from ``start``, so every vehicle of a fleet is in the same burst at once), else 0."""
        if self.scenario != "alarm-burst":
            return 0
        since = (t - self.start).total_seconds()
        if since < ALARM_BURST_START:
            return 0
        in_burst = ALARM_BURST_START <= since % ALARM_BURST_PERIOD < ALARM_BURST_START + ALARM_BURST_SECONDS
        return ALARM_BURST_LEVEL if in_burst else 0

    # ---- reporting

    @property
    def gear(self) -> GearPosition:
        return GearPosition.DRIVE if self.mode == DRIVE else GearPosition.PARK

    def insulation(self) -> int:
        """Insulation resistance (kΩ): healthy 30-60 MΩ, or about 300 Ω/V during an alarm burst."""
        if self.alarm:
            return int(self.pack_voltage * 0.3)
        return 40000 + self.seed % 20000

    def _sample(self, t: datetime) -> _Sample:
        """The values of the report at the UTC-aware ``t`` (whole second), shared by ``report`` (the model
        objects) and ``encode`` (the wire bytes), so the two always agree."""
        if t.tzinfo is None:
            raise ValueError("report time must be timezone-aware (UTC)")
        t = t.replace(microsecond=0)
        self.alarm = self.alarm_at(t)
        base_mv = round((ocv(self.soc) - self.current * CELL_R_OHM) * 1000.0)
        pack_v = round((base_mv * self.n_cells + self._cells_off.total) / 1000.0, 1)  # the sum of the cells
        driving = self.mode == DRIVE
        point = _route().at(self.distance)
        return _Sample(
            t, base_mv, pack_v, round(self.current, 1), round(self.pack_temp), driving, self.mode,
            round(self.speed, 1) if driving else 0.0, round(self.mileage, 1), round(self.soc),
            self.insulation(), round(point.longitude_deg, 6), round(point.latitude_deg, 6))

    def report(self, t: datetime) -> RealtimeReport:
        """The realtime report collected at the UTC-aware ``t`` (whole second) from the present state."""
        s = self._sample(t)
        e25 = self.edition is Edition.E2025
        spread, probes = self._cells_off, self._probe_off
        cells: tuple[float, ...] = spread.values(s.base_mv)
        temps: tuple[int, ...] = probes.values(s.pack_temp)
        pack_v, current, driving = s.pack_v, s.current, s.driving
        charging = s.mode == CHARGE
        state = VehicleState.STARTED if driving else VehicleState.STOPPED
        if charging:
            cstate = ChargingState.PARKED_CHARGING
        elif s.mode == COMPLETE:
            cstate = ChargingState.CHARGING_COMPLETE
        else:
            cstate = ChargingState.NOT_CHARGING
        dcdc = DcDcState.WORKING if driving or charging else DcDcState.DISCONNECTED
        gear = Gear(self.gear, drive_force=driving and self.torque > 0,
                    brake_force=driving and self.torque < 0)
        blocks: list[InfoBlock] = []
        if e25:
            blocks.append(VehicleData2025(state, cstate, RunningMode.ELECTRIC, s.speed, s.mileage, pack_v,
                                          current, s.soc, dcdc, gear, s.insulation))
        else:
            accel, brake = self._pedals()
            blocks.append(VehicleData(state, cstate, RunningMode.ELECTRIC, s.speed, s.mileage, pack_v,
                                      current, s.soc, dcdc, gear, s.insulation, accel, brake))
        if not charging:
            blocks.append(self._motors(e25, pack_v, current))
        if e25:
            blocks.append(Location2025(LocationStatus(0), CoordinateSystem.WGS84, s.longitude, s.latitude))
            blocks.append(self._alarm_2025())
            blocks.append(ParallelUnitVoltages((PackVoltages(1, pack_v, current, cells),)))
        else:
            blocks.append(Location(LocationStatus(0), s.longitude, s.latitude))
            blocks.append(Extremes(1, spread.hi + 1, cells[spread.hi], 1, spread.lo + 1, cells[spread.lo],
                                   1, probes.hi + 1, temps[probes.hi], 1, probes.lo + 1, temps[probes.lo]))
            flags = GeneralAlarmFlag.INSULATION if self.alarm else GeneralAlarmFlag(0)
            blocks.append(Alarm(AlarmLevel(self.alarm), flags))
            blocks.append(CellVoltages((SubsystemVoltages(1, pack_v, current, len(cells), 1, cells),)))
        blocks.append(Temperatures((SubsystemTemperatures(1, temps),)))
        return RealtimeReport(s.time, tuple(blocks))

    def encode(self, t: datetime) -> bytes:
        """The data unit (time and info blocks) of ``report(t)``, packed directly from the state: the
        same bytes as ``agent.protocol.codec`` makes of ``report(t)`` (tests/fleet/test_lite.py compares
        them), without building the model objects — the fleet's hot path."""
        s = self._sample(t)
        spread, probes = self._cells_off, self._probe_off
        driving, mode = s.driving, s.mode
        charging = mode == CHARGE
        r_pack_v = round(s.pack_v * 10)
        state = _STARTED if driving else _STOPPED
        cstate = _PARKED_CHARGING if charging else (_CHARGING_COMPLETE if mode == COMPLETE else _NOT_CHARGING)
        dcdc = _DCDC_WORKING if driving or charging else _DCDC_OFF
        gear = (_GEAR_DRIVE | (self.torque > 0) << 5 | (self.torque < 0) << 4) if driving else _GEAR_PARK
        speed, mileage, soc = round(s.speed * 10), round(s.mileage * 10), s.soc
        lon, lat, status = _coordinates(s.longitude, s.latitude)
        r_current = round(s.current * 10)
        if self.edition is Edition.E2025:
            head = _V25.pack(0x01, state, cstate, _ELECTRIC, speed, mileage, r_pack_v, r_current + 30000, soc,
                             dcdc, gear, s.insulation)
            motors = b"" if charging else self._motors_bytes(True, s.pack_v, s.current)
            alarm = (_A25_ON.pack(0x06, self.alarm, _INSULATION_FLAG, 1, _INSULATION_BIT, self.alarm)
                     if self.alarm else _A25_OFF)
            tail = _L25.pack(0x05, status, _WGS84, lon, lat) + alarm + _P25.pack(
                0x07, 1, 1, r_pack_v, r_current + 30000, self.n_cells)
            temps = _T25
        else:
            accel, brake = self._pedals()
            head = _V16.pack(0x01, state, cstate, _ELECTRIC, speed, mileage, r_pack_v, r_current + 10000, soc,
                             dcdc, gear, s.insulation, accel, brake)
            motors = b"" if charging else self._motors_bytes(False, s.pack_v, s.current)
            base_mv, base_t = s.base_mv, s.pack_temp
            cells_hi, cells_lo = spread.hi, spread.lo
            # the extremes are the cells' values (mV / 1000) re-scaled as the codec does, and the probes'
            tail = _L16_X16_A16_C16.pack(
                0x05, status, lon, lat,
                0x06, 1, cells_hi + 1, round((base_mv + spread.offsets[cells_hi]) / 1000.0 * 1000), 1,
                cells_lo + 1, round((base_mv + spread.offsets[cells_lo]) / 1000.0 * 1000), 1, probes.hi + 1,
                base_t + probes.offsets[probes.hi] + 40, 1, probes.lo + 1,
                base_t + probes.offsets[probes.lo] + 40,
                0x07, self.alarm, _INSULATION_FLAG if self.alarm else 0,
                0x08, 1, 1, r_pack_v, r_current + 10000, self.n_cells, 1, self.n_cells)
            temps = _T16
        return b"".join((_time_bytes(s.time), head, motors, tail, spread.encoded(s.base_mv), temps,
                         _COUNT.pack(self.n_probes), probes.encoded(s.pack_temp)))

    def _pedals(self) -> tuple[int, int]:
        if self.mode != DRIVE:
            return 0, 0
        return min(100, max(0, round(self.torque / 3.1))), min(100, max(0, round(-self.torque / 3.1)))

    def _motor_values(self, pack_v: float, current: float) -> tuple[MotorState, int, float, int, int, float]:
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
        mcurrent = round(max(-1000.0, min(1000.0, current - AUX_W / max(pack_v, 1.0))), 1) if driving else 0.0
        return mstate, rpm, torque, round(self.motor_temp - 5.0), round(self.motor_temp), mcurrent

    def _motors(self, e25: bool, pack_v: float, current: float) -> DriveMotors | DriveMotors2025:
        mstate, rpm, torque, inverter, motor, mcurrent = self._motor_values(pack_v, current)
        if e25:
            return DriveMotors2025((DriveMotor2025(1, mstate, inverter, rpm, torque, motor),))
        return DriveMotors((DriveMotor(1, mstate, inverter, rpm, torque, motor,
                                       pack_v if self.mode == DRIVE else 0.0, mcurrent),))

    def _motors_bytes(self, e25: bool, pack_v: float, current: float) -> bytes:
        mstate, rpm, torque, inverter, motor, mcurrent = self._motor_values(pack_v, current)
        if e25:
            return _M25.pack(0x02, 1, 1, mstate, inverter + 40, rpm + 32000, round(torque * 10) + 200000,
                             motor + 40)
        volts = round((pack_v if self.mode == DRIVE else 0.0) * 10)
        return _M16.pack(0x02, 1, 1, mstate, inverter + 40, rpm + 20000, round(torque * 10) + 20000,
                         motor + 40, volts, round(mcurrent * 10) + 10000)

    def _alarm_2025(self) -> Alarm2025:
        if self.alarm:
            bit = 11  # insulation
            return Alarm2025(AlarmLevel(self.alarm), GeneralAlarmFlag.INSULATION,
                             flag_levels=(FlagLevel(bit, AlarmLevel(self.alarm)),))
        return Alarm2025(AlarmLevel.NONE, GeneralAlarmFlag(0))


class _Sample(NamedTuple):
    """What one report says, in the model's units and roundings (see ``LiteVehicle._sample``)."""

    time: datetime
    base_mv: int
    pack_v: float
    current: float
    pack_temp: int
    driving: bool
    mode: int
    speed: float
    mileage: float
    soc: int
    insulation: int
    longitude: float
    latitude: float


# ---- the wire layouts of ``LiteVehicle.encode`` (type byte first; GB/T 32960 2016 §5 / 2025 Tables 10-24)

_V16: Final = struct.Struct(">BBBBHIHHBBBHBB")  # 0x01 vehicle, Annex B tail (pedals): 20 bytes
_V25: Final = struct.Struct(">BBBBHIHHBBBH")  # 0x01 vehicle 2025: 18 bytes
_M16: Final = struct.Struct(">BBBBBHHBHH")  # 0x02, one motor of 12 bytes
_M25: Final = struct.Struct(">BBBBBHIB")  # 0x02, one motor of 10 bytes (DWORD torque)
_L16: Final = struct.Struct(">BBII")  # 0x05 location
_L25: Final = struct.Struct(">BBBII")  # 0x05 location 2025 (coordinate system)
_X16: Final = struct.Struct(">BBBHBBHBBBBBB")  # 0x06 extremes 2016
_A16: Final = struct.Struct(">BBI4x")  # 0x07 alarm 2016: level, flags, four empty fault lists
_A25_ON: Final = struct.Struct(">BBI4xBBB")  # 0x06 alarm 2025: no fault lists, one flag level
_C16: Final = struct.Struct(">BBBHHHHB")  # 0x08: one record head + its cell count BYTE
_P25: Final = struct.Struct(">BBBHHH")  # 0x07: one pack head + its unit count WORD
_T16: Final = bytes((0x09, 1, 1))  # temperatures: type, one subsystem, its number; then the probe count
_T25: Final = bytes((0x08, 1, 1))
_COUNT: Final = struct.Struct(">H")
#: 2016 0x05 location, 0x06 extremes, 0x07 alarm and the 0x08 head in one pack (they always follow 0x02)
_L16_X16_A16_C16: Final = struct.Struct(">" + "".join(x.format[1:] for x in (_L16, _X16, _A16, _C16)))
_A25_OFF: Final = struct.pack(">BBI4xB", 0x06, 0, 0, 0)
_STARTED, _STOPPED = int(VehicleState.STARTED), int(VehicleState.STOPPED)
_PARKED_CHARGING = int(ChargingState.PARKED_CHARGING)
_CHARGING_COMPLETE = int(ChargingState.CHARGING_COMPLETE)
_NOT_CHARGING = int(ChargingState.NOT_CHARGING)
_DCDC_WORKING, _DCDC_OFF = int(DcDcState.WORKING), int(DcDcState.DISCONNECTED)
_ELECTRIC = int(RunningMode.ELECTRIC)
_GEAR_DRIVE, _GEAR_PARK = int(GearPosition.DRIVE), int(GearPosition.PARK)
_WGS84 = int(CoordinateSystem.WGS84)
_INSULATION_FLAG = int(GeneralAlarmFlag.INSULATION)
_INSULATION_BIT: Final = 11
_TIMES: dict[datetime, bytes] = {}


def _time_bytes(t: datetime) -> bytes:
    """The 6 time bytes (Beijing time, §4.1); the fleet's vehicles share seconds, so they are cached."""
    got = _TIMES.get(t)
    if got is None:
        if len(_TIMES) >= 256:
            _TIMES.clear()
        bj = t.astimezone(BEIJING)
        got = _TIMES[t] = wire.encode_time((bj.year, bj.month, bj.day, bj.hour, bj.minute, bj.second))
    return got


def _coordinates(lon: float, lat: float) -> tuple[int, int, int]:
    """Raw longitude and latitude (10⁻⁶ degree magnitudes) and the hemisphere bits of the status byte
    (bit 2 west, bit 1 south; §5.6), as the codec sets them for a status of 0."""
    r_lon, r_lat = round(abs(lon) * 1000000), round(abs(lat) * 1000000)
    return r_lon, r_lat, (0x04 if lon < 0 and r_lon else 0) | (0x02 if lat < 0 and r_lat else 0)


__all__ = ["SCENARIOS", "LiteVehicle", "iccid_for", "ocv", "vin_for"]
