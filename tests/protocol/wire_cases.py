"""Test cases for agent.protocol.wire, runnable under CPython (pytest) and MicroPython.

Plain functions named ``case_*`` with bare asserts; no pytest, typing or dataclasses, so the
MicroPython runner can execute this very file against the very same wire.py.
"""

from agent.protocol import wire
from agent.protocol.errors import ProtocolError

# Public frames from ../shared/spec/vectors.md
HEARTBEAT_J5 = "232307FE3132333435363738390000000000000000010000C9"
LOGIN_T1 = (
    "232301FE4C5A59545547455735473130353935343501001E12061610150F001F38393836303631363032303034363337"
    "393632390100A8"
)
LOGOUT_R22 = "242404FE484155563442474E365335303032323139010008190A1B1402020802C8"
ACK_T4R = "232301014C464E41344C4441394A4B4C3030303831010006120A1E10240000"


def _raises(fn, *args):
    try:
        fn(*args)
    except ProtocolError as exc:
        return exc
    raise AssertionError(f"no ProtocolError from {fn!r}{args!r}")


def case_parse_heartbeat():
    frame = wire.parse_frame(bytes.fromhex(HEARTBEAT_J5))
    assert frame.edition == 2016
    assert frame.command == 0x07 and frame.response == 0xFE
    assert frame.vin == b"123456789" + bytes(8)
    assert frame.encryption == 0x01 and frame.data == b"" and frame.bcc_ok


def case_parse_2025_logout():
    frame = wire.parse_frame(bytes.fromhex(LOGOUT_R22))
    assert frame.edition == 2025 and frame.command == 0x04
    assert frame.vin == b"HAUV4BGN6S5002219"
    assert frame.data == bytes.fromhex("190A1B1402020802")


def case_build_is_exact():
    for text in (HEARTBEAT_J5, LOGIN_T1, LOGOUT_R22, ACK_T4R):
        raw = bytes.fromhex(text)
        f = wire.parse_frame(raw)
        assert wire.build_frame(f.edition, f.command, f.response, f.vin, f.encryption, f.data) == raw


def case_bcc_excludes_marker_and_itself():
    raw = bytes.fromhex(LOGIN_T1)
    assert wire.bcc(raw, 2, len(raw) - 1) == raw[-1]
    assert wire.bcc(b"") == 0
    assert wire.bcc(b"\x01\x02\x04") == 0x07
    assert wire.bcc(bytes(range(256))) == 0


def case_bad_bcc_names_offset():
    raw = bytearray(bytes.fromhex(LOGIN_T1))
    raw[-1] ^= 0xFF
    exc = _raises(wire.parse_frame, bytes(raw))
    assert exc.offset == len(raw) - 1 and exc.field == "bcc"
    lenient = wire.parse_frame(bytes(raw), False)
    assert not lenient.bcc_ok


def case_bad_marker_and_lengths():
    raw = bytes.fromhex(HEARTBEAT_J5)
    exc = _raises(wire.parse_frame, b"#$" + raw[2:])
    assert exc.offset == 0 and exc.field == "start"
    exc = _raises(wire.parse_frame, raw[:20])
    assert exc.field == "header"
    exc = _raises(wire.parse_frame, raw + b"\x00")
    assert exc.field == "length"
    big = bytearray(raw)
    big[22] = 0xFF
    big[23] = 0xFF
    exc = _raises(wire.parse_frame, bytes(big))
    assert exc.offset == 22 and exc.field == "length"


def case_build_rejects_bad_input():
    exc = _raises(wire.build_frame, 2016, 7, 0xFE, b"SHORT", 1, b"")
    assert exc.field == "vin"
    exc = _raises(wire.build_frame, 2016, 2, 0xFE, bytes(17), 1, bytes(65532))
    assert exc.field == "length"
    exc = _raises(wire.build_frame, 2017, 2, 0xFE, bytes(17), 1, b"")
    assert exc.field == "edition"


def case_time_round_trip_and_validation():
    fields = (2018, 6, 22, 16, 21, 15)
    data = wire.encode_time(fields)
    assert data == bytes.fromhex("12061610150F")
    assert wire.decode_time(data) == fields
    assert wire.decode_time(b"\x00" + data, 1) == fields
    exc = _raises(wire.decode_time, bytes.fromhex("120D16101500"), 0, "login.time")
    assert exc.offset == 1 and exc.field == "login.time.month"
    exc = _raises(wire.decode_time, bytes.fromhex("11021D000000"), 0)  # 2017-02-29
    assert exc.offset == 2 and exc.field == "time.day"
    assert wire.decode_time(bytes.fromhex("14021D000000")) == (2020, 2, 29, 0, 0, 0)
    exc = _raises(wire.decode_time, b"\x12\x06", 0)
    assert exc.field == "time"
    _raises(wire.encode_time, (1999, 1, 1, 0, 0, 0))
    _raises(wire.encode_time, (2020, 1, 1, 24, 0, 0))


def case_framer_split_and_back_to_back():
    stream = bytes.fromhex(HEARTBEAT_J5 + LOGIN_T1 + LOGOUT_R22)
    for step in (1, 2, 7, 24, 25, 1000):
        framer = wire.Framer()
        frames = []
        for i in range(0, len(stream), step):
            frames.extend(framer.feed(stream[i : i + step]))
        assert [f.command for f in frames] == [0x07, 0x01, 0x04], step
        assert [f.edition for f in frames] == [2016, 2016, 2025]
        assert framer.skipped_bytes == 0 and framer.buffered == 0 and framer.frames == 3


def case_framer_skips_garbage():
    framer = wire.Framer()
    garbage = b"\x00\x11#\x22$\x33"
    frames = framer.feed(garbage + bytes.fromhex(HEARTBEAT_J5) + b"xyz#")
    assert len(frames) == 1 and frames[0].bcc_ok
    assert framer.skipped_bytes == len(garbage) + 3
    assert framer.buffered == 1  # a trailing '#' may start the next marker
    frames = framer.feed(bytes.fromhex(HEARTBEAT_J5)[1:])
    assert len(frames) == 1 and framer.buffered == 0


def case_framer_stray_marker_byte_before_real_frame():
    framer = wire.Framer()
    frames = framer.feed(b"#" + bytes.fromhex(LOGOUT_R22.replace("2424", "2323", 1)))
    # "###..." : the first "##" is one byte early; the framer must still find the real frame
    good = [f for f in frames if f.bcc_ok]
    assert len(good) == 1 and good[0].command == 0x04


def case_framer_reports_bad_bcc_and_keeps_going():
    bad = bytearray(bytes.fromhex(LOGIN_T1))
    bad[30] ^= 0x01  # payload corruption: length intact
    framer = wire.Framer()
    frames = framer.feed(bytes(bad) + bytes.fromhex(HEARTBEAT_J5))
    assert [f.bcc_ok for f in frames] == [False, True]
    assert frames[0].command == 0x01 and framer.bad_bcc == 1 and framer.frames == 1


def case_framer_survives_corrupt_length():
    bad = bytearray(bytes.fromhex(HEARTBEAT_J5))
    bad[23] = 0x05  # claims 5 data bytes: swallows the next frame's start
    stream = bytes(bad) + bytes.fromhex(LOGIN_T1) + bytes.fromhex(LOGOUT_R22)
    framer = wire.Framer()
    frames = framer.feed(stream)
    good = [f.command for f in frames if f.bcc_ok]
    assert good == [0x01, 0x04], good


def case_framer_rejects_oversize_length():
    framer = wire.Framer(max_data_length=100)
    header = bytearray(bytes.fromhex(HEARTBEAT_J5))
    header[22] = 0x10  # L = 4096 > 100
    frames = framer.feed(bytes(header[:24]) + bytes.fromhex(LOGOUT_R22))
    assert [f.command for f in frames] == [0x04]
    assert framer.oversize == 1


def case_framer_garbage_only_is_bounded():
    framer = wire.Framer()
    for _ in range(50):
        assert framer.feed(b"\x00" * 1000) == []
    assert framer.buffered == 0 and framer.skipped_bytes == 50000


def all_cases():
    return [(name, fn) for name, fn in sorted(globals().items()) if name.startswith("case_")]
