"""Hypothesis: the line splitter, the NMEA parser and the ICCID decoders never raise on arbitrary input
other than their documented ValueError, and what they accept round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.peripherals.gnss import NmeaParser
from agent.peripherals.lines import SerialLines
from agent.peripherals.modem import login_iccid, parse_iccid, swap_nibbles
from tests.peripherals.devices import ef_iccid, fix_lines


@given(st.binary(max_size=2000), st.lists(st.integers(1, 64), max_size=40))
def test_lines_do_not_depend_on_how_the_bytes_are_chunked(data: bytes, cuts: list[int]) -> None:
    whole = SerialLines(max_line=4096).feed(data + b"\n")
    chunked: list[str] = []
    lines = SerialLines(max_line=4096)
    rest = data + b"\n"
    for n in cuts:
        chunked += lines.feed(rest[:n])
        rest = rest[n:]
    chunked += lines.feed(rest)
    assert chunked == whole
    assert all(line and line.isascii() and line.isprintable() and line == line.strip() for line in whole)


@given(st.lists(st.binary(max_size=200), max_size=30))
def test_line_buffer_stays_bounded(chunks: list[bytes]) -> None:
    lines = SerialLines(max_line=64)
    for chunk in chunks:
        out = lines.feed(chunk.replace(b"\r", b"").replace(b"\n", b""))
        assert out == []
        assert len(lines._buf) <= 64


@given(st.lists(st.text(max_size=120), max_size=20))
def test_the_nmea_parser_never_raises(texts: list[str]) -> None:
    parser = NmeaParser()
    for text in texts:
        parser.feed_line(text)
    parser.flush()


@given(st.lists(st.sampled_from(fix_lines(1) + fix_lines(2, valid=False) + fix_lines(3)), max_size=12),
       st.lists(st.text(max_size=40), max_size=5))
def test_nmea_positions_are_valid_or_repeat_the_last_fix(lines: list[str], noise: list[str]) -> None:
    parser = NmeaParser()
    last: tuple[float, float] | None = None
    for pos in parser.feed(noise + lines):
        if pos.valid:
            last = (pos.latitude, pos.longitude)
        elif last is not None:
            assert (pos.latitude, pos.longitude) == last


@given(st.text(max_size=40))
def test_parse_iccid_accepts_only_19_or_20_digits(text: str) -> None:
    try:
        value = parse_iccid(text)
    except ValueError:
        return
    assert value.isdigit() and len(value) in (19, 20)
    assert parse_iccid(login_iccid(value)) == value


@given(st.from_regex(r"[0-9]{19,20}", fullmatch=True))
def test_ef_iccid_round_trip(iccid: str) -> None:
    assert parse_iccid(swap_nibbles(ef_iccid(iccid))) == iccid
    assert len(login_iccid(iccid)) == 20


@given(st.text(max_size=30))
def test_swap_nibbles_raises_only_value_error(text: str) -> None:
    try:
        swapped = swap_nibbles(text)
    except ValueError:
        return
    assert len(swapped) == len(text.strip().strip('"'))


def test_an_iccid_with_letters_inside_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_iccid("8986A000000000000001")
