"""Sans-I/O line splitting for text devices on serial ports (modem AT replies, NMEA).

``SerialLines.feed(bytes)`` returns the lines the bytes complete: CR, LF or CR LF end a line; blank
lines are dropped; control and non-ASCII bytes (line noise, a baud-rate mismatch) are removed; a line
longer than ``max_line`` bytes is dropped and counted in ``overlong`` (so a device that never sends a line
end cannot make the buffer grow without bound).
"""

from __future__ import annotations

from typing import Final

MAX_LINE: Final = 512


class SerialLines:
    """Bytes in, complete text lines out (see the module docstring)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self.max_line = max_line
        self.overlong = 0

    def feed(self, data: bytes) -> list[str]:
        """The complete lines ``data`` finishes."""
        self._buf += data
        out: list[str] = []
        while True:
            cut = min((i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0), default=-1)
            if cut < 0:
                if len(self._buf) > self.max_line:
                    self.overlong += 1
                    self._buf.clear()
                return out
            raw = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            if len(raw) > self.max_line:
                self.overlong += 1
                continue
            line = "".join(c for c in raw.decode("latin-1") if c.isprintable() and c.isascii()).strip()
            if line:
                out.append(line)

    def clear(self) -> None:
        """Forget a partial line."""
        self._buf.clear()


__all__ = ["MAX_LINE", "SerialLines"]
