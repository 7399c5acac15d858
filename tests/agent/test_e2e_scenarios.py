"""End to end: every physics fault scenario of the simulator produces its documented GB/T 32960 alarm
flags and level within its bounded duration, and a level-3 fault's 30 s pre-alarm window leaves as
reissue (0x03) records.

Each scenario runs in process (simulator frames → ``AgentPipeline.feed`` → encoded frames → decoded)
until the decoded frames carry every documented flag and the documented highest level (then it stops),
or until ``Scenario.run_s`` after its start (plus one report period for the last record to leave). The
highest level, in the engine's samples and on the wire, must be the documented one, not higher. All
scenarios run by default (~20 s of wall time together; each reaches its documented state in ≤ 600
simulated seconds). Edition 2025 (the only one with level 4 and the thermal-event flag).
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
from sim.bus import to_message
from sim.run import simulate_windows
from sim.scenarios import SCENARIOS, Scenario

from .e2e_support import START, Recording, _truth, block, compare, report_of, sim_seconds, write_config

log = logging.getLogger(__name__)

#: simulated seconds after ``start_s + run_s`` for a record to leave (a level-1/2 flag raised at the end
#: of the run waits for the next normal report, period 10 s)
REPORT_SLACK_S = 11.0


@dataclass
class ScenarioRun:
    scenario: Scenario
    signature_at: float | None = None  # first window whose state shows the signature (informative)
    seen_at: float | None = None       # first record carrying every documented flag and the level
    end: float = 0.0                   # last simulated second run
    samples: list[tuple[float, AlarmState]] = field(default_factory=list)
    emitted: list[Emitted] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    truth: Recording = field(default_factory=lambda: Recording(Path("-")))

    @property
    def flags(self) -> int:
        out = 0
        for _, a in self.samples:
            out |= int(a.flags)
        return out

    @property
    def level(self) -> int:
        return max((int(a.max_level) for _, a in self.samples), default=0)


INCLUDE_SENT = "[report]\npre_fault_include_sent = true\n"


def _wire(frame: Frame) -> tuple[int, int]:
    alarm = block(report_of(frame), Alarm2025)
    assert alarm is not None
    return int(alarm.general_flags), int(alarm.max_level)


def run_scenario(name: str, tmp: Path, extra: str = "") -> ScenarioRun:
    """Run until the wire shows the documented flags and level (not for a scenario without alarm: it
    runs its whole duration), at most ``start_s + run_s`` (+ ``REPORT_SLACK_S``)."""
    sc = SCENARIOS[name]
    run = ScenarioRun(sc)
    settings = load_config(write_config(tmp, 2025, extra))
    expected = sum(1 << b for b in sc.flags)
    pipeline = AgentPipeline(settings, on_sample=lambda s, a: run.samples.append((sim_seconds(s.time), a)))
    epoch = START.timestamp()
    profile = sc.default_profile if sc.needs == "charge" else "wltc3"
    wire_flags = wire_level = 0
    prev = None
    seconds = sc.start_s + sc.run_s + REPORT_SLACK_S
    for w in simulate_windows(None, profile, 1, seconds, name, start_utc=START):
        for f in w.frames:
            out = pipeline.feed(to_message(f, epoch, "can0"))
            run.emitted += out
            for e in out:
                flags, level = _wire(decode_frame(e.frame))
                wire_flags |= flags
                wire_level = max(wire_level, level)
        run.truth.truths.append(_truth(w.state))
        if run.signature_at is None and sc.signature([prev, w.state] if prev is not None else [w.state]):
            run.signature_at = w.t1
        prev = w.state
        run.end = w.t1
        if expected and wire_flags & expected == expected and wire_level == sc.level:
            run.seen_at = w.t1
            break
    run.emitted += pipeline.finish()
    run.frames = [decode_frame(e.frame) for e in run.emitted]
    return run


def _bits(flags: int) -> list[int]:
    return [b for b in range(32) if flags >> b & 1]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_raises_its_documented_flags_and_level(name: str, tmp_path: Path) -> None:
    run = run_scenario(name, tmp_path)
    sc = run.scenario
    expected = sum(1 << b for b in sc.flags)
    seen, level = run.flags, run.level
    print(f"\n{name}: documented flags {sorted(sc.flags)} level {sc.level}; on the wire at {run.seen_at} s "
          f"(start {sc.start_s:.0f} s, bound {sc.start_s + sc.run_s:.0f} s, signature at "
          f"{run.signature_at}); raised: flags {_bits(seen)} level {level}")
    missing = _bits(expected & ~seen)
    assert not missing, f"{name}: documented flags {missing} not raised in {sc.run_s:.0f} s ({_bits(seen)})"
    assert level == sc.level, f"{name}: highest level {level}, documented {sc.level} (flags {_bits(seen)})"
    # what went on the wire says the same
    wire_flags = wire_level = 0
    for f in run.frames:
        flags, top = _wire(f)
        wire_flags |= flags
        wire_level = max(wire_level, top)
    assert expected & ~wire_flags == 0, _bits(wire_flags)
    assert wire_level == sc.level
    if expected:
        assert run.seen_at is not None and run.seen_at <= sc.start_s + sc.run_s + REPORT_SLACK_S
    else:
        assert run.end >= sc.start_s + sc.run_s and run.signature_at is not None   # ran with the fault
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
