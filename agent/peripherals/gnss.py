"""GNSS receiver input: NMEA 0183 (RMC + GGA, any talker) via pynmea2 → ``Position``.

``NmeaParser`` is sans-I/O: feed it lines, it returns a ``Position`` per fix epoch (one RMC, plus the
GGA of the same time for the altitude when there is one). Without a fix (RMC status ``V``) the position
is the last valid one with ``valid=False``, as GB/T 32960 wants. Bad lines (checksum, garbage) are
counted per kind and logged once per kind, never raised.

Sources: ``read_positions(path)`` for an NMEA file (``tbox replay --nmea``), ``SerialNmea`` for a
receiver on a serial port (pyserial), ``open_source("serial:/dev/ttyS0:9600" | path)``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pynmea2

from agent.errors import ConfigError, TransportError
from agent.report.snapshot import Position

log = logging.getLogger(__name__)

KMH_PER_KNOT: Final = 1.852
DEFAULT_BAUD: Final = 9600


class NmeaParser:
    """Turns NMEA lines into ``Position`` values (one per epoch, emitted when RMC and GGA of the same
    time have both arrived, or when the next epoch starts; ``flush()`` emits the last one)."""

    def __init__(self) -> None:
        self.errors: Counter[str] = Counter()
        self.sentences = 0
        self._date: date | None = None
        self._last_valid: tuple[float, float] | None = None
        self._key: time | None = None
        self._rmc: Any = None
        self._gga: Any = None

    def feed_line(self, line: str) -> Position | None:
        """One line (with or without CR LF); returns a completed position or None."""
        text = line.strip()
        if not text:
            return None
        try:
            msg = pynmea2.parse(text, check=True)
        except pynmea2.ChecksumError:
            self._error("checksum", text)
            return None
        except (pynmea2.ParseError, ValueError, AttributeError, TypeError):
            self._error("garbage", text)
            return None
        kind = getattr(msg, "sentence_type", "")
        if kind not in ("RMC", "GGA"):
            return None
        self.sentences += 1
        stamp = getattr(msg, "timestamp", None)
        if not isinstance(stamp, time):
            self._error("no time", text)
            return None
        out: Position | None = None
        if self._key is not None and stamp != self._key:
            out = self._emit()
        self._key = stamp
        if kind == "RMC":
            self._rmc = msg
        else:
            self._gga = msg
        if out is None and self._rmc is not None and self._gga is not None:
            out = self._emit()
        return out

    def feed(self, lines: Iterable[str]) -> Iterator[Position]:
        """Every position the lines complete (flushed at the end)."""
        for line in lines:
            pos = self.feed_line(line)
            if pos is not None:
                yield pos
        last = self.flush()
        if last is not None:
            yield last

    def flush(self) -> Position | None:
        """Emit the pending epoch if it has an RMC."""
        return self._emit()

    def _error(self, kind: str, text: str) -> None:
        self.errors[kind] += 1
        if self.errors[kind] == 1:
            log.warning("GNSS: ignoring a bad NMEA line (%s): %.60r (further ones counted, not logged)",
                        kind, text)

    def _emit(self) -> Position | None:
        rmc, gga, key = self._rmc, self._gga, self._key
        self._rmc = self._gga = None
        self._key = None
        if rmc is None:
            return None  # GGA alone has no date: not a complete epoch
        stamp_date = getattr(rmc, "datestamp", None)
        if isinstance(stamp_date, date):
            self._date = stamp_date
        when: datetime | None = None
        if self._date is not None and key is not None:
            when = datetime.combine(self._date, key.replace(tzinfo=None), tzinfo=UTC)
        valid = getattr(rmc, "status", "V") == "A" and bool(getattr(rmc, "lat", ""))
        if valid:
            lat, lon = float(rmc.latitude), float(rmc.longitude)
            self._last_valid = (lat, lon)
        elif self._last_valid is not None:
            lat, lon = self._last_valid
        else:
            lat, lon = 0.0, 0.0
        speed = _float(getattr(rmc, "spd_over_grnd", None)) if valid else None
        heading = _float(getattr(rmc, "true_course", None)) if valid else None
        altitude = _float(getattr(gga, "altitude", None)) if valid and gga is not None else None
        return Position(
            latitude=lat,
            longitude=lon,
            valid=valid,
            speed_kmh=speed * KMH_PER_KNOT if speed is not None else None,
            heading_deg=heading,
            altitude_m=altitude,
            time=when,
        )


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_positions(path: str | Path) -> list[Position]:
    """Every position of an NMEA file (ConfigError if it cannot be read)."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read NMEA file: {exc.strerror or exc}", file=str(path)) from None
    parser = NmeaParser()
    positions = list(parser.feed(text.splitlines()))
    if parser.errors:
        log.info("GNSS %s: %d positions, bad lines %s", path, len(positions), dict(parser.errors))
    return positions


def parse_source(spec: str) -> tuple[str, str, int]:
    """``serial:DEV[:BAUD]`` → ("serial", DEV, BAUD); anything else → ("file", path, 0)."""
    if spec.startswith("serial:"):
        port, _, baud = spec[len("serial:"):].partition(":")
        if not port:
            raise ConfigError("serial source needs a device: serial:/dev/ttyS0[:9600]", key="gnss.source")
        try:
            rate = int(baud) if baud else DEFAULT_BAUD
        except ValueError:
            raise ConfigError(f"bad baud rate {baud!r}", key="gnss.source") from None
        return "serial", port, rate
    return "file", spec, 0


class SerialNmea:
    """A GNSS receiver on a serial port: ``read_position()`` blocks up to ``timeout`` per line."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD, timeout: float = 1.0) -> None:
        import serial  # pyserial, imported when used

        try:
            self._serial = serial.Serial(port, baud, timeout=timeout)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"GNSS: cannot open {port}: {exc}") from exc
        self.parser = NmeaParser()
        log.info("GNSS on %s at %d baud", port, baud)

    def read_position(self) -> Position | None:
        """Read one line; a completed position or None (timeout, partial epoch, bad line)."""
        import serial

        try:
            raw = self._serial.readline()
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"GNSS: read failed: {exc}") from exc
        if not raw:
            return None
        return self.parser.feed_line(raw.decode("ascii", errors="replace"))

    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> SerialNmea:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["NmeaParser", "Position", "SerialNmea", "parse_source", "read_positions"]
