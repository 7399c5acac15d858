"""CAN ingest: cost per frame of the hot path, and the agent's CPU at a saturated 1 Mbit/s bus.

* from memory: raw ``FrameCache.put`` over the simulator's frame mix (target >= 200,000 frames/s), and
  python-can ``Message`` -> ``CanSource`` reader loop -> cache through an in-memory ``BusABC`` (the real
  per-frame path minus the kernel);
* saturated bus: the simulator's frames replayed at 8,700 frames/s (1 Mbit/s, ~115 bits per frame) for
  10 s through python-can's in-process ``virtual`` bus into a real ``CanSource`` reader thread; the CPU
  time of that thread alone (``time.thread_time`` inside it) over the wall time (target <= 5 % of a core).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import can
import pytest

from agent.canbus.cache import FrameCache, message_key
from agent.canbus.dbcload import load_dbc, mux_selector
from agent.canbus.source import CanSource
from sim.bus import to_message
from sim.run import DEFAULT_START, simulate_windows
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
COMMAND = ".venv/bin/pytest -q -s -m bench tests/bench/test_ingest_bench.py"
ROOT = Path(__file__).resolve().parents[2]
SAT_RATE = 8_700.0
SAT_SECONDS = 10.0
RESULTS: dict[str, str] = {}


def _cache() -> FrameCache:
    db = load_dbc([ROOT / "dbc" / "tbox_ev.dbc"])
    mux = {message_key(m): sel for m in db.messages if (sel := mux_selector(m)) is not None}
    return FrameCache(
        {message_key(m) for m in db.messages},
        mux=mux,
        lengths={message_key(m): m.length for m in db.messages},
    )


def _sim_frames(seconds: float) -> list[tuple[float, int, bytes]]:
    out: list[tuple[float, int, bytes]] = []
    for window in simulate_windows(None, "wltc3", 1, seconds, n_motors=2):
        out.extend(f for f in window.frames if f[1] >= 0)
    return out


class MemoryBus(can.BusABC):
    """A bus whose receive queue is a pre-filled deque (python-can's recv path, no kernel, no lock)."""

    def __init__(self, messages: list[can.Message], done: threading.Event, **kwargs: Any) -> None:
        super().__init__(channel="memory")
        self.queue = deque(messages)
        self.done = done

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        try:
            return self.queue.popleft(), False
        except IndexError:
            self.done.set()
            return None, False

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        raise can.CanOperationError("read-only")


def _write() -> None:
    rows = "\n".join(f"| {k} | {v} |" for k, v in RESULTS.items())
    write_section(
        "CAN ingest",
        f"""Frames: the simulator's two-motor WLTC mix (991 frames/s at 500 kbit/s: E2E frames, multiplexed
cell voltages and temperatures, slow status), every id wanted, multiplexed ids also keyed by group.
The hot path (`FrameCache.put`) stores the raw bytes only; the reader loop is `CanSource`'s.

| measurement | result |
|---|---|
{rows}

Targets: >= 200,000 frames/s from memory; <= 5 % of one core at a saturated 1 Mbit/s bus (8,700 frames/s).
The saturated figure is the reader thread's own CPU time (`time.thread_time()` inside it) over the wall
time; the in-process virtual bus stands in for the SocketCAN socket (its queue hand-off replaces a
`recvmsg` system call).""",
        command=COMMAND,
    )


def test_raw_put_from_memory() -> None:
    frames = _sim_frames(60.0)
    cache = _cache()
    put = cache.put
    rounds = 3
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for t, key, data in frames:
            put(key, data, t)
        best = min(best, time.perf_counter() - started)
    rate = len(frames) / best
    RESULTS["`FrameCache.put` from memory (raw bytes, best of 3 × 60 s of traffic)"] = (
        f"{rate:,.0f} frames/s ({1e9 / rate:.0f} ns/frame)"
    )
    assert cache.stats.malformed == 0
    assert rate >= 200_000


def test_put_cost_does_not_grow_with_the_number_of_ids() -> None:
    """Same traffic volume, 20 vs 2,000 distinct ids, and a bus of only unwanted ids."""
    n = 200_000

    def rate(ids: int, wanted: bool) -> float:
        frames = [(i % ids, bytes(8), float(i)) for i in range(n)]
        cache = FrameCache(range(ids) if wanted else [0x7FF + 1])
        put = cache.put
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for key, data, t in frames:
                put(key, data, t)
            best = min(best, time.perf_counter() - started)
        return n / best

    few, many, unwanted = rate(20, True), rate(2000, True), rate(2000, False)
    RESULTS["`put` with 20 ids / 2,000 ids / 2,000 unwanted ids (200,000 frames each)"] = (
        f"{few:,.0f} / {many:,.0f} / {unwanted:,.0f} frames/s"
    )
    assert many >= 0.25 * few  # same order (a dict lookup, not a scan); the rest is CPU-cache locality
    assert min(few, many, unwanted) >= 200_000


def test_candump_log_parse_rate(tmp_path: Path) -> None:
    from agent.canbus.source import LogStats, iter_log

    path = tmp_path / "minute.log"
    epoch = DEFAULT_START.timestamp()
    with can.Logger(str(path)) as logger:
        for f in _sim_frames(60.0):
            logger.on_message_received(to_message(f, epoch, "can0"))
    stats = LogStats()
    started = time.perf_counter()
    count = sum(1 for _ in iter_log(path, stats))
    wall = time.perf_counter() - started
    RESULTS["`iter_log` candump parse (replay input), 60 s of traffic"] = (
        f"{count / wall:,.0f} frames/s ({count:,} frames in {wall:.2f} s)"
    )
    assert stats.corrupt == 0


def test_message_through_the_reader_loop_from_memory() -> None:
    frames = _sim_frames(60.0)
    epoch = DEFAULT_START.timestamp()
    messages = [to_message(f, epoch, "can0") for f in frames]
    cache = _cache()
    done = threading.Event()
    bus = MemoryBus(messages, done)
    src = CanSource({"interface": "virtual", "poll_interval": 0.0001}, cache, bus_factory=lambda **_: bus)
    started = time.perf_counter()
    cpu0 = time.process_time()
    stopper = threading.Thread(target=lambda: (done.wait(60), src._stop.set()))
    stopper.start()
    src.run()
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - started
    stopper.join()
    assert cache.stats.frames == len(messages)
    rate = len(messages) / max(cpu, wall)
    RESULTS["`can.Message` → `BusABC.recv` → `CanSource` loop → cache (in-memory bus)"] = (
        f"{rate:,.0f} frames/s ({1e6 / rate:.2f} µs/frame; {len(messages):,} frames, "
        f"wall {wall:.3f} s, CPU {cpu:.3f} s)"
    )
    assert rate >= 200_000


def test_cpu_at_a_saturated_1mbit_bus() -> None:
    frames = _sim_frames(SAT_RATE * SAT_SECONDS / 991.0 + 1.0)[: int(SAT_RATE * SAT_SECONDS)]
    epoch = DEFAULT_START.timestamp()
    messages = [to_message(f, epoch, "can0") for f in frames]
    channel = f"tbox-bench-{uuid.uuid4().hex}"
    cache = _cache()
    src = CanSource({"interface": "virtual", "channel": channel, "poll_interval": 0.05}, cache)
    cpu: list[float] = []
    inner_run = src.run

    def measured_run() -> None:
        t0 = time.thread_time()
        inner_run()
        cpu.append(time.thread_time() - t0)

    src.run = measured_run  # type: ignore[method-assign]
    tx = can.Bus(interface="virtual", channel=channel)
    src.start()
    deadline = time.monotonic() + 5
    while src.stats.state != "up" and time.monotonic() < deadline:
        time.sleep(0.01)
    batch = 87  # 10 ms of frames at 8,700 frames/s
    started = time.perf_counter()
    for i in range(0, len(messages), batch):
        target = started + i / SAT_RATE
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for msg in messages[i : i + batch]:
            tx.send(msg)
    sent_wall = time.perf_counter() - started
    deadline = time.monotonic() + 10
    while cache.stats.frames < len(messages) and time.monotonic() < deadline:
        time.sleep(0.01)
    wall = time.perf_counter() - started
    src.stop()
    tx.shutdown()
    assert cache.stats.frames == len(messages)
    share = cpu[0] / wall
    label = f"saturated 1 Mbit/s: {len(messages):,} frames in {sent_wall:.1f} s via a virtual bus, reader CPU"
    per_frame = cpu[0] / len(messages) * 1e6
    RESULTS[label] = f"{cpu[0]:.3f} s / {wall:.1f} s = **{share:.1%} of one core** ({per_frame:.2f} µs/frame)"
    _write()
    assert share <= 0.05
