"""The lite firmware's code (run in CPython here: the same modules) against the strict reference
platform over loopback TCP: its SocketLink, login/realtime/logout and every frame's conformance.

The firmware has no sockets under the WebAssembly MicroPython port, so this is the one test of
``tbox_lite.link.SocketLink``; the platform's clock is the firmware's (recorded traffic of 2025-01-01).
"""

from __future__ import annotations

import asyncio
import struct
import sys
import threading
import time
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.boardgen import compile_table
from agent.canbus.mapping import load_mapping
from sim.platform.db import PlatformDB
from sim.platform.server import PlatformServer, ServerConfig
from sim.run import simulate

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "board" / "micropython"
START = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
VIN = "LTBXLTE0000000002"
SECONDS = 25.0


def _firmware() -> types.SimpleNamespace:
    sys.path.insert(0, str(BOARD))
    try:
        from tbox_lite import terminal
        from tbox_lite.link import SocketLink
        from tbox_lite.ring import Ring
    finally:
        sys.path.remove(str(BOARD))
    return types.SimpleNamespace(Terminal=terminal.Terminal, ONLINE=terminal.ONLINE, SocketLink=SocketLink,
                                 Ring=Ring)


class _Clock:
    """Float time for the recording; integer UTC seconds and ms ticks for the firmware."""

    def __init__(self, t: float) -> None:
        self.start = t
        self.t = t

    def seconds(self) -> int:
        return int(self.t)

    def ticks_ms(self) -> int:
        return round((self.t - self.start) * 1000)

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


class _Can:
    """Recorded frames, delivered once the clock has passed their timestamp."""

    def __init__(self, frames: list[tuple[float, int, bytes]], clock: _Clock) -> None:
        self.frames = frames
        self.clock = clock
        self.i = 0

    def recv(self) -> tuple[int, bytes, int] | None:
        if self.i >= len(self.frames) or self.frames[self.i][0] >= self.clock.t:
            return None
        stamp, key, data = self.frames[self.i]
        self.i += 1
        return key, data, round((stamp - self.clock.start) * 1000)


class _Platform:
    """PlatformServer on its own event loop thread (its SQLite connection lives there)."""

    def __init__(self, db: Path, wallclock: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        config = ServerConfig(host="127.0.0.1", port=0, db_path=str(db))

        async def make() -> PlatformServer:
            server = PlatformServer(config, wallclock)
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(make(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)

        async def close_db() -> None:
            self.server.db.close()

        asyncio.run_coroutine_threadsafe(close_db(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.mark.parametrize("edition", [2016, 2025])
def test_firmware_frames_conform_at_the_reference_platform(tmp_path: Path, edition: int) -> None:
    fw = _firmware()
    mapping = load_mapping(ROOT / "dbc" / "tbox_ev.toml")
    table = types.ModuleType("tbox_table")
    exec(compile(compile_table(mapping, edition), "tbox_table.py", "exec"), table.__dict__)
    frames = [
        (m.timestamp, m.arbitration_id, bytes(m.data))
        for m in simulate(None, "wltc3", 2, SECONDS, start_utc=START)
        if m.arbitration_id in table.ROUTES
    ]
    clock = _Clock(START.timestamp())
    platform = _Platform(tmp_path / "platform.db", clock.utc)
    try:
        link = fw.SocketLink("127.0.0.1", platform.server.port, 5.0)
        ring = fw.Ring(str(tmp_path / "ring.bin"), 16, 256)
        options = {"period_s": 2, "serial_path": str(tmp_path / "serial.txt")}
        term = fw.Terminal(table, _Can(frames, clock), link, ring, clock.seconds, clock.ticks_ms,
                           VIN.encode(), b"89860000000000000002", options)
        for step in range(int(SECONDS * 20) + 1):
            clock.t = START.timestamp() + step / 20
            term.poll()
            deadline = time.monotonic() + 5.0
            while term.state not in (fw.ONLINE, 0) and time.monotonic() < deadline:  # wait for the reply
                time.sleep(0.005)
                term.poll()
            assert term.state == fw.ONLINE, f"not online at {step / 20:.2f} s"
        term.stop()
        time.sleep(0.3)  # let the platform read the logout
        ring.close()
    finally:
        platform.close()
    db = PlatformDB(str(tmp_path / "platform.db"))
    rows = list(db.frames(VIN))
    violations = db.violations(VIN)
    db.close()
    assert violations == [], violations
    commands = [r.command for r in rows]
    assert commands[0] == 0x01 and commands[-1] == 0x04
    assert commands.count(0x02) == term.sent_realtime >= int(SECONDS / 2) - 1
    assert all(r.decodable and r.edition == edition for r in rows)
    assert term.sent_reissue == 0 and len(ring) == 0
    assert struct.unpack(">H", bytes.fromhex(rows[-1].raw)[30:32])[0] == 1  # logout carries the login serial
