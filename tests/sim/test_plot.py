"""RunRecorder keeps ~1 Hz summaries and draws a PNG."""

from __future__ import annotations

from pathlib import Path

from sim.plot import RunRecorder
from sim.vehicle import Vehicle, VehicleConfig


def test_recorder_samples_at_1hz_and_saves_png(tmp_path: Path) -> None:
    v = Vehicle(VehicleConfig(), "wltc3", seed=3)
    rec = RunRecorder()
    for _ in range(3000):      # 300 s at 0.1 s
        rec.record(v.step(0.1))
    assert 295 <= len(rec.samples) <= 302
    assert rec.column("speed_kmh").max() > 40
    assert (rec.column("cell_v_max") >= rec.column("cell_v_min")).all()
    out = tmp_path / "run.png"
    rec.save_png(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10000
