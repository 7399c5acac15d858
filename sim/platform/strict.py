"""Strict value checks of decoded info blocks without encoding them (the platform's per-report fast path).

``block_ok(edition, block)`` is True only when the strict encoder (``CodecOptions(strict=True)``) would
encode ``block`` without an error; it reads the codec's own field tables (widths, sentinels, documented
ranges, defined codes) and tests the values a decoder produces (enum members, ints, floats, Special)
directly, with no bytes built. Anything it does not recognise — another class, an unusual value type, a
2016 0x08 record the encoder would split, a block kind without a fast test — gives False, and the caller
asks the strict encoder, which decides and names the field (``checks.check_values``). So a False is
never a verdict, only "ask the encoder"; a True must never hide an error (tests/platform/test_strict.py
compares both on generated reports, out-of-range values included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agent.protocol import codec as _codec
from agent.protocol.model import (
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    CoordinateSystem,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Engine,
    Engine2025,
    Extremes,
    FlagLevel,
    FuelCell2025,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    Location,
    Location2025,
    LocationStatus,
    ParallelUnitVoltages,
    Special,
    SubsystemTemperatures,
    SupercapacitorExtremes,
    Temperatures,
    VehicleData,
    VehicleData2025,
)

_Check = Callable[[Any], bool]

def defined_codes(enum: Any, limit: int | None, lo: int, hi: int) -> frozenset[int]:
    """The raw codes of ``enum`` the strict encoder takes: members up to ``limit`` within ``lo..hi``."""
    return frozenset(int(m) for m in enum if (limit is None or m <= limit) and lo <= int(m) <= hi)


def record_check(rec: Any) -> _Check:
    """A generated ``ok(obj)`` for one codec ``_Record``: True when ``rec.pack(obj, strict=True)``
    succeeds for certain (the same tests as ``codec._raw_of`` in strict mode, for the value types a
    decoder produces; any other type is left to the encoder)."""
    ns: dict[str, Any] = {"_cls": rec.cls, "_round": round, "_Sp": Special, "_Gear": Gear,
                          "_GP": GearPosition}
    lines = ["def ok(o):", "    if o.__class__ is not _cls:", "        return False", "    try:"]
    for i, f in enumerate(rec.fields):
        a = f"a{i}"
        top = _codec._MAX_RAW[f.fmt]
        # raw values that are neither sentinel nor too wide
        hi = _codec._ABN_RAW[f.fmt] - 1 if f.sentinel else top
        lo = 0
        if f.hi is not None:  # strict: the documented range
            lo, hi = max(lo, f.lo), min(hi, f.hi)
        special = f" or {a}.__class__ is _Sp" if f.sentinel else ""
        if f.kind == "code":
            ns[f"_E{i}"] = f.enum
            ns[f"_ok{i}"] = defined_codes(f.enum, f.enum_limit, lo, hi)
            cond = f"({a}.__class__ is _E{i} and {a} in _ok{i}){special}"
        elif f.kind == "int":
            cond = f"({a}.__class__ is int and {lo} <= {a} <= {hi}){special}"
        elif f.kind == "off":
            cond = f"({a}.__class__ is int and {lo - f.off} <= {a} <= {hi - f.off}){special}"
        elif f.kind == "lin":
            raw = f"_round({a} * {f.div}) + {f.off}" if f.off else f"_round({a} * {f.div})"
            cond = f"(({a}.__class__ is float or {a}.__class__ is int) and {lo} <= {raw} <= {hi}){special}"
        elif f.kind in ("gear16", "gear25"):
            mask = 0xC0 if f.kind == "gear16" else 0x40
            cond = (f"({a}.__class__ is _Gear and {a}.gear.__class__ is _GP and 0 <= {a}.gear <= 15"
                    f" and {a}.reserved_bits.__class__ is int"
                    f" and not {a}.reserved_bits & {~mask} and {a}.drive_force.__class__ is bool"
                    f" and {a}.brake_force.__class__ is bool and {a}.invalid.__class__ is bool"
                    + (f" and not {a}.invalid)" if f.kind == "gear16" else ")"))
        else:  # no fast test for this kind
            cond = "False"
        lines.append(f"        {a} = o.{f.name}")
        lines.append(f"        if not ({cond}):")
        lines.append("            return False")
    lines += ["    except (TypeError, ValueError, OverflowError, AttributeError):",  # NaN, inf, odd types
              "        return False", "    return True"]
    exec(compile("\n".join(lines), f"<strict check {rec.name}>", "exec"), ns)
    check: _Check = ns["ok"]
    return check


_VEHICLE_16 = record_check(_codec._VEHICLE_2016)
_VEHICLE_25 = record_check(_codec._VEHICLE_2025)
_MOTOR_16 = record_check(_codec._MOTOR_2016)
_MOTOR_25 = record_check(_codec._MOTOR_2025)
_SUBSYSTEM = record_check(_codec._SUBSYSTEM_VOLTAGES)
_PACK = record_check(_codec._PACK_VOLTAGES)
_MV_TABLE = _codec._millivolt_tables()[1]


def _vehicle_2016(b: Any) -> bool:
    if b.accelerator_pedal is None and b.brake_pedal is None:
        return False  # the encoder switches to the reserved-WORD layout: let it decide
    return _VEHICLE_16(b)


def _motors(item: _Check) -> _Check:
    def ok(b: Any) -> bool:
        motors = b.motors
        return motors.__class__ is tuple and 1 <= len(motors) <= 253 and all(map(item, motors))
    return ok


def _coordinate(value: Any, limit: int) -> bool:
    if value.__class__ is float or value.__class__ is int:
        return round(abs(value) * 1000000) <= limit
    return value.__class__ is Special


_CS_OK = defined_codes(CoordinateSystem, None, 0, 0xFD)


def _location(b: Any) -> bool:
    status = b.status
    if (status.__class__ is not LocationStatus and status.__class__ is not int) or not 0 <= status <= 0xFF:
        return False
    try:
        if not (_coordinate(b.longitude, 180000000) and _coordinate(b.latitude, 90000000)):
            return False
    except (ValueError, OverflowError):  # NaN, inf
        return False
    if b.__class__ is Location2025:
        cs = b.coordinate_system
        return (cs.__class__ is CoordinateSystem and cs in _CS_OK) or cs.__class__ is Special
    return True


def _codes(codes: Any, most: int) -> bool:
    if codes.__class__ is Special:
        return True
    if codes.__class__ is not tuple or len(codes) > most:
        return False
    return not codes or (set(map(type, codes)) == {int} and min(codes) >= 0 and max(codes) <= 0xFFFFFFFF)


def _alarm(e25: bool) -> _Check:
    levels = defined_codes(AlarmLevel, None if e25 else 3, 0, 0xFD)
    flag_bits = 28 if e25 else 19
    most = 253 if e25 else 252

    def ok(b: Any) -> bool:
        level = b.max_level
        if not ((level.__class__ is AlarmLevel and level in levels) or level.__class__ is Special):
            return False
        flags = b.general_flags
        if (flags.__class__ is not GeneralAlarmFlag and flags.__class__ is not int) or flags < 0 \
                or flags >> flag_bits:
            return False
        if not (_codes(b.ress_faults, most) and _codes(b.motor_faults, most) and _codes(b.engine_faults, most)
                and _codes(b.other_faults, most)):
            return False
        if not e25:
            return True
        pairs = b.flag_levels
        if pairs.__class__ is Special:
            return True
        if pairs.__class__ is not tuple or len(pairs) > 253:
            return False
        for p in pairs:
            if p.__class__ is not FlagLevel:
                return False
            bit, lv = p.bit, p.level
            if bit.__class__ is not int or not 0 <= bit <= 31:
                return False
            if (lv.__class__ is not AlarmLevel and lv.__class__ is not int) or not 0 <= lv <= 4:
                return False
        return True
    return ok


_NUMBERS = frozenset((float, int))


def _millivolts(cells: Any) -> bool:
    """Cell voltages the strict encoder takes: plain numbers, all finite and within 0..60 V (each then
    encodes as round(v × 1000) ≤ 60000, on the 0.001 V grid or not), tested with C-level min/max/sum and
    no lookup per value; anything else (sentinels among them) goes through the encoder's own fast path."""
    try:
        if cells and set(map(type, cells)) <= _NUMBERS and min(cells) >= 0 and max(cells) <= 60.0 \
                and math.isfinite(sum(cells)):  # a NaN may hide from min/max, never from the sum
            return True
    except (TypeError, OverflowError):
        pass
    return _codec._strict_fast(cells, _MV_TABLE, _codec._MV_TYPES, 60000, 0xFFFE) is not None


_INTS = frozenset((int,))


def _temperatures_ok(temps: Any) -> bool:
    """Probe temperatures the strict encoder takes: ints within −40..210 °C (raw 0..250); else, e.g. with
    sentinels, the encoder's own fast path."""
    if temps and set(map(type, temps)) == _INTS and min(temps) >= -40 and max(temps) <= 210:
        return True
    return _codec._strict_fast(temps, _codec._TEMP_ENC, _codec._TEMP_TYPES, 250, 0xFE) is not None


def _cells_2016(b: Any) -> bool:
    subs = b.subsystems
    if subs.__class__ is not tuple or not 1 <= len(subs) <= 250:
        return False
    for rec in subs:
        if not _SUBSYSTEM(rec):
            return False
        cells = rec.cell_voltages
        if cells.__class__ is not tuple or len(cells) > 200 or not _millivolts(cells):
            return False  # > 200: the encoder splits the record (strict limit), let it decide
    return True


def _packs_2025(b: Any) -> bool:
    packs = b.packs
    if packs.__class__ is Special:
        return True
    if packs.__class__ is not tuple or len(packs) > 50:
        return False
    for pack in packs:
        if not _PACK(pack):
            return False
        cells = pack.cell_voltages
        if cells.__class__ is not tuple or len(cells) > 65531 or not _millivolts(cells):
            return False
    return True


def _temperatures(lo: int, hi: int) -> _Check:
    def ok(b: Any) -> bool:
        subs = b.subsystems
        if subs.__class__ is Special:
            return lo == 0  # an empty list for the strict count
        if subs.__class__ is not tuple or not lo <= len(subs) <= hi:
            return False
        for sub in subs:
            if sub.__class__ is not SubsystemTemperatures:
                return False
            no = sub.number
            if not ((no.__class__ is int and 0 <= no < 0xFE) or no.__class__ is Special):
                return False
            temps = sub.temperatures
            if temps.__class__ is Special:
                continue
            if temps.__class__ is not tuple or len(temps) >= 0xFFFE:
                return False
            if not _temperatures_ok(temps):
                return False
        return True
    return ok


#: per edition, info-block class -> fast test (classes without one are always left to the encoder)
_CHECKS: dict[Edition, dict[type, _Check]] = {
    Edition.E2016: {
        VehicleData: _vehicle_2016,
        DriveMotors: _motors(_MOTOR_16),
        Engine: record_check(_codec._ENGINE_2016),
        Location: _location,
        Extremes: record_check(_codec._EXTREMES_2016),
        Alarm: _alarm(False),
        CellVoltages: _cells_2016,
        Temperatures: _temperatures(1, 250),
    },
    Edition.E2025: {
        VehicleData2025: _VEHICLE_25,
        DriveMotors2025: _motors(_MOTOR_25),
        FuelCell2025: record_check(_codec._FUEL_CELL_2025),
        Engine2025: record_check(_codec._ENGINE_2025),
        Location2025: _location,
        Alarm2025: _alarm(True),
        ParallelUnitVoltages: _packs_2025,
        Temperatures: _temperatures(0, 50),
        SupercapacitorExtremes: record_check(_codec._SUPERCAP_EXTREMES),
    },
}


def block_ok(edition: Edition, block: object) -> bool:
    """True: the strict encoder accepts ``block`` for certain. False: ask the encoder."""
    check = _CHECKS[edition].get(block.__class__)
    return check is not None and check(block)


__all__ = ["block_ok", "defined_codes", "record_check"]
