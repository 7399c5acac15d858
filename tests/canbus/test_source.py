"""CanSource on python-can's in-process virtual bus and on a fake failing bus; iter_log on bad files."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.canbus.cache import EXTENDED_FLAG, FrameCache, frame_key
from agent.canbus.source import (
    CAN_ERR_BUSOFF,
    DEFAULTS,
    CanConfig,
    CanSource,
    LogStats,
    can_filters,
    iter_log,
)
from agent.errors import ConfigError


def _channel() -> str:
    return f"tbox-test-{uuid.uuid4().hex}"


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


# ----------------------------------------------------------------------------------------- config


def test_udp_multicast_is_refused() -> None:
    with pytest.raises(ConfigError, match="udp_multicast is refused") as err:
        CanConfig.from_mapping({"interface": "udp_multicast", "channel": "239.74.163.2"}, file="agent.toml")
    assert err.value.file == "agent.toml" and err.value.key == "can.interface"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "can.interface"),
        ({"interface": "nonesuch"}, "can.interface"),
        ({"interface": "virtual", "bitrate": -1}, "can.bitrate"),
        ({"interface": "virtual", "fd": "yes"}, "can.fd"),
        ({"interface": "virtual", "kernel_filters": "sometimes"}, "can.kernel_filters"),
        ({"interface": "virtual", "poll_interval": 0}, "can.poll_interval"),
        ({"interface": "virtual", "backoff_initial": 10, "backoff_max": 1}, "can.backoff_max"),
        ({"interface": "virtual", "options": {"can_filters": []}}, "can.options"),
        ({"interface": "virtual", "chanel": "x"}, "can.chanel"),
    ],
)
def test_bad_config_names_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        CanConfig.from_mapping(table)
    assert err.value.key == key


def test_bus_kwargs_and_kernel_filters() -> None:
    wanted = {0x100, frame_key(0x18FEF1FE, True)}
    cache = FrameCache(wanted)
    src = CanSource(
        {
            "interface": "socketcan",
            "channel": "can0",
            "fd": True,
            "data_bitrate": 2_000_000,
            "bitrate": 500_000,
            "options": {"local_loopback": False},
        },
        cache,
    )
    kwargs = src.bus_kwargs()
    assert kwargs["interface"] == "socketcan" and kwargs["channel"] == "can0"
    assert kwargs["fd"] is True and kwargs["data_bitrate"] == 2_000_000 and kwargs["bitrate"] == 500_000
    assert kwargs["local_loopback"] is False
    assert kwargs["can_filters"] == [
        {"can_id": 0x100, "can_mask": 0x7FF, "extended": False},
        {"can_id": 0x18FEF1FE, "can_mask": 0x1FFFFFFF, "extended": True},
    ]
    assert src.stats.kernel_filters == 2
    # virtual: filtering stays in the cache unless asked for
    assert "can_filters" not in CanSource({"interface": "virtual"}, cache).bus_kwargs()
    assert "can_filters" in CanSource({"interface": "virtual", "kernel_filters": True}, cache).bus_kwargs()
    assert (
        "can_filters"
        not in CanSource({"interface": "socketcan", "kernel_filters": False}, cache).bus_kwargs()
    )
    assert can_filters(None) is None
    too_many = FrameCache(range(600))
    assert (
        "can_filters" not in CanSource({"interface": "socketcan", "channel": "can0"}, too_many).bus_kwargs()
    )
    assert set(DEFAULTS) >= {"interface", "channel", "bitrate", "fd", "data_bitrate", "receive_own_messages"}


# ------------------------------------------------------------------------------------ virtual bus


def test_frames_from_a_virtual_bus_reach_the_cache() -> None:
    channel = _channel()
    ext = frame_key(0x18FEF1FE, True)
    cache = FrameCache({0x100, ext, 0x600})
    src = CanSource({"interface": "virtual", "channel": channel, "poll_interval": 0.05}, cache)
    tx = can.Bus(interface="virtual", channel=channel)
    src.start()
    try:
        assert _wait(lambda: src.stats.state == "up")
        tx.send(can.Message(arbitration_id=0x100, data=bytes(range(8)), is_extended_id=False))
        tx.send(can.Message(arbitration_id=0x100, data=bytes(range(1, 9)), is_extended_id=False))
        tx.send(can.Message(arbitration_id=0x18FEF1FE, data=b"\x01\x02", is_extended_id=True))
        tx.send(can.Message(arbitration_id=0x100, data=b"", is_extended_id=True))  # 29-bit 0x100: other key
        tx.send(can.Message(arbitration_id=0x600, data=bytes(range(64)), is_fd=True, is_extended_id=False))
        tx.send(can.Message(arbitration_id=0x7FF, data=b"junk", is_extended_id=False))
        tx.send(can.Message(arbitration_id=0x100, is_remote_frame=True, dlc=8, is_extended_id=False))
        tx.send(can.Message(is_error_frame=True, arbitration_id=0x004, dlc=8, data=bytes(8)))
        tx.send(can.Message(is_error_frame=True, arbitration_id=CAN_ERR_BUSOFF, dlc=8, data=bytes(8)))
        assert _wait(lambda: cache.stats.frames == 6 and cache.stats.error_frames == 2)
    finally:
        src.stop()
        tx.shutdown()
    assert not src.running and src.stats.state == "stopped"
    frame = cache.get(0x100)
    assert frame is not None and frame.data == bytes(range(1, 9)) and frame.previous == bytes(range(8))
    assert isinstance(frame.data, bytes) and frame.count == 2
    ext_frame = cache.get(ext)
    assert ext_frame is not None and ext_frame.data == b"\x01\x02"
    fd = cache.get(0x600)
    assert fd is not None and fd.data == bytes(range(64))
    stats = cache.stats
    assert stats.unwanted_by_id == {0x100 | EXTENDED_FLAG: 1, 0x7FF: 1}
    assert stats.remote_frames == 1 and src.stats.remote_frames == 1
    assert src.stats.error_frames == 2 and src.stats.bus_off == 1


def test_simulated_traffic_through_a_virtual_bus_is_all_cached() -> None:
    run = pytest.importorskip("sim.run")
    pytest.importorskip("sim.vehicle")
    messages = list(run.simulate(seconds=1.0, seed=1, scenario="error-frames", fault_start_s=0.0))
    data_frames = [m for m in messages if not m.is_error_frame]
    channel = _channel()
    cache = FrameCache()
    src = CanSource({"interface": "virtual", "channel": channel, "poll_interval": 0.05}, cache)
    tx = can.Bus(interface="virtual", channel=channel)
    src.start()
    try:
        assert _wait(lambda: src.stats.state == "up")
        for msg in messages:
            tx.send(msg)
        assert _wait(lambda: cache.stats.frames == len(data_frames), timeout=20)
    finally:
        src.stop()
        tx.shutdown()
    assert cache.stats.error_frames == len(messages) - len(data_frames) > 0
    last: dict[int, bytes] = {m.arbitration_id: bytes(m.data) for m in data_frames}
    for can_id, data in last.items():
        frame = cache.get(can_id)
        assert frame is not None and frame.data == data


def test_stop_joins_promptly_without_traffic() -> None:
    src = CanSource({"interface": "virtual", "channel": _channel(), "poll_interval": 0.05}, FrameCache())
    src.start()
    src.start()  # idempotent
    assert _wait(lambda: src.stats.state == "up")
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 2.0
    assert not src.running


# ------------------------------------------------------------------------------------ failing bus


class FlakyBus(can.BusABC):
    """Delivers some frames then raises CanOperationError (like an interface going down)."""

    def __init__(self, frames: list[can.Message], fail_with: Exception, **kwargs: Any) -> None:
        super().__init__(channel="flaky")
        self.frames = list(frames)
        self.fail_with = fail_with
        self.closed = False
        self.channel_info = "flaky"

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self.frames:
            return self.frames.pop(0), False
        raise self.fail_with

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        raise can.CanOperationError("read-only")

    def shutdown(self) -> None:
        self.closed = True
        super().shutdown()


class Scripted:
    """A bus factory following a script: 'fail' (open raises) or 'ok' (a FlakyBus with two frames)."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.buses: list[FlakyBus] = []
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> can.BusABC:
        self.kwargs.append(kwargs)
        step = self.script.pop(0) if self.script else "fail"
        if step == "fail":
            raise can.CanInterfaceNotImplementedError("No such device: can0")
        n = len(self.buses)
        frames = [
            can.Message(arbitration_id=0x100, data=bytes([n, 0]), timestamp=float(n), is_extended_id=False),
            can.Message(arbitration_id=0x100, data=bytes([n, 1]), timestamp=n + 0.5, is_extended_id=False),
        ]
        bus = FlakyBus(frames, can.CanOperationError("Network is down [Error Code 100]"))
        self.buses.append(bus)
        return bus


def test_reopens_with_capped_exponential_backoff_and_counts_everything(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factory = Scripted(["ok", "fail", "fail", "fail", "fail", "fail", "fail", "ok", "fail"])
    cache = FrameCache({0x100})
    delays: list[float] = []
    now = [0.0]

    def sleep(delay: float) -> None:
        delays.append(delay)
        now[0] += delay
        if len(delays) >= 10:
            src._stop.set()  # bounded: the test ends after ten waits

    src = CanSource(
        {
            "interface": "socketcan",
            "channel": "can0",
            "backoff_initial": 0.5,
            "backoff_max": 4.0,
            "backoff_factor": 2.0,
        },
        cache,
        bus_factory=factory,
        sleep=sleep,
        clock=lambda: now[0],
    )
    with caplog.at_level(logging.DEBUG, logger="agent.canbus.source"):
        src.run()  # in this thread: returns once stopped
    # lost after 2 frames, 6 failed opens, reopened, lost again (it had been up < backoff_max), 2 more fails
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    stats = src.stats
    assert stats.opens == 2 and stats.lost == 2 and stats.open_failures == 8
    assert stats.state in ("down", "opening") and "open:" in stats.last_error
    assert all(bus.closed for bus in factory.buses)
    frame = cache.get(0x100)
    assert frame is not None and frame.data == bytes([1, 1]) and frame.count == 4
    assert all("can_filters" in kw for kw in factory.kwargs)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    # once per kind: one "cannot open", one "failed" (lost); repeats only at DEBUG
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    assert sum("is back" in r.getMessage() for r in caplog.records) == 1


def test_backoff_starts_over_after_a_long_healthy_period() -> None:
    factory = Scripted(["ok", "fail", "fail", "ok", "ok"])
    delays: list[float] = []
    ticks = [0.0]
    src: CanSource

    def clock() -> float:
        ticks[0] += 10.0  # each bus seems to stay up 10 s > backoff_max before it fails
        return ticks[0]

    def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 5:
            src._stop.set()

    src = CanSource(
        {"interface": "virtual", "backoff_initial": 0.5, "backoff_max": 8.0},
        FrameCache(),
        bus_factory=factory,
        sleep=sleep,
        clock=clock,
    )
    src.run()
    assert delays == [0.5, 1.0, 2.0, 0.5, 0.5]
    assert src.stats.opens == 3 and src.stats.lost == 3


def test_a_bus_that_never_opens_never_crashes() -> None:
    factory = Scripted([])
    delays: list[float] = []
    src: CanSource

    def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 20:
            src._stop.set()

    src = CanSource(
        {"interface": "virtual", "backoff_max": 30.0}, FrameCache(), bus_factory=factory, sleep=sleep
    )
    src.run()
    assert src.stats.open_failures == 20 and src.stats.opens == 0
    assert max(delays) == 30.0 and delays[0] == 0.5


def test_stop_interrupts_a_backoff_wait() -> None:
    src = CanSource(
        {"interface": "virtual", "backoff_initial": 60.0, "backoff_max": 60.0},
        FrameCache(),
        bus_factory=Scripted([]),
    )
    src.start()
    assert _wait(lambda: src.stats.open_failures == 1)
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 2.0


@pytest.mark.skipif(not os.path.exists("/sys/class/net/vcan0"), reason="vcan0 is absent on this host")
def test_socketcan_vcan0_roundtrip() -> None:  # pragma: no cover - needs a vcan0 interface
    cache = FrameCache({0x123})
    src = CanSource({"interface": "socketcan", "channel": "vcan0", "poll_interval": 0.05}, cache)
    tx = can.Bus(interface="socketcan", channel="vcan0")
    src.start()
    try:
        assert _wait(lambda: src.stats.state == "up")
        tx.send(can.Message(arbitration_id=0x124, data=b"no", is_extended_id=False))
        tx.send(can.Message(arbitration_id=0x123, data=b"yes", is_extended_id=False))
        assert _wait(lambda: cache.get(0x123) is not None)
    finally:
        src.stop()
        tx.shutdown()
    assert cache.stats.unwanted == 0  # the kernel filtered 0x124


# ------------------------------------------------------------------------------------------- logs


def test_candump_log_with_corrupt_lines_is_read_around_them(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text(
        "(1.000000) can0 100#0102030405060708\n"
        "garbage that is not a frame\n"
        "(1.001000) can0 100#01020\n"  # odd number of hex digits
        "(1.002000) can0 18FEF1FE#AABB\n"
        "\n"
        "(1.003000) can0 20000080#0000000000000000\n"  # error frame
        "(1.004000) can0 600##1" + "11" * 64 + "\n"  # CAN FD, BRS
        "(1.005000) can0 123#R\n"
        "(1.006000) can0 123#R8 T\n"
        "(1.007000) can0 100#" + "00" * 9 + "\n"  # classic frame with 9 bytes
        "(zz) can0 100#00\n"
    )
    stats = LogStats()
    msgs = list(iter_log(path, stats))
    assert stats.corrupt == 4 and stats.frames == len(msgs) == 6
    assert msgs[0].arbitration_id == 0x100 and bytes(msgs[0].data) == bytes(range(1, 9))
    assert msgs[1].is_extended_id and msgs[1].arbitration_id == 0x18FEF1FE
    assert msgs[2].is_error_frame
    assert msgs[3].is_fd and msgs[3].bitrate_switch and len(msgs[3].data) == 64
    assert msgs[4].is_remote_frame and msgs[5].is_remote_frame and msgs[5].dlc == 8


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf"])
def test_simulator_logs_in_every_format_read_back(tmp_path: Path, suffix: str) -> None:
    run = pytest.importorskip("sim.run")
    pytest.importorskip("sim.vehicle")
    messages = list(run.simulate(seconds=0.5, seed=2))
    path = tmp_path / f"sim{suffix}"
    with can.Logger(str(path)) as logger:
        for msg in messages:
            logger.on_message_received(msg)
    stats = LogStats()
    back = list(iter_log(path, stats))
    assert stats.corrupt == 0 and len(back) == len(messages)
    assert [(m.arbitration_id, bytes(m.data)) for m in back] == [
        (m.arbitration_id, bytes(m.data)) for m in messages
    ]


def test_truncated_blf_counts_and_stops(tmp_path: Path) -> None:
    run = pytest.importorskip("sim.run")
    pytest.importorskip("sim.vehicle")
    path = tmp_path / "cut.blf"
    with can.Logger(str(path)) as logger:
        for msg in run.simulate(seconds=2.0, seed=2):
            logger.on_message_received(msg)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] + b"\x00garbage" * 50)
    stats = LogStats()
    back = list(iter_log(path, stats))  # never raises
    assert len(back) == stats.frames
    assert stats.corrupt in (0, 1) and stats.truncated == (stats.corrupt == 1)


def test_unreadable_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read CAN log"):
        list(iter_log(tmp_path / "missing.log"))


# ------------------------------------------------------------------------------------ robustness

_ANY_MESSAGE = st.builds(
    lambda can_id, ext, data, kind, ts: can.Message(
        timestamp=ts,
        arbitration_id=can_id if ext else can_id & 0x7FF,
        is_extended_id=ext,
        data=data,
        is_fd=len(data) > 8,
        is_remote_frame=kind == "remote",
        is_error_frame=kind == "error",
        dlc=len(data),
        check=False,
    ),
    st.sampled_from([0x100, 0x180, 0x181, 0x7FF, 0x18FEF1FE, 0x1FFFFFFF, 0]),
    st.booleans(),
    st.binary(max_size=64),
    st.sampled_from(["data", "data", "data", "remote", "error"]),
    st.floats(min_value=0, max_value=2e9, allow_nan=False),
)


@settings(max_examples=50)
@given(st.lists(_ANY_MESSAGE, max_size=100))
def test_garbage_traffic_never_crashes_and_is_all_counted(messages: list[can.Message]) -> None:
    from agent.canbus.dbcload import load_dbc, mux_selector

    db = load_dbc([Path(__file__).resolve().parents[2] / "dbc" / "tbox_ev.dbc"])
    cells, temps = db.get_message_by_frame_id(0x180), db.get_message_by_frame_id(0x181)
    mux = {0x180: mux_selector(cells), 0x181: mux_selector(temps)}
    cache = FrameCache(
        {0x100, 0x180, 0x181, frame_key(0x18FEF1FE, True)}, mux=mux, lengths={0x100: 8, 0x180: 8}
    )  # type: ignore[arg-type]
    bus = FlakyBus(messages, can.CanOperationError("end of the script"))
    src: CanSource

    def sleep(delay: float) -> None:
        src._stop.set()

    src = CanSource({"interface": "virtual"}, cache, bus_factory=lambda **_: bus, sleep=sleep)
    src.run()
    data = [m for m in messages if not (m.is_error_frame or m.is_remote_frame)]
    stats = cache.stats
    assert stats.frames == len(data)
    assert stats.error_frames == src.stats.error_frames == sum(m.is_error_frame for m in messages)
    assert stats.remote_frames == sum(m.is_remote_frame and not m.is_error_frame for m in messages)
    assert src.stats.lost == 1 and bus.closed


def test_wrong_dlc_scenario_is_counted_short_and_decodes_what_fits() -> None:
    run = pytest.importorskip("sim.run")
    pytest.importorskip("sim.vehicle")
    from agent.canbus.dbcload import load_dbc
    from agent.canbus.decode import compile_decoder

    db = load_dbc([Path(__file__).resolve().parents[2] / "dbc" / "tbox_ev.dbc"])
    status = db.get_message_by_name("VCU_VehicleStatus")
    cache = FrameCache({0x100}, lengths={0x100: 8})
    messages = list(run.simulate(seconds=2.0, seed=4, scenario="wrong-dlc", fault_start_s=1.0))
    bus = FlakyBus(messages, can.CanOperationError("end"))
    src: CanSource

    def sleep(delay: float) -> None:
        src._stop.set()

    src = CanSource({"interface": "virtual"}, cache, bus_factory=lambda **_: bus, sleep=sleep)
    src.run()
    short = sum(1 for m in messages if m.arbitration_id == 0x100 and len(m.data) < 8)
    assert short > 0 and cache.stats.short == short
    frame = cache.get(0x100)
    assert frame is not None and len(frame.data) == 6
    names = [s.name for s in status.signals]
    decoded = compile_decoder(status, names)(frame.data)  # no exception: what fits in 6 bytes
    assert set(decoded) == {
        n for n in names if status.get_signal_by_name(n).start + status.get_signal_by_name(n).length <= 48
    }


def test_filters_built_from_wanted_ids_match_python_can_semantics() -> None:
    """python-can applies ``can_filters`` in software on the virtual bus: same rules as the kernel's."""
    channel = _channel()
    wanted = {0x100, frame_key(0x100, True), frame_key(0x18FEF1FE, True)}
    cache = FrameCache(wanted)
    src = CanSource(
        {"interface": "virtual", "channel": channel, "kernel_filters": True, "poll_interval": 0.05}, cache
    )
    tx = can.Bus(interface="virtual", channel=channel)
    src.start()
    try:
        assert _wait(lambda: src.stats.state == "up")
        for can_id, ext in [
            (0x100, False),
            (0x100, True),
            (0x18FEF1FE, True),
            (0x101, False),
            (0x0FEF1FE, True),
        ]:
            tx.send(can.Message(arbitration_id=can_id, is_extended_id=ext, data=b"\x01"))
        tx.send(can.Message(arbitration_id=0x7FE, is_extended_id=False, data=b"\x02"))
        tx.send(can.Message(arbitration_id=0x100, is_extended_id=False, data=b"\x03"))  # marks the end
        assert _wait(lambda: (f := cache.get(0x100)) is not None and f.data == b"\x03")
    finally:
        src.stop()
        tx.shutdown()
    stats = cache.stats
    assert stats.unwanted == 0  # the filters dropped 0x101, 0x0FEF1FE (29-bit) and 0x7FE
    assert stats.by_id == {0x100: 2, frame_key(0x100, True): 1, frame_key(0x18FEF1FE, True): 1}


class ScriptBus(FlakyBus):
    """Like FlakyBus, but a ``None`` in the script is a receive timeout."""

    def recv(self, timeout: float | None = None) -> can.Message | None:
        if self.frames:
            return self.frames.pop(0)
        raise self.fail_with


def _bus_off() -> can.Message:
    return can.Message(is_error_frame=True, arbitration_id=CAN_ERR_BUSOFF, dlc=8, data=bytes(8), check=False)


def _data(value: int) -> can.Message:
    return can.Message(arbitration_id=0x100, data=bytes([value]), is_extended_id=False)


def test_bus_off_then_frames_again_needs_no_reopen() -> None:
    cache = FrameCache({0x100})
    bus = ScriptBus([_data(1), _bus_off(), None, _data(2), _data(3)], can.CanOperationError("end"))
    states: list[str] = []
    src: CanSource

    def sleep(delay: float) -> None:
        src._stop.set()

    src = CanSource(
        {"interface": "virtual"}, cache, bus_factory=lambda **_: bus, sleep=sleep, clock=lambda: 0.0
    )
    real_put = cache.put

    def spy(key: int, data: bytes, ts: float) -> None:
        states.append(src.stats.state)
        real_put(key, data, ts)

    cache.put = spy  # type: ignore[method-assign]
    src.run()
    assert src.stats.bus_off == 1 and src.stats.opens == 1 and src.stats.lost == 1  # lost = end of script
    assert states == ["up", "bus-off", "up"]  # frame 2 arrived while recovering, frame 3 in the normal loop
    frame = cache.get(0x100)
    assert frame is not None and frame.data == b"\x03" and frame.count == 3


def test_bus_off_without_frames_reopens_the_bus(caplog: pytest.LogCaptureFixture) -> None:
    cache = FrameCache({0x100})
    first = ScriptBus([_bus_off(), None, None, None, _data(9)], can.CanOperationError("end"))
    buses = [first, ScriptBus([_data(7)], can.CanOperationError("end"))]
    now = [0.0]
    src: CanSource

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    def sleep(delay: float) -> None:
        if not buses:
            src._stop.set()

    src = CanSource(
        {"interface": "pcan", "bus_off_reopen": 2.0},
        cache,
        bus_factory=lambda **_: buses.pop(0),
        sleep=sleep,
        clock=clock,
    )
    with caplog.at_level(logging.WARNING, logger="agent.canbus.source"):
        src.run()
    assert src.stats.bus_off == 1 and src.stats.opens == 2 and src.stats.lost == 2
    assert first.closed and len(first.frames) == 2  # gave up after 2 s without frames, data(9) unread
    assert any("bus-off, no frame for 2 s" in r.getMessage() for r in caplog.records)
    frame = cache.get(0x100)
    assert frame is not None and frame.data == b"\x07"


def test_each_kind_of_trouble_is_logged_once_not_per_frame(caplog: pytest.LogCaptureFixture) -> None:
    error = can.Message(is_error_frame=True, arbitration_id=0x004, dlc=8, data=bytes(8), check=False)
    remote = can.Message(arbitration_id=0x100, is_remote_frame=True, dlc=8, is_extended_id=False)
    script: list[can.Message | None] = [error, remote, _data(1)] * 200
    bus = ScriptBus(script, can.CanOperationError("end"))
    src: CanSource

    def sleep(delay: float) -> None:
        src._stop.set()

    src = CanSource({"interface": "virtual"}, FrameCache({0x100}), bus_factory=lambda **_: bus, sleep=sleep)
    with caplog.at_level(logging.INFO, logger="agent.canbus.source"):
        src.run()
    assert src.stats.error_frames == 200 and src.stats.remote_frames == 200
    messages = [r.getMessage() for r in caplog.records]
    assert sum("error frames on the bus" in m for m in messages) == 1
    assert sum("remote (RTR) frames" in m for m in messages) == 1
    assert len(messages) == 3  # error frames, remote frames, the end of the script


def test_asc_log_with_corrupt_lines_is_read_around_them(tmp_path: Path) -> None:
    run = pytest.importorskip("sim.run")
    pytest.importorskip("sim.vehicle")
    messages = [m for m in run.simulate(seconds=0.3, seed=2) if not m.is_error_frame]
    good = tmp_path / "good.asc"
    with can.Logger(str(good)) as logger:
        for msg in messages:
            logger.on_message_received(msg)
    lines = good.read_text().splitlines()
    first_data = next(i for i, line in enumerate(lines) if " Rx " in line)
    bad_lines = ["   0.100000 1  zz1  Rx   d 8 00 11 22 33 44 55 66 77", "   0.1 1  1G0  Rx   d 1 00"]
    for offset, bad in zip((5, 40), bad_lines, strict=True):
        lines.insert(first_data + offset, bad)
    path = tmp_path / "bad.asc"
    path.write_text("\n".join(lines) + "\n")
    stats = LogStats()
    back = list(iter_log(path, stats))
    assert stats.corrupt == 2 and not stats.truncated
    assert [(m.arbitration_id, bytes(m.data)) for m in back] == [
        (m.arbitration_id, bytes(m.data)) for m in messages
    ]


def test_context_manager_starts_and_stops() -> None:
    channel = _channel()
    cache = FrameCache({0x100})
    with CanSource({"interface": "virtual", "channel": channel, "poll_interval": 0.05}, cache) as src:
        assert _wait(lambda: src.stats.state == "up")
        tx = can.Bus(interface="virtual", channel=channel)
        tx.send(_data(5))
        assert _wait(lambda: cache.get(0x100) is not None)
        tx.shutdown()
    assert not src.running and src.stats.state == "stopped"
