"""agent.peripherals.gnss against the simulator's NMEA (sim.nmea): positions, lost fix, bad lines
counted and logged once, a receiver on a pty."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.peripherals.gnss import NmeaParser, parse_source, read_positions
from sim.nmea import NmeaSink, nmea_sentences
from sim.run import simulate_windows

START = datetime(2025, 1, 1, 8, 0, 0, tzinfo=UTC)


def _track(seconds: float, scenario: str | None = None, **kw: object) -> list[tuple[datetime, object]]:
    out = []
    last = -1
    for w in simulate_windows(None, "wltc3", 1, seconds, scenario, start_utc=START, **kw):  # type: ignore[arg-type]
        second = int(w.t1 + 1e-9)
        if second != last:
            last = second
            out.append((START + timedelta(seconds=w.state.t), w.state))
    return out


def test_positions_match_the_simulated_track(tmp_path: Path) -> None:
    track = _track(40.0)
    path = tmp_path / "track.nmea"
    with NmeaSink(path) as sink:
        for when, state in track:
            sink.write(nmea_sentences(state, when))  # type: ignore[arg-type]
    positions = read_positions(path)
    assert len(positions) == len(track)
    for pos, (when, s) in zip(positions, track, strict=True):
        assert pos.valid
        assert pos.time is not None and abs((pos.time - when).total_seconds()) < 0.011
        assert abs(pos.latitude - s.latitude_deg) < 2e-6  # type: ignore[attr-defined]
        assert abs(pos.longitude - s.longitude_deg) < 2e-6  # type: ignore[attr-defined]
        assert pos.speed_kmh is not None and abs(pos.speed_kmh - s.speed_kmh) < 0.01 * 1.852  # type: ignore[attr-defined]
        assert pos.altitude_m is not None and abs(pos.altitude_m - s.altitude_m) < 0.051  # type: ignore[attr-defined]


def test_lost_fix_keeps_the_last_position_marked_invalid() -> None:
    track = _track(20.0, "gnss-loss", fault_start_s=10.0)
    parser = NmeaParser()
    lines = [line for when, s in track for line in nmea_sentences(s, when)]  # type: ignore[arg-type]
    positions = list(parser.feed(lines))
    valid = [p for p in positions if p.valid]
    lost = [p for p in positions if not p.valid]
    assert valid and lost
    assert all((p.latitude, p.longitude) == (valid[-1].latitude, valid[-1].longitude) for p in lost)
    assert all(p.speed_kmh is None and p.altitude_m is None for p in lost)


def test_bad_lines_are_counted_and_logged_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    parser = NmeaParser()
    good = nmea_sentences(_track(2.0)[0][1], START)  # type: ignore[arg-type]
    bad_sum = good[0][:-2] + "00"
    lines = [bad_sum] * 5 + ["garbage", "\x00\xff", "$GPXXX,1,2"] * 3 + good + ["", "$GPGSV,1,1,00*79"]
    with caplog.at_level(logging.WARNING, logger="agent.peripherals.gnss"):
        positions = list(parser.feed(lines))
    assert len(positions) == 1 and positions[0].valid
    assert parser.errors["checksum"] == 5 + 3  # wrong, or missing ($GPXXX,1,2)
    assert parser.errors["garbage"] == 6
    messages = [r.getMessage() for r in caplog.records]
    assert sum("checksum" in m for m in messages) == 1
    assert sum("garbage" in m for m in messages) == 1


def test_source_specs() -> None:
    assert parse_source("serial:/dev/ttyS0:115200") == ("serial", "/dev/ttyS0", 115200)
    assert parse_source("serial:/dev/ttyUSB0") == ("serial", "/dev/ttyUSB0", 9600)
    assert parse_source("/tmp/x.nmea") == ("file", "/tmp/x.nmea", 0)
    with pytest.raises(ConfigError):
        parse_source("serial:/dev/ttyS0:fast")


def test_missing_nmea_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read NMEA"):
        read_positions(tmp_path / "missing.nmea")


def test_serial_receiver_over_a_pty() -> None:
    import os

    from agent.peripherals.gnss import SerialNmea

    master, slave = os.openpty()
    try:
        track = _track(3.0)
        data = "".join(line + "\r\n" for when, s in track for line in nmea_sentences(s, when))  # type: ignore[arg-type]
        with SerialNmea(os.ttyname(slave), 9600, timeout=0.5) as gnss:
            os.write(master, data.encode("ascii"))  # after the open: pyserial flushes input on open
            positions = []
            for _ in range(4 * len(track)):
                pos = gnss.read_position()
                if pos is not None:
                    positions.append(pos)
                if len(positions) == len(track):
                    break
        assert [p.time for p in positions] == [when for when, _ in track]
        assert all(p.valid for p in positions)
    finally:
        os.close(master)
        os.close(slave)


def test_serial_open_failure_is_a_transport_error(tmp_path: Path) -> None:
    from agent.errors import TransportError
    from agent.peripherals.gnss import SerialNmea

    with pytest.raises(TransportError, match="cannot open"):
        SerialNmea(str(tmp_path / "ttyNONE"))
