"""The sampling-monitoring link (0x82 control 0x07; parameters 0x0D-0x10): a second GB/T 32960 link from
this terminal to the *public* platform (the government's sampling/monitoring platform), carrying a copy
of every report from the moment it is opened, with the same store-and-forward rules as the main link.

It is an ordinary ``TcpUplink`` with its own ``TerminalSession`` (same VIN, edition, ICCID) and its own
outbox file, so an outage of either platform never touches the other's data. Parameter 0x10 ("in
sampling monitoring", 0x01 yes / 0x02 no) records the state; the service persists it and reopens the
link after a restart; a 0x81 set of 0x10 = 0x02 closes it (docs/uplink.md "Sampling link").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.protocol.session import TerminalSession
from agent.store import Outbox
from agent.uplink.tcp import TcpUplink, UplinkConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublicPlatform:
    """Where the sampling link goes (parameters 0x0E domain / 0x0F port)."""

    host: str
    port: int

    @classmethod
    def from_parameters(cls, values: dict[int, object]) -> PublicPlatform | None:
        """The address from live parameter values, None when not (validly) set."""
        host, port = values.get(0x0E), values.get(0x0F)
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str) or not host.strip() or not isinstance(port, int) or not 0 < port < 65532:
            return None
        return cls(host.strip(), port)


class SamplingLink:
    """Opens, feeds and closes the link to the public platform. ``make_session`` builds a fresh terminal
    session for it; ``make_config`` the uplink settings (TLS, rates) for an address."""

    def __init__(self, store_path: str | Path, make_session: Callable[[Outbox], TerminalSession],
                 make_config: Callable[[PublicPlatform], UplinkConfig], *,
                 retention_s: float = 7 * 86400.0) -> None:
        self.store_path = Path(store_path)
        self.make_session = make_session
        self.make_config = make_config
        self.retention_s = retention_s
        self.target: PublicPlatform | None = None
        self.uplink: TcpUplink | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._moving: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.uplink is not None

    def open(self, target: PublicPlatform) -> None:
        """Start the link (in the running loop); an open to another address moves it (the old link logs
        out first; its outbox goes along)."""
        if self.uplink is not None:
            if self.target != target:
                self._moving = asyncio.get_running_loop().create_task(self._move(target))
            return
        store = Outbox(self.store_path, retention_s=self.retention_s)
        self.uplink = TcpUplink(self.make_session(store), store, self.make_config(target))
        self.target = target
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.uplink.run(self._stop))
        log.warning("sampling link to the public platform %s:%d opened", target.host, target.port)

    async def _move(self, target: PublicPlatform) -> None:
        await self.close()
        self.open(target)

    def submit(self, edition: int, command: int, vin: str, data: bytes, collected_at: datetime,
               encryption: int) -> None:
        """A copy of a report (stored in the link's own outbox first, like the main link)."""
        if self.uplink is not None:
            self.uplink.submit(edition, command, vin, data, collected_at, encryption)

    def flush(self) -> None:
        if self.uplink is not None:
            self.uplink.store.maybe_flush()

    async def close(self) -> None:
        """Log out, stop, close the outbox (what it still holds is kept for the next open)."""
        task, uplink, stop = self._task, self.uplink, self._stop
        self.uplink = self.target = self._stop = self._task = None
        if stop is not None:
            stop.set()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if uplink is not None:
            uplink.store.close()
            log.warning("sampling link closed")
