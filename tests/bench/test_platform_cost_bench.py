"""The reference platform's own Python per fleet frame, without sockets: N light vehicles logged in to one
``PlatformServer`` through in-memory transports; their reports of S seconds are packed first, then fed
to the server connection by connection, one group commit per second. CPU time (``time.process_time``,
the checkpoint thread included) per frame, with the fast lane (default) and without it
(``ServerConfig.fast_lane=False``). Sockets, system calls and the event loop are what this leaves out:
the capacity benches have the whole.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sim.fleet.runner import Fleet, FleetConfig
from sim.platform.server import PlatformServer, ServerConfig
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
COMMAND = ".venv/bin/pytest -q -s -m bench tests/bench/test_platform_cost_bench.py"
VEHICLES = int(os.environ.get("PLATFORM_COST_VEHICLES", "2000"))
SECONDS = int(os.environ.get("PLATFORM_COST_SECONDS", "10"))


class _Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def get_extra_info(self, key: str, default: Any = None) -> Any:
        return ("127.0.0.1", 0)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _run(db: Path, n: int, seconds: int, fast: bool) -> dict[str, float]:
    async def go() -> dict[str, float]:
        server = PlatformServer(ServerConfig(db_path=str(db), reply_realtime=True, store_json=False,
                                             fast_lane=fast))
        server.db.start_checkpointer()
        fleet = Fleet(FleetConfig(vehicles=n, period=1.0, seconds=seconds, progress=0))
        fleet._loop = asyncio.get_running_loop()
        fleet._stopped = True  # no timer: this test drives the vehicles
        fleet._build(fleet.now())
        links = []
        for v in fleet.vehicles:
            out = _Transport()
            v.connection_made(out)  # type: ignore[arg-type]
            back = _Transport()
            links.append((v, out, server._opened(back), back))  # type: ignore[arg-type]

        def commit() -> None:
            if server._commit_handle is not None:
                server._commit_handle.cancel()
            server._group_commit()

        for _v, out, conn, _back in links:  # logins
            for data in out.out:
                server._received(conn, data)
            out.out.clear()
        commit()
        for v, _out, _conn, back in links:
            v.data_received(b"".join(back.out))
            back.out.clear()
        assert all(v.session.logged_in for v in fleet.vehicles)
        base = datetime.now(UTC).replace(microsecond=0)
        now = fleet.now()
        rounds = []
        for sec in range(1, seconds + 1):  # packed before the clock starts: only the server is timed
            for v in fleet.vehicles:
                v.collect(now + sec, base + timedelta(seconds=sec))
            rounds.append([(conn, b"".join(out.out)) for _v, out, conn, _back in links])
            for _v, out, _conn, _back in links:
                out.out.clear()
        gc.collect()
        gc.freeze()  # as `serve` does
        received = committed = 0.0
        for batch in rounds:
            t = time.process_time()
            for conn, data in batch:
                server._received(conn, data)
            t1 = time.process_time()
            commit()
            received += t1 - t
            committed += time.process_time() - t1
        gc.unfreeze()
        server.db.stop_checkpointer()
        frames = n * seconds
        taken = server.fast_lane_reports
        server.db.close()
        with sqlite3.connect(db) as con:
            stored = con.execute("SELECT COUNT(*) FROM frames WHERE command = 2").fetchone()[0]
            bad = con.execute("SELECT COUNT(*) FROM violations").fetchone()[0]
        assert stored == frames and bad == 0
        assert taken == (frames if fast else 0)
        return {"received": 1e6 * received / frames, "commit": 1e6 * committed / frames}
    return asyncio.run(go())


def test_platform_cost_per_frame(tmp_path: Path) -> None:
    full = _run(tmp_path / "full.db", VEHICLES, SECONDS, fast=False)
    fast = _run(tmp_path / "fast.db", VEHICLES, SECONDS, fast=True)
    print({"full": full, "fast": fast})
    rows = "\n".join(
        f"| {name} | {r['received']:.1f} | {r['commit']:.1f} | **{r['received'] + r['commit']:.1f}** |"
        for name, r in (("full path (`--no-fast-lane`)", full), ("fast lane (default)", fast)))
    write_section(
        "Reference platform cost per frame (no sockets)",
        f"""{VEHICLES:,} light vehicles (2016, 96 cells, 32 probes), {SECONDS} s of reports at a 1 s period,
fed to one `PlatformServer` (`--reply-realtime --no-json`) through in-memory transports, one group
commit per second: the server's CPU time per frame (checkpoint thread included), without sockets,
system calls of the links or the event loop. Every report stored, no violation, in both runs.

| path | frame, check, reply, buffer µs | commit (SQLite) µs | total µs per frame |
|---|---:|---:|---:|
{rows}""",
        COMMAND,
    )
    assert fast["received"] < full["received"]
