"""agent.peripherals.gnss live reader against an emulated receiver on a pty: positions, garbage and wrong
checksums, lost fix, a receiver that disappears and returns at the same path (capped backoff, logged once
per state change), the clock check against GNSS UTC (injected setter, never the real clock)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.peripherals.gnss import ClockCheck, GnssReader, NmeaParser
from agent.report.snapshot import Position
from tests.peripherals.devices import PtyDevice, fix_lines

T0 = datetime(2025, 1, 1, 8, 0, 0, tzinfo=UTC)


def epochs(start: int = 0, lost_from: int | None = None, noise: bool = False) -> Iterator[bytes]:
    """NMEA epochs, one per chunk, seconds ``start``… (59 at most); invalid from ``lost_from`` on."""
    for second in range(start, 60):
        lines = fix_lines(second, valid=lost_from is None or second < lost_from)
        if noise:
            lines = ["\x00\xffgarbage", lines[0][:-2] + "00", *lines]  # garbage, wrong checksum, good
        yield "".join(line + "\r\n" for line in lines).encode("latin-1")


def wait(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Sink:
    def __init__(self) -> None:
        self.positions: list[tuple[Position, float]] = []
        self.lock = threading.Lock()

    def __call__(self, position: Position, received: float) -> None:
        with self.lock:
            self.positions.append((position, received))

    def count(self) -> int:
        with self.lock:
            return len(self.positions)


def test_positions_garbage_and_bad_checksums(tmp_path: Path, devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyGNSS"
    devices.append(PtyDevice(link, stream=epochs(noise=True), period_s=0.02))
    sink = Sink()
    reader = GnssReader(str(link), 9600, sink, backoff_initial_s=0.05, backoff_max_s=0.2)
    reader.start()
    try:
        wait(lambda: sink.count() >= 5, "5 positions")
    finally:
        reader.stop()
    pos = [p for p, _ in sink.positions]
    assert all(p.valid for p in pos)
    seconds = [p.time.second for p in pos if p.time is not None]
    assert seconds == sorted(seconds) and len(set(seconds)) == len(seconds)
    assert abs(pos[0].latitude - 39.9) < 1e-6 and pos[0].speed_kmh == pytest.approx(18.52)
    assert reader.parser.errors["checksum"] >= 1 and reader.parser.errors["garbage"] >= 1
    assert reader.stats.opens == 1 and reader.stats.failures == 0


def test_lost_fix_keeps_the_last_position_marked_invalid(tmp_path: Path, devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyGNSS"
    devices.append(PtyDevice(link, stream=epochs(lost_from=4), period_s=0.02))
    sink = Sink()
    reader = GnssReader(str(link), 9600, sink)
    reader.start()
    try:
        wait(lambda: sum(not p.valid for p, _ in list(sink.positions)) >= 3, "3 positions without fix")
    finally:
        reader.stop()
    pos = [p for p, _ in sink.positions]
    last_valid = [p for p in pos if p.valid][-1]
    lost = [p for p in pos if not p.valid]
    assert all((p.latitude, p.longitude) == (last_valid.latitude, last_valid.longitude) for p in lost)
    assert all(p.speed_kmh is None for p in lost)


def test_the_receiver_disappears_and_returns_at_the_same_path(tmp_path: Path, devices: list[PtyDevice],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "ttyGNSS"
    first = PtyDevice(link, stream=epochs(), period_s=0.02)
    devices.append(first)
    sink = Sink()
    reader = GnssReader(str(link), 9600, sink, backoff_initial_s=0.02, backoff_max_s=0.1)
    with caplog.at_level(logging.INFO, logger="agent.peripherals.gnss"):
        reader.start()
        try:
            wait(lambda: sink.count() >= 3, "positions from the first receiver")
            first.disappear()  # USB unplugged: the read fails, every reopen fails
            wait(lambda: reader.state == "failed" and reader.stats.failures >= 4, "failed reopens")
            before = sink.count()
            devices.append(PtyDevice(link, stream=epochs(start=30), period_s=0.02))  # plugged back
            wait(lambda: reader.stats.opens >= 2 and sink.count() >= before + 3, "positions again")
            assert reader.state == "open"
        finally:
            reader.stop()
    assert not reader._thread.is_alive()
    later = [p for p, _ in sink.positions[before:]]
    assert all(p.valid and p.time is not None and p.time.second >= 30 for p in later)
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    episodes = sum("reopening every" in m for m in messages)  # once per state change, not per attempt
    assert episodes == sum("is back" in m for m in messages) >= 1
    assert reader.stats.failures >= 4 > episodes


def test_a_failing_consumer_does_not_kill_the_reader(tmp_path: Path, devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyGNSS"
    devices.append(PtyDevice(link, stream=epochs(), period_s=0.02))
    sink = Sink()
    calls = [0]

    def deliver(position: Position, received: float) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("consumer bug")
        sink(position, received)

    reader = GnssReader(str(link), 9600, deliver, backoff_initial_s=0.02)
    reader.start()
    try:
        wait(lambda: sink.count() >= 2, "positions after the error")
    finally:
        reader.stop()
    assert reader.stats.failures == 1 and reader.stats.opens == 2


def test_open_failures_back_off_up_to_the_cap(tmp_path: Path) -> None:
    link = tmp_path / "ttyNONE"
    reader = GnssReader(str(link), 9600, Sink(), backoff_initial_s=0.01, backoff_max_s=0.04)
    waits: list[float] = []

    def wait_instead(timeout: float | None = None) -> bool:  # no sleeping: record the backoff
        waits.append(timeout or 0.0)
        if len(waits) >= 6:
            reader._stop.set()
        return reader._stop.is_set()

    reader._stop.wait = wait_instead  # type: ignore[method-assign]
    reader._run()  # in this thread; stops itself after 6 waits
    assert waits == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04]
    assert reader.stats.failures == 6 and reader.state == "failed"


def test_reader_measures_the_clock_offset_on_valid_rmc(tmp_path: Path, devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyGNSS"
    devices.append(PtyDevice(link, stream=epochs(lost_from=10), period_s=0.02))
    skewed_now = (T0 + timedelta(hours=1)).timestamp()  # the system clock runs an hour ahead of GNSS
    clock = ClockCheck("report", 2.0)
    sink = Sink()
    reader = GnssReader(str(link), 9600, sink, clock=clock, wallclock=lambda: skewed_now)
    reader.start()
    try:
        wait(lambda: clock.readings >= 3, "clock readings")
    finally:
        reader.stop()
    assert clock.skewed
    assert clock.offset_s is not None and -3600 <= clock.offset_s < -3540  # GNSS second s: offset s - 3600
    assert all(received == skewed_now for _, received in sink.positions)


def test_clock_check_report_and_step() -> None:
    stepped: list[float] = []
    now = [T0.timestamp() + 100.0]
    check = ClockCheck("step", 2.0, set_clock=stepped.append, now=lambda: now[0])
    assert check.observe(T0, T0.timestamp() + 0.3) == pytest.approx(-0.3)
    assert not check.skewed and stepped == []
    for i in range(2):  # skewed by 100 s, not yet stable
        check.observe(T0 + timedelta(seconds=i), T0.timestamp() + i - 100.0)
    assert check.skewed and stepped == []
    check.observe(T0 + timedelta(seconds=2), T0.timestamp() + 2 - 100.0)
    assert stepped == [pytest.approx(now[0] + 100.0)] and check.steps == 1
    for i in range(3, 8):  # at most one step per run
        check.observe(T0 + timedelta(seconds=i), T0.timestamp() + i - 100.0)
    assert len(stepped) == 1


def test_clock_step_needs_privilege_and_a_plausible_gnss_time(caplog: pytest.LogCaptureFixture) -> None:
    def refuse(t: float) -> None:
        raise PermissionError(1, "Operation not permitted")

    check = ClockCheck("step", 2.0, set_clock=refuse, stable=2)
    with caplog.at_level(logging.WARNING, logger="agent.peripherals.gnss"):
        for i in range(4):
            check.observe(T0 + timedelta(seconds=i), T0.timestamp() + i + 50.0)
    assert check.mode == "report" and check.steps == 0
    assert sum("cannot step" in r.getMessage() for r in caplog.records) == 1
    assert sum("off GNSS UTC" in r.getMessage() for r in caplog.records) == 1  # logged once while skewed

    stepped: list[float] = []
    old = datetime(2006, 3, 1, tzinfo=UTC)  # a receiver after a week-number rollover
    early = ClockCheck("step", 2.0, set_clock=stepped.append, stable=2)
    for i in range(4):
        early.observe(old + timedelta(seconds=i), T0.timestamp() + i)
    assert early.skewed and stepped == []
    assert ClockCheck("off").observe(T0, 0.0) is None
    with pytest.raises(ConfigError):
        ClockCheck("sometimes")


def test_parser_hands_out_valid_rmc_times_once() -> None:
    parser = NmeaParser()
    for line in fix_lines(5):
        parser.feed_line(line)
    assert parser.take_rmc_time() == T0 + timedelta(seconds=5)
    assert parser.take_rmc_time() is None
    for line in fix_lines(6, valid=False):
        parser.feed_line(line)
    assert parser.take_rmc_time() is None


def test_the_live_service_reports_positions_and_survives_the_receiver_leaving(
        tmp_path: Path, devices: list[PtyDevice]) -> None:
    import asyncio

    from agent.config import load_config
    from agent.service import AgentService
    from tests.agent.test_service import write_config

    link = tmp_path / "ttyGNSS"
    first = PtyDevice(link, stream=epochs(), period_s=0.1)
    devices.append(first)
    cfg = write_config(tmp_path, None)
    cfg.write_text(cfg.read_text().replace("[report]", f'[gnss]\nsource = "serial:{link}"\nmax_age_s = 0.5\n'
                                           "reopen_initial_s = 0.05\nreopen_max_s = 0.2\n[report]\n"
                                           "sampling_period_s = 0.2"))
    service = AgentService(load_config(cfg))
    sampled: list[Position | None] = []
    service.pipeline.on_sample = lambda snapshot, alarm: sampled.append(snapshot.position)

    def located(valid: bool) -> Callable[[], bool]:
        return lambda: bool(sampled) and sampled[-1] is not None and sampled[-1].valid is valid

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(30, stop))

        async def until(cond: Callable[[], bool], what: str) -> None:
            end = time.monotonic() + 15.0
            while not cond():
                assert time.monotonic() < end, f"timed out waiting for {what}"
                await asyncio.sleep(0.05)

        try:
            await until(located(True), "a report with a valid position")
            first.disappear()
            await until(located(False), "the last position marked invalid")
            devices.append(PtyDevice(link, stream=epochs(start=30), period_s=0.1))
            await until(located(True), "a valid position again")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    asyncio.run(main())
    assert service.gnss is not None and service.gnss.stats.opens >= 2 and service.gnss.stats.failures >= 1
    lost = [p for p in sampled if p is not None and not p.valid]
    assert lost and all(abs(p.latitude - 39.9) < 1e-6 for p in lost)  # the last fix, flagged invalid


def test_a_clock_step_regrids_the_pipeline_instead_of_running_the_skipped_ticks(tmp_path: Path) -> None:
    from agent.config import load_config
    from agent.pipeline import AgentPipeline
    from tests.agent.test_service import write_config

    pipeline = AgentPipeline(load_config(write_config(tmp_path, None)))
    t = T0.timestamp()
    pipeline.tick(t)
    pipeline.tick(t + 2.0)
    samples = pipeline.stats.samples
    offsets: list[float] = []
    check = ClockCheck("step", 2.0, set_clock=lambda s: None, now=lambda: t, stable=1,
                       on_step=lambda offset: (offsets.append(offset), pipeline.clock_stepped()))
    check.observe(T0 + timedelta(hours=1), t + 2.0)  # GNSS says an hour later: the clock is stepped
    assert offsets == [pytest.approx(3598.0)]
    pipeline.tick(t + 3600.0)
    assert pipeline.stats.samples - samples <= 1  # not 1800 catch-up samples
    pipeline.tick(t + 3602.0)
    assert pipeline.stats.samples - samples <= 3


def test_no_fix_yet_gives_invalid_coordinates_not_zero() -> None:
    from agent.protocol.model import Edition, LocationStatus, Special
    from agent.report.builder import BuildOptions, location_block
    from agent.report.snapshot import Snapshot

    parser = NmeaParser()
    first = list(parser.feed(fix_lines(1, valid=False)))
    assert len(first) == 1 and not first[0].valid
    block = location_block(Snapshot(T0, position=first[0]), Edition.E2016, BuildOptions())
    assert block.status & LocationStatus.INVALID_FIX
    assert block.latitude is Special.INVALID and block.longitude is Special.INVALID
    valid = list(parser.feed(fix_lines(2)))
    lost = list(parser.feed(fix_lines(3, valid=False)))
    assert (lost[0].latitude, lost[0].longitude) == (valid[0].latitude, valid[0].longitude)
    block = location_block(Snapshot(T0, position=lost[0]), Edition.E2016, BuildOptions())
    assert block.status & LocationStatus.INVALID_FIX and block.latitude == pytest.approx(39.9)


@pytest.mark.parametrize(("name", "code"), [("wgs84", 0x01), ("gcj02", 0x02), ("cgcs2000", 0x03),
                                            ("other", 0x03), ("GCJ02", 0x02)])
def test_coordinate_system_config_reaches_the_2025_location_block(name: str, code: int) -> None:
    from agent.config import parse_config
    from agent.protocol.model import Edition
    from agent.report.builder import BuildOptions, location_block
    from agent.report.snapshot import Snapshot

    text = f'[vehicle]\nvin = "LTBXEV00000000001"\n[can]\nmapping = "m.toml"\n[gnss]\n' \
        f'coordinate_system = "{name}"\n'
    cs = parse_config(text).gnss.coordinate_system
    block = location_block(Snapshot(T0, position=Position(39.9, 116.4)), Edition.E2025, BuildOptions(cs))
    assert int(block.coordinate_system) == code  # type: ignore[union-attr]


def test_gnss_config_errors_name_the_key() -> None:
    from agent.config import parse_config

    base = '[vehicle]\nvin = "LTBXEV00000000001"\n[can]\nmapping = "m.toml"\n[gnss]\n'
    for body, key in (('coordinate_system = "bd09"', "gnss.coordinate_system"),
                      ('clock = "ntp"', "gnss.clock"),
                      ("reopen_initial_s = 5.0\nreopen_max_s = 1.0", "gnss.reopen_max_s"),
                      ("clock_max_offset_s = 0.1", "gnss.clock_max_offset_s")):
        with pytest.raises(ConfigError) as info:
            parse_config(base + body)
        assert info.value.key == key
    g = parse_config(base).gnss
    assert (g.clock, g.clock_max_offset_s, g.reopen_initial_s, g.reopen_max_s) == ("report", 2.0, 0.5, 30.0)


def _replug_cycles(tmp_path: Path, cycles: int) -> GnssReader:
    """``cycles`` unplug/replug rounds; returns the stopped reader."""
    link = tmp_path / "ttyGNSS"
    sink = Sink()
    device = PtyDevice(link, stream=epochs(), period_s=0.01)
    reader = GnssReader(str(link), 9600, sink, backoff_initial_s=0.01, backoff_max_s=0.05)
    reader.start()
    try:
        for i in range(cycles + 1):
            seen = sink.count()
            wait(lambda seen=seen: sink.count() > seen, f"a position from receiver {i}")
            if i == cycles:
                break
            device.disappear()
            wait(lambda: reader.state == "failed", f"the loss of receiver {i}")
            device = PtyDevice(link, stream=epochs(), period_s=0.01)
    finally:
        reader.stop()
        device.disappear()
    return reader


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_replugging_leaks_no_descriptor(tmp_path: Path) -> None:
    _replug_cycles(tmp_path, 1)  # warm up (imports, lazily opened files)
    before = _open_fds()
    reader = _replug_cycles(tmp_path, 5)
    assert reader.stats.opens >= 6 and reader.stats.failures >= 5
    assert _open_fds() == before


@pytest.mark.soak
def test_soak_200_replugs(tmp_path: Path) -> None:
    _replug_cycles(tmp_path, 1)
    before = _open_fds()
    reader = _replug_cycles(tmp_path, 200)
    assert reader.stats.opens >= 201
    assert _open_fds() == before


def test_clock_check_keeps_only_the_readings_it_needs() -> None:
    for stable in (1, 3):
        check = ClockCheck("report", 2.0, stable=stable)
        for i in range(50):
            check.observe(T0 + timedelta(seconds=i), T0.timestamp() + i + 10.0)
        assert check.skewed and check.readings == 50 and len(check._recent) == stable


def test_a_ublox_receiver_with_its_extra_sentences(tmp_path: Path, devices: list[PtyDevice]) -> None:
    from tests.peripherals.devices import ublox_epoch

    link = tmp_path / "ttyACM0"
    chunks = ("".join(line + "\r\n" for line in ublox_epoch(s)).encode("ascii") for s in range(60))
    devices.append(PtyDevice(link, stream=chunks, period_s=0.02))
    sink = Sink()
    reader = GnssReader(str(link), 9600, sink)
    reader.start()
    try:
        wait(lambda: sink.count() >= 3, "positions")
    finally:
        reader.stop()
    assert all(p.valid and p.altitude_m == 50.0 for p, _ in sink.positions)
    assert not reader.parser.errors  # GSA, GSV, VTG, GLL, TXT are not errors, just not used
