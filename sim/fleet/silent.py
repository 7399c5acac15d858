"""A silent platform for the ``silent`` scenario: accepts connections, reads, never answers.

``python -m sim.fleet.silent --listen 127.0.0.1:0 --seconds 60`` prints ``listening on HOST:PORT`` on
stderr; point ``tbox fleet --scenario silent --target HOST:PORT`` at it. Every vehicle then times out its
login (param 0x0A, ``--login-timeout``), retries per the session's rules and keeps every report in its
backlog; the summary shows ``never_logged_in`` = N, ``login: timeout`` failures and the whole fleet's
reports in ``backlog``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys


class _Sink(asyncio.Protocol):
    def __init__(self, server: SilentServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server.connections += 1

    def data_received(self, data: bytes) -> None:
        self.server.bytes_received += len(data)


class SilentServer:
    """Accepts TCP connections on ``host:port`` and never writes a byte; counts what it received."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.connections = 0
        self.bytes_received = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Sink(self), self.host, self.port, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


async def _main(host: str, port: int, seconds: float) -> None:
    server = SilentServer(host, port)
    await server.start()
    print(f"listening on {server.host}:{server.port}", file=sys.stderr, flush=True)
    await asyncio.sleep(seconds)
    await server.stop()
    print(f"connections {server.connections}, bytes received {server.bytes_received}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.fleet.silent", description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    p.add_argument("--seconds", type=float, default=3600.0)
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    asyncio.run(_main(host or "127.0.0.1", int(port), args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
