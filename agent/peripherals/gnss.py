"""GNSS receiver input: NMEA 0183 (RMC + GGA, any talker) via pynmea2 → ``Position``.

``NmeaParser`` is sans-I/O: feed it lines, it returns a ``Position`` per fix epoch (one RMC, plus the
GGA of the same time for the altitude when there is one). Without a fix (RMC status ``V``) the position
is the last valid one with ``valid=False``, as GB/T 32960 wants (NaN coordinates before the first fix,
which the report builder sends as INVALID). Bad lines (checksum, garbage) are counted per kind and
logged once per kind, never raised.

Sources: ``read_positions(path)`` for an NMEA file (``tbox replay --nmea``); ``GnssReader`` for the live
agent (a thread that reopens a receiver that went away, with capped backoff, and feeds ``ClockCheck``);
``SerialNmea`` for a single blocking read loop (``tbox doctor``); ``parse_source("serial:DEV:BAUD" |
path)``. docs/peripherals.md.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import pynmea2

from agent.errors import ConfigError, TransportError
from agent.peripherals.lines import SerialLines
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
        #: UTC of the latest RMC with a valid fix and a known date (for the clock check), until taken
        self.rmc_time: datetime | None = None

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
            self._note_rmc_time(msg, stamp)
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

    def take_rmc_time(self) -> datetime | None:
        """The UTC of the latest valid RMC not taken yet (None if there is none)."""
        when, self.rmc_time = self.rmc_time, None
        return when

    def _note_rmc_time(self, rmc: Any, stamp: time) -> None:
        day = getattr(rmc, "datestamp", None)
        if getattr(rmc, "status", "V") == "A" and isinstance(day, date):
            self.rmc_time = datetime.combine(day, stamp.replace(tzinfo=None), tzinfo=UTC)

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
        else:  # never had a fix: no position to repeat (the builder sends the INVALID coordinates)
            lat, lon = math.nan, math.nan
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


# ------------------------------------------------------------------------------------ clock check

#: GNSS times before this are not trusted to step the clock (a receiver without almanac, week rollover)
_EARLIEST_TRUSTED: Final = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
CLOCK_MODES: Final = ("off", "report", "step")


def set_system_clock(posix_s: float) -> None:
    """Step CLOCK_REALTIME (needs CAP_SYS_TIME; PermissionError otherwise)."""
    import time as _time

    _time.clock_settime(_time.CLOCK_REALTIME, posix_s)


class ClockCheck:
    """Compares GNSS UTC (valid RMC date + time) with the system clock when the sentence arrived.

    Sans-I/O: ``observe(gnss_utc, received)`` with ``received`` the system time (POSIX s) of the line.
    ``offset_s`` = GNSS − system (positive: the system clock is behind). A skewed clock (``|offset| >
    max_offset_s``) is logged once per state change. Mode ``step``: after ``stable`` consecutive skewed
    readings that agree within 1 s, ``set_clock(now() + offset)`` is called once per run (a privilege
    error is logged and the mode drops to ``report``), then ``on_step(offset)`` (the service re-grids its
    sampling ticks); inject ``set_clock`` and ``now`` in tests.
    """

    def __init__(
        self,
        mode: str = "report",
        max_offset_s: float = 2.0,
        *,
        set_clock: Callable[[float], None] = set_system_clock,
        now: Callable[[], float] | None = None,
        stable: int = 3,
        on_step: Callable[[float], None] | None = None,
    ) -> None:
        if mode not in CLOCK_MODES:
            raise ConfigError(f"off, report or step, not {mode!r}", key="gnss.clock")
        import time as _time

        self.mode = mode
        self.max_offset_s = max_offset_s
        self.set_clock = set_clock
        self.now = now or _time.time
        self.stable = max(1, stable)
        self.on_step = on_step
        self.offset_s: float | None = None
        self.skewed = False
        self.readings = 0
        self.steps = 0
        self._recent: list[float] = []

    def observe(self, gnss_utc: datetime, received: float) -> float | None:
        """One valid RMC; returns the offset (None when the check is off)."""
        if self.mode == "off":
            return None
        offset = gnss_utc.timestamp() - received
        self.offset_s = offset
        self.readings += 1
        skewed = abs(offset) > self.max_offset_s
        if skewed != self.skewed:
            self.skewed = skewed
            if skewed:
                log.warning("system clock is %+.1f s off GNSS UTC (limit %.1f s)%s", -offset,
                            self.max_offset_s, "; stepping it when stable" if self.mode == "step" else "")
            else:
                log.info("system clock agrees with GNSS UTC again (%+.2f s)", -offset)
        self._recent = [*self._recent, offset][-self.stable:] if skewed else []
        if self.mode == "step" and skewed and self.steps == 0 and self._steady(gnss_utc):
            self._step(offset)
        return offset

    def _steady(self, gnss_utc: datetime) -> bool:
        return (len(self._recent) >= self.stable and max(self._recent) - min(self._recent) < 1.0
                and gnss_utc.timestamp() >= _EARLIEST_TRUSTED)

    def _step(self, offset: float) -> None:
        try:
            self.set_clock(self.now() + offset)
        except OSError as exc:  # PermissionError without CAP_SYS_TIME
            log.warning("cannot step the system clock (%s): reporting the offset only", exc)
            self.mode = "report"
            return
        self.steps += 1
        self._recent = []
        log.warning("system clock stepped by %+.1f s to GNSS UTC", offset)
        if self.on_step is not None:
            self.on_step(offset)


# ------------------------------------------------------------------------------------ live reader


@dataclass
class GnssStats:
    """What the live reader did: successful opens, failures (open errors and lost devices), lines read,
    positions delivered, lines dropped for being too long (``overlong``: noise without line ends)."""

    opens: int = 0
    failures: int = 0
    lines: int = 0
    positions: int = 0
    overlong: int = 0


Opener = Callable[[str, int, float], Any]


def _open_serial(url: str, baud: int, timeout: float) -> Any:
    import serial

    return serial.serial_for_url(url, baudrate=baud, timeout=timeout)


class GnssReader:
    """A serial GNSS receiver read in a thread that never dies of the device: an open or read failure
    (``SerialException``/``OSError``: USB receiver unplugged) closes the port and reopens it after
    ``backoff_initial_s``, doubling up to ``backoff_max_s``; counted in ``stats``, logged once per state
    change (``state``: ``closed``, ``open``, ``failed``). Each position goes to ``deliver(position,
    received)`` with ``received`` the system time (POSIX s) of its last line; valid RMC times go to
    ``clock`` (``ClockCheck``). ``opener(url, baud, timeout)`` returns a pyserial-like port (default
    pyserial ``serial_for_url``: paths, ``loop://``, ``rfc2217://``)."""

    def __init__(
        self,
        url: str,
        baud: int,
        deliver: Callable[[Position, float], None],
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        clock: ClockCheck | None = None,
        opener: Opener = _open_serial,
        read_timeout_s: float = 0.2,
        silence_s: float = 10.0,
        wallclock: Callable[[], float] | None = None,
    ) -> None:
        import threading
        import time as _time

        self.url = url
        self.baud = baud
        self.deliver = deliver
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.opener = opener
        self.read_timeout_s = read_timeout_s
        self.silence_s = silence_s
        self.wallclock = wallclock or _time.time
        self.parser = NmeaParser()
        self.stats = GnssStats()
        self.state = "closed"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tbox-gnss", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stop.is_set():
            port = self._open()
            if port is None:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = self.backoff_initial_s
            try:
                self._read(port)
            except Exception as exc:  # a bug must not silence GNSS for the rest of the run: log, reopen
                log.error("GNSS reader error on %s (reopening)", self.url, exc_info=exc)
                self._failed(f"{self.url}: {type(exc).__name__}")
            finally:
                _close(port)
            if not self._stop.is_set():
                self._stop.wait(backoff)

    def _open(self) -> Any:
        import serial

        try:
            port = self.opener(self.url, self.baud, self.read_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._failed(f"cannot open {self.url}: {exc}")
            return None
        self.stats.opens += 1
        if self.state == "failed":
            log.warning("GNSS receiver on %s is back (after %d failures)", self.url, self.stats.failures)
        elif self.state == "closed":
            log.info("GNSS on %s at %d baud", self.url, self.baud)
        self.state = "open"
        return port

    def _read(self, port: Any) -> None:
        import serial

        lines = SerialLines(max_line=_NMEA_MAX_LINE)
        last_line = self.wallclock()
        silent = False
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:  # TypeError: pyserial on a closed fd
                self._failed(f"{self.url} failed: {exc}")
                return
            now = self.wallclock()
            got = lines.feed(data) if data else []
            self.stats.overlong += lines.overlong
            lines.overlong = 0
            if not got:
                if not silent and now - last_line > self.silence_s:
                    silent = True
                    log.warning("GNSS %s: no NMEA line for %.0f s", self.url, self.silence_s)
                continue
            if silent:
                log.info("GNSS %s: NMEA flowing again", self.url)
                silent = False
            last_line = now
            for line in got:
                self._line(line, now)

    def _line(self, line: str, received: float) -> None:
        self.stats.lines += 1
        position = self.parser.feed_line(line)
        when = self.parser.take_rmc_time()
        if when is not None and self.clock is not None:
            self.clock.observe(when, received)
        if position is not None:
            self.stats.positions += 1
            self.deliver(position, received)

    def _failed(self, reason: str) -> None:
        self.stats.failures += 1
        if self.state != "failed":
            log.warning("GNSS: %s; reopening every %.1f … %.0f s", reason, self.backoff_initial_s,
                        self.backoff_max_s)
        else:
            log.debug("GNSS: %s", reason)
        self.state = "failed"


_NMEA_MAX_LINE: Final = 128  # NMEA 0183 says 82 characters; some receivers' proprietary lines are longer


def _close(port: Any) -> None:
    import serial

    try:
        port.close()
    except (serial.SerialException, OSError) as exc:
        log.debug("GNSS: close: %s", exc)


__all__ = [
    "ClockCheck",
    "GnssReader",
    "GnssStats",
    "NmeaParser",
    "Position",
    "SerialNmea",
    "parse_source",
    "read_positions",
    "set_system_clock",
]
