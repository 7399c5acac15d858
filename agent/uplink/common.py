"""What every uplink transport shares: the session and outbox it drives, the downlink hooks, and
``submit`` (durable first, realtime at once when online, else backlog for reissue)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agent.errors import ProtocolError, StoreError
from agent.protocol.model import Command, Encryption, Parameter
from agent.protocol.session import (
    PLATFORM_ADDRESS_PARAMETERS,
    ControlRequested,
    DefaultCodec,
    Event,
    KeyExchangeReceived,
    TerminalSession,
    TimeCalibrated,
)
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
        #: called on every new link right after the login went out (e.g. 2025 activation)
        self.on_connected: Callable[[], None] | None = None
        self._key_generation = 0  # the latest 2025 key exchange (older timers do nothing)
        codec = session.codec
        #: the cipher from the configuration: in use again when an exchanged key expires
        self._configured_cipher = codec.cipher if isinstance(codec, DefaultCodec) else None

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

    def _clock_offset(self, ev: TimeCalibrated, max_offset_s: float) -> float:
        """A time calibration (0x08) answered: the platform's time minus ours at the middle of the round
        trip, in seconds (logged as a warning beyond ``max_offset_s``; nothing is stepped)."""
        half_trip = max(0.0, ev.received_at - ev.requested_at) / 2
        ours = datetime.now(UTC).timestamp() - max(0.0, self.clock() - ev.received_at) - half_trip
        offset = ev.platform_time.timestamp() + 0.5 - ours  # the wire truncates to the second
        if abs(offset) > max_offset_s + 0.5:
            log.warning("the system clock is %+.1f s off the platform's time", -offset)
        else:
            log.info("platform time agrees with ours (%+.1f s)", offset)
        return offset

    def _key_exchange(self, ev: KeyExchangeReceived) -> None:
        """2025 0x0B: use the new data-unit key from ``valid_from`` until ``valid_until``, then the configured
        cipher again; an expired key is refused (keys are never logged). Needs a running event loop."""
        from agent.protocol.crypto import cipher_from_key_exchange

        kx = ev.key_exchange
        now = datetime.now(UTC)
        if kx.valid_until <= now or kx.valid_until <= kx.valid_from:
            log.warning("key exchange refused: the key expired (or never starts) at %s",
                        kx.valid_until.isoformat())
            return
        try:
            cipher = cipher_from_key_exchange(kx.key_type, kx.key)
        except ProtocolError as exc:
            log.warning("key exchange refused: %s", exc.reason)
            return
        loop = asyncio.get_running_loop()
        configured = self._configured_cipher
        self._key_generation += 1
        generation = self._key_generation

        def apply() -> None:
            if generation == self._key_generation:  # a newer exchange replaced this key before it began
                self.session.set_cipher(cipher)
                log.info("new data-unit key in use (type 0x%02X) until %s", int(kx.key_type),
                         kx.valid_until.isoformat())

        def expire() -> None:
            if generation == self._key_generation:
                self.session.set_cipher(configured)
                log.warning("the exchanged data-unit key expired at %s; back to the configured one",
                            kx.valid_until.isoformat())

        loop.call_later(max(0.0, (kx.valid_from - now).total_seconds()), apply)
        loop.call_later((kx.valid_until - now).total_seconds(), expire)

    # ------------------------------------------------------------------ transport hooks

    def _can_send_realtime(self) -> bool:
        raise NotImplementedError

    def _wake_drain(self) -> None:
        raise NotImplementedError

    def _send(self, rec: OutboxRecord, command: Command) -> bool:
        raise NotImplementedError
