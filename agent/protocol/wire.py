"""GB/T 32960 framing: start marker, 24-byte header, BCC, 6-byte time, and a stream framer.

Frame (§1 of ../shared/spec/gbt32960.md, unchanged in 2025)::

    0  start marker  2  "##" = 2016 edition, "$$" = 2025 edition
    2  command       1
    3  response flag 1  0xFE = command
    4  VIN          17
    21 encryption    1
    22 length L      2  big-endian, 0..65531
    24 data unit     L
    24+L BCC         1  XOR of bytes [2, 24+L)

This module is the MicroPython-compatible subset of the protocol core: it uses only ``struct``,
``bytes`` and plain classes (no dataclasses, enums or typing at run time), and is tested under the
real MicroPython interpreter. Times here are 6-tuples of Beijing wall-clock fields; converting to
UTC ``datetime`` is the codec's job.
"""

import struct
import sys

from agent.protocol.errors import ProtocolError

START_2016 = b"##"
START_2025 = b"$$"
EDITION_2016 = 2016
EDITION_2025 = 2025
HEADER_SIZE = 24
VIN_SIZE = 17
MAX_DATA_LENGTH = 65531
MIN_FRAME_SIZE = HEADER_SIZE + 1
FLAG_COMMAND = 0xFE
TIME_SIZE = 6

# command, response, VIN, encryption, length (after the marker); MicroPython has no struct.Struct
_HEADER = ">BB17sBH"
#: response flags and encryption bytes either edition defines; a header with another value is noise
VALID_RESPONSES = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xFE)
VALID_ENCRYPTIONS = (0x01, 0x02, 0x03, 0x04, 0x05, 0xFE, 0xFF)
_TIME_FIELDS = ("year", "month", "day", "hour", "minute", "second")
_TIME_LIMITS = ((0, 99), (1, 12), (1, 31), (0, 23), (0, 59), (0, 59))
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def start_marker(edition: int) -> bytes:
    """The two start bytes of ``edition`` (2016 or 2025)."""
    if edition == EDITION_2016:
        return START_2016
    if edition == EDITION_2025:
        return START_2025
    raise ProtocolError(f"unknown edition {edition!r}", None, "edition")


def edition_of(marker: bytes, offset: int = 0) -> int:
    """The edition that start marker ``marker`` (2 bytes) announces."""
    if marker == START_2016:
        return EDITION_2016
    if marker == START_2025:
        return EDITION_2025
    raise ProtocolError(f"bad start marker {_hex(marker)} (want 2323 '##' or 2424 '$$')", offset, "start")


def _bcc_loop(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def _bcc_fold(data: bytes) -> int:
    # XOR of all bytes, computed by folding one big integer in halves: O(log n) C-level operations.
    size = len(data)
    value = int.from_bytes(data, "big")
    while size > 1:
        half = size // 2
        bits = 8 * half
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
        size -= half
    return value


_bcc = _bcc_loop if sys.implementation.name == "micropython" else _bcc_fold


def bcc(data: bytes, start: int = 0, end: "int | None" = None) -> int:
    """Block check character: XOR of ``data[start:end]``."""
    if start or end is not None:
        data = data[start:end]
    return _bcc(data) if data else 0


def encode_time(fields: "tuple[int, int, int, int, int, int]") -> bytes:
    """6-byte time from (year, month, day, hour, minute, second), year 2000..2099, Beijing time."""
    year, month, day, hour, minute, second = fields
    values = (year - 2000, month, day, hour, minute, second)
    _check_time(values, 0, "time")
    return bytes(values)


def decode_time(buf: bytes, offset: int = 0, field: str = "time") -> "tuple[int, int, int, int, int, int]":
    """(year, month, day, hour, minute, second) from the 6 bytes at ``offset``; validated."""
    if len(buf) < offset + TIME_SIZE:
        raise ProtocolError(f"time needs 6 bytes, {max(0, len(buf) - offset)} left", offset, field)
    values = tuple(buf[offset : offset + TIME_SIZE])
    _check_time(values, offset, field)
    return (2000 + values[0], values[1], values[2], values[3], values[4], values[5])


def _check_time(values: "tuple[int, ...]", offset: int, field: str) -> None:
    for index in range(TIME_SIZE):
        low, high = _TIME_LIMITS[index]
        if not low <= values[index] <= high:
            raise ProtocolError(
                f"{_TIME_FIELDS[index]} {values[index]} out of range {low}..{high}",
                offset + index,
                field + "." + _TIME_FIELDS[index],
            )
    year, month, day = 2000 + values[0], values[1], values[2]
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _DAYS_IN_MONTH[month - 1] or (month == 2 and day == 29 and not leap):
        raise ProtocolError(f"day {day} does not exist in {year:04d}-{month:02d}", offset + 2, field + ".day")


class RawFrame:
    """One frame split into header fields and the (possibly encrypted) data unit."""

    __slots__ = ("bcc_ok", "command", "data", "edition", "encryption", "raw", "response", "vin")

    def __init__(
        self,
        edition: int,
        command: int,
        response: int,
        vin: bytes,
        encryption: int,
        data: bytes,
        bcc_ok: bool,
        raw: bytes,
    ) -> None:
        self.edition = edition
        self.command = command
        self.response = response
        self.vin = vin
        self.encryption = encryption
        self.data = data
        self.bcc_ok = bcc_ok
        self.raw = raw

    def __repr__(self) -> str:
        tail = "" if self.bcc_ok else ", BAD BCC"
        return (
            f"RawFrame(edition={self.edition}, command=0x{self.command:02X}, response=0x{self.response:02X},"
            f" vin={self.vin!r}, encryption=0x{self.encryption:02X}, L={len(self.data)}{tail})"
        )


def build_frame(edition: int, command: int, response: int, vin: bytes, encryption: int, data: bytes) -> bytes:
    """A whole frame: marker, header, data unit and BCC."""
    if len(vin) != VIN_SIZE:
        raise ProtocolError(f"VIN must be 17 bytes, got {len(vin)}", 4, "vin")
    if len(data) > MAX_DATA_LENGTH:
        raise ProtocolError(f"data unit of {len(data)} bytes exceeds {MAX_DATA_LENGTH}", 22, "length")
    for name, value in (("command", command), ("response", response), ("encryption", encryption)):
        if not 0 <= value <= 0xFF:
            raise ProtocolError(f"{name} 0x{value:X} does not fit a byte", None, name)
    body = struct.pack(_HEADER, command, response, vin, encryption, len(data)) + data
    return start_marker(edition) + body + bytes((_bcc(body),))


def parse_frame(buf: bytes, check_bcc: bool = True) -> RawFrame:
    """Split exactly one whole frame. Raises ProtocolError naming offset and field."""
    size = len(buf)
    if size < MIN_FRAME_SIZE:
        raise ProtocolError(f"frame of {size} bytes is shorter than the 25-byte minimum", size, "header")
    edition = edition_of(bytes(buf[0:2]))
    command, response, vin, encryption, length = struct.unpack_from(_HEADER, buf, 2)
    if length > MAX_DATA_LENGTH:
        raise ProtocolError(f"data-unit length {length} exceeds {MAX_DATA_LENGTH}", 22, "length")
    expected = HEADER_SIZE + length + 1
    if size != expected:
        raise ProtocolError(
            f"frame is {size} bytes but its length field {length} implies {expected}",
            22 if size > expected else size,
            "length",
        )
    computed = _bcc(bytes(buf[2 : size - 1]))
    ok = computed == buf[size - 1]
    if check_bcc and not ok:
        raise ProtocolError(
            f"BCC 0x{buf[size - 1]:02X} does not match computed 0x{computed:02X}", size - 1, "bcc"
        )
    return RawFrame(
        edition, command, response, vin, encryption, bytes(buf[HEADER_SIZE : size - 1]), ok, bytes(buf)
    )


class Framer:
    """Splits a byte stream (arbitrary TCP chunks) into frames, never failing on bad input.

    ``feed`` returns the whole frames completed by the chunk, including frames whose BCC does not
    match (``bcc_ok`` False) so a platform can answer them with an error. Bytes before a start
    marker are skipped and counted, and so is a marker whose header carries an undefined response
    flag or encryption byte (a stray ``#`` just before the real marker reads that way). A length
    over ``max_data_length`` is rejected (counted; scanning resumes one byte on). A frame whose
    BCC does not match is returned at once and scanning resumes one byte after its start: a
    corrupt length never swallows the good frames it overlaps, and the output never depends on
    how the stream was chunked (a corrupt payload is rescanned and skipped as noise). A corrupt
    length larger than what has arrived holds the stream until that many bytes are in (at most
    ``max_data_length``).
    """

    def __init__(self, max_data_length: int = MAX_DATA_LENGTH) -> None:
        self.max_data_length = max_data_length
        self._buffer = b""
        self.frames = 0
        self.skipped_bytes = 0
        self.bad_bcc = 0
        self.oversize = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> "list[RawFrame]":
        """Add ``chunk``; return the frames it completed, in stream order."""
        buf = self._buffer + bytes(chunk) if self._buffer else bytes(chunk)
        out = []
        pos = 0
        size = len(buf)
        while True:
            start = self._find_start(buf, pos)
            if start < 0:
                # keep a trailing lone marker byte: it may be the first half of a start marker
                keep = 1 if size > pos and buf[size - 1] in (0x23, 0x24) else 0
                self.skipped_bytes += size - pos - keep
                pos = size - keep
                break
            self.skipped_bytes += start - pos
            pos = start
            if size - pos < HEADER_SIZE:
                break
            if buf[pos + 3] not in VALID_RESPONSES or buf[pos + 21] not in VALID_ENCRYPTIONS:
                self.skipped_bytes += 1
                pos += 1
                continue
            length = (buf[pos + 22] << 8) | buf[pos + 23]
            if length > self.max_data_length:
                self.oversize += 1
                self.skipped_bytes += 1
                pos += 1
                continue
            end = pos + HEADER_SIZE + length + 1
            if end > size:
                break
            frame = parse_frame(buf[pos:end], False)
            if frame.bcc_ok:
                self.frames += 1
                out.append(frame)
                pos = end
                continue
            # Report it, then rescan from the next byte: if its length was corrupt, the good frames
            # it claimed are found again; if only its payload was, the payload is skipped as noise.
            self.bad_bcc += 1
            out.append(frame)
            self.skipped_bytes += 1
            pos += 1
        self._buffer = buf[pos:]
        return out

    @staticmethod
    def _find_start(buf: bytes, pos: int) -> int:
        a = buf.find(START_2016, pos)
        b = buf.find(START_2025, pos)
        if a < 0:
            return b
        if b < 0:
            return a
        return a if a < b else b


def _hex(data: bytes) -> str:
    return "".join(f"{byte:02X}" for byte in data)
