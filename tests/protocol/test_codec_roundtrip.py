"""Property tests: round trips for every data unit and info block of both editions, and fuzzing."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import wire
from agent.protocol.codec import (
    CodecOptions,
    VehicleTail,
    decode_body,
    decode_frame,
    decode_info_blocks,
    encode_body,
    encode_frame,
    encode_info_blocks,
)
from agent.protocol.errors import ProtocolError
from agent.protocol.model import Edition, Frame, VehicleData
from tests.protocol import strategies as S

EDITIONS = [Edition.E2016, Edition.E2025]
FRAMES = {ed: S.frames(ed) for ed in EDITIONS}
ANY_FRAME = st.one_of(FRAMES[Edition.E2016], FRAMES[Edition.E2025])
DATA_UNITS = {ed: S.data_units(ed) for ed in EDITIONS}
BLOCK_STRATEGIES = {(ed, make.__name__): make() for ed in EDITIONS for make in S.BLOCKS[ed]}
MANY_BLOCKS = {ed: S.info_blocks(ed, max_size=12) for ed in EDITIONS}
RESERVED_TAIL = CodecOptions(vehicle_tail=VehicleTail.RESERVED)


def _options_for(block: Any) -> CodecOptions:
    """The decode option matching how a 2016 vehicle block encodes its bytes 18-19."""
    if isinstance(block, VehicleData) and block.accelerator_pedal is None and block.brake_pedal is None:
        return RESERVED_TAIL
    return CodecOptions()


def _block_params() -> list[Any]:
    return [
        pytest.param(ed, make, id=f"{int(ed)}-{make.__name__}") for ed in EDITIONS for make in S.BLOCKS[ed]
    ]


@pytest.mark.parametrize(("edition", "make"), _block_params())
def test_info_block_round_trip(edition: Edition, make: Any) -> None:
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(BLOCK_STRATEGIES[(edition, make.__name__)])
    def check(block: Any) -> None:
        options = _options_for(block)
        data = encode_info_blocks(edition, [block], options=options)
        decoded, signature = decode_info_blocks(edition, data, 0, options=options)
        assert decoded == (block,)
        assert signature is None
        assert encode_info_blocks(edition, decoded, options=options) == data

    check()


@pytest.mark.parametrize("edition", EDITIONS)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_frame_round_trip(edition: Edition, data: st.DataObject) -> None:
    frame: Frame = data.draw(FRAMES[edition])
    # a 2016 vehicle block whose pedals are None is written as the Body's reserved WORD
    options = CodecOptions()
    body = frame.body
    blocks = getattr(body, "blocks", ())
    if any(isinstance(b, VehicleData) and b.accelerator_pedal is None for b in blocks):
        options = RESERVED_TAIL
        if any(isinstance(b, VehicleData) and b.accelerator_pedal is not None for b in blocks):
            return
    raw = encode_frame(frame, options=options)
    decoded = decode_frame(raw, options=options)
    assert decoded == frame
    assert encode_frame(decoded, options=options) == raw


@pytest.mark.parametrize("edition", EDITIONS)
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_data_unit_round_trip(edition: Edition, data: st.DataObject) -> None:
    command, response, body = data.draw(DATA_UNITS[edition])
    blocks = getattr(body, "blocks", ())
    options = (
        RESERVED_TAIL
        if any(isinstance(b, VehicleData) and b.accelerator_pedal is None for b in blocks)
        else CodecOptions()
    )
    if options is RESERVED_TAIL and any(
        isinstance(b, VehicleData) and b.accelerator_pedal is not None for b in blocks
    ):
        return
    unit = encode_body(edition, command, response, body, options=options)
    assert decode_body(edition, command, response, unit, options=options) == body


@pytest.mark.parametrize("edition", EDITIONS)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_realtime_with_many_blocks(edition: Edition, data: st.DataObject) -> None:
    blocks = data.draw(MANY_BLOCKS[edition])
    options = CodecOptions()
    if any(isinstance(b, VehicleData) and b.accelerator_pedal is None for b in blocks):
        return
    unit = encode_info_blocks(edition, blocks, options=options)
    assert decode_info_blocks(edition, unit, 0, options=options)[0] == blocks


# --------------------------------------------------------------------------- fuzzing: only ProtocolError


def _expect_protocol_error_only(fn: Any, *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(ProtocolError):
        fn(*args, **kwargs)


@settings(max_examples=1500)
@given(st.binary(max_size=120))
def test_fuzz_decode_frame_arbitrary_bytes(data: bytes) -> None:
    _expect_protocol_error_only(decode_frame, data)
    _expect_protocol_error_only(decode_frame, b"##" + data)
    _expect_protocol_error_only(decode_frame, b"$$" + data, options=CodecOptions(check_bcc=False))


def _framed(edition: int, command: int, response: int, unit: bytes) -> bytes:
    return wire.build_frame(edition, command, response, b"LFUZZ000000000001", 1, unit)


@settings(max_examples=1500)
@given(
    st.sampled_from(EDITIONS),
    st.one_of(st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x80, 0x81, 0x82]), st.integers(0, 255)),
    st.sampled_from([0xFE, 0x01, 0x02]),
    st.binary(max_size=200),
)
def test_fuzz_decode_body_arbitrary_bytes(edition: Edition, command: int, response: int, data: bytes) -> None:
    _expect_protocol_error_only(decode_body, edition, command, response, data)
    # a valid-looking time in front gets the decoders past the first field
    _expect_protocol_error_only(decode_body, edition, command, response, b"\x18\x05\x01\x08\x1e\x00" + data)
    _expect_protocol_error_only(decode_frame, _framed(int(edition), command, response, data))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_mutated_valid_frames(data: st.DataObject) -> None:
    frame = data.draw(ANY_FRAME)
    try:
        raw = bytearray(encode_frame(frame))
    except ProtocolError:
        return
    unit = bytearray(raw[24:-1])
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if how == "flip" and unit:
        i = data.draw(st.integers(0, len(unit) - 1))
        unit[i] = data.draw(st.integers(0, 255))
    elif how == "truncate" and unit:
        del unit[data.draw(st.integers(0, len(unit) - 1)) :]
    elif how == "extend":
        unit += data.draw(st.binary(min_size=1, max_size=8))
    elif unit:
        i = data.draw(st.integers(0, len(unit)))
        unit[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    mutated = _framed(int(frame.edition), raw[2], raw[3], bytes(unit))
    try:
        decoded = decode_frame(mutated)
    except ProtocolError as exc:
        assert exc.offset is None or 0 <= exc.offset < len(mutated) + 1
        return
    # whatever decodes must re-encode to the same bytes
    assert encode_frame(decoded) == mutated


def test_fuzz_truncated_prefixes_of_every_vector() -> None:
    from tests.protocol.test_vectors import FRAMES

    for hexdata in FRAMES.values():
        raw = bytes.fromhex(hexdata)
        unit = raw[24:-1]
        for cut in range(len(unit)):
            frame = wire.build_frame(
                2016 if raw[:2] == b"##" else 2025, raw[2], raw[3], raw[4:21], 1, unit[:cut]
            )
            _expect_protocol_error_only(decode_frame, frame)
        assert struct.unpack(">H", raw[22:24])[0] == len(unit)


SIGNED_2025 = S.realtime(Edition.E2025).filter(lambda r: r.signature is not None)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(SIGNED_2025)
def test_signed_range_is_the_wire_bytes_before_the_marker(report: Any) -> None:
    from agent.protocol.codec import signed_range
    from agent.protocol.model import Command, Encryption, ResponseFlag

    if any(isinstance(b, VehicleData) for b in report.blocks):
        return
    frame = Frame(
        Edition.E2025, Command.REISSUE, ResponseFlag.COMMAND, "LSIGN000000000001", Encryption.NONE, report
    )
    raw = encode_frame(frame)
    signed = signed_range(Edition.E2025, report)
    assert raw[24 : 24 + len(signed)] == signed
    assert raw[24 + len(signed)] == 0xFF
    decoded = decode_frame(raw).body
    assert signed_range(Edition.E2025, decoded) == signed  # type: ignore[arg-type]
