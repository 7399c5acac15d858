"""One simulated hour of the full vehicle (two motors, WLTC class 3) into a candump file; target < 60 s."""

from __future__ import annotations

import time
from pathlib import Path

import can
import pytest

from sim.bus import CandumpSink, bus_load
from sim.ecus import RawFrame
from sim.run import DEFAULT_START, Window, run_to_sink, simulate_windows
from sim.vehicle import Vehicle, VehicleConfig
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
SECONDS = 3600.0
TARGET_S = 60.0
COMMAND = ".venv/bin/pytest -q -m bench tests/bench/test_sim_bench.py"


def physics_cpu_seconds_per_hour() -> float:
    """CPU seconds of the physics alone (96 cells, 32 probes, 2 motors) for one simulated hour."""
    vehicle = Vehicle(VehicleConfig(n_motors=2), "wltc3", seed=1)
    started = time.process_time()
    for _ in range(36_000):
        vehicle.step(0.1)
    return time.process_time() - started


def test_one_simulated_hour_to_candump(tmp_path: Path) -> None:
    physics_s = physics_cpu_seconds_per_hour()
    path = tmp_path / "hour.log"
    sample: list[RawFrame] = []

    def keep_sample(w: Window) -> None:  # one minute of frames for the exact bus-load figure
        if 600.0 <= w.t0 < 660.0:
            sample.extend(w.frames)

    started = time.perf_counter()
    sink = CandumpSink(path, DEFAULT_START.timestamp())
    try:
        stats = run_to_sink(
            simulate_windows(None, "wltc3", 1, SECONDS, n_motors=2), [sink], on_window=keep_sample
        )
    finally:
        sink.close()
    wall = time.perf_counter() - started

    assert stats.sim_seconds == pytest.approx(SECONDS)
    assert 1_000_000 <= stats.frames <= 5_000_000
    reader = can.LogReader(path)
    head = [m for _, m in zip(range(1000), reader, strict=False)]
    assert len(head) == 1000 and all(not m.is_error_frame for m in head)
    load = bus_load(sample, 60.0)
    size_mb = path.stat().st_size / 1e6
    write_section(
        "Simulator",
        f"""One simulated hour of the full vehicle — WLTC class 3 repeated, two motors, every ECU sending
(`simulate_windows(None, "wltc3", 1, 3600, n_motors=2)` → `CandumpSink`), physics included, on one core.

| figure | value |
|---|---:|
| wall time for 1 simulated hour | **{wall:.1f} s** (target < {TARGET_S:.0f} s) |
| physics alone, timed separately (CPU, 36,000 steps of 0.1 s) | {physics_s:.1f} s |
| frames written | {stats.frames:,} |
| frames per wall second | {stats.frames / wall:,.0f} |
| candump file | {size_mb:.0f} MB |
| bus load (exact stuffed bits, minute 10–11, 500 kbit/s) | {100 * load:.1f} % |

Same through the CLI: `time .venv/bin/tbox sim --seconds 3600 --seed 1 --motors 2 --out hour.log`.""",
        command=COMMAND,
    )
    assert wall < TARGET_S
