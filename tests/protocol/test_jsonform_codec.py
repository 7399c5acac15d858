"""jsonform with the real codec: every frame the codec strategies build survives bytes -> JSON -> bytes."""

from __future__ import annotations

import json

from hypothesis import given, settings

from agent.protocol.codec import decode_frame, encode_frame
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
from tests.protocol import strategies


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
