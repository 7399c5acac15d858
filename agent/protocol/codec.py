"""GB/T 32960 codec, editions 2016 and 2025: ``Frame`` <-> bytes, exact in both directions.

* ``decode_frame`` / ``decode_raw`` / ``decode_body`` turn bytes into the frozen dataclasses of
  ``model``; ``encode_frame`` / ``encode_body`` turn them back. ``encode(decode(b)) == b`` for every
  valid frame and ``decode(encode(x)) == x`` for every model value the wire can represent.
* Decoders raise only ``ProtocolError`` naming the byte offset inside the frame (data-unit offset +
  ``base_offset``, 24 by default) and the field (``realtime.vehicle.speed``).
* Declarative: every fixed-layout record is one field table (``_Field`` rows, wire order) from which
  a decoder and an encoder are generated at import time (precompiled ``struct`` formats, no per-field
  dispatch on the hot path). Lists of cells and temperatures go through 64 K / 256-entry lookup tables.
* Times: the wire carries Beijing wall time (UTC+8); the model carries aware UTC ``datetime``.

Section numbers (§) refer to ../shared/spec/gbt32960.md; 2025 tables to gbt32960-2025.md.
Contested points and the choices made here are listed in docs/conformance.md ("Codec decisions").
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, IntEnum
from typing import Any, Final

from agent.protocol import wire
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    Activation,
    ActivationInfo,
    ActivationResult,
    ActivationStatus,
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    Cipher,
    Command,
    ControlId,
    CoordinateSystem,
    CustomBlock,
    DataUnit,
    DcDcState,
    DriveMotor,
    DriveMotor2025,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Empty,
    Encryption,
    Engine,
    Engine2025,
    EngineState,
    Extremes,
    FlagLevel,
    Frame,
    FuelCell,
    FuelCell2025,
    FuelCellStack,
    FuelCellStacks,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    InfoBlock,
    KeyExchange,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    Opaque,
    PackVoltages,
    ParallelUnitVoltages,
    Parameter,
    ParameterId,
    ParameterQuery,
    ParameterQueryReply,
    ParameterSet,
    PlatformLogin,
    PlatformLogout,
    RealtimeReport,
    RemoteUpgrade,
    RemoteUpgradeText,
    ResponseFlag,
    RunningMode,
    Signature,
    SignatureType,
    Signer,
    Special,
    SubsystemTemperatures,
    SubsystemVoltages,
    Supercapacitor,
    SupercapacitorExtremes,
    Temperatures,
    TerminalControl,
    TimeOnly,
    VehicleData,
    VehicleData2025,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
    VehicleState,
    WarningParams,
)

__all__ = [
    "DEFAULT",
    "CodecOptions",
    "ResponseForm",
    "VehicleTail",
    "decode_body",
    "decode_frame",
    "decode_info_blocks",
    "decode_raw",
    "encode_body",
    "encode_frame",
    "encode_info_blocks",
    "info_type_ids",
    "make_response",
    "signed_range",
    "split_cell_records",
]

UTC: Final = UTC
_BEIJING: Final = timezone(timedelta(hours=8))
_H8: Final = timedelta(hours=8)
_ABN: Final = Special.ABNORMAL
_INV: Final = Special.INVALID
_SIGNATURE_MARKER: Final = 0xFF
_PACK_CODE_SIZE: Final = 24


# =========================================================================== options


class VehicleTail(Enum):
    """How to read bytes 18-19 of the 2016 0x01 block (spec §5.2)."""

    PEDALS = "pedals"  # Annex B: accelerator + brake pedal (T-Box protocol; default)
    RESERVED = "reserved"  # Body Table 9: one reserved WORD (platform-to-platform exchange)


class ResponseForm(Enum):
    """Data unit of an acknowledgement built by ``make_response`` (spec §2.2)."""

    EMPTY = "empty"  # L = 0 (terryhart heartbeat replies)
    TIME_ONLY = "time_only"  # 6-byte time (2016 Body 6.3.2, 2025 Body + Annex B)
    ECHO = "echo"  # the request's data unit with a new time (2016 Annex B.3.3.2, EMQX)


@dataclass(frozen=True)
class CodecOptions:
    """Points where platforms differ; the defaults are the spec's recommendation.

    * ``vehicle_tail``: decoding of 2016 0x01 bytes 18-19 (encoding follows the value: pedals unless
      both pedals are None, then the ``reserved`` WORD).
    * ``max_cells_per_record``: 2016 0x08 records longer than this are split by the encoder into
      several records of the same subsystem with increasing start index (≤ 200 per the standard;
      0 = never split, then a record over 255 cells is an error).
    * ``response_form``: acknowledgement form for ``make_response``; None = the edition's own text
      (2016 Annex B: echo; 2025: time only).
    * ``strict``: the encoder rejects model values outside the standard's documented ranges, codes the
      standard does not define, times with microseconds, and edition-foreign bits (decoding never rejects
      out-of-range values: they decode to their physical value).
    * ``check_bcc``: ``decode_frame`` rejects a frame whose BCC does not match.
    * ``parameter_sizes``: value sizes of user-defined parameter ids 0x80-0xFE, as (id, size) pairs;
      without an entry such an id cannot be decoded (the standard gives it no length).
    * ``sign_includes_marker``: the 2025 signed range also covers the 0xFF marker (default False: time
      through the last info block, as rtm_con and sunsky sign; see crypto.SIGN_INCLUDES_MARKER).
    """

    vehicle_tail: VehicleTail = VehicleTail.PEDALS
    max_cells_per_record: int = 200
    response_form: ResponseForm | None = None
    strict: bool = False
    check_bcc: bool = True
    parameter_sizes: tuple[tuple[int, int], ...] = ()
    sign_includes_marker: bool = False


DEFAULT: Final = CodecOptions()


# =========================================================================== small helpers


def _need(data: bytes, off: int, size: int, end: int, base: int, field: str) -> None:
    if off + size > end:
        raise ProtocolError(f"truncated: needs {size} bytes, {max(0, end - off)} left", base + off, field)


def _decode_time(data: bytes, off: int, base: int, field: str) -> datetime:
    if off + 6 <= len(data) and data[off] <= 99:
        # fast path: datetime validates month/day/hour/minute/second itself; wire.decode_time words the error
        try:
            y, mo, d, h, mi, s = data[off : off + 6]
            return datetime(2000 + y, mo, d, h, mi, s, tzinfo=UTC) - _H8
        except ValueError:
            pass
    try:
        y, mo, d, h, mi, s = wire.decode_time(data, off, field)
    except ProtocolError as exc:
        raise ProtocolError(
            exc.reason, None if exc.offset is None else exc.offset + base, exc.field
        ) from None
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC) - _H8


def _encode_time(value: datetime, field: str, strict: bool = False) -> bytes:
    if value.__class__ is datetime and value.tzinfo is UTC and not strict:
        bj = value + _H8
        if 2000 <= bj.year <= 2099:
            return bytes((bj.year - 2000, bj.month, bj.day, bj.hour, bj.minute, bj.second))
    if not isinstance(value, datetime):
        raise ProtocolError(f"expected a datetime, got {type(value).__name__}", None, field)
    if value.tzinfo is None:
        raise ProtocolError("naive datetime: use an aware (UTC) datetime", None, field)
    if strict and value.microsecond:
        raise ProtocolError("time has sub-second precision the wire cannot carry", None, field)
    bj = value.astimezone(_BEIJING)
    try:
        return wire.encode_time((bj.year, bj.month, bj.day, bj.hour, bj.minute, bj.second))
    except ProtocolError as exc:
        raise ProtocolError(exc.reason, None, field) from None


def _text(raw: bytes, pad: bytes = b"\x00") -> str:
    return raw.rstrip(pad).decode("latin-1")


def _fixed(value: str, size: int, field: str, pad: bytes = b"\x00") -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"expected str, got {type(value).__name__}", None, field)
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise ProtocolError("text must be single-byte (ASCII/latin-1)", None, field) from None
    if len(raw) > size:
        raise ProtocolError(f"{len(raw)} bytes do not fit the {size}-byte field", None, field)
    return raw.ljust(size, pad)


def _latin(value: object, field: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ProtocolError(f"expected str, got {type(value).__name__}", None, field)
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise ProtocolError("text must be single-byte (ASCII/latin-1)", None, field) from None


def _enum_map(
    enum: type[IntEnum] | None, width: str, sentinel: bool, limit: int | None = None
) -> dict[int, Any]:
    out: dict[int, Any] = {}
    if enum is not None:
        for member in enum:
            if limit is None or member <= limit:
                out[int(member)] = member
    if sentinel:
        out[_ABN_RAW[width]] = _ABN
        out[_ABN_RAW[width] + 1] = _INV
    return out


_ABN_RAW: Final = {"B": 0xFE, "H": 0xFFFE, "I": 0xFFFFFFFE}
_MAX_RAW: Final = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}
_SPECIAL_OF: Final = {w: {_ABN_RAW[w]: _ABN, _ABN_RAW[w] + 1: _INV} for w in ("B", "H", "I")}

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")

_ARRAYS: dict[str, dict[int, struct.Struct]] = {"H": {}, "I": {}}
_ARR_H: Final = _ARRAYS["H"]
_ARR_I: Final = _ARRAYS["I"]


def _array(fmt: str, count: int) -> struct.Struct:
    """Precompiled ``>{count}{fmt}`` (cached)."""
    cache = _ARRAYS[fmt]
    st = cache.get(count)
    if st is None:
        st = struct.Struct(f">{count}{fmt}")
        if len(cache) < 4096:
            cache[count] = st
    return st


# =========================================================================== lookup tables

_GEAR_MASK_2016: Final = 0xC0
_GEAR_MASK_2025: Final = 0x40


def _gear_table(edition: Edition) -> tuple[Gear, ...]:
    out = []
    for raw in range(256):
        if edition is Edition.E2025:
            out.append(
                Gear(
                    GearPosition(raw & 0x0F), bool(raw & 0x20), bool(raw & 0x10), bool(raw & 0x80), raw & 0x40
                )
            )
        else:
            out.append(Gear(GearPosition(raw & 0x0F), bool(raw & 0x20), bool(raw & 0x10), False, raw & 0xC0))
    return tuple(out)


_GEAR_2016: Final = _gear_table(Edition.E2016)
_GEAR_2025: Final = _gear_table(Edition.E2025)
_LOCATION_STATUS: Final = tuple(LocationStatus(raw) for raw in range(256))

#: temperature BYTE (raw − 40 °C) with FE/FF sentinels, and without (2016 fuel-cell probes)
_TEMP_DEC: Final[tuple[int | Special, ...]] = (*range(-40, 0xFE - 40), _ABN, _INV)
_TEMP_ENC: Final[dict[object, int]] = {v: i for i, v in enumerate(_TEMP_DEC)}
_TEMP_DEC_PLAIN: Final[tuple[int, ...]] = tuple(range(-40, 256 - 40))
_TEMP_ENC_PLAIN: Final[dict[object, int]] = {v: i for i, v in enumerate(_TEMP_DEC_PLAIN)}


_MV_DEC: list[float | Special] = []
_MV_ENC: dict[object, int] = {}


def _millivolt_tables() -> tuple[list[float | Special], dict[object, int]]:
    """WORD cell voltage, 0.001 V, FFFE/FFFF sentinels: raw -> value list and value -> raw dict
    (built on first use: 64 K entries)."""
    if not _MV_DEC:
        dec: list[float | Special] = [raw / 1000 for raw in range(0xFFFE)]
        dec.append(_ABN)
        dec.append(_INV)
        _MV_ENC.update((v, i) for i, v in enumerate(dec))
        _MV_DEC.extend(dec)
    return _MV_DEC, _MV_ENC


_flag_cache: dict[int, GeneralAlarmFlag] = {}


def _flags(raw: int) -> GeneralAlarmFlag:
    flag = _flag_cache.get(raw)
    if flag is None:
        flag = GeneralAlarmFlag(raw)
        if len(_flag_cache) < 4096:
            _flag_cache[raw] = flag
    return flag


# =========================================================================== declarative records


@dataclass(frozen=True)
class _Field:
    """One fixed-width field: wire width, conversion, sentinels and strict range (raw units).

    kind: ``int`` raw value; ``off`` raw − off (int); ``lin`` (raw − off) / div (float);
    ``code`` enum member or int; ``gear16``/``gear25`` gear byte; ``status`` location status bits.
    """

    name: str
    fmt: str
    kind: str = "int"
    div: int = 1
    off: int = 0
    sentinel: bool = True
    enum: type[IntEnum] | None = None
    lo: int = 0
    hi: int | None = None
    enum_limit: int | None = None


def _f(name: str, fmt: str, *, lo: int = 0, hi: int | None = None, sentinel: bool = True) -> _Field:
    return _Field(name, fmt, "int", lo=lo, hi=hi, sentinel=sentinel)


def _off(name: str, fmt: str, off: int, *, hi: int | None = None, sentinel: bool = True) -> _Field:
    return _Field(name, fmt, "off", off=off, hi=hi, sentinel=sentinel)


def _lin(
    name: str, fmt: str, div: int, off: int = 0, *, hi: int | None = None, sentinel: bool = True
) -> _Field:
    return _Field(name, fmt, "lin", div=div, off=off, hi=hi, sentinel=sentinel)


def _code(name: str, enum: type[IntEnum], fmt: str = "B", *, limit: int | None = None) -> _Field:
    return _Field(name, fmt, "code", enum=enum, enum_limit=limit)


_VALID_CACHE: Final = 4096  # validated values remembered per record field


class _Record:
    """A fixed-layout record generated from its field table (one place per layout).

    ``dec(buf, off, *extras)`` builds the dataclass from the bytes at ``off`` (the caller checks the
    size); ``pack(obj)`` returns its bytes. ``extras`` name dataclass fields filled by the caller
    (lists that follow the fixed part); ``consts`` fields with a fixed value.
    """

    def __init__(
        self,
        cls: type,
        name: str,
        fields: Iterable[_Field],
        extras: tuple[str, ...] = (),
        consts: dict[str, object] | None = None,
    ) -> None:
        self.cls = cls
        self.name = name
        self.fields = tuple(fields)
        self.extras = extras
        self.consts = consts or {}
        self.struct = struct.Struct(">" + "".join(f.fmt for f in self.fields))
        self.size = self.struct.size
        names = [f.name for f in self.fields] + list(extras) + list(self.consts)
        declared = [f.name for f in dataclasses.fields(cls)]
        if sorted(names) != sorted(declared):
            raise AssertionError(f"{name}: field table {names} does not match {cls.__name__} {declared}")
        self.maps: list[dict[int, Any]] = []
        ns: dict[str, Any] = {
            "_cls": cls,
            "_new": object.__new__,
            "_up": self.struct.unpack_from,
            "_pk": self.struct.pack,
            "_Sp": Special,
            "_A": _ABN,
            "_round": round,
            "_G16": _GEAR_2016,
            "_G25": _GEAR_2025,
            "_LS": _LOCATION_STATUS,
            "_consts": self.consts,
        }
        for w in ("B", "H", "I"):
            ns[f"_S{w}"] = _SPECIAL_OF[w]
        dec_lines: list[str] = []
        enc_values: list[str] = []
        enc_lines: list[str] = []
        for i, f in enumerate(self.fields):
            v = f"v{i}"
            if f.kind == "code":
                ns[f"_m{i}"] = _enum_map(f.enum, f.fmt, f.sentinel, f.enum_limit)
                expr = f"_m{i}.get({v}, {v})"
            else:
                if f.kind == "int":
                    core = v
                elif f.kind == "off":
                    core = f"{v} - {f.off}"
                elif f.kind == "lin":
                    core = f"({v} - {f.off}) / {f.div}" if f.off else f"{v} / {f.div}"
                elif f.kind == "gear16":
                    core = f"_G16[{v}]"
                elif f.kind == "gear25":
                    core = f"_G25[{v}]"
                elif f.kind == "status":
                    core = f"_LS[{v}]"
                else:  # pragma: no cover - table error
                    raise AssertionError(f.kind)
                expr = f"({core} if {v} < {_ABN_RAW[f.fmt]} else _S{f.fmt}[{v}])" if f.sentinel else core
            dec_lines.append(f"    d[{f.name!r}] = {expr}")
            a = f"a{i}"
            enc_lines.append(f"    {a} = o.{f.name}")
            if f.kind in ("int", "code", "status"):
                core = a
            elif f.kind == "off":
                core = f"{a} + {f.off}"
            elif f.kind == "lin":
                core = f"_round({a} * {f.div}) + {f.off}" if f.off else f"_round({a} * {f.div})"
            else:  # gear
                core = (
                    f"({a}.gear | {a}.drive_force << 5 | {a}.brake_force << 4 | {a}.invalid << 7"
                    f" | {a}.reserved_bits)"
                )
            if f.sentinel:
                abn = _ABN_RAW[f.fmt]
                core = f"({core} if {a}.__class__ is not _Sp else ({abn} if {a} is _A else {abn + 1}))"
            enc_values.append(core)
        for j, extra in enumerate(extras):
            dec_lines.append(f"    d[{extra!r}] = x{j}")
        for key in self.consts:
            dec_lines.append(f"    d[{key!r}] = _consts[{key!r}]")
        vs = ", ".join(f"v{i}" for i in range(len(self.fields)))
        xs = "".join(f", x{j}" for j in range(len(extras)))
        src = [
            f"def dec(buf, off{xs}):",
            f"    {vs}{',' if len(self.fields) == 1 else ''} = _up(buf, off)",
            "    o = _new(_cls)",
            "    d = o.__dict__",
            *dec_lines,
            "    return o",
            "def pack(o):",
            *enc_lines,
            f"    return _pk({', '.join(enc_values)})",
        ]
        exec(compile("\n".join(src), f"<codec record {name}>", "exec"), ns)
        #: dec(buf, off, *extras) -> dataclass (generated; the caller has checked the size)
        self.dec: Callable[..., Any] = ns["dec"]
        #: pack_fast(obj) -> bytes without validation (generated)
        self.pack_fast: Callable[[Any], bytes] = ns["pack"]
        #: per field, per strictness: (class, value) pairs already validated (a pure speedup of ``check``:
        #: ``_raw_of`` depends on the field and the value only; bounded, values that fail are never kept)
        self._valid: dict[bool, tuple[dict[tuple[type, object], None], ...]] = {
            s: tuple({} for _ in self.fields) for s in (False, True)}

    def pack(self, obj: Any, field: str, strict: bool = False) -> bytes:
        if strict:
            self.check(obj, field, strict=True)
        try:
            return self.pack_fast(obj)
        except (struct.error, TypeError, AttributeError, ValueError, OverflowError, KeyError) as exc:
            self.check(obj, field, strict=False)
            raise ProtocolError(f"cannot encode: {exc}", None, field) from None

    def check(self, obj: Any, field: str, strict: bool) -> None:
        """Field-by-field validation (slow path): raises ProtocolError naming the bad field."""
        if not isinstance(obj, self.cls):
            raise ProtocolError(f"expected {self.cls.__name__}, got {type(obj).__name__}", None, field)
        for f, valid in zip(self.fields, self._valid[strict], strict=True):
            value = getattr(obj, f.name)
            try:
                key = (value.__class__, value)
                if key in valid:
                    continue
            except TypeError:  # unhashable: validate every time
                key = None
            _raw_of(f, value, f"{field}.{f.name}", strict)
            if key is not None and len(valid) < _VALID_CACHE:
                valid[key] = None


def _raw_of(f: _Field, value: object, field: str, strict: bool) -> int:
    """The raw wire integer of one field value, validated (slow path)."""
    top = _MAX_RAW[f.fmt]
    if isinstance(value, Special):
        if not f.sentinel:
            raise ProtocolError(f"{value.name} is not defined for this field", None, field)
        return _ABN_RAW[f.fmt] + (value is _INV)
    if f.kind in ("gear16", "gear25"):
        if not isinstance(value, Gear):
            raise ProtocolError(f"expected Gear, got {type(value).__name__}", None, field)
        if not 0 <= int(value.gear) <= 15:
            raise ProtocolError(f"gear code {value.gear} out of range 0..15", None, field + ".gear")
        mask = _GEAR_MASK_2016 if f.kind == "gear16" else _GEAR_MASK_2025
        if value.reserved_bits & ~mask:
            raise ProtocolError(f"reserved bits must be within 0x{mask:02X}", None, field + ".reserved_bits")
        if strict and f.kind == "gear16" and value.invalid:
            raise ProtocolError("the gear-invalid bit exists only in 2025", None, field + ".invalid")
        return (
            int(value.gear)
            | value.drive_force << 5
            | value.brake_force << 4
            | value.invalid << 7
            | value.reserved_bits
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"expected a number, got {type(value).__name__}", None, field)
    if f.kind == "lin":
        if value != value or value in (float("inf"), float("-inf")):
            raise ProtocolError("not a finite number", None, field)
        raw = round(value * f.div) + f.off
    elif f.kind == "off":
        if not isinstance(value, int):
            raise ProtocolError(f"expected int, got {type(value).__name__}", None, field)
        raw = value + f.off
    else:
        if not isinstance(value, int):
            raise ProtocolError(f"expected int, got {type(value).__name__}", None, field)
        raw = int(value)
    if not 0 <= raw <= top:
        raise ProtocolError(f"value {value!r} (raw {raw}) does not fit the field", None, field)
    if f.sentinel and raw >= _ABN_RAW[f.fmt]:
        raise ProtocolError(f"value {value!r} encodes to a sentinel; use Special", None, field)
    if strict:
        if f.kind == "code" and f.enum is not None:
            members = _enum_map(f.enum, f.fmt, False, f.enum_limit)
            if raw not in members:
                raise ProtocolError(f"code {raw} is not defined by the standard", None, field)
        hi = f.hi
        if hi is not None and not f.lo <= raw <= hi:
            raise ProtocolError(f"value {value!r} out of the documented range", None, field)
    return raw


# =========================================================================== field tables


def _vehicle_head(edition: Edition) -> list[_Field]:
    e25 = edition is Edition.E2025
    return [
        _code("vehicle_state", VehicleState),
        _code("charging_state", ChargingState),
        _code("running_mode", RunningMode),
        _lin("speed", "H", 10, hi=5000 if e25 else 2200),
        _lin("mileage", "I", 10, hi=9999999),
        _lin("total_voltage", "H", 10, hi=60000 if e25 else 10000),
        _lin("total_current", "H", 10, 30000 if e25 else 10000, hi=60000 if e25 else 20000),
        _f("soc", "B", hi=100),
        _code("dcdc_state", DcDcState),
        _Field("gear", "B", "gear25" if e25 else "gear16", sentinel=False),
        _f("insulation_resistance", "H", hi=60000, sentinel=e25),
    ]


#: 2016 0x01, Annex B (spec §5.2): 18 bytes + accelerator + brake
_VEHICLE_2016 = _Record(
    VehicleData,
    "vehicle",
    [*_vehicle_head(Edition.E2016), _f("accelerator_pedal", "B", hi=100), _f("brake_pedal", "B", hi=101)],
    consts={"reserved": None},
)
#: 2016 0x01, Body Table 9: 18 bytes + reserved WORD
_VEHICLE_2016_RESERVED = _Record(
    VehicleData,
    "vehicle",
    [*_vehicle_head(Edition.E2016), _f("reserved", "H", sentinel=False)],
    consts={"accelerator_pedal": None, "brake_pedal": None},
)
#: 2025 0x01, 2025 Table 10: 18 bytes
_VEHICLE_2025 = _Record(VehicleData2025, "vehicle", _vehicle_head(Edition.E2025))

#: 2016 motor (spec §5.3): 12 bytes
_MOTOR_2016 = _Record(
    DriveMotor,
    "motor",
    [
        _f("number", "B", lo=1, hi=253),
        _code("state", MotorState),
        _off("controller_temperature", "B", 40, hi=250),
        _off("speed", "H", 20000, hi=65531),
        _lin("torque", "H", 10, 20000, hi=65531),
        _off("temperature", "B", 40, hi=250),
        _lin("controller_voltage", "H", 10, hi=60000),
        _lin("controller_current", "H", 10, 10000, hi=20000),
    ],
)
#: 2025 motor, 2025 Table 16: 10 bytes, DWORD torque
_MOTOR_2025 = _Record(
    DriveMotor2025,
    "motor",
    [
        _f("number", "B", lo=1, hi=253),
        _code("state", MotorState),
        _off("controller_temperature", "B", 40, hi=250),
        _off("speed", "H", 32000, hi=65531),
        _lin("torque", "I", 10, 200000, hi=400000),
        _off("temperature", "B", 40, hi=250),
    ],
)

#: 2016 0x03 fuel cell (spec §5.4): 8-byte head, N probe bytes, 10-byte tail
_FUEL_CELL_HEAD = [
    _lin("voltage", "H", 10, hi=20000),
    _lin("current", "H", 10, hi=20000),
    _lin("consumption_rate", "H", 100, hi=60000),
]
_FUEL_CELL_TAIL = [
    _lin("h2_max_temperature", "H", 10, 400, hi=2400),
    _f("h2_max_temperature_probe", "B", lo=1, hi=252),
    _f("h2_max_concentration", "H", hi=60000),
    _f("h2_max_concentration_sensor", "B", lo=1, hi=252),
    _lin("h2_max_pressure", "H", 10, hi=1000, sentinel=False),
    _f("h2_max_pressure_sensor", "B", lo=1, hi=252),
    _code("dcdc_state", DcDcState),
]
_FUEL_CELL_2016 = _Record(
    FuelCell, "fuel_cell", [*_FUEL_CELL_HEAD, *_FUEL_CELL_TAIL], extras=("probe_temperatures",)
)

#: 2025 0x03 fuel-cell engine + hydrogen system, 2025 Table 17: 12 bytes
_FUEL_CELL_2025 = _Record(
    FuelCell2025,
    "fuel_cell",
    [
        _off("h2_max_temperature", "H", 40, hi=250),
        _f("h2_max_temperature_probe", "B", lo=1, hi=253),
        _lin("h2_max_concentration", "H", 10000, hi=60000),
        _f("h2_max_concentration_sensor", "B", lo=1, hi=253),
        _lin("h2_max_pressure", "H", 10, hi=1000),
        _f("h2_max_pressure_sensor", "B", lo=1, hi=253),
        _code("dcdc_state", DcDcState),
        _f("h2_remaining", "B", hi=100),
        _off("dcdc_controller_temperature", "B", 40, hi=250),
    ],
)

#: 2016 0x04 engine (spec §5.5): 5 bytes
_ENGINE_2016 = _Record(
    Engine,
    "engine",
    [
        _code("state", EngineState),
        _f("crankshaft_speed", "H", hi=60000),
        _lin("fuel_consumption_rate", "H", 100, hi=60000),
    ],
)
#: 2025 0x04 engine, 2025 Table 20: 2 bytes
_ENGINE_2025 = _Record(Engine2025, "engine", [_f("crankshaft_speed", "H", hi=60000)])


def _extremes_fields(code_fmt: str, hi_no: int, hi_code: int, hi_mv: int) -> list[_Field]:
    fields: list[_Field] = []
    for side in ("max", "min"):
        fields += [
            _f(f"{side}_voltage_{'subsystem' if code_fmt == 'B' else 'system'}", "B", lo=1, hi=hi_no),
            _f(f"{side}_voltage_cell", code_fmt, lo=1, hi=hi_code),
            _lin(f"{side}_cell_voltage" if code_fmt == "B" else f"{side}_voltage", "H", 1000, hi=hi_mv),
        ]
    for side in ("max", "min"):
        fields += [
            _f(f"{side}_temperature_{'subsystem' if code_fmt == 'B' else 'system'}", "B", lo=1, hi=hi_no),
            _f(f"{side}_temperature_probe", code_fmt, lo=1, hi=hi_code),
            _off(f"{side}_temperature", "B", 40, hi=250),
        ]
    return fields


#: 2016 0x06 extremes (spec §5.7): 14 bytes
_EXTREMES_2016 = _Record(Extremes, "extremes", _extremes_fields("B", 250, 250, 15000))
#: 2025 0x32 super-capacitor extremes, 2025 Table 26: 18 bytes (WORD cell/probe codes)
_SUPERCAP_EXTREMES = _Record(
    SupercapacitorExtremes, "supercapacitor_extremes", _extremes_fields("H", 253, 65531, 60000)
)

#: 2016 0x08 record head, Annex B Tables B.5-B.6 (spec §5.9): 9 bytes, then the in-frame count BYTE
_SUBSYSTEM_VOLTAGES = _Record(
    SubsystemVoltages,
    "subsystem",
    [
        _f("number", "B", lo=1, hi=250),
        _lin("voltage", "H", 10, hi=10000),
        _lin("current", "H", 10, 10000, hi=20000),
        _f("cell_count", "H", lo=1, hi=65531),
        _f("start_index", "H", lo=1, hi=65531, sentinel=False),
    ],
    extras=("cell_voltages",),
)
#: 2025 0x07 pack head, 2025 Table 12: 5 bytes, then the unit count WORD
_PACK_VOLTAGES = _Record(
    PackVoltages,
    "pack",
    [
        _f("number", "B", lo=1, hi=50),
        _lin("voltage", "H", 10, hi=60000),
        _lin("current", "H", 10, 30000, hi=60000),
    ],
    extras=("cell_voltages",),
)
#: 2025 0x30 stack head, 2025 Table 19: 10 bytes, then the coolant probe count WORD
_STACK = _Record(
    FuelCellStack,
    "stack",
    [
        _f("number", "B", lo=1, hi=253),
        _lin("voltage", "H", 10, hi=20000),
        _lin("current", "H", 10, hi=20000),
        _lin("h2_inlet_pressure", "H", 10, 1000, hi=5000),
        _lin("air_inlet_pressure", "H", 10, 1000, hi=5000),
        _off("air_inlet_temperature", "B", 40, hi=250),
    ],
    extras=("coolant_temperatures",),
)
#: 2025 0x31 super-capacitor head, 2025 Table 25: 5 bytes, then cells and probes
_SUPERCAP = _Record(
    Supercapacitor,
    "supercapacitor",
    [
        _f("number", "B", lo=1, hi=253),
        _lin("total_voltage", "H", 10, hi=10000),
        _lin("total_current", "H", 10, 30000, hi=60000),
    ],
    extras=("cell_voltages", "temperatures"),
)


# =========================================================================== list helpers


def _dec_count(data: bytes, off: int, width: str, sentinel: bool) -> tuple[int, Special | None]:
    raw = data[off] if width == "B" else (data[off] << 8) | data[off + 1]
    if sentinel and raw >= _ABN_RAW[width]:
        return 0, (_ABN if raw == _ABN_RAW[width] else _INV)
    return raw, None


_COUNT_B: Final = tuple(bytes((i,)) for i in range(256))


def _enc_count(items: object, width: str, field: str, limit: int | None = None) -> tuple[bytes, Any]:
    """Count prefix for a list (or the sentinel when the list is a Special)."""
    if items.__class__ is tuple:
        n = len(items)
        if width == "B":
            if n < (255 if limit == 255 else 0xFE):
                return _COUNT_B[n], items
        elif n < 0xFFFE:
            return _U16.pack(n), items
    if isinstance(items, Special):
        if limit == 255:  # this count has no sentinel: a full byte of entries
            raise ProtocolError("this count field has no abnormal/invalid value; give a tuple", None, field)
        return (_U8 if width == "B" else _U16).pack(_ABN_RAW[width] + (items is _INV)), ()
    if not isinstance(items, (tuple, list)):
        raise ProtocolError(f"expected a tuple, got {type(items).__name__}", None, field)
    n = len(items)
    top = limit if limit is not None else _ABN_RAW[width] - 1
    if n > top:
        raise ProtocolError(f"{n} entries exceed the {top} the count field allows", None, field)
    return (_U8 if width == "B" else _U16).pack(n), items


def _strict_count(items: object, lo: int, hi: int, field: str) -> None:
    """Strict mode: a list's length must lie in the count range the table documents."""
    if isinstance(items, (tuple, list)) and not lo <= len(items) <= hi:
        raise ProtocolError(f"{len(items)} entries outside the documented range {lo}..{hi}", None, field)


def _dec_millivolts(data: bytes, off: int, n: int) -> tuple[float | Special, ...]:
    dec = _MV_DEC or _millivolt_tables()[0]
    st = _ARR_H.get(n) or _array("H", n)
    return tuple(map(dec.__getitem__, st.unpack_from(data, off)))


def _strict_fast(values: Any, table: dict[object, int], types: frozenset[type], hi: int,
                 sentinel_from: int) -> list[int] | None:
    """Strict encoding of a value array, fast path (a pure speedup: same result as ``_raw_of`` per
    value): the raw values when every value has one of ``types``, is a key of the decode-inverse
    ``table`` and lands in ``0..hi`` or on a sentinel (raw ≥ ``sentinel_from``, only Special maps
    there); None otherwise, and the slow path decides and names the bad value."""
    try:
        if not set(map(type, values)) <= types:
            return None
        raws = list(map(table.__getitem__, values))
    except (KeyError, TypeError):
        return None
    for r in raws:
        if hi < r < sentinel_from:
            return None
    return raws


_MV_TYPES: Final = frozenset((float, int, Special))
_TEMP_TYPES: Final = frozenset((int, Special))


def _enc_millivolts(values: Any, field: str, strict: bool) -> bytes:
    enc = _MV_ENC or _millivolt_tables()[1]
    try:
        if not strict:
            n = len(values)
            st = _ARR_H.get(n) or _array("H", n)
            return st.pack(*map(enc.__getitem__, values))
    except (KeyError, TypeError):
        pass
    if strict and (fast := _strict_fast(values, enc, _MV_TYPES, 60000, 0xFFFE)) is not None:
        return _array("H", len(fast)).pack(*fast)
    f = _Field("cell", "H", "lin", div=1000, hi=60000)
    raws = [_raw_of(f, v, f"{field}[{i}]", strict) for i, v in enumerate(values)]
    return _array("H", len(raws)).pack(*raws)


def _dec_temps(data: bytes, off: int, n: int, sentinel: bool = True) -> tuple[Any, ...]:
    table = _TEMP_DEC if sentinel else _TEMP_DEC_PLAIN
    return tuple(map(table.__getitem__, data[off : off + n]))


def _enc_temps(values: Any, field: str, strict: bool, sentinel: bool = True, hi: int = 250) -> bytes:
    table = _TEMP_ENC if sentinel else _TEMP_ENC_PLAIN
    if not strict:
        try:
            return bytes(map(table.__getitem__, values))
        except (KeyError, TypeError):
            pass
    elif (fast := _strict_fast(values, table, _TEMP_TYPES, hi, 0xFE if sentinel else 0x100)) is not None:
        return bytes(fast)
    f = _Field("temperature", "B", "off", off=40, hi=hi, sentinel=sentinel)
    return bytes(_raw_of(f, v, f"{field}[{i}]", strict) for i, v in enumerate(values))


# =========================================================================== info-block codecs
#
# Each decoder: (data, off, end, base, opts) -> (block, new_off); ``off`` is just after the type byte.
# Each encoder: (block, opts, field) -> bytes of the body (without the type byte).

_Dec = Callable[[bytes, int, int, int, CodecOptions], tuple[Any, int]]
_Enc = Callable[[Any, CodecOptions, str], bytes]


def _fixed_block(rec: _Record) -> tuple[_Dec, _Enc]:
    size = rec.size
    field = "realtime." + rec.name

    def dec(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
        if off + size > end:
            _need(data, off, size, end, base, field)
        return rec.dec(data, off), off + size

    def enc(block: Any, opts: CodecOptions, field: str) -> bytes:
        return rec.pack(block, field, opts.strict)

    return dec, enc


def _dec_vehicle_2016(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    if off + 20 > end:
        _need(data, off, 20, end, base, "realtime.vehicle")
    rec = _VEHICLE_2016 if opts.vehicle_tail is VehicleTail.PEDALS else _VEHICLE_2016_RESERVED
    return rec.dec(data, off), off + 20


def _enc_vehicle_2016(block: VehicleData, opts: CodecOptions, field: str) -> bytes:
    if block.accelerator_pedal is None and block.brake_pedal is None:
        if block.reserved is None:
            block = dataclasses.replace(block, reserved=0)
        return _VEHICLE_2016_RESERVED.pack(block, field, opts.strict)
    return _VEHICLE_2016.pack(block, field, opts.strict)


_FAST_ERRORS: Final = (struct.error, TypeError, AttributeError, ValueError, OverflowError, KeyError)


def _pack_items(rec: _Record, items: Any, field: str, strict: bool) -> bytes:
    """Bytes of a list of fixed records; names the failing item only on the (slow) error path."""
    pack = rec.pack_fast
    if not strict:
        try:
            return b"".join([pack(x) for x in items])
        except _FAST_ERRORS:
            pass
    for i, x in enumerate(items):
        rec.check(x, f"{field}[{i}]", strict)
    try:
        return b"".join([pack(x) for x in items])
    except _FAST_ERRORS as exc:
        raise ProtocolError(f"cannot encode: {exc}", None, field) from None


def _motors_codec(rec: _Record, cls: type, count_sentinel: bool) -> tuple[_Dec, _Enc]:
    size = rec.size
    recdec = rec.dec

    def dec(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
        if off >= end:
            _need(data, off, 1, end, base, "realtime.motors.count")
        n = data[off]
        off += 1
        if count_sentinel and n >= 0xFE:
            return cls(_SPECIAL_OF["B"][n]), off
        if off + n * size > end:
            _need(data, off, n * size, end, base, "realtime.motors")
        motors = tuple([recdec(data, off + i * size) for i in range(n)])
        return cls(motors), off + n * size

    def enc(block: Any, opts: CodecOptions, field: str) -> bytes:
        head, motors = _enc_count(block.motors, "B", field + ".motors", None if count_sentinel else 255)
        if opts.strict:
            _strict_count(motors, 1, 253, field + ".motors")  # §5.3 / 2025 Table 15: 1-253
        return head + _pack_items(rec, motors, field + ".motors", opts.strict)

    return dec, enc


def _dec_fuel_cell_2016(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    start = off
    _need(data, off, 8, end, base, "realtime.fuel_cell")
    n, special = _dec_count(data, off + 6, "H", True)
    off += 8
    _need(data, off, n + 10, end, base, "realtime.fuel_cell.probe_temperatures")
    probes: Any = special if special is not None else _dec_temps(data, off, n, sentinel=False)
    raw = data[start : start + 6] + data[off + n : off + n + 10]
    return _FUEL_CELL_2016.dec(raw, 0, probes), off + n + 10


def _enc_fuel_cell_2016(block: FuelCell, opts: CodecOptions, field: str) -> bytes:
    packed = _FUEL_CELL_2016.pack(block, field, opts.strict)
    head, probes = _enc_count(block.probe_temperatures, "H", field + ".probe_temperatures")
    temps = _enc_temps(probes, field + ".probe_temperatures", opts.strict, sentinel=False, hi=240)  # §5.4
    return packed[:6] + head + temps + packed[6:]


_LOCATION_2016 = struct.Struct(">BII")
_LOCATION_2025 = struct.Struct(">BBII")
_COORDINATE_MAP: Final = _enum_map(CoordinateSystem, "B", True)
_COORD_FIELD = _Field("coordinate", "I", "lin", div=1000000)
_COORDINATE_FIELD = _code("coordinate_system", CoordinateSystem)


def _dec_location(e25: bool) -> _Dec:
    size = 10 if e25 else 9
    st = _LOCATION_2025 if e25 else _LOCATION_2016
    specials = _SPECIAL_OF["I"]

    def dec(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
        if off + size > end:
            _need(data, off, size, end, base, "realtime.location")
        if e25:
            status, cs, lon_raw, lat_raw = st.unpack_from(data, off)
        else:
            status, lon_raw, lat_raw = st.unpack_from(data, off)
        lon: Any
        lat: Any
        if lon_raw < 0xFFFFFFFE:
            lon = -lon_raw / 1000000 if status & 0x04 else lon_raw / 1000000
        else:
            lon = specials[lon_raw]
        if lat_raw < 0xFFFFFFFE:
            lat = -lat_raw / 1000000 if status & 0x02 else lat_raw / 1000000
        else:
            lat = specials[lat_raw]
        if e25:
            return Location2025(_LOCATION_STATUS[status], _COORDINATE_MAP.get(cs, cs), lon, lat), off + size
        return Location(_LOCATION_STATUS[status], lon, lat), off + size

    return dec


def _coordinate(value: Any, bit: int, name: str, field: str, strict: bool) -> tuple[int, int]:
    """(raw magnitude, hemisphere bit value) of one coordinate; the bit value is ``bit`` for a negative
    value, 0 for a positive one and -1 (keep the status bit) for a zero magnitude or a sentinel."""
    if value.__class__ is float and 0 <= value < 4294.967 and not strict:
        raw = round(value * 1000000)
        return raw, (0 if raw else -1)
    if value.__class__ is float and -4294.967 < value < 0 and not strict:
        raw = round(-value * 1000000)
        return raw, (bit if raw else -1)
    if isinstance(value, Special):
        return _raw_of(_COORD_FIELD, value, f"{field}.{name}", False), -1
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"expected a number, got {type(value).__name__}", None, f"{field}.{name}")
    raw = _raw_of(_COORD_FIELD, abs(value), f"{field}.{name}", False)
    if strict and raw > (180000000 if bit == 0x04 else 90000000):
        raise ProtocolError(f"{name} {value} out of range", None, f"{field}.{name}")
    return raw, ((bit if value < 0 else 0) if raw else -1)


def _enc_location(block: Location | Location2025, opts: CodecOptions, field: str) -> bytes:
    given = block.status
    if not isinstance(given, int) or isinstance(given, bool) or not 0 <= given <= 0xFF:
        raise ProtocolError("status must be LocationStatus bits 0..0xFF", None, field + ".status")
    strict = opts.strict
    lon, west = _coordinate(block.longitude, 0x04, "longitude", field, strict)
    lat, south = _coordinate(block.latitude, 0x02, "latitude", field, strict)
    # §5.6: the hemisphere bits follow the sign of each non-zero coordinate (a status copied from an
    # earlier fix must not flip a positive value); a zero magnitude or a sentinel keeps the given bit
    status = int(given)
    if west >= 0:
        status = (status & ~0x04) | west
    if south >= 0:
        status = (status & ~0x02) | south
    if isinstance(block, Location2025):
        cs = block.coordinate_system
        if cs.__class__ is not CoordinateSystem or strict:
            cs = _raw_of(_COORDINATE_FIELD, cs, field + ".coordinate_system", strict)
        return _LOCATION_2025.pack(status, cs, lon, lat)
    return _LOCATION_2016.pack(status, lon, lat)


_ALARM_HEAD = struct.Struct(">BI")
_ALARM_LEVELS_2016: Final = _enum_map(AlarmLevel, "B", True, limit=3)
_ALARM_LEVELS_2025: Final = _enum_map(AlarmLevel, "B", True)
_FLAG_LEVELS_2025: Final = _enum_map(AlarmLevel, "B", False)
_FAULT_GROUPS: Final = ("ress_faults", "motor_faults", "engine_faults", "other_faults")


def _dec_fault_list(data: bytes, off: int, end: int, base: int, group: str) -> tuple[Any, int]:
    if off >= end:
        _need(data, off, 1, end, base, f"realtime.alarm.{group}")
    n = data[off]
    off += 1
    if n >= 0xFE:
        return _SPECIAL_OF["B"][n], off
    if off + 4 * n > end:
        _need(data, off, 4 * n, end, base, f"realtime.alarm.{group}")
    if n == 0:
        return (), off
    return (_ARR_I.get(n) or _array("I", n)).unpack_from(data, off), off + 4 * n


def _alarm_codec(e25: bool) -> tuple[_Dec, _Enc]:
    levels = _ALARM_LEVELS_2025 if e25 else _ALARM_LEVELS_2016
    cls = Alarm2025 if e25 else Alarm
    level_field = _code("max_level", AlarmLevel, limit=None if e25 else 3)

    def dec(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
        if off + 5 > end:
            _need(data, off, 5, end, base, "realtime.alarm")
        level, flags = _ALARM_HEAD.unpack_from(data, off)
        ress, off = _dec_fault_list(data, off + 5, end, base, "ress_faults")
        motor, off = _dec_fault_list(data, off, end, base, "motor_faults")
        engine, off = _dec_fault_list(data, off, end, base, "engine_faults")
        other, off = _dec_fault_list(data, off, end, base, "other_faults")
        if not e25:
            return Alarm(levels.get(level, level), _flags(flags), ress, motor, engine, other), off
        if off >= end:
            _need(data, off, 1, end, base, "realtime.alarm.flag_levels")
        n = data[off]
        off += 1
        pairs: Any
        if n >= 0xFE:
            pairs = _SPECIAL_OF["B"][n]
        else:
            if off + 2 * n > end:
                _need(data, off, 2 * n, end, base, "realtime.alarm.flag_levels")
            raw = data[off : off + 2 * n]
            pairs = tuple(
                [FlagLevel(raw[i], _FLAG_LEVELS_2025.get(raw[i + 1], raw[i + 1])) for i in range(0, 2 * n, 2)]
            )
            off += 2 * n
        return Alarm2025(levels.get(level, level), _flags(flags), ress, motor, engine, other, pairs), off

    def enc(block: Any, opts: CodecOptions, field: str) -> bytes:
        if block.__class__ is not cls:
            raise ProtocolError(f"expected {cls.__name__}", None, field)
        strict = opts.strict
        level = block.max_level
        if level.__class__ is not AlarmLevel or strict or (not e25 and level > 3):
            level = _raw_of(level_field, level, field + ".max_level", strict)
        flags = block.general_flags
        if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags <= 0xFFFFFFFF:
            raise ProtocolError(
                "general_flags must be a 32-bit GeneralAlarmFlag", None, field + ".general_flags"
            )
        if strict and flags >> (28 if e25 else 19):
            raise ProtocolError("reserved alarm flag bits set", None, field + ".general_flags")
        parts = [_ALARM_HEAD.pack(level, flags)]
        for group in _FAULT_GROUPS:
            head, codes = _enc_count(getattr(block, group), "B", f"{field}.{group}")
            if strict:
                _strict_count(codes, 0, 253 if e25 else 252, f"{field}.{group}")  # §5.8 / 2025 Table 23
            parts.append(head)
            if codes:
                try:
                    parts.append((_ARR_I.get(len(codes)) or _array("I", len(codes))).pack(*codes))
                except struct.error:
                    raise ProtocolError("fault codes must be DWORDs", None, f"{field}.{group}") from None
        if e25:
            head, pairs = _enc_count(getattr(block, "flag_levels", ()), "B", field + ".flag_levels")
            if strict:
                _strict_count(pairs, 0, 253, field + ".flag_levels")
            parts.append(head)
            out = bytearray()
            for i, item in enumerate(pairs):
                if item.__class__ is not FlagLevel:
                    raise ProtocolError("expected FlagLevel", None, f"{field}.flag_levels[{i}]")
                bit = item.bit
                lv = item.level
                if not (
                    isinstance(bit, int) and 0 <= bit <= 255 and isinstance(lv, int) and 0 <= lv <= 255
                ) or isinstance(bit, bool):
                    raise ProtocolError("bit and level must be bytes", None, f"{field}.flag_levels[{i}]")
                if strict and (bit > 31 or lv > 4):
                    raise ProtocolError("bit 0..31, level 0..4", None, f"{field}.flag_levels[{i}]")
                out.append(bit)
                out.append(lv)
            parts.append(bytes(out))
        return b"".join(parts)

    return dec, enc


def _dec_cells_2016(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    if off >= end:
        _need(data, off, 1, end, base, "realtime.cell_voltages.count")
    n = data[off]
    off += 1
    if n >= 0xFE:
        return CellVoltages(_SPECIAL_OF["B"][n]), off
    records = []
    head = _SUBSYSTEM_VOLTAGES.dec
    for i in range(n):
        if off + 10 > end:
            _need(data, off, 10, end, base, f"realtime.cell_voltages[{i}]")
        m = data[off + 9]
        if off + 10 + 2 * m > end:
            _need(data, off + 10, 2 * m, end, base, f"realtime.cell_voltages[{i}].cell_voltages")
        records.append(head(data, off, _dec_millivolts(data, off + 10, m)))
        off += 10 + 2 * m
    return CellVoltages(tuple(records)), off


def split_cell_records(block: CellVoltages, max_per_record: int = 200) -> CellVoltages:
    """``block`` with every 2016 0x08 record longer than ``max_per_record`` cut into several records of
    the same subsystem with increasing 1-based start index (spec §5.9; what the encoder does)."""
    if isinstance(block.subsystems, Special) or max_per_record <= 0:
        return block
    out: list[SubsystemVoltages] = []
    for rec in block.subsystems:
        cells = rec.cell_voltages
        if len(cells) <= max_per_record:
            out.append(rec)
            continue
        for k in range(0, len(cells), max_per_record):
            out.append(
                dataclasses.replace(
                    rec, start_index=rec.start_index + k, cell_voltages=tuple(cells[k : k + max_per_record])
                )
            )
    return CellVoltages(tuple(out))


def _enc_cells_2016(block: CellVoltages, opts: CodecOptions, field: str) -> bytes:
    limit = opts.max_cells_per_record
    subsystems = block.subsystems
    if (
        subsystems.__class__ is tuple
        and limit > 0
        and any(r.__class__ is SubsystemVoltages and len(r.cell_voltages) > limit for r in subsystems)
    ):
        block = split_cell_records(block, limit)
    head, records = _enc_count(block.subsystems, "B", field + ".subsystems")
    parts = [head]
    strict = opts.strict
    if strict:
        _strict_count(records, 1, 250, field + ".subsystems")  # §5.9: 1-250
    pack = _SUBSYSTEM_VOLTAGES.pack
    for i, rec in enumerate(records):
        parts.append(pack(rec, field, strict))
        cells = rec.cell_voltages
        n = len(cells) if cells.__class__ is tuple else -1
        if not 0 <= n <= (200 if strict else 255):
            where = f"{field}.subsystems[{i}].cell_voltages"
            raise ProtocolError("expected a tuple of at most 200 cell voltages per record", None, where)
        parts.append(_COUNT_B[n])
        parts.append(_enc_millivolts(cells, field + ".cell_voltages", strict))
    return b"".join(parts)


def _dec_packs_2025(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    if off >= end:
        _need(data, off, 1, end, base, "realtime.parallel_unit_voltages.count")
    n = data[off]
    off += 1
    if n >= 0xFE:
        return ParallelUnitVoltages(_SPECIAL_OF["B"][n]), off
    packs = []
    head = _PACK_VOLTAGES.dec
    for i in range(n):
        if off + 7 > end:
            _need(data, off, 7, end, base, f"realtime.parallel_unit_voltages[{i}]")
        m = (data[off + 5] << 8) | data[off + 6]
        if off + 7 + 2 * m > end:
            _need(data, off + 7, 2 * m, end, base, f"realtime.parallel_unit_voltages[{i}].cell_voltages")
        packs.append(head(data, off, _dec_millivolts(data, off + 7, m)))
        off += 7 + 2 * m
    return ParallelUnitVoltages(tuple(packs)), off


def _enc_packs_2025(block: ParallelUnitVoltages, opts: CodecOptions, field: str) -> bytes:
    head, packs = _enc_count(block.packs, "B", field + ".packs")
    if opts.strict:
        _strict_count(packs, 0, 50, field + ".packs")  # 2025 §3.6: 0-50
    parts = [head]
    pack = _PACK_VOLTAGES.pack
    for pk in packs:
        parts.append(pack(pk, field + ".packs", opts.strict))
        cells = pk.cell_voltages
        if cells.__class__ is not tuple or len(cells) > 65531:
            raise ProtocolError(
                "expected a tuple of at most 65531 unit voltages", None, field + ".cell_voltages"
            )
        parts.append(_U16.pack(len(cells)))
        parts.append(_enc_millivolts(cells, field + ".cell_voltages", opts.strict))
    return b"".join(parts)


def _dec_temperatures(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    if off >= end:
        _need(data, off, 1, end, base, "realtime.temperatures.count")
    n = data[off]
    off += 1
    if n >= 0xFE:
        return Temperatures(_SPECIAL_OF["B"][n]), off
    subsystems = []
    table = _TEMP_DEC
    for i in range(n):
        if off + 3 > end:
            _need(data, off, 3, end, base, f"realtime.temperatures[{i}]")
        no = data[off]
        number = no if no < 0xFE else _SPECIAL_OF["B"][no]
        m = (data[off + 1] << 8) | data[off + 2]
        off += 3
        if m >= 0xFFFE:
            subsystems.append(SubsystemTemperatures(number, _SPECIAL_OF["H"][m]))
            continue
        if off + m > end:
            _need(data, off, m, end, base, f"realtime.temperatures[{i}].temperatures")
        subsystems.append(SubsystemTemperatures(number, tuple(map(table.__getitem__, data[off : off + m]))))
        off += m
    return Temperatures(tuple(subsystems)), off


_NUMBER_B = _f("number", "B")


def _enc_temperatures(
    block: Temperatures, opts: CodecOptions, field: str, lo: int = 0, hi: int = 50
) -> bytes:
    head, subsystems = _enc_count(block.subsystems, "B", field + ".subsystems")
    parts = [head]
    strict = opts.strict
    if strict:
        _strict_count(subsystems, lo, hi, field + ".subsystems")
    for sub in subsystems:
        if sub.__class__ is not SubsystemTemperatures:
            raise ProtocolError("expected SubsystemTemperatures", None, field + ".subsystems")
        no = sub.number
        if no.__class__ is not int or not 0 <= no < 0xFE:
            no = _raw_of(_NUMBER_B, no, field + ".number", False)
        parts.append(_COUNT_B[no])
        count, temps = _enc_count(sub.temperatures, "H", field + ".temperatures")
        parts.append(count)
        parts.append(_enc_temps(temps, field + ".temperatures", strict))
    return b"".join(parts)


def _enc_temperatures_2016(block: Temperatures, opts: CodecOptions, field: str) -> bytes:
    return _enc_temperatures(block, opts, field, 1, 250)  # §5.9 0x09: 1-250 (2025 0x08: 0-50)


def _dec_stacks(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    if off >= end:
        _need(data, off, 1, end, base, "realtime.fuel_cell_stacks.count")
    n = data[off]
    off += 1
    stacks = []
    head = _STACK.dec
    for i in range(n):
        if off + 12 > end:
            _need(data, off, 12, end, base, f"realtime.fuel_cell_stacks[{i}]")
        m = (data[off + 10] << 8) | data[off + 11]
        temps: Any
        if m >= 0xFFFE:
            temps = _SPECIAL_OF["H"][m]
            m = 0
        else:
            if off + 12 + m > end:
                _need(data, off + 12, m, end, base, f"realtime.fuel_cell_stacks[{i}].coolant_temperatures")
            temps = _dec_temps(data, off + 12, m)
        stacks.append(head(data, off, temps))
        off += 12 + m
    return FuelCellStacks(tuple(stacks)), off


def _enc_stacks(block: FuelCellStacks, opts: CodecOptions, field: str) -> bytes:
    head, stacks = _enc_count(block.stacks, "B", field + ".stacks", 255)
    if opts.strict:
        _strict_count(stacks, 1, 253, field + ".stacks")  # 2025 §3.6: 1-253
    parts = [head]
    pack = _STACK.pack
    for stack in stacks:
        parts.append(pack(stack, field + ".stacks", opts.strict))
        count, temps = _enc_count(stack.coolant_temperatures, "H", field + ".coolant_temperatures")
        parts.append(count)
        parts.append(_enc_temps(temps, field + ".coolant_temperatures", opts.strict))
    return b"".join(parts)


def _dec_supercap(data: bytes, off: int, end: int, base: int, opts: CodecOptions) -> tuple[Any, int]:
    start = off
    if off + 7 > end:
        _need(data, off, 7, end, base, "realtime.supercapacitor")
    m = (data[off + 5] << 8) | data[off + 6]
    off += 7
    cells: Any
    if m >= 0xFFFE:
        cells = _SPECIAL_OF["H"][m]
    else:
        if off + 2 * m > end:
            _need(data, off, 2 * m, end, base, "realtime.supercapacitor.cell_voltages")
        cells = _dec_millivolts(data, off, m)
        off += 2 * m
    if off + 2 > end:
        _need(data, off, 2, end, base, "realtime.supercapacitor.temperatures")
    n = (data[off] << 8) | data[off + 1]
    off += 2
    temps: Any
    if n >= 0xFFFE:
        temps = _SPECIAL_OF["H"][n]
    else:
        if off + n > end:
            _need(data, off, n, end, base, "realtime.supercapacitor.temperatures")
        temps = _dec_temps(data, off, n)
        off += n
    return _SUPERCAP.dec(data, start, cells, temps), off


def _enc_supercap(block: Supercapacitor, opts: CodecOptions, field: str) -> bytes:
    parts = [_SUPERCAP.pack(block, field, opts.strict)]
    count, cells = _enc_count(block.cell_voltages, "H", field + ".cell_voltages")
    parts.append(count)
    parts.append(_enc_millivolts(cells, field + ".cell_voltages", opts.strict))
    count, temps = _enc_count(block.temperatures, "H", field + ".temperatures")
    parts.append(count)
    parts.append(_enc_temps(temps, field + ".temperatures", opts.strict))
    return b"".join(parts)


def _dec_custom(info_type: int, data: bytes, off: int, end: int, base: int) -> tuple[CustomBlock, int]:
    _need(data, off, 2, end, base, f"realtime.custom_0x{info_type:02X}.length")
    n = (data[off] << 8) | data[off + 1]
    off += 2
    _need(data, off, n, end, base, f"realtime.custom_0x{info_type:02X}.data")
    return CustomBlock(info_type, data[off : off + n]), off + n


def _enc_custom(block: CustomBlock, field: str, strict: bool) -> bytes:
    t = block.info_type
    if isinstance(t, bool) or not isinstance(t, int) or not 0x80 <= t <= 0xFE:
        raise ProtocolError("user-defined info type must be 0x80..0xFE", None, field + ".info_type")
    data = block.data
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError("expected bytes", None, field + ".data")
    if len(data) > 65531 or (strict and not data):
        raise ProtocolError(f"length {len(data)} out of range 1..65531", None, field + ".data")
    return bytes((t,)) + _U16.pack(len(data)) + bytes(data)


# type id -> decoder, and block class -> (type id, encoder, field name), per edition
_DECODERS: dict[Edition, dict[int, _Dec]] = {}
_ENCODERS: dict[Edition, dict[type, tuple[int, _Enc, str]]] = {}


def _register() -> None:
    dec16: dict[int, _Dec] = {}
    enc16: dict[type, tuple[int, _Enc, str]] = {}
    dec25: dict[int, _Dec] = {}
    enc25: dict[type, tuple[int, _Enc, str]] = {}

    def add(
        table_d: dict[int, _Dec],
        table_e: dict[type, tuple[int, _Enc, str]],
        type_id: int,
        cls: type,
        dec: _Dec,
        enc: _Enc,
        name: str,
    ) -> None:
        table_d[type_id] = dec
        table_e[cls] = (type_id, enc, "realtime." + name)

    add(dec16, enc16, 0x01, VehicleData, _dec_vehicle_2016, _enc_vehicle_2016, "vehicle")
    add(dec16, enc16, 0x02, DriveMotors, *_motors_codec(_MOTOR_2016, DriveMotors, False), "motors")
    add(dec16, enc16, 0x03, FuelCell, _dec_fuel_cell_2016, _enc_fuel_cell_2016, "fuel_cell")
    add(dec16, enc16, 0x04, Engine, *_fixed_block(_ENGINE_2016), "engine")
    add(dec16, enc16, 0x05, Location, _dec_location(False), _enc_location, "location")
    add(dec16, enc16, 0x06, Extremes, *_fixed_block(_EXTREMES_2016), "extremes")
    add(dec16, enc16, 0x07, Alarm, *_alarm_codec(False), "alarm")
    add(dec16, enc16, 0x08, CellVoltages, _dec_cells_2016, _enc_cells_2016, "cell_voltages")
    add(dec16, enc16, 0x09, Temperatures, _dec_temperatures, _enc_temperatures_2016, "temperatures")

    add(dec25, enc25, 0x01, VehicleData2025, *_fixed_block(_VEHICLE_2025), "vehicle")
    add(dec25, enc25, 0x02, DriveMotors2025, *_motors_codec(_MOTOR_2025, DriveMotors2025, True), "motors")
    add(dec25, enc25, 0x03, FuelCell2025, *_fixed_block(_FUEL_CELL_2025), "fuel_cell")
    add(dec25, enc25, 0x04, Engine2025, *_fixed_block(_ENGINE_2025), "engine")
    add(dec25, enc25, 0x05, Location2025, _dec_location(True), _enc_location, "location")
    add(dec25, enc25, 0x06, Alarm2025, *_alarm_codec(True), "alarm")
    add(dec25, enc25, 0x07, ParallelUnitVoltages, _dec_packs_2025, _enc_packs_2025, "parallel_unit_voltages")
    add(dec25, enc25, 0x08, Temperatures, _dec_temperatures, _enc_temperatures, "temperatures")
    add(dec25, enc25, 0x30, FuelCellStacks, _dec_stacks, _enc_stacks, "fuel_cell_stacks")
    add(dec25, enc25, 0x31, Supercapacitor, _dec_supercap, _enc_supercap, "supercapacitor")
    add(
        dec25,
        enc25,
        0x32,
        SupercapacitorExtremes,
        *_fixed_block(_SUPERCAP_EXTREMES),
        "supercapacitor_extremes",
    )
    _DECODERS[Edition.E2016] = dec16
    _DECODERS[Edition.E2025] = dec25
    _ENCODERS[Edition.E2016] = enc16
    _ENCODERS[Edition.E2025] = enc25


_register()


def info_type_ids(edition: Edition | int) -> dict[type, int]:
    """Info-block class -> wire info type id for ``edition`` (``CustomBlock`` carries its own)."""
    return {cls: entry[0] for cls, entry in _ENCODERS[_edition(edition)].items()}


def _unknown_type(edition: Edition, t: int) -> str:
    if edition is Edition.E2016:
        what = "platform-exchange/reserved" if t >= 0x0A else "unused"
    else:
        what = "platform-exchange/reserved" if t != 0x00 else "unused"
    return f"info type 0x{t:02X} ({what}) has no length field; cannot skip it"


def _decode_blocks(
    edition: Edition, data: bytes, off: int, end: int, base: int, opts: CodecOptions
) -> tuple[tuple[InfoBlock, ...], Signature | None]:
    decoders = _DECODERS[edition]
    blocks: list[Any] = []
    signature: Signature | None = None
    e25 = edition is Edition.E2025
    while off < end:
        t = data[off]
        decoder = decoders.get(t)
        if decoder is not None:
            block, off = decoder(data, off + 1, end, base, opts)
            blocks.append(block)
        elif 0x80 <= t <= 0xFE:
            block, off = _dec_custom(t, data, off + 1, end, base)
            blocks.append(block)
        elif t == _SIGNATURE_MARKER and e25:
            signature, sig_end = _dec_signature(data, off + 1, end, base, "realtime.signature")
            if sig_end != end:
                raise ProtocolError(
                    f"{end - sig_end} bytes after the signature block", base + sig_end, "realtime.signature"
                )
            off = sig_end
        else:
            raise ProtocolError(_unknown_type(edition, t), base + off, "realtime.info_type")
    return tuple(blocks), signature


def _encode_blocks(edition: Edition, blocks: Iterable[Any], opts: CodecOptions) -> list[bytes]:
    encoders = _ENCODERS[edition]
    parts: list[bytes] = []
    for i, block in enumerate(blocks):
        entry = encoders.get(type(block))
        if entry is None:
            if isinstance(block, CustomBlock):
                parts.append(_enc_custom(block, f"realtime.blocks[{i}]", opts.strict))
                continue
            raise ProtocolError(
                f"{type(block).__name__} is not an info block of the {int(edition)} edition",
                None,
                f"realtime.blocks[{i}]",
            )
        type_id, enc, name = entry
        parts.append(_TYPE_BYTE[type_id])
        parts.append(enc(block, opts, name))
    return parts


_TYPE_BYTE: Final = tuple(bytes((i,)) for i in range(256))


def decode_info_blocks(
    edition: Edition, data: bytes, offset: int = 0, *, base_offset: int = 24, options: CodecOptions = DEFAULT
) -> tuple[tuple[InfoBlock, ...], Signature | None]:
    """Info blocks (and a 2025 signature) from ``data[offset:]`` — a realtime data unit after its time,
    or, for frames built without the time (JTNE's J3), from offset 0."""
    try:
        return _decode_blocks(_edition(edition), bytes(data), offset, len(data), base_offset, options)
    except (struct.error, IndexError, ValueError) as exc:
        raise ProtocolError(f"malformed info blocks: {exc}", None, "realtime") from None


def encode_info_blocks(
    edition: Edition, blocks: Iterable[InfoBlock], *, options: CodecOptions = DEFAULT
) -> bytes:
    """Bytes of ``blocks`` (type byte + body each), without time and signature."""
    return b"".join(_encode_blocks(_edition(edition), blocks, options))


# =========================================================================== signature (2025 Table 8)

_SIG_TYPES: Final = _enum_map(SignatureType, "B", False)


def _dec_signature(data: bytes, off: int, end: int, base: int, field: str) -> tuple[Signature, int]:
    _need(data, off, 3, end, base, field)
    st = data[off]
    rn = (data[off + 1] << 8) | data[off + 2]
    off += 3
    _need(data, off, rn, end, base, field + ".r")
    r = data[off : off + rn]
    off += rn
    _need(data, off, 2, end, base, field + ".s")  # the S length WORD
    sn = (data[off] << 8) | data[off + 1]
    off += 2
    _need(data, off, sn, end, base, field + ".s")
    s = data[off : off + sn]
    return Signature(_SIG_TYPES.get(st, st), r, s), off + sn


def _enc_signature(sig: Signature, field: str) -> bytes:
    if not isinstance(sig, Signature):
        raise ProtocolError(f"expected Signature, got {type(sig).__name__}", None, field)
    st = sig.sig_type
    if isinstance(st, bool) or not isinstance(st, int) or not 0 <= st <= 255:
        raise ProtocolError("signature type must be a byte", None, field + ".sig_type")
    for name, value in (("r", sig.r), ("s", sig.s)):
        if not isinstance(value, (bytes, bytearray)) or len(value) > 65531:
            raise ProtocolError("expected at most 65531 bytes", None, f"{field}.{name}")
    return bytes((int(st),)) + _U16.pack(len(sig.r)) + bytes(sig.r) + _U16.pack(len(sig.s)) + bytes(sig.s)


# =========================================================================== session-level units


def _finish(data: bytes, off: int, end: int, base: int, field: str) -> None:
    if off != end:
        raise ProtocolError(f"{end - off} unexpected bytes after the data unit", base + off, field)


_LOGIN_HEAD = struct.Struct(">H20sB")


def _dec_login(edition: Edition, data: bytes, base: int) -> VehicleLogin | VehicleLogin2025:
    end = len(data)
    time = _decode_time(data, 0, base, "login.time")
    _need(data, 6, 23, end, base, "login")
    serial, iccid_raw, n = _LOGIN_HEAD.unpack_from(data, 6)
    iccid = _text(iccid_raw)
    if edition is Edition.E2016:
        _need(data, 29, 1, end, base, "login.code_length")
        m = data[29]
        size = n * m if m else 0
        _need(data, 30, size, end, base, "login.codes")
        codes = tuple(data[30 + i * m : 30 + (i + 1) * m].decode("latin-1") for i in range(n)) if m else ()
        _finish(data, 30 + size, end, base, "login")
        return VehicleLogin(time, serial, iccid, n, m, codes)
    # 2025: n BMS, then n pack counts (the byte read as m is the first of them)
    _need(data, 29, n, end, base, "login.packs_per_bms")
    packs = tuple(data[29 : 29 + n])
    off = 29 + n
    total = sum(packs) * _PACK_CODE_SIZE
    _need(data, off, total, end, base, "login.pack_codes")
    codes = tuple(_text(data[off + i : off + i + _PACK_CODE_SIZE]) for i in range(0, total, _PACK_CODE_SIZE))
    _finish(data, off + total, end, base, "login")
    return VehicleLogin2025(time, serial, iccid, packs, codes)


def _u(value: object, fmt: str, field: str, lo: int = 0, hi: int | None = None) -> bytes:
    top = _MAX_RAW[fmt]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ProtocolError(f"value {value!r} does not fit a {fmt}", None, field)
    if hi is not None and not lo <= value <= hi:
        raise ProtocolError(f"value {value} out of range {lo}..{hi}", None, field)
    return struct.pack(">" + fmt, value)


def _byte(value: object, field: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
        return int(value)
    raise ProtocolError(f"value {value!r} does not fit a byte", None, field)


def _enc_login(edition: Edition, body: Any, strict: bool) -> bytes:
    if edition is Edition.E2016:
        if not isinstance(body, VehicleLogin):
            raise ProtocolError("a 2016 login needs VehicleLogin", None, "login")
        m = body.code_length
        n = body.subsystem_count
        parts = [
            _encode_time(body.time, "login.time", strict),
            _u(body.serial, "H", "login.serial", 1, 65531 if strict else None),
            _fixed(body.iccid, 20, "login.iccid"),
            _u(n, "B", "login.subsystem_count", 0, 250 if strict else None),
            _u(m, "B", "login.code_length", 0, 50 if strict else None),
        ]
        if len(body.codes) != (n if m else 0):
            raise ProtocolError(
                f"{len(body.codes)} codes but count {n} and code length {m}", None, "login.codes"
            )
        for i, code in enumerate(body.codes):
            raw = _latin(code, f"login.codes[{i}]")
            if len(raw) != m:
                raise ProtocolError(
                    f"code of {len(raw)} characters, code length is {m}", None, f"login.codes[{i}]"
                )
            parts.append(raw)
        return b"".join(parts)
    if not isinstance(body, VehicleLogin2025):
        raise ProtocolError("a 2025 login needs VehicleLogin2025", None, "login")
    packs = body.packs_per_bms
    parts = [
        _encode_time(body.time, "login.time", strict),
        _u(body.serial, "H", "login.serial", 1, 65531 if strict else None),
        _fixed(body.iccid, 20, "login.iccid"),
        _u(len(packs), "B", "login.packs_per_bms", 0, 20 if strict else None),
    ]
    for i, count in enumerate(packs):
        parts.append(_u(count, "B", f"login.packs_per_bms[{i}]", 0, 50 if strict else None))
    if sum(packs) != len(body.pack_codes):
        raise ProtocolError(
            f"{len(body.pack_codes)} pack codes but the BMS counts sum to {sum(packs)}",
            None,
            "login.pack_codes",
        )
    for i, code in enumerate(body.pack_codes):
        parts.append(_fixed(code, _PACK_CODE_SIZE, f"login.pack_codes[{i}]"))
    return b"".join(parts)


def _dec_serial_unit(
    cls: type[VehicleLogout] | type[PlatformLogout], data: bytes, base: int, field: str
) -> VehicleLogout | PlatformLogout:
    time = _decode_time(data, 0, base, field + ".time")
    _need(data, 6, 2, len(data), base, field + ".serial")
    _finish(data, 8, len(data), base, field)
    return cls(time, (data[6] << 8) | data[7])


_PLATFORM_LOGIN = struct.Struct(">H12s20sB")
_ENCRYPTION_2016: Final = _enum_map(Encryption, "B", False, limit=None)
_ENCRYPTION_MAPS: Final = {
    Edition.E2016: {k: v for k, v in _ENCRYPTION_2016.items() if k not in (0x04, 0x05)},
    Edition.E2025: _ENCRYPTION_2016,
}


def _dec_platform_login(edition: Edition, data: bytes, base: int) -> PlatformLogin:
    time = _decode_time(data, 0, base, "platform_login.time")
    _need(data, 6, 35, len(data), base, "platform_login")
    _finish(data, 41, len(data), base, "platform_login")
    serial, user, pwd, rule = _PLATFORM_LOGIN.unpack_from(data, 6)
    return PlatformLogin(time, serial, _text(user), _text(pwd), _ENCRYPTION_MAPS[edition].get(rule, rule))


def _dec_activation(data: bytes, base: int) -> Activation:
    end = len(data)
    time = _decode_time(data, 0, base, "activation.time")
    _need(data, 6, 18, end, base, "activation")
    chip = _text(data[6:22], b" ")
    k = (data[22] << 8) | data[23]
    _need(data, 24, k + 17, end, base, "activation.public_key")
    key = data[24 : 24 + k]
    vin = _text(data[24 + k : 41 + k])
    sig, off = _dec_signature(data, 41 + k, end, base, "activation.signature")
    _finish(data, off, end, base, "activation")
    return Activation(time, chip, key, vin, sig)


def _enc_activation(body: Activation, strict: bool) -> bytes:
    key = body.public_key
    if not isinstance(key, (bytes, bytearray)) or len(key) > 65531:
        raise ProtocolError("public key must be at most 65531 bytes", None, "activation.public_key")
    return _activation_signed(body, strict) + _enc_signature(body.signature, "activation.signature")


def _activation_signed(body: Activation, strict: bool) -> bytes:
    return (
        _encode_time(body.time, "activation.time", strict)
        + _fixed(body.chip_id, 16, "activation.chip_id", b" ")
        + _U16.pack(len(body.public_key))
        + bytes(body.public_key)
        + _fixed(body.vin, 17, "activation.vin")
    )


_ACT_STATUS: Final = _enum_map(ActivationStatus, "B", False)
_ACT_INFO: Final = _enum_map(ActivationInfo, "B", False)


def _dec_key_exchange(edition: Edition, data: bytes, base: int) -> KeyExchange:
    end = len(data)
    _need(data, 0, 3, end, base, "key_exchange")
    kt = data[0]
    n = (data[1] << 8) | data[2]
    _need(data, 3, n + 12, end, base, "key_exchange.key")
    key = data[3 : 3 + n]
    start = _decode_time(data, 3 + n, base, "key_exchange.valid_from")
    until = _decode_time(data, 9 + n, base, "key_exchange.valid_until")
    _finish(data, 15 + n, end, base, "key_exchange")
    return KeyExchange(_ENCRYPTION_MAPS[edition].get(kt, kt), key, start, until)


# =========================================================================== parameters (0x80 / 0x81)

#: id -> (kind, width) per edition: "u" unsigned with sentinels, "n" unsigned without, "len" domain
#: length, "dom" domain text (length from the given id), "ver" 5-byte version text.
_PARAM_2016: Final[dict[int, tuple[str, str | int]]] = {
    0x01: ("u", "H"),
    0x02: ("u", "H"),
    0x03: ("u", "H"),
    0x04: ("n", "B"),
    0x05: ("dom", 0x04),
    0x06: ("u", "H"),
    0x07: ("ver", 5),
    0x08: ("ver", 5),
    0x09: ("u", "B"),
    0x0A: ("u", "H"),
    0x0B: ("u", "H"),
    0x0C: ("u", "B"),
    0x0D: ("n", "B"),
    0x0E: ("dom", 0x0D),
    0x0F: ("u", "H"),
    0x10: ("u", "B"),
}
_PARAM_2025: Final = {**_PARAM_2016, 0x02: ("u", "B"), 0x03: ("u", "B")}
_PARAMS: Final = {Edition.E2016: _PARAM_2016, Edition.E2025: _PARAM_2025}
_PARAM_IDS: Final = _enum_map(ParameterId, "B", False)
#: strict ranges (2016 / 2025 where they differ)
_PARAM_RANGE_2016: Final = {
    0x01: (0, 60000),
    0x02: (1, 600),
    0x03: (0, 60000),
    0x06: (0, 65531),
    0x09: (1, 240),
    0x0A: (1, 600),
    0x0B: (1, 600),
    0x0C: (1, 240),
    0x0F: (0, 65531),
    0x10: (1, 2),
}
_PARAM_RANGE_2025: Final = {**_PARAM_RANGE_2016, 0x02: (1, 30), 0x03: (0, 1)}


def _dec_param_items(
    edition: Edition, data: bytes, off: int, base: int, opts: CodecOptions, field: str
) -> tuple[Parameter, ...]:
    end = len(data)
    _need(data, off, 1, end, base, field + ".count")
    n = data[off]
    off += 1
    table = _PARAMS[edition]
    custom = dict(opts.parameter_sizes)
    lengths: dict[int, int] = {}
    items = []
    for i in range(n):
        where = f"{field}[{i}]"
        _need(data, off, 1, end, base, where + ".id")
        pid = data[off]
        spec = table.get(pid)
        value: Any
        if spec is None:
            size = custom.get(pid)
            if size is None:
                kind = "user-defined" if pid >= 0x80 else "reserved"
                raise ProtocolError(
                    f"{kind} parameter id 0x{pid:02X} has no known size; cannot continue",
                    base + off,
                    where + ".id",
                )
            _need(data, off + 1, size, end, base, where + ".value")
            value = data[off + 1 : off + 1 + size]
            off += 1 + size
        else:
            kind, arg = spec
            if kind in ("u", "n"):
                width = str(arg)
                size = 1 if width == "B" else 2
                _need(data, off + 1, size, end, base, where + ".value")
                raw = data[off + 1] if size == 1 else (data[off + 1] << 8) | data[off + 2]
                value = _SPECIAL_OF[width][raw] if kind == "u" and raw >= _ABN_RAW[width] else raw
                if kind == "n":
                    lengths[pid] = raw
                off += 1 + size
            elif kind == "dom":
                length = lengths.get(int(arg))
                if length is None:
                    raise ProtocolError(
                        f"parameter 0x{pid:02X} needs an earlier 0x{int(arg):02X} (its length) in the list",
                        base + off,
                        where + ".id",
                    )
                _need(data, off + 1, length, end, base, where + ".value")
                value = data[off + 1 : off + 1 + length].decode("latin-1")
                off += 1 + length
            else:
                _need(data, off + 1, 5, end, base, where + ".value")
                value = data[off + 1 : off + 6].decode("latin-1")
                off += 6
        items.append(Parameter(_PARAM_IDS.get(pid, pid), value))
    _finish(data, off, end, base, field)
    return tuple(items)


def _enc_param_items(edition: Edition, items: Any, opts: CodecOptions, field: str) -> bytes:
    if not isinstance(items, (tuple, list)) or len(items) > 255:
        raise ProtocolError("expected a tuple of at most 255 parameters", None, field)
    table = _PARAMS[edition]
    ranges = _PARAM_RANGE_2025 if edition is Edition.E2025 else _PARAM_RANGE_2016
    custom = dict(opts.parameter_sizes)
    lengths: dict[int, int] = {}
    parts = [bytes((len(items),))]
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, Parameter):
            raise ProtocolError(f"expected Parameter, got {type(item).__name__}", None, where)
        pid = item.id
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 <= pid <= 255:
            raise ProtocolError("parameter id must be a byte", None, where + ".id")
        pid = int(pid)
        value = item.value
        spec = table.get(pid)
        if spec is None:
            size = custom.get(pid)
            if size is None or not isinstance(value, (bytes, bytearray)) or len(value) != size:
                raise ProtocolError(
                    f"parameter 0x{pid:02X} needs bytes of the size configured in "
                    "CodecOptions.parameter_sizes",
                    None,
                    where + ".value",
                )
            parts.append(bytes((pid,)) + bytes(value))
            continue
        kind, arg = spec
        if kind in ("u", "n"):
            width = str(arg)
            if isinstance(value, Special):
                if kind == "n":
                    raise ProtocolError("a length has no sentinel", None, where + ".value")
                raw = _ABN_RAW[width] + (value is _INV)
            else:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ProtocolError(f"expected int, got {type(value).__name__}", None, where + ".value")
                raw = value
                limit = _ABN_RAW[width] - 1 if kind == "u" else _MAX_RAW[width]
                if not 0 <= raw <= limit:
                    raise ProtocolError(f"value {raw} does not fit", None, where + ".value")
                if opts.strict and pid in ranges and not ranges[pid][0] <= raw <= ranges[pid][1]:
                    raise ProtocolError(f"value {raw} outside {ranges[pid]}", None, where + ".value")
            if kind == "n":
                lengths[pid] = raw
            parts.append(bytes((pid,)) + struct.pack(">" + width, raw))
        elif kind == "dom":
            raw_text = _latin(value, where + ".value")
            length = lengths.get(int(arg))
            if length is None:
                raise ProtocolError(
                    f"parameter 0x{pid:02X} needs an earlier 0x{int(arg):02X} in the same list",
                    None,
                    where + ".id",
                )
            if len(raw_text) != length:
                raise ProtocolError(
                    f"{len(raw_text)} bytes but the preceding length parameter says {length}",
                    None,
                    where + ".value",
                )
            parts.append(bytes((pid,)) + raw_text)
        else:
            raw_text = _latin(value, where + ".value")
            if len(raw_text) != 5:
                raise ProtocolError("a version is exactly 5 bytes", None, where + ".value")
            parts.append(bytes((pid,)) + raw_text)
    return b"".join(parts)


# =========================================================================== terminal control (0x82)

_CONTROL_IDS: Final = _enum_map(ControlId, "B", False)
_WARNING_2016: Final = _enum_map(AlarmLevel, "B", True, limit=3)
_WARNING_2025: Final = _enum_map(AlarmLevel, "B", True)
_SEMI: Final = 0x3B


def _dec_upgrade(p: bytes, base: int, field: str) -> RemoteUpgrade | RemoteUpgradeText:
    first = p.split(b";", 1)[0]
    if b"://" in first:
        parts = p.split(b";")
        if len(parts) != 10:
            raise ProtocolError(f"text upgrade parameters have {len(parts)} fields, want 10", base, field)
        return RemoteUpgradeText(*(x.decode("latin-1") for x in parts))
    pos = 0
    end = len(p)
    texts: list[str] = []

    def take_text() -> str:
        nonlocal pos
        i = p.find(b";", pos)
        if i < 0:
            raise ProtocolError("missing ';' after a text field", base + pos, field)
        out = p[pos:i].decode("latin-1")
        pos = i + 1
        return out

    for _ in range(3):
        texts.append(take_text())
    # Table B.16 sizes are fixed: address BYTE[6], port WORD (either may contain 0x3B itself)
    if not (pos + 6 < end and p[pos + 6] == _SEMI):
        raise ProtocolError(
            "server address must be 6 bytes followed by ';'", base + pos, field + ".server_address"
        )
    address = p[pos : pos + 6]
    pos += 7
    if not (pos + 2 < end and p[pos + 2] == _SEMI):
        raise ProtocolError("server port must be a WORD followed by ';'", base + pos, field + ".server_port")
    port = (p[pos] << 8) | p[pos + 1]
    pos += 3
    for _ in range(3):
        texts.append(take_text())
    # the URL runs to the last ';', which the 2-byte time limit follows
    if not (end - pos >= 3 and p[end - 3] == _SEMI):
        raise ProtocolError(
            "upgrade URL must be followed by ';' and the WORD time limit", base + pos, field + ".url"
        )
    url = p[pos : end - 3].decode("latin-1")
    timeout = (p[end - 2] << 8) | p[end - 1]
    return RemoteUpgrade(
        texts[0], texts[1], texts[2], address, port, texts[3], texts[4], texts[5], url, timeout
    )


def _enc_upgrade(params: RemoteUpgrade | RemoteUpgradeText, field: str) -> bytes:
    def text(name: str, semicolon_ok: bool = False) -> bytes:
        raw = _latin(getattr(params, name), f"{field}.{name}")
        if b";" in raw and not semicolon_ok:
            raise ProtocolError("text fields must not contain ';'", None, f"{field}.{name}")
        return raw

    if isinstance(params, RemoteUpgradeText):
        names = [f.name for f in dataclasses.fields(RemoteUpgradeText)]
        if b"://" not in text("url"):
            raise ProtocolError("the text variant is recognised by '://' in its URL", None, field + ".url")
        return b";".join(text(n) for n in names)
    address = params.server_address
    if not isinstance(address, (bytes, bytearray)) or len(address) != 6:
        raise ProtocolError("server address must be exactly 6 bytes", None, field + ".server_address")
    first = text("apn")
    if b"://" in first:
        raise ProtocolError(
            "a binary-variant APN containing '://' reads as the text variant", None, field + ".apn"
        )
    port = _u(params.server_port, "H", field + ".server_port")
    limit = _u(params.connect_timeout, "H", field + ".connect_timeout")
    return b"".join(
        [
            first,
            b";",
            text("username"),
            b";",
            text("password"),
            b";",
            bytes(address),
            b";",
            port,
            b";",
            text("manufacturer_id"),
            b";",
            text("hardware_version"),
            b";",
            text("firmware_version"),
            b";",
            text("url", semicolon_ok=True),  # the URL runs to the last ';' (binary variant only)
            b";",
            limit,
        ]
    )


def _dec_control(edition: Edition, data: bytes, base: int) -> TerminalControl:
    end = len(data)
    time = _decode_time(data, 0, base, "control.time")
    _need(data, 6, 1, end, base, "control.command_id")
    cid = data[6]
    p = data[7:]
    params: Any = p
    if cid == ControlId.REMOTE_UPGRADE:
        params = _dec_upgrade(p, base + 7, "control.upgrade")
    elif cid == ControlId.WARNING and p:
        levels = _WARNING_2025 if edition is Edition.E2025 else _WARNING_2016
        params = WarningParams(levels.get(p[0], p[0]), p[1:])
    return TerminalControl(time, _CONTROL_IDS.get(cid, cid), params)


def _enc_control(edition: Edition, body: TerminalControl, strict: bool) -> bytes:
    cid = body.command_id
    if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid <= 255:
        raise ProtocolError("control id must be a byte", None, "control.command_id")
    head = _encode_time(body.time, "control.time", strict) + bytes((int(cid),))
    params = body.params
    if isinstance(params, (RemoteUpgrade, RemoteUpgradeText)):
        if cid != ControlId.REMOTE_UPGRADE:
            raise ProtocolError("upgrade parameters need control id 0x01", None, "control.command_id")
        return head + _enc_upgrade(params, "control.upgrade")
    if isinstance(params, WarningParams):
        if cid != ControlId.WARNING:
            raise ProtocolError("warning parameters need control id 0x06", None, "control.command_id")
        level = _raw_of(
            _code("level", AlarmLevel, limit=None if edition is Edition.E2025 else 3),
            params.level,
            "control.warning.level",
            strict,
        )
        if not isinstance(params.info, (bytes, bytearray)):
            raise ProtocolError("expected bytes", None, "control.warning.info")
        return head + bytes((level,)) + bytes(params.info)
    if not isinstance(params, (bytes, bytearray)):
        raise ProtocolError(f"unexpected parameters {type(params).__name__}", None, "control.params")
    if cid == ControlId.REMOTE_UPGRADE or (cid == ControlId.WARNING and params):
        raise ProtocolError(
            "use RemoteUpgrade/RemoteUpgradeText or WarningParams for this control id", None, "control.params"
        )
    if strict and params and cid in (2, 3, 4, 5, 7):
        raise ProtocolError("this control command has no parameters", None, "control.params")
    return head + bytes(params)


# =========================================================================== data units


def _dec_realtime(edition: Edition, data: bytes, base: int, opts: CodecOptions) -> RealtimeReport:
    time = _decode_time(data, 0, base, "realtime.time")
    blocks, signature = _decode_blocks(edition, data, 6, len(data), base, opts)
    return RealtimeReport(time, blocks, signature)


def _dec_command_body(edition: Edition, command: int, data: bytes, base: int, opts: CodecOptions) -> DataUnit:
    e25 = edition is Edition.E2025
    n = len(data)
    if command in (0x02, 0x03):
        return _dec_realtime(edition, data, base, opts)
    if command == 0x01:
        return _dec_login(edition, data, base)
    if command == 0x04:
        return _dec_serial_unit(VehicleLogout, data, base, "logout")
    if command == 0x06:
        return _dec_serial_unit(PlatformLogout, data, base, "platform_logout")
    if command == 0x05:
        return _dec_platform_login(edition, data, base)
    if command in (0x07, 0x08):
        if n == 0:
            return Empty()
        if n == 6:
            return TimeOnly(_decode_time(data, 0, base, "time"))
        raise ProtocolError(
            f"a {'heartbeat' if command == 7 else 'time calibration'} data unit is 0 or 6 bytes, got {n}",
            base,
            "data_unit",
        )
    if command == 0x80:
        time = _decode_time(data, 0, base, "query.time")
        _need(data, 6, 1, n, base, "query.count")
        count = data[6]
        _need(data, 7, count, n, base, "query.ids")
        _finish(data, 7 + count, n, base, "query")
        return ParameterQuery(time, tuple(_PARAM_IDS.get(b, b) for b in data[7 : 7 + count]))
    if command == 0x81:
        return ParameterSet(
            _decode_time(data, 0, base, "set.time"),
            _dec_param_items(edition, data, 6, base, opts, "set.items"),
        )
    if command == 0x82:
        return _dec_control(edition, data, base)
    if e25 and command == 0x09:
        return _dec_activation(data, base)
    if e25 and command == 0x0A:
        _need(data, 0, 2, n, base, "activation_result")
        _finish(data, 2, n, base, "activation_result")
        return ActivationResult(_ACT_STATUS.get(data[0], data[0]), _ACT_INFO.get(data[1], data[1]))
    if e25 and command == 0x0B:
        return _dec_key_exchange(edition, data, base)
    return Opaque(bytes(data))


def _edition(value: object) -> Edition:
    found: Edition | None = _EDITIONS.get(value) if isinstance(value, int) else None
    if found is None:
        raise ProtocolError(f"unknown edition {value!r}", None, "edition")
    return found


def decode_body(
    edition: Edition,
    command: int,
    response: int,
    data: bytes,
    *,
    base_offset: int = 24,
    options: CodecOptions = DEFAULT,
) -> DataUnit:
    """Decode one plaintext data unit. Responses (flag ≠ 0xFE) may be empty (L = 0), time-only (L = 6)
    or echo the request's body; a parameter-query response carries time + items."""
    if edition.__class__ is not Edition:
        edition = _edition(edition)
    if data.__class__ is not bytes:
        data = bytes(data)
    try:
        if response != wire.FLAG_COMMAND:
            n = len(data)
            if n == 0:
                return Empty()
            if n == 6:
                return TimeOnly(_decode_time(data, 0, base_offset, "time"))
            if command == 0x80:
                return ParameterQueryReply(
                    _decode_time(data, 0, base_offset, "query_reply.time"),
                    _dec_param_items(edition, data, 6, base_offset, options, "query_reply.items"),
                )
        return _dec_command_body(edition, command, data, base_offset, options)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed data unit: {exc}", None, "data_unit") from None


_BODY_CLASSES: Final[dict[int, tuple[type, ...]]] = {
    0x01: (VehicleLogin, VehicleLogin2025),
    0x02: (RealtimeReport,),
    0x03: (RealtimeReport,),
    0x04: (VehicleLogout,),
    0x05: (PlatformLogin,),
    0x06: (PlatformLogout,),
    0x07: (),
    0x08: (),
    0x09: (Activation,),
    0x0A: (ActivationResult,),
    0x0B: (KeyExchange,),
    0x80: (ParameterQuery, ParameterQueryReply),
    0x81: (ParameterSet,),
    0x82: (TerminalControl,),
}


def _encode_body(
    edition: Edition,
    command: int,
    response: int,
    body: DataUnit,
    options: CodecOptions,
    signer: Signer | None,
) -> bytes:
    strict = options.strict
    if isinstance(body, Empty):
        return b""
    if isinstance(body, TimeOnly):
        return _encode_time(body.time, "time", strict)
    if isinstance(body, Opaque):
        if not isinstance(body.data, (bytes, bytearray)):
            raise ProtocolError("expected bytes", None, "data_unit")
        return bytes(body.data)
    allowed = _BODY_CLASSES.get(command)
    if (
        allowed is None
        or not isinstance(body, allowed)
        or (edition is Edition.E2016 and command in (0x09, 0x0A, 0x0B))
    ):
        raise ProtocolError(
            f"{type(body).__name__} is not a data unit of command 0x{command:02X} ({int(edition)})",
            None,
            "data_unit",
        )
    if isinstance(body, ParameterQueryReply) and response == wire.FLAG_COMMAND:
        raise ProtocolError("ParameterQueryReply is the response to 0x80, not a command", None, "data_unit")
    if isinstance(body, ParameterQuery) and response != wire.FLAG_COMMAND:
        raise ProtocolError("a 0x80 response carries ParameterQueryReply", None, "data_unit")
    if isinstance(body, RealtimeReport):
        signed = _realtime_signed(edition, body, options)
        sig = body.signature
        if sig is None and signer is not None and edition is Edition.E2025 and response == wire.FLAG_COMMAND:
            sig = signer.sign(signed + b"\xff" if options.sign_includes_marker else signed)
        if sig is None:
            return signed
        if edition is Edition.E2016:
            raise ProtocolError("2016 realtime data has no signature", None, "realtime.signature")
        return signed + b"\xff" + _enc_signature(sig, "realtime.signature")
    if isinstance(body, (VehicleLogin, VehicleLogin2025)):
        return _enc_login(edition, body, strict)
    if isinstance(body, VehicleLogout | PlatformLogout):
        name = "logout" if isinstance(body, VehicleLogout) else "platform_logout"
        return _encode_time(body.time, name + ".time", strict) + _u(body.serial, "H", name + ".serial")
    if isinstance(body, PlatformLogin):
        rule = body.encryption_rule
        return (
            _encode_time(body.time, "platform_login.time", strict)
            + _u(body.serial, "H", "platform_login.serial")
            + _fixed(body.username, 12, "platform_login.username")
            + _fixed(body.password, 20, "platform_login.password")
            + _u(rule, "B", "platform_login.encryption_rule")
        )
    if isinstance(body, ParameterQuery):
        ids = body.ids
        if len(ids) > 255:
            raise ProtocolError("at most 255 parameter ids", None, "query.ids")
        return (
            _encode_time(body.time, "query.time", strict)
            + bytes((len(ids),))
            + b"".join(_u(i, "B", f"query.ids[{k}]") for k, i in enumerate(ids))
        )
    if isinstance(body, ParameterQueryReply | ParameterSet):
        name = "query_reply" if isinstance(body, ParameterQueryReply) else "set"
        return _encode_time(body.time, name + ".time", strict) + _enc_param_items(
            edition, body.items, options, name + ".items"
        )
    if isinstance(body, TerminalControl):
        return _enc_control(edition, body, strict)
    if isinstance(body, Activation):
        return _enc_activation(body, strict)
    if isinstance(body, ActivationResult):
        return _u(body.status, "B", "activation_result.status") + _u(body.info, "B", "activation_result.info")
    if isinstance(body, KeyExchange):
        key = body.key
        if not isinstance(key, (bytes, bytearray)) or len(key) > 65531:
            raise ProtocolError("key must be at most 65531 bytes", None, "key_exchange.key")
        return (
            _u(body.key_type, "B", "key_exchange.key_type")
            + _U16.pack(len(key))
            + bytes(key)
            + _encode_time(body.valid_from, "key_exchange.valid_from", strict)
            + _encode_time(body.valid_until, "key_exchange.valid_until", strict)
        )
    raise ProtocolError(f"cannot encode {type(body).__name__}", None, "data_unit")  # pragma: no cover


def encode_body(
    edition: Edition, command: int, response: int, body: DataUnit, *, options: CodecOptions = DEFAULT
) -> bytes:
    """The plaintext data unit of ``body`` (no signing, no encryption)."""
    return _encode_body(_edition(edition), int(command), int(response), body, options, None)


def _realtime_signed(edition: Edition, body: RealtimeReport, options: CodecOptions) -> bytes:
    parts = _encode_blocks(edition, body.blocks, options)
    parts.insert(0, _encode_time(body.time, "realtime.time", options.strict))
    return b"".join(parts)


def _realtime_range(edition: Edition, body: RealtimeReport, options: CodecOptions) -> bytes:
    signed = _realtime_signed(edition, body, options)
    return signed + b"\xff" if options.sign_includes_marker else signed


def signed_range(
    edition: Edition, body: RealtimeReport | Activation, *, options: CodecOptions = DEFAULT
) -> bytes:
    """The bytes a 2025 signature covers: for realtime/reissue the collection time through the last info
    block (the 0xFF marker excluded, 2025 Table 8); for activation the time through the VIN."""
    if isinstance(body, Activation):
        return _activation_signed(body, options.strict)
    return _realtime_range(_edition(edition), body, options)


# =========================================================================== frames

_EDITIONS: Final = {2016: Edition.E2016, 2025: Edition.E2025}
_COMMANDS: Final = {
    Edition.E2016: {int(c): c for c in Command if c not in (0x09, 0x0A, 0x0B)},
    Edition.E2025: {int(c): c for c in Command},
}
_RESPONSES: Final = {
    Edition.E2016: {int(r): r for r in ResponseFlag if r in (0x01, 0x02, 0x03, 0xFE)},
    Edition.E2025: {int(r): r for r in ResponseFlag},
}


def decode_raw(raw: wire.RawFrame, *, cipher: Cipher | None = None, options: CodecOptions = DEFAULT) -> Frame:
    """Decode a frame already split by ``wire.parse_frame`` / ``wire.Framer``.

    An encrypted data unit is decrypted with ``cipher`` (whose algorithm must match the encryption byte);
    without a cipher, or for the abnormal/invalid/reserved encryption bytes, the body is ``Opaque``.
    Offsets in errors from a decrypted unit refer to the plaintext (+ 24).
    """
    edition = _EDITIONS.get(raw.edition)
    if edition is None:
        raise ProtocolError(f"unknown edition {raw.edition!r}", 0, "start")
    if options.check_bcc and not raw.bcc_ok:
        raise ProtocolError("BCC does not match", len(raw.raw) - 1, "bcc")
    enc = raw.encryption
    data = raw.data
    body: DataUnit
    if enc == Encryption.NONE:
        body = decode_body(edition, raw.command, raw.response, data, options=options)
    elif cipher is not None and enc in (0x02, 0x03, 0x04, 0x05):
        if int(cipher.encryption) != enc:
            raise ProtocolError(
                f"frame is encrypted with 0x{enc:02X} but the cipher is {cipher.encryption!r}",
                21,
                "encryption",
            )
        try:
            plain = cipher.decrypt(data)
        except ProtocolError:
            raise
        except Exception as exc:  # a cipher implementation's own error: report it as a protocol error
            raise ProtocolError(f"decryption failed: {type(exc).__name__}", 24, "data_unit") from exc
        body = decode_body(edition, raw.command, raw.response, plain, options=options)
    else:
        body = Opaque(bytes(data))
    vin_raw = bytes(raw.vin)
    return Frame(
        edition,
        _COMMANDS[edition].get(raw.command, raw.command),
        _RESPONSES[edition].get(raw.response, raw.response),
        vin_raw.rstrip(b"\x00").decode("latin-1"),
        _ENCRYPTION_MAPS[edition].get(enc, enc),
        body,
    )


def decode_frame(data: bytes, *, cipher: Cipher | None = None, options: CodecOptions = DEFAULT) -> Frame:
    """Decode exactly one whole frame (start marker through BCC)."""
    return decode_raw(wire.parse_frame(data, options.check_bcc), cipher=cipher, options=options)


def encode_frame(
    frame: Frame,
    *,
    cipher: Cipher | None = None,
    signer: Signer | None = None,
    options: CodecOptions = DEFAULT,
) -> bytes:
    """Encode ``frame``: body (signed with ``signer`` when it is an unsigned 2025 realtime/reissue report),
    then encryption with ``cipher`` when ``frame.encryption`` is not NONE, then header and BCC."""
    try:
        edition = Edition(frame.edition)
    except ValueError:
        raise ProtocolError(f"unknown edition {frame.edition!r}", None, "edition") from None
    command = _byte(frame.command, "command")
    response = _byte(frame.response, "response")
    enc = _byte(frame.encryption, "encryption")
    body = frame.body
    if isinstance(body, Opaque):
        data = _encode_body(edition, command, response, body, options, None)
    else:
        data = _encode_body(edition, command, response, body, options, signer)
        if enc != Encryption.NONE:
            if cipher is None:
                raise ProtocolError(
                    f"encryption 0x{enc:02X} needs a cipher (or an Opaque body)", None, "encryption"
                )
            if int(cipher.encryption) != enc:
                raise ProtocolError(
                    f"cipher {cipher.encryption!r} does not match encryption 0x{enc:02X}", None, "encryption"
                )
            data = cipher.encrypt(data)
    return wire.build_frame(int(edition), command, response, _fixed(frame.vin, 17, "vin"), enc, data)


def make_response(
    request: Frame,
    response: ResponseFlag | int = ResponseFlag.SUCCESS,
    *,
    time: datetime | None = None,
    options: CodecOptions = DEFAULT,
) -> Frame:
    """The acknowledgement of ``request`` in ``options.response_form`` (default: the edition's text,
    2016 Annex B echo / 2025 time-only). ``time`` replaces the message time (None keeps it)."""
    form = options.response_form
    if form is None:
        form = ResponseForm.ECHO if request.edition == Edition.E2016 else ResponseForm.TIME_ONLY
    body = request.body
    body_time = getattr(body, "time", None)
    new: DataUnit
    if form is ResponseForm.EMPTY:
        new = Empty()
    elif form is ResponseForm.TIME_ONLY or isinstance(body, (Empty, TimeOnly)):
        stamp = time if time is not None else body_time
        new = Empty() if stamp is None else TimeOnly(stamp)
    elif isinstance(body, Opaque) or body_time is None or time is None:
        new = body
    else:
        new = dataclasses.replace(body, time=time)  # type: ignore[arg-type]
    encryption = request.encryption if isinstance(new, Opaque) else Encryption.NONE
    return Frame(request.edition, request.command, response, request.vin, encryption, new)
