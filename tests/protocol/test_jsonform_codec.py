"""jsonform with the real codec: every frame the codec strategies build survives bytes -> JSON -> bytes."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.protocol.codec import decode_frame, encode_frame
from agent.protocol.errors import ProtocolError
from agent.protocol.jsonform import frame_from_json, frame_to_json, info_types, to_json
from agent.protocol.model import (
    CustomBlock,
    Edition,
    Extremes,
    Frame,
    Location,
    Location2025,
    RealtimeReport,
    Temperatures,
    VehicleData,
    VehicleData2025,
)

# the codec engineer's strategies (tests/protocol/strategies.py); skip until that file is committed
strategies = pytest.importorskip("tests.protocol.strategies")


@settings(max_examples=300)
@given(frame=strategies.frames())
def test_bytes_json_bytes(frame: Frame) -> None:
    wire = encode_frame(frame)
    decoded = decode_frame(wire)
    obj = frame_to_json(decoded, length=len(wire) - 25)
    text = json.dumps(obj, ensure_ascii=False)
    again = frame_from_json(json.loads(text))
    assert again == decoded
    assert encode_frame(again) == wire


@given(frame=strategies.frames())
def test_length_computed_when_not_given(frame: Frame) -> None:
    wire = encode_frame(frame)
    assert frame_to_json(decode_frame(wire))["length"] == len(wire) - 25


def test_info_types_per_edition() -> None:
    e16, e25 = info_types(Edition.E2016), info_types(Edition.E2025)
    assert e16[VehicleData] == 0x01 and e16[Location] == 0x05 and e16[Extremes] == 0x06
    assert e16[Temperatures] == 0x09 and e25[Temperatures] == 0x08
    assert e25[VehicleData2025] == 0x01 and e25[Location2025] == 0x05
    assert VehicleData2025 not in e16


@given(report=strategies.realtime(Edition.E2025))
def test_blocks_carry_the_editions_info_type(report: RealtimeReport) -> None:
    ids = info_types(Edition.E2025)
    obj = to_json(report, edition=Edition.E2025)
    for block, value in zip(obj["blocks"], report.blocks, strict=True):
        expected = value.info_type if isinstance(value, CustomBlock) else ids[type(value)]
        assert block["info_type"] == expected
    plain = to_json(report)["blocks"]  # without an edition: only custom blocks have one (a real field)
    assert all(("info_type" in block) == (block["type"] == "custom_block") for block in plain)


_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70) | st.just(2**1100),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from(["invalid", "abnormal", "2018-06-23T12:05:02+08:00", "00ff", "drive", "none"]),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner)),
    max_leaves=8,
)


def _mutations(obj: Any) -> list[tuple[list[Any], Any]]:
    """(path, container) for every value inside ``obj``."""
    found: list[tuple[list[Any], Any]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.append(([key], obj))
            found.extend(([key, *path], container) for path, container in _mutations(value))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found.append(([index], obj))
            found.extend(([index, *path], container) for path, container in _mutations(value))
    return found


@settings(max_examples=400)
@given(frame=strategies.frames(), data=st.data())
def test_mutated_json_raises_only_protocol_errors(frame: Frame, data: st.DataObject) -> None:
    obj = json.loads(json.dumps(frame_to_json(frame, length=0)))
    spots = _mutations(obj)
    path, _ = data.draw(st.sampled_from(spots))
    target = obj
    for step in path[:-1]:
        target = target[step]
    if data.draw(st.booleans()) and isinstance(target, dict):
        del target[path[-1]]
    else:
        target[path[-1]] = data.draw(_json_values)
    with contextlib.suppress(ProtocolError):
        encode_frame(frame_from_json(obj))
