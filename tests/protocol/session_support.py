"""Helpers for the session tests: an injected clock and a registry codec.

``RegistryCodec`` puts each frame's data unit in a shared registry and sends a 4-byte key as the data
unit, so bytes really flow through ``wire.Framer`` (chunking, BCC, corruption) without depending on
the body codec. Byte-level tests with the real codec live in test_session_bytes.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from agent.protocol import wire
from agent.protocol.errors import ProtocolError
from agent.protocol.model import Command, Edition, Frame, ResponseFlag

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


@dataclass
class Clock:
    """Monotonic seconds and a UTC wall clock that advance together."""

    now: float = 1000.0
    start_wall: datetime = T0
    start_mono: float = 1000.0

    def wall(self) -> datetime:
        return self.start_wall + timedelta(seconds=self.now - self.start_mono)

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class RegistryCodec:
    """A ``FrameCodec`` whose data unit is a key into a registry shared by both ends."""

    registry: dict[int, object] = field(default_factory=dict)

    def encode(self, frame: Frame) -> bytes:
        key = len(self.registry) + 1
        self.registry[key] = frame.body
        vin = frame.vin.encode("ascii").ljust(17, b"\x00")
        return wire.build_frame(
            int(frame.edition), int(frame.command), int(frame.response), vin, int(frame.encryption),
            key.to_bytes(4, "big"),
        )

    def decode(self, raw: wire.RawFrame) -> Frame:
        key = int.from_bytes(raw.data, "big")
        if len(raw.data) != 4 or key not in self.registry:
            raise ProtocolError("unknown data unit", 24, "data")
        return Frame(
            Edition(raw.edition), _cmd(raw.command), _flag(raw.response), raw.vin.rstrip(b"\x00").decode(),
            raw.encryption, self.registry[key],  # type: ignore[arg-type]
        )

    def frames(self, data: bytes) -> list[Frame]:
        """Decode every frame in ``data`` (for assertions)."""
        return [self.decode(raw) for raw in wire.Framer().feed(data)]


def _cmd(value: int) -> Command | int:
    try:
        return Command(value)
    except ValueError:
        return value


def _flag(value: int) -> ResponseFlag | int:
    try:
        return ResponseFlag(value)
    except ValueError:
        return value
