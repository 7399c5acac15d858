"""The sampler: frame cache + compiled mapping + ``now`` -> ``Snapshot``.

At each tick (≥ 1 Hz) ``Sampler.sample(now)`` reads every (CAN id, mux value) the mapping needs from
the frame cache once, drops frames that are missing, stale (``now - timestamp`` beyond the field's
staleness), too short or failing their declared counter/checksum check, decodes the rest with the
precompiled decoders (only the mapped signals) and applies each field's transform. A field whose
frame is unusable, or whose signal carries an SNA value, is ``Special.INVALID`` — never its last
value. ``now`` is on the frames' clock (python-can timestamps: Unix seconds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from agent.canbus.mapping import (
    ArrayRule,
    CodeSource,
    CompiledMapping,
    Decoded,
    Expr,
    Input,
    Rule,
)
from agent.protocol.model import Special
from agent.report.snapshot import MotorSnapshot, Snapshot, SubsystemSnapshot

log = logging.getLogger(__name__)

INVALID: Final = Special.INVALID


class FrameSource(Protocol):
    """The frame cache as the sampler sees it (``agent.canbus.cache.FrameCache``): ``get`` returns an
    object with ``data``, ``timestamp`` and ``previous`` (``CachedFrame``), or None."""

    def get(self, arbitration_id: int, mux: int | None = None) -> Any: ...


class Sampler:
    """Builds snapshots from a frame cache according to a compiled mapping.

    ``counters`` counts, per message name, the frames found unusable at sampling time: ``stale``,
    ``check`` (counter/checksum failed) and ``short`` (a mapped signal beyond the payload).
    """

    def __init__(self, mapping: CompiledMapping, cache: FrameSource) -> None:
        self.mapping = mapping
        self.cache = cache
        self.counters: dict[str, dict[str, int]] = {}
        self._codes: dict[str, dict[int, int]] = {}
        self._logged: set[tuple[str, str]] = set()
        self._vals: list[Decoded | None] = []
        self._ts: list[float] = []
        self._now = 0.0
        self._seen: list[bool] = []

    # -- reading

    def _bad(self, message: str, reason: str) -> None:
        per = self.counters.setdefault(message, {})
        per[reason] = per.get(reason, 0) + 1
        if (message, reason) not in self._logged:
            self._logged.add((message, reason))
            log.warning("%s: frame unusable (%s); its fields are invalid while it lasts", message, reason)

    def _load(self, now: float) -> list[bool]:
        """Fetch, check and decode every group once; returns which groups have ever been received."""
        vals: list[Decoded | None] = []
        ts: list[float] = []
        seen: list[bool] = []
        get = self.cache.get
        for g in self.mapping.groups:
            frame = get(g.frame_id, g.mux)
            seen.append(frame is not None)
            if frame is None:
                vals.append(None)
                ts.append(-math.inf)
                continue
            ts.append(frame.timestamp)
            if now - frame.timestamp > g.max_stale:
                vals.append(None)
                self._bad(g.message, "stale")
                continue
            data = frame.data
            if g.check is not None and not g.check.ok(data, frame.previous if g.mux is None else None):
                vals.append(None)
                self._bad(g.message, "check")
                continue
            decoded = g.decoder(data)
            if len(decoded) < len(g.signals):
                self._bad(g.message, "short")
            vals.append(decoded)
        self._vals, self._ts, self._now, self._seen = vals, ts, now, seen
        return seen

    def _read(self, inp: Input) -> float | int | Special:
        decoded = self._vals[inp.group]
        if decoded is None or self._now - self._ts[inp.group] > inp.stale:
            return INVALID
        x = decoded.get(inp.signal)
        if x is None or (isinstance(x, float) and not math.isfinite(x)):
            return INVALID
        if inp.sna and inp.raw(x) in inp.sna:
            return INVALID
        return x

    def _expr(self, expr: Expr) -> bool | Special:
        """OR of ANDs with three-valued logic: a decided term wins over an invalid one.

        A term reading a frame never received (e.g. motor 2 of a one-motor vehicle) is left out; with
        every term left out the result is INVALID.
        """
        unknown_or = False
        present = False
        seen = self._seen
        for term in expr.terms:
            if not all(seen[a.input.group] for a in term):
                continue
            present = True
            result: bool | Special = True
            for atom in term:
                x = self._read(atom.input)
                if x is INVALID:
                    result = INVALID
                    continue
                assert not isinstance(x, Special)
                v: float | int = atom.input.raw(x) if atom.on_raw else x
                if atom.mask is not None:
                    v = int(v) & atom.mask
                op = atom.op
                if op is None:
                    ok = v != 0
                elif op == "==":
                    ok = v == atom.value
                elif op == "!=":
                    ok = v != atom.value
                elif op == "<":
                    ok = v < atom.value
                elif op == "<=":
                    ok = v <= atom.value
                elif op == ">":
                    ok = v > atom.value
                else:
                    ok = v >= atom.value
                if not ok:
                    result = False
                    break
            if result is True:
                return True
            if result is INVALID:
                unknown_or = True
        return INVALID if unknown_or or not present else False

    def _rule(self, rule: Rule) -> Any:
        if rule.expr is not None:
            return self._expr(rule.expr)
        inp = rule.input
        if inp is None:
            return rule.const
        x = self._read(inp)
        if x is INVALID:
            return INVALID
        assert not isinstance(x, Special)
        if rule.table is not None:
            return rule.table.get(inp.raw(x), rule.unmapped)
        if rule.out is not None:
            try:
                return rule.out(inp.raw(x))
            except ValueError:
                return INVALID
        if rule.kind == "bool":
            return x != 0
        y = x * rule.scale + rule.offset if (rule.scale != 1 or rule.offset != 0) else x
        if rule.kind == "int":
            return round(y)
        return y

    def _array(self, arr: ArrayRule) -> tuple[float | Special, ...]:
        scale, offset = arr.scale, arr.offset
        out: list[float | Special] = []
        for inp in arr.inputs:
            x = self._read(inp)
            out.append(x if isinstance(x, Special) else x * scale + offset)
        return tuple(out)

    def _codes_of(self, sources: Sequence[CodeSource]) -> tuple[int, ...]:
        codes: list[int] = []
        for src in sources:
            x = self._read(src.input)
            if src.count is None or src.index is None:
                if not isinstance(x, Special):
                    code = src.input.raw(x)
                    if code and code not in codes:
                        codes.append(code)
                continue
            # a BMS that sends one of its N active codes per frame in turn: remember them by index
            memory = self._codes.setdefault(src.key, {})
            n, i = self._read(src.count), self._read(src.index)
            if isinstance(n, Special) or isinstance(i, Special) or isinstance(x, Special):
                memory.clear()
                continue
            count, index = round(n), round(i)
            for stale_index in [k for k in memory if k >= count]:
                del memory[stale_index]
            code = src.input.raw(x)
            if count and index < count and code:
                memory[index] = code
            codes.extend(c for _, c in sorted(memory.items()) if c not in codes)
        return tuple(codes)

    # -- the snapshot

    def sample(self, now: float, time: datetime | None = None) -> Snapshot:
        """The snapshot at ``now`` (frames' clock); ``time`` (UTC) defaults to ``now`` as a datetime."""
        m = self.mapping
        seen = self._load(now)
        rule = self._rule
        motors = []
        for motor in m.motors:
            if motor.optional and not any(seen[g] for g in motor.groups):
                continue
            values = {r.key.rsplit(".", 1)[1]: rule(r) for r in motor.rules}
            motors.append(MotorSnapshot(motor.number, values))
        subsystems = tuple(
            SubsystemSnapshot(
                number=s.number,
                cell_voltages=self._array(s.cells),
                temperatures=self._array(s.temperatures),
                voltage=rule(s.voltage) if s.voltage is not None else None,
                current=rule(s.current) if s.current is not None else None,
            )
            for s in m.subsystems
        )
        return Snapshot(
            time=time if time is not None else datetime.fromtimestamp(now, UTC),
            vehicle={_leaf(r): rule(r) for r in m.vehicle},
            motors=tuple(motors),
            subsystems=subsystems,
            extremes={_leaf(r): rule(r) for r in m.extremes},
            faults={_leaf(r): rule(r) for r in m.faults},
            fault_codes={name: self._codes_of(src) for name, src in m.fault_codes.items()},
            engine={_leaf(r): rule(r) for r in m.engine} if m.engine is not None else None,
        )


def _leaf(rule: Rule) -> str:
    return rule.key.rsplit(".", 1)[1]


__all__ = ["FrameSource", "Sampler"]
