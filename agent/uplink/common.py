"""What every uplink transport shares: the session and outbox it drives, the downlink hooks, and
``submit`` (durable first, realtime at once when online, else backlog for reissue)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from agent.errors import StoreError
from agent.protocol.model import Command, Encryption, Parameter
from agent.protocol.session import PLATFORM_ADDRESS_PARAMETERS, ControlRequested, Event, TerminalSession
from agent.store import Outbox, OutboxRecord

if TYPE_CHECKING:
    from agent.uplink.tcp import AgentHandler

log = logging.getLogger(__name__)


class UplinkBase:
    """Base of ``TcpUplink`` and ``MqttUplink``; subclasses say when they are online, how a record is
    sent and how their drain is woken."""

    def __init__(
        self,
        session: TerminalSession,
        store: Outbox,
        *,
        handler: AgentHandler | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_parameters: Callable[[tuple[Parameter, ...]], None] | None = None,
        on_control: Callable[[ControlRequested], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.session = session
        self.store = store
        self.handler = handler
        self.clock = clock
        self.on_parameters = on_parameters
        self.on_control = on_control
        self.on_event = on_event

    def submit(
        self,
        edition: int,
        command: int,
        vin: str,
        data: bytes,
        collected_at: datetime,
        encryption: int = Encryption.NONE,
    ) -> int | None:
        """Store a new record, then send it as realtime at once when online (else it waits as backlog
        and goes out as reissue). Returns the record id (None: dropped, store unwritable)."""
        rid = self.store.add(edition, command, vin, data, collected_at, encryption)
        if rid is None:
            return None
        if command == Command.REALTIME and self._can_send_realtime():
            rec = self.store.get(rid)
            if rec is not None:
                self._send(rec, Command.REALTIME)
        else:
            self._wake_drain()
        return rid

    @property
    def backlog(self) -> int:
        """Records not delivered yet (including those in flight)."""
        return self.store.pending()

    def _parameters_changed(self, items: tuple[Parameter, ...]) -> None:
        """An acknowledged 0x81 set: live values, persisted, then the service's hook (report periods)."""
        kept = tuple(p for p in items if int(p.id) not in PLATFORM_ADDRESS_PARAMETERS)
        if self.handler is not None:
            self.handler.values.update({int(p.id): p.value for p in kept})
        try:
            self.store.save_parameters([(int(p.id), p.value) for p in kept])
        except StoreError as exc:
            log.error("parameters applied but not persisted: %s", exc)
        if self.on_parameters is not None:
            self.on_parameters(kept)

    # ------------------------------------------------------------------ transport hooks

    def _can_send_realtime(self) -> bool:
        raise NotImplementedError

    def _wake_drain(self) -> None:
        raise NotImplementedError

    def _send(self, rec: OutboxRecord, command: Command) -> bool:
        raise NotImplementedError
