"""Helpers for the reference-platform tests: a server on 127.0.0.1:0 and a TerminalSession client."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.protocol import codec
from agent.protocol.model import (
    Alarm,
    ChargingState,
    Command,
    DcDcState,
    Edition,
    Encryption,
    Frame,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    RealtimeReport,
    ResponseFlag,
    RunningMode,
    VehicleData,
    VehicleLogin,
    VehicleState,
)
from agent.protocol.session import Event, MemorySerialStore, TerminalConfig, TerminalHandler, TerminalSession
from sim.platform.server import PlatformServer, ServerConfig

VIN = "LTBOXTEST00000001"
IO_TIMEOUT = 5.0


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def vehicle(speed: float = 50.0, soc: int = 80, mileage: float = 1000.0,
            state: VehicleState = VehicleState.STARTED,
            gear: GearPosition = GearPosition.DRIVE) -> VehicleData:
    return VehicleData(state, ChargingState.NOT_CHARGING, RunningMode.ELECTRIC, speed, mileage, 350.0, 10.0,
                       soc, DcDcState.WORKING, Gear(gear), 5000, 10, 0)


def report(t: datetime, *, level: int | None = None, **kw: Any) -> RealtimeReport:
    blocks: list[Any] = [vehicle(**kw)]
    if level is not None:
        flags = GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE if level else GeneralAlarmFlag(0)
        blocks.append(Alarm(level, flags))
    return RealtimeReport(t, tuple(blocks))


def frame_bytes(command: int, body: Any, vin: str = VIN, edition: Edition = Edition.E2016) -> bytes:
    return codec.encode_frame(Frame(edition, command, ResponseFlag.COMMAND, vin, Encryption.NONE, body))


def login_bytes(serial: int, t: datetime | None = None, vin: str = VIN) -> bytes:
    body = VehicleLogin(t or now_utc(), serial, "89860000000000000001", 1, 0, ())
    return frame_bytes(Command.VEHICLE_LOGIN, body, vin)


class Handler(TerminalHandler):
    """Answers queries with fixed values and accepts every set."""

    def __init__(self) -> None:
        self.params: dict[int, Any] = {0x01: 1000, 0x02: 10, 0x09: 30}

    def query_parameters(self, ids: tuple[int, ...]) -> Any:
        from agent.protocol.model import Parameter

        return [Parameter(i, self.params[i]) for i in ids if i in self.params]

    def validate_parameters(self, items: tuple[Any, ...]) -> bool:
        return True


class Client:
    """A terminal over asyncio streams, driven by ``TerminalSession`` (or raw bytes)."""

    def __init__(self, port: int, vin: str = VIN, *, edition: Edition = Edition.E2016,
                 ssl_ctx: ssl.SSLContext | None = None, wallclock: Callable[[], datetime] | None = None,
                 serial_store: MemorySerialStore | None = None, cipher: Any = None,
                 signer: Any = None) -> None:
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.loop = asyncio.get_running_loop()
        self.handler = Handler()
        self.session = TerminalSession(
            TerminalConfig(vin, edition, iccid="89860000000000000001"),
            wallclock=wallclock or (lambda: datetime.now(UTC)),
            serial_store=serial_store or MemorySerialStore(), handler=self.handler, cipher=cipher,
            signer=signer,
        )
        self.events: list[Event] = []
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, ssl=self.ssl_ctx,
                                    server_hostname="localhost" if self.ssl_ctx else None), IO_TIMEOUT)

    async def login(self) -> None:
        await self.connect()
        self.events += self.session.connection_made(self.loop.time())
        await self.flush()
        await self.pump_until(lambda: self.session.logged_in)

    async def flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def pump(self, seconds: float = 0.2) -> bytes:
        """Read for up to ``seconds``; feed the session; answer downlinks."""
        got = b""
        deadline = self.loop.time() + seconds
        while (left := deadline - self.loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(self.reader.read(65536), min(left, 0.05))
            except TimeoutError:
                chunk = None
            if chunk == b"":
                break
            if chunk:
                got += chunk
                self.events += self.session.receive_data(chunk, self.loop.time())
            self.events += self.session.tick(self.loop.time())
            await self.flush()
        return got

    async def pump_until(self, cond: Callable[[], bool], seconds: float = IO_TIMEOUT) -> None:
        deadline = self.loop.time() + seconds
        while not cond():
            assert self.loop.time() < deadline, "condition not reached in time"
            await self.pump(0.1)

    async def realtime(self, rep: RealtimeReport) -> None:
        self.events += self.session.send_realtime(rep, self.loop.time())
        await self.flush()

    async def reissue(self, rep: RealtimeReport) -> None:
        self.events += self.session.send_reissue(rep, self.loop.time())
        await self.flush()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), IO_TIMEOUT)


def config(tmp_path: Path, **kw: Any) -> ServerConfig:
    return replace(ServerConfig(host="127.0.0.1", port=0, db_path=str(tmp_path / "p.db")), **kw)


async def start(tmp_path: Path, **kw: Any) -> PlatformServer:
    server = PlatformServer(config(tmp_path, **kw))
    await server.start()
    return server


async def settle(server: PlatformServer, seconds: float = 0.3) -> None:
    """Give the server time to process what was sent, then commit."""
    await asyncio.sleep(seconds)
    server.db.commit()


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ago(seconds: float) -> datetime:
    return now_utc() - timedelta(seconds=seconds)
