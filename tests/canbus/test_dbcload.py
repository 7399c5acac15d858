"""load_dbc: merge, errors naming file and line; mux_selector equals cantools on any layout."""

from __future__ import annotations

from pathlib import Path

import cantools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.canbus.cache import message_key
from agent.canbus.dbcload import load_dbc, mux_selector
from agent.errors import MappingError

ROOT = Path(__file__).resolve().parents[2]
OUR_DBC = ROOT / "dbc" / "tbox_ev.dbc"
VENDOR_DBC = Path(__file__).resolve().parent / "data" / "vendor_fd.dbc"

HEADER = 'VERSION ""\n\nNS_ :\n\nBS_:\n\nBU_: A B\n\n'


def test_loads_and_merges_several_files() -> None:
    db = load_dbc([OUR_DBC, VENDOR_DBC])
    names = {m.name for m in db.messages}
    assert {"BMS_CellVoltages", "VndCellVoltsFd", "VndPackJ1939"} <= names
    assert db.get_message_by_name("VndCellVoltsFd").is_fd
    assert db.get_message_by_name("VndPackJ1939").is_extended_frame
    assert load_dbc([str(OUR_DBC)]).get_message_by_frame_id(0x180).name == "BMS_CellVoltages"


def test_duplicate_message_across_files_is_an_error_in_strict_mode(tmp_path: Path) -> None:
    dup = tmp_path / "dup.dbc"
    dup.write_text(HEADER + 'BO_ 288 OtherPack: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n')
    with pytest.raises(MappingError, match=r"dup\.dbc: message OtherPack \(id 0x120\) is also defined in"):
        load_dbc([OUR_DBC, dup])
    db = load_dbc([OUR_DBC, dup], strict=False)
    assert db.get_message_by_frame_id(0x120).name == "OtherPack"
    assert "BMS_PackStatus" not in {m.name for m in db.messages}


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dbc"
    bad.write_text(
        HEADER + 'BO_ 100 M: 8 A\n SG_ S1 : 0|8@1+ (1,0) [0|255] "" B\n SG_ S2 : 8|8@1 (1,0) [0|255] "" B\n'
    )
    with pytest.raises(MappingError, match=r"bad\.dbc:11: Invalid syntax at line 11"):
        load_dbc([bad])


def test_strict_semantic_error_names_file_and_a_signal_line(tmp_path: Path) -> None:
    bad = tmp_path / "overlap.dbc"
    bad.write_text(
        HEADER + 'BO_ 100 M: 8 A\n SG_ S1 : 0|8@1+ (1,0) [0|255] "" B\n SG_ S2 : 4|8@1+ (1,0) [0|255] "" B\n'
    )
    with pytest.raises(MappingError, match=r"overlap\.dbc:1[01]: .*overlapping"):
        load_dbc([bad])
    assert load_dbc([bad], strict=False).get_message_by_name("M")


def test_missing_file_and_empty_list() -> None:
    with pytest.raises(MappingError, match=r"nope\.dbc: cannot read"):
        load_dbc([ROOT / "nope.dbc"])
    with pytest.raises(MappingError, match="no DBC"):
        load_dbc([])


ALL = load_dbc([OUR_DBC, VENDOR_DBC])
MUXED = [m for m in ALL.messages if m.is_multiplexed()]


def test_unmultiplexed_message_has_no_selector() -> None:
    assert mux_selector(ALL.get_message_by_name("BMS_PackStatus")) is None
    assert len(MUXED) == 4


@pytest.mark.parametrize("message", MUXED, ids=[m.name for m in MUXED])
@given(data=st.data())
def test_selector_equals_cantools_multiplexer_value(message: object, data: st.DataObject) -> None:
    msg = ALL.get_message_by_frame_id(message.frame_id)  # type: ignore[attr-defined]
    sel = mux_selector(msg)
    assert sel is not None
    mux_sig = next(s for s in msg.signals if s.is_multiplexer)
    payload = data.draw(st.binary(min_size=msg.length, max_size=msg.length))
    try:
        want = msg.decode(payload, decode_choices=False, scaling=False)
    except cantools.database.DecodeError:  # cantools refuses unknown mux values
        want = {}
    raw = int.from_bytes(payload, "little") >> mux_sig.start & ((1 << mux_sig.length) - 1)
    if mux_sig.byte_order == "big_endian":
        msb = 8 * (mux_sig.start // 8) + 7 - mux_sig.start % 8
        raw = int.from_bytes(payload, "big") >> (8 * msg.length - msb - mux_sig.length) & (
            (1 << mux_sig.length) - 1
        )
    assert sel(payload) == raw
    if mux_sig.name in want:
        assert sel(payload) == want[mux_sig.name]


def test_selector_raises_index_error_on_a_too_short_payload() -> None:
    for msg in MUXED:
        sel = mux_selector(msg)
        assert sel is not None
        with pytest.raises(IndexError):
            sel(b"")
    assert message_key(MUXED[0]) in {0x180, 0x181, 0x600, 0x98FF1234 & 0x1FFFFFFF | 1 << 31}


def test_one_file_keeps_cantools_database_attributes() -> None:
    db = load_dbc([OUR_DBC])
    assert db.dbc is not None and "GenMsgCycleTime" in db.dbc.attribute_definitions
    assert db.get_message_by_name("BMS_PackStatus").cycle_time == 10
    merged = load_dbc([OUR_DBC, VENDOR_DBC])
    assert merged.get_message_by_name("BMS_PackStatus").cycle_time == 10  # message attributes survive a merge
