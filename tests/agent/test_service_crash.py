"""``kill -9`` of the whole agent (``tbox agent run --simulate``) mid-drive, then a restart: the outbox is
sound, the login serial continues from the persisted one, what was in flight at the kill is reissued,
nothing arrives twice as realtime."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.protocol.model import Command
from agent.protocol.session import VehicleLoggedIn
from tests.agent.test_service import write_config
from tests.uplink.test_tcp import Platform

REPO = Path(__file__).resolve().parents[2]


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_agent_killed_and_restarted_resumes(tmp_path: Path) -> None:
    platform = Platform()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(platform.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    cfg = write_config(tmp_path, platform.port, normal_period=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "agent.cli", "agent", "run", "--config", str(cfg), "--simulate"]
    try:
        first = subprocess.Popen([*cmd, "--seconds", "60"], env=env, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: len(platform.times(Command.REALTIME)) >= 3, 30, "realtime from the first run")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        before = len(platform.received)
        con = sqlite3.connect(tmp_path / "outbox.db")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        second = subprocess.run([*cmd, "--seconds", "4"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    serials = [e.serial for e in platform.events if isinstance(e, VehicleLoggedIn)]
    assert len(serials) >= 2 and serials == sorted(serials) and len(set(serials)) == len(serials)
    realtime = platform.times(Command.REALTIME)
    assert len(realtime) == len(set(realtime)), "a report arrived twice as realtime"
    assert len(platform.received) > before
    # unconfirmed at the kill (in flight, or silently delivered but unproven): reissued by the second run
    assert platform.times(Command.REISSUE)
    con = sqlite3.connect(tmp_path / "outbox.db")
    left = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    con.close()
    assert left == 0, f"{left} records still in the outbox after the clean second run"
