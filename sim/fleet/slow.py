"""A slow platform for the ``slow`` scenario: answers everything correctly, but late and reads slowly.

One ``PlatformSession`` per connection as in ``sim.fleet.acksink`` (logins accepted, heartbeats answered,
every realtime/reissue acknowledged), with two brakes:

* ``ack_delay`` (``--ack-delay S``): every reply is held ``S`` seconds after the frame it answers was
  read, then written; replies keep their order.
* ``read_rate`` (``--read-rate BYTES_PER_S``): a per-connection budget of bytes read per second. Once the
  current second's budget is used, the transport's reading is paused until the next second (a read never
  takes more than what is left of the budget), so the kernel's receive buffer fills and TCP
  back-pressure reaches the vehicles.

``python -m sim.fleet.slow --listen 127.0.0.1:0 --ack-delay 2 --read-rate 2000 --seconds 60`` prints
``listening on HOST:PORT`` on stderr; point ``tbox fleet --scenario slow --target HOST:PORT`` at it. With
an ack delay below ``--reply-timeout`` every report is acknowledged and the ack latency is at least the
delay; above it, uploads are confirmed unacknowledged after the reply timeout (2016 rules:
``reports.delivered_unacked``) and nothing is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections import deque
from datetime import UTC, datetime

from agent.protocol.session import PlatformConfig, PlatformSession
from sim.fleet.sinkserver import SinkServer, run_main

_CONFIG = PlatformConfig(reply_realtime_success=True)
_CHUNK = 65536  # the most one read takes


def _now() -> datetime:
    return datetime.now(UTC)


class _SlowConn(asyncio.BufferedProtocol):
    """One connection: the session, the held replies, the read budget. A buffered protocol, so a read
    never takes more than what is left of the current second's budget."""

    def __init__(self, server: SlowServer) -> None:
        self.server = server
        self.session = PlatformSession(_CONFIG, wallclock=_now)
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray(_CHUNK)
        self.held: deque[tuple[float, bytes]] = deque()  # (due, reply bytes), in order
        self.writer: asyncio.TimerHandle | None = None
        self.second = math.floor(self.loop.time())  # the read budget's current second
        self.budget = server.read_rate or 0  # bytes left in it
        self.resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections += 1
        self.session.connection_made(self.loop.time())

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for handle in (self.writer, self.resume):
            if handle is not None:
                handle.cancel()
        self.server.replies_dropped += len(self.held)
        self.held.clear()

    def get_buffer(self, sizehint: int) -> memoryview:
        size = _CHUNK
        if self.server.read_rate:
            self._refill()
            size = max(1, min(size, self.budget))  # 0 only between a pause and its resume
        return memoryview(self.buffer)[:size]

    def buffer_updated(self, nbytes: int) -> None:
        now = self.loop.time()
        self.server.bytes_received += nbytes
        self.session.receive_data(bytes(self.buffer[:nbytes]), now)
        out = self.session.data_to_send()
        if out:
            self._hold(out, now)
        if self.server.read_rate:
            self.budget -= nbytes
            if self.budget <= 0 and self.transport is not None and self.resume is None:
                self.transport.pause_reading()  # the kernel's buffer fills: the sender feels it
                self.server.read_pauses += 1
                self.resume = self.loop.call_at(self.second + 1, self._resume)

    # ---- replies, late

    def _hold(self, out: bytes, now: float) -> None:
        if self.server.ack_delay <= 0 and not self.held:
            self._write(out)
            return
        self.held.append((now + self.server.ack_delay, out))
        if self.writer is None:
            self.writer = self.loop.call_at(self.held[0][0], self._release)

    def _release(self) -> None:
        self.writer = None
        now = self.loop.time()
        while self.held and self.held[0][0] <= now:
            self._write(self.held.popleft()[1])
        if self.held and self.transport is not None:
            self.writer = self.loop.call_at(self.held[0][0], self._release)

    def _write(self, out: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)
            self.server.replies_written += 1

    # ---- reading, slowly

    def _refill(self) -> None:
        second = math.floor(self.loop.time())
        if second > self.second:  # a new second: a fresh budget (unused budget does not carry over)
            self.second = second
            self.budget = self.server.read_rate or 0

    def _resume(self) -> None:
        self.resume = None
        self._refill()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


class SlowServer(SinkServer):
    """Accepts TCP connections on ``host:port`` and answers correctly but late (``ack_delay`` s per
    reply) and reads at most ``read_rate`` bytes per second per connection (None: no limit)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, ack_delay: float = 0.0,
                 read_rate: int | None = None) -> None:
        if ack_delay < 0:
            raise ValueError(f"ack delay {ack_delay}: want >= 0")
        if read_rate is not None and read_rate < 1:
            raise ValueError(f"read rate {read_rate}: want >= 1 byte per second")
        super().__init__(lambda _srv: _SlowConn(self), host, port)
        self.ack_delay = ack_delay
        self.read_rate = read_rate
        self.replies_written = 0
        self.replies_dropped = 0  # held replies whose connection closed first
        self.read_pauses = 0


def _arguments(p: argparse.ArgumentParser) -> None:
    def delay(text: str) -> float:
        value = float(text)
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"{text}: want seconds >= 0")
        return value

    def rate(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"{text}: want bytes per second >= 1")
        return value

    p.add_argument("--ack-delay", type=delay, default=0.0, metavar="S",
                   help="hold every reply S seconds before writing it (order kept; default 0)")
    p.add_argument("--read-rate", type=rate, default=None, metavar="BYTES_PER_S",
                   help="read at most this many bytes per second per connection (default: no limit)")


def _make(host: str, port: int, args: argparse.Namespace) -> SlowServer:
    return SlowServer(host, port, ack_delay=args.ack_delay, read_rate=args.read_rate)


def main(argv: list[str] | None = None) -> int:
    return run_main("python -m sim.fleet.slow", __doc__, _make, argv, arguments=_arguments)


if __name__ == "__main__":
    sys.exit(main())
