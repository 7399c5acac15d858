"""The agent's whole per-frame work at a saturated 1 Mbit/s bus: ingest, sampling, alarms, reports.

The CAN-ingest bench measures the reader thread alone; this one measures everything the agent does with
the frames after they are read: `AgentPipeline.feed` (frame cache), the 1 Hz sampler (mapping decode),
the alarm engine, the cadence, the report builder and the GB/T 32960 encoder. The simulator's real frame
mix (991 frames/s) is time-compressed ×8.78 to 8,700 frames/s, the load of a saturated 1 Mbit/s bus.
"""

from __future__ import annotations

import time
from pathlib import Path

import can
import pytest

from agent.config import load_config
from agent.pipeline import AgentPipeline
from sim.run import simulate
from tests.agent.e2e_support import write_config
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
RATE = 8_700  # frames/s on a saturated 1 Mbit/s bus of 8-byte frames
SECONDS = 10.0
TARGET = 0.05  # of one core, together with the reader thread (see "CAN ingest")


def saturated_frames() -> list[can.Message]:
    """SECONDS of bus time at RATE frames/s, from the simulator's mix, timestamps compressed."""
    frames = list(simulate(None, "wltc3", 1, SECONDS * RATE / 991 + 5.0, n_motors=2))
    frames = frames[: int(SECONDS * RATE)]
    t0 = frames[0].timestamp
    scale = RATE / 991.0
    for m in frames:
        m.timestamp = t0 + (m.timestamp - t0) / scale
    return frames


@pytest.mark.parametrize("edition", [2016, 2025])
def test_pipeline_cpu_at_a_saturated_bus(tmp_path: Path, edition: int) -> None:
    frames = saturated_frames()
    span = frames[-1].timestamp - frames[0].timestamp
    pipeline = AgentPipeline(load_config(write_config(tmp_path, edition)))
    emitted = 0
    started = time.process_time()
    for message in frames:
        emitted += len(pipeline.feed(message))
    emitted += len(pipeline.finish())
    cpu = time.process_time() - started
    share = cpu / span
    assert emitted > 0 and pipeline.stats.samples >= SECONDS - 1
    write_section(
        f"Agent pipeline at a saturated bus ({edition})",
        f"""Everything the agent does after a frame is read (frame cache, 1 Hz sampler, alarms, cadence,
report builder, GB/T 32960 {edition} encoder), over {len(frames):,} simulator frames time-compressed to
{RATE:,} frames/s ({span:.1f} s of bus time), one core.

| figure | value |
|---|---:|
| CPU for {span:.1f} s of saturated bus | {cpu:.3f} s |
| share of one core | **{100 * share:.2f} %** (target, with the reader thread: ≤ {100 * TARGET:.0f} %) |
| per frame | {1e6 * cpu / len(frames):.2f} µs |
| samples / frames emitted | {pipeline.stats.samples} / {emitted} |""",
        command=".venv/bin/pytest -q -s -m bench tests/bench/test_pipeline_bench.py",
    )
    assert share < TARGET
