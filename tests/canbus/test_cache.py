"""FrameCache semantics: latest + previous per key and mux value, unwanted and malformed counted."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.canbus.cache import EXTENDED_FLAG, CachedFrame, FrameCache, frame_key, message_key, split_key
from agent.canbus.dbcload import load_dbc, mux_selector

ROOT = Path(__file__).resolve().parents[2]
DB = load_dbc([ROOT / "dbc" / "tbox_ev.dbc"])
CELLS = DB.get_message_by_name("BMS_CellVoltages")


def test_keys_distinguish_standard_and_extended_ids() -> None:
    assert frame_key(0x123, False) == 0x123
    assert frame_key(0x123, True) == 0x123 | EXTENDED_FLAG == 0x80000123
    assert split_key(0x80000123) == (0x123, True)
    assert split_key(0x7FF) == (0x7FF, False)
    vendor = load_dbc([Path(__file__).parent / "data" / "vendor_fd.dbc"])
    assert message_key(vendor.get_message_by_name("VndPackJ1939")) == 0x18FEF1FE | EXTENDED_FLAG
    assert message_key(CELLS) == 0x180

    cache = FrameCache([frame_key(0x123, True)])
    cache.put(0x123, b"std", 1.0)
    cache.put(frame_key(0x123, True), b"ext", 2.0)
    assert cache.get(0x123) is None
    frame = cache.get(frame_key(0x123, True))
    assert frame is not None and frame.data == b"ext"
    assert cache.stats.unwanted_by_id == {0x123: 1}


def test_latest_and_previous_are_kept_with_a_count() -> None:
    cache = FrameCache([0x100])
    assert cache.get(0x100) is None
    cache.put(0x100, b"\x01", 1.0)
    assert cache.get(0x100) == CachedFrame(b"\x01", 1.0, None, None, 1)
    cache.put(0x100, b"\x02", 1.01)
    cache.put(0x100, b"\x03", 1.02)
    assert cache.get(0x100) == CachedFrame(b"\x03", 1.02, b"\x02", 1.01, 3)
    assert cache.stats.by_id == {0x100: 3}
    assert cache.stats.frames == 3


def test_unwanted_ids_are_only_counted() -> None:
    cache = FrameCache([0x100])
    for i in range(5):
        cache.put(0x200 + (i % 2), b"x", float(i))
    assert cache.get(0x200) is None and cache.keys() == []
    stats = cache.stats
    assert stats.unwanted == 5 and stats.unwanted_by_id == {0x200: 3, 0x201: 2}
    assert stats.frames == 5


def test_none_wants_every_id() -> None:
    cache = FrameCache()
    cache.put(0x7FF, b"", 0.0)
    cache.put(frame_key(0x1FFFFFFF, True), bytes(64), 0.0)
    assert cache.wanted_ids is None
    assert sorted(cache.keys()) == [0x7FF, 0x1FFFFFFF | EXTENDED_FLAG]
    frame = cache.get(frame_key(0x1FFFFFFF, True))
    assert frame is not None and len(frame.data) == 64  # CAN FD payloads are stored as they come


def test_multiplexed_frames_are_kept_per_mux_value() -> None:
    sel = mux_selector(CELLS)
    assert sel is not None
    cache = FrameCache([0x180], mux={0x180: sel})
    cache.put(0x180, bytes([0, 1, 1, 1, 1, 1, 1, 0]), 1.00)
    cache.put(0x180, bytes([1, 2, 2, 2, 2, 2, 2, 0]), 1.01)
    cache.put(0x180, bytes([0, 3, 3, 3, 3, 3, 3, 0]), 1.32)
    g0 = cache.get(0x180, 0)
    assert g0 == CachedFrame(bytes([0, 3, 3, 3, 3, 3, 3, 0]), 1.32, bytes([0, 1, 1, 1, 1, 1, 1, 0]), 1.00, 2)
    assert cache.get(0x180, 1) == CachedFrame(bytes([1, 2, 2, 2, 2, 2, 2, 0]), 1.01, None, None, 1)
    assert cache.get(0x180, 2) is None
    assert cache.mux_values(0x180) == [0, 1]
    whole = cache.get(0x180)  # latest of any mux value, previous = the frame before it on the bus
    assert whole is not None and whole.data[0] == 0 and whole.previous is not None and whole.previous[0] == 1
    assert whole.count == 3


def test_malformed_frames_are_counted_never_raise() -> None:
    sel = mux_selector(CELLS)
    assert sel is not None
    cache = FrameCache([0x100, 0x180], mux={0x180: sel}, lengths={0x100: 8, 0x180: 8})
    cache.put(0x100, bytes(6), 1.0)  # DLC shorter than the DBC: stored, counted
    cache.put(0x100, bytes(8), 1.1)
    cache.put(0x100, bytes(3), 1.2)
    cache.put(0x180, b"", 1.3)  # no mux byte at all: stored as latest of the id, not per mux
    cache.put_error(1.4)
    cache.put_remote(0x100)
    stats = cache.stats
    assert stats.short == 3  # two short 0x100 frames and the empty 0x180
    assert stats.no_mux == 1
    assert stats.malformed == 4
    assert stats.error_frames == 1 and stats.remote_frames == 1
    assert cache.last_error_timestamp == 1.4
    assert cache.mux_values(0x180) == []
    frame = cache.get(0x100)
    assert frame is not None and frame.data == bytes(3) and frame.previous == bytes(8)


@given(
    st.lists(
        st.tuples(st.sampled_from([0x100, 0x101, 0x180, 0x7FF, 0x80000100]), st.binary(max_size=64)),
        max_size=200,
    )
)
def test_any_sequence_of_frames_keeps_the_last_two_per_key(frames: list[tuple[int, bytes]]) -> None:
    sel = mux_selector(CELLS)
    assert sel is not None
    wanted = {0x100, 0x180, 0x80000100}
    cache = FrameCache(wanted, mux={0x180: sel}, lengths={0x180: 8})
    seen: dict[int, list[tuple[bytes, float]]] = {}
    for i, (key, data) in enumerate(frames):
        cache.put(key, data, float(i))
        if key in wanted:
            seen.setdefault(key, []).append((data, float(i)))
    for key, items in seen.items():
        frame = cache.get(key)
        assert frame is not None
        assert (frame.data, frame.timestamp) == items[-1]
        assert frame.count == len(items)
        prev = items[-2] if len(items) > 1 else (None, None)
        assert (frame.previous, frame.previous_timestamp) == prev
    stats = cache.stats
    assert stats.frames == len(frames)
    assert stats.unwanted == sum(1 for k, _ in frames if k not in wanted)


def test_unwanted_id_table_is_bounded() -> None:
    from agent.canbus.cache import MAX_UNWANTED_IDS

    cache = FrameCache([0x100])
    for key in range(0x200, 0x200 + MAX_UNWANTED_IDS + 500):
        cache.put(key, b"", 0.0)
    cache.put(0x200, b"", 0.0)  # an id already tracked keeps its own count
    stats = cache.stats
    assert len(stats.unwanted_by_id) == MAX_UNWANTED_IDS
    assert stats.unwanted == MAX_UNWANTED_IDS + 501 == stats.frames
    assert stats.unwanted_by_id[0x200] == 2


def test_put_never_logs(caplog: pytest.LogCaptureFixture) -> None:
    sel = mux_selector(CELLS)
    assert sel is not None
    cache = FrameCache([0x100, 0x180], mux={0x180: sel}, lengths={0x100: 8, 0x180: 8})
    with caplog.at_level(logging.DEBUG):
        for i in range(1000):
            cache.put(0x100 + (i % 3) * 0x40, bytes(i % 10), float(i))
        cache.put(0x180, b"", 1.0)
    assert caplog.records == []
    assert cache.stats.malformed > 0 and cache.stats.unwanted > 0


def test_stats_can_be_read_while_a_writer_runs() -> None:
    cache = FrameCache()
    done = threading.Event()

    def writer() -> None:
        key = 0
        while not done.is_set() and key < 2_000_000:
            cache.put(key % 5000, b"\x00", 0.0)  # new keys keep appearing
            key += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(200):
            stats = cache.stats  # never "dictionary changed size during iteration"
            assert stats.frames >= len(stats.by_id)
    finally:
        done.set()
        thread.join(10)
    assert not thread.is_alive()
