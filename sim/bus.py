"""Where the simulated frames go: a python-can bus, a candump log file, wall-clock pacing, bus load.

Sinks take windows of ``RawFrame`` (``sim.ecus``) and an epoch (UTC seconds of simulated t = 0):

* ``CandumpSink`` writes can-utils ``candump -l`` lines, ``(1700000000.123456) can0 1A3#0102030405060708``,
  read back by python-can's ``can.LogReader`` and by ``canplayer``; error frames are written as python-can
  does (``20000080#0000000000000000``).
* ``CanBusSink`` sends ``can.Message`` objects on any python-can bus (``virtual`` in-process, ``socketcan``
  on Linux hosts with vcan0/can0 ...); ``udp_multicast`` is refused (loopback/in-process only).
* ``Pacer`` sleeps so frames leave at their simulated time relative to the wall clock (real-time mode).

``frame_bits`` gives the exact on-wire length of a classic CAN data frame (11-bit id), with the real
CRC-15 and bit stuffing, for bus-load figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import can

from agent.errors import ConfigError, TransportError
from sim.ecus import BITRATE, ERROR_FRAME, RawFrame

log = logging.getLogger(__name__)

#: python-can's candump encoding of an error frame's id (CAN_ERR_FLAG | CAN_ERR_BUSERROR).
CANDUMP_ERROR_ID = 0x20000080
#: Bus time of one error frame: 6 flag bits + up to 6 superposed + 8 delimiter bits + 3 intermission.
ERROR_FRAME_BITS = 23
#: python-can interfaces the simulator refuses (not loopback / in-process).
REFUSED_INTERFACES = frozenset({"udp_multicast"})


# -------------------------------------------------------------------------------------- bus timing


def can_crc15(bits: Iterable[int]) -> int:
    """CAN CRC-15 (polynomial 0x4599, init 0) over a bit sequence, MSB first."""
    crc = 0
    for bit in bits:
        nxt = bit ^ ((crc >> 14) & 1)
        crc = (crc << 1) & 0x7FFF
        if nxt:
            crc ^= 0x4599
    return crc


def _bits(value: int, width: int) -> list[int]:
    return [(value >> (width - 1 - i)) & 1 for i in range(width)]


def frame_bit_sequence(can_id: int, data: bytes) -> list[int]:
    """SOF through CRC of a classic base-format data frame (the part that is bit-stuffed), unstuffed."""
    if not 0 <= can_id < 0x800:
        raise ValueError(f"not an 11-bit id: {can_id:#x}")
    head = [0, *_bits(can_id, 11), 0, 0, 0, *_bits(len(data), 4)]  # SOF, id, RTR, IDE, r0, DLC
    for byte in data:
        head += _bits(byte, 8)
    return head + _bits(can_crc15(head), 15)


def stuff_bits(bits: list[int]) -> int:
    """Number of stuff bits the transmitter inserts into ``bits`` (after 5 equal bits, one complement)."""
    count = 0
    run = 0
    last = -1
    for bit in bits:
        if bit == last:
            run += 1
        else:
            last, run = bit, 1
        if run == 5:
            count += 1
            last, run = 1 - bit, 1  # the stuff bit starts the next run
    return count


def frame_bits(can_id: int, data: bytes) -> int:
    """Exact wire length in bits of a classic 11-bit data frame, stuffing and 3-bit intermission included."""
    if can_id == ERROR_FRAME:
        return ERROR_FRAME_BITS
    seq = frame_bit_sequence(can_id, data)
    # + CRC delimiter, ACK slot, ACK delimiter, 7 EOF, 3 intermission (none of them stuffed)
    return len(seq) + stuff_bits(seq) + 1 + 2 + 7 + 3


def bus_load(frames: Iterable[RawFrame], seconds: float, bitrate: int = BITRATE) -> float:
    """Fraction (0..1) of ``seconds`` the frames occupy the bus at ``bitrate``."""
    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    return sum(frame_bits(f[1], f[2]) for f in frames) / (seconds * bitrate)


# ------------------------------------------------------------------------------------------- sinks


class FrameSink(Protocol):
    """Receives the frames of each window, in time order."""

    def write(self, frames: list[RawFrame]) -> None: ...

    def close(self) -> None: ...


def to_message(frame: RawFrame, epoch: float, channel: str) -> can.Message:
    """A ``RawFrame`` as a python-can message with absolute timestamp ``epoch + t``."""
    t, can_id, data = frame
    if can_id == ERROR_FRAME:
        return can.Message(timestamp=epoch + t, is_error_frame=True, channel=channel, check=False)
    return can.Message(
        timestamp=epoch + t,
        arbitration_id=can_id,
        is_extended_id=False,
        data=data,
        dlc=len(data),
        channel=channel,
    )


class CandumpSink:
    """Writes candump ``-l`` log lines to a file (buffered, one ``writelines`` per window)."""

    def __init__(self, path: str | Path, epoch: float, channel: str = "can0") -> None:
        self.path = Path(path)
        self.epoch = epoch
        self.channel = channel
        try:
            self._fh: IO[str] = open(self.path, "w", encoding="ascii", buffering=1 << 20)  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot write candump log: {exc.strerror}", file=str(path)) from exc
        self._prefix: dict[int, str] = {}
        self.frames = 0

    def _id_prefix(self, can_id: int) -> str:
        text = f"{CANDUMP_ERROR_ID:08X}#" if can_id == ERROR_FRAME else f"{can_id:03X}#"
        prefix = f") {self.channel} {text}"
        self._prefix[can_id] = prefix
        return prefix

    def write(self, frames: list[RawFrame]) -> None:
        prefix = self._prefix
        epoch = self.epoch
        lines = []
        for t, can_id, data in frames:
            p = prefix.get(can_id) or self._id_prefix(can_id)
            payload = "0000000000000000" if can_id == ERROR_FRAME else data.hex().upper()
            lines.append(f"({epoch + t:.6f}{p}{payload}\n")
        self._fh.writelines(lines)
        self.frames += len(frames)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CandumpSink:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def parse_bus_spec(spec: str) -> tuple[str, str]:
    """``INTERFACE:CHANNEL`` (e.g. ``virtual:demo``, ``socketcan:vcan0``) -> (interface, channel)."""
    interface, sep, channel = spec.partition(":")
    if not sep or not interface or not channel:
        raise ConfigError(f"bus must be INTERFACE:CHANNEL (e.g. virtual:demo, socketcan:vcan0), not {spec!r}")
    if interface in REFUSED_INTERFACES:
        raise ConfigError(f"interface {interface!r} is not allowed (loopback or in-process buses only)")
    return interface, channel


def open_bus(spec: str, bitrate: int = BITRATE) -> can.BusABC:
    """Open the python-can bus named by ``INTERFACE:CHANNEL``."""
    interface, channel = parse_bus_spec(spec)
    kwargs: dict[str, Any] = {"receive_own_messages": False}
    if interface != "virtual":
        kwargs["bitrate"] = bitrate
    try:
        return can.Bus(interface=interface, channel=channel, **kwargs)
    except (can.CanError, OSError, ValueError, ImportError) as exc:
        raise TransportError(f"cannot open CAN bus {spec}: {exc}") from exc


class CanBusSink:
    """Sends every frame as a ``can.Message`` on a python-can bus."""

    def __init__(
        self, bus: can.BusABC, epoch: float, channel: str | None = None, *, owns_bus: bool = False
    ) -> None:
        self.bus = bus
        self.epoch = epoch
        self.channel = channel if channel is not None else str(bus.channel_info)
        self.owns_bus = owns_bus
        self.frames = 0
        self.dropped = 0

    def write(self, frames: list[RawFrame]) -> None:
        for frame in frames:
            try:
                self.bus.send(to_message(frame, self.epoch, self.channel))
            except can.CanOperationError as exc:  # e.g. socketcan tx buffer full: count, go on
                self.dropped += 1
                if self.dropped == 1:
                    log.warning("CAN send failed (%s); counting further drops", exc)
            else:
                self.frames += 1

    def close(self) -> None:
        if self.owns_bus:
            self.bus.shutdown()


class Pacer:
    """Real-time pacing: ``wait(t)`` returns when wall time reaches the start + simulated ``t``."""

    def __init__(
        self,
        t0: float = 0.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._t0 = t0
        self.max_lag = 0.0

    def wait(self, t: float) -> None:
        delay = self._start + (t - self._t0) - self._clock()
        if delay > 0:
            self._sleep(delay)
        else:
            self.max_lag = max(self.max_lag, -delay)


class PacedSink:
    """Wraps a sink: each frame is handed on at its simulated time relative to the wall clock."""

    def __init__(self, sink: FrameSink, pacer: Pacer | None = None, *, resolution: float = 0.001) -> None:
        self.sink = sink
        self.pacer = pacer or Pacer()
        self.resolution = resolution

    def write(self, frames: list[RawFrame]) -> None:
        batch: list[RawFrame] = []
        due = 0.0
        for frame in frames:
            if batch and frame[0] - due > self.resolution:
                self.pacer.wait(due)
                self.sink.write(batch)
                batch = []
            if not batch:
                due = frame[0]
            batch.append(frame)
        if batch:
            self.pacer.wait(due)
            self.sink.write(batch)

    def close(self) -> None:
        self.sink.close()
