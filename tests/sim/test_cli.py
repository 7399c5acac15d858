"""``tbox sim``: arguments, one-line errors, outputs (candump file, virtual bus, plot, NMEA), real time."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import can
import pytest

from agent.cli import build_parser, main
from sim.ecus import e2e_crc, load_dbc

START = ["--start", "2025-01-01T00:00:00Z"]


def test_module_imports_stay_light() -> None:
    code = "import sys, sim.cli; print(sorted(m for m in ('can', 'cantools', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_sim_verb_is_registered_with_its_options() -> None:
    args = build_parser().parse_args(["sim", "--out", "x.log", "--motors", "1", "--seconds", "3"])
    assert args.verb == "sim" and args.motors == 1 and args.seconds == 3.0 and callable(args.run)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--seconds", "3"])  # neither --out nor --bus
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--out", "a.log", "--bus", "virtual:x"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "--out", "a.log", "--motors", "3"])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--scenario", "nope"], "valid: "),
        (["--cycle", "autobahn"], "unknown cycle 'autobahn'; valid: "),
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--start", "yesterday"], "--start"),
    ],
)
def test_bad_arguments_give_one_line_errors(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.log"
    assert main(["sim", "--out", str(out), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("tbox sim: ") and needle in err and "\n" not in err
    assert not out.exists()


def test_multicast_bus_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--seconds", "1", "--bus", "udp_multicast:239.74.163.2"]) == 1
    assert "not allowed" in capsys.readouterr().err


def test_candump_output_is_reproducible_and_decodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    for path in (a, b):
        assert main(["sim", "--seconds", "20", "--seed", "4", "--out", str(path), *START]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert "frames" in capsys.readouterr().out
    db = load_dbc()
    msgs = list(can.LogReader(a))
    assert len(msgs) > 15000
    assert msgs[0].timestamp >= 1735689600.0 and msgs[-1].timestamp < 1735689600.0 + 20.1
    for m in msgs:
        db.decode_message(m.arbitration_id, m.data)


def test_one_motor_option(tmp_path: Path) -> None:
    path = tmp_path / "one.log"
    assert main(["sim", "--seconds", "5", "--motors", "1", "--out", str(path), *START]) == 0
    ids = {m.arbitration_id for m in can.LogReader(path)}
    assert 0x0A0 in ids and 0x0A1 not in ids


def test_bus_scenario_with_fault_at(tmp_path: Path) -> None:
    path = tmp_path / "crc.log"
    assert (
        main(
            ["sim", "--seconds", "6", "--scenario", "bad-crc", "--fault-at", "2", "--out", str(path), *START]
        )
        == 0
    )
    bad = [
        m.timestamp - 1735689600.0
        for m in can.LogReader(path)
        if m.arbitration_id == 0x120 and m.data[0] != e2e_crc(0x120, bytes(m.data))
    ]
    assert bad and min(bad) >= 2.0


def test_physics_scenario_plot_and_nmea(tmp_path: Path) -> None:
    log, png, nmea = tmp_path / "r.log", tmp_path / "r.png", tmp_path / "r.nmea"
    argv = [
        "sim",
        "--seconds",
        "30",
        "--cycle",
        "ac-charge",
        "--scenario",
        "hvil-open",
        "--fault-at",
        "5",
        "--out",
        str(log),
        "--plot",
        str(png),
        "--nmea",
        str(nmea),
        *START,
    ]
    assert main(argv) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sentences = nmea.read_text().split()
    assert len(sentences) >= 30 and all(s.startswith("$") for s in sentences)
    db = load_dbc()
    hvil = {
        str(db.decode_message(0x121, m.data)["BMS_HVIL"])
        for m in can.LogReader(log)
        if m.arbitration_id == 0x121
    }
    assert hvil == {"Open", "Closed"}


def test_virtual_bus_output_and_realtime(capsys: pytest.CaptureFixture[str]) -> None:
    channel = f"tbox-cli-{random.randrange(1 << 30)}"
    rx = can.Bus(interface="virtual", channel=channel)
    try:
        started = time.monotonic()
        assert main(["sim", "--seconds", "1.5", "--bus", f"virtual:{channel}", "--realtime", *START]) == 0
        elapsed = time.monotonic() - started
        got = []
        for _ in range(100_000):  # bounded drain
            msg = rx.recv(timeout=0.2)
            if msg is None:
                break
            got.append(msg)
    finally:
        rx.shutdown()
    assert elapsed >= 1.4  # paced: 1.5 simulated seconds take at least that long (more on a loaded host)
    assert len(got) > 1000
    assert {m.arbitration_id for m in got} >= {0x090, 0x0A0, 0x120}
