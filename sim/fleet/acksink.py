"""A minimal acknowledging platform: measures a fleet without the reference platform's checks and storage.

One ``PlatformSession`` per connection (``reply_realtime_success``: every realtime/reissue is acknowledged,
logins accepted, heartbeats answered); no conformance checks, no database. It shows what the fleet host
itself sustains when the platform is not the limit (``tests/bench/test_fleet_bench.py``).

``python -m sim.fleet.acksink --listen 127.0.0.1:0 --seconds 60`` prints ``listening on HOST:PORT`` on
stderr, and at the end the frames it received.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from agent.protocol.session import PlatformConfig, PlatformSession
from sim.fleet.sinkserver import SinkServer, run_main

_CONFIG = PlatformConfig(reply_realtime_success=True)


def _now() -> datetime:
    return datetime.now(UTC)


class _Conn(asyncio.Protocol):
    def __init__(self, server: SinkServer) -> None:
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


class AckServer(SinkServer):
    """Accepts TCP connections on ``host:port`` and acknowledges everything through ``PlatformSession``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Conn, host, port)


def main(argv: list[str] | None = None) -> int:
    return run_main("python -m sim.fleet.acksink", __doc__, AckServer, argv)


if __name__ == "__main__":
    sys.exit(main())
