"""End to end: simulator candump log → ``tbox replay`` → decoded GB/T 32960 frames = simulator truth.

Every realtime record's values are compared with the simulator's ground truth at the record's collection
time, within the DBC resolution plus the protocol's (see ``e2e_support.compare``: the candidates are the
physics windows whose frames can be the latest ones before the sampling tick). Both editions.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from agent.cli import main
from agent.protocol.model import (
    Command,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Location,
    Location2025,
    LocationStatus,
)

from .e2e_support import (
    VIN,
    Recording,
    block,
    compare,
    decode_lines,
    record,
    report_of,
    sim_seconds,
    write_config,
)

log = logging.getLogger(__name__)
EDITIONS = (2016, 2025)


@pytest.fixture(scope="module")
def drive(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """120 s of WLTC class 3 (accelerating, cruising, braking, regenerating), two motors, with NMEA."""
    d = tmp_path_factory.mktemp("drive")
    return record(d / "drive.log", seconds=120.0, nmea=d / "drive.nmea")


@pytest.fixture(scope="module")
def charge(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """60 s of DC fast charging (negative pack current, key off: no motor frames)."""
    d = tmp_path_factory.mktemp("charge")
    return record(d / "charge.log", profile="dc-charge", seconds=60.0)


def _replay(tmp: Path, rec: Recording, edition: int, extra: str = "", *args: str) -> Path:
    cfg = write_config(tmp, edition, extra)
    out = tmp / f"out-{edition}.hex"
    assert main(["replay", str(rec.log), "--config", str(cfg), "--out", str(out), *args]) == 0
    return out


@pytest.mark.parametrize("edition", EDITIONS)
def test_every_record_matches_the_ground_truth(drive: Recording, tmp_path: Path, edition: int) -> None:
    # a report every second: every sample is compared
    out = _replay(tmp_path, drive, edition, "[report]\nnormal_period_s = 1\n")
    frames = decode_lines(out)
    assert len(frames) >= 118
    assert all(f.edition == Edition(edition) and f.vin == VIN for f in frames)
    assert all(f.command is Command.REALTIME for f in frames)
    checks, bad = compare(frames, drive, edition)
    figures = {k: f"{c.max_dev:.4f} (≤ {c.tolerance:.4f}, n={c.compared})" for k, c in checks.items()}
    log.info("edition %s max deviation per field: %s", edition, figures)
    print(f"\nedition {edition}: " + "; ".join(f"{k} {v}" for k, v in figures.items()))
    assert not bad, bad[:20]
    assert all(c.compared > 0 for c in checks.values()), figures
    # every cell and probe, every record
    assert checks["cell_voltage"].compared == 96 * checks["speed"].compared
    assert checks["temperature"].compared == 32 * checks["speed"].compared


@pytest.mark.parametrize("edition", EDITIONS)
def test_charging_matches_the_ground_truth(charge: Recording, tmp_path: Path, edition: int) -> None:
    out = _replay(tmp_path, charge, edition, "[report]\nnormal_period_s = 1\n")
    frames = decode_lines(out)
    checks, bad = compare(frames, charge, edition)
    assert not bad, bad[:20]
    assert checks["total_current"].compared > 50
    assert all(report_of(f).blocks for f in frames)
    # parked charging: no motor block
    assert all(block(report_of(f), DriveMotors, DriveMotors2025) is None for f in frames[3:])


@pytest.mark.parametrize("edition", EDITIONS)
def test_default_cadence_reports_every_10_s_on_whole_seconds(drive: Recording, tmp_path: Path,
                                                             edition: int) -> None:
    frames = decode_lines(_replay(tmp_path, drive, edition))
    times = [sim_seconds(report_of(f).time) for f in frames]
    assert all(f.command is Command.REALTIME for f in frames)
    assert all(t == int(t) for t in times)
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
    assert gaps == {10.0}, times
    assert 11 <= len(frames) <= 13


def test_replay_is_deterministic(drive: Recording, tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    out_a = _replay(a, drive, 2025)
    out_b = _replay(b, drive, 2025)
    assert out_a.read_bytes() == out_b.read_bytes()
    # and a fresh recording with the same seed gives the same log, hence the same frames
    again = record(tmp_path / "again.log", seconds=120.0, keep_truth=False)
    assert again.log.read_bytes() == drive.log.read_bytes()
    lines = out_a.read_text().splitlines()
    assert lines and all(line == line.upper() and bytes.fromhex(line) for line in lines)


@pytest.mark.parametrize("edition", EDITIONS)
def test_gnss_from_nmea_reaches_the_location_block(drive: Recording, tmp_path: Path, edition: int) -> None:
    nmea = drive.log.with_suffix(".nmea")
    frames = decode_lines(_replay(tmp_path, drive, edition, "[report]\nnormal_period_s = 1\n", "--nmea",
                                  str(nmea)))
    worst = 0.0
    for f in frames:
        r = report_of(f)
        loc = block(r, Location, Location2025)
        assert loc is not None
        t = sim_seconds(r.time)
        truth = drive.truth_at(t)
        assert not loc.status & LocationStatus.INVALID_FIX
        worst = max(worst, abs(loc.latitude - truth.latitude), abs(loc.longitude - truth.longitude))
    # NMEA carries 1e-4 minute (1.7e-6°), the wire 1e-6°
    assert worst < 2.5e-6, worst


def test_gnss_file_source_of_the_config_is_replayed(drive: Recording, tmp_path: Path) -> None:
    nmea = drive.log.with_suffix(".nmea")
    frames = decode_lines(_replay(tmp_path, drive, 2025, f"[gnss]\nsource = '{nmea}'\n"))
    for f in frames:
        loc = block(report_of(f), Location2025)
        truth = drive.truth_at(sim_seconds(report_of(f).time))
        assert not loc.status & LocationStatus.INVALID_FIX
        assert abs(loc.latitude - truth.latitude) < 2.5e-6


def test_without_gnss_the_location_is_invalid(drive: Recording, tmp_path: Path) -> None:
    frames = decode_lines(_replay(tmp_path, drive, 2016))
    for f in frames:
        loc = block(report_of(f), Location)
        assert loc is not None and loc.status & LocationStatus.INVALID_FIX


def test_one_motor_vehicle(tmp_path: Path) -> None:
    rec = record(tmp_path / "one.log", seconds=30.0, n_motors=1)
    frames = decode_lines(_replay(tmp_path, rec, 2016, "[report]\nnormal_period_s = 1\n"))
    _, bad = compare(frames, rec, 2016)
    assert not bad, bad[:10]
    for f in frames[3:]:
        motors = block(report_of(f), DriveMotors)
        assert motors is not None and [m.number for m in motors.motors] == [1]


@pytest.mark.soak
@pytest.mark.parametrize("edition", EDITIONS)
def test_an_hour_of_driving_matches_the_ground_truth(tmp_path: Path, edition: int) -> None:
    """Two WLTC cycles (3600 s, ~3.5 million frames) at a report per second."""
    rec = record(tmp_path / "hour.log", seconds=3600.0)
    frames = decode_lines(_replay(tmp_path, rec, edition, "[report]\nnormal_period_s = 1\n"))
    assert len(frames) >= 3590
    checks, bad = compare(frames, rec, edition)
    print("\n" + "; ".join(f"{k} {c.max_dev:.4f} (n={c.compared})" for k, c in checks.items()))
    assert not bad, bad[:20]
