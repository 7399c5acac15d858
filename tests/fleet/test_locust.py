"""One fleet from several Locust processes: a headless master and two workers on loopback drive 20
vehicles into the strict reference platform. Everything runs in subprocesses (Locust monkey-patches
with gevent) and is bounded in time; the run is judged from Locust's CSV and the platform's database."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.fleet.lite import vin_for

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "sim" / "locustfile.py"
SHAPE = ROOT / "sim" / "fleet" / "locust_shape.py"
USERS, WORKERS, PER_WORKER = 20, 2, 1000
PREFIX = "LTBXLCT0"
RUN_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_platform(db: Path, log: Path, port: int = 0) -> tuple[subprocess.Popen[bytes], int]:
    cmd = [sys.executable, "-m", "agent.cli", "platform", "serve", "--listen", f"127.0.0.1:{port}", "--db",
           str(db), "--reply-realtime", "--report-period", "2", "--heartbeat", "1", "--seconds", "90"]
    err = log.open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("listening on "):
                return proc, int(line.rsplit(":", 1)[1])
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"platform did not start: {log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def stats(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {row["Name"]: row for row in csv.DictReader(f)}


def need_locust() -> None:
    if importlib.util.find_spec("locust") is None:  # find_spec does not import (no monkey-patching here)
        if os.environ.get("CI"):
            pytest.fail("locust is not installed (pip install -e '.[fleet]')")
        pytest.skip("locust is not installed (pip install -e '.[fleet]')")


def platform_summary(db: Path) -> tuple[int, dict[str, dict[str, object]]]:
    cmd = [sys.executable, "-m", "agent.cli", "platform", "check", "--db", str(db), "--json"]
    check = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    return check.returncode, json.loads(check.stdout)["vins"]


def logs_of(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted(tmp_path.glob("*.err")))


@pytest.mark.timeout(150)
def test_master_and_two_workers_drive_one_fleet(tmp_path: Path) -> None:
    need_locust()
    db = tmp_path / "platform.db"
    platform, port = start_platform(db, tmp_path / "platform.log")
    master_port = free_port()
    common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    master_cmd = [
        *common, "--master", "--headless", "-u", str(USERS), "-r", "10", "--run-time", f"{RUN_S}s",
        "--expect-workers", str(WORKERS), "--expect-workers-max-wait", "40",
        "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
        "--host", f"tcp://127.0.0.1:{port}", "--stop-timeout", "10", "--exit-code-on-error", "1",
        "--csv", str(tmp_path / "run"), "--only-summary",
        "--period", "2", "--heartbeat", "1", "--ack-timeout", "5", "--vin-prefix", PREFIX,
        "--vins-per-worker", str(PER_WORKER), "--seed", "3",
    ]
    worker_cmd = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        master = subprocess.Popen(master_cmd, cwd=tmp_path, stdout=(tmp_path / "master.out").open("wb"),
                                  stderr=(tmp_path / "master.err").open("wb"))
        procs.append(master)
        for i in range(WORKERS):
            procs.append(subprocess.Popen(worker_cmd, cwd=tmp_path,
                                          stdout=(tmp_path / f"worker{i}.out").open("wb"),
                                          stderr=(tmp_path / f"worker{i}.err").open("wb")))
        try:
            code = master.wait(100)
        except subprocess.TimeoutExpired:
            code = None
        for w in procs[1:]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.wait(15)  # workers quit with the master
    finally:
        for p in procs:
            stop(p, signal.SIGTERM)
        stop(platform)
    assert code == 0, f"master exit {code}\n{logs_of(tmp_path)}"
    assert all(p.returncode is not None for p in procs)

    # Locust's own statistics: logins and acknowledged realtime reports, heartbeats, no failure at all
    rows = stats(tmp_path / "run_stats.csv")
    assert rows["login"]["Type"] == "GBT32960" and int(rows["login"]["Request Count"]) == USERS, rows
    assert int(rows["realtime"]["Request Count"]) >= 2 * USERS, rows["realtime"]
    assert int(rows["heartbeat"]["Request Count"]) >= 1, rows
    assert int(rows["Aggregated"]["Failure Count"]) == 0, (tmp_path / "run_failures.csv").read_text()
    assert float(rows["realtime"]["Max Response Time"]) > 0

    # the platform: 20 distinct VINs, exactly worker 0's and worker 1's blocks (no overlap), no violation
    returncode, vins = platform_summary(db)
    expected = {vin_for(w * PER_WORKER + k, PREFIX) for w in range(WORKERS) for k in range(USERS // WORKERS)}
    assert set(vins) == expected, sorted(vins)
    for vin, v in vins.items():
        assert v["violations"] == {}, (vin, v["violations"])
        assert v["frames"].get("0x01", 0) >= 1 and v["realtime"] >= 2, (vin, v)
        assert v["frames"].get("0x04", 0) == 1, (vin, v["frames"])  # logged out once when stopped
    assert returncode == 0


@pytest.mark.timeout(120)
def test_vehicles_reissue_what_they_collected_while_the_platform_was_down(tmp_path: Path) -> None:
    need_locust()
    users, prefix = 3, "LTBXLCTB"
    db = tmp_path / "platform.db"
    platform, port = start_platform(db, tmp_path / "platform.log")
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), "-r", "10",
           "--run-time", "12s", "--stop-timeout", "10", "--loglevel", "INFO", "--host",
           f"tcp://127.0.0.1:{port}", "--period", "2", "--heartbeat", "1", "--ack-timeout", "3",
           "--vin-prefix", prefix, "--reissue-window", "2", "--csv", str(tmp_path / "outage"),
           "--only-summary"]
    err = (tmp_path / "locust.err").open("wb")
    locust = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        time.sleep(4.0)  # Locust starts, the vehicles log in and report
        stop(platform)  # the outage: the vehicles keep what they collect
        time.sleep(3.0)
        platform, _ = start_platform(db, tmp_path / "platform2.log", port)  # same port, same database
        with contextlib.suppress(subprocess.TimeoutExpired):
            locust.wait(60)
    finally:
        stop(locust, signal.SIGTERM)
        stop(platform)
        err.close()
    log = (tmp_path / "locust.err").read_text(errors="replace")
    assert locust.returncode is not None
    rows = stats(tmp_path / "outage_stats.csv")
    reissue = rows.get("reissue")
    assert reissue is not None and int(reissue["Request Count"]) >= users, (rows, log[-3000:])
    assert int(reissue["Failure Count"]) == 0, (tmp_path / "outage_failures.csv").read_text()
    assert "backlog_full" not in rows and "backlog_left" not in rows, rows
    assert int(rows["login"]["Failure Count"]) >= 1  # refused while the platform was down
    # every report a vehicle collected is at the platform: realtime or reissued, each second once
    pattern = r"(LTBXLCTB\w+): collected (\d+) reports, 0 dropped from the backlog, 0 not reissued"
    collected = {m.group(1): int(m.group(2)) for m in re.finditer(pattern, log)}
    assert sorted(collected) == [vin_for(k, prefix) for k in range(users)], log[-3000:]
    with contextlib.closing(sqlite3.connect(db)) as con:
        for vin, n in collected.items():
            rows_at = con.execute("SELECT command, collected FROM frames WHERE vin = ? AND command IN (2, 3) "
                                  "AND response = 254", (vin,)).fetchall()
            seconds = {t for _, t in rows_at}
            assert len(seconds) == n, (vin, n, sorted(rows_at))
            assert any(c == 3 for c, _ in rows_at), (vin, rows_at)
        stored_reissues = con.execute("SELECT COUNT(*) FROM frames WHERE command = 3 AND vin LIKE ?",
                                      (prefix + "%",)).fetchone()[0]
    assert stored_reissues >= int(reissue["Request Count"]) - int(reissue["Failure Count"])
    returncode, vins = platform_summary(db)
    for vin, v in vins.items():
        assert v["violations"] == {}, (vin, v["violations"])
    assert returncode == 0


@pytest.mark.soak  # a second Locust master run (~7 s): `pytest -m soak`
@pytest.mark.timeout(90)
def test_stages_shape_ramps_up_and_down_then_stops(tmp_path: Path) -> None:
    need_locust()
    db = tmp_path / "platform.db"
    platform, port = start_platform(db, tmp_path / "platform.log")
    cmd = [sys.executable, "-m", "locust", "-f", f"{LOCUSTFILE},{SHAPE}", "--headless",
           "--loglevel", "WARNING", "--host", f"tcp://127.0.0.1:{port}", "--stages", "4:4:4,0:2",
           "--period", "2", "--heartbeat", "1",
           "--vin-prefix", "LTBOXSHP", "--csv", str(tmp_path / "shape"), "--exit-code-on-error", "1",
           "--only-summary"]
    try:
        with (tmp_path / "locust.err").open("wb") as err:
            done = subprocess.run(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    finally:
        stop(platform)
    assert done.returncode == 0, logs_of(tmp_path)  # the shape ended the run by itself
    rows = stats(tmp_path / "shape_stats.csv")
    assert int(rows["login"]["Request Count"]) == 4 and int(rows["Aggregated"]["Failure Count"]) == 0, rows
    returncode, vins = platform_summary(db)
    assert sorted(vins) == [vin_for(k, "LTBOXSHP") for k in range(4)]
    for vin, v in vins.items():  # every vehicle stopped by the ramp down logged out
        frames = v["frames"]
        assert isinstance(frames, dict) and frames.get("0x01") == 1 and frames.get("0x04") == 1, (vin, v)
        assert v["violations"] == {}, (vin, v)
    assert returncode == 0


@pytest.mark.timeout(60)
def test_a_bad_option_stops_locust_at_start_naming_it(tmp_path: Path) -> None:
    need_locust()
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1", "--run-time", "5s",
           "--host", "tcp://127.0.0.1:9", "--period", "0.5"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=40)
    assert done.returncode == 1 and "--period 0.5" in done.stderr, done.stderr[-2000:]
