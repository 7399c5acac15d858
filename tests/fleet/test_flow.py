"""Flow control of a fleet vehicle: a paused transport gets no new frames; reports wait in the bounded
backlog and go out as reissue on resume (no socket: a recording transport and a platform session)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.protocol import wire
from agent.protocol.model import Command
from agent.protocol.session import PlatformConfig, PlatformSession
from sim.fleet.client import WRITE_HIGH_WATER, FleetVehicle, frame_kinds
from sim.fleet.runner import Fleet, FleetConfig


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.limits: dict[str, Any] = {}

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = {"high": high, "low": low}

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _online_vehicle(fleet: Fleet) -> tuple[FleetVehicle, _Transport, PlatformSession]:
    fleet._build(fleet.now())
    v = fleet.vehicles[0]
    tr = _Transport()
    v.connection_made(tr)  # type: ignore[arg-type]
    platform = PlatformSession(PlatformConfig(reply_realtime_success=True),
                               wallclock=lambda: datetime.now(UTC))
    platform.connection_made(0.0)
    platform.receive_data(b"".join(tr.written), 0.0)
    tr.written.clear()
    v.data_received(platform.data_to_send())
    assert v.session.logged_in
    return v, tr, platform


def test_paused_vehicle_keeps_reports_and_reissues_them_on_resume() -> None:
    async def go() -> None:
        fleet = Fleet(FleetConfig(vehicles=1, period=1.0, seconds=10.0, progress=0, window=3,
                                  backlog_limit=4))
        fleet._loop = asyncio.get_running_loop()
        fleet._stopped = True  # no scheduler timer: the test drives the vehicle
        v, tr, _ = _online_vehicle(fleet)
        assert tr.limits["high"] == WRITE_HIGH_WATER
        wall = datetime.now(UTC).replace(microsecond=0)
        now = fleet.now()
        v.collect(now, wall)
        assert frame_kinds(b"".join(tr.written)) == ["realtime"]
        tr.written.clear()
        v.pause_writing()
        for k in range(1, 7):
            v.collect(now + k, wall + timedelta(seconds=k))
        assert tr.written == []  # nothing written while paused
        assert len(v.backlog) == 4 and fleet.stats.dropped["backlog_full"] == 2  # the bound still holds
        v.resume_writing()
        sent = frame_kinds(b"".join(tr.written))
        assert sent == ["reissue"] * 3  # the reissue window, oldest first
        times = [t for (cmd, t) in v.inflight if cmd == Command.REISSUE]
        assert times == sorted(times) and times[0] == wall + timedelta(seconds=3)
        assert len(v.backlog) == 1
    asyncio.run(go())


def test_a_frame_written_on_an_acknowledgement_gets_its_deadline_scheduled() -> None:
    """A heartbeat reply that makes the session write the next delivery barrier (a heartbeat with its own
    reply deadline) must reach the fleet's scheduler, though its events are all deliveries."""
    async def go() -> None:
        fleet = Fleet(FleetConfig(vehicles=1, period=1.0, seconds=10.0, progress=0))
        fleet._loop = asyncio.get_running_loop()
        fleet._stopped = True
        v, tr, platform = _online_vehicle(fleet)
        wall = datetime.now(UTC).replace(microsecond=0)
        now = fleet.now()
        for k in range(v.session.timing.barrier_after + 1):  # a barrier heartbeat after the 100th upload
            v.collect(now + k, wall + timedelta(seconds=k))
        frames = wire.Framer().feed(b"".join(tr.written))
        heartbeats = [f.raw for f in frames if f.command == Command.HEARTBEAT]
        assert len(heartbeats) == 1
        tr.written.clear()
        scheduled: list[FleetVehicle] = []
        real = fleet.schedule_tick

        def spy(vehicle: FleetVehicle) -> None:
            scheduled.append(vehicle)
            real(vehicle)
        fleet.schedule_tick = spy  # type: ignore[method-assign]
        platform.receive_data(heartbeats[0], 0.0)
        v.data_received(platform.data_to_send())  # settles the 100 uploads, writes the tail barrier
        assert frame_kinds(b"".join(tr.written)) == ["heartbeat"]
        assert scheduled == [v], "the new heartbeat's reply deadline was not scheduled"
    asyncio.run(go())


def test_a_failing_vehicle_step_is_counted_and_the_fleet_goes_on() -> None:
    """A bug in one vehicle's collection is logged and counted; the scheduler keeps running every vehicle,
    that one included."""
    from sim.fleet.acksink import AckServer

    async def go() -> tuple[dict[str, Any], int]:
        server = AckServer()
        await server.start()
        fleet = Fleet(FleetConfig(port=server.port, vehicles=3, period=1.0, seconds=5.0, drain=2.0,
                                  progress=0))
        calls = 0

        def patch() -> None:
            v = fleet.vehicles[1]
            real = v.collect

            def flaky(now: float, wall: datetime) -> None:
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise RuntimeError("a bug in one step")
                real(now, wall)
            v.collect = flaky  # type: ignore[method-assign]

        async def when_built() -> None:
            while not fleet.vehicles:
                await asyncio.sleep(0)
            patch()
        task = asyncio.create_task(when_built())
        try:
            result = await fleet.run()
        finally:
            await task
            await server.stop()
        return result, calls
    result, calls = asyncio.run(go())
    stats = result["stats"]
    assert stats["failures"] == {"bug: RuntimeError": 1}
    assert calls >= 3  # the failing vehicle was scheduled again after its failure
    assert stats["counters"]["collected"] >= 3 * 3 - 1  # the other two, and this one after its failure
    assert result["backlog"] == result["in_flight"] == 0
