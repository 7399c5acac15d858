"""The ``slow`` scenario: a small fleet against ``sim.fleet.slow`` (correct answers, late and read slowly)
on loopback. Whatever the platform's pace, the fleet's accounting loses nothing."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.protocol.model import Edition
from sim.fleet.lite import LiteVehicle
from sim.fleet.runner import Fleet, FleetConfig, summary
from sim.fleet.slow import SlowServer

ROOT = Path(__file__).resolve().parents[2]


def _run(server: SlowServer, **kw: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """Run a fleet against ``server``; also the most bytes any vehicle's transport held unsent."""
    async def go() -> tuple[dict[str, Any], dict[str, int]]:
        await server.start()
        cfg = FleetConfig(port=server.port, period=1.0, progress=0, scenario="slow", **kw)
        fleet = Fleet(cfg)
        seen = {"max_write_buffer": 0}

        async def watch() -> None:  # bounded: ends with the run
            while True:
                for v in fleet.vehicles:
                    if v.transport is not None:
                        seen["max_write_buffer"] = max(seen["max_write_buffer"],
                                                       v.transport.get_write_buffer_size())
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        try:
            return summary(cfg, await fleet.run()), seen
        finally:
            watcher.cancel()
            await server.stop()
    return asyncio.run(go())


def test_late_acks_within_the_reply_timeout_are_all_acknowledged() -> None:
    server = SlowServer(ack_delay=0.4)
    s, _ = _run(server, vehicles=4, seconds=3.0, drain=3.0, reply_timeout=3.0, login_timeout=3.0)
    r = s["reports"]
    assert r["generated"] >= 8
    assert r["acked"] == r["generated"] and r["unaccounted"] == 0, s
    assert r["delivered_unacked"] == r["dropped"] == r["backlog"] == r["in_flight"] == 0
    assert s["logins"] == 4 and s["failures"] == {}, s
    ack, login = s["latency_ms"]["ack"], s["latency_ms"]["login"]
    assert ack["count"] == r["generated"]
    assert ack["p50"] >= 400.0 and ack["p90"] >= 400.0  # no reply comes before the delay
    assert login["p50"] >= 400.0
    assert server.replies_written >= r["generated"] + 4


def test_acks_later_than_the_reply_timeout_lose_nothing() -> None:
    # 2016 rules (agent.protocol.session): an upload with no reply within the reply timeout, link held,
    # counts as delivered (``delivered_unacked``); the late success reply then finds it settled. A late
    # reply whose time matches nothing pending is taken for the oldest pending upload of its command,
    # so some uploads can end ``acked`` by another report's reply: either way each report is accounted
    # once and none is resent or lost.
    server = SlowServer(ack_delay=1.6)
    s, _ = _run(server, vehicles=3, seconds=3.5, drain=2.0, reply_timeout=0.6, login_timeout=4.0)
    r = s["reports"]
    assert r["generated"] >= 6
    assert r["unaccounted"] == r["dropped"] == 0, s
    assert r["delivered_unacked"] >= 1
    assert r["acked"] + r["delivered_unacked"] + r["backlog"] + r["in_flight"] == r["generated"]
    assert s["logins"] == 3 and s["never_logged_in"] == 0
    # reports collected before the (late) login reply are reissued once; nothing goes out twice
    assert s["frames_sent"]["realtime"] + s["frames_sent"].get("reissue", 0) == r["generated"]


def test_read_rate_throttle_pushes_back_and_loses_nothing() -> None:
    # ~330-byte reports at 1 s per vehicle; the platform reads 100 bytes/s per connection, so its
    # replies (and the acks) fall further and further behind the vehicles' writes
    server = SlowServer(read_rate=100)
    s, _ = _run(server, vehicles=2, seconds=3.5, drain=1.0, reply_timeout=2.5, login_timeout=3.0)
    r = s["reports"]
    assert r["generated"] >= 4
    assert r["unaccounted"] == r["dropped"] == 0, s
    assert r["acked"] + r["delivered_unacked"] + r["backlog"] + r["in_flight"] == r["generated"]
    assert server.read_pauses >= 2  # the throttle engaged on every connection
    assert 1 <= r["acked"] < r["generated"], s  # the platform had not read everything in time
    assert s["latency_ms"]["ack"]["max"] >= 1000.0
    # never more than the budget: 100 bytes in each second a connection was open
    assert server.bytes_received <= 2 * 100 * (s["elapsed_s"] + 1), server.bytes_received


def test_read_rate_throttle_reaches_the_sender() -> None:
    # a raw sender that writes as fast as the kernel takes it: with the platform reading 1 KB/s the
    # kernel's buffers fill and send() stops accepting (EAGAIN): TCP back-pressure, not buffering
    async def go() -> tuple[int, bool, int]:
        server = SlowServer(read_rate=1000)
        await server.start()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setblocking(False)
        chunk, accepted, blocked = bytes(65536), 0, False
        try:
            for _ in range(40):  # bounded: 2 s at most
                try:
                    while accepted < 256 * 1024 * 1024:
                        accepted += sock.send(chunk)
                except BlockingIOError:
                    blocked = True
                await asyncio.sleep(0.05)
            return accepted, blocked, server.bytes_received
        finally:
            sock.close()
            await server.stop()
    accepted, blocked, read = asyncio.run(go())
    assert blocked and accepted < 64 * 1024 * 1024, accepted
    assert 1000 <= read <= 1000 * 4, read  # ~2 s: two or three seconds of budget


@pytest.mark.soak  # ~10 s: `pytest -m soak`
def test_fleet_buffering_stays_bounded_against_a_throttled_platform() -> None:
    # Loopback's kernel buffers take ~4 MB per connection before send() would block, so a vehicle
    # comes back with 16,000 reports in its backlog (4.4 h offline) and a window as large, to a
    # platform reading 2 KB/s: without flow control (FleetVehicle honours pause_writing) ~5.5 MB
    # piled up in its transport. (With the default window and a short --reply-timeout a long run gets
    # there too: each window is confirmed unanswered after the timeout and the next one written.)
    n = 16_000
    server = SlowServer(read_rate=2000, ack_delay=0.3)  # the login reply comes after the backlog is in

    async def go() -> tuple[dict[str, Any], int]:
        await server.start()
        cfg = FleetConfig(port=server.port, vehicles=1, period=1.0, seconds=3.0, drain=0.5, progress=0,
                          scenario="slow", window=n, backlog_limit=n + 100, login_timeout=3.0,
                          reply_timeout=2.0)
        fleet = Fleet(cfg)
        most = 0

        async def fill_then_watch() -> None:
            nonlocal most
            while not fleet.vehicles:
                await asyncio.sleep(0)
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
            for v in fleet.vehicles:
                car = LiteVehicle(v.vin, 5, Edition.E2016, start)
                for k in range(n):
                    car.step(1.0)
                    v.backlog.append(car.report(start + timedelta(seconds=k)))
            fleet.stats.counters["collected"] += n * len(fleet.vehicles)
            while True:  # bounded: cancelled when the run ends
                for v in fleet.vehicles:
                    if v.transport is not None:
                        most = max(most, v.transport.get_write_buffer_size())
                await asyncio.sleep(0.05)

        task = asyncio.create_task(fill_then_watch())
        try:
            return summary(cfg, await fleet.run()), most
        finally:
            task.cancel()
            await server.stop()
    s, most = asyncio.run(go())
    assert s["reports"]["unaccounted"] == 0, s
    assert most <= 256 * 1024, f"{most} bytes held in one vehicle's transport"  # 16.6 KB measured


def test_command_line_names_bad_options_and_serves() -> None:
    bad = subprocess.run([sys.executable, "-m", "sim.fleet.slow", "--ack-delay", "-1"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--ack-delay" in bad.stderr, bad.stderr
    bad = subprocess.run([sys.executable, "-m", "sim.fleet.slow", "--read-rate", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "--read-rate" in bad.stderr, bad.stderr
    t0 = time.monotonic()
    ok = subprocess.run([sys.executable, "-m", "sim.fleet.slow", "--listen", "127.0.0.1:0", "--ack-delay",
                         "0.5", "--read-rate", "1000", "--seconds", "0.3"], cwd=ROOT, capture_output=True,
                        text=True, timeout=30)
    assert ok.returncode == 0 and "listening on 127.0.0.1:" in ok.stderr, ok.stderr
    assert time.monotonic() - t0 < 30
