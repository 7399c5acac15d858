"""A silent platform for the ``silent`` scenario: accepts connections, reads, never answers.

``python -m sim.fleet.silent --listen 127.0.0.1:0 --seconds 60`` prints ``listening on HOST:PORT`` on
stderr; point ``tbox fleet --scenario silent --target HOST:PORT`` at it. Every vehicle then times out its
login (param 0x0A, ``--login-timeout``), retries per the session's rules and keeps every report in its
backlog; the summary shows ``never_logged_in`` = N, ``login: timeout`` failures and the whole fleet's
reports in ``backlog``.
"""

from __future__ import annotations

import asyncio
import sys

from sim.fleet.sinkserver import SinkServer, run_main


class _Sink(asyncio.Protocol):
    def __init__(self, server: SinkServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.server.bytes_received += len(data)


class SilentServer(SinkServer):
    """Accepts TCP connections on ``host:port`` and never writes a byte; counts what it received."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(_Sink, host, port)


def main(argv: list[str] | None = None) -> int:
    return run_main("python -m sim.fleet.silent", __doc__, SilentServer, argv)


if __name__ == "__main__":
    sys.exit(main())
