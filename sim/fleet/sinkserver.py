"""What the fleet's stand-in platforms share: a TCP listener counting connections and bytes, and the
``python -m`` entry point (``--listen HOST:PORT --seconds S`` plus a module's own options;
``listening on HOST:PORT`` on stderr; uvloop when installed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable

from sim.eventloop import loop_factory


class SinkServer:
    """Listens on ``host:port``; ``protocol(server)`` builds each connection's ``asyncio.Protocol``."""

    def __init__(self, protocol: Callable[[SinkServer], asyncio.BaseProtocol], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.protocol = protocol
        self.host = host
        self.port = port
        self.connections = 0
        self.bytes_received = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: self.protocol(self), self.host, self.port,
                                                backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None


async def _serve(server: SinkServer, seconds: float) -> None:
    await server.start()
    print(f"listening on {server.host}:{server.port}", file=sys.stderr, flush=True)
    await asyncio.sleep(seconds)
    await server.stop()
    print(f"connections {server.connections}, bytes received {server.bytes_received}", file=sys.stderr)


def run_main(prog: str, description: str | None, make: Callable[..., SinkServer],
             argv: list[str] | None = None, *,
             arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """The command line of a stand-in platform module. ``arguments`` adds the module's own options;
    then ``make(host, port, args)`` gets the parsed namespace too (without it: ``make(host, port)``)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    p.add_argument("--seconds", type=float, default=3600.0)
    if arguments is not None:
        arguments(p)
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = make(host or "127.0.0.1", int(port), args) if arguments is not None else \
        make(host or "127.0.0.1", int(port))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_serve(server, args.seconds))
    return 0
