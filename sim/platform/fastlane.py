"""The platform's fast lane for realtime and reissue reports: the data unit checked in raw integers.

``scan(edition, data, limits)`` reads a plain (unencrypted) realtime/reissue data unit straight from its
bytes — no info-block objects are built — and returns its ``ReportFacts`` (what the stateful checks and
the window tracker need) when the frame is certain to be *clean*: it decodes, and the per-report checks
that do not depend on earlier frames (``checks.check_values`` and ``checks.check_consistency``) find
nothing. In every other case — an info type it does not handle (engine, fuel cell, custom, signature), a
value outside its documented range, an undefined code, a sentinel of the wrong width, a consistency rule
that fires, a truncated block, the same info type twice — it returns None and the server takes the full
path (decode, object checks, which name the field). So None is never a verdict, only "ask the full path";
a result must never hide a violation (tests/platform/test_fastlane.py compares both on generated and
corrupted reports).

The raw ranges come from the codec's own field tables (``codec._Record`` fields: widths, sentinels,
documented ranges, defined codes), as ``strict.py`` does for decoded objects.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.protocol import codec as _codec
from agent.protocol.model import (
    AlarmLevel,
    CoordinateSystem,
    Edition,
    GearPosition,
    VehicleState,
)
from sim.platform import checks as _checks
from sim.platform.checks import THERMAL_EVENT_BIT, Limits, ReportFacts, power_state
from sim.platform.strict import defined_codes

_RawCheck = Callable[[bytes, int], "tuple[int, ...] | None"]

#: raw values of a narrower sentinel in a WORD / DWORD field: those ``checks.check_sentinel_widths`` flags
_NARROW = {"H": frozenset(_checks._NARROW_WORD), "I": frozenset(_checks._NARROW_DWORD)}
_H8 = timedelta(hours=8)


def raw_record_check(rec: Any, narrow: tuple[str, ...] = ()) -> _RawCheck:
    """A generated ``ok(buf, off)`` for one codec ``_Record``: the raw field values when every one is a
    value the strict encoder takes back from its decoded form (documented range, defined code, or a
    sentinel where the field has them) and no field named in ``narrow`` holds a narrower sentinel;
    None otherwise. The caller has checked the size."""
    ns: dict[str, Any] = {"_up": rec.struct.unpack_from}
    names = [f"v{i}" for i in range(len(rec.fields))]
    conds: list[str] = []
    for i, f in enumerate(rec.fields):
        v = names[i]
        if f.kind in ("gear16", "gear25"):
            continue  # every gear byte decodes to a Gear the strict encoder takes (strict.record_check)
        abn = _codec._ABN_RAW[f.fmt]
        hi = abn - 1 if f.sentinel else _codec._MAX_RAW[f.fmt]
        lo = 0
        if f.hi is not None:
            lo, hi = max(lo, f.lo), min(hi, f.hi)
        if f.kind == "code":
            ns[f"_ok{i}"] = defined_codes(f.enum, f.enum_limit, lo, hi)
            cond = f"{v} in _ok{i}"
        elif f.kind in ("int", "off", "lin"):
            cond = f"{lo} <= {v} <= {hi}"
        else:  # no raw test for this kind: never claim it clean
            cond = "False"
        if f.sentinel:
            cond = f"({cond} or {v} >= {abn})"
        if f.name in narrow:
            ns[f"_n{i}"] = _NARROW[f.fmt]
            cond = f"({cond} and {v} not in _n{i})"
        conds.append(cond)
    unpack = f"{', '.join(names)}{',' if len(names) == 1 else ''} = t"
    src = ["def ok(buf, off):", "    t = _up(buf, off)", f"    {unpack}",
           f"    if {' and '.join(conds) or 'True'}:", "        return t", "    return None"]
    exec(compile("\n".join(src), f"<raw check {rec.name}>", "exec"), ns)
    check: _RawCheck = ns["ok"]
    return check


_VEHICLE_16 = raw_record_check(_codec._VEHICLE_2016, ("total_current",))
_VEHICLE_25 = raw_record_check(_codec._VEHICLE_2025, ("total_current",))
_MOTOR_16 = raw_record_check(_codec._MOTOR_2016, ("speed", "torque", "controller_current"))
_MOTOR_25 = raw_record_check(_codec._MOTOR_2025, ("speed", "torque"))
_EXTREMES_16 = raw_record_check(_codec._EXTREMES_2016)
_SUBSYSTEM = raw_record_check(_codec._SUBSYSTEM_VOLTAGES, ("current",))
_PACK = raw_record_check(_codec._PACK_VOLTAGES, ("current",))
_SIZE = {"vehicle16": _codec._VEHICLE_2016.size, "vehicle25": _codec._VEHICLE_2025.size,
         "motor16": _codec._MOTOR_2016.size, "motor25": _codec._MOTOR_2025.size,
         "extremes16": _codec._EXTREMES_2016.size, "subsystem": _codec._SUBSYSTEM_VOLTAGES.size,
         "pack": _codec._PACK_VOLTAGES.size}

_LOCATION_16 = struct.Struct(">BII")
_LOCATION_25 = struct.Struct(">BBII")
_ALARM_HEAD = struct.Struct(">BI")
_CS_OK = defined_codes(CoordinateSystem, None, 0, 0xFD)
_LEVELS_16 = defined_codes(AlarmLevel, 3, 0, 0xFD)
_LEVELS_25 = defined_codes(AlarmLevel, None, 0, 0xFD)
_NARROW_DWORD = _NARROW["I"]
_STARTED, _STOPPED = int(VehicleState.STARTED), int(VehicleState.STOPPED)
_PARK = int(GearPosition.PARK)

#: a cell-voltage sum this close to the tolerance is left to the full path (the fast lane sums integer
#: millivolts; the object check sums floats, which can differ in the last bits)
_SUM_MARGIN = 1e-6


class _Scan:
    """What the block readers found so far in one data unit."""

    __slots__ = ("e25", "level", "limits", "unit_counts", "vehicle")

    def __init__(self, e25: bool, limits: Limits) -> None:
        self.e25 = e25
        self.limits = limits
        self.level: int | None = None  # highest alarm level (None: no alarm block, or a sentinel)
        self.vehicle: tuple[int, ...] | None = None  # raw fields of the whole-vehicle block
        self.unit_counts: tuple[int, ...] | None = None


#: a block reader: (data, offset after the type byte, end, scan) -> offset after the block, or -1 when
#: the block is truncated or not certainly clean (the full path decides)
_Reader = Callable[[bytes, int, int, _Scan], int]


def _vehicle(data: bytes, off: int, end: int, sc: _Scan) -> int:
    size = _SIZE["vehicle25" if sc.e25 else "vehicle16"]
    if off + size > end:
        return -1
    sc.vehicle = (_VEHICLE_25 if sc.e25 else _VEHICLE_16)(data, off)
    return -1 if sc.vehicle is None else off + size


def _motors(data: bytes, off: int, end: int, sc: _Scan) -> int:
    if off >= end:
        return -1
    n = data[off]
    size = _SIZE["motor25" if sc.e25 else "motor16"]
    off += 1
    if not 1 <= n <= 253 or off + n * size > end:
        return -1
    check = _MOTOR_25 if sc.e25 else _MOTOR_16
    for i in range(n):
        if check(data, off + i * size) is None:
            return -1
    return off + n * size


def _location(data: bytes, off: int, end: int, sc: _Scan) -> int:
    size = 10 if sc.e25 else 9
    if off + size > end:
        return -1
    if sc.e25:
        _status, cs, lon, lat = _LOCATION_25.unpack_from(data, off)
        if cs not in _CS_OK and cs < 0xFE:
            return -1
    else:
        _status, lon, lat = _LOCATION_16.unpack_from(data, off)
    if lon < 0xFFFFFFFE and (lon > 180000000 or lon in _NARROW_DWORD):
        return -1
    if lat < 0xFFFFFFFE and (lat > 90000000 or lat in _NARROW_DWORD):
        return -1
    return off + size


def _extremes(data: bytes, off: int, end: int, sc: _Scan) -> int:
    size = _SIZE["extremes16"]
    if off + size > end or _EXTREMES_16(data, off) is None:
        return -1
    return off + size


def _faults(data: bytes, off: int, end: int, most: int) -> int:
    """Offset after one fault-code list, or -1 (truncated, or more codes than the strict count)."""
    if off >= end:
        return -1
    n = data[off]
    if n >= 0xFE:
        return off + 1  # a sentinel count: an abnormal/invalid list (strict accepts it)
    if n > most:
        return -1
    off += 1 + 4 * n
    return off if off <= end else -1


def _alarm(data: bytes, off: int, end: int, sc: _Scan) -> int:
    if off + 5 > end:
        return -1
    e25 = sc.e25
    level, flags = _ALARM_HEAD.unpack_from(data, off)
    if level not in (_LEVELS_25 if e25 else _LEVELS_16) and level < 0xFE:
        return -1
    if flags >> (28 if e25 else 19):
        return -1
    most = 253 if e25 else 252
    off += 5
    for _group in range(4):
        off = _faults(data, off, end, most)
        if off < 0:
            return -1
    if level < 0xFE:
        sc.level = level
        if 1 <= level <= 4 and flags == 0:
            return -1  # alarm_flags
    if not e25:
        return off
    if off >= end:
        return -1
    n = data[off]
    off += 1
    if n >= 0xFE:
        return off  # a sentinel count: no N5 list (strict accepts it)
    pairs = data[off:off + 2 * n]
    off += 2 * n
    if off > end:
        return -1
    bits, levels = pairs[0::2], pairs[1::2]
    if n and (max(bits) > 31 or max(levels) > 4):
        return -1
    if level < 0xFE:
        if n and max(levels) != level:
            return -1  # alarm_level: the N5 list disagrees
        if level == 4 and THERMAL_EVENT_BIT not in bits:
            return -1
    return off


def _cell_values(data: bytes, off: int, m: int, end: int) -> tuple[int, ...] | None:
    """The ``m`` cell voltages (mV) at ``off``; None when truncated or any is a sentinel or above 60 V."""
    if off + 2 * m > end:
        return None
    cells: tuple[int, ...] = _codec._array("H", m).unpack_from(data, off) if m else ()
    if cells and max(cells) > 60000:
        return None
    return cells


def _sum_ok(total_raw: int, cells: tuple[int, ...], tolerance: float) -> bool:
    """True when ``checks._voltage_sum`` finds nothing for certain: total in 0.1 V, cells in mV."""
    if total_raw >= 0xFFFE or not cells:
        return True  # a sentinel total or no cells: the rule does not apply
    diff = abs(sum(cells) / 1000 - total_raw / 10)
    return diff < tolerance - _SUM_MARGIN


def _cells_2016(data: bytes, off: int, end: int, sc: _Scan) -> int:
    if off >= end:
        return -1
    n = data[off]
    off += 1
    if not 1 <= n <= 250:
        return -1
    counts: list[int] = []
    head = _SIZE["subsystem"]
    tolerance = sc.limits.voltage_sum_tolerance
    for _i in range(n):
        if off + head + 1 > end:
            return -1
        rec = _SUBSYSTEM(data, off)
        if rec is None:
            return -1
        _number, total, _current, cell_count, start = rec
        m = data[off + head]
        off += head + 1
        cells = _cell_values(data, off, m, end) if m <= 200 else None  # > 200: the encoder splits
        if cells is None:
            return -1
        off += 2 * m
        if start == 1 and cell_count == m and not _sum_ok(total, cells, tolerance):
            return -1  # voltage_sum (a record that is the whole pack)
        counts.append(cell_count if cell_count < 0xFFFE else -1)
    sc.unit_counts = tuple(counts)
    return off


def _packs_2025(data: bytes, off: int, end: int, sc: _Scan) -> int:
    if off >= end:
        return -1
    n = data[off]
    off += 1
    if n >= 0xFE:
        return off  # a sentinel count: no packs (strict accepts it)
    if n > 50:
        return -1
    counts: list[int] = []
    head = _SIZE["pack"]
    tolerance = sc.limits.voltage_sum_tolerance
    for _i in range(n):
        if off + head + 2 > end:
            return -1
        rec = _PACK(data, off)
        if rec is None:
            return -1
        m = (data[off + head] << 8) | data[off + head + 1]
        off += head + 2
        cells = _cell_values(data, off, m, end) if m <= 65531 else None
        if cells is None:
            return -1
        off += 2 * m
        if not _sum_ok(rec[1], cells, tolerance):
            return -1  # voltage_sum
        counts.append(m)
    sc.unit_counts = tuple(counts)
    return off


def _temperatures(data: bytes, off: int, end: int, sc: _Scan) -> int:
    if off >= end:
        return -1
    n = data[off]
    off += 1
    if n >= 0xFE:
        return off if sc.e25 else -1  # a sentinel count: 2016 needs 1..250 subsystems
    if not (0 if sc.e25 else 1) <= n <= (50 if sc.e25 else 250):
        return -1
    for _i in range(n):
        if off + 3 > end:
            return -1
        m = (data[off + 1] << 8) | data[off + 2]
        off += 3
        if m >= 0xFFFE:
            continue  # a sentinel count: no probes (strict accepts it)
        temps = data[off:off + m]
        off += m
        if off > end:
            return -1
        if m and max(temps) > 250 and any(250 < x < 0xFE for x in temps):
            return -1
    return off


#: per edition, info type -> reader; types without one (engine, fuel cell, super-capacitor, custom
#: blocks, the 2025 signature marker) always take the full path
_READERS: dict[Edition, dict[int, _Reader]] = {
    Edition.E2016: {0x01: _vehicle, 0x02: _motors, 0x05: _location, 0x06: _extremes, 0x07: _alarm,
                    0x08: _cells_2016, 0x09: _temperatures},
    Edition.E2025: {0x01: _vehicle, 0x02: _motors, 0x05: _location, 0x06: _alarm, 0x07: _packs_2025,
                    0x08: _temperatures},
}


def scan(edition: Edition, data: bytes, limits: Limits) -> ReportFacts | None:
    """The facts of a clean plain realtime/reissue data unit, or None (see the module docstring)."""
    end = len(data)
    if end < 6 or data[0] > 99:
        return None
    try:
        t = datetime(2000 + data[0], data[1], data[2], data[3], data[4], data[5], tzinfo=UTC) - _H8
    except ValueError:
        return None
    sc = _Scan(edition is Edition.E2025, limits)
    readers = _READERS[edition]
    seen: set[int] = set()
    off = 6
    while off < end:
        kind = data[off]
        reader = readers.get(kind)
        if reader is None or kind in seen:
            return None  # not read here, or the same info type twice: the full path decides
        seen.add(kind)
        off = reader(data, off + 1, end, sc)
        if off < 0:
            return None
    if off != end:
        return None
    return _facts(t, sc)


def _facts(t: datetime, sc: _Scan) -> ReportFacts | None:
    """The report's facts, or None when a whole-vehicle consistency rule fires."""
    vehicle = sc.vehicle
    if vehicle is None:
        return ReportFacts(t, sc.level, False, None, sc.unit_counts, None)
    vs, cs, speed, miles, gear = vehicle[0], vehicle[1], vehicle[3], vehicle[4], vehicle[9]
    if speed < 0xFFFE:
        kmh = speed / 10
        if (gear & 0x0F) == _PARK and not (sc.e25 and gear & 0x80) and kmh > 0:
            return None  # speed_in_park
        if vs == _STOPPED and kmh > sc.limits.off_speed_kmh:
            return None  # off_with_speed
    mileage = miles / 10 if miles < 0xFFFFFFFE else None
    return ReportFacts(t, sc.level, vs == _STARTED, mileage, sc.unit_counts, power_state(vs, cs))


__all__ = ["raw_record_check", "scan"]
