"""``tbox replay``: formats (candump, ASC, BLF), --edition, --start, the summary line, errors."""

from __future__ import annotations

from pathlib import Path

import can
import pytest

from agent.cli import main
from agent.protocol.model import Command, Edition

from .e2e_support import START, Recording, decode_lines, record, report_of, sim_seconds, write_config


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    return record(tmp_path_factory.mktemp("replay") / "drive.log", seconds=40.0, keep_truth=False)


def _convert(src: Path, dst: Path) -> None:
    with can.LogReader(str(src)) as reader, can.Logger(str(dst)) as writer:
        for msg in reader:
            writer.on_message_received(msg)


def _run(log: Path, cfg: Path, out: Path, *args: str) -> int:
    return main(["replay", str(log), "--config", str(cfg), "--out", str(out), *args])


def test_blf_and_asc_logs_give_the_same_frames_as_candump(drive: Recording, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 2016, "[report]\nnormal_period_s = 1\n")
    assert _run(drive.log, cfg, tmp_path / "log.hex") == 0
    reference = (tmp_path / "log.hex").read_text()
    assert reference.count("\n") >= 38
    blf = tmp_path / "drive.blf"
    _convert(drive.log, blf)
    assert _run(blf, cfg, tmp_path / "blf.hex") == 0
    assert (tmp_path / "blf.hex").read_text() == reference
    # ASC carries time relative to its first frame: --start puts t = 0 back on the wall clock
    asc = tmp_path / "drive.asc"
    _convert(drive.log, asc)
    first = next(iter(can.LogReader(str(drive.log)))).timestamp
    from datetime import UTC, datetime

    start = datetime.fromtimestamp(first, UTC).isoformat()
    assert _run(asc, cfg, tmp_path / "asc.hex", "--start", start) == 0
    assert (tmp_path / "asc.hex").read_text() == reference


def test_relative_timestamps_default_to_a_fixed_start(drive: Recording, tmp_path: Path) -> None:
    asc = tmp_path / "drive.asc"
    _convert(drive.log, asc)
    cfg = write_config(tmp_path)
    assert _run(asc, cfg, tmp_path / "a.hex") == 0
    assert _run(asc, cfg, tmp_path / "b.hex") == 0
    a = (tmp_path / "a.hex").read_text()
    assert a and a == (tmp_path / "b.hex").read_text()
    times = [sim_seconds(report_of(f).time) for f in decode_lines(tmp_path / "a.hex")]
    assert times[0] >= 0.0 and times[-1] < 60.0  # 2025-01-01T00:00:00Z = START


def test_edition_option_overrides_the_config(drive: Recording, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 2016)
    assert _run(drive.log, cfg, tmp_path / "out.hex", "--edition", "2025") == 0
    frames = decode_lines(tmp_path / "out.hex")
    assert frames and all(f.edition is Edition.E2025 and f.command is Command.REALTIME for f in frames)
    assert report_of(frames[0]).time > START


def test_summary_line(drive: Recording, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.hex"
    assert _run(drive.log, write_config(tmp_path), out) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    line = err[0]
    n = len(out.read_text().splitlines())
    assert line.startswith(f"tbox replay: {drive.frames} frames read (0 malformed")
    assert f"{n} reports written ({n} realtime, 0 reissue)" in line
    assert "alarms: none" in line and str(out) in line


def test_unwritable_output_is_a_one_line_error(drive: Recording, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(drive.log, write_config(tmp_path), tmp_path / "no" / "dir" / "out.hex") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tbox replay: ") and "out.hex" in err and "\n" not in err


def test_bad_start_is_a_one_line_error(drive: Recording, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(drive.log, write_config(tmp_path), tmp_path / "o.hex", "--start", "yesterday") == 1
    assert "--start" in capsys.readouterr().err
