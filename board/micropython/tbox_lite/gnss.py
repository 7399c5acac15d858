"""A GNSS receiver on a UART: NMEA RMC sentences -> ``Terminal.set_position``.

Only ``$xxRMC`` is read (time, status, latitude, longitude): it is what every receiver sends by
default and all the 0x05 location block needs. Sentences with a bad checksum or fields are counted
and skipped; a receiver that loses its fix keeps reporting the last position with the invalid bit.
"""

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython: no typing module; annotations live in comments
    TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _degrees(value, hemisphere):
    # type: (str, str) -> float
    """ddmm.mmmm / dddmm.mmmm and N/S/E/W -> signed degrees."""
    dot = value.index(".") if "." in value else len(value)
    degrees = int(value[: dot - 2])
    minutes = float(value[dot - 2 :])
    result = degrees + minutes / 60.0
    return -result if hemisphere in ("S", "W") else result


def parse_rmc(line):
    # type: (bytes) -> tuple[float, float, bool] | None
    """(longitude, latitude, valid) of one RMC sentence; None for other sentences or bad input.

    Without a fix (status V) the coordinates are meaningless (often empty): use the last position."""
    line = line.strip()
    if len(line) < 10 or line[:1] != b"$" or line[3:6] != b"RMC":
        return None
    star = line.rfind(b"*")
    if star < 0 or star + 3 > len(line):
        return None
    check = 0
    for b in line[1:star]:
        check ^= b
    try:
        if check != int(line[star + 1 : star + 3], 16):
            return None
        fields = line[1:star].decode().split(",")
        if len(fields) < 7:
            return None
        if fields[2] != "A" and not (fields[3] and fields[5]):
            return 0.0, 0.0, False  # no fix, no coordinates (the caller keeps the last position)
        if not fields[3] or not fields[5]:
            return None
        lat = _degrees(fields[3], fields[4])
        lon = _degrees(fields[5], fields[6])
    except (ValueError, UnicodeError):
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lon, lat, fields[2] == "A"


class Gnss:
    """Reads ``uart`` (``read()`` -> bytes | None) line by line and feeds ``terminal.set_position``."""

    def __init__(self, uart, terminal):
        # type: (Any, Any) -> None
        self.uart = uart
        self.terminal = terminal
        self.fixes = 0
        self.bad = 0
        self._line = b""

    def poll(self):
        # type: () -> None
        data = self.uart.read()
        if not data:
            return
        buf = self._line + data
        lines = buf.split(b"\n")
        self._line = lines.pop()
        if len(self._line) > 120:  # no newline in sight: garbage
            self._line = b""
            self.bad += 1
        for line in lines:
            if b"RMC" not in line:
                continue
            fix = parse_rmc(line)
            if fix is None:
                self.bad += 1
                continue
            if fix[2]:
                self.fixes += 1
                self.terminal.set_position(fix[0], fix[1], True)
            elif self.terminal.position is not None:  # fix lost: last position, invalid bit
                last = self.terminal.position
                self.terminal.set_position(last[0], last[1], False)
