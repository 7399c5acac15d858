"""The CAN input adapter: any python-can interface (or a log file) feeding the latest-frame cache.

``CanSource(config, cache)`` opens the bus described by a config mapping (the ``[can]`` table of the
agent's TOML, keys in ``docs/canbus.md``), installs kernel filters built from the cache's wanted ids,
and runs a reader loop that hands every data frame to ``FrameCache.put``; error and remote frames are
counted. When the interface fails (unplugged adapter, ``ip link set can0 down``, bus-off, socketcand
link lost) the loop closes the bus and reopens it with capped exponential backoff; it never crashes,
and each kind of trouble is logged once at WARNING (later occurrences at DEBUG) and counted in
``CanSource.stats``.

Reader: one dedicated thread doing blocking ``bus.recv(poll_interval)``. Not ``can.Notifier``: that is
also a thread per bus (except for socketcan under asyncio) but adds a listener dispatch per frame and
stops on the first exception, while we need to close and reopen the bus ourselves. Not asyncio: most
python-can interfaces have no file descriptor, and the frame path must not wait for the event loop.
The asyncio service runs ``start()``/``stop()``; the cache is lock-free for one writer.

``iter_log(path)`` reads a candump ``.log`` (own tolerant parser), ``.asc``, ``.blf`` or any format
``can.LogReader`` knows, counting and skipping corrupt records instead of failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
from can.io.blf import BLFParseError

from agent.canbus.cache import EXTENDED_FLAG, FrameCache, split_key
from agent.errors import ConfigError, TransportError

log = logging.getLogger(__name__)

#: Interfaces refused: the project never opens network multicast (its network rule).
REFUSED_INTERFACES = frozenset({"udp_multicast"})
#: Interfaces whose filters run in the kernel or the adapter (elsewhere the cache filters in software).
KERNEL_FILTER_INTERFACES = frozenset({"socketcan"})
#: SocketCAN's CAN_RAW_FILTER_MAX: more ids than this and no kernel filters are installed.
MAX_KERNEL_FILTERS = 512
#: Error-frame class bits (linux/can/error.h) carried in the id of a SocketCAN error frame.
CAN_ERR_BUSOFF = 0x40
CAN_ERR_RESTARTED = 0x100

#: Keys of the ``[can]`` config table and their defaults (``None``: not passed to python-can).
DEFAULTS: dict[str, Any] = {
    "interface": None,
    "channel": None,
    "bitrate": None,
    "fd": False,
    "data_bitrate": None,
    "receive_own_messages": False,
    "kernel_filters": "auto",
    "poll_interval": 0.5,
    "backoff_initial": 0.5,
    "backoff_max": 30.0,
    "backoff_factor": 2.0,
    "bus_off_reopen": 5.0,
    "options": {},
}


@dataclass
class SourceStats:
    """What the source has seen (frames themselves are counted by the cache)."""

    state: str = "stopped"  # stopped | opening | up | bus-off | down
    opens: int = 0
    open_failures: int = 0
    lost: int = 0
    error_frames: int = 0
    bus_off: int = 0
    restarted: int = 0
    remote_frames: int = 0
    backoff_s: float = 0.0
    last_error: str = ""
    kernel_filters: int = 0


@dataclass(frozen=True)
class CanConfig:
    """The validated ``[can]`` table."""

    interface: str
    channel: str | int | None
    bitrate: int | None
    fd: bool
    data_bitrate: int | None
    receive_own_messages: bool
    kernel_filters: bool | str
    poll_interval: float
    backoff_initial: float
    backoff_max: float
    backoff_factor: float
    bus_off_reopen: float
    options: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any], *, file: str | None = None) -> CanConfig:
        """Validate a config mapping; ``ConfigError`` names the file and the key."""

        def bad(key: str, reason: str) -> ConfigError:
            return ConfigError(reason, file=file, key=f"can.{key}")

        unknown = sorted(set(table) - set(DEFAULTS))
        if unknown:
            raise bad(unknown[0], f"unknown key; valid: {', '.join(DEFAULTS)}")
        values = {**DEFAULTS, **table}
        interface = values["interface"]
        if not isinstance(interface, str) or not interface:
            raise bad("interface", "required: a python-can interface name (socketcan, slcan, virtual ...)")
        if interface in REFUSED_INTERFACES:
            raise bad("interface", f"{interface} is refused: the agent opens no network multicast")
        if interface not in can.VALID_INTERFACES:
            raise bad(
                "interface",
                f"unknown interface {interface!r}; valid: {', '.join(sorted(can.VALID_INTERFACES))}",
            )
        channel = values["channel"]
        if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (str, int))):
            raise bad("channel", "must be a string or an integer")
        for key in ("bitrate", "data_bitrate"):
            v = values[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise bad(key, "must be a positive integer (bit/s)")
        for key in ("fd", "receive_own_messages"):
            if not isinstance(values[key], bool):
                raise bad(key, "must be true or false")
        if values["kernel_filters"] not in (True, False, "auto"):
            raise bad("kernel_filters", 'must be true, false or "auto"')
        floats = {}
        for key in ("poll_interval", "backoff_initial", "backoff_max", "backoff_factor", "bus_off_reopen"):
            v = values[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise bad(key, "must be a positive number")
            floats[key] = float(v)
        if floats["backoff_max"] < floats["backoff_initial"]:
            raise bad("backoff_max", "must not be below backoff_initial")
        if floats["backoff_factor"] < 1:
            raise bad("backoff_factor", "must be at least 1")
        options = values["options"]
        if not isinstance(options, Mapping):
            raise bad("options", "must be a table of extra python-can arguments")
        clash = sorted(set(options) & (set(DEFAULTS) | {"can_filters"}))
        if clash:
            raise bad("options", f"{clash[0]} is a key of its own, not an option")
        return cls(
            interface=interface,
            channel=channel,
            bitrate=values["bitrate"],
            fd=values["fd"],
            data_bitrate=values["data_bitrate"],
            receive_own_messages=values["receive_own_messages"],
            kernel_filters=values["kernel_filters"],
            options=dict(options),
            **floats,
        )


def can_filters(keys: frozenset[int] | None) -> list[dict[str, Any]] | None:
    """python-can ``can_filters`` matching exactly the cache keys (``None``: accept everything)."""
    if keys is None:
        return None
    out: list[dict[str, Any]] = []
    for key in sorted(keys):
        can_id, extended = split_key(key)
        out.append({"can_id": can_id, "can_mask": 0x1FFFFFFF if extended else 0x7FF, "extended": extended})
    return out


class CanSource:
    """A python-can bus feeding a ``FrameCache`` from a reader thread, reopening it when it fails.

    ``bus_factory`` (default ``can.Bus``), ``sleep`` (default: wait on the stop event, returns early on
    ``stop()``) and ``clock`` (default ``time.monotonic``) are injectable for tests.
    """

    def __init__(
        self,
        config: Mapping[str, Any] | CanConfig,
        cache: FrameCache,
        *,
        file: str | None = None,
        bus_factory: Callable[..., can.BusABC] | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config if isinstance(config, CanConfig) else CanConfig.from_mapping(config, file=file)
        self.cache = cache
        self.stats = SourceStats()
        self._factory = bus_factory or can.Bus
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._clock = clock or time.monotonic
        self._bus: can.BusABC | None = None
        self._thread: threading.Thread | None = None
        self._logged: set[str] = set()
        self._delay = self.config.backoff_initial
        self._up_since = 0.0
        self._filters = self._kernel_filters()

    # ------------------------------------------------------------------------------ configuration

    def _kernel_filters(self) -> list[dict[str, Any]] | None:
        cfg = self.config
        use = (
            cfg.interface in KERNEL_FILTER_INTERFACES if cfg.kernel_filters == "auto" else cfg.kernel_filters
        )
        filters = can_filters(self.cache.wanted_ids) if use else None
        if filters is not None and len(filters) > MAX_KERNEL_FILTERS:
            log.info(
                "%d wanted ids exceed %d kernel filters; filtering in the cache",
                len(filters),
                MAX_KERNEL_FILTERS,
            )
            filters = None
        self.stats.kernel_filters = len(filters) if filters else 0
        return filters

    def bus_kwargs(self) -> dict[str, Any]:
        """The keyword arguments given to python-can's ``Bus``."""
        cfg = self.config
        kwargs: dict[str, Any] = {"interface": cfg.interface}
        if cfg.channel is not None:
            kwargs["channel"] = cfg.channel
        if cfg.bitrate is not None:
            kwargs["bitrate"] = cfg.bitrate
        if cfg.fd:
            kwargs["fd"] = True
            if cfg.data_bitrate is not None:
                kwargs["data_bitrate"] = cfg.data_bitrate
        if cfg.receive_own_messages:
            kwargs["receive_own_messages"] = True
        if self._filters is not None:
            kwargs["can_filters"] = self._filters
        kwargs.update(cfg.options)
        return kwargs

    # ---------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the reader thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="tbox-can-source", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the reader, join it (at most ``timeout`` s plus one poll) and close the bus."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout + self.config.poll_interval)
            if thread.is_alive():
                log.warning("CAN reader did not stop within %.1f s", timeout)
        self._thread = None
        self._close()
        self.stats.state = "stopped"

    def __enter__(self) -> CanSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the reader thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """The reader loop (blocks until ``stop()``): open, pump frames, reopen with backoff on failure."""
        while not self._stop.is_set():
            bus = self._bus or self._open()
            if bus is None:
                self._backoff()
                continue
            try:
                self._pump(bus)
            except (can.CanError, OSError, ValueError, TransportError) as exc:
                self._lost(exc)
            except Exception as exc:  # a faulty interface driver must not kill the reader: count, reopen
                log.debug("unexpected error from the CAN interface", exc_info=True)
                self._lost(exc)
        self._close()

    # ------------------------------------------------------------------------------- internals

    def _pump(self, bus: can.BusABC) -> None:
        """The per-frame loop: the only code that runs for every frame."""
        recv = bus.recv
        put = self.cache.put
        stopped = self._stop.is_set
        poll = self.config.poll_interval
        while not stopped():
            msg = recv(poll)
            if msg is None:
                continue
            if msg.is_error_frame:
                if self._error_frame(msg):
                    self._recover(bus)
            elif msg.is_remote_frame:
                self.stats.remote_frames += 1
                self.cache.put_remote(msg.arbitration_id)
                self._once("remote", logging.INFO, "remote (RTR) frames on the bus: counted, not stored")
            elif msg.is_extended_id:
                put(msg.arbitration_id | EXTENDED_FLAG, bytes(msg.data), msg.timestamp)
            else:
                put(msg.arbitration_id, bytes(msg.data), msg.timestamp)

    def _error_frame(self, msg: can.Message) -> bool:
        """Count an error frame; True if it reports bus-off."""
        self.stats.error_frames += 1
        self.cache.put_error(msg.timestamp)
        if msg.arbitration_id & CAN_ERR_BUSOFF:
            self.stats.bus_off += 1
            self._once("bus-off", logging.WARNING, "CAN controller reports bus-off")
            return True
        if msg.arbitration_id & CAN_ERR_RESTARTED:
            self.stats.restarted += 1
            self._once("restarted", logging.INFO, "CAN controller restarted after bus-off")
        else:
            self._once("error-frame", logging.WARNING, "error frames on the bus (counted in stats)")
        return False

    def _recover(self, bus: can.BusABC) -> None:
        """After a bus-off: wait for a data frame (the controller restarted by itself, e.g. SocketCAN
        ``restart-ms``); none within ``bus_off_reopen`` s → ``TransportError`` (the bus is reopened,
        which re-initialises adapters such as slcan or PCAN)."""
        self.stats.state = "bus-off"
        deadline = self._clock() + self.config.bus_off_reopen
        stopped = self._stop.is_set
        while not stopped():
            msg = bus.recv(self.config.poll_interval)
            if msg is None:
                if self._clock() >= deadline:
                    raise TransportError(f"bus-off, no frame for {self.config.bus_off_reopen:g} s")
                continue
            if msg.is_error_frame:
                self._error_frame(msg)
            elif msg.is_remote_frame:
                self.stats.remote_frames += 1
                self.cache.put_remote(msg.arbitration_id)
            else:
                key = msg.arbitration_id | EXTENDED_FLAG if msg.is_extended_id else msg.arbitration_id
                self.cache.put(key, bytes(msg.data), msg.timestamp)
                self.stats.state = "up"
                return
            if self._clock() >= deadline:
                raise TransportError(f"bus-off, no data frame for {self.config.bus_off_reopen:g} s")

    def _open(self) -> can.BusABC | None:
        self.stats.state = "opening"
        try:
            bus = self._factory(**self.bus_kwargs())
        except Exception as exc:  # any driver failure (CanError, OSError, serial errors ...) is retried
            self.stats.open_failures += 1
            self.stats.state = "down"
            self.stats.last_error = f"open: {exc}"
            self._once(
                f"open:{type(exc).__name__}",
                logging.WARNING,
                "cannot open CAN %s %s: %s (retrying with backoff)",
                self.config.interface,
                self.config.channel,
                exc,
            )
            return None
        self._bus = bus
        self.stats.opens += 1
        self.stats.state = "up"
        self._up_since = self._clock()
        if self.stats.opens > 1:
            self._once(
                "reopened", logging.INFO, "CAN %s %s is back", self.config.interface, self.config.channel
            )
        return bus

    def _lost(self, exc: BaseException) -> None:
        self.stats.lost += 1
        self.stats.state = "down"
        self.stats.last_error = f"receive: {exc}"
        self._once(
            f"lost:{type(exc).__name__}",
            logging.WARNING,
            "CAN %s %s failed: %s (reopening with backoff)",
            self.config.interface,
            self.config.channel,
            exc,
        )
        if self._clock() - self._up_since >= self.config.backoff_max:
            self._delay = self.config.backoff_initial  # it had been healthy for a while: start over
        self._close()
        self._backoff()

    def _backoff(self) -> None:
        delay = self._delay
        self.stats.backoff_s = delay
        self._delay = min(delay * self.config.backoff_factor, self.config.backoff_max)
        if not self._stop.is_set():
            self._sleep(delay)

    def _close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        try:
            bus.shutdown()
        except (can.CanError, OSError) as exc:
            log.debug("closing the CAN bus: %s", exc)

    def _once(self, kind: str, level: int, fmt: str, *args: object) -> None:
        """Log the first event of a kind at ``level``, later ones at DEBUG."""
        if kind in self._logged:
            log.debug(fmt, *args)
            return
        self._logged.add(kind)
        log.log(level, fmt, *args)


# ------------------------------------------------------------------------------------- log files


@dataclass
class LogStats:
    """What ``iter_log`` read."""

    frames: int = 0
    corrupt: int = 0
    truncated: bool = False


def _parse_candump(line: str) -> can.Message | None:
    """One candump ``-L`` line, as python-can's CanutilsLogReader reads it (ValueError if corrupt)."""
    parts = line.split()
    if not parts:
        return None
    if len(parts) == 4 and parts[3].lower() in ("r", "t"):
        parts = parts[:3]
    if len(parts) != 3 or not (parts[0].startswith("(") and parts[0].endswith(")")):
        raise ValueError("not a candump line")
    timestamp = float(parts[0][1:-1])
    channel = parts[1]
    can_id_text, _, data = parts[2].partition("#")
    if not _ or not can_id_text:
        raise ValueError("no '#'")
    is_extended = len(can_id_text) > 3
    can_id = int(can_id_text, 16)
    if can_id & 0x20000000:  # CAN_ERR_FLAG: an error frame
        return can.Message(timestamp=timestamp, is_error_frame=True, channel=channel, check=False)
    is_fd = bool(data) and data[0] == "#"
    flags = 0
    if is_fd:
        flags = int(data[1], 16)
        data = data[2:]
    if data[:1] in ("R", "r"):
        dlc = int(data[1:]) if len(data) > 1 else 0
        return can.Message(
            timestamp=timestamp,
            arbitration_id=can_id & 0x1FFFFFFF,
            is_extended_id=is_extended,
            is_remote_frame=True,
            dlc=dlc,
            channel=channel,
        )
    payload = bytes.fromhex(data)
    if len(payload) > (64 if is_fd else 8) or (not is_extended and can_id > 0x7FF) or can_id > 0x1FFFFFFF:
        raise ValueError("payload or id out of range")
    return can.Message(
        timestamp=timestamp,
        arbitration_id=can_id,
        is_extended_id=is_extended,
        is_fd=is_fd,
        bitrate_switch=bool(flags & 1),
        error_state_indicator=bool(flags & 2),
        data=payload,
        channel=channel,
        check=True,
    )


#: What a corrupt record of a log file raises inside python-can's readers.
_LOG_ERRORS = (ValueError, IndexError, KeyError, TypeError, can.CanError, EOFError, OSError, BLFParseError)


def _corrupt(stats: LogStats, path: Path, where: str, exc: BaseException) -> None:
    stats.corrupt += 1
    level = logging.WARNING if stats.corrupt == 1 else logging.DEBUG
    log.log(level, "%s%s: corrupt record skipped (%s)", path, where, exc)


def _iter_candump(path: Path, stats: LogStats) -> Iterator[can.Message]:
    try:
        fh = open(path, encoding="ascii", errors="replace")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot read CAN log: {exc.strerror}", file=str(path)) from exc
    with fh:
        for number, line in enumerate(fh, 1):
            try:
                msg = _parse_candump(line)
            except (ValueError, IndexError, TypeError) as exc:
                _corrupt(stats, path, f":{number}", exc)
                continue
            if msg is not None:
                stats.frames += 1
                yield msg


class _ResyncLines:
    """A text file for python-can's ASCReader that can be re-entered after a corrupt line: ``inject``
    puts a header line back so the reader's header scan stops without eating a data line."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.pending: list[str] = []
        self.number = 0

    def __iter__(self) -> _ResyncLines:
        return self

    def __next__(self) -> str:
        if self.pending:
            return self.pending.pop()
        line: str = next(self.fh)
        self.number += 1
        return line

    def inject(self, line: str) -> None:
        self.pending.append(line)

    def close(self) -> None:
        self.fh.close()


def _iter_asc(path: Path, stats: LogStats) -> Iterator[can.Message]:
    try:
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot read CAN log: {exc.strerror}", file=str(path)) from exc
    lines = _ResyncLines(fh)
    reader = can.ASCReader(lines)  # type: ignore[arg-type]
    try:
        while True:
            try:
                for msg in reader:
                    stats.frames += 1
                    yield msg
                return
            except _LOG_ERRORS as exc:  # the reader stopped after the bad line: re-enter it
                _corrupt(stats, path, f":{lines.number}", exc)
                events = (
                    "internal events logged" if reader.internal_events_logged else "no internal events logged"
                )
                lines.inject(events + "\n")
    finally:
        fh.close()


def iter_log(path: str | Path, stats: LogStats | None = None) -> Iterator[can.Message]:
    """The frames of a log file; a corrupt line/record is counted (``stats``) and skipped.

    candump ``.log`` (own parser) and Vector ``.asc`` (python-can's reader, re-entered after a bad line)
    are resynchronised line by line: a bad line never ends the file. Other formats (``.blf``, ``.trc``,
    ``.csv`` …) go through ``can.LogReader``, where a corrupt record ends the file (``stats.truncated``)
    because binary formats cannot be resynchronised.
    """
    stats = stats if stats is not None else LogStats()
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".log":
        yield from _iter_candump(path, stats)
        return
    if suffix == ".asc":
        yield from _iter_asc(path, stats)
        return
    try:
        reader = can.LogReader(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read CAN log: {exc}", file=str(path)) from exc
    try:
        for msg in reader:
            stats.frames += 1
            yield msg
    except _LOG_ERRORS as exc:
        stats.corrupt += 1
        stats.truncated = True
        log.warning(
            "%s: corrupt record after %d frames, rest of the file skipped (%s)", path, stats.frames, exc
        )
    finally:
        reader.stop()


__all__ = [
    "DEFAULTS",
    "CanConfig",
    "CanSource",
    "LogStats",
    "SourceStats",
    "can_filters",
    "iter_log",
]
