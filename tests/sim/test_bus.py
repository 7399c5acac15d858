"""Bus side: exact frame bits and load, candump and virtual-bus output, pacing, bus-fault signatures."""

from __future__ import annotations

import itertools
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import can
import pytest

from agent.errors import ConfigError
from sim.bus import (
    CanBusSink,
    CandumpSink,
    PacedSink,
    Pacer,
    bus_load,
    can_crc15,
    frame_bit_sequence,
    frame_bits,
    open_bus,
    parse_bus_spec,
    stuff_bits,
)
from sim.bus_faults import BUS_SCENARIOS
from sim.ecus import COUNTER_MODULO, ERROR_FRAME, Network, RawFrame, e2e_crc, load_dbc
from tests.sim.test_ecus import SyntheticVehicle, run_network

#: Stated band for the bus load with everything running (driving, two motors), 500 kbit/s.
LOAD_BAND = (0.20, 0.50)
EPOCH = 1_700_000_000.0


# ------------------------------------------------------------------------------ independent checks


def crc15_by_division(bits: list[int]) -> int:
    """CRC-15 as the remainder of M(x)*x^15 / (x^15+x^14+x^10+x^8+x^7+x^4+x^3+1): big-int long division."""
    poly = 0xC599
    value = int("".join(map(str, bits)), 2) << 15 if bits else 0
    for shift in range(value.bit_length() - 16, -1, -1):
        if value >> (shift + 15) & 1:
            value ^= poly << shift
    return value


def stuff(bits: list[int]) -> list[int]:
    out: list[int] = []
    for bit in bits:
        out.append(bit)
        if len(out) >= 5 and len(set(out[-5:])) == 1:
            out.append(1 - bit)
    return out


def test_crc15_matches_polynomial_division() -> None:
    rng = random.Random(7)
    for _ in range(300):
        bits = [rng.randrange(2) for _ in range(rng.randrange(1, 90))]
        assert can_crc15(bits) == crc15_by_division(bits)


def test_stuffing_count_matches_an_independent_stuffer() -> None:
    rng = random.Random(8)
    for _ in range(300):
        can_id = rng.randrange(0x800)
        data = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(rng.randrange(9)))
        seq = frame_bit_sequence(can_id, data)
        stuffed = stuff(seq)
        assert not re.search("000000|111111", "".join(map(str, stuffed)))
        assert stuff_bits(seq) == len(stuffed) - len(seq)
        assert frame_bits(can_id, data) == len(stuffed) + 13


def test_frame_bits_bounds() -> None:
    # 8-byte base frame: 111 bits unstuffed incl. 3-bit intermission, 135 worst case (Davis et al. 2007)
    assert min(frame_bits(0x555, bytes([0x55] * 8)), 111) == 111
    rng = random.Random(9)
    worst = max(
        frame_bits(rng.randrange(0x800), bytes(rng.choice((0, 0xFF, 0x0F)) for _ in range(8)))
        for _ in range(3000)
    )
    assert 111 < worst <= 135
    assert frame_bits(ERROR_FRAME, b"") > 0


def test_bus_load_with_two_motors_is_in_the_stated_band() -> None:
    frames = run_network(SyntheticVehicle(drive_s=100), 23)
    window = [f for f in frames if 2.5 <= f[0] < 22.5]  # everything awake, driving
    load = bus_load(window, 20.0)
    assert LOAD_BAND[0] <= load <= LOAD_BAND[1], load
    one_motor = [f for f in run_network(SyntheticVehicle(drive_s=100, n_motors=1), 23) if 2.5 <= f[0] < 22.5]
    assert bus_load(one_motor, 20.0) < load


# ------------------------------------------------------------------------------------------ outputs


def test_candump_log_round_trips_through_python_can(tmp_path: Path) -> None:
    frames = run_network(SyntheticVehicle(drive_s=20), 6)
    frames = BUS_SCENARIOS["error-frames"].fresh(start_s=3.0, rate_hz=50.0).apply(frames, 0.0, 6.0)
    frames = BUS_SCENARIOS["wrong-dlc"].fresh(start_s=4.0).apply(frames, 0.0, 6.0)
    path = tmp_path / "run.log"
    with CandumpSink(path, EPOCH, "vcan0") as sink:
        sink.write(frames)
    first = path.read_text().splitlines()[0]
    assert re.fullmatch(r"\(\d{10}\.\d{6}\) vcan0 [0-9A-F]{3}#([0-9A-F]{2}){0,8}", first), first
    back = list(can.LogReader(path))
    assert len(back) == len(frames)
    for msg, (t, can_id, data) in zip(back, frames, strict=True):
        assert msg.timestamp == pytest.approx(EPOCH + t, abs=2e-6)
        if can_id == ERROR_FRAME:
            assert msg.is_error_frame
        else:
            assert msg.channel == "vcan0"
            assert (msg.arbitration_id, bytes(msg.data), msg.is_extended_id) == (can_id, data, False)
    assert sum(m.is_error_frame for m in back) > 50
    assert any(len(m.data) == 6 for m in back)


def test_virtual_bus_output_is_received_on_a_second_bus() -> None:
    channel = f"tbox-test-{random.randrange(1 << 30)}"
    frames = run_network(SyntheticVehicle(drive_s=20), 4)
    rx = can.Bus(interface="virtual", channel=channel)
    tx = open_bus(f"virtual:{channel}")
    try:
        sink = CanBusSink(tx, EPOCH, channel)
        sink.write(frames)
        got = []
        for _ in range(len(frames) + 1):  # bounded
            msg = rx.recv(timeout=1.0)
            if msg is None:
                break
            got.append(msg)
    finally:
        tx.shutdown()
        rx.shutdown()
    assert len(got) == len(frames) == sink.frames
    assert [(m.arbitration_id, bytes(m.data)) for m in got] == [(f[1], f[2]) for f in frames]


def test_bus_spec_parsing_refuses_multicast_and_garbage() -> None:
    assert parse_bus_spec("socketcan:vcan0") == ("socketcan", "vcan0")
    for bad in ("udp_multicast:239.0.0.1", "vcan0", ":x", "virtual:"):
        with pytest.raises(ConfigError):
            parse_bus_spec(bad)


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Collect:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.stamps: list[tuple[float, float]] = []

    def write(self, frames: list[RawFrame]) -> None:
        now = self.clock()
        self.stamps += [(now, f[0]) for f in frames]

    def close(self) -> None:
        pass


def _shifted_frames() -> list[RawFrame]:
    frames = [f for f in run_network(SyntheticVehicle(drive_s=20), 3.0) if f[0] >= 2.4]
    shift = frames[0][0]
    return [(t - shift, i, d) for t, i, d in frames]


def test_pacing_releases_every_frame_at_its_simulated_time() -> None:
    """With an injected clock: each frame leaves at start + its simulated time, within the 1 ms batching."""
    fake = FakeClock()
    frames = _shifted_frames()
    sink = Collect(fake.clock)
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    PacedSink(sink, pacer).write(frames)
    assert len(sink.stamps) == len(frames)
    start = 1000.0
    for wall, t in sink.stamps:
        assert t - 0.001 - 1e-9 <= wall - start <= t + 1e-9
    assert sum(fake.sleeps) == pytest.approx(frames[-1][0], abs=0.001)
    assert pacer.max_lag == 0.0


def test_pacing_catches_up_after_a_stall_and_records_the_lag() -> None:
    fake = FakeClock()
    pacer = Pacer(clock=fake.clock, sleep=fake.sleep)
    pacer.wait(0.5)
    fake.now += 2.0  # the process was descheduled for 2 s
    pacer.wait(1.0)  # already late: no sleep, lag recorded
    pacer.wait(3.0)
    assert fake.sleeps == pytest.approx([0.5, 0.5])
    assert pacer.max_lag == pytest.approx(1.5)


def test_realtime_pacing_on_the_real_clock_is_never_early() -> None:
    frames = _shifted_frames()
    sink = Collect(time.monotonic)
    started = time.monotonic()
    PacedSink(sink).write(frames)
    elapsed = time.monotonic() - started
    assert elapsed >= frames[-1][0] - 0.01  # a loaded machine may be late, never early
    assert min(wall - started - t for wall, t in sink.stamps) > -0.0015  # 1 ms batching + clock grain


# ------------------------------------------------------------------------------------- bus faults


def _fault_run(name: str, seconds: float = 12.0) -> tuple[list[RawFrame], list[RawFrame], float]:
    """(clean frames, faulty frames, fault start) of the same synthetic drive."""
    start = 5.0
    clean = run_network(SyntheticVehicle(drive_s=60), seconds)
    fault = BUS_SCENARIOS[name].fresh(start_s=start, duration_s=4.0)
    net = Network(seed=0)
    src = SyntheticVehicle(drive_s=60)
    faulty: list[RawFrame] = []
    for k in range(round(seconds / 0.1)):
        faulty += fault.apply(net.frames(src.step(0.1), k * 0.1, (k + 1) * 0.1), k * 0.1, (k + 1) * 0.1)
    return clean, faulty, start


def test_every_bus_scenario_has_a_description_and_a_start() -> None:
    assert set(BUS_SCENARIOS) == {"ecu-silent", "bad-counter", "bad-crc", "wrong-dlc", "error-frames"}
    for s in BUS_SCENARIOS.values():
        assert s.description and s.start_s >= 0


def test_ecu_silent_leaves_a_gap_for_that_ecu_only() -> None:
    db = load_dbc()
    clean, faulty, start = _fault_run("ecu-silent")
    bms = {m.frame_id for m in db.messages if m.senders == ["BMS"]}
    times = [t for t, i, _ in faulty if i == 0x120]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == pytest.approx(4.0, abs=0.05)
    assert not [t for t, i, _ in faulty if i in bms and start + 0.01 < t < start + 3.99]
    assert len([f for f in faulty if f[1] not in bms]) == len([f for f in clean if f[1] not in bms])


def _counters(frames: list[RawFrame], can_id: int) -> list[int]:
    return [d[1] & 0x0F for _, i, d in frames if i == can_id]


def test_bad_counter_shows_counter_jumps_with_valid_crc() -> None:
    _, faulty, start = _fault_run("bad-counter")
    mcu1 = [(t, d) for t, i, d in faulty if i == 0x0A0]
    jumps = [
        (t, (b[1] - a[1]) % 16)
        for (_, a), (t, b) in itertools.pairwise(mcu1)
        if (b[1] & 0x0F) != ((a[1] & 0x0F) + 1) % COUNTER_MODULO
    ]
    assert jumps and all(start <= t < start + 4.1 for t, _ in jumps)
    assert all(d[0] == e2e_crc(0x0A0, d) for _, d in mcu1)


def test_bad_crc_shows_crc_mismatches() -> None:
    _, faulty, start = _fault_run("bad-crc")
    bad = [t for t, i, d in faulty if i == 0x120 and d[0] != e2e_crc(i, d)]
    total = [t for t, i, d in faulty if i == 0x120 and start <= t < start + 4.0]
    assert len(bad) == pytest.approx(len(total) / 10, abs=2)
    assert all(start <= t < start + 4.01 for t in bad)


def test_wrong_dlc_shows_short_frames() -> None:
    _, faulty, start = _fault_run("wrong-dlc")
    db = load_dbc()
    expected = db.get_message_by_name("VCU_VehicleStatus").length
    short = [t for t, i, d in faulty if i == 0x100 and len(d) != expected]
    assert len(short) > 150 and all(start <= t < start + 4.01 for t in short)


def test_error_frames_appear_at_the_stated_rate() -> None:
    clean, faulty, start = _fault_run("error-frames")
    errors = [t for t, i, _ in faulty if i == ERROR_FRAME]
    assert len(errors) == pytest.approx(4.0 * BUS_SCENARIOS["error-frames"].rate_hz, rel=0.25)
    assert all(start <= t < start + 4.01 for t in errors)
    assert len(faulty) - len(errors) == len(clean)
    ts = [f[0] for f in faulty]
    assert all(a < b for a, b in itertools.pairwise(ts))


@pytest.mark.skipif(not Path("/sys/class/net/vcan0").exists(), reason="no vcan0 on this host")
def test_socketcan_vcan0_output_is_received() -> None:
    frames = run_network(SyntheticVehicle(drive_s=20), 3)
    rx = can.Bus(interface="socketcan", channel="vcan0")
    tx = open_bus("socketcan:vcan0")
    try:
        CanBusSink(tx, EPOCH, "vcan0").write(frames[:500])
        got = []
        for _ in range(len(frames)):  # bounded
            msg = rx.recv(timeout=0.5)
            if msg is None:
                break
            got.append(msg)
    finally:
        tx.shutdown()
        rx.shutdown()
    assert [(m.arbitration_id, bytes(m.data)) for m in got[:500]] == [(f[1], f[2]) for f in frames[:500]]


@pytest.mark.skipif(shutil.which("log2asc") is None, reason="can-utils not installed")
def test_can_utils_reads_the_candump_log(tmp_path: Path) -> None:
    """can-utils' log2asc uses canplayer's log parser: every frame must come through."""
    frames = run_network(SyntheticVehicle(drive_s=20), 4)
    log, asc = tmp_path / "run.log", tmp_path / "run.asc"
    with CandumpSink(log, EPOCH, "can0") as sink:
        sink.write(frames)
    subprocess.run(["log2asc", "-I", str(log), "-O", str(asc), "can0"], check=True, timeout=60)
    rows = [line.split() for line in asc.read_text().splitlines() if " Rx " in line]
    assert len(rows) == len(frames)
    assert [(int(r[2], 16), bytes.fromhex("".join(r[6:]))) for r in rows] == [(f[1], f[2]) for f in frames]
