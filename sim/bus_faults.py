"""Bus-level fault scenarios: what a T-Box must notice on the CAN side, independent of the physics.

Each scenario post-processes the frames of a window once simulated time reaches ``start_s`` (until
``start_s + duration_s``; ``None`` = to the end of the run):

* ``ecu-silent``   the BMS stops sending (its frames vanish; counters resume with a jump afterwards)
* ``bad-counter``  MCU1_Status alive counter jumps by 2 every 5th frame (CRC recomputed, so only the
                   counter is wrong)
* ``bad-crc``      every 10th BMS_PackStatus frame carries a wrong CRC (byte 0 inverted)
* ``wrong-dlc``    VCU_VehicleStatus is sent with DLC 6 instead of 8 (the last two bytes cut off)
* ``error-frames`` bursts of error frames (20 per second), as from a disturbed transceiver
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from sim.ecus import COUNTER_MODULO, ERROR_FRAME, RawFrame, e2e_crc, load_dbc


@dataclass
class BusScenario:
    """One bus fault: a name, what it does, when it starts and how long it lasts."""

    name: str
    description: str
    kind: str  # ecu-silent | bad-counter | bad-crc | wrong-dlc | error-frames
    start_s: float = 30.0
    duration_s: float | None = 10.0
    ecu: str = ""  # ecu-silent: which ECU
    message: str = ""  # which message (counter, crc, dlc faults)
    every: int = 1  # affect every n-th frame of the message
    dlc: int = 6  # wrong-dlc: the DLC sent
    rate_hz: float = 20.0  # error-frames: error frames per second
    seed: int = 0
    _count: int = field(default=0, repr=False)
    _offset: int = field(default=0, repr=False)
    _ids: frozenset[int] = field(default=frozenset(), repr=False)

    def __post_init__(self) -> None:
        db = load_dbc()
        if self.ecu:
            self._ids = frozenset(m.frame_id for m in db.messages if self.ecu in m.senders)
        elif self.message:
            self._ids = frozenset({db.get_message_by_name(self.message).frame_id})
        self._rng = random.Random(self.seed)

    def fresh(self, **changes: object) -> BusScenario:
        """A copy with clean state (and optional changed fields, e.g. ``start_s``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def active(self, t: float) -> bool:
        return t >= self.start_s and (self.duration_s is None or t < self.start_s + self.duration_s)

    def apply(self, frames: list[RawFrame], t0: float, t1: float) -> list[RawFrame]:
        """The window's frames with this fault applied (input order and times kept)."""
        end = self.start_s + self.duration_s if self.duration_s is not None else float("inf")
        if t1 <= self.start_s or t0 >= end:
            return frames
        if self.kind == "error-frames":
            return self._error_frames(frames, max(t0, self.start_s), min(t1, end))
        out: list[RawFrame] = []
        ids = self._ids
        for frame in frames:
            t, can_id, data = frame
            if can_id not in ids or not self.active(t):
                out.append(frame)
                continue
            if self.kind == "ecu-silent":
                continue
            self._count += 1
            hit = self._count % self.every == 0
            if self.kind == "bad-counter":
                if hit:
                    self._offset += 1
                if self._offset:
                    counter = ((data[1] & 0x0F) + self._offset) % COUNTER_MODULO
                    body = bytearray(data)
                    body[1] = (body[1] & 0xF0) | counter
                    body[0] = e2e_crc(can_id, bytes(body))
                    frame = (t, can_id, bytes(body))
            elif self.kind == "bad-crc" and hit:
                frame = (t, can_id, bytes((data[0] ^ 0xFF,)) + data[1:])
            elif self.kind == "wrong-dlc" and hit:
                frame = (t, can_id, data[: self.dlc])
            out.append(frame)
        return out

    def _error_frames(self, frames: list[RawFrame], a: float, b: float) -> list[RawFrame]:
        n = int(self._rng.random() + self.rate_hz * (b - a))  # randomised rounding keeps the mean rate
        if n <= 0:
            return frames
        times = sorted(self._rng.uniform(a, b) for _ in range(n))
        merged = frames + [(t, ERROR_FRAME, b"") for t in times]
        merged.sort(key=lambda f: f[0])
        # keep strictly increasing times: an error frame takes the bus for a few bit times
        out: list[RawFrame] = []
        last = -1.0
        for t, can_id, data in merged:
            if t <= last:
                t = last + 1e-6
            out.append((t, can_id, data))
            last = t
        return out


#: name -> scenario (defaults: start at 30 s, last 10 s).
BUS_SCENARIOS: dict[str, BusScenario] = {
    s.name: s
    for s in (
        BusScenario(
            "ecu-silent", "the BMS stops sending for 10 s (its frames vanish)", "ecu-silent", ecu="BMS"
        ),
        BusScenario(
            "bad-counter",
            "MCU1_Status alive counter jumps by 2 every 5th frame (CRC still valid)",
            "bad-counter",
            message="MCU1_Status",
            every=5,
        ),
        BusScenario(
            "bad-crc",
            "every 10th BMS_PackStatus frame has a wrong CRC",
            "bad-crc",
            message="BMS_PackStatus",
            every=10,
        ),
        BusScenario(
            "wrong-dlc",
            "VCU_VehicleStatus sent with DLC 6 instead of 8",
            "wrong-dlc",
            message="VCU_VehicleStatus",
        ),
        BusScenario("error-frames", "error frames at 20 per second", "error-frames", rate_hz=20.0),
    )
}
