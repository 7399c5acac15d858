"""Counter and checksum checks: CRC reference values, every algorithm, and the simulator's real frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.canbus.checks import ALGORITHMS, crc8, make_check
from agent.canbus.dbcload import load_dbc
from agent.errors import MappingError

ROOT = Path(__file__).resolve().parents[2]
DB = load_dbc([ROOT / "dbc" / "tbox_ev.dbc"])
VENDOR = load_dbc([Path(__file__).resolve().parent / "data" / "vendor_fd.dbc"])
E2E = [
    m
    for m in DB.messages
    if any(s.name.endswith("_CRC") for s in m.signals) and any(s.name.endswith("_Counter") for s in m.signals)
]


def _sim_check(message: Any) -> Any:
    crc = next(s.name for s in message.signals if s.name.endswith("_CRC"))
    counter = next(s.name for s in message.signals if s.name.endswith("_Counter"))
    return make_check(message, counter=counter, checksum=crc, algorithm="crc8_sae_j1850", counter_modulo=15)


def test_crc8_reference_check_values() -> None:
    assert crc8(b"123456789") == 0x4B  # SAE J1850
    assert crc8(b"123456789", poly=0x2F) == 0xDF  # AUTOSAR CRC8H2F
    assert crc8(b"123456789", init=0, xorout=0) == 0x37  # CRC-8/GSM-A: E2E profile 1 (0x00 start, 0x00 xor)


def test_ten_e2e_messages_in_our_dbc() -> None:
    assert len(E2E) == 10


def test_sim_e2e_crc_matches_the_reference_implementation() -> None:
    ecus = pytest.importorskip("sim.ecus")
    for message in E2E:
        check = _sim_check(message)
        for seed in range(20):
            body = bytes([0]) + bytes((seed * 37 + i * 11) & 0xFF for i in range(1, 8))
            assert check.checksum(body) == ecus.e2e_crc(message.frame_id, body)


def _frames(scenario: str | None, seconds: float = 20.0) -> dict[int, list[bytes]]:
    run = pytest.importorskip("sim.run")
    pytest.importorskip("sim.vehicle")
    out: dict[int, list[bytes]] = {}
    for window in run.simulate_windows(seconds=seconds, seed=3, scenario=scenario, fault_start_s=2.0):
        for _, can_id, data in window.frames:
            if can_id >= 0:
                out.setdefault(can_id, []).append(data)
    return out


def _flagged(check: Any, frames: list[bytes]) -> set[int]:
    previous: bytes | None = None
    bad = set()
    for i, data in enumerate(frames):
        if not check.ok(data, previous):
            bad.add(i)
        previous = data
    return bad


def test_clean_simulator_traffic_passes_every_check() -> None:
    frames = _frames(None)
    for message in E2E:
        if message.frame_id in frames:
            assert _flagged(_sim_check(message), frames[message.frame_id]) == set(), message.name


def test_bad_crc_scenario_flags_exactly_the_corrupted_frames() -> None:
    clean, faulty = _frames(None), _frames("bad-crc")
    message = DB.get_message_by_name("BMS_PackStatus")
    a, b = clean[message.frame_id], faulty[message.frame_id]
    assert len(a) == len(b)
    corrupted = {i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y}
    assert len(corrupted) >= 90  # every 10th frame for 10 s at 100 Hz
    check = _sim_check(message)
    assert _flagged(check, b) == corrupted
    assert all(check.counter_ok(b[i], b[i - 1]) for i in corrupted)  # only the CRC is wrong
    for other in E2E:  # nothing else is touched
        if other is not message and other.frame_id in faulty:
            assert _flagged(_sim_check(other), faulty[other.frame_id]) == set(), other.name


def test_bad_counter_scenario_flags_exactly_the_counter_jumps() -> None:
    clean, faulty = _frames(None), _frames("bad-counter")
    message = DB.get_message_by_name("MCU1_Status")
    a, b = clean[message.frame_id], faulty[message.frame_id]
    assert len(a) == len(b)
    offsets = [((y[1] & 0x0F) - (x[1] & 0x0F)) % 15 for x, y in zip(a, b, strict=True)]
    jumps = {i for i in range(1, len(offsets)) if offsets[i] != offsets[i - 1]}
    assert len(jumps) >= 150  # every 5th frame for 10 s at 100 Hz (and back at the end)
    check = _sim_check(message)
    assert _flagged(check, b) == jumps
    assert all(check.checksum_ok(data) for data in b)  # the scenario recomputes the CRC


def _with_checksum(message: Any, algorithm: str, data: bytearray, **params: Any) -> bytes:
    check = make_check(message, counter=None, checksum="VndPackChecksum", algorithm=algorithm, **params)
    data[7] = check.checksum(bytes(data))
    return bytes(data)


J1939 = VENDOR.get_message_by_name("VndPackJ1939")


@given(st.binary(min_size=8, max_size=8))
def test_xor_and_sum_checksums(payload: bytes) -> None:
    body = bytearray(payload)
    xor = 0
    for byte in body[:7]:
        xor ^= byte
    assert _with_checksum(J1939, "xor", bytearray(body))[7] == xor
    assert _with_checksum(J1939, "sum", bytearray(body))[7] == sum(body[:7]) & 0xFF
    assert _with_checksum(J1939, "sum", bytearray(body), init=5)[7] == (sum(body[:7]) + 5) & 0xFF


@given(
    st.binary(min_size=8, max_size=8),
    st.sampled_from(["e2e_p1", "crc8_autosar", "crc8_sae_j1850", "xor", "sum"]),
)
def test_any_single_bit_flip_fails_the_checksum(payload: bytes, algorithm: str) -> None:
    good = _with_checksum(J1939, algorithm, bytearray(payload))
    check = make_check(J1939, counter=None, checksum="VndPackChecksum", algorithm=algorithm)
    assert check.ok(good, None)
    for bit in range(64):
        flipped = bytearray(good)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not check.ok(bytes(flipped), None)


def test_e2e_p1_covers_the_data_id_and_crc8_autosar_does_not() -> None:
    body = bytearray(b"\x01\x02\x03\x04\x05\x06\x07\x00")
    p1 = make_check(J1939, counter=None, checksum="VndPackChecksum", algorithm="e2e_p1", data_id=0x1234)
    assert p1.checksum(bytes(body)) == crc8(b"\x34\x12" + bytes(body[:7]), init=0, xorout=0)
    autosar = make_check(J1939, counter=None, checksum="VndPackChecksum", algorithm="crc8_autosar")
    assert autosar.checksum(bytes(body)) == crc8(bytes(body[:7]), poly=0x2F)
    low = make_check(
        J1939, counter=None, checksum="VndPackChecksum", algorithm="crc8_autosar", data_id_bytes=1
    )
    assert low.checksum(bytes(body)) == crc8(bytes([J1939.frame_id & 0xFF]) + bytes(body[:7]), poly=0x2F)


def _counter_frame(value: int) -> bytes:
    return bytes([0, 0, 0, 0, 0, 0, value << 4, 0])  # VndPackCounter: bits 52..55


def test_counter_rules() -> None:
    check = make_check(J1939, counter="VndPackCounter", checksum=None, algorithm="none")
    assert check.counter_value(_counter_frame(9)) == 9
    assert check.ok(_counter_frame(3), None)  # unknown previous
    assert check.ok(_counter_frame(4), _counter_frame(3))
    assert check.ok(_counter_frame(0), _counter_frame(15))  # wraps at 2**4
    assert not check.ok(_counter_frame(4), _counter_frame(4))  # repeated
    assert not check.ok(_counter_frame(5), _counter_frame(3))  # skipped one
    assert not check.ok(_counter_frame(3), _counter_frame(4))  # went back
    assert not check.ok(b"\x00" * 6, None)  # too short to carry the counter
    tolerant = make_check(J1939, counter="VndPackCounter", checksum=None, algorithm="none", max_jump=3)
    assert tolerant.ok(_counter_frame(6), _counter_frame(3))
    assert not tolerant.ok(_counter_frame(7), _counter_frame(3))
    p1 = make_check(J1939, counter="VndPackCounter", checksum=None, algorithm="none", counter_modulo=15)
    assert p1.ok(_counter_frame(0), _counter_frame(14))
    assert not p1.ok(_counter_frame(15), _counter_frame(14))  # 15 = invalid
    assert p1.ok(_counter_frame(3), _counter_frame(15))  # nothing valid to compare with


def test_e2e_p1_counter_defaults_to_0_to_14() -> None:
    status = DB.get_message_by_name("MCU1_Status")
    check = make_check(status, counter="MCU1_Status_Counter", checksum="MCU1_Status_CRC", algorithm="e2e_p1")
    body = bytearray(8)
    body[1] = 15
    body[0] = check.checksum(bytes(body))
    assert not check.ok(bytes(body), None)


def test_checksum_byte_may_be_anywhere_and_motorola() -> None:
    motor = VENDOR.get_message_by_name("VndMotorStatus")  # VndMotorCrc: Motorola, last byte
    check = make_check(motor, counter=None, checksum="VndMotorCrc", algorithm="crc8_sae_j1850")
    body = bytearray(range(10, 18))
    body[7] = check.checksum(bytes(body))
    assert body[7] == crc8(bytes([0x00, 0x05]) + bytes(range(10, 17)))
    assert check.ok(bytes(body), None)
    assert not check.ok(bytes(body[:7]), None)  # short: the checksum byte is missing


def test_invalid_declarations_raise_mapping_error() -> None:
    status = DB.get_message_by_name("MCU1_Status")
    with pytest.raises(MappingError, match="unknown check algorithm"):
        make_check(status, counter=None, checksum="MCU1_Status_CRC", algorithm="crc16")
    with pytest.raises(MappingError, match="needs a checksum"):
        make_check(status, counter="MCU1_Status_Counter", checksum=None, algorithm="crc8_sae_j1850")
    with pytest.raises(MappingError, match="no signal 'Nope'"):
        make_check(status, counter="Nope", checksum=None, algorithm="none")
    with pytest.raises(MappingError, match="whole byte"):
        make_check(status, counter=None, checksum="MCU1_Status_Counter", algorithm="xor")
    with pytest.raises(MappingError, match="unknown check parameter"):
        make_check(status, counter=None, checksum="MCU1_Status_CRC", algorithm="xor", polynomial=3)
    with pytest.raises(MappingError, match="counter_modulo"):
        make_check(status, counter="MCU1_Status_Counter", checksum=None, algorithm="none", counter_modulo=17)
    with pytest.raises(MappingError, match="max_jump"):
        make_check(status, counter="MCU1_Status_Counter", checksum=None, algorithm="none", max_jump=0)
    with pytest.raises(MappingError, match="must be an integer"):
        make_check(status, counter=None, checksum="MCU1_Status_CRC", algorithm="xor", init="1")
    assert set(ALGORITHMS) == {"crc8_sae_j1850", "e2e_p1", "crc8_autosar", "xor", "sum", "none"}


def _p1(mode: str, data_id: int = 0x0A5B) -> Any:
    status = DB.get_message_by_name("MCU1_Status")  # CRC byte 0, counter bits 8..11 (like AUTOSAR P1)
    return make_check(
        status,
        counter="MCU1_Status_Counter",
        checksum="MCU1_Status_CRC",
        algorithm="e2e_p1",
        data_id=data_id,
        data_id_mode=mode,
    )


def _zero_crc(data: bytes) -> int:
    return crc8(data, init=0, xorout=0)


@given(st.binary(min_size=7, max_size=7), st.integers(0, 14))
def test_e2e_p1_data_id_modes(tail: bytes, counter: int) -> None:
    body = bytearray(bytes(1) + tail)
    body[1] = (body[1] & 0xF0) | counter
    payload = bytes(body[1:])
    assert _p1("both").checksum(bytes(body)) == _zero_crc(b"\x5b\x0a" + payload)
    assert _p1("low").checksum(bytes(body)) == _zero_crc(b"\x5b" + payload)
    alt = b"\x5b" if counter % 2 == 0 else b"\x0a"
    assert _p1("alt").checksum(bytes(body)) == _zero_crc(alt + payload)
    nib = bytearray(body)
    nib[1] = (nib[1] & 0x0F) | 0xA0  # the data id's high-byte low nibble (0xA) in bits 12..15
    check = _p1("nibble")
    nib[0] = check.checksum(bytes(nib))
    assert nib[0] == _zero_crc(b"\x5b\x00" + bytes(nib[1:]))
    assert check.ok(bytes(nib), None)
    wrong = bytearray(nib)
    wrong[1] ^= 0x10  # another nibble: rejected even with a matching CRC
    wrong[0] = check.checksum(bytes(wrong))
    assert not check.ok(bytes(wrong), None)


def test_data_id_mode_is_validated() -> None:
    status = DB.get_message_by_name("MCU1_Status")
    with pytest.raises(MappingError, match="data_id_mode"):
        _p1("sideways")
    with pytest.raises(MappingError, match="data_id_mode"):
        make_check(status, counter=None, checksum="MCU1_Status_CRC", algorithm="xor", data_id_mode="low")
    with pytest.raises(MappingError, match="needs the counter"):
        make_check(status, counter=None, checksum="MCU1_Status_CRC", algorithm="e2e_p1", data_id_mode="alt")
