"""The server's directly built acknowledgements are byte for byte what the codec encodes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.protocol.codec import encode_frame
from agent.protocol.errors import ProtocolError
from agent.protocol.model import Command, Edition, Encryption, Frame, ResponseFlag, TimeOnly
from sim.platform.server import _ReplyCodec

TIMES = st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 1, 12)).map(
    lambda t: t.replace(tzinfo=UTC))


@settings(max_examples=200)
@given(st.sampled_from(["same", "2016", "2025"]), st.sampled_from([Edition.E2016, Edition.E2025]),
       st.sampled_from([Command.REALTIME, Command.REISSUE, Command.VEHICLE_LOGIN, Command.HEARTBEAT, 0x99]),
       st.sampled_from([ResponseFlag.SUCCESS, ResponseFlag.ERROR, 0x06]), TIMES,
       st.sampled_from(["LTBOXTEST00000001", "SHORT", ""]))
def test_ack_bytes_equal_the_codec(reply: str, edition: Edition, command: int, flag: int, t: datetime,
                                   vin: str) -> None:
    codec = _ReplyCodec(reply)
    frame = Frame(edition, command, flag, vin, Encryption.NONE, TimeOnly(t))
    forced = {"2016": Edition.E2016, "2025": Edition.E2025}.get(reply)
    expected_frame = dataclasses.replace(frame, edition=forced) if forced else frame
    try:
        expected: bytes | None = encode_frame(expected_frame)
    except ProtocolError:  # a time the wire cannot carry: the fast path must not answer either
        expected = None
    fast = codec.ack(edition, command, flag, vin, t)
    if fast is not None:
        assert fast == expected
    if expected is not None:
        assert codec.encode(frame) == expected


def test_other_time_zones_take_the_general_path() -> None:
    codec = _ReplyCodec("same")
    t = datetime(2026, 5, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    assert codec.ack(Edition.E2016, 2, 1, "LTBOXTEST00000001", t) is None
    frame = Frame(Edition.E2016, 2, 1, "LTBOXTEST00000001", Encryption.NONE, TimeOnly(t))
    assert codec.encode(frame) == encode_frame(frame)
