"""End to end: every physics fault scenario of the simulator produces its documented GB/T 32960 alarm
flags and level, and a level-3 fault's 30 s pre-alarm window leaves as reissue (0x03) records.

Each scenario runs in process (simulator frames → ``AgentPipeline.feed`` → encoded frames → decoded) until
its signature (``Scenario.signature``, the physics showing the fault) holds and every documented flag has
been raised (at most ``MAX_WAIT_S`` after the signature), plus ``GRACE_S`` for the debounce. By then the
highest level must be the documented one, and the decoded alarm blocks must say the same. Scenarios whose
fault takes long to develop run under ``-m soak``. Edition 2025 (the only one with level 4 and the
thermal-event flag).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config import load_config
from agent.pipeline import AgentPipeline, Emitted
from agent.protocol.codec import decode_frame
from agent.protocol.model import Alarm2025, Command, Edition, Frame
from agent.report.alarms import AlarmState
from agent.report.snapshot import Snapshot
from sim.bus import to_message
from sim.run import simulate_windows
from sim.scenarios import SCENARIOS, Scenario

from .e2e_support import START, Recording, _truth, block, compare, report_of, sim_seconds, write_config

log = logging.getLogger(__name__)

#: simulated seconds after the signature and the last documented flag: debounce (2-3 samples) and the
#: fault developing past the signature's threshold (insulation: ~13 s from 50 kΩ to 100 Ω/V at τ 20 s)
GRACE_S = 30.0
#: frames are evaluated a normal report period longer (a level-1/2 flag waits for the next record)
REPORT_SLACK_S = 11.0
#: the documented flags must all be raised within this many seconds after the signature holds
MAX_WAIT_S = 600.0
#: longest run before the signature must have shown (s)
CAP_S = 2400.0
#: scenarios whose signature shows within a few simulated minutes run by default; the rest are soak
FAST = {
    "cell-over-voltage", "soc-jump", "insulation-fault", "hvil-open", "dcdc-fault", "brake-fault",
    "gnss-loss",
}


@dataclass
class ScenarioRun:
    scenario: Scenario
    signature_at: float | None = None
    all_flags_at: float | None = None  # first sample where every documented flag had been raised
    samples: list[tuple[float, AlarmState]] = field(default_factory=list)
    emitted: list[Emitted] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    truth: Recording = field(default_factory=lambda: Recording(Path("-")))

    @property
    def until(self) -> float:
        """End of the evaluation: signature and all documented flags, plus the grace time."""
        assert self.signature_at is not None
        if self.all_flags_at is None:
            return self.signature_at + MAX_WAIT_S
        return max(self.signature_at, self.all_flags_at) + GRACE_S

    def flags_until(self, t: float) -> int:
        out = 0
        for ts, a in self.samples:
            if ts <= t:
                out |= int(a.flags)
        return out

    def level_until(self, t: float) -> int:
        return max((int(a.max_level) for ts, a in self.samples if ts <= t), default=0)


INCLUDE_SENT = "[report]\npre_fault_include_sent = true\n"


def run_scenario(name: str, tmp: Path, extra: str = "") -> ScenarioRun:
    sc = SCENARIOS[name]
    run = ScenarioRun(sc)
    settings = load_config(write_config(tmp, 2025, extra))

    expected = sum(1 << b for b in sc.flags)
    raised = 0

    def on_sample(s: Snapshot, a: AlarmState) -> None:
        nonlocal raised
        t = sim_seconds(s.time)
        run.samples.append((t, a))
        raised |= int(a.flags)
        if run.all_flags_at is None and raised & expected == expected:
            run.all_flags_at = t

    pipeline = AgentPipeline(settings, on_sample=on_sample)
    epoch = START.timestamp()
    profile = sc.default_profile if sc.needs == "charge" else "wltc3"
    prev = None
    for w in simulate_windows(None, profile, 1, CAP_S, name, start_utc=START):
        for f in w.frames:
            run.emitted += pipeline.feed(to_message(f, epoch, "can0"))
        run.truth.truths.append(_truth(w.state))
        if run.signature_at is None and sc.signature([prev, w.state] if prev is not None else [w.state]):
            run.signature_at = w.t1
        prev = w.state
        if run.signature_at is not None and w.t1 >= run.until + REPORT_SLACK_S:
            break
    run.emitted += pipeline.finish()
    run.frames = [decode_frame(e.frame) for e in run.emitted]
    return run


def _bits(flags: int) -> list[int]:
    return [b for b in range(32) if flags >> b & 1]


#: Where the simulator's documentation (sim/scenarios.py, docs/simulator-physics.md) and the alarm
#: engine's defaults (agent/report/alarms.py, docs/alarms.md) disagree; reported, not settled here.
#: strict: the test turns red as soon as one side is changed to agree.
DISAGREEMENTS = {
    "cell-over-voltage": "documents flag 10 (poor consistency), but the weak cell's overshoot leaves a "
    "spread of 0.14-0.16 V, below the 0.30 V of both the engine (level 1) and the simulated BMS",
    "pack-under-voltage": "documents level 3 at 3.00 V/cell; the engine (and the simulated BMS's own "
    "fault level) give level 2 there, level 3 only below 2.50 V/cell",
    "over-temperature": "documents level 3 at 55 °C; the engine gives level 2 at 55 °C, level 3 from "
    "60 °C (the simulated BMS says 3 at 55 °C)",
}


def _params() -> list[object]:
    out = []
    for name in SCENARIOS:
        marks = [] if name in FAST else [pytest.mark.soak]
        if name in DISAGREEMENTS:
            marks.append(pytest.mark.xfail(strict=True, reason=DISAGREEMENTS[name]))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _params())
def test_scenario_raises_its_documented_flags_and_level(name: str, tmp_path: Path) -> None:
    run = run_scenario(name, tmp_path)
    sc = run.scenario
    assert run.signature_at is not None, f"{name}: the simulator never showed the fault in {CAP_S} s"
    until = run.until
    seen = run.flags_until(until)
    level = run.level_until(until)
    expected = sum(1 << b for b in sc.flags)
    print(f"\n{name}: signature at {run.signature_at:.1f} s, documented flags all raised at "
          f"{run.all_flags_at} s; documented flags {sorted(sc.flags)} level {sc.level}; "
          f"raised by {until:.0f} s: flags {_bits(seen)} level {level}")
    missing = _bits(expected & ~seen)
    assert not missing, f"{name}: documented flags {missing} not raised (raised: {_bits(seen)})"
    assert level == sc.level, f"{name}: highest level {level}, documented {sc.level} (flags {_bits(seen)})"
    # what went on the wire says the same
    wire_flags = 0
    wire_level = 0
    for f in run.frames:
        alarm = block(report_of(f), Alarm2025)
        assert alarm is not None
        if sim_seconds(report_of(f).time) <= until + REPORT_SLACK_S:
            wire_flags |= int(alarm.general_flags)
            wire_level = max(wire_level, int(alarm.max_level))
    assert expected & ~wire_flags == 0, _bits(wire_flags)
    assert wire_level == sc.level
    if sc.level >= 3:
        check_pre_fault_window(run, include_sent=False)


def check_pre_fault_window(run: ScenarioRun, include_sent: bool = True) -> None:
    """The samples of the 30 s before the fault point were sent as reissue records (1 Hz, oldest first,
    before the fault point's own realtime record), with values matching the simulator."""
    fault = next(t for t, a in run.samples if int(a.max_level) >= 3)
    first = run.samples[0][0]
    window = [t for t, _ in run.samples if fault - 30.0 <= t < fault and t >= first]
    assert len(window) == min(30, int(fault - first)), window
    reissue = [(i, f) for i, f in enumerate(run.frames) if f.command is Command.REISSUE]
    pre = [(i, f) for i, f in reissue if fault - 30.0 <= sim_seconds(report_of(f).time) < fault]
    times = [sim_seconds(report_of(f).time) for _, f in pre]
    realtime_before = {
        sim_seconds(report_of(f).time) for f in run.frames
        if f.command is Command.REALTIME and fault - 30.0 <= sim_seconds(report_of(f).time) < fault
    }
    if include_sent:
        assert times == window, (fault, times)
    else:
        assert times == [t for t in window if t not in realtime_before], (fault, times)
        assert sorted(set(times) | realtime_before) == window
    # sent at the fault point, right before the fault point's own realtime record
    at_fault = next(i for i, f in enumerate(run.frames)
                    if f.command is Command.REALTIME and sim_seconds(report_of(f).time) == fault)
    assert [i for i, _ in pre] == list(range(at_fault - len(pre), at_fault))
    assert all(f.edition is Edition.E2025 for _, f in pre)
    _, bad = compare([f for _, f in pre], run.truth, 2025)
    assert not bad, bad[:10]


def test_pre_fault_window_is_30_reissue_records_at_1_hz(tmp_path: Path) -> None:
    """With ``pre_fault_include_sent`` (platforms that count the reissue records) the window is exactly
    the 30 samples before the fault point, oldest first, even those already sent as realtime."""
    run = run_scenario("hvil-open", tmp_path, extra=INCLUDE_SENT)
    assert run.signature_at is not None
    check_pre_fault_window(run, include_sent=True)
    fault = next(t for t, a in run.samples if int(a.max_level) >= 3)
    reissue = [sim_seconds(report_of(f).time) for f in run.frames if f.command is Command.REISSUE]
    assert reissue[:30] == [fault - 30.0 + k for k in range(30)]
