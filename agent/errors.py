"""tbox's exception hierarchy: one root, one type per kind of failure."""

from agent.protocol.errors import ProtocolError, TboxError


class ConfigError(TboxError):
    """Bad configuration: names the file, the key and the reason."""

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.file = file
        self.key = key
        where = ":".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)


class MappingError(TboxError):
    """A DBC or signal-mapping problem (names the file, line or signal)."""


class TransportError(TboxError):
    """A link (TCP, TLS, MQTT, CAN, serial) failed."""


class StoreError(TboxError):
    """The durable store could not read or write."""


__all__ = ["ConfigError", "MappingError", "ProtocolError", "StoreError", "TboxError", "TransportError"]
