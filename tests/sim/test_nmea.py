"""NMEA RMC/GGA of the simulated GNSS: parsed by pynmea2, matching the vehicle state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pynmea2
import pytest

from sim.nmea import NmeaSink, checksum, nmea_sentences
from sim.vehicle import Vehicle, VehicleConfig, VehicleState

START = datetime(2026, 3, 14, 1, 59, 26, tzinfo=UTC)


def drive(seconds: float, scenario: str | None = None) -> list[VehicleState]:
    v = Vehicle(VehicleConfig(), "wltc3", seed=2, scenario=scenario)
    return [v.step(0.5) for _ in range(round(seconds / 0.5))]


@pytest.mark.parametrize("k", [120, 400, 1000, 2300])
def test_rmc_gga_parse_and_match_state(k: int) -> None:
    states = drive(1200.0)
    s = states[k]
    utc = START + timedelta(seconds=s.t)
    rmc_s, gga_s = nmea_sentences(s, utc)
    for sentence in (rmc_s, gga_s):
        body, cs = sentence[1:].split("*")
        assert checksum(body) == cs and len(sentence) <= 82
    rmc = pynmea2.parse(rmc_s, check=True)
    gga = pynmea2.parse(gga_s, check=True)
    assert isinstance(rmc, pynmea2.types.talker.RMC) and isinstance(gga, pynmea2.types.talker.GGA)
    assert rmc.status == "A" and gga.gps_qual == 1
    assert rmc.latitude == pytest.approx(s.latitude_deg, abs=1e-5)
    assert rmc.longitude == pytest.approx(s.longitude_deg, abs=1e-5)
    assert gga.latitude == pytest.approx(s.latitude_deg, abs=1e-5)
    assert float(gga.altitude) == pytest.approx(s.altitude_m, abs=0.06)
    assert float(rmc.spd_over_grnd) * 1.852 == pytest.approx(s.speed_kmh, abs=0.01)
    assert float(rmc.true_course) == pytest.approx(s.heading_deg, abs=0.06)
    ts = rmc.timestamp
    assert rmc.datestamp == utc.date()
    assert (ts.hour, ts.minute, ts.second, ts.microsecond) == \
        (utc.hour, utc.minute, utc.second, utc.microsecond)


def test_no_fix_when_gnss_is_lost() -> None:
    states = drive(100.0, scenario="gnss-loss")
    s = states[-1]
    assert not s.gnss_fix
    rmc, gga = (pynmea2.parse(x, check=True) for x in nmea_sentences(s, START))
    assert rmc.status == "V" and gga.gps_qual == 0


def test_heading_follows_the_route() -> None:
    states = drive(1200.0)
    headings = {round(s.heading_deg) for s in states if s.speed_kmh > 5}
    assert len(headings) >= 3                     # the loop turns


def test_sink_writes_crlf_lines(tmp_path: Path) -> None:
    out = tmp_path / "gnss.nmea"
    s = drive(30.0)[-1]
    with NmeaSink(str(out)) as sink:
        sink.write(nmea_sentences(s, START))
        sink.write(nmea_sentences(s, START + timedelta(seconds=1)))
    lines = out.read_bytes().split(b"\r\n")
    assert len(lines) == 5 and lines[-1] == b""
    assert all(pynmea2.parse(x.decode(), check=True) for x in lines[:-1])


def test_serial_sink_uses_pyserial(monkeypatch: pytest.MonkeyPatch) -> None:
    import serial

    written: list[bytes] = []

    class FakeSerial:
        def __init__(self, port: str, baud: int, timeout: float) -> None:
            assert port == "/dev/ttyUSB7" and baud == 4800

        def write(self, data: bytes) -> None:
            written.append(data)

        def close(self) -> None:
            written.append(b"closed")

    monkeypatch.setattr(serial, "Serial", FakeSerial)
    sink = NmeaSink("serial:/dev/ttyUSB7:4800")
    sink.write(["$GPXXX*00"])
    sink.close()
    assert written == [b"$GPXXX*00\r\n", b"closed"]


def test_vehicle_utc_follows_simulated_time() -> None:
    v = Vehicle(VehicleConfig(), "park", seed=1, start_utc=START)
    for _ in range(25):
        v.step(0.1)
    assert v.utc == START + timedelta(seconds=v.state.t)
    assert nmea_sentences(v.state, v.utc)[0].startswith("$GPRMC,015928.50,")
