"""agent.protocol.wire under CPython: the shared cases plus property tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.protocol import wire
from tests.protocol import wire_cases


@pytest.mark.parametrize(("name", "case"), wire_cases.all_cases(), ids=[n for n, _ in wire_cases.all_cases()])
def test_case(name: str, case: Callable[[], None]) -> None:
    case()


@given(st.binary(max_size=3000))
def test_bcc_fold_equals_loop(data: bytes) -> None:
    assert wire._bcc_fold(data) == wire._bcc_loop(data)


frames = st.builds(
    wire.build_frame,
    st.sampled_from([2016, 2025]),
    st.integers(0, 255),
    st.sampled_from(wire.VALID_RESPONSES),
    st.binary(min_size=17, max_size=17),
    st.sampled_from(wire.VALID_ENCRYPTIONS),
    st.binary(max_size=300),
)


@given(
    st.lists(frames, max_size=6),
    st.lists(st.integers(1, 200), min_size=1, max_size=20),
    st.binary(max_size=40),
)
def test_framer_recovers_every_frame_from_any_chunking(
    sequence: list[bytes], cuts: list[int], garbage: bytes
) -> None:
    # garbage without start markers in front; frames back to back; arbitrary chunk sizes
    garbage = garbage.replace(b"#", b"").replace(b"$", b"")
    stream = garbage + b"".join(sequence)
    framer = wire.Framer()
    got: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        got.extend(f.raw for f in framer.feed(stream[pos : pos + size]))
        pos += size
        i += 1
    assert got == sequence
    assert framer.skipped_bytes == len(garbage)
    assert framer.buffered == 0


@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_framer_never_raises_and_stays_bounded(noise: bytes, cuts: list[int]) -> None:
    framer = wire.Framer(max_data_length=512)
    pos = 0
    i = 0
    while pos < len(noise):
        for frame in framer.feed(noise[pos : pos + cuts[i % len(cuts)]]):
            assert frame.raw[:2] in (b"##", b"$$")
        pos += cuts[i % len(cuts)]
        i += 1
    assert framer.buffered <= wire.HEADER_SIZE + 512 + 1
