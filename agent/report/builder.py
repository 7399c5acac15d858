"""Snapshot + alarm state -> ``RealtimeReport`` of either edition (the info blocks, in wire order).

``build_report(snapshot, alarm, edition, options)`` is pure. Value rules (docs/reporting.md):

* ``None`` (not mapped): the field's invalid code inside a block that is sent; a block with nothing
  mapped is left out, except the mandatory ones (vehicle 0x01, location 0x05, alarm 0x07/0x06), which are
  always sent.
* ``Special.INVALID`` (stale) -> the field's invalid code; ``Special.ABNORMAL`` -> its abnormal code.
* Numbers are quantised to the field's resolution; a value outside the standard's range becomes
  ``Special.ABNORMAL`` (never clamped), except: SOC is clamped to 0..100 (a BMS counting past full), the
  insulation resistance to 60000 kΩ (the top of the measuring range), and a negative vehicle speed is
  reported as its magnitude.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

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
    Engine,
    Engine2025,
    EngineState,
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
    Special,
    SubsystemTemperatures,
    SubsystemVoltages,
    Temperatures,
    VehicleData,
    VehicleData2025,
    VehicleState,
)
from agent.report.alarms import FLAGS_2016, FLAGS_2025, AlarmState
from agent.report.snapshot import MotorSnapshot, Snapshot, SubsystemSnapshot

log = logging.getLogger(__name__)

_INV: Final = Special.INVALID
_ABN: Final = Special.ABNORMAL

#: 2016 has no sentinel for the insulation resistance: what an unknown value is sent as (0xFFFF, the
#: 2016 "invalid" WORD pattern that 2025 made official; 0 would read as an insulation fault)
INSULATION_UNKNOWN_2016: Final = 0xFFFF


@dataclass(frozen=True)
class BuildOptions:
    """Builder choices.

    * ``coordinate_system``: 2025 0x05 coordinate-system byte (GNSS gives WGS-84).
    * ``cell_voltages`` / ``temperatures``: send the per-cell / per-probe blocks (2016 0x08/0x09,
      2025 0x07/0x08) when the snapshot carries cells / probes.
    * ``extremes``: send 2016 0x06 when the BMS extremes or the cells/probes are mapped.
    """

    coordinate_system: CoordinateSystem = CoordinateSystem.WGS84
    cell_voltages: bool = True
    temperatures: bool = True
    extremes: bool = True


DEFAULT_OPTIONS: Final = BuildOptions()


# =========================================================================== value conversion


def _lin(v: object, div: int, lo: float, hi: float) -> float | Special:
    """A physical value quantised to 1/div, or a sentinel: INVALID for None/stale, ABNORMAL out of range."""
    if v is None:
        return _INV
    if isinstance(v, Special):
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return _ABN
    q = round(v * div)
    if not round(lo * div) <= q <= round(hi * div):
        return _ABN
    return q / div


def _int(v: object, lo: int, hi: int) -> int | Special:
    """A physical value rounded to an integer in lo..hi, or a sentinel."""
    if v is None:
        return _INV
    if isinstance(v, Special):
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return _ABN
    q = round(v)
    return q if lo <= q <= hi else _ABN


def _temp(v: object) -> int | Special:
    """°C with offset 40: −40..210."""
    return _int(v, -40, 210)


def _code(v: object, enum: type[IntEnum]) -> int | Special:
    """A coded value: the enum member, or a sentinel (ABNORMAL for a code the standard does not define)."""
    if v is None:
        return _INV
    if isinstance(v, Special):
        return v
    if isinstance(v, enum):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return enum(v)
        except ValueError:
            pass
    return _ABN  # a code the standard does not define


def _flag(v: object) -> bool:
    return v is True or (isinstance(v, (int, float)) and not isinstance(v, bool) and v != 0)


def _soc(v: object) -> int | Special:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return round(min(100.0, max(0.0, float(v))))
    return _int(v, 0, 100)


# =========================================================================== blocks


def _gear(values: Mapping[str, object], edition: Edition) -> Gear:
    g = values.get("gear")
    drive = _flag(values.get("drive_force"))
    brake = _flag(values.get("brake_force"))
    if isinstance(g, GearPosition):
        return Gear(g, drive, brake)
    if isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= 15:
        return Gear(GearPosition(g), drive, brake)
    # unknown gear: 2025 sets its invalid bit; 2016 has none and sends neutral
    return Gear(GearPosition.NEUTRAL, drive, brake, invalid=edition is Edition.E2025)


def _insulation(v: object, edition: Edition) -> int | Special:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 60000:
        v = 60000
    value = _int(v, 0, 60000)
    if edition is Edition.E2016 and isinstance(value, Special):
        return INSULATION_UNKNOWN_2016
    return value


def _speed(v: object, hi: float) -> float | Special:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
        v = -v
    return _lin(v, 10, 0, hi)


def vehicle_block(s: Snapshot, edition: Edition) -> VehicleData | VehicleData2025:
    """0x01 whole-vehicle data (2016 20 bytes incl. pedals; 2025 18 bytes)."""
    v = s.vehicle
    e25 = edition is Edition.E2025
    common = {
        "vehicle_state": _code(v.get("vehicle_state"), VehicleState),
        "charging_state": _code(v.get("charging_state"), ChargingState),
        "running_mode": _code(v.get("running_mode"), RunningMode),
        "speed": _speed(v.get("speed"), 500 if e25 else 220),
        "mileage": _lin(v.get("mileage"), 10, 0, 999999.9),
        "total_voltage": _lin(v.get("total_voltage"), 10, 0, 6000 if e25 else 1000),
        "total_current": _lin(v.get("total_current"), 10, -3000 if e25 else -1000, 3000 if e25 else 1000),
        "soc": _soc(v.get("soc")),
        "dcdc_state": _code(v.get("dcdc_state"), DcDcState),
        "gear": _gear(v, edition),
        "insulation_resistance": _insulation(v.get("insulation_resistance"), edition),
    }
    if e25:
        return VehicleData2025(**common)  # type: ignore[arg-type]
    return VehicleData(
        **common,  # type: ignore[arg-type]
        accelerator_pedal=_int(v.get("accelerator_pedal"), 0, 100),
        brake_pedal=_int(v.get("brake_pedal"), 0, 101),
    )


def _motor_number(m: MotorSnapshot) -> int | Special:
    return m.number if 1 <= m.number <= 253 else _ABN


def motors_block(s: Snapshot, edition: Edition) -> DriveMotors | DriveMotors2025 | None:
    """0x02 drive motors; None when no motor is mapped (or more than 253: the rest are dropped)."""
    if not s.motors:
        return None
    motors = s.motors[:253]
    if edition is Edition.E2025:
        return DriveMotors2025(
            tuple(
                DriveMotor2025(
                    number=_motor_number(m),
                    state=_code(m.values.get("state"), MotorState),
                    controller_temperature=_temp(m.values.get("controller_temperature")),
                    speed=_int(m.values.get("speed"), -32000, 33531),
                    torque=_lin(m.values.get("torque"), 10, -20000, 20000),
                    temperature=_temp(m.values.get("temperature")),
                )
                for m in motors
            )
        )
    return DriveMotors(
        tuple(
            DriveMotor(
                number=_motor_number(m),
                state=_code(m.values.get("state"), MotorState),
                controller_temperature=_temp(m.values.get("controller_temperature")),
                speed=_int(m.values.get("speed"), -20000, 45531),
                torque=_lin(m.values.get("torque"), 10, -2000, 4553.1),
                temperature=_temp(m.values.get("temperature")),
                controller_voltage=_lin(m.values.get("controller_voltage"), 10, 0, 6000),
                controller_current=_lin(m.values.get("controller_current"), 10, -1000, 1000),
            )
            for m in motors
        )
    )


def engine_block(s: Snapshot, edition: Edition) -> Engine | Engine2025 | None:
    """0x04 engine (hybrids), when mapped."""
    if s.engine is None:
        return None
    e = s.engine
    speed = _int(e.get("crankshaft_speed"), 0, 60000)
    if edition is Edition.E2025:
        return Engine2025(speed)
    return Engine(_code(e.get("state"), EngineState), speed, _lin(e.get("fuel_consumption"), 100, 0, 600))


def location_block(s: Snapshot, edition: Edition, options: BuildOptions) -> Location | Location2025:
    """0x05 location: the fix, or the last known position with the invalid-fix bit; with no position at all
    (never had a fix, or GNSS not mapped) the invalid-fix bit and INVALID coordinates."""
    p = s.position
    lon: float | Special = _INV
    lat: float | Special = _INV
    status = LocationStatus.INVALID_FIX
    if p is not None and math.isfinite(p.latitude) and math.isfinite(p.longitude):
        lon = _coord(p.longitude, 180.0)
        lat = _coord(p.latitude, 90.0)
        if p.valid and not isinstance(lon, Special) and not isinstance(lat, Special):
            status = LocationStatus(0)
        if isinstance(lon, float) and lon < 0:
            status |= LocationStatus.WEST
        if isinstance(lat, float) and lat < 0:
            status |= LocationStatus.SOUTH
    if edition is Edition.E2025:
        return Location2025(status, options.coordinate_system, lon, lat)
    return Location(status, lon, lat)


def _coord(v: float, limit: float) -> float | Special:
    q = round(v * 1_000_000)
    return q / 1_000_000 if abs(q) <= limit * 1_000_000 else _ABN


def _best(
    subs: tuple[SubsystemSnapshot, ...], attr: str, want_max: bool
) -> tuple[float, int, int] | None:
    """(value, subsystem number, 1-based index) of the max/min fresh entry; first occurrence wins."""
    best: tuple[float, int, int] | None = None
    for sub in subs:
        for i, x in enumerate(getattr(sub, attr)):
            if isinstance(x, Special):
                continue
            if best is None or (x > best[0] if want_max else x < best[0]):
                best = (float(x), sub.number, i + 1)
    return best


def _code_250(v: object) -> int | Special:
    """A 2016 0x06 subsystem/cell/probe number: 1..250; a larger one cannot be expressed (ABNORMAL)."""
    if v is None:
        return _INV
    if isinstance(v, Special):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return v if 1 <= v <= 250 else _ABN
    return _ABN


def _extreme_group(
    s: Snapshot, key: str, attr: str, want_max: bool, convert: str
) -> tuple[int | Special, int | Special, float | int | Special]:
    """(subsystem, index, value) from the BMS's mapped extremes, else computed from the cells/probes."""
    ex = s.extremes
    if key in ex:
        value = ex[key]
        sub = ex.get(f"{key}_subsystem")
        if sub is None and len(s.subsystems) <= 1:
            sub = s.subsystems[0].number if s.subsystems else 1
        number, index = _code_250(sub), _code_250(ex.get(f"{key}_index"))
    else:
        best = _best(s.subsystems, attr, want_max)
        if best is None:
            return _INV, _INV, _INV
        value, number, index = best[0], _code_250(best[1]), _code_250(best[2])
    converted = _lin(value, 1000, 0, 15) if convert == "mv" else _temp(value)
    return number, index, converted


def extremes_block(s: Snapshot) -> Extremes | None:
    """2016 0x06 extremes: the BMS's when mapped, else argmax/argmin over the cells and probes
    (1-based numbers; a number above 250 is sent as ABNORMAL); None when nothing is mapped."""
    has_cells = any(sub.cell_voltages for sub in s.subsystems)
    has_temps = any(sub.temperatures for sub in s.subsystems)
    if not (has_cells or has_temps or s.extremes):
        return None
    vmax = _extreme_group(s, "max_cell_voltage", "cell_voltages", True, "mv")
    vmin = _extreme_group(s, "min_cell_voltage", "cell_voltages", False, "mv")
    tmax = _extreme_group(s, "max_temperature", "temperatures", True, "t")
    tmin = _extreme_group(s, "min_temperature", "temperatures", False, "t")
    return Extremes(
        max_voltage_subsystem=vmax[0],
        max_voltage_cell=vmax[1],
        max_cell_voltage=vmax[2],
        min_voltage_subsystem=vmin[0],
        min_voltage_cell=vmin[1],
        min_cell_voltage=vmin[2],
        max_temperature_subsystem=tmax[0],
        max_temperature_probe=tmax[1],
        max_temperature=tmax[2],  # type: ignore[arg-type]
        min_temperature_subsystem=tmin[0],
        min_temperature_probe=tmin[1],
        min_temperature=tmin[2],  # type: ignore[arg-type]
    )


def _sub_voltage(s: Snapshot, sub: SubsystemSnapshot) -> object:
    if sub.voltage is not None or len(s.subsystems) > 1:
        return sub.voltage
    return s.value("total_voltage")


def _sub_current(s: Snapshot, sub: SubsystemSnapshot) -> object:
    if sub.current is not None or len(s.subsystems) > 1:
        return sub.current
    return s.value("total_current")


def _cells(sub: SubsystemSnapshot) -> tuple[float | Special, ...]:
    return tuple(_lin(x, 1000, 0, 60) for x in sub.cell_voltages)


def cell_voltages_block(s: Snapshot, edition: Edition) -> CellVoltages | ParallelUnitVoltages | None:
    """2016 0x08 (one record per subsystem; the codec splits > 200 cells) / 2025 0x07 (≤ 50 packs)."""
    subs = [sub for sub in s.subsystems if sub.cell_voltages]
    if not subs:
        return None
    if edition is Edition.E2025:
        if len(subs) > 50:
            log.warning("%d packs: 2025 0x07 carries at most 50; the rest are left out", len(subs))
        return ParallelUnitVoltages(
            tuple(
                PackVoltages(
                    number=sub.number if 1 <= sub.number <= 50 else _ABN,
                    voltage=_lin(_sub_voltage(s, sub), 10, 0, 6000),
                    current=_lin(_sub_current(s, sub), 10, -3000, 3000),
                    cell_voltages=_cells(sub)[:65531],
                )
                for sub in subs[:50]
            )
        )
    return CellVoltages(
        tuple(
            SubsystemVoltages(
                number=sub.number if 1 <= sub.number <= 250 else _ABN,
                voltage=_lin(_sub_voltage(s, sub), 10, 0, 1000),
                current=_lin(_sub_current(s, sub), 10, -1000, 1000),
                cell_count=len(sub.cell_voltages[:65531]),
                start_index=1,
                cell_voltages=_cells(sub)[:65531],
            )
            for sub in subs[:250]
        )
    )


def temperatures_block(s: Snapshot, edition: Edition) -> Temperatures | None:
    """2016 0x09 / 2025 0x08 probe temperatures, per subsystem/pack with probes."""
    limit = 50 if edition is Edition.E2025 else 250
    subs = [sub for sub in s.subsystems if sub.temperatures][:limit]
    if not subs:
        return None
    return Temperatures(
        tuple(
            SubsystemTemperatures(
                number=sub.number if 1 <= sub.number <= limit else _ABN,
                temperatures=tuple(_temp(t) for t in sub.temperatures[:65531]),
            )
            for sub in subs
        )
    )


def _codes(codes: tuple[int, ...], limit: int, group: str) -> tuple[int, ...]:
    kept = tuple(c & 0xFFFFFFFF for c in codes[:limit])
    if len(codes) > limit:
        log.warning("%d %s fault codes: only %d fit the alarm block", len(codes), group, limit)
    return kept


def alarm_block(alarm: AlarmState, edition: Edition) -> Alarm | Alarm2025:
    """2016 0x07 / 2025 0x06. 2016 keeps flags 0-18 and caps the level at 3 (no level 4, no bit 23)."""
    if edition is Edition.E2025:
        flags = GeneralAlarmFlag(int(alarm.flags) & int(FLAGS_2025))
        levels = {int(f): lv for f, lv in alarm.levels.items()}
        pairs = tuple(
            FlagLevel(bit, AlarmLevel(levels.get(1 << bit, alarm.max_level)))
            for bit in range(28)
            if flags >> bit & 1
        )
        top = max((p.level for p in pairs), default=AlarmLevel.NONE)
        return Alarm2025(
            max_level=AlarmLevel(top),
            general_flags=flags,
            ress_faults=_codes(alarm.ress_faults, 253, "ress"),
            motor_faults=_codes(alarm.motor_faults, 253, "motor"),
            engine_faults=_codes(alarm.engine_faults, 253, "engine"),
            other_faults=_codes(alarm.other_faults, 253, "other"),
            flag_levels=pairs,
        )
    flags = GeneralAlarmFlag(int(alarm.flags) & int(FLAGS_2016))
    return Alarm(
        max_level=AlarmLevel(min(int(alarm.max_level), 3)),
        general_flags=flags,
        ress_faults=_codes(alarm.ress_faults, 252, "ress"),
        motor_faults=_codes(alarm.motor_faults, 252, "motor"),
        engine_faults=_codes(alarm.engine_faults, 252, "engine"),
        other_faults=_codes(alarm.other_faults, 252, "other"),
    )


def parked_charging(s: Snapshot) -> bool:
    """Parked and charging: motors (and engine) data are not sent (spec §5.1; 2025 §3.5)."""
    return s.value("charging_state") == ChargingState.PARKED_CHARGING


def build_report(
    snapshot: Snapshot,
    alarm: AlarmState,
    edition: Edition,
    options: BuildOptions = DEFAULT_OPTIONS,
) -> RealtimeReport:
    """The realtime record of ``snapshot`` (its collection time) for ``edition``, blocks in type order."""
    s = snapshot
    blocks: list[InfoBlock | None] = [vehicle_block(s, edition)]
    parked = parked_charging(s)
    blocks.append(None if parked else motors_block(s, edition))
    blocks.append(None if parked else engine_block(s, edition))
    blocks.append(location_block(s, edition, options))
    if edition is Edition.E2025:
        blocks.append(alarm_block(alarm, edition))
        blocks.append(cell_voltages_block(s, edition) if options.cell_voltages else None)
        blocks.append(temperatures_block(s, edition) if options.temperatures else None)
    else:
        blocks.append(extremes_block(s) if options.extremes else None)
        blocks.append(alarm_block(alarm, edition))
        blocks.append(cell_voltages_block(s, edition) if options.cell_voltages else None)
        blocks.append(temperatures_block(s, edition) if options.temperatures else None)
    return RealtimeReport(time=s.time, blocks=tuple(b for b in blocks if b is not None))


__all__ = [
    "DEFAULT_OPTIONS",
    "INSULATION_UNKNOWN_2016",
    "BuildOptions",
    "alarm_block",
    "build_report",
    "cell_voltages_block",
    "engine_block",
    "extremes_block",
    "location_block",
    "motors_block",
    "parked_charging",
    "temperatures_block",
    "vehicle_block",
]
