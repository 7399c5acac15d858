"""Where a fleet vehicle's second goes, without sockets: N vehicles of one ``Fleet`` logged in to one
``PlatformSession`` each through in-memory transports; every second each vehicle collects and sends, the
platform sessions answer, the vehicles take the acknowledgements. CPU time (``time.process_time``) per
report of the whole collection and of the acknowledgement, and of the parts named below (measured by
wrapping them: each wrapper adds well under a microsecond). The platform sessions' own time is not counted.
Sockets, system calls and the event loop are what this leaves out: the capacity bench has the whole.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.protocol.session import PlatformConfig, PlatformSession, TerminalSession
from sim.fleet.client import FleetVehicle
from sim.fleet.lite import LiteVehicle
from sim.fleet.runner import Fleet, FleetConfig
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
COMMAND = ".venv/bin/pytest -q -s -m bench tests/bench/test_fleet_cost_bench.py"
VEHICLES = int(os.environ.get("FLEET_COST_VEHICLES", "3000"))
SECONDS = int(os.environ.get("FLEET_COST_SECONDS", "10"))


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


@contextmanager
def _timed(owner: Any, name: str, spent: dict[str, float]) -> Iterator[None]:
    """Accumulate the CPU time of every call of ``owner.name`` into ``spent[name]``."""
    real: Callable[..., Any] = getattr(owner, name)
    own = name in vars(owner)  # else inherited: remove the wrapper afterwards instead of setting it back
    clock = time.process_time
    spent[name] = 0.0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = clock()
        try:
            return real(*args, **kwargs)
        finally:
            spent[name] += clock() - t
    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, real)
        else:
            delattr(owner, name)


def _run(n: int, seconds: int) -> dict[str, float]:
    async def go() -> dict[str, float]:
        fleet = Fleet(FleetConfig(vehicles=n, period=1.0, seconds=seconds, progress=0))
        fleet._loop = asyncio.get_running_loop()
        fleet._stopped = True  # no timer: this test drives the vehicles
        fleet._build(fleet.now())
        links: list[tuple[FleetVehicle, _Transport, PlatformSession]] = []
        for v in fleet.vehicles:
            tr = _Transport()
            v.connection_made(tr)  # type: ignore[arg-type]
            platform = PlatformSession(PlatformConfig(reply_realtime_success=True),
                                       wallclock=lambda: datetime.now(UTC))
            platform.connection_made(0.0)
            links.append((v, tr, platform))

        def exchange() -> list[tuple[FleetVehicle, bytes]]:
            replies = []
            for v, tr, platform in links:
                for data in tr.out:
                    platform.receive_data(data, 0.0)
                tr.out.clear()
                reply = platform.data_to_send()
                if reply:
                    replies.append((v, reply))
            return replies

        for v, reply in exchange():  # logins
            v.data_received(reply)
        assert all(v.session.logged_in for v in fleet.vehicles)
        gc.collect()
        gc.freeze()  # as Fleet.run does
        spent: dict[str, float] = {}
        base = datetime.now(UTC).replace(microsecond=0)
        now = fleet.now()
        collect = ack = 0.0
        with _timed(LiteVehicle, "step", spent), _timed(LiteVehicle, "encode", spent), \
                _timed(TerminalSession, "send_realtime", spent), \
                _timed(TerminalSession, "receive_data", spent):
            for sec in range(1, seconds + 1):
                t = time.process_time()
                for v in fleet.vehicles:
                    v.collect(now + sec, base + timedelta(seconds=sec))
                collect += time.process_time() - t
                replies = exchange()
                t = time.process_time()
                for v, reply in replies:
                    v.data_received(reply)
                ack += time.process_time() - t
        gc.unfreeze()
        reports = fleet.stats.acked["realtime"]
        assert reports == n * seconds and fleet.stats.counters["collected"] == reports
        us = {k: 1e6 * s / reports for k, s in spent.items()}
        return {"collect": 1e6 * collect / reports, "ack": 1e6 * ack / reports, **us}
    return asyncio.run(go())


def test_fleet_cost_per_report() -> None:
    r = _run(VEHICLES, SECONDS)
    print(r)
    total = r["collect"] + r["ack"]
    rest = r["collect"] - r["step"] - r["encode"] - r["send_realtime"]
    write_section(
        "Fleet cost per report (no sockets)",
        f"""{VEHICLES:,} light vehicles (2016, 96 cells, 32 probes), {SECONDS} s at a 1 s period, each
logged in to its own `PlatformSession` through an in-memory transport: CPU time per report of the fleet's
own Python, to which the capacity benchmark's figure adds sockets, system calls and the event loop.

| part | µs per report |
|---|---:|
| collection, all of it (`FleetVehicle.collect`) | {r['collect']:.1f} |
| · physics (`LiteVehicle.step`) | {r['step']:.1f} |
| · packing the data unit (`LiteVehicle.encode`) | {r['encode']:.1f} |
| · the session's upload: frame, tracking (`TerminalSession.send_realtime`) | {r['send_realtime']:.1f} |
| · the rest: report object, in-flight entry, write, counters, deadline | {rest:.1f} |
| the acknowledgement, all of it (`FleetVehicle.data_received`) | {r['ack']:.1f} |
| · framing, decoding and matching it (`TerminalSession.receive_data`) | {r['receive_data']:.1f} |
| **total** | **{total:.1f}** |""",
        COMMAND,
    )
    assert total > 0
