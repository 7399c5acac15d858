"""``tbox mapping scaffold``: a starting mapping file for any DBC, by matching signal names and units.

The heuristics look at each signal's name (English, German and common abbreviations), unit (after
normalisation: mV, degC, kOhm ...), length and value table. What they find is written as TOML entries,
with the scale a unit needs (mV cells -> ``scale = 0.001``); what they do not find is listed as
comments. The result is loaded with ``agent.canbus.mapping`` before it is written: an entry the loader
rejects is turned into a comment carrying the reason, so the file always loads (maybe with fewer
fields). It is a starting point: review every line (signs, enum maps, subsystems, checks).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    """Add the ``mapping`` verb (sub-command ``scaffold``) to the ``tbox`` parser."""
    parser = sub.add_parser(
        "mapping",
        help="signal mapping files (dbc/*.toml): write a starting mapping for a DBC",
        description="Tools for the DBC -> GB/T 32960 mapping files described in docs/mapping.md.",
    )
    verbs = parser.add_subparsers(dest="mapping_verb", required=True, metavar="ACTION")
    scaffold_p = verbs.add_parser(
        "scaffold",
        help="write a starting mapping by matching signal names and units",
        description=(
            "Match the DBC's signals to the snapshot fields by name and unit and write a mapping file"
            " that loads; unmatched fields are listed as comments. Review it before use."
        ),
    )
    scaffold_p.add_argument(
        "--dbc", required=True, action="append", metavar="FILE", help="DBC file (repeatable)"
    )
    scaffold_p.add_argument("--out", metavar="FILE", help="mapping file to write (default: stdout)")
    scaffold_p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    scaffold_p.set_defaults(run=run_scaffold)


def run_scaffold(args: argparse.Namespace) -> int:
    """Entry point of ``tbox mapping scaffold``."""
    from agent.errors import MappingError

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.force:
        raise MappingError(f"{out}: exists (use --force to overwrite)")
    text, stats = scaffold([Path(p) for p in args.dbc], out)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        print(f"tbox mapping scaffold: wrote {out}: {stats}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------- heuristics


@dataclass
class _Sig:
    message: Any
    signal: Any
    name: str  # as written in the mapping: Signal or Message.Signal
    low: str
    dim: str | None
    factor: float
    choices: dict[str, int]

    @property
    def is_flag(self) -> bool:
        return int(self.signal.length) == 1


@dataclass
class _Entry:
    section: str  # "vehicle", "motors.1", "battery", ...
    key: str
    value: str
    note: str = ""


@dataclass
class _Draft:
    entries: list[_Entry] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)


# field -> (dimension, regexes that must all match, bonus regexes, exclusion regex)
_SCALARS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    "speed": (
        "km/h",
        (r"speed|spd|geschw|velocity|v_?veh|vfzg",),
        (r"veh|fzg|car|vcu",),
        r"wheel|whl|rad|limit|max|set|target|cruise",
    ),
    "mileage": (
        "km",
        (r"odo|mileage|kilomet|km_?stand|total_?dist|distance|kmstand|km$",),
        (r"odo|total",),
        r"trip|range|remain",
    ),
    "total_voltage": (
        "V",
        (r"volt|spannung|_u_|^u_|_u$|vol",),
        (r"pack|batt|bat\b|hvb|total|sum|bms",),
        r"cell|zell|min|max|avg|mean|limit|lim|req|charg|obc|ccu|link|lv|12v|dcdc|mcu|inv|motor|em_|out|evse",
    ),
    "total_current": (
        "A",
        (r"curr|strom|_i_|^i_|_i$|cur",),
        (r"pack|batt|bat\b|hvb|total|bms",),
        r"limit|lim|max|req|charg|obc|ccu|mcu|inv|motor|em_|out|evse|dcdc",
    ),
    "soc": (
        "%",
        (r"soc|state_?of_?charge|ladezustand",),
        (r"bms|batt|hvb|disp|user",),
        r"soh|limit|min|max|target|req",
    ),
    "insulation_resistance": ("kΩ", (r"iso|insul",), (), r"limit|thresh"),
    "accelerator_pedal": (
        "%",
        (r"acc.*ped|accel|throttle|fahrpedal|gaspedal|apedal|app\b",),
        (),
        r"fault|err|raw",
    ),
    "brake_pedal": ("%", (r"brake.*(ped|pos|travel)|brk.*ped|bremspedal",), (), r"fault|err|switch"),
    "dcdc_temperature": ("°C", (r"dcdc",), (r"temp",), r""),
}
_MOTOR_FIELDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "speed": ("r/min", (r"speed|spd|drehzahl|rpm|n_",), r"req|cmd|limit|max|set"),
    "torque": ("N·m", (r"torq|moment|trq",), r"req|cmd|limit|max|set|avail"),
    "temperature": (
        "°C",
        (r"mot|wind|stator|em_?temp|em_t|motortemp",),
        r"inv|igbt|ctrl|control|le_|cool|mcu_?temp|board",
    ),
    "controller_temperature": ("°C", (r"inv|igbt|ctrl|control|le_|mcu|pim|wr_",), r"motor|wind|stator|cool"),
    "controller_voltage": ("V", (r"volt|spannung|dc|_u",), r"req|limit|max|lv|12v"),
    "controller_current": ("A", (r"curr|strom|dc|_i",), r"req|limit|max|lv|12v"),
}
_MOTOR_PREFIX = re.compile(
    r"(?:^|_)(mcu|motor|mot|em|inv|edu|drive|pim|tm|dm|wr|le(?=_))_?(\d?)(?:_|$|[a-z])"
)
_FAULTS: dict[str, str] = {
    "cell_overvoltage": r"cell.*(over_?volt|(^|_)ov($|_))|cellov|zell.*ueberspann",
    "cell_undervoltage": r"cell.*(under_?volt|(^|_)uv($|_))|celluv|zell.*unterspann",
    "storage_overvoltage": r"(pack|batt).*(over_?volt|(^|_)ov($|_))",
    "storage_undervoltage": r"(pack|batt).*(under_?volt|(^|_)uv($|_))",
    "battery_high_temperature": r"(cell|batt|pack).*(over_?temp|high_?temp|_ot\b)|celltemphigh",
    "temperature_difference": r"temp.*(imbal|diff|delta|spread)",
    "cell_inconsistency": r"(volt|cell).*(imbal|diff|consist|spread)",
    "low_soc": r"soc_?low|low_?soc",
    "high_soc": r"soc_?high|high_?soc",
    "insulation": r"insul|iso",
    "hv_interlock": r"hvil|interlock",
    "brake_system": r"brake.*(fault|flt|err|fail)",
    "dcdc_status": r"dcdc.*(fault|flt|err|fail)",
}
_ENUM_WORDS: dict[str, list[tuple[str, str]]] = {
    "gear": [
        (r"^p$|park", "park"),
        (r"^r$|rev|rueck", "reverse"),
        (r"^n$|neut", "neutral"),
        (r"^d$|drive|fahr", "drive"),
    ],
    "vehicle_state": [
        (r"start|^on$|run|ready|fahr|bereit|drive", "started"),
        (r"off|stop|aus|sleep", "stopped"),
        (r"other", "other"),
    ],
    "charging_state": [
        (r"complete|done|finish|fertig|full", "charging_complete"),
        (r"not|none|no_?charg|kein|idle", "not_charging"),
        (r"driv|regen", "driving_charging"),
        (r"charg|^ac$|^dc$|laden|activ", "parked_charging"),
    ],
    "dcdc_state": [
        (r"activ|^on$|work|run|aktiv", "working"),
        (r"off|stand|idle|aus", "disconnected"),
        (r"fault|err|fehler", "abnormal"),
    ],
    "running_mode": [(r"elec|ev\b|^ev", "electric"), (r"hyb", "hybrid"), (r"fuel|ice|engine", "fuel")],
}
_MOTOR_STATE_WORDS = [
    (r"regen|generat|gen$", "generating"),
    (r"driv|motor|consum|torque", "consuming"),
    (r"ready|bereit|standby|idle", "ready"),
    (r"off|aus|disabl|init", "off"),
    (r"fault|err|fehler", "abnormal"),
]
_ENUM_NAMES: dict[str, str] = {
    "gear": r"gear|gang|prnd|shift|selector",
    "vehicle_state": r"(veh|vehicle|fzg|car).*(state|status|zustand|mode)",
    "charging_state": r"(charg|chg|lade).*(state|status|zustand)",
    "dcdc_state": r"dcdc.*(state|status|mode|zustand)",
    "running_mode": r"run.*mode|drive_?type|(veh|vehicle).*mode",
}


def _tokens(text: str) -> str:
    """Lower-case name with camelCase split by underscores (``BMS_PackVoltage`` -> ``bms_pack_voltage``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text).lower()


def _collect(db: Any) -> list[_Sig]:
    from agent.canbus.mapping import unit_of

    counts: dict[str, int] = {}
    for m in db.messages:
        for s in m.signals:
            counts[s.name] = counts.get(s.name, 0) + 1
    out = []
    for m in db.messages:
        for s in m.signals:
            unit = unit_of(s.unit or "")
            name = s.name if counts[s.name] == 1 else f"{m.name}.{s.name}"
            choices = {str(v): int(k) for k, v in (s.choices or {}).items()}
            out.append(
                _Sig(
                    m, s, name, _tokens(s.name), unit[0] if unit else None, unit[1] if unit else 1.0, choices
                )
            )
    return out


def _fmt(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() else f"{x:g}"


def _signal_entry(sig: _Sig, want_factor: float = 1.0) -> str:
    factor = sig.factor / want_factor
    extra = f", scale = {_fmt(factor)}" if abs(factor - 1) > 1e-12 else ""
    return f'{{ signal = "{sig.name}"{extra} }}'


def _best(cands: list[tuple[int, _Sig]]) -> _Sig | None:
    if not cands:
        return None
    cands.sort(key=lambda c: (-c[0], c[1].name))
    return cands[0][1]


def _enum_map(sig: _Sig, words: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for label in sig.choices:
        low = _tokens(label)
        for rx, target in words:
            if re.search(rx, low):
                out[label] = target
                break
    return out


def _arrays(sigs: list[_Sig], draft: _Draft) -> None:
    """Cell voltages and temperature probes: the largest family of numbered signals of each kind."""
    families: dict[tuple[str, str], list[_Sig]] = {}
    for s in sigs:
        if not re.search(r"\d", s.signal.name):
            continue
        template = re.sub(r"\d+", "#", s.signal.name)
        if s.dim == "V" and re.search(r"cell|zell|cv|ucell|vcell|_u_", s.low):
            families.setdefault(("cells", template), []).append(s)
        elif (
            s.dim == "°C"
            and re.search(r"temp|_t\d|^t\d|ntc|probe|sens|_t_|modul", s.low)
            and not _MOTOR_PREFIX.search(s.low)
        ):
            families.setdefault(("temps", template), []).append(s)
    lines = []
    for kind, key in (("cells", "cell_voltages"), ("temps", "temperatures")):
        best = max(
            ((t, members) for (k, t), members in families.items() if k == kind and len(members) >= 2),
            key=lambda tm: (len(tm[1]), tm[0]),
            default=None,
        )
        if best is None:
            draft.missing.setdefault("battery", []).append(key)
            continue
        template, members = best
        pattern = re.escape(template).replace("\\#", "#").replace("#", r"(\d+)")
        scale = members[0].factor
        extra = f", scale = {_fmt(scale)}" if abs(scale - 1) > 1e-12 else ""
        lines.append(_Entry("battery", key, f"{{ pattern = '{pattern}'{extra} }}", f"{len(members)} signals"))
        draft.used.update(m.name for m in members)
    draft.entries.extend(lines)
    if lines:
        draft.entries.append(
            _Entry(
                "battery",
                "subsystems",
                "[{ number = 1 }]",
                "split: [{ number = 1, cells = N, probes = M }, ...]",
            )
        )


def _scalars(sigs: list[_Sig], draft: _Draft) -> None:
    for fname, (dim, must, bonus, exclude) in _SCALARS.items():
        cands = []
        for s in sigs:
            if s.name in draft.used or s.dim != dim or s.signal.is_multiplexer:
                continue
            if not all(re.search(rx, s.low) for rx in must) or (exclude and re.search(exclude, s.low)):
                continue
            if fname != "dcdc_temperature" and _MOTOR_PREFIX.search(s.low) and fname not in ("speed",):
                continue
            score = sum(2 for rx in bonus if re.search(rx, s.low)) - len(s.low) // 40
            cands.append((score, s))
        best = _best(cands)
        if best is None:
            draft.missing.setdefault("vehicle", []).append(fname)
            continue
        draft.used.add(best.name)
        draft.entries.append(_Entry("vehicle", fname, _signal_entry(best)))
    for fname, name_rx in _ENUM_NAMES.items():
        cands = []
        for s in sigs:
            if s.name in draft.used or not s.choices or not re.search(name_rx, s.low):
                continue
            mapping = _enum_map(s, _ENUM_WORDS[fname])
            if len(mapping) >= 2:
                cands.append((len(mapping), s))
        best = _best(cands)
        if best is None:
            draft.missing.setdefault("vehicle", []).append(fname)
            continue
        draft.used.add(best.name)
        table = ", ".join(f'{_key(k)} = "{v}"' for k, v in _enum_map(best, _ENUM_WORDS[fname]).items())
        draft.entries.append(_Entry("vehicle", fname, f'{{ signal = "{best.name}", map = {{ {table} }} }}'))
    hvil = next(
        (
            s
            for s in sigs
            if re.search(r"hvil|interlock", s.low) and any(re.search("clos", c.lower()) for c in s.choices)
        ),
        None,
    )
    if hvil is not None:
        closed = next(c for c in hvil.choices if re.search("clos", c.lower()))
        draft.entries.append(_Entry("vehicle", "hv_interlock_closed", f"'{hvil.name} == \"{closed}\"'"))
    else:
        draft.missing.setdefault("vehicle", []).append("hv_interlock_closed")
    draft.missing.setdefault("vehicle", []).extend(["drive_force", "brake_force", "hv_on"])


def _key(label: str) -> str:
    return label if re.fullmatch(r"[A-Za-z0-9_-]+", label) else f'"{label}"'


def _motors(sigs: list[_Sig], draft: _Draft) -> None:
    by_number: dict[int, list[_Sig]] = {}
    for s in sigs:
        m = _MOTOR_PREFIX.search(s.low)
        if m and s.name not in draft.used:
            by_number.setdefault(int(m.group(2) or 1), []).append(s)
    if not by_number:
        draft.missing.setdefault("motors", []).extend(_MOTOR_FIELDS)
        return
    for number in sorted(by_number)[:4]:
        section = f"motors.{number}"
        found = 0
        state = _best(
            [
                (len(_enum_map(s, _MOTOR_STATE_WORDS)), s)
                for s in by_number[number]
                if s.choices
                and re.search(r"state|status|mode|zustand", s.low)
                and len(_enum_map(s, _MOTOR_STATE_WORDS)) >= 2
            ]
        )
        if state is not None:
            found += 1
            draft.used.add(state.name)
            table = ", ".join(f'{_key(k)} = "{v}"' for k, v in _enum_map(state, _MOTOR_STATE_WORDS).items())
            draft.entries.append(
                _Entry(section, "state", f'{{ signal = "{state.name}", map = {{ {table} }} }}')
            )
        else:
            draft.missing.setdefault(section, []).append("state")
        for fname, (dim, must, exclude) in _MOTOR_FIELDS.items():
            cands = [
                (0, s)
                for s in by_number[number]
                if s.name not in draft.used
                and s.dim == dim
                and all(re.search(rx, s.low) for rx in must)
                and not re.search(exclude, s.low)
            ]
            best = _best(cands)
            if best is None:
                draft.missing.setdefault(section, []).append(fname)
                continue
            found += 1
            draft.used.add(best.name)
            draft.entries.append(_Entry(section, fname, _signal_entry(best)))
        if not found:
            draft.missing.pop(section, None)


_HI, _LO = r"max|high|highest|hi(?!l)|hoechst", r"min|low|lowest|lo(?!ad|ck)|niedrig"
_IDX = r"idx|index|_no|num|_nr|_id|pos|nummer"
_EXTREMES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "max_cell_voltage": ("V", (_HI, r"cell|zell")),
    "max_cell_voltage_index": (None, (_HI, r"cell|zell", _IDX)),
    "min_cell_voltage": ("V", (_LO, r"cell|zell")),
    "min_cell_voltage_index": (None, (_LO, r"cell|zell", _IDX)),
    "max_temperature": ("°C", (_HI, r"temp|_t_|_t$")),
    "max_temperature_index": (None, (_HI, r"temp|_t_|probe|sens", _IDX)),
    "min_temperature": ("°C", (_LO, r"temp|_t_|_t$")),
    "min_temperature_index": (None, (_LO, r"temp|_t_|probe|sens", _IDX)),
}


def _extremes(sigs: list[_Sig], draft: _Draft) -> None:
    """BMS-reported extremes (optional: the report builder computes them from the cells otherwise)."""
    for fname, (dim, must) in _EXTREMES.items():
        cands = [
            (0, s)
            for s in sigs
            if s.name not in draft.used
            and s.dim == dim
            and not s.signal.multiplexer_ids
            and all(re.search(rx, s.low) for rx in must)
            and not re.search(r"limit|lim_|avg|mean|motor|mcu|inv|dcdc|charg", s.low)
            and (dim is not None or not re.search(r"volt|_v$|_v_", s.low) or "index" in fname)
        ]
        if dim is None:
            cands = [c for c in cands if int(c[1].signal.length) <= 16 and not c[1].signal.is_float]
        else:
            cands = [c for c in cands if not re.search(_IDX, c[1].low)]
        best = _best(cands)
        if best is None:
            draft.missing.setdefault("extremes", []).append(fname)
            continue
        draft.used.add(best.name)
        draft.entries.append(_Entry("extremes", fname, _signal_entry(best)))
        if dim is not None:
            sub = fname + "_subsystem"
            draft.entries.append(_Entry("extremes", sub, "{ const = 1 }", "one subsystem: check"))


def _faults(sigs: list[_Sig], draft: _Draft) -> None:
    flags = [s for s in sigs if s.is_flag and s.name not in draft.used]
    for fname, rx in _FAULTS.items():
        best = _best([(0, s) for s in flags if re.search(rx, s.low) and s.name not in draft.used])
        if best is None:
            draft.missing.setdefault("faults", []).append(fname)
            continue
        draft.used.add(best.name)
        draft.entries.append(_Entry("faults", fname, f"'{best.name}'", "true when the signal is non-zero"))
    codes: dict[str, list[str]] = {}
    for s in sigs:
        if int(s.signal.length) >= 8 and re.search(
            r"dtc|fault_?code|err(or)?_?code|fehlercode|flt_?code", s.low
        ):
            if re.search(r"count|num|idx|index|cnt", s.low):
                continue
            kind = (
                "ress"
                if re.search(r"bms|batt|hvb|cmu|cell", s.low)
                else ("motor" if _MOTOR_PREFIX.search(s.low) else "other")
            )
            codes.setdefault(kind, []).append(s.name)
    for kind, names in codes.items():
        draft.entries.append(_Entry("fault_codes", kind, "[" + ", ".join(f'"{n}"' for n in names) + "]"))


def _checks(db: Any) -> list[str]:
    lines = []
    for m in db.messages:
        crc = next(
            (s for s in m.signals if re.search(r"crc|chks|checksum|_cs$", s.name.lower()) and s.length == 8),
            None,
        )
        cnt = next(
            (s for s in m.signals if re.search(r"counter|_cnt|alive|_rc$|_bz$|rolling", s.name.lower())), None
        )
        if crc is not None or cnt is not None:
            lines.append(
                f"# [checks.{m.name}]   # algorithm: crc8_sae_j1850 | e2e_p1 | crc8_autosar | xor | sum"
            )
            if cnt is not None:
                lines.append(f'# counter = "{cnt.name}"')
            if crc is not None:
                lines.append(f'# checksum = "{crc.name}"')
            lines.append('# algorithm = "crc8_sae_j1850"')
    return lines


def _render(dbc_names: list[str], draft: _Draft, disabled: dict[int, str], checks: list[str]) -> str:
    out = [
        "# Starting mapping written by `tbox mapping scaffold` (docs/mapping.md). REVIEW EVERY LINE:",
        "# units and scales were matched by name, enum maps by value names, signs are not known.",
        "",
        "dbc = "
        + (
            f'"{dbc_names[0]}"' if len(dbc_names) == 1 else "[" + ", ".join(f'"{d}"' for d in dbc_names) + "]"
        ),
        "",
        "[defaults]",
        "stale_cycles = 3.0     # x GenMsgCycleTime (x mux pages)",
        "stale_timeout = 1.0    # s, messages without GenMsgCycleTime",
        "",
    ]
    sections: dict[str, list[tuple[int, _Entry]]] = {}
    for i, e in enumerate(draft.entries):
        sections.setdefault(e.section, []).append((i, e))
    motors = sorted(s for s in sections if s.startswith("motors."))
    order = ["vehicle", *motors, "battery", "extremes", "faults", "fault_codes"]
    for name in order + sorted(s for s in draft.missing if s not in order):
        items = sections.get(name, [])
        missing = draft.missing.get(name, [])
        if not items and not missing:
            continue
        if name.startswith("motors."):
            out += ["[[motors]]", f"number = {name.split('.')[1]}"]
        elif name == "motors":
            out.append("# [[motors]]  (no motor signals recognised)")
        else:
            out.append(f"[{name}]")
        for i, e in items:
            note = f"   # {e.note}" if e.note else ""
            if i in disabled:
                out.append(f"# {e.key} = {e.value}   # rejected: {disabled[i]}")
            else:
                out.append(f"{e.key} = {e.value}{note}")
        for fname in missing:
            out.append(f"# {fname} = ?   # no match")
        out.append("")
    out.extend(checks)
    return "\n".join(out).rstrip() + "\n"


def scaffold(dbc_paths: Sequence[Path], out: Path | None = None) -> tuple[str, str]:
    """(mapping TOML text, one-line summary) for ``dbc_paths``; DBC names relative to ``out``'s folder."""
    from agent.canbus.mapping import _load_database, loads_mapping
    from agent.errors import MappingError

    db = _load_database(list(dbc_paths))
    base = (out.parent if out is not None else Path.cwd()).resolve()
    names = []
    for p in dbc_paths:
        try:
            names.append(Path(os.path.relpath(p.resolve(), base)).as_posix())
        except ValueError:  # another drive (Windows)
            names.append(p.resolve().as_posix())
    sigs = _collect(db)
    draft = _Draft()
    _arrays(sigs, draft)
    _scalars(sigs, draft)
    _motors(sigs, draft)
    _extremes(sigs, draft)
    _faults(sigs, draft)
    checks = _checks(db)
    disabled: dict[int, str] = {}
    where = (out if out is not None else base / "scaffold.toml").resolve()
    for _ in range(len(draft.entries) + 1):
        text = _render(names, draft, disabled, checks)
        try:
            mapping = loads_mapping(text, path=where, database=db)
        except MappingError as exc:
            culprit = _culprit(str(exc), draft, disabled)
            if culprit is None:
                raise
            disabled[culprit] = str(exc).split(": ", 2)[-1]
            continue
        unmatched = sum(len(v) for v in draft.missing.values())
        summary = f"{len(mapping.field_names())} fields mapped, {unmatched} not found"
        return text, summary
    raise MappingError("scaffold: could not produce a loadable mapping")


def _culprit(message: str, draft: _Draft, disabled: dict[int, str]) -> int | None:
    """The entry an error message's key path points at."""
    for i, e in enumerate(draft.entries):
        if i in disabled:
            continue
        key = f"{e.section}.{e.key}"
        if f": {key}" in message or f": {key}." in message or f"{key}[" in message:
            return i
        if e.section == "battery" and ": battery.subsystems" in message and e.key == "subsystems":
            return i
    return None


__all__ = ["register", "run_scaffold", "scaffold"]
