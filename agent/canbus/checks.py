"""Alive-counter and checksum validation of a frame, as a mapping declares it.

``make_check(message, counter=..., checksum=..., algorithm=..., **params)`` compiles a ``FrameCheck``
whose ``ok(data, previous)`` is called at sampling time on the cached frame and the one before it; a
failed check makes the message's signals count as missing (invalid).

Checksum algorithms (the checksum signal must be 8 bits, byte aligned; it covers every other byte of
the payload, in order):

* ``crc8_sae_j1850`` — poly 0x1D, init 0xFF, xorout 0xFF, over the data id (low byte, high byte; default
  the CAN id) then the payload without the CRC byte: exactly ``sim.ecus.e2e_crc`` / ``dbc/README.md``.
* ``e2e_p1`` — AUTOSAR E2E profile 1 (``DATAID_BOTH``): CRC8 poly 0x1D with start value and final XOR
  0x00, over data id low, data id high, then the payload without the CRC byte.
* ``crc8_autosar`` — poly 0x2F, init 0xFF, xorout 0xFF over the payload without the CRC byte (no data
  id unless ``data_id_bytes`` says so).
* ``xor`` — XOR of the other bytes; ``sum`` — their 8-bit sum (``init`` is added/XORed first).
* ``none`` — no checksum (a counter alone may still be checked).

Parameters (``**params``): ``data_id`` (int, default the CAN id), ``data_id_bytes`` (0, 1 = low byte,
2 = low then high), ``data_id_mode`` for ``e2e_p1`` (``both`` default, ``low``, ``alt``: low byte with
even counters and high byte with odd ones, ``nibble``: low byte then 0x00, and the high byte's low
nibble sent in the payload at ``data_id_nibble_bit``, default 12), ``init``, ``xorout``, ``poly``.
Counter: ``counter_modulo`` (default 2**length; our simulator uses 15: values 0..14, 15 = invalid;
``e2e_p1`` with a 4-bit counter defaults to 15 too), ``max_jump`` (default 1: each frame must add
exactly 1 modulo the range; a larger value tolerates that many lost frames; 0 or a bigger jump, i.e. a
repeat or skip, fails). A counter value ``>= counter_modulo`` always fails. An unknown previous frame
passes.
"""

from __future__ import annotations

from typing import Any

from agent.canbus.decode import bytes_needed, compile_extractor, sequential_start
from agent.errors import MappingError

ALGORITHMS = ("crc8_sae_j1850", "e2e_p1", "crc8_autosar", "xor", "sum", "none")

_DEFAULTS: dict[str, dict[str, int]] = {
    "crc8_sae_j1850": {"poly": 0x1D, "init": 0xFF, "xorout": 0xFF, "data_id_bytes": 2},
    "e2e_p1": {"poly": 0x1D, "init": 0x00, "xorout": 0x00, "data_id_bytes": 2},
    "crc8_autosar": {"poly": 0x2F, "init": 0xFF, "xorout": 0xFF, "data_id_bytes": 0},
    "xor": {"init": 0, "data_id_bytes": 0},
    "sum": {"init": 0, "data_id_bytes": 0},
    "none": {},
}
_KNOWN_PARAMS = {
    "data_id",
    "data_id_bytes",
    "data_id_mode",
    "data_id_nibble_bit",
    "init",
    "xorout",
    "poly",
    "counter_modulo",
    "max_jump",
}
#: AUTOSAR E2E profile 1 data-id modes (``data_id_mode``).
DATA_ID_MODES = ("both", "low", "alt", "nibble")

_TABLES: dict[int, tuple[int, ...]] = {}


def crc8_table(poly: int) -> tuple[int, ...]:
    """The 256-entry table of a non-reflected CRC8 with polynomial ``poly``."""
    table = _TABLES.get(poly)
    if table is None:
        out = []
        for byte in range(256):
            crc = byte
            for _ in range(8):
                crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
            out.append(crc)
        table = _TABLES[poly] = tuple(out)
    return table


def crc8(data: bytes, poly: int = 0x1D, init: int = 0xFF, xorout: int = 0xFF) -> int:
    """Non-reflected CRC8 (defaults: SAE J1850, check value of b"123456789" = 0x4B)."""
    table = crc8_table(poly)
    crc = init
    for byte in data:
        crc = table[crc ^ byte]
    return crc ^ xorout


class FrameCheck:
    """A compiled counter and/or checksum check of one message (``make_check``)."""

    def __init__(
        self,
        *,
        name: str,
        algorithm: str,
        crc_byte: int | None,
        prefix: bytes,
        alt_prefixes: tuple[bytes, bytes] | None = None,
        nibble: tuple[int, int] | None = None,
        poly: int,
        init: int,
        xorout: int,
        counter: Any | None,
        modulo: int,
        max_jump: int,
    ) -> None:
        self.name = name
        self.algorithm = algorithm
        self._crc_byte = crc_byte
        self._prefix = prefix
        self._alt = alt_prefixes
        self._nibble = nibble
        self._table = crc8_table(poly) if algorithm in ("crc8_sae_j1850", "e2e_p1", "crc8_autosar") else ()
        self._init = init
        self._xorout = xorout
        self._modulo = modulo
        self._max_jump = max_jump
        self._counter_need = bytes_needed(counter) if counter is not None else 0
        self._counter = (
            compile_extractor([counter], raw=True, label=f"counter {name}") if counter is not None else None
        )
        self._counter_name = counter.name if counter is not None else ""

    def checksum(self, data: bytes) -> int:
        """The checksum ``data`` should carry (over every byte but the checksum byte)."""
        at = self._crc_byte
        assert at is not None
        prefix = self._prefix
        if self._alt is not None:  # E2E P1 DATAID_ALT: low byte with even counters, high byte with odd
            counter = self.counter_value(data)
            prefix = self._alt[(counter or 0) & 1]
        body = prefix + bytes(data[:at]) + bytes(data[at + 1 :])
        if self.algorithm == "xor":
            value = self._init
            for byte in body:
                value ^= byte
            return value
        if self.algorithm == "sum":
            return (self._init + sum(body)) & 0xFF
        crc = self._init
        table = self._table
        for byte in body:
            crc = table[crc ^ byte]
        return crc ^ self._xorout

    def counter_value(self, data: bytes) -> int | None:
        """The alive counter's raw value, or ``None`` (no counter, or payload too short)."""
        if self._counter is None or len(data) < self._counter_need:
            return None
        value: int = self._counter(data)[self._counter_name]
        return value

    def checksum_ok(self, data: bytes) -> bool:
        """Whether ``data`` carries the right checksum (always true without one)."""
        at = self._crc_byte
        if at is None:
            return True
        if len(data) <= at:
            return False
        if self._nibble is not None:  # E2E P1 DATAID_NIBBLE: the id's high-byte low nibble is sent
            bit, expected = self._nibble
            if len(data) * 8 < bit + 4 or (int.from_bytes(data, "little") >> bit) & 0xF != expected:
                return False
        return data[at] == self.checksum(data)

    def counter_ok(self, data: bytes, previous: bytes | None) -> bool:
        """Whether the counter is valid and follows ``previous``'s (always true without a counter)."""
        if self._counter is None:
            return True
        value = self.counter_value(data)
        if value is None or value >= self._modulo:
            return False
        if previous is None:
            return True
        before = self.counter_value(previous)
        if before is None or before >= self._modulo:
            return True  # nothing valid to compare with
        step = (value - before) % self._modulo
        return 1 <= step <= self._max_jump

    def ok(self, data: bytes, previous: bytes | None) -> bool:
        """Checksum right and counter advanced as declared (``previous`` unknown → counter passes)."""
        return self.checksum_ok(data) and self.counter_ok(data, previous)


def _int_param(params: dict[str, Any], key: str, default: int, message: str) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(f"message {message}: check parameter {key} must be an integer, not {value!r}")
    return value


def make_check(
    message: Any, *, counter: str | None, checksum: str | None, algorithm: str, **params: Any
) -> FrameCheck:
    """Compile the check a mapping declares for a cantools ``message`` (``MappingError`` if invalid)."""
    name = message.name
    if algorithm not in ALGORITHMS:
        raise MappingError(f"message {name}: unknown check algorithm {algorithm!r}; valid: {ALGORITHMS}")
    unknown = set(params) - _KNOWN_PARAMS
    if unknown:
        raise MappingError(f"message {name}: unknown check parameter(s) {sorted(unknown)}")
    if algorithm != "none" and checksum is None:
        raise MappingError(f"message {name}: algorithm {algorithm} needs a checksum signal")
    if algorithm == "none" and checksum is not None:
        raise MappingError(f"message {name}: checksum {checksum} declared with algorithm 'none'")
    defaults = _DEFAULTS[algorithm]
    crc_byte: int | None = None
    if checksum is not None:
        sig = _signal(message, checksum)
        start = sequential_start(sig)
        if sig.length != 8 or start % 8:
            raise MappingError(f"message {name}: checksum {checksum} must be one whole byte")
        crc_byte = start // 8
    counter_sig = _signal(message, counter) if counter is not None else None
    data_id = _int_param(params, "data_id", int(message.frame_id), name)
    id_bytes = _int_param(params, "data_id_bytes", defaults.get("data_id_bytes", 0), name)
    if id_bytes not in (0, 1, 2):
        raise MappingError(f"message {name}: data_id_bytes must be 0, 1 or 2")
    prefix = bytes((data_id & 0xFF, (data_id >> 8) & 0xFF)[:id_bytes])
    mode = params.get("data_id_mode", "both")
    if mode not in DATA_ID_MODES or (mode != "both" and algorithm != "e2e_p1"):
        raise MappingError(f"message {name}: data_id_mode must be one of {DATA_ID_MODES} (e2e_p1 only)")
    alt: tuple[bytes, bytes] | None = None
    nibble: tuple[int, int] | None = None
    if mode == "low":
        prefix = bytes((data_id & 0xFF,))
    elif mode == "alt":
        if counter_sig is None:
            raise MappingError(f"message {name}: data_id_mode alt needs the counter signal")
        alt = (bytes((data_id & 0xFF,)), bytes(((data_id >> 8) & 0xFF,)))
    elif mode == "nibble":
        prefix = bytes((data_id & 0xFF, 0))
        nibble = (_int_param(params, "data_id_nibble_bit", 12, name), (data_id >> 8) & 0x0F)
    modulo_default = 1 << int(counter_sig.length) if counter_sig is not None else 1
    usual = 15 if algorithm == "e2e_p1" and modulo_default == 16 else modulo_default  # P1: 0..14
    modulo = _int_param(params, "counter_modulo", usual, name)
    max_jump = _int_param(params, "max_jump", 1, name)
    if counter_sig is not None and not 2 <= modulo <= modulo_default:
        raise MappingError(f"message {name}: counter_modulo must be in 2..{modulo_default}")
    if counter_sig is not None and not 1 <= max_jump < modulo:
        raise MappingError(f"message {name}: max_jump must be in 1..{modulo - 1}")
    return FrameCheck(
        name=name,
        algorithm=algorithm,
        crc_byte=crc_byte,
        prefix=prefix,
        alt_prefixes=alt,
        nibble=nibble,
        poly=_int_param(params, "poly", defaults.get("poly", 0x1D), name) & 0xFF,
        init=_int_param(params, "init", defaults.get("init", 0), name) & 0xFF,
        xorout=_int_param(params, "xorout", defaults.get("xorout", 0), name) & 0xFF,
        counter=counter_sig,
        modulo=modulo,
        max_jump=max_jump,
    )


def _signal(message: Any, name: str) -> Any:
    try:
        return message.get_signal_by_name(name)
    except KeyError:
        raise MappingError(f"message {message.name}: no signal {name!r}") from None


__all__ = ["ALGORITHMS", "DATA_ID_MODES", "FrameCheck", "crc8", "crc8_table", "make_check"]
