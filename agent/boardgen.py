"""Compile a DBC + mapping into the compact signal table of the MicroPython lite firmware.

cantools does not run on MicroPython, so ``tbox board compile`` turns a validated mapping
(``agent.canbus.mapping.load_mapping``) into a plain Python module of tuples, dicts and numbers that
``board/micropython/tbox_lite`` reads (format: docs/micropython.md). Only what the lite report needs
is emitted: the whole-vehicle block, the drive motors, the BMS extremes, the ECU fault inputs with
their alarm level, a few threshold alarms computed from those fields, the fault-code lists and the
counter/checksum checks of the frames read (``[checks]``, ``agent.canbus.checks``). Cell
voltages and probe temperatures (2016 0x08/0x09) are left out: they are the bulk of a report and of
the decode work, and the extremes block carries their max/min.

Everything here is pure: ``compile_table(mapping, edition) -> str`` (the module's source text).
"""

from __future__ import annotations

import enum
import logging
import math
import tomllib
from typing import Any, Final

from agent.canbus.decode import sequential_start
from agent.canbus.mapping import CodeSource, CompiledMapping, Expr, Input, Rule
from agent.errors import MappingError
from agent.protocol.model import AlarmLevel, GeneralAlarmFlag, Special
from agent.report.alarms import AlarmConfig
from agent.report.snapshot import FAULT_FIELDS

log = logging.getLogger(__name__)

#: bump when the table layout changes; the firmware refuses a table of another format
TABLE_FORMAT: Final = 1

# rule kinds (the first item of every rule tuple)
CONST: Final = 0  # (0, value)
NUMBER: Final = 1  # (1, signal, scale, offset, is_int)
CODED: Final = 2  # (2, signal, {raw: code}, unmapped_code); code None = invalid
BOOL_EXPR: Final = 3  # (3, ((atom, ...), ...)) with atom = (signal, mask, op, value, on_raw)
BOOL_SIGNAL: Final = 4  # (4, signal)

#: wire code of the two sentinels of a BYTE-coded field (None stands for "invalid")
ABNORMAL_CODE: Final = 0xFE

#: vehicle fields the lite 2016 / 2025 reports read
VEHICLE_KEYS: Final = (
    "vehicle_state",
    "charging_state",
    "running_mode",
    "speed",
    "mileage",
    "total_voltage",
    "total_current",
    "soc",
    "dcdc_state",
    "gear",
    "drive_force",
    "brake_force",
    "insulation_resistance",
    "accelerator_pedal",
    "brake_pedal",
)
MOTOR_KEYS: Final = (
    "state",
    "controller_temperature",
    "speed",
    "torque",
    "temperature",
    "controller_voltage",
    "controller_current",
)
EXTREME_KEYS: Final = (
    "max_cell_voltage",
    "max_cell_voltage_subsystem",
    "max_cell_voltage_index",
    "min_cell_voltage",
    "min_cell_voltage_subsystem",
    "min_cell_voltage_index",
    "max_temperature",
    "max_temperature_subsystem",
    "max_temperature_index",
    "min_temperature",
    "min_temperature_subsystem",
    "min_temperature_index",
)

#: threshold alarms the firmware can compute cheaply: flag name -> (metric, direction high?)
#: metrics (tbox_lite/alarm.py): insulation in Ω/V, SOC %, extremes (V, °C), hottest motor/controller °C
THRESHOLD_METRICS: Final = {
    "temperature_difference": ("temp_spread", True),
    "battery_high_temperature": ("max_temperature", True),
    "low_soc": ("soc", False),
    "high_soc": ("soc_high", True),
    "cell_overvoltage": ("max_cell_voltage", True),
    "cell_undervoltage": ("min_cell_voltage", False),
    "insulation": ("insulation", False),
    "motor_controller_temperature": ("controller_temperature", True),
    "motor_temperature": ("motor_temperature", True),
}
#: metric -> the mapped fields it needs ("vehicle.x", "extremes.x" or "motors.x")
METRIC_INPUTS: Final = {
    "temp_spread": ("extremes.max_temperature", "extremes.min_temperature"),
    "max_temperature": ("extremes.max_temperature",),
    "soc": ("vehicle.soc",),
    "soc_high": (),  # the CPython engine's high-SOC metric is a charging condition: not in the lite table
    "max_cell_voltage": ("extremes.max_cell_voltage",),
    "min_cell_voltage": ("extremes.min_cell_voltage",),
    "insulation": ("vehicle.insulation_resistance", "vehicle.total_voltage"),
    "controller_temperature": ("motors.controller_temperature",),
    "motor_temperature": ("motors.temperature",),
}


class _Tables:
    """Collects the signals and frame groups the emitted rules refer to."""

    def __init__(self, mapping: CompiledMapping) -> None:
        self.mapping = mapping
        self.signals: list[tuple[Any, ...]] = []
        self.signal_index: dict[tuple[int, str], int] = {}
        self.groups: list[int] = []  # mapping group index of each table group
        self.group_index: dict[int, int] = {}

    def group(self, index: int) -> int:
        found = self.group_index.get(index)
        if found is None:
            found = len(self.groups)
            self.group_index[index] = found
            self.groups.append(index)
        return found

    def signal(self, inp: Input) -> int:
        key = (inp.group, inp.signal)
        found = self.signal_index.get(key)
        if found is not None:
            return found
        g = self.mapping.groups[inp.group]
        message = self.mapping.database.get_message_by_name(g.message)
        sig = message.get_signal_by_name(inp.signal)
        big = sig.byte_order != "little_endian"
        entry = (
            self.group(inp.group),
            int(sig.start),
            int(sig.length),
            1 if big else 0,
            1 if sig.is_signed else 0,
            _num(sig.scale),
            _num(sig.offset),
            tuple(sorted(inp.sna)),
            round(inp.stale * 1000),
        )
        found = len(self.signals)
        self.signal_index[key] = found
        self.signals.append(entry)
        return found


def _num(value: float) -> float | int:
    """An int when the value is integral (smaller, exact on MicroPython), else the float."""
    f = float(value)
    return int(f) if f.is_integer() and abs(f) < 2**30 else f


def _code(value: Any, key: str) -> int | None:
    """A mapped value as its wire code: enum member -> int, INVALID -> None, ABNORMAL -> 0xFE."""
    if value is Special.INVALID:
        return None
    if value is Special.ABNORMAL:
        return ABNORMAL_CODE
    if isinstance(value, enum.Enum):
        return int(value.value)
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int):
        return value
    raise MappingError(f"{key}: value {value!r} has no wire code for the lite table")


def _expr(t: _Tables, expr: Expr) -> tuple[Any, ...]:
    terms = []
    for term in expr.terms:
        atoms = []
        for a in term:
            mask = -1 if a.mask is None else int(a.mask)
            atoms.append((t.signal(a.input), mask, a.op or "", _num(a.value), 1 if a.on_raw else 0))
        terms.append(tuple(atoms))
    return (BOOL_EXPR, tuple(terms))


def _rule(t: _Tables, rule: Rule) -> tuple[Any, ...]:
    """One snapshot field as a table rule (see the kinds above)."""
    if rule.expr is not None:
        return _expr(t, rule.expr)
    if rule.input is None:
        const = rule.const
        if isinstance(const, bool) or rule.kind == "bool":
            return (CONST, bool(const))
        if isinstance(const, (int, float)) and not isinstance(const, enum.Enum) and rule.out is None:
            return (CONST, _num(const))
        return (CONST, _code(const, rule.key))
    sig = t.signal(rule.input)
    if rule.table is not None:
        table = {int(raw): _code(v, rule.key) for raw, v in sorted(rule.table.items())}
        return (CODED, sig, table, _code(rule.unmapped, rule.key))
    if rule.out is not None:
        # an enum without a map: the raw value is the wire code when the enum defines it
        table = {int(m.value): int(m.value) for m in rule.out}
        return (CODED, sig, table, None)
    if rule.kind == "bool":
        return (BOOL_SIGNAL, sig)
    return (NUMBER, sig, _num(rule.scale), _num(rule.offset), 1 if rule.kind == "int" else 0)


def _leaf(rule: Rule) -> str:
    return rule.key.rsplit(".", 1)[1]


def _codes(t: _Tables, sources: tuple[CodeSource, ...]) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        (
            t.signal(s.input),
            t.signal(s.count) if s.count is not None else -1,
            t.signal(s.index) if s.index is not None else -1,
        )
        for s in sources
    )


#: checksum algorithms of agent.canbus.checks the firmware runs: (kind, poly, init, xorout, data-id bytes)
_CHECK_ALGORITHMS: Final = {
    "crc8_sae_j1850": ("crc", 0x1D, 0xFF, 0xFF, 2),
    "e2e_p1": ("crc", 0x1D, 0x00, 0x00, 2),
    "crc8_autosar": ("crc", 0x2F, 0xFF, 0xFF, 0),
    "xor": ("xor", 0, 0, 0, 0),
    "sum": ("sum", 0, 0, 0, 0),
    "none": ("none", 0, 0, 0, 0),
}


def mapping_checks(mapping: CompiledMapping) -> dict[str, dict[str, Any]]:
    """The ``[checks]`` tables of the mapping file (already validated by ``load_mapping``)."""
    try:
        doc = tomllib.loads(mapping.path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    checks = doc.get("checks", {})
    return checks if isinstance(checks, dict) else {}


def _check(mapping: CompiledMapping, name: str, spec: dict[str, Any]) -> tuple[Any, ...] | None:
    """One message's check as the table carries it, None when the firmware cannot run it (logged).

    ``(kind, crc byte or -1, poly, init, xorout, data-id prefix, (counter start, length, big) or (),
    counter modulo, max jump)``; the rules are ``agent.canbus.checks.make_check``'s.
    """
    message = mapping.database.get_message_by_name(name)
    algorithm = spec.get("algorithm", "none")
    if algorithm not in _CHECK_ALGORITHMS or spec.get("data_id_mode", "both") != "both":
        log.warning("%s: check %s is not supported by the lite firmware; left out", name, algorithm)
        return None
    kind, poly, init, xorout, id_bytes = _CHECK_ALGORITHMS[algorithm]
    poly = int(spec.get("poly", poly)) & 0xFF
    init = int(spec.get("init", init)) & 0xFF
    xorout = int(spec.get("xorout", xorout)) & 0xFF
    data_id = int(spec.get("data_id", int(message.frame_id)))
    id_bytes = int(spec.get("data_id_bytes", id_bytes))
    prefix = bytes((data_id & 0xFF, (data_id >> 8) & 0xFF)[:id_bytes])
    crc_byte = -1
    if spec.get("checksum"):
        crc_byte = sequential_start(message.get_signal_by_name(spec["checksum"])) // 8
    counter: tuple[int, ...] = ()
    modulo = max_jump = 0
    if spec.get("counter"):
        sig = message.get_signal_by_name(spec["counter"])
        counter = (int(sig.start), int(sig.length), 0 if sig.byte_order == "little_endian" else 1)
        full = 1 << int(sig.length)
        modulo = int(spec.get("counter_modulo", 15 if algorithm == "e2e_p1" and full == 16 else full))
        max_jump = int(spec.get("max_jump", 1))
    return (kind, crc_byte, poly, init, xorout, prefix, counter, modulo, max_jump)


def _thresholds(mapped: set[str], config: AlarmConfig) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for name, (metric, high) in THRESHOLD_METRICS.items():
        needs = METRIC_INPUTS[metric]
        if not needs or not all(n in mapped for n in needs):
            continue
        flag = GeneralAlarmFlag(1 << FAULT_FIELDS[name])
        rule = config.rules.get(flag)
        if rule is None or not rule.thresholds:
            continue
        steps = sorted(rule.thresholds, key=lambda x: x.level)
        levels = tuple((int(th.level), _num(th.set), _num(th.clear)) for th in steps)
        out.append((FAULT_FIELDS[name], metric, 1 if high else 0, levels))
    return out


def compile_table(
    mapping: CompiledMapping,
    edition: int = 2016,
    alarms: AlarmConfig | None = None,
    checks: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The table module's source text for ``mapping`` (the firmware's report edition ``edition``).

    ``checks``: the mapping's ``[checks]`` tables (default: read from ``mapping.path``).
    """
    if edition not in (2016, 2025):
        raise MappingError(f"edition must be 2016 or 2025, not {edition!r}")
    config = alarms if alarms is not None else AlarmConfig.nmc()
    t = _Tables(mapping)
    by_key = {_leaf(r): r for r in mapping.vehicle}
    vehicle = {k: _rule(t, by_key[k]) for k in VEHICLE_KEYS if k in by_key}
    motors = []
    for m in mapping.motors:
        rules = {_leaf(r): r for r in m.rules}
        fields = {k: _rule(t, rules[k]) for k in MOTOR_KEYS if k in rules}
        motor_groups = tuple(sorted({t.group(g) for g in m.groups}))
        motors.append((m.number, 1 if m.optional else 0, motor_groups, fields))
    ex_by_key = {_leaf(r): r for r in mapping.extremes}
    extremes = {k: _rule(t, ex_by_key[k]) for k in EXTREME_KEYS if k in ex_by_key}
    faults = []
    for r in mapping.faults:
        name = _leaf(r)
        flag = GeneralAlarmFlag(1 << FAULT_FIELDS[name])
        if edition == 2016 and FAULT_FIELDS[name] > 18:
            continue
        rule = config.rules.get(flag)
        level = int(rule.fault_level) if rule is not None else int(AlarmLevel.LEVEL_2)
        faults.append((FAULT_FIELDS[name], level, _rule(t, r)))
    codes = {n: _codes(t, src) for n, src in mapping.fault_codes.items() if n in ("ress", "motor")}
    mapped = {f"vehicle.{k}" for k in vehicle} | {f"extremes.{k}" for k in extremes}
    if motors:
        mapped |= {f"motors.{k}" for k in motors[0][3]}
    thresholds = _thresholds(mapped, config)

    specs = mapping_checks(mapping) if checks is None else checks
    compiled = {name: _check(mapping, name, spec) for name, spec in specs.items() if isinstance(spec, dict)}
    table_checks: dict[int, Any] = {}
    routes: dict[int, Any] = {}
    groups = []
    for index, mg_index in enumerate(t.groups):
        g = mapping.groups[mg_index]
        groups.append((g.message, max(g.min_length, 1), round(g.max_stale * 1000)))
        check = compiled.get(g.message)
        if check is not None:
            table_checks[index] = check
        if g.mux is None:
            if g.frame_id in routes:
                raise MappingError(f"{g.message}: read both whole and by mux page; the lite table cannot")
            routes[g.frame_id] = index
            continue
        message = mapping.database.get_message_by_name(g.message)
        mux_sig = next((s for s in message.signals if s.is_multiplexer and not s.multiplexer_ids), None)
        if mux_sig is None:
            raise MappingError(f"{g.message}: multiplexed page {g.mux} without a multiplexer signal")
        entry = routes.setdefault(
            g.frame_id,
            (
                int(mux_sig.start),
                int(mux_sig.length),
                0 if mux_sig.byte_order == "little_endian" else 1,
                {},
            ),
        )
        if not isinstance(entry, tuple):
            raise MappingError(f"{g.message}: read both whole and by mux page; the lite table cannot")
        entry[3][int(g.mux)] = index
    subsystems = max(1, len(mapping.subsystems))
    lines = [
        f'"""Signal table for the tbox lite firmware, generated by `tbox board compile` from'
        f" {mapping.path.name} ({', '.join(p.name for p in mapping.dbc_paths)}). Do not edit.",
        "",
        "Format: docs/micropython.md. Signals: (group, start, length, big_endian, signed, scale, offset,",
        "sna_raws, stale_ms); rules: (0 const | 1 number | 2 coded | 3 bool expression | 4 bool signal,",
        "...); checks: group -> (kind, crc byte, poly, init, xorout, data-id prefix, counter, modulo, jump).",
        '"""',
        "",
        f"FORMAT = {TABLE_FORMAT}",
        f"EDITION = {edition}",
        f"SUBSYSTEMS = {subsystems}",
        f"GROUPS = {_py(tuple(groups))}",
        f"ROUTES = {_py(routes)}",
        f"SIGNALS = {_py(tuple(t.signals))}",
        f"VEHICLE = {_py(vehicle)}",
        f"MOTORS = {_py(tuple(motors))}",
        f"EXTREMES = {_py(extremes)}",
        f"FAULTS = {_py(tuple(faults))}",
        f"THRESHOLDS = {_py(tuple(thresholds))}",
        f"CODES = {_py(codes)}",
        f"CHECKS = {_py(table_checks)}",
        "",
    ]
    log.info(
        "board table: %d signals from %d frame groups (%d CAN ids)", len(t.signals), len(groups), len(routes)
    )
    return "\n".join(lines)


def _py(value: Any) -> str:
    """Python source of a table value (tuples, dicts, ints, floats, str, bool, None) on one line."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingError(f"non-finite number {value!r} in the table")
        return repr(value)
    if isinstance(value, (str, bytes)):
        return repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(_py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_py(k)}: {_py(v)}" for k, v in value.items()) + "}"
    raise MappingError(f"cannot write {type(value).__name__} into the table")


__all__ = ["TABLE_FORMAT", "compile_table"]
