"""Alarm engine: GB/T 32960 general-alarm flags, levels and fault-code lists from sampled snapshots.

``AlarmEngine(config).update(snapshot) -> AlarmState`` is fed one snapshot per sample (≥ 1 Hz). Each flag
of both editions (bits 0-18; 2025 bits 19-27) has a rule: a metric computed from the snapshot (max cell
voltage, probe spread, insulation in Ω/V …), level thresholds with hysteresis (a *set* and a *clear*
value per level) and a debounce (N consecutive samples and/or a duration, to set and to clear). The
result is ORed with the mapped ECU fault inputs (``snapshot.faults``), which raise the flag at the rule's
``fault_level``.

Stale inputs (``Special.INVALID``) never raise or clear an alarm by themselves: the sample is ignored
for that rule and the previous decision holds. When only part of an array is stale (some cells), the
metric over the fresh part may raise or keep a level but never lower it.

Pure: no clock, time comes from ``Snapshot.time``. Defaults and their sources: docs/alarms.md.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Final

from agent.errors import ConfigError
from agent.protocol.model import (
    AlarmLevel,
    ChargingState,
    DcDcState,
    GeneralAlarmFlag,
    Special,
    VehicleState,
)
from agent.report.snapshot import FAULT_FIELDS, Snapshot

log = logging.getLogger(__name__)

F = GeneralAlarmFlag
L1, L2, L3, L4 = AlarmLevel.LEVEL_1, AlarmLevel.LEVEL_2, AlarmLevel.LEVEL_3, AlarmLevel.LEVEL_4

#: flag bit -> name of its ECU fault input in ``Snapshot.faults``
FAULT_INPUT_OF: Final = MappingProxyType({F(1 << bit): name for name, bit in FAULT_FIELDS.items()})
#: flags defined by each edition
FLAGS_2016: Final = F(0x0007FFFF)
FLAGS_2025: Final = F(0x0FFFFFFF)
NO_FLAGS: Final = F(0)


class Direction(Enum):
    """Which side of a threshold is the alarm."""

    HIGH = "high"  # alarm when metric >= set; clears when metric < clear (clear <= set)
    LOW = "low"  # alarm when metric <= set; clears when metric > clear (clear >= set)


@dataclass(frozen=True)
class Threshold:
    """One level of a rule: the level is raised at ``set`` and released past ``clear`` (hysteresis)."""

    level: AlarmLevel
    set: float
    clear: float


@dataclass(frozen=True)
class Debounce:
    """Consecutive samples *and* seconds a change must persist before it is taken (both must hold)."""

    set_samples: int = 2
    clear_samples: int = 3
    set_seconds: float = 0.0
    clear_seconds: float = 0.0


@dataclass(frozen=True)
class Rule:
    """The alarm rule of one general flag. ``thresholds`` empty = ECU fault input only.

    ``fault_level``: the level an ECU fault input raises (default 2; the presets use the rule's first level:
    an ECU bit says the condition exists, not how severe it is — the measured thresholds escalate).
    """

    thresholds: tuple[Threshold, ...] = ()
    debounce: Debounce = field(default_factory=Debounce)
    fault_level: AlarmLevel = L2
    enabled: bool = True


@dataclass(frozen=True)
class ThermalEventConfig:
    """Thermal-event detector (2025 bit 23, level 4), after GB 38031-2020's thermal-runaway criteria.

    a) a cell ``voltage_drop_fraction`` below the median cell; b) a probe at or above
    ``max_operating_temperature``; c) the hottest probe rising ≥ ``rise_rate`` °C/s for ``rise_seconds``.
    GB 38031 declares runaway on (a or b) and c; the T-Box sees probes that average several cells and lag,
    so ``a and b`` also counts (a collapsed cell in a pack above its operating limit: a vented cell).
    """

    voltage_drop_fraction: float = 0.25
    max_operating_temperature: float = 60.0
    rise_rate: float = 1.0
    rise_seconds: float = 3.0


@dataclass(frozen=True)
class AlarmConfig:
    """Thresholds of every rule (``rules``: flag -> Rule; default: the NMC preset) and shared parameters.

    ``cell_count``: series cells for the pack over/under-voltage rules when the snapshot carries no cells;
    ``charge_current``: A into the pack (negative current) that counts as "charging current flows";
    ``soc_jump_max_gap``: s, consecutive SOC samples further apart are not compared;
    ``soc_jump_hold``: s a SOC jump keeps its flag (≥ the normal report period so it is reported).
    """

    rules: Mapping[GeneralAlarmFlag, Rule] = field(default_factory=lambda: _rules(_NMC))
    cell_count: int | None = None
    charge_current: float = 5.0
    soc_jump_max_gap: float = 10.0
    soc_jump_hold: float = 30.0
    thermal: ThermalEventConfig = field(default_factory=ThermalEventConfig)

    def __post_init__(self) -> None:
        for flag, rule in self.rules.items():
            key = f"alarms.{_flag_name(flag)}"
            direction = _DIRECTION.get(flag)
            if rule.thresholds and direction is None:
                raise ConfigError("this flag has no measured input; only fault_level applies", key=key)
            for th in rule.thresholds:
                if not 1 <= th.level <= 4:
                    raise ConfigError(f"level {th.level} outside 1..4", key=key)
                if direction is Direction.HIGH and th.clear > th.set:
                    raise ConfigError(f"clear {th.clear} above set {th.set}", key=key)
                if direction is Direction.LOW and th.clear < th.set:
                    raise ConfigError(f"clear {th.clear} below set {th.set}", key=key)
            d = rule.debounce
            if d.set_samples < 1 or d.clear_samples < 1 or d.set_seconds < 0 or d.clear_seconds < 0:
                raise ConfigError("debounce needs ≥ 1 sample and ≥ 0 s", key=key + ".debounce")

    @classmethod
    def nmc(cls, **overrides: object) -> AlarmConfig:
        """Defaults for an NMC/graphite pack (docs/alarms.md gives each value's source)."""
        return cls(rules=_rules(_NMC), **overrides)  # type: ignore[arg-type]

    @classmethod
    def lfp(cls, **overrides: object) -> AlarmConfig:
        """Defaults for an LFP/graphite pack (cell voltage limits differ; the rest as NMC)."""
        return cls(rules=_rules(_LFP), **overrides)  # type: ignore[arg-type]

    def with_rule(self, flag: GeneralAlarmFlag, rule: Rule) -> AlarmConfig:
        """A copy with one rule replaced."""
        rules = dict(self.rules)
        rules[flag] = rule
        return replace(self, rules=MappingProxyType(rules))


@dataclass(frozen=True)
class AlarmState:
    """The alarm decision after one sample.

    ``levels`` holds every set flag (single bit) and its level; ``max_level`` is the highest of them
    (NONE when no flag is set). ``fault_point`` is the time of the first sample of the current episode
    whose highest level reached 3 or more (None while below 3).
    """

    max_level: AlarmLevel = AlarmLevel.NONE
    flags: GeneralAlarmFlag = NO_FLAGS
    levels: Mapping[GeneralAlarmFlag, AlarmLevel] = field(default_factory=lambda: MappingProxyType({}))
    ress_faults: tuple[int, ...] = ()
    motor_faults: tuple[int, ...] = ()
    engine_faults: tuple[int, ...] = ()
    other_faults: tuple[int, ...] = ()
    fault_point: datetime | None = None


NO_ALARM: Final = AlarmState()


# =========================================================================== defaults


def _t(level: AlarmLevel, set_: float, clear: float) -> Threshold:
    return Threshold(level, set_, clear)


def _fault_only(level: AlarmLevel) -> Rule:
    return Rule(fault_level=level)


_QUICK: Final = Debounce(set_samples=1, clear_samples=3)

#: NMC defaults; the values and their sources are documented in docs/alarms.md
_NMC: Final[dict[GeneralAlarmFlag, Rule]] = {
    F.TEMPERATURE_DIFFERENCE: Rule((_t(L2, 8, 6), _t(L3, 15, 12))),
    F.BATTERY_HIGH_TEMPERATURE: Rule((_t(L2, 55, 50), _t(L3, 60, 55))),
    F.STORAGE_OVERVOLTAGE: Rule((_t(L2, 4.23, 4.21), _t(L3, 4.25, 4.22))),
    F.STORAGE_UNDERVOLTAGE: Rule((_t(L2, 3.00, 3.10), _t(L3, 2.50, 2.70))),
    F.LOW_SOC: Rule((_t(L1, 10, 12), _t(L2, 5, 7)), fault_level=L1),
    F.CELL_OVERVOLTAGE: Rule((_t(L2, 4.25, 4.22), _t(L3, 4.35, 4.30))),
    F.CELL_UNDERVOLTAGE: Rule((_t(L2, 2.80, 2.95), _t(L3, 2.50, 2.70))),
    F.HIGH_SOC: Rule((_t(L1, 1, 0.5),), fault_level=L1),
    F.SOC_JUMP: Rule((_t(L2, 5, 5),), debounce=Debounce(set_samples=1, clear_samples=1)),
    F.STORAGE_MISMATCH: _fault_only(L2),
    F.CELL_POOR_CONSISTENCY: Rule((_t(L1, 0.30, 0.25), _t(L2, 0.50, 0.45)), fault_level=L1),
    F.INSULATION: Rule((_t(L2, 500, 550), _t(L3, 100, 120)), fault_level=L3),
    F.DCDC_TEMPERATURE: Rule((_t(L1, 80, 75), _t(L2, 85, 80))),
    F.BRAKE_SYSTEM: _fault_only(L2),
    F.DCDC_STATE: Rule((_t(L2, 1, 0.5),)),
    F.MOTOR_CONTROLLER_TEMPERATURE: Rule((_t(L1, 80, 75), _t(L2, 85, 80))),
    F.HV_INTERLOCK: Rule((_t(L3, 1, 0.5),), debounce=_QUICK, fault_level=L3),
    F.MOTOR_TEMPERATURE: Rule((_t(L1, 140, 135), _t(L2, 150, 145))),
    F.STORAGE_OVERCHARGE: Rule((_t(L3, 1, 0.5),), fault_level=L3),
    F.MOTOR_OVERSPEED: _fault_only(L2),
    F.MOTOR_OVERCURRENT: _fault_only(L2),
    F.SUPERCAP_OVERTEMPERATURE: _fault_only(L2),
    F.SUPERCAP_OVERVOLTAGE: _fault_only(L2),
    F.THERMAL_EVENT: Rule(
        (_t(L4, 1, 0.5),), debounce=Debounce(set_samples=1, clear_samples=60), fault_level=L4
    ),
    F.HYDROGEN_LEAK: _fault_only(L3),
    F.H2_PRESSURE_ABNORMAL: _fault_only(L2),
    F.H2_TEMPERATURE_ABNORMAL: _fault_only(L2),
    F.STACK_OVERTEMPERATURE: _fault_only(L2),
}

_LFP: Final[dict[GeneralAlarmFlag, Rule]] = {
    **_NMC,
    F.STORAGE_OVERVOLTAGE: Rule((_t(L2, 3.65, 3.60), _t(L3, 3.70, 3.65))),
    F.STORAGE_UNDERVOLTAGE: Rule((_t(L2, 2.70, 2.85), _t(L3, 2.30, 2.50))),
    F.CELL_OVERVOLTAGE: Rule((_t(L2, 3.70, 3.65), _t(L3, 3.80, 3.75))),
    F.CELL_UNDERVOLTAGE: Rule((_t(L2, 2.50, 2.70), _t(L3, 2.00, 2.30))),
    F.CELL_POOR_CONSISTENCY: Rule((_t(L1, 0.20, 0.15), _t(L2, 0.40, 0.35)), fault_level=L1),
}


def _rules(base: Mapping[GeneralAlarmFlag, Rule]) -> Mapping[GeneralAlarmFlag, Rule]:
    return MappingProxyType(dict(base))


def _flag_name(flag: GeneralAlarmFlag) -> str:
    return (flag.name or str(int(flag))).lower()


# =========================================================================== metrics

Metric = float | Special | None  # None = not mapped; Special.INVALID = stale


@dataclass(frozen=True)
class _Reading:
    value: Metric
    complete: bool = True  # False: computed over the fresh part of an array with stale entries


_NONE: Final = _Reading(None)
_STALE: Final = _Reading(Special.INVALID)


def _num(v: object) -> float | Special | None:
    """A snapshot value as float, INVALID for stale/abnormal, None when unmapped."""
    if v is None:
        return None
    if isinstance(v, Special):
        return Special.INVALID
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return Special.INVALID  # NaN/inf or an unexpected type: treated as stale


def _values(items: Iterable[float | Special]) -> tuple[list[float], bool]:
    """(fresh finite numbers, whether every entry was one)."""
    entries = tuple(items)
    fresh = [float(x) for x in entries if not isinstance(x, Special) and math.isfinite(x)]
    return fresh, len(fresh) == len(entries)


def _cells(s: Snapshot) -> tuple[list[float], bool, int]:
    fresh: list[float] = []
    complete = True
    total = 0
    for sub in s.subsystems:
        vals, ok = _values(sub.cell_voltages)
        fresh += vals
        complete &= ok
        total += len(sub.cell_voltages)
    return fresh, complete, total


def _probes(s: Snapshot) -> tuple[list[float], bool, int]:
    fresh: list[float] = []
    complete = True
    total = 0
    for sub in s.subsystems:
        vals, ok = _values(sub.temperatures)
        fresh += vals
        complete &= ok
        total += len(sub.temperatures)
    return fresh, complete, total


def _extreme(s: Snapshot, key: str) -> _Reading:
    v = _num(s.extremes.get(key))
    return _NONE if v is None else _Reading(v)


def _agg(values: list[float], complete: bool, total: int, fn: str, s: Snapshot, fallback: str) -> _Reading:
    if total == 0:
        return _extreme(s, fallback)
    if not values:
        return _STALE
    return _Reading(max(values) if fn == "max" else min(values), complete)


class AlarmEngine:
    """Stateful alarm evaluation: ``update(snapshot) -> AlarmState``, one call per sample, in time order."""

    def __init__(self, config: AlarmConfig | None = None) -> None:
        self.config = config or AlarmConfig.nmc()
        self._measured: dict[GeneralAlarmFlag, AlarmLevel] = {}
        self._fault: dict[GeneralAlarmFlag, bool] = {}
        self._run: dict[GeneralAlarmFlag, tuple[int, int, datetime, AlarmLevel]] = {}  # dir, n, t0, cand
        self._prev_soc: tuple[datetime, float] | None = None
        self._last_jump: tuple[datetime, float] | None = None
        self._rise_since: datetime | None = None
        self._prev_tmax: tuple[datetime, float] | None = None
        self._fault_point: datetime | None = None
        self._state = NO_ALARM

    @property
    def state(self) -> AlarmState:
        """The last decision."""
        return self._state

    # ------------------------------------------------------------------ metrics

    def _metrics(self, s: Snapshot) -> dict[GeneralAlarmFlag, _Reading]:
        cfg = self.config
        cells, cells_ok, n_cells = _cells(s)
        probes, probes_ok, n_probes = _probes(s)
        vmax = _agg(cells, cells_ok, n_cells, "max", s, "max_cell_voltage")
        vmin = _agg(cells, cells_ok, n_cells, "min", s, "min_cell_voltage")
        tmax = _agg(probes, probes_ok, n_probes, "max", s, "max_temperature")
        tmin = _agg(probes, probes_ok, n_probes, "min", s, "min_temperature")
        soc = _num(s.value("soc"))
        current = _num(s.value("total_current"))
        voltage = _num(s.value("total_voltage"))

        m: dict[GeneralAlarmFlag, _Reading] = {}
        m[F.TEMPERATURE_DIFFERENCE] = _diff(tmax, tmin)
        m[F.BATTERY_HIGH_TEMPERATURE] = tmax
        m[F.CELL_OVERVOLTAGE] = vmax
        m[F.CELL_UNDERVOLTAGE] = vmin
        m[F.CELL_POOR_CONSISTENCY] = _diff(vmax, vmin)
        n = n_cells or cfg.cell_count
        per_cell = _NONE if voltage is None or not n else _Reading(
            voltage if isinstance(voltage, Special) else voltage / n
        )
        m[F.STORAGE_OVERVOLTAGE] = per_cell
        m[F.STORAGE_UNDERVOLTAGE] = per_cell
        m[F.LOW_SOC] = _Reading(soc)
        charging = self._charging(s, current)
        m[F.HIGH_SOC] = self._high_soc(soc, charging)
        m[F.STORAGE_OVERCHARGE] = self._overcharge(soc, charging, vmax)
        m[F.SOC_JUMP] = self._soc_jump(s.time, soc)
        m[F.INSULATION] = _insulation(_num(s.value("insulation_resistance")), voltage)
        m[F.DCDC_TEMPERATURE] = _Reading(_num(s.value("dcdc_temperature")))
        m[F.DCDC_STATE] = _dcdc(s)
        m[F.MOTOR_CONTROLLER_TEMPERATURE] = _motor_max(s, "controller_temperature")
        m[F.MOTOR_TEMPERATURE] = _motor_max(s, "temperature")
        hvil = _num(s.value("hv_interlock_closed"))
        m[F.HV_INTERLOCK] = _Reading(hvil if hvil is None or isinstance(hvil, Special) else 1.0 - hvil)
        m[F.THERMAL_EVENT] = self._thermal(s.time, cells, vmin, tmax)
        return m

    def _charging(self, s: Snapshot, current: float | Special | None) -> bool | None:
        """True when the vehicle charges (``charging_state``) and charging current flows into the pack
        (None: unknown). Without a charging state the current alone decides (regeneration counts)."""
        state = s.value("charging_state")
        flowing = current <= -self.config.charge_current if isinstance(current, float) else None
        if state is None:
            return flowing
        if isinstance(state, Special):
            return None
        plugged = state in (ChargingState.PARKED_CHARGING, ChargingState.DRIVING_CHARGING)
        if not plugged:
            return False
        if isinstance(current, Special):
            return None  # stale current: unknown
        return flowing is not False  # unmapped current: the charging state decides

    @staticmethod
    def _high_soc(soc: float | Special | None, charging: bool | None) -> _Reading:
        """1 when SOC is above 100 %, or at 100 % while charging current still flows."""
        if soc is None or isinstance(soc, Special):
            return _Reading(soc)
        if soc > 100.0:
            return _Reading(1.0)
        if soc >= 100.0 and charging is None:
            return _STALE
        return _Reading(1.0 if soc >= 100.0 and charging else 0.0)

    def _overcharge(self, soc: float | Special | None, charging: bool | None, vmax: _Reading) -> _Reading:
        """1 while charging current flows into a full pack (SOC ≥ 100 %) with a cell at over-voltage."""
        rule = self.config.rules.get(F.CELL_OVERVOLTAGE)
        limit = min((t.set for t in rule.thresholds), default=None) if rule else None
        if soc is None or vmax.value is None or limit is None:
            return _NONE
        if isinstance(soc, Special) or isinstance(vmax.value, Special) or charging is None:
            return _STALE
        hit = charging and soc >= 100.0 and vmax.value >= limit
        return _Reading(1.0 if hit else 0.0, vmax.complete or hit)

    def _soc_jump(self, now: datetime, soc: float | Special | None) -> _Reading:
        if soc is None:
            return _NONE
        if isinstance(soc, Special):
            return _STALE
        cfg = self.config
        prev = self._prev_soc
        self._prev_soc = (now, soc)
        if prev is not None and 0 < (now - prev[0]).total_seconds() <= cfg.soc_jump_max_gap:
            step = abs(soc - prev[1])
            if step > 0 and (self._last_jump is None or step >= self._jump_size(now)):
                self._last_jump = (now, step)
        return _Reading(self._jump_size(now))

    def _jump_size(self, now: datetime) -> float:
        if self._last_jump is None:
            return 0.0
        at, size = self._last_jump
        return size if (now - at).total_seconds() < self.config.soc_jump_hold else 0.0

    def _thermal(self, now: datetime, cells: list[float], vmin: _Reading, tmax: _Reading) -> _Reading:
        cfg = self.config.thermal
        if not isinstance(tmax.value, float):
            self._prev_tmax = None
            self._rise_since = None
            return _Reading(tmax.value)
        t = tmax.value
        rising = False
        if self._prev_tmax is not None:
            dt = (now - self._prev_tmax[0]).total_seconds()
            if dt > 0 and (t - self._prev_tmax[1]) / dt >= cfg.rise_rate:
                rising = True
        self._prev_tmax = (now, t)
        if rising:
            self._rise_since = self._rise_since or now
        else:
            self._rise_since = None
        a = False
        if len(cells) >= 2 and isinstance(vmin.value, float):
            median = statistics.median(cells)
            a = median > 0 and vmin.value <= median * (1.0 - cfg.voltage_drop_fraction)
        b = t >= cfg.max_operating_temperature
        c = self._rise_since is not None and (now - self._rise_since).total_seconds() >= cfg.rise_seconds
        hit = (a and (b or c)) or (b and c)
        return _Reading(1.0 if hit else 0.0)

    # ------------------------------------------------------------------ decisions

    def update(self, snapshot: Snapshot) -> AlarmState:
        """Evaluate one sample and return the new decision."""
        readings = self._metrics(snapshot)
        levels: dict[GeneralAlarmFlag, AlarmLevel] = {}
        for flag, rule in self.config.rules.items():
            if not rule.enabled:
                continue
            measured = self._step(flag, rule, readings.get(flag, _NONE), snapshot.time)
            fault = self._fault_input(flag, snapshot)
            level = max(measured, rule.fault_level if fault else AlarmLevel.NONE)
            if level:
                levels[flag] = AlarmLevel(level)
        flags = NO_FLAGS
        for flag in levels:
            flags |= flag
        top = AlarmLevel(max(levels.values(), default=AlarmLevel.NONE))
        if top >= L3:
            if self._fault_point is None:
                self._fault_point = snapshot.time
                log.info("alarm level %d at %s (flags 0x%08X)", top, snapshot.time.isoformat(), int(flags))
        else:
            self._fault_point = None
        codes = snapshot.fault_codes
        self._state = AlarmState(
            max_level=top,
            flags=flags,
            levels=MappingProxyType(levels),
            ress_faults=tuple(codes.get("ress", ())),
            motor_faults=tuple(codes.get("motor", ())),
            engine_faults=tuple(codes.get("engine", ())),
            other_faults=tuple(codes.get("other", ())),
            fault_point=self._fault_point,
        )
        return self._state

    def _fault_input(self, flag: GeneralAlarmFlag, s: Snapshot) -> bool:
        name = FAULT_INPUT_OF.get(flag)
        value = s.faults.get(name) if name else None
        if value is None:
            return False  # not mapped
        if isinstance(value, bool):
            self._fault[flag] = value
        return self._fault.get(flag, False)  # stale: the previous value holds

    def _step(self, flag: GeneralAlarmFlag, rule: Rule, r: _Reading, now: datetime) -> AlarmLevel:
        committed = self._measured.get(flag, AlarmLevel.NONE)
        if not rule.thresholds or r.value is None or isinstance(r.value, Special):
            return committed  # unmapped keeps NONE; stale holds the decision and the debounce run
        raw = _raw_level(_DIRECTION[flag], rule.thresholds, r.value, committed)
        if not r.complete:
            raw = max(raw, committed)
        if raw == committed:
            self._run.pop(flag, None)
            return committed
        direction = 1 if raw > committed else -1
        run = self._run.get(flag)
        if run is None or run[0] != direction:
            run = (direction, 0, now, raw)
        n = run[1] + 1
        cand = AlarmLevel(min(run[3], raw) if direction > 0 else max(run[3], raw))
        run = (direction, n, run[2], cand)
        d = rule.debounce
        if direction > 0:
            samples, seconds = d.set_samples, d.set_seconds
        else:
            samples, seconds = d.clear_samples, d.clear_seconds
        if n >= samples and (now - run[2]).total_seconds() >= seconds:
            self._run.pop(flag, None)
            self._measured[flag] = cand
            return cand
        self._run[flag] = run
        return committed


def _raw_level(
    direction: Direction, thresholds: tuple[Threshold, ...], value: float, committed: AlarmLevel
) -> AlarmLevel:
    level = AlarmLevel.NONE
    for th in thresholds:
        if direction is Direction.HIGH:
            on = value >= th.set or (committed >= th.level and value >= th.clear)
        else:
            on = value <= th.set or (committed >= th.level and value <= th.clear)
        if on and th.level > level:
            level = th.level
    return level


def _diff(hi: _Reading, lo: _Reading) -> _Reading:
    if hi.value is None or lo.value is None:
        return _NONE
    if isinstance(hi.value, Special) or isinstance(lo.value, Special):
        return _STALE
    return _Reading(hi.value - lo.value, hi.complete and lo.complete)


def _insulation(kohm: float | Special | None, volts: float | Special | None) -> _Reading:
    """Insulation resistance per volt of the pack (Ω/V), GB 18384's criterion."""
    if kohm is None or volts is None:
        return _NONE
    if isinstance(kohm, Special) or isinstance(volts, Special):
        return _STALE
    if volts < 1.0:
        return _STALE  # no pack voltage measured: Ω/V undefined, hold
    return _Reading(kohm * 1000.0 / volts)


def _dcdc(s: Snapshot) -> _Reading:
    """1 when the DC-DC is disconnected although high voltage is up (or, without hv_on, the vehicle runs)."""
    state = s.value("dcdc_state")
    if state is None:
        return _NONE
    if isinstance(state, Special):
        return _STALE
    hv = s.value("hv_on")
    if hv is None:
        vs = s.value("vehicle_state")
        if vs is None or isinstance(vs, Special):
            return _NONE if vs is None else _STALE
        up = vs == VehicleState.STARTED
    elif isinstance(hv, Special):
        return _STALE
    else:
        up = bool(hv)
    return _Reading(1.0 if up and state == DcDcState.DISCONNECTED else 0.0)


def _motor_max(s: Snapshot, key: str) -> _Reading:
    if not s.motors:
        return _NONE
    vals: list[float] = []
    complete = True
    mapped = False
    for m in s.motors:
        v = m.values.get(key)
        if v is None:
            continue
        mapped = True
        if isinstance(v, Special) or not isinstance(v, (int, float)) or not math.isfinite(v):
            complete = False
        else:
            vals.append(float(v))
    if not mapped:
        return _NONE
    if not vals:
        return _STALE
    return _Reading(max(vals), complete)


_DIRECTION: Final = MappingProxyType(
    {
        F.TEMPERATURE_DIFFERENCE: Direction.HIGH,
        F.BATTERY_HIGH_TEMPERATURE: Direction.HIGH,
        F.STORAGE_OVERVOLTAGE: Direction.HIGH,
        F.STORAGE_UNDERVOLTAGE: Direction.LOW,
        F.LOW_SOC: Direction.LOW,
        F.CELL_OVERVOLTAGE: Direction.HIGH,
        F.CELL_UNDERVOLTAGE: Direction.LOW,
        F.HIGH_SOC: Direction.HIGH,
        F.SOC_JUMP: Direction.HIGH,
        F.CELL_POOR_CONSISTENCY: Direction.HIGH,
        F.INSULATION: Direction.LOW,
        F.DCDC_TEMPERATURE: Direction.HIGH,
        F.DCDC_STATE: Direction.HIGH,
        F.MOTOR_CONTROLLER_TEMPERATURE: Direction.HIGH,
        F.HV_INTERLOCK: Direction.HIGH,
        F.MOTOR_TEMPERATURE: Direction.HIGH,
        F.STORAGE_OVERCHARGE: Direction.HIGH,
        F.THERMAL_EVENT: Direction.HIGH,
    }
)

__all__ = [
    "FLAGS_2016",
    "FLAGS_2025",
    "NO_ALARM",
    "NO_FLAGS",
    "AlarmConfig",
    "AlarmEngine",
    "AlarmState",
    "Debounce",
    "Direction",
    "Rule",
    "ThermalEventConfig",
    "Threshold",
]
