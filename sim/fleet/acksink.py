"""A minimal acknowledging platform: measures a fleet without the reference platform's checks and storage.

One ``PlatformSession`` per connection (``reply_realtime_success``: every realtime/reissue is acknowledged,
logins accepted, heartbeats answered); no conformance checks, no database. It shows what the fleet host
itself sustains when the platform is not the limit (``tests/bench/test_fleet_bench.py``).

``python -m sim.fleet.acksink --listen 127.0.0.1:0 --seconds 60`` prints ``listening on HOST:PORT`` on
stderr, and at the end the frames it received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime

from agent.protocol.session import PlatformConfig, PlatformSession

_CONFIG = PlatformConfig(reply_realtime_success=True)


def _now() -> datetime:
    return datetime.now(UTC)


class _Conn(asyncio.Protocol):
    def __init__(self, server: AckServer) -> None:
        self.server = server
        self.session = PlatformSession(_CONFIG, wallclock=_now)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        self.session.connection_made(asyncio.get_running_loop().time())

    def data_received(self, data: bytes) -> None:
        self.server.bytes_received += len(data)
        self.session.receive_data(data, asyncio.get_running_loop().time())
        out = self.session.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)


class AckServer:
    """Accepts TCP connections on ``host:port`` and acknowledges everything through ``PlatformSession``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.connections = 0
        self.bytes_received = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


async def _main(host: str, port: int, seconds: float) -> None:
    server = AckServer(host, port)
    await server.start()
    print(f"listening on {server.host}:{server.port}", file=sys.stderr, flush=True)
    await asyncio.sleep(seconds)
    await server.stop()
    print(f"connections {server.connections}, bytes received {server.bytes_received}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.fleet.acksink", description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    p.add_argument("--seconds", type=float, default=3600.0)
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    asyncio.run(_main(host or "127.0.0.1", int(port), args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
