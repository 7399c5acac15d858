"""compile_decoder equals cantools' decode on every signal of our DBC and of a vendor-style test DBC."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.canbus.decode import all_ones, bytes_needed, compile_decoder
from agent.errors import MappingError

ROOT = Path(__file__).resolve().parents[2]
OUR_DBC = ROOT / "dbc" / "tbox_ev.dbc"
VENDOR_DBC = Path(__file__).resolve().parent / "data" / "vendor_fd.dbc"

DBS = {
    "ours": cantools.database.load_file(str(OUR_DBC), strict=True),
    "vendor": cantools.database.load_file(str(VENDOR_DBC), strict=True),
}


def _selector(message: Any) -> Any | None:
    return next((s for s in message.signals if s.is_multiplexer and not s.multiplexer_ids), None)


def _cases() -> list[tuple[str, str, int | None]]:
    """(db, message, mux) for every message and every mux value of multiplexed ones."""
    out: list[tuple[str, str, int | None]] = []
    for db_name, db in DBS.items():
        for message in db.messages:
            sel = _selector(message)
            if sel is None:
                out.append((db_name, message.name, None))
                continue
            values = sorted({v for s in message.signals for v in (s.multiplexer_ids or [])})
            out.extend((db_name, message.name, v) for v in values)
    return out


CASES = _cases()


def _names(message: Any, mux: int | None) -> list[str]:
    return [
        s.name
        for s in message.signals
        if not s.multiplexer_ids or (mux is not None and mux in s.multiplexer_ids)
    ]


def _set_mux(message: Any, data: bytes, mux: int) -> bytes:
    """``data`` with the multiplexer field set to ``mux``."""
    sel = _selector(message)
    assert sel is not None
    n = len(data)
    mask = (1 << sel.length) - 1
    if sel.byte_order == "little_endian":
        value = int.from_bytes(data, "little")
        value = (value & ~(mask << sel.start)) | (mux << sel.start)
        return value.to_bytes(n, "little")
    msb = 8 * (sel.start // 8) + 7 - sel.start % 8
    shift = 8 * n - msb - sel.length
    value = int.from_bytes(data, "big")
    value = (value & ~(mask << shift)) | (mux << shift)
    return value.to_bytes(n, "big")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def _assert_same(got: dict[str, Any], want: dict[str, Any], names: list[str], data: bytes) -> None:
    want = {k: v for k, v in want.items() if k in names}
    assert got.keys() == want.keys(), data.hex()
    for name in names:
        if name in want:
            assert _same(got[name], want[name]), (name, got[name], want[name], data.hex())


@pytest.mark.parametrize(
    ("db_name", "message_name", "mux"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
)
@settings(max_examples=100)
@given(data=st.data())
def test_decoder_equals_cantools_on_random_payloads(
    db_name: str, message_name: str, mux: int | None, data: st.DataObject
) -> None:
    message = DBS[db_name].get_message_by_name(message_name)
    names = _names(message, mux)
    decode = compile_decoder(message, names, mux)
    length = message.length
    payload = data.draw(st.binary(min_size=length, max_size=length), label="payload")
    if mux is not None:
        payload = _set_mux(message, payload, mux)
    want = message.decode(payload, decode_choices=False)
    _assert_same(decode(payload), dict(want), names, payload)
    # every signal alone, too (a decoder is usually compiled for a few signals)
    name = data.draw(st.sampled_from(names), label="one signal")
    assert _same(compile_decoder(message, [name], mux)(payload)[name], want[name])


@pytest.mark.parametrize(
    ("db_name", "message_name", "mux"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
)
@settings(max_examples=40)
@given(data=st.data())
def test_short_and_long_payloads_match_cantools_truncated_and_excess(
    db_name: str, message_name: str, mux: int | None, data: st.DataObject
) -> None:
    message = DBS[db_name].get_message_by_name(message_name)
    names = _names(message, mux)
    decode = compile_decoder(message, names, mux)
    sel = _selector(message)
    low = bytes_needed(sel) if mux is not None and sel is not None else 0
    n = data.draw(st.integers(min_value=low, max_value=message.length + 8), label="length")
    payload = data.draw(st.binary(min_size=n, max_size=n), label="payload")
    if mux is not None:
        payload = _set_mux(message, payload, mux)
    want = message.decode(payload, decode_choices=False, allow_truncated=True)
    _assert_same(decode(payload), dict(want), names, payload)


@pytest.mark.parametrize(
    ("db_name", "message_name", "mux"), CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES]
)
@settings(max_examples=10)
@given(data=st.data())
def test_raw_decoder_gives_unsigned_bit_patterns(
    db_name: str, message_name: str, mux: int | None, data: st.DataObject
) -> None:
    message = DBS[db_name].get_message_by_name(message_name)
    names = [n for n in _names(message, mux) if not message.get_signal_by_name(n).is_float]
    raw = compile_decoder(message, names, mux, raw=True)
    payload = data.draw(st.binary(min_size=message.length, max_size=message.length))
    if mux is not None:
        payload = _set_mux(message, payload, mux)
    want = message.decode(payload, decode_choices=False, scaling=False)
    got = raw(payload)
    for name in names:
        sig = message.get_signal_by_name(name)
        assert got[name] == want[name] & all_ones(sig)
        assert 0 <= got[name] <= all_ones(sig)


def test_all_ones_payload_reads_as_sna() -> None:
    message = DBS["ours"].get_message_by_name("BMS_PackStatus")
    names = [s.name for s in message.signals]
    raw = compile_decoder(message, names, raw=True)(b"\xff" * 8)
    assert all(raw[n] == all_ones(message.get_signal_by_name(n)) for n in names)


def test_empty_payload_gives_no_values_and_wrong_mux_gives_nothing() -> None:
    cells = DBS["ours"].get_message_by_name("BMS_CellVoltages")
    decode = compile_decoder(cells, ["BMS_Cell004_V"], mux=1)
    assert decode(b"") == {}
    assert decode(bytes([2, 1, 0, 0, 0, 0, 0, 0])) == {}  # a group-2 frame: not ours
    assert decode(bytes([1, 0xE8, 0x0E, 0, 0, 0, 0, 0])) == {"BMS_Cell004_V": pytest.approx(3.816)}
    assert decode(bytes([1, 0xE8])) == {}  # the cell's second byte is missing


def test_dbc_length_short_frame_keeps_the_signals_that_fit() -> None:
    status = DBS["ours"].get_message_by_name("VCU_VehicleStatus")
    names = [s.name for s in status.signals]
    decode = compile_decoder(status, names)
    full = bytes(range(1, 9))
    short = decode(full[:4])
    assert short
    assert set(short) < set(decode(full))
    assert short == {k: v for k, v in decode(full).items() if k in short}


def test_bad_names_and_mux_misuse_raise_mapping_error() -> None:
    cells = DBS["ours"].get_message_by_name("BMS_CellVoltages")
    with pytest.raises(MappingError, match="no signal 'Nope'"):
        compile_decoder(cells, ["Nope"], 0)
    with pytest.raises(MappingError, match="multiplexed"):
        compile_decoder(cells, ["BMS_Cell004_V"])
    with pytest.raises(MappingError, match="multiplexed"):
        compile_decoder(cells, ["BMS_Cell004_V"], mux=0)
    status = DBS["ours"].get_message_by_name("VCU_VehicleStatus")
    with pytest.raises(MappingError, match="not multiplexed"):
        compile_decoder(status, ["VCU_VehStatus_CRC"], mux=0)
