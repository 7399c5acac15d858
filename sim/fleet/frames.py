"""Frames of fleet vehicles from data units packed in advance.

A ``LiteVehicle`` packs its report straight into wire bytes (``LiteVehicle.encode``); ``EncodedReport``
carries those bytes through the real ``TerminalSession`` (which needs only the report's time to track the
upload), and ``FleetCodec`` — the session's codec — puts header and BCC around them instead of encoding
model objects. Every other frame (login, heartbeat, logout, replies to downlink commands, full-fidelity
reports) goes through the protocol codec as usual.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.protocol import wire
from agent.protocol.model import Encryption, Frame, RealtimeReport
from agent.protocol.session import DefaultCodec, SessionStateError


@dataclass(frozen=True)
class EncodedReport(RealtimeReport):
    """A realtime report (``blocks`` empty) whose data unit — time and info blocks — is ``data``."""

    data: bytes = b""


class FleetCodec(DefaultCodec):
    """The session codec of a fleet vehicle: frames an ``EncodedReport`` from its bytes (no cipher, no
    signature: the fleet sends plain frames), everything else through ``DefaultCodec``."""

    def __init__(self) -> None:
        super().__init__()
        self._vin: tuple[str, bytes] = ("", b"")

    def encode(self, frame: Frame) -> bytes:
        body = frame.body
        if body.__class__ is not EncodedReport:
            return super().encode(frame)
        if self.cipher is not None or self.signer is not None or frame.encryption != Encryption.NONE:
            raise SessionStateError("an EncodedReport cannot be encrypted or signed")
        assert isinstance(body, EncodedReport)
        return wire.build_frame(int(frame.edition), int(frame.command), int(frame.response),
                                self._vin_bytes(frame.vin), Encryption.NONE, body.data)

    def _vin_bytes(self, vin: str) -> bytes:
        if self._vin[0] != vin:
            raw = vin.encode("ascii")
            if len(raw) != wire.VIN_SIZE:
                raise SessionStateError(f"VIN {vin!r} is not {wire.VIN_SIZE} ASCII characters")
            self._vin = (vin, raw)
        return self._vin[1]


__all__ = ["EncodedReport", "FleetCodec"]
