"""``tbox fleet`` end to end: a subprocess platform, two worker processes, the JSON summary's shape."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _platform(tmp_path: Path, seconds: float) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "platform", "serve", "--db",
                             str(tmp_path / "p.db"), "--listen", "127.0.0.1:0", "--reply-realtime",
                             "--seconds", str(seconds)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError("platform did not start")


def test_fleet_cli_two_processes_summary(tmp_path: Path) -> None:
    plat, port = _platform(tmp_path, 40)
    try:
        out = tmp_path / "summary.json"
        run = subprocess.run([sys.executable, "-m", "agent.cli", "fleet", "--vehicles", "40", "--target",
                              f"127.0.0.1:{port}", "--seconds", "3", "--period", "1", "--processes", "2",
                              "--edition", "2025", "--drain", "5", "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        plat.terminate()
        plat.wait(20)
    assert run.returncode == 0, run.stderr
    assert "fleet t=" in run.stderr and "online=" in run.stderr  # live progress
    s = json.loads(out.read_text())
    assert s["vehicles"] == s["distinct_vins"] == 40 and s["processes"] == 2 and s["edition"] == 2025
    assert set(s) >= {"frames_sent", "acks", "reports", "failures", "dropped", "latency_ms"}
    for kind in ("login", "ack"):
        assert set(s["latency_ms"][kind]) == {"count", "p50", "p90", "p99", "max"}
    assert s["latency_ms"]["login"]["count"] == 40
    assert s["reports"]["acked"] == s["reports"]["generated"] > 0
    con = sqlite3.connect(tmp_path / "p.db")
    try:
        vins = {v for (v,) in con.execute("SELECT DISTINCT vin FROM frames WHERE command = 2")}
        sql = "SELECT COUNT(*) FROM frames WHERE command = 2 AND response = 254"
        realtime = con.execute(sql).fetchone()[0]
    finally:
        con.close()
    assert len(vins) == 40  # the two shards did not overlap and covered the fleet
    assert realtime == s["frames_sent"]["realtime"]


@pytest.mark.parametrize("argv, message", [
    (["--shard", "2/2"], "--shard"), (["--target", "nowhere"], "--target"), (["--period", "0.2"], "--period"),
])
def test_fleet_cli_bad_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "--vehicles", "2", "--seconds", "1", *argv]) == 1
    assert message in capsys.readouterr().err


def test_fleet_cli_unreachable_platform_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "s.json"
    rc = main(["fleet", "--vehicles", "3", "--target", f"127.0.0.1:{port}", "--seconds", "1.5",
               "--period", "1", "--drain", "0.5", "--progress", "0", "--out", str(out)])
    assert rc == 1
    s = json.loads(out.read_text())
    assert s["never_logged_in"] == 3
    assert s["failures"].get("connect: ECONNREFUSED", 0) >= 3
    assert s["reports"]["backlog"] == s["reports"]["generated"] > 0  # kept, not lost
    assert s["reports"]["unaccounted"] == 0
