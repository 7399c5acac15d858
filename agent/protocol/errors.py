"""Root of tbox's exception hierarchy and the protocol error (MicroPython-compatible)."""


class TboxError(Exception):
    """Base of every error tbox raises on purpose."""


class ProtocolError(TboxError):
    """Malformed or unsupported GB/T 32960 data.

    ``offset`` is the byte offset inside the frame (or inside the buffer given to the decoder)
    where the problem was found; ``field`` names the field after the spec, e.g. ``vehicle.speed``.
    """

    def __init__(self, reason: str, offset: "int | None" = None, field: "str | None" = None) -> None:
        self.reason = reason
        self.offset = offset
        self.field = field
        where = []
        if offset is not None:
            where.append(f"offset {offset}")
        if field:
            where.append(str(field))
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + reason)
