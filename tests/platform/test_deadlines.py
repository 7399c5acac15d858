"""Session deadlines through the server's one deadline heap: downlink resends, then abandonment."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.protocol import wire
from agent.protocol.model import Command
from tests.platform.support import VIN, login_bytes, run, start


def test_unanswered_downlink_is_resent_then_abandoned(tmp_path: Path) -> None:
    """A terminal that never answers a parameter query gets it 1 + 3 times (Annex B), one retry
    interval apart, then the command is marked abandoned; the link stays up meanwhile."""

    async def main() -> tuple[int, str, bool]:
        server = await start(tmp_path, downlink_retry_interval=0.2)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(login_bytes(1))
            await writer.drain()
            framer = wire.Framer()
            logged_in = False
            queries = 0
            cmd_id: int | None = None
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 8.0
            while loop.time() < deadline:
                try:
                    data = await asyncio.wait_for(reader.read(4096), 0.2)
                except TimeoutError:
                    data = b""
                for raw in framer.feed(data):
                    if raw.command == Command.VEHICLE_LOGIN:
                        logged_in = True
                    elif raw.command == Command.PARAMETER_QUERY:
                        queries += 1
                if logged_in and cmd_id is None:
                    cmd_id = server.db.queue_command(VIN, "query", {"ids": [1]})
                    server.db.commit()
                row = server.db.command(cmd_id) if cmd_id is not None else None
                if row is not None and row.status == "abandoned":
                    break
            assert cmd_id is not None
            row = server.db.command(cmd_id)
            status = row.status if row is not None else "?"
            alive = not writer.is_closing() and VIN in server.online
            writer.close()
            return queries, status, alive
        finally:
            await server.stop()

    queries, status, alive = run(main())
    assert (queries, status, alive) == (4, "abandoned", True)
