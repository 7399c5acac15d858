"""The platform's strict value test without encoding (sim/platform/strict.py) against the strict encoder.

``block_ok`` True must mean the strict encoder accepts the block; ``checks.check_values`` must report
exactly what re-encoding every block with the strict encoder reports (same fields, same reasons)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import codec
from agent.protocol.codec import CodecOptions, encode_info_blocks
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    CellVoltages,
    CustomBlock,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Frame,
    FuelCell,
    FuelCellStacks,
    Location,
    Location2025,
    ParallelUnitVoltages,
    RealtimeReport,
    Special,
    Supercapacitor,
    VehicleData,
    VehicleData2025,
)
from sim.platform import checks
from sim.platform.checks import Violation
from sim.platform.strict import block_ok
from tests.bench.test_codec_bench import report_2016, report_2025
from tests.protocol import strategies

STRICT = CodecOptions(strict=True)
E16, E25 = Edition.E2016, Edition.E2025


def encoder_accepts(edition: Edition, block: object) -> bool:
    try:
        encode_info_blocks(edition, [block], options=STRICT)
    except (ProtocolError, ValueError, TypeError, OverflowError):
        return False
    return True


def reference_strict(edition: Edition, report: RealtimeReport) -> list[Violation]:
    """The strict part of check_values as it was: every block re-encoded with the strict encoder."""
    try:
        encode_info_blocks(edition, report.blocks, options=STRICT)
    except (ProtocolError, ValueError, TypeError, OverflowError):
        pass
    else:
        return []
    out: list[Violation] = []
    for block in report.blocks:
        try:
            encode_info_blocks(edition, [block], options=STRICT)
        except ProtocolError as exc:
            out.append(Violation("out_of_range", f"{exc.field or type(block).__name__}: {exc.reason}"))
        except (ValueError, TypeError, OverflowError) as exc:
            out.append(Violation("out_of_range", f"{type(block).__name__}: {exc}"))
    return out


def decoded(edition: Edition, report: RealtimeReport) -> RealtimeReport:
    """What the platform checks: the report after a trip over the wire."""
    data = codec.encode_frame(Frame(edition, 0x02, 0xFE, "LTBOXTEST00000001", 0x01, report))
    body = codec.decode_frame(data).body
    assert isinstance(body, RealtimeReport)
    return body


def _same_verdicts(edition: Edition, report: RealtimeReport) -> None:
    for block in report.blocks:
        if block_ok(edition, block):
            assert encoder_accepts(edition, block), block
    assert checks.strict_violations(edition, report) == reference_strict(edition, report)
    assert checks.check_values(edition, report) == (checks.check_sentinel_widths(edition, report)
                                                    + reference_strict(edition, report))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from([E16, E25]).flatmap(lambda e: st.tuples(st.just(e), strategies.realtime(e))))
def test_generated_reports_same_verdict_as_the_strict_encoder(case: tuple[Edition, RealtimeReport]) -> None:
    """Reports from raw wire integers over the whole field widths: out-of-range values, undefined codes,
    sentinels, odd counts — as built and after a decode."""
    edition, report = case
    _same_verdicts(edition, report)
    _same_verdicts(edition, decoded(edition, report))


def test_typical_reports_take_the_fast_path() -> None:
    """A running EV's report passes without the encoder (else the fast path would be dead code)."""
    for edition, report in ((E16, report_2016()), (E25, report_2025())):
        for block in decoded(edition, report).blocks:
            if isinstance(block, CustomBlock | FuelCell | FuelCellStacks | Supercapacitor):
                continue  # no fast test (rare kinds): left to the encoder
            assert block_ok(edition, block), block


ODD: tuple[Any, ...] = (None, True, -1, 0, 1, 2, 3, 4, 31, 32, 100, 101, 250, 253, 254, 255, 256, 0xFFFD,
                        0xFFFE, 0xFFFF, 65531, 65532, 60001, 2**32, -1.5, 0.05, 0.1234567, 1e12, math.nan,
                        math.inf, -math.inf, 180.000001, -90.5, 90.000001, 3.6, "3", Special.ABNORMAL,
                        Special.INVALID, (), (1,), (1.5,), (-1,), (2**32,), (True,), (math.nan, 1.0),
                        (1.0, math.nan), (math.inf,), (1e308, 1e308), (60.0004,), (60.001,), (-0.0, 3.6),
                        (-40, 210), (-41,), (211,), (3.6, Special.ABNORMAL), (27, Special.INVALID), (27.0,))


def _mutations(block: Any) -> list[Any]:
    """``block`` with each field (and each field of its nested records) replaced by each odd value."""
    out: list[Any] = []
    if not dataclasses.is_dataclass(block):
        return out
    for f in dataclasses.fields(block):
        value = getattr(block, f.name)
        for odd in ODD:
            out.append(dataclasses.replace(block, **{f.name: odd}))  # type: ignore[misc]
        if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for inner in _mutations(value[0]):
                out.append(dataclasses.replace(block, **{f.name: (inner, *value[1:])}))  # type: ignore[misc]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for inner in _mutations(value):
                out.append(dataclasses.replace(block, **{f.name: inner}))  # type: ignore[misc]
    return out


def test_odd_values_in_every_field_never_pass_what_the_encoder_refuses() -> None:
    """Values no decoder produces (None, bools, NaN, off-grid floats, text) in every field of the
    typical reports' blocks: a fast pass always means the strict encoder accepts the block too."""
    checked = passed = 0
    for edition, report in ((E16, report_2016()), (E25, report_2025())):
        for block in report.blocks:
            for mutant in _mutations(block):
                checked += 1
                if block_ok(edition, mutant):
                    passed += 1
                    assert encoder_accepts(edition, mutant), mutant
                rep = dataclasses.replace(report, blocks=(mutant,))
                assert checks.strict_violations(edition, rep) == reference_strict(edition, rep)
    assert checked > 1000 and passed > 100  # both outcomes were exercised


# --------------------------------------------------------------------------- sentinel widths


def reference_sentinel_widths(edition: Edition, report: RealtimeReport) -> list[Violation]:
    """check_sentinel_widths as it was (isinstance chains, a list of every offset-coded field)."""
    out: list[Violation] = []
    narrow_word = {0xFE: "0x00FE", 0xFF: "0x00FF"}
    narrow_dword = {0xFE: "0x000000FE", 0xFF: "0x000000FF", 0xFFFE: "0x0000FFFE", 0xFFFF: "0x0000FFFF"}
    for b in report.blocks:
        if isinstance(b, Location | Location2025):
            for name, value in (("longitude", b.longitude), ("latitude", b.latitude)):
                if not isinstance(value, Special) and round(abs(value) * 1e6) in narrow_dword:
                    out.append(Violation("sentinel_width", f"location.{name} is "
                                         f"{narrow_dword[round(abs(value) * 1e6)]}: a narrower sentinel in a "
                                         "DWORD (want 0xFFFFFFFE/F)"))
    current = 3000.0 if edition == Edition.E2025 else 1000.0
    fields: list[tuple[str, int | None, str, Any, float, float, bool]] = []
    for b in report.blocks:
        if isinstance(b, VehicleData | VehicleData2025):
            fields.append(("vehicle", None, "total_current", b.total_current, current, 0.1, False))
        elif isinstance(b, CellVoltages) and not isinstance(b.subsystems, Special):
            fields += [("voltages", i, "current", r.current, current, 0.1, False)
                       for i, r in enumerate(b.subsystems)]
        elif isinstance(b, ParallelUnitVoltages) and not isinstance(b.packs, Special):
            fields += [("packs", i, "current", p.current, current, 0.1, False) for i, p in enumerate(b.packs)]
        elif isinstance(b, DriveMotors) and not isinstance(b.motors, Special):
            for i, m in enumerate(b.motors):
                fields += [("motors", i, "speed", m.speed, 20000.0, 1.0, False),
                           ("motors", i, "torque", m.torque, 2000.0, 0.1, False),
                           ("motors", i, "controller_current", m.controller_current, 1000.0, 0.1, False)]
        elif isinstance(b, DriveMotors2025) and not isinstance(b.motors, Special):
            for i, m2 in enumerate(b.motors):
                fields += [("motors", i, "speed", m2.speed, 32000.0, 1.0, False),
                           ("motors", i, "torque", m2.torque, 20000.0, 0.1, True)]
    for block, index, attr, reading, offset, scale, dword in fields:
        if not isinstance(reading, int | float) or reading > 0x10000 * scale - offset:
            continue
        raw = round((reading + offset) / scale)
        narrow = narrow_dword if dword else narrow_word
        if raw in narrow:
            name = f"{block}.{attr}" if index is None else f"{block}[{index}].{attr}"
            want = "0xFFFFFFFE/F" if dword else "0xFFFE/0xFFFF"
            kind = "narrower sentinel in a DWORD" if dword else "BYTE sentinel in a WORD"
            out.append(Violation("sentinel_width", f"{name} is {narrow[raw]}: a {kind} (want {want})"))
    return out


def _narrow(width: int, off: int, div: int) -> st.SearchStrategy[float]:
    """Readings whose raw value is a narrow sentinel (or next to one) — the values the test flags."""
    raws = [0xFD, 0xFE, 0xFF, 0x100, 0xFFFD, 0xFFFE, 0xFFFF, 0x10000][: 8 if width == 4 else 4]
    return st.sampled_from(raws).map(lambda r: (r - off) / div)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from([E16, E25]).flatmap(lambda e: st.tuples(st.just(e), strategies.realtime(e))),
       _narrow(2, 10000, 10), _narrow(2, 20000, 1))
def test_sentinel_widths_as_before(case: tuple[Edition, RealtimeReport], current: float,
                                   speed: float) -> None:
    edition, report = case
    blocks = list(report.blocks)
    for i, b in enumerate(blocks):  # some readings right on the narrow sentinels
        if isinstance(b, VehicleData | VehicleData2025):
            blocks[i] = dataclasses.replace(b, total_current=current)
        elif isinstance(b, DriveMotors) and isinstance(b.motors, tuple) and b.motors:
            blocks[i] = DriveMotors((dataclasses.replace(b.motors[0], speed=int(speed)), *b.motors[1:]))
    report = dataclasses.replace(report, blocks=tuple(blocks))
    assert checks.check_sentinel_widths(edition, report) == reference_sentinel_widths(edition, report)
