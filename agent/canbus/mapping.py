"""Signal mapping files (``dbc/*.toml``): load, validate against the DBC, compile for the sampler.

A mapping names its DBC file(s) and says, declaratively, which signal (plus transform) fills each
``agent.report.snapshot`` field. Nothing here is specific to our DBC: a third-party DBC gets its own
TOML file, no code. The format is documented in ``docs/mapping.md``; in short::

    dbc = "tbox_ev.dbc"
    [defaults]
    stale_cycles = 3.0            # a frame is stale after 3 x GenMsgCycleTime (x mux pages)
    [vehicle]
    speed = { signal = "VCU_VehicleSpeed" }
    gear = { signal = "VCU_Gear", map = { P = "park", D = "drive", R = "reverse", N = "neutral" } }
    [battery]
    cell_voltages = { pattern = 'BMS_Cell(\\d+)_V' }
    subsystems = [{ number = 1, cells = 96, probes = 32 }]
    [faults]
    hv_interlock = 'BMS_HVIL == "Open"'
    [checks.BMS_PackStatus]
    counter = "BMS_Pack_Counter"
    checksum = "BMS_Pack_CRC"
    algorithm = "crc8_sae_j1850"

``load_mapping(path)`` returns a ``CompiledMapping``: the CAN ids to receive, the mux selectors for
the frame cache and, per (CAN id, mux value), one precompiled decoder for only the signals used.
``agent.canbus.sampler.Sampler`` turns it and a frame cache into ``Snapshot`` objects.

Every problem is a ``MappingError`` naming the mapping file, the TOML key path and the signal or
message at fault (TOML syntax errors keep tomllib's line and column).
"""

from __future__ import annotations

import enum
import importlib
import itertools
import logging
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from agent.errors import MappingError
from agent.protocol.model import (
    ChargingState,
    DcDcState,
    EngineState,
    GearPosition,
    MotorState,
    RunningMode,
    Special,
    VehicleState,
)
from agent.report.snapshot import (
    ENGINE_FIELDS,
    EXTREME_FIELDS,
    FAULT_CODE_LISTS,
    FAULT_FIELDS,
    MOTOR_FIELDS,
    VEHICLE_FIELDS,
)

log = logging.getLogger(__name__)

Decoded = dict[str, float | int]
Decoder = Callable[[bytes], Decoded]
MuxSelector = Callable[[bytes], int]


class FrameCheck(Protocol):
    """A counter/checksum check of one message (``agent.canbus.checks.make_check``)."""

    def ok(self, data: bytes, previous: bytes | None) -> bool: ...


#: default staleness: this many cycle times (GenMsgCycleTime x number of mux pages)
DEFAULT_STALE_CYCLES: Final = 3.0
#: default staleness (s) of a message without GenMsgCycleTime
DEFAULT_STALE_TIMEOUT: Final = 1.0
#: default floor of the computed staleness (s): scheduling hiccups of the agent must not void 10 ms frames
DEFAULT_STALE_MIN: Final = 0.1
#: DBC value-table names that mean "signal not available" (compared case-insensitively, without _ - space)
SNA_NAMES: Final = frozenset(
    {"sna", "invalid", "notavailable", "na", "n/a", "notvalid", "error", "unavailable"}
)

ENUMS: Final[dict[str, type[enum.Enum]]] = {
    "VehicleState": VehicleState,
    "ChargingState": ChargingState,
    "RunningMode": RunningMode,
    "DcDcState": DcDcState,
    "GearPosition": GearPosition,
    "MotorState": MotorState,
    "EngineState": EngineState,
}

# unit spelling -> (dimension, factor to the dimension's snapshot unit)
_UNITS: Final[dict[str, tuple[str, float]]] = {
    "v": ("V", 1.0),
    "volt": ("V", 1.0),
    "mv": ("V", 1e-3),
    "kv": ("V", 1e3),
    "a": ("A", 1.0),
    "amp": ("A", 1.0),
    "ma": ("A", 1e-3),
    "ka": ("A", 1e3),
    "°c": ("°C", 1.0),
    "deg": ("°C", 1.0),
    "degc": ("°C", 1.0),
    "c": ("°C", 1.0),
    "℃": ("°C", 1.0),
    "celsius": ("°C", 1.0),
    "gradc": ("°C", 1.0),
    "0.1°c": ("°C", 0.1),
    "0.1degc": ("°C", 0.1),
    "%": ("%", 1.0),
    "pct": ("%", 1.0),
    "percent": ("%", 1.0),
    "km/h": ("km/h", 1.0),
    "kph": ("km/h", 1.0),
    "kmh": ("km/h", 1.0),
    "m/s": ("km/h", 3.6),
    "mph": ("km/h", 1.609344),
    "km": ("km", 1.0),
    "m": ("km", 1e-3),
    "mi": ("km", 1.609344),
    "r/min": ("r/min", 1.0),
    "rpm": ("r/min", 1.0),
    "1/min": ("r/min", 1.0),
    "u/min": ("r/min", 1.0),
    "n·m": ("N·m", 1.0),
    "nm": ("N·m", 1.0),
    "n.m": ("N·m", 1.0),
    "n*m": ("N·m", 1.0),
    "l/100km": ("L/100 km", 1.0),
}


def unit_of(text: str) -> tuple[str, float] | None:
    """(dimension, factor to the snapshot unit) of a unit spelling; None when unknown or empty."""
    compact = text.strip().replace(" ", "")
    ohm = re.fullmatch(r"([kKmM]?)(?:ohm|Ohm|OHM|Ω)", compact)
    if ohm:  # case matters: mΩ is milli, MΩ mega
        return ("kΩ", {"": 1e-3, "k": 1.0, "K": 1.0, "M": 1e3, "m": 1e-6}[ohm.group(1)])
    return _UNITS.get(compact.lower())


def _field_kind(spec: str) -> str:
    """The vocabulary's type/unit string reduced to a kind: an enum name, 'bool', 'int' or a unit."""
    return spec.split(" (")[0].strip()


# ----------------------------------------------------------------------------------- CAN backend seam


def _canbus(module: str) -> Any:
    """``agent.canbus.<module>`` when it is installed, else None (the slow cantools fallbacks below)."""
    try:
        return importlib.import_module(f"agent.canbus.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"agent.canbus.{module}":
            raise
        return None


def cache_key(message: Any) -> int:
    """The frame-cache key of a cantools message: its id, with bit 31 set for a 29-bit id."""
    return int(message.frame_id) | (1 << 31 if message.is_extended_frame else 0)


def _load_database(paths: Sequence[Path]) -> Any:
    """The DBC file(s) as one cantools database (``agent.canbus.dbcload.load_dbc``)."""
    dbcload = _canbus("dbcload")
    if dbcload is not None:
        return dbcload.load_dbc([str(p) for p in paths], strict=True)
    import cantools

    db = cantools.database.can.Database()
    for path in paths:
        try:
            db.add_dbc_file(str(path))
        except (OSError, cantools.database.errors.Error, ValueError) as exc:
            raise MappingError(f"{path}: cannot load DBC: {exc}") from exc
    return db


def _mux_selector(message: Any) -> MuxSelector | None:
    """bytes -> mux value of a multiplexed message (``agent.canbus.dbcload.mux_selector``)."""
    dbcload = _canbus("dbcload")
    if dbcload is not None:
        selector: MuxSelector | None = dbcload.mux_selector(message)
        return selector
    mux = next((s for s in message.signals if s.is_multiplexer and not s.multiplexer_ids), None)
    if mux is None:
        return None

    def select(data: bytes) -> int:
        return _extract_raw(mux, data)

    return select


def _extract_raw(signal: Any, data: bytes) -> int:
    """Raw value of one signal of ``data`` (slow fallback of ``agent.canbus.decode``)."""
    if signal.byte_order == "little_endian":
        value = int.from_bytes(data, "little") >> signal.start
    else:
        from cantools.database.utils import start_bit

        value = int.from_bytes(data, "big") >> (8 * len(data) - int(start_bit(signal)) - signal.length)
    raw: int = int(value) & ((1 << signal.length) - 1)
    if signal.is_signed and raw >> (signal.length - 1):
        raw -= 1 << signal.length
    return raw


def _compile_decoder(message: Any, names: Sequence[str], mux: int | None) -> Decoder:
    """bytes -> {signal: physical value} for ``names`` only (``agent.canbus.decode.compile_decoder``).

    Signals the payload is too short to carry are absent from the result.
    """
    decode_mod = _canbus("decode")
    if decode_mod is not None:
        decoder: Decoder = decode_mod.compile_decoder(message, list(names), mux=mux)
        return decoder
    signals = [message.get_signal_by_name(n) for n in names]
    needs = [_min_length([s], 64) for s in signals]

    def decode(data: bytes) -> Decoded:
        out: Decoded = {}
        for sig, need in zip(signals, needs, strict=True):
            if len(data) >= need:
                raw = _extract_raw(sig, data)
                out[sig.name] = raw * sig.scale + sig.offset if (sig.scale != 1 or sig.offset != 0) else raw
        return out

    return decode


def _make_check(message: Any, params: dict[str, Any]) -> FrameCheck:
    """A counter/checksum check (``agent.canbus.checks.make_check``, required for ``[checks]``)."""
    checks = _canbus("checks")
    if checks is None:
        raise MappingError("message checks need agent.canbus.checks, which is not installed")
    check: FrameCheck = checks.make_check(message, **params)
    return check


def _new_frame_cache(wanted: frozenset[int], mux: dict[int, MuxSelector], lengths: dict[int, int]) -> Any:
    from agent.canbus.cache import FrameCache

    return FrameCache(wanted_ids=wanted, mux=mux, lengths=lengths)


# -------------------------------------------------------------------------------- compiled structures


@dataclass(frozen=True)
class Group:
    """One frame the sampler reads per tick: a message, or one page (mux value) of a multiplexed one."""

    frame_id: int  # frame-cache key: CAN id, bit 31 set for a 29-bit id
    mux: int | None
    message: str
    signals: tuple[str, ...]
    stale: float
    min_length: int
    decoder: Decoder
    check: FrameCheck | None = None
    max_stale: float = 0.0  # the longest staleness of any field reading this frame
    dbc_length: int = 0  # the DBC's length of the message: a shorter frame is counted malformed


@dataclass(frozen=True)
class Input:
    """One signal read: which group, which name, its DBC scaling (for raw values) and SNA raws."""

    group: int
    signal: str
    dbc_scale: float
    dbc_offset: float
    sna: frozenset[int]
    stale: float

    def raw(self, physical: float | int) -> int:
        """The raw integer behind a decoded physical value."""
        if self.dbc_scale == 1 and self.dbc_offset == 0:
            return int(physical)
        return round((physical - self.dbc_offset) / self.dbc_scale)


@dataclass(frozen=True)
class Atom:
    """``signal [& mask] [op value]`` of a boolean expression."""

    input: Input
    mask: int | None
    op: str | None
    value: float
    on_raw: bool


@dataclass(frozen=True)
class Expr:
    """OR of ANDs of atoms, evaluated with three-valued logic (INVALID when undecidable)."""

    text: str
    terms: tuple[tuple[Atom, ...], ...]


@dataclass(frozen=True)
class Rule:
    """How one snapshot field is computed."""

    key: str
    kind: str  # number | int | bool | an enum name
    input: Input | None = None
    scale: float = 1.0
    offset: float = 0.0
    table: dict[int, Any] | None = None
    unmapped: Any = Special.INVALID
    const: Any = None
    expr: Expr | None = None
    out: type[enum.Enum] | None = None


@dataclass(frozen=True)
class ArrayRule:
    """An ordered array of inputs (cells or probes), each with the same transform."""

    key: str
    inputs: tuple[Input, ...]
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class SubsystemRule:
    """One battery subsystem: its number, arrays and optional own voltage/current."""

    number: int
    cells: ArrayRule
    temperatures: ArrayRule
    voltage: Rule | None = None
    current: Rule | None = None


@dataclass(frozen=True)
class MotorRule:
    """One drive motor; ``optional`` motors are left out until one of their frames has been seen."""

    number: int
    rules: tuple[Rule, ...]
    optional: bool = False
    groups: frozenset[int] = frozenset()


@dataclass(frozen=True)
class CodeSource:
    """Fault codes from one signal; ``count``/``index`` describe a BMS that rotates its active codes."""

    key: str
    input: Input
    count: Input | None = None
    index: Input | None = None


@dataclass
class CompiledMapping:
    """A validated mapping bound to its DBC, ready for ``Sampler``."""

    path: Path
    dbc_paths: tuple[Path, ...]
    database: Any
    groups: tuple[Group, ...]
    vehicle: tuple[Rule, ...] = ()
    motors: tuple[MotorRule, ...] = ()
    subsystems: tuple[SubsystemRule, ...] = ()
    extremes: tuple[Rule, ...] = ()
    faults: tuple[Rule, ...] = ()
    fault_codes: dict[str, tuple[CodeSource, ...]] = field(default_factory=dict)
    engine: tuple[Rule, ...] | None = None
    mux_selectors: dict[int, MuxSelector] = field(default_factory=dict)

    @property
    def wanted_ids(self) -> frozenset[int]:
        """Every CAN id the mapping reads (for kernel filters and the frame cache)."""
        return frozenset(g.frame_id for g in self.groups)

    def new_cache(self) -> Any:
        """A ``FrameCache`` that keeps only the wanted ids, split by mux value where needed."""
        lengths = {g.frame_id: max(g.dbc_length, g.min_length) for g in self.groups}
        return _new_frame_cache(self.wanted_ids, dict(self.mux_selectors), lengths)

    def field_names(self) -> list[str]:
        """Dotted names of every mapped field (``vehicle.speed``, ``motors.1.torque``, ...)."""
        names = [r.key for r in (*self.vehicle, *self.extremes, *self.faults, *(self.engine or ()))]
        for m in self.motors:
            names.extend(r.key for r in m.rules)
        for s in self.subsystems:
            names.extend((s.cells.key, s.temperatures.key))
        names.extend(f"fault_codes.{k}" for k in self.fault_codes)
        return names


# ------------------------------------------------------------------------------------------- loading


def load_mapping(path: str | Path, *, dbc: Sequence[str | Path] | None = None) -> CompiledMapping:
    """Read, validate and compile a mapping file (``dbc`` overrides the DBC files it names)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read mapping: {exc.strerror or exc}") from exc
    return loads_mapping(text, path=path, dbc=dbc)


def loads_mapping(
    text: str,
    *,
    path: str | Path = "<mapping>",
    dbc: Sequence[str | Path] | None = None,
    database: Any = None,
) -> CompiledMapping:
    """Compile mapping TOML text; relative DBC paths are resolved against ``path``'s directory."""
    path = Path(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: TOML syntax error: {exc}") from exc
    return _Compiler(doc, path, dbc, database).compile()


_TOP_KEYS: Final = frozenset(
    {
        "dbc",
        "description",
        "defaults",
        "vehicle",
        "motors",
        "battery",
        "extremes",
        "faults",
        "fault_codes",
        "engine",
        "checks",
    }
)
_DEFAULT_KEYS: Final = frozenset({"stale_cycles", "stale_timeout", "stale_min"})
_FIELD_KEYS: Final = frozenset(
    {"signal", "const", "expr", "scale", "offset", "unit", "check_unit", "map", "unmapped", "sna", "stale"}
)
_ARRAY_KEYS: Final = frozenset(
    {"pattern", "signals", "message", "scale", "offset", "unit", "check_unit", "sna", "stale"}
)
_SUBSYSTEM_KEYS: Final = frozenset(
    {"number", "cells", "probes", "cell_voltages", "temperatures", "voltage", "current"}
)
_BATTERY_KEYS: Final = frozenset({"cell_voltages", "temperatures", "subsystems"})
_CODE_KEYS: Final = frozenset({"signal", "count", "index", "sna", "stale"})

_ATOM = re.compile(
    r"""^\s*(?P<sig>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)?)\s*
    (?:&\s*(?P<mask>0[xX][0-9a-fA-F]+|0[bB][01]+|\d+))?\s*
    (?:(?P<op>==|!=|<=|>=|<|>)\s*
       (?P<rhs>"[^"]*"|'[^']*'|[-+]?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)))?\s*$""",
    re.VERBOSE,
)


class _Compiler:
    """Turns a parsed TOML document into a ``CompiledMapping`` (one instance per load)."""

    def __init__(self, doc: dict[str, Any], path: Path, dbc: Sequence[str | Path] | None, db: Any) -> None:
        self.doc = doc
        self.path = path
        self.dbc_override = dbc
        self.db = db
        self.groups: list[Group] = []
        self.group_index: dict[tuple[int, int | None], int] = {}
        self.group_signals: dict[int, list[str]] = {}
        self.group_message: dict[int, Any] = {}
        self.group_stale: dict[int, float] = {}
        self.by_name: dict[str, list[tuple[Any, Any]]] = {}
        self.stale_cycles = DEFAULT_STALE_CYCLES
        self.stale_timeout = DEFAULT_STALE_TIMEOUT
        self.stale_min = DEFAULT_STALE_MIN
        self.message_checks: dict[str, FrameCheck] = {}
        self.mux: dict[int, MuxSelector] = {}

    # -- errors and small validators

    def error(self, key: str, reason: str) -> MappingError:
        return MappingError(f"{self.path}: {key}: {reason}")

    def table(self, value: Any, key: str, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.error(f"{key}.{unknown[0]}", f"unknown key; valid: {', '.join(sorted(allowed))}")
        return value

    def number(self, value: Any, key: str, *, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.error(key, f"expected a number, got {value!r}")
        if positive and value <= 0:
            raise self.error(key, f"must be > 0, got {value!r}")
        return float(value)

    # -- DBC

    def load_dbc(self) -> list[Path]:
        if self.dbc_override is not None:
            paths = [Path(p) for p in self.dbc_override]
        else:
            raw = self.doc.get("dbc")
            if raw is None:
                raise self.error("dbc", "missing: name the DBC file(s), relative to the mapping file")
            items = [raw] if isinstance(raw, str) else raw
            if not isinstance(items, list) or not items or not all(isinstance(p, str) for p in items):
                raise self.error("dbc", "expected a file name or a list of file names")
            paths = [(self.path.parent / p) for p in items]
        if self.db is None:
            for p in paths:
                if not p.is_file():
                    raise self.error("dbc", f"DBC file not found: {p}")
            self.db = _load_database(paths)
        for message in self.db.messages:
            for sig in message.signals:
                self.by_name.setdefault(sig.name, []).append((message, sig))
        return paths

    def find_signal(self, name: Any, key: str) -> tuple[Any, Any]:
        if not isinstance(name, str) or not name:
            raise self.error(key, f"expected a signal name, got {name!r}")
        if "." in name:
            msg_name, sig_name = name.split(".", 1)
            try:
                message = self.db.get_message_by_name(msg_name)
            except KeyError:
                raise self.error(key, f"message {msg_name!r} is not in the DBC") from None
            try:
                return message, message.get_signal_by_name(sig_name)
            except KeyError:
                raise self.error(key, f"signal {sig_name!r} is not in message {msg_name}") from None
        found = self.by_name.get(name, [])
        if not found:
            close = sorted(n for n in self.by_name if n.lower() == name.lower())
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise self.error(key, f"signal {name!r} is not in the DBC{hint}")
        if len(found) > 1:
            where = ", ".join(f"{m.name}.{name}" for m, _ in found)
            raise self.error(key, f"signal {name!r} is ambiguous, write Message.Signal: {where}")
        return found[0]

    def staleness(self, message: Any) -> float:
        cycle = message.cycle_time
        if not cycle:
            return self.stale_timeout
        pages = 1
        if message.is_multiplexed():
            ids = {i for s in message.signals for i in (s.multiplexer_ids or ())}
            pages = max(1, len(ids))
        return max(self.stale_min, float(self.stale_cycles * cycle / 1000.0 * pages))

    def input(self, name: Any, key: str, *, sna: Any = None, stale: Any = None) -> Input:
        """Register a signal read: its group (message, mux page) and SNA raws."""
        message, sig = self.find_signal(name, key)
        if sig.is_multiplexer and message.is_multiplexed():
            mux: int | None = None
        elif sig.multiplexer_ids:
            if len(sig.multiplexer_ids) != 1:
                raise self.error(key, f"{message.name}.{sig.name} is in several mux pages; not supported")
            parent = message.get_signal_by_name(sig.multiplexer_signal)
            if parent.multiplexer_ids:
                raise self.error(key, f"{message.name}.{sig.name}: nested multiplexing is not supported")
            mux = int(sig.multiplexer_ids[0])
        else:
            mux = None
        gkey = (cache_key(message), mux)
        index = self.group_index.get(gkey)
        if index is None:
            index = len(self.group_index)
            self.group_index[gkey] = index
            self.group_signals[index] = []
            self.group_message[index] = message
            if message.is_multiplexed():
                selector = _mux_selector(message)
                if selector is not None:
                    self.mux[cache_key(message)] = selector
        base = re.sub(r"\.(signal|pattern|signals\[\d+\]|count|index|expr)$", "", key)
        stale_s = (
            self.number(stale, f"{base}.stale", positive=True)
            if stale is not None
            else self.staleness(message)
        )
        self.group_stale[index] = max(self.group_stale.get(index, 0.0), stale_s)
        if sig.name not in self.group_signals[index]:
            self.group_signals[index].append(sig.name)
        return Input(
            group=index,
            signal=sig.name,
            dbc_scale=float(sig.scale),
            dbc_offset=float(sig.offset),
            sna=self.sna(sig, sna, base),
            stale=stale_s,
        )

    def sna(self, sig: Any, value: Any, key: str) -> frozenset[int]:
        """Raw values meaning "not available": explicit ``sna``, else the DBC's SNA-like value names."""
        if value is None:
            raws = {
                int(raw)
                for raw, name in (sig.choices or {}).items()
                if re.sub(r"[\s_\-]", "", str(name)).lower() in SNA_NAMES
            }
            return frozenset(raws)
        if value is False:
            return frozenset()
        if value == "all-ones":
            return frozenset({(1 << sig.length) - 1 if not sig.is_signed else -1})
        items = value if isinstance(value, list) else [value]
        raws = set()
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int):
                raise self.error(f"{key}.sna", 'expected raw integer(s), false or "all-ones"')
            raws.add(item)
        return frozenset(raws)

    # -- fields

    def unit_check(self, key: str, sig_unit: str, spec: dict[str, Any], want: str, scale: float) -> None:
        """Declared unit vs DBC unit vs the field's unit; a scale must convert between them.

        ``check_unit = false`` skips the check (a DBC whose unit text is wrong).
        """
        enabled = spec.get("check_unit", True)
        if not isinstance(enabled, bool):
            raise self.error(f"{key}.check_unit", "expected true or false")
        if not enabled:
            return
        declared = spec.get("unit")
        if declared is not None and not isinstance(declared, str):
            raise self.error(f"{key}.unit", "expected a unit string")
        source = (sig_unit or "").strip()
        if declared is not None and source:
            a, b = unit_of(declared), unit_of(source)
            same = a == b if a is not None and b is not None else declared.strip() == source
            if not same:
                raise self.error(f"{key}.unit", f"declared unit {declared!r} but the DBC says {source!r}")
        if declared is not None:
            source = declared
        target = unit_of(want)
        if not source or target is None:
            return
        have = unit_of(source)
        if have is None:
            log.warning(
                "%s: %s: unknown DBC unit %r (field unit %s), not checked", self.path, key, source, want
            )
            return
        if have[0] != target[0]:
            raise self.error(key, f"unit mismatch: the signal is in {source!r}, the field wants {want}")
        factor = have[1] / target[1]
        if not math.isclose(abs(scale), factor, rel_tol=1e-9):
            raise self.error(
                key,
                f"unit mismatch: the signal is in {source!r}, the field wants {want}: add scale = {factor:g}"
                + (f" (now {scale:g})" if scale != 1 else ""),
            )

    def enum_value(self, kind: str, value: Any, key: str) -> Any:
        """A map/const value for a field of ``kind``: enum lowercase name, bool, number or special."""
        if isinstance(value, str) and value.lower() in ("invalid", "abnormal"):
            return Special(value.lower())
        enum_type = ENUMS.get(kind)
        if enum_type is not None:
            if not isinstance(value, str) or value.upper() not in enum_type.__members__:
                names = ", ".join(n.lower() for n in enum_type.__members__)
                raise self.error(key, f"{value!r} is not a {kind}; valid: {names}, invalid, abnormal")
            return enum_type[value.upper()]
        if kind == "bool":
            if not isinstance(value, bool):
                raise self.error(key, f"expected true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        return int(value) if kind == "int" else value

    def rule(self, key: str, spec_kind: str, value: Any) -> Rule:
        kind = _field_kind(spec_kind)
        if isinstance(value, str):
            value = {"expr": value} if kind == "bool" else {"signal": value}
        spec = self.table(value, key, _FIELD_KEYS)
        sources = [k for k in ("signal", "const", "expr") if k in spec]
        if len(sources) != 1:
            raise self.error(key, "give exactly one of signal, const, expr")
        if "const" in spec:
            extra = sorted(set(spec) - {"const"})
            if extra:
                raise self.error(f"{key}.{extra[0]}", "not allowed with const")
            return Rule(key, kind, const=self.enum_value(kind, spec["const"], f"{key}.const"))
        if "expr" in spec:
            extra = sorted(set(spec) - {"expr", "stale"})
            if extra:
                raise self.error(f"{key}.{extra[0]}", "not allowed with expr")
            if kind != "bool":
                raise self.error(f"{key}.expr", f"expressions give true/false; this field is {spec_kind}")
            return Rule(key, kind, expr=self.expr(spec["expr"], f"{key}.expr", spec.get("stale")))
        scale = self.number(spec.get("scale", 1.0), f"{key}.scale")
        offset = self.number(spec.get("offset", 0.0), f"{key}.offset")
        if scale == 0:
            raise self.error(f"{key}.scale", "must not be 0")
        inp = self.input(spec["signal"], f"{key}.signal", sna=spec.get("sna"), stale=spec.get("stale"))
        _, sig = self.find_signal(spec["signal"], f"{key}.signal")
        table: dict[int, Any] | None = None
        unmapped: Any = Special.INVALID
        if "map" in spec:
            table = self.value_map(spec["map"], f"{key}.map", sig, kind)
            if "unmapped" in spec:
                unmapped = self.enum_value(kind, spec["unmapped"], f"{key}.unmapped")
        elif "unmapped" in spec:
            raise self.error(f"{key}.unmapped", "only with map")
        if kind in ENUMS or kind == "bool" or table is not None:
            if "scale" in spec or "offset" in spec:
                raise self.error(
                    f"{key}.{'scale' if 'scale' in spec else 'offset'}",
                    "scale/offset do not apply to enum, bool or mapped values",
                )
        else:
            self.unit_check(key, sig.unit or "", spec, kind, scale)
        return Rule(
            key,
            kind,
            input=inp,
            scale=scale,
            offset=offset,
            table=table,
            unmapped=unmapped,
            out=ENUMS.get(kind),
        )

    def value_map(self, value: Any, key: str, sig: Any, kind: str) -> dict[int, Any]:
        if not isinstance(value, dict) or not value:
            raise self.error(key, "expected a table of DBC value name (or raw number) = field value")
        names = {str(v): int(k) for k, v in (sig.choices or {}).items()}
        out: dict[int, Any] = {}
        for name, target in value.items():
            if name in names:
                raw = names[name]
            else:
                try:
                    raw = _int_literal(name)
                except ValueError:
                    valid = ", ".join(sorted(names)) or "none (use raw numbers)"
                    raise self.error(
                        f"{key}.{name}", f"{sig.name} has no value named {name!r}; DBC values: {valid}"
                    ) from None
            out[raw] = self.enum_value(kind, target, f"{key}.{name}")
        return out

    def expr(self, text: Any, key: str, stale: Any) -> Expr:
        if not isinstance(text, str) or not text.strip():
            raise self.error(key, "expected an expression string such as 'Signal == \"Open\"'")
        terms = []
        for or_part in re.split(r"\s+or\s+", text.strip()):
            atoms = []
            for part in re.split(r"\s+and\s+", or_part):
                m = _ATOM.match(part)
                if m is None:
                    raise self.error(key, f"cannot parse {part.strip()!r}: write Signal [& mask] [op value]")
                inp = self.input(m["sig"], key, stale=stale)
                _, sig = self.find_signal(m["sig"], key)
                mask = _int_literal(m["mask"]) if m["mask"] else None
                rhs, on_raw = 0.0, mask is not None
                if m["rhs"] is not None:
                    if m["rhs"][0] in "\"'":
                        label = m["rhs"][1:-1]
                        choices = {str(v): int(k) for k, v in (sig.choices or {}).items()}
                        if label not in choices:
                            valid = ", ".join(sorted(choices)) or "none"
                            raise self.error(
                                key, f"{sig.name} has no value named {label!r}; DBC values: {valid}"
                            )
                        rhs, on_raw = float(choices[label]), True
                    else:
                        lit = m["rhs"]
                        rhs = float(_int_literal(lit)) if re.search(r"0[xX]", lit) else float(lit)
                atoms.append(Atom(inp, mask, m["op"], rhs, on_raw))
            terms.append(tuple(atoms))
        return Expr(text, tuple(terms))

    def section(self, name: str, vocab: Any, value: Any, prefix: str | None = None) -> tuple[Rule, ...]:
        prefix = prefix or name
        if not isinstance(value, dict):
            raise self.error(prefix, "expected a table")
        rules = []
        for fname, spec in value.items():
            if fname not in vocab:
                raise self.error(f"{prefix}.{fname}", f"unknown field; valid: {', '.join(vocab)}")
            kind = vocab[fname] if not isinstance(vocab[fname], int) else "bool"
            rules.append(self.rule(f"{prefix}.{fname}", kind, spec))
        return tuple(rules)

    # -- arrays

    def array(self, value: Any, key: str, want: str) -> ArrayRule:
        spec = self.table(value, key, _ARRAY_KEYS)
        if ("pattern" in spec) == ("signals" in spec):
            raise self.error(key, "give exactly one of pattern, signals")
        scale = self.number(spec.get("scale", 1.0), f"{key}.scale")
        offset = self.number(spec.get("offset", 0.0), f"{key}.offset")
        messages: set[str] | None = None
        if "message" in spec:
            m = spec["message"]
            items = [m] if isinstance(m, str) else m
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise self.error(f"{key}.message", "expected a message name or a list of them")
            for x in items:
                try:
                    self.db.get_message_by_name(x)
                except KeyError:
                    raise self.error(f"{key}.message", f"message {x!r} is not in the DBC") from None
            messages = set(items)
        names: list[str]
        if "pattern" in spec:
            pattern = spec["pattern"]
            if not isinstance(pattern, str):
                raise self.error(f"{key}.pattern", "expected a regular expression string")
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                raise self.error(f"{key}.pattern", f"bad regular expression {pattern!r}: {exc}") from None
            if rx.groups < 1:
                raise self.error(f"{key}.pattern", "needs a capture group with the number, e.g. 'Cell(\\d+)'")
            found: list[tuple[tuple[int, ...], str]] = []
            for message in self.db.messages:
                if messages is not None and message.name not in messages:
                    continue
                for sig in message.signals:
                    m = rx.fullmatch(sig.name)
                    if m is None:
                        continue
                    try:
                        order = tuple(int(g) for g in m.groups() if g is not None)
                    except ValueError:
                        raise self.error(
                            f"{key}.pattern",
                            f"capture groups must be numbers, got {m.groups()} in {sig.name}",
                        ) from None
                    found.append((order, f"{message.name}.{sig.name}"))
            if not found:
                raise self.error(f"{key}.pattern", f"no signal matches {pattern!r}")
            found.sort()
            for a, b in itertools.pairwise(found):
                if a[0] == b[0]:
                    raise self.error(f"{key}.pattern", f"{a[1]} and {b[1]} have the same number {a[0]}")
            names = [n for _, n in found]
        else:
            sigs = spec["signals"]
            if not isinstance(sigs, list) or not sigs:
                raise self.error(f"{key}.signals", "expected a list of signal names")
            names = sigs
        inputs = []
        for i, name in enumerate(names):
            k = f"{key}.signals[{i}]" if "signals" in spec else f"{key}.pattern"
            _, sig = self.find_signal(name, k)
            if i == 0 or "signals" in spec:
                self.unit_check(key, sig.unit or "", spec, want, scale)
            inputs.append(self.input(name, k, sna=spec.get("sna"), stale=spec.get("stale")))
        return ArrayRule(key, tuple(inputs), scale, offset)

    def battery(self, value: Any) -> tuple[SubsystemRule, ...]:
        spec = self.table(value, "battery", _BATTERY_KEYS)
        cells = (
            self.array(spec["cell_voltages"], "battery.cell_voltages", "V")
            if "cell_voltages" in spec
            else None
        )
        temps = (
            self.array(spec["temperatures"], "battery.temperatures", "°C") if "temperatures" in spec else None
        )
        subs = spec.get("subsystems", [{"number": 1}])
        if not isinstance(subs, list) or not subs:
            raise self.error("battery.subsystems", "expected a list of tables")
        out: list[SubsystemRule] = []
        used = {"cells": 0, "probes": 0}
        numbers: set[int] = set()
        for i, sub in enumerate(subs):
            key = f"battery.subsystems[{i}]"
            s = self.table(sub, key, _SUBSYSTEM_KEYS)
            number = s.get("number", i + 1)
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 250:
                raise self.error(f"{key}.number", f"expected 1..250, got {number!r}")
            if number in numbers:
                raise self.error(f"{key}.number", f"subsystem {number} given twice")
            numbers.add(number)
            arrays: dict[str, ArrayRule] = {}
            for own, shared, count_key, want in (
                ("cell_voltages", cells, "cells", "V"),
                ("temperatures", temps, "probes", "°C"),
            ):
                akey = f"{key}.{own}"
                if own in s:
                    if shared is not None:
                        raise self.error(akey, f"battery.{own} is already given for all subsystems")
                    arr = self.array(s[own], akey, want)
                    start = 0
                elif shared is not None:
                    arr, start = shared, used[count_key]
                else:
                    arrays[own] = ArrayRule(akey, ())
                    continue
                count = s.get(count_key)
                if count is None:
                    if own not in s and len(subs) > 1:
                        raise self.error(f"{key}.{count_key}", "needed to split a shared array")
                    count = len(arr.inputs) - start
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise self.error(f"{key}.{count_key}", f"expected a count, got {count!r}")
                if start + count > len(arr.inputs):
                    raise self.error(
                        f"{key}.{count_key}",
                        f"{count} wanted but only {len(arr.inputs) - start} signals left",
                    )
                arrays[own] = ArrayRule(akey, arr.inputs[start : start + count], arr.scale, arr.offset)
                if own not in s:
                    used[count_key] += count
            voltage = self.rule(f"{key}.voltage", "V", s["voltage"]) if "voltage" in s else None
            current = self.rule(f"{key}.current", "A", s["current"]) if "current" in s else None
            out.append(
                SubsystemRule(number, arrays["cell_voltages"], arrays["temperatures"], voltage, current)
            )
        return tuple(out)

    # -- motors, fault codes, checks

    def motors(self, value: Any) -> tuple[MotorRule, ...]:
        if not isinstance(value, list):
            raise self.error("motors", "expected [[motors]] tables")
        out = []
        numbers: set[int] = set()
        for i, item in enumerate(value):
            key = f"motors[{i}]"
            if not isinstance(item, dict):
                raise self.error(key, "expected a table")
            number = item.get("number", i + 1)
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 253:
                raise self.error(f"{key}.number", f"expected 1..253, got {number!r}")
            if number in numbers:
                raise self.error(f"{key}.number", f"motor {number} given twice")
            numbers.add(number)
            optional = item.get("optional", False)
            if not isinstance(optional, bool):
                raise self.error(f"{key}.optional", "expected true or false")
            fields = {k: v for k, v in item.items() if k not in ("number", "optional")}
            rules = self.section("motors", MOTOR_FIELDS, fields, prefix=f"motors.{number}")
            groups = frozenset(r.input.group for r in rules if r.input is not None) | frozenset(
                a.input.group for r in rules if r.expr for t in r.expr.terms for a in t
            )
            out.append(MotorRule(number, rules, optional, groups))
        return tuple(out)

    def fault_codes(self, value: Any) -> dict[str, tuple[CodeSource, ...]]:
        if not isinstance(value, dict):
            raise self.error("fault_codes", "expected a table")
        out: dict[str, tuple[CodeSource, ...]] = {}
        for name, spec in value.items():
            key = f"fault_codes.{name}"
            if name not in FAULT_CODE_LISTS:
                raise self.error(key, f"unknown list; valid: {', '.join(FAULT_CODE_LISTS)}")
            items = spec if isinstance(spec, list) else [spec]
            sources = []
            for i, item in enumerate(items):
                ikey = f"{key}[{i}]" if isinstance(spec, list) else key
                if isinstance(item, str):
                    item = {"signal": item}
                t = self.table(item, ikey, _CODE_KEYS)
                if "signal" not in t:
                    raise self.error(f"{ikey}.signal", "missing")
                if ("count" in t) != ("index" in t):
                    raise self.error(ikey, "count and index go together (a BMS rotating its active codes)")
                inp = self.input(t["signal"], f"{ikey}.signal", sna=t.get("sna"), stale=t.get("stale"))
                count = (
                    self.input(t["count"], f"{ikey}.count", stale=t.get("stale")) if "count" in t else None
                )
                index = (
                    self.input(t["index"], f"{ikey}.index", stale=t.get("stale")) if "index" in t else None
                )
                sources.append(CodeSource(ikey, inp, count, index))
            out[name] = tuple(sources)
        return out

    def checks(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise self.error("checks", "expected a table of message name = { counter, checksum, algorithm }")
        for name, spec in value.items():
            key = f"checks.{name}"
            try:
                message = self.db.get_message_by_name(name)
            except KeyError:
                raise self.error(key, f"message {name!r} is not in the DBC") from None
            if not isinstance(spec, dict):
                raise self.error(key, "expected a table")
            for part in ("counter", "checksum"):
                sig = spec.get(part)
                if sig is None:
                    continue
                try:
                    message.get_signal_by_name(sig)
                except (KeyError, TypeError):
                    raise self.error(f"{key}.{part}", f"signal {sig!r} is not in message {name}") from None
            params = {
                "counter": spec.get("counter"),
                "checksum": spec.get("checksum"),
                "algorithm": spec.get("algorithm"),
            }
            params.update({k: v for k, v in spec.items() if k not in params})
            try:
                self.message_checks[name] = _make_check(message, params)
            except MappingError as exc:
                raise self.error(key, str(exc)) from None
            except (TypeError, ValueError, KeyError) as exc:
                raise self.error(key, f"bad check: {exc}") from None

    # -- all

    def compile(self) -> CompiledMapping:
        doc = self.doc
        unknown = sorted(set(doc) - _TOP_KEYS)
        if unknown:
            raise self.error(unknown[0], f"unknown key; valid: {', '.join(sorted(_TOP_KEYS))}")
        dbc_paths = self.load_dbc()
        defaults = self.table(doc.get("defaults", {}), "defaults", _DEFAULT_KEYS)
        if "stale_cycles" in defaults:
            self.stale_cycles = self.number(defaults["stale_cycles"], "defaults.stale_cycles", positive=True)
        if "stale_timeout" in defaults:
            self.stale_timeout = self.number(
                defaults["stale_timeout"], "defaults.stale_timeout", positive=True
            )
        if "stale_min" in defaults:
            value = defaults["stale_min"]
            self.stale_min = 0.0 if value == 0 else self.number(value, "defaults.stale_min", positive=True)
        if "checks" in doc:
            self.checks(doc["checks"])
        vehicle = self.section("vehicle", VEHICLE_FIELDS, doc.get("vehicle", {}))
        motors = self.motors(doc.get("motors", []))
        subsystems = self.battery(doc["battery"]) if "battery" in doc else ()
        extremes = self.section("extremes", EXTREME_FIELDS, doc.get("extremes", {}))
        faults = self.section("faults", FAULT_FIELDS, doc.get("faults", {}))
        codes = self.fault_codes(doc.get("fault_codes", {}))
        engine = self.section("engine", ENGINE_FIELDS, doc["engine"]) if "engine" in doc else None
        groups = []
        for (frame_id, mux), index in sorted(self.group_index.items(), key=lambda kv: kv[1]):
            message = self.group_message[index]
            names = self.group_signals[index]
            sigs = [message.get_signal_by_name(n) for n in names]
            groups.append(
                Group(
                    frame_id=frame_id,
                    mux=mux,
                    message=message.name,
                    signals=tuple(names),
                    stale=self.staleness(message),
                    min_length=_min_length(sigs, message.length),
                    decoder=_compile_decoder(message, names, mux),
                    check=self.message_checks.get(message.name),
                    max_stale=self.group_stale[index],
                    dbc_length=int(message.length),
                )
            )
        mapping = CompiledMapping(
            path=self.path,
            dbc_paths=tuple(dbc_paths),
            database=self.db,
            groups=tuple(groups),
            vehicle=vehicle,
            motors=motors,
            subsystems=subsystems,
            extremes=extremes,
            faults=faults,
            fault_codes=codes,
            engine=engine,
            mux_selectors=dict(self.mux),
        )
        log.info(
            "%s: %d fields from %d frames (%d CAN ids)",
            self.path,
            len(mapping.field_names()),
            len(groups),
            len(mapping.wanted_ids),
        )
        return mapping


def _int_literal(text: str) -> int:
    """An integer written in decimal (leading zeros allowed), 0x hex or 0b binary, with a sign."""
    body = text.strip().lstrip("+-").lower()
    sign = -1 if text.strip().startswith("-") else 1
    if body.startswith("0x"):
        return sign * int(body[2:], 16)
    if body.startswith("0b"):
        return sign * int(body[2:], 2)
    return sign * int(body, 10)


def _min_length(signals: Iterable[Any], dlc: int) -> int:
    """Bytes a frame needs to carry every one of ``signals`` (shorter frames are invalid)."""
    need = 0
    for sig in signals:
        if sig.byte_order == "little_endian":
            last_bit = sig.start + sig.length - 1
            need = max(need, last_bit // 8 + 1)
        else:
            need = max(need, sig.start // 8 + 1 + max(0, (sig.length - (sig.start % 8 + 1) + 7) // 8))
    return min(max(need, 1), dlc) if dlc else need
