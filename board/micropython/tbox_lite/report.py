"""GB/T 32960 data units of the lite terminal (2016 and 2025): realtime body, login, logout.

Byte layouts follow ../shared/spec/gbt32960.md §4-§5 and match ``agent.protocol.codec`` on the wire
(tests decode the firmware's frames with it). Value rules are the report builder's
(agent/report/builder.py): a value out of the standard's range is sent as "abnormal", a missing or
stale one as "invalid"; SOC is clamped to 0..100, insulation to 60000 kOhm (unknown: 0xFFFF in 2016),
a negative speed is sent as its magnitude; an unknown gear is neutral (2025: with its invalid bit).
2025 reports carry no signature block (no signing key on the board; see docs/micropython.md).
"""

import struct
try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INV = None
_BEIJING = 8 * 3600


def beijing_fields(utc_seconds):
    # type: (int) -> tuple[int, int, int, int, int, int]
    """(year, month, day, hour, minute, second) of Beijing time (UTC+8) at Unix time ``utc_seconds``."""
    t = int(utc_seconds) + _BEIJING
    days = t // 86400
    rem = t - days * 86400
    # civil date from days since 1970-01-01 (proleptic Gregorian)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return (year, month, day, rem // 3600, (rem // 60) % 60, rem % 60)


def _q(value, div, lo, hi, width):
    # type: (object, int, float, float, int) -> int
    """Raw wire value of a physical value at 1/div resolution, offset so that ``lo`` is 0."""
    invalid = 0xFF if width == 1 else (0xFFFF if width == 2 else 0xFFFFFFFF)
    if value is None:
        return invalid
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return invalid - 1
    q = round(value * div)
    low = round(lo * div)
    if not low <= q <= round(hi * div):
        return invalid - 1  # abnormal
    return q - low


def _code(value):
    # type: (object) -> int
    if value is None:
        return 0xFF
    if isinstance(value, int) and 0 <= value <= 0xFF:
        return value
    return 0xFE


def _flag(value):
    # type: (object) -> int
    if value is True:
        return 1
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return 1 if number and value != 0 else 0


def vehicle_2016(v):
    # type: (dict[str, Any]) -> bytes
    """0x01 whole-vehicle data (type byte + 20 bytes)."""
    speed = v.get("speed")
    if isinstance(speed, (int, float)) and speed < 0:
        speed = -speed
    soc = v.get("soc")
    if isinstance(soc, (int, float)):
        soc = 0 if soc < 0 else (100 if soc > 100 else soc)
    gear = v.get("gear")
    position = gear if isinstance(gear, int) and not isinstance(gear, bool) and 0 <= gear <= 15 else 0
    gear_byte = position | (_flag(v.get("drive_force")) << 5) | (_flag(v.get("brake_force")) << 4)
    insulation = v.get("insulation_resistance")
    if isinstance(insulation, (int, float)) and insulation > 60000:
        insulation = 60000
    ins = _q(insulation, 1, 0, 60000, 2)
    if ins >= 0xFFFE:
        ins = 0xFFFF  # 2016 defines no sentinel: unknown is sent as 0xFFFF
    return struct.pack(
        ">BBBBHIHHBBBHBB",
        0x01,
        _code(v.get("vehicle_state")),
        _code(v.get("charging_state")),
        _code(v.get("running_mode")),
        _q(speed, 10, 0, 220, 2),
        _q(v.get("mileage"), 10, 0, 999999.9, 4),
        _q(v.get("total_voltage"), 10, 0, 1000, 2),
        _q(v.get("total_current"), 10, -1000, 1000, 2),
        _q(soc, 1, 0, 100, 1),
        _code(v.get("dcdc_state")),
        gear_byte,
        ins,
        _q(v.get("accelerator_pedal"), 1, 0, 100, 1),
        _q(v.get("brake_pedal"), 1, 0, 101, 1),
    )


def motors_2016(motors):
    # type: (list[Any]) -> bytes
    """0x02 drive motors (type byte, count, 12 bytes per motor); b"" without motors."""
    if not motors:
        return b""
    out = bytearray((0x02, len(motors)))
    for number, m in motors:
        out += struct.pack(
            ">BBBHHBHH",
            number if 1 <= number <= 253 else 0xFE,
            _code(m.get("state")),
            _q(m.get("controller_temperature"), 1, -40, 210, 1),
            _q(m.get("speed"), 1, -20000, 45531, 2),
            _q(m.get("torque"), 10, -2000, 4553.1, 2),
            _q(m.get("temperature"), 1, -40, 210, 1),
            _q(m.get("controller_voltage"), 10, 0, 6000, 2),
            _q(m.get("controller_current"), 10, -1000, 1000, 2),
        )
    return bytes(out)


def location_2016(position):
    # type: (tuple[float, float, bool] | None) -> bytes
    """0x05 location from (longitude, latitude, valid) or None (invalid fix, invalid coordinates)."""
    if position is None:
        return struct.pack(">BBII", 0x05, 0x01, 0xFFFFFFFF, 0xFFFFFFFF)
    lon, lat, valid = position
    status = 0 if valid else 1
    if lon < 0:
        status |= 0x04
    if lat < 0:
        status |= 0x02
    lon_raw = _q(abs(lon), 1000000, 0, 180, 4)
    lat_raw = _q(abs(lat), 1000000, 0, 90, 4)
    if lon_raw >= 0xFFFFFFFE or lat_raw >= 0xFFFFFFFE:
        status |= 0x01
    return struct.pack(">BBII", 0x05, status, lon_raw, lat_raw)


def _number_250(value):
    # type: (object) -> int
    if value is None:
        return 0xFF
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= 250 else 0xFE
    return 0xFE


def extremes_2016(e, subsystems):
    # type: (dict[str, Any], int) -> bytes
    """0x06 extreme values from the BMS's mapped extremes; b"" when none is mapped."""
    if not e:
        return b""
    out = bytearray((0x06,))
    for key, volts in (
        ("max_cell_voltage", True),
        ("min_cell_voltage", True),
        ("max_temperature", False),
        ("min_temperature", False),
    ):
        if key not in e:
            out += b"\xff\xff\xff\xff" if volts else b"\xff\xff\xff"
            continue
        sub = e.get(key + "_subsystem", 1 if subsystems <= 1 else None)
        out.append(_number_250(sub))
        out.append(_number_250(e.get(key + "_index")))
        if volts:
            out += struct.pack(">H", _q(e[key], 1000, 0, 15, 2))
        else:
            out.append(_q(e[key], 1, -40, 210, 1))
    return bytes(out)


def _fault_codes(out, codes, limit):
    # type: (bytearray, list[int], int) -> None
    codes = codes[:limit]
    out.append(len(codes))
    for code in codes:
        out += struct.pack(">I", code & 0xFFFFFFFF)


def alarm_2016(level, flags, ress, motor):
    # type: (int, int, list[int], list[int]) -> bytes
    """0x07 alarm data: level (0..3), flags 0-18, RESS and motor fault codes (≤ 252 each)."""
    out = bytearray(struct.pack(">BBI", 0x07, 3 if level > 3 else level, flags & 0x0007FFFF))
    _fault_codes(out, ress, 252)
    _fault_codes(out, motor, 252)
    out += b"\x00\x00"  # no engine, no other fault codes
    return bytes(out)


def alarm_2025(levels, flags, ress, motor):
    # type: (dict[int, int], int, list[int], list[int]) -> bytes
    """2025 0x06 alarm: highest level, flags 0-27, fault codes (≤ 253 each), then each set flag's level."""
    flags &= 0x0FFFFFFF
    pairs = bytearray()
    top = 0
    count = 0
    for bit in range(28):
        if flags >> bit & 1:
            level = levels.get(bit, 1)
            pairs.append(bit)
            pairs.append(level)
            count += 1
            if level > top:
                top = level
    out = bytearray(struct.pack(">BBI", 0x06, top, flags))
    _fault_codes(out, ress, 253)
    _fault_codes(out, motor, 253)
    out += b"\x00\x00"
    out.append(count)
    out += pairs
    return bytes(out)


def vehicle_2025(v):
    # type: (dict[str, Any]) -> bytes
    """2025 0x01 whole-vehicle data (type byte + 18 bytes): wider ranges, gear invalid bit, no pedals."""
    speed = v.get("speed")
    if isinstance(speed, (int, float)) and speed < 0:
        speed = -speed
    soc = v.get("soc")
    if isinstance(soc, (int, float)):
        soc = 0 if soc < 0 else (100 if soc > 100 else soc)
    gear = v.get("gear")
    gear_byte = 0x80  # unknown: neutral with the invalid bit
    if isinstance(gear, int) and not isinstance(gear, bool) and 0 <= gear <= 15:
        gear_byte = gear
    gear_byte |= (_flag(v.get("drive_force")) << 5) | (_flag(v.get("brake_force")) << 4)
    insulation = v.get("insulation_resistance")
    if isinstance(insulation, (int, float)) and insulation > 60000:
        insulation = 60000
    return struct.pack(
        ">BBBBHIHHBBBH",
        0x01,
        _code(v.get("vehicle_state")),
        _code(v.get("charging_state")),
        _code(v.get("running_mode")),
        _q(speed, 10, 0, 500, 2),
        _q(v.get("mileage"), 10, 0, 999999.9, 4),
        _q(v.get("total_voltage"), 10, 0, 6000, 2),
        _q(v.get("total_current"), 10, -3000, 3000, 2),
        _q(soc, 1, 0, 100, 1),
        _code(v.get("dcdc_state")),
        gear_byte,
        _q(insulation, 1, 0, 60000, 2),
    )


def motors_2025(motors):
    # type: (list[Any]) -> bytes
    """2025 0x02 drive motors (10 bytes per motor: speed offset 32000, torque DWORD); b"" without."""
    if not motors:
        return b""
    out = bytearray((0x02, len(motors)))
    for number, m in motors:
        out += struct.pack(
            ">BBBHIB",
            number if 1 <= number <= 253 else 0xFE,
            _code(m.get("state")),
            _q(m.get("controller_temperature"), 1, -40, 210, 1),
            _q(m.get("speed"), 1, -32000, 33531, 2),
            _q(m.get("torque"), 10, -20000, 20000, 4),
            _q(m.get("temperature"), 1, -40, 210, 1),
        )
    return bytes(out)


def location_2025(position):
    # type: (tuple[float, float, bool] | None) -> bytes
    """2025 0x05 location: as 2016 plus the coordinate-system byte (0x01 WGS-84, what GNSS gives)."""
    body = location_2016(position)
    return body[0:2] + b"\x01" + body[2:]


def realtime(edition, utc_seconds, snap, alarm, position, subsystems):
    # type: (int, int, dict[str, Any], tuple[int, int, dict[int, int]], tuple[float, float, bool] | None, int) -> bytes
    """The realtime data unit (0x02 / 0x03) of ``edition``: time + blocks in type order.

    ``alarm`` is ``Alarms.update``'s (highest level, flags, {bit: level}).
    """
    parts = [time_bytes(utc_seconds)]
    vehicle = snap["vehicle"]
    parked_charging = vehicle.get("charging_state") == 0x01  # no motor data (spec §5.1)
    codes = snap["codes"]
    ress = codes.get("ress", [])
    motor = codes.get("motor", [])
    if edition == 2025:
        parts.append(vehicle_2025(vehicle))
        if not parked_charging:
            parts.append(motors_2025(snap["motors"]))
        parts.append(location_2025(position))
        parts.append(alarm_2025(alarm[2], alarm[1], ress, motor))
        return b"".join(parts)
    parts.append(vehicle_2016(vehicle))
    if not parked_charging:
        parts.append(motors_2016(snap["motors"]))
    parts.append(location_2016(position))
    parts.append(extremes_2016(snap["extremes"], subsystems))
    parts.append(alarm_2016(alarm[0], alarm[1], ress, motor))
    return b"".join(parts)


def time_bytes(utc_seconds):
    # type: (int) -> bytes
    y, mo, d, h, mi, s = beijing_fields(utc_seconds)
    return bytes((y - 2000, mo, d, h, mi, s))


def login(edition, utc_seconds, serial, iccid, subsystems, pack_codes=()):
    # type: (int, int, int, bytes, int, tuple[bytes, ...] | list[bytes]) -> bytes
    """0x01 vehicle login: time, serial, ICCID (20 bytes), then 2016: n subsystems and code length
    0 (no codes); 2025: one BMS with ``pack_codes`` (24 characters each) or no BMS when none given."""
    head = time_bytes(utc_seconds) + struct.pack(">H", serial) + (iccid + b"\x00" * 20)[:20]
    if edition != 2025:
        return head + bytes((subsystems, 0))
    if not pack_codes:
        return head + b"\x00"
    codes = b"".join((code + b" " * 24)[:24] for code in pack_codes)
    return head + bytes((1, len(pack_codes))) + codes


def logout(utc_seconds, serial):
    # type: (int, int) -> bytes
    """0x04 vehicle logout: time and the current login serial."""
    return time_bytes(utc_seconds) + struct.pack(">H", serial)
