"""The reference platform over loopback: logins, storage, dump/check, downlink, TLS, garbage, load."""

from __future__ import annotations

import json
from pathlib import Path

from agent.protocol.model import Command
from agent.protocol.session import ClientTiming
from sim.platform.cli import conformance_summary
from tests.platform.support import VIN, Client, ago, now_utc, report, run, settle, start


def test_login_realtime_reissue_heartbeat_are_stored(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start(tmp_path)
        try:
            c = Client(server.port)
            await c.login()
            t = now_utc()
            await c.realtime(report(t))
            await c.reissue(report(ago(60)))
            c.session.timing = ClientTiming(heartbeat_interval=0.1)
            await c.pump(0.4)  # a heartbeat goes out and is answered
            await c.close()
            await settle(server)
            rows = list(server.db.frames())
            commands = [r.command for r in rows]
            assert commands[:3] == [Command.VEHICLE_LOGIN, Command.REALTIME, Command.REISSUE]
            assert Command.HEARTBEAT in commands
            assert rows[0].reply is not None and rows[1].reply is None  # realtime: Annex B silence
            assert rows[1].vin == VIN and rows[1].collected == t.isoformat()
            assert rows[1].decoded["data"]["time"]
            assert server.db.violations() == []
        finally:
            await server.stop()

    run(main())
    summary = conformance_summary(str(tmp_path / "p.db"))
    v = summary["vins"][VIN]
    assert v["realtime"] == 1 and v["reissue"] == 1 and summary["violations"] == 0
    assert json.dumps(summary)
