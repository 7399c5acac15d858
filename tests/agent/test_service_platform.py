"""The agent against the strict reference platform (``sim.platform``) on loopback: a simulated drive
paced in real time on a virtual CAN bus, the platform down for a few seconds in the middle. Afterwards
the platform holds every report, realtime and reissue, in order, nothing duplicated as realtime."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from agent.config import load_config
from agent.pipeline import Emitted
from agent.protocol.model import Command
from agent.service import AgentService
from sim.platform.db import PlatformDB
from sim.platform.server import PlatformServer, ServerConfig
from sim.run import simulate
from tests.agent.test_service import write_config
from tests.uplink.test_tcp import until


def test_outage_mid_drive_reference_platform_holds_every_report(tmp_path: Path) -> None:
    db_path = tmp_path / "platform.db"

    async def main() -> list[Emitted]:
        server = PlatformServer(ServerConfig(db_path=str(db_path), heartbeat_interval=1.0))
        await server.start()
        port = server.port
        settings = load_config(write_config(tmp_path, port, normal_period=1))
        emitted: list[Emitted] = []
        start = datetime.now(UTC).replace(microsecond=0)
        messages = simulate(seconds=30, start_utc=start)
        service = AgentService(settings, messages=messages, on_emit=emitted.append)
        assert service.uplink is not None
        uplink = service.uplink
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(None, stop))
        await until(lambda: len(emitted) >= 3 and uplink.stats.realtime_sent >= 2, what="first reports")
        await server.stop()  # outage
        server.db.close()
        await until(lambda: len(emitted) >= 7, what="reports during the outage")
        server = PlatformServer(ServerConfig(db_path=str(db_path), port=port, heartbeat_interval=1.0))
        await server.start()
        await until(lambda: uplink.stats.logins >= 2, what="login after the outage")
        # the backlog drains; what remains is realtime awaiting its silent window (the logout confirms it)
        await until(lambda: uplink.store.pending() <= 2, timeout=20, what="backlog drained")
        stop.set()  # logout: an acknowledged logout confirms what is in flight
        await asyncio.wait_for(task, 15)
        await server.stop()
        server.db.close()
        return emitted

    emitted = asyncio.run(asyncio.wait_for(main(), 60))
    db = PlatformDB(db_path)
    frames = [f for f in db.frames() if f.command in (Command.REALTIME, Command.REISSUE)
              and f.response == 0xFE]
    violations = db.violations()
    db.close()
    assert violations == [], violations  # the strict platform found nothing to object to
    store_left = AgentService(load_config(tmp_path / "agent.toml"))
    pending = store_left.store.pending()
    store_left.store.close()
    sent = {e.time.isoformat() for e in emitted}
    realtime = [f.collected for f in frames if f.command == Command.REALTIME]
    reissue = [f.collected for f in frames if f.command == Command.REISSUE]
    assert len(realtime) == len(set(realtime)), "a report arrived twice as realtime"
    got = set(realtime) | set(reissue)
    assert pending == 0, f"{pending} reports still in the outbox"
    assert sent == got, f"missing at the platform: {sorted(sent - got)}"
    assert reissue, "the outage produced no reissue"
    assert reissue == sorted(reissue)  # original order, original collection times
