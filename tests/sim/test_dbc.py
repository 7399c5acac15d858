"""The reference DBC: loads cleanly, cycle times, ids, SNA conventions, E2E layout, physical ranges."""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from pathlib import Path

import cantools
import pytest

DBC_DIR = Path(__file__).resolve().parents[2] / "dbc"
DBC_FILES = sorted(DBC_DIR.glob("*.dbc"))
MAIN = DBC_DIR / "tbox_ev.dbc"


def load(path: Path = MAIN) -> cantools.database.can.Database:
    db = cantools.database.load_file(str(path), strict=True)
    assert isinstance(db, cantools.database.can.Database)
    return db


@pytest.mark.parametrize("path", DBC_FILES, ids=lambda p: p.name)
def test_dbc_loads_strict_without_warnings(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        db = load(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert db.messages


@pytest.mark.parametrize("path", DBC_FILES, ids=lambda p: p.name)
def test_every_message_is_cyclic_with_gen_msg_cycle_time(path: Path) -> None:
    db = load(path)
    for msg in db.messages:
        assert "GenMsgCycleTime" in msg.dbc.attributes, msg.name
        assert 10 <= msg.dbc.attributes["GenMsgCycleTime"].value <= 1000, msg.name
        assert msg.cycle_time == msg.dbc.attributes["GenMsgCycleTime"].value


def test_ids_are_11_bit_unique_and_powertrain_has_priority() -> None:
    db = load()
    ids = [m.frame_id for m in db.messages]
    assert len(ids) == len(set(ids)) and all(
        0 < i < 0x800 and not m.is_extended_frame for i, m in zip(ids, db.messages, strict=True)
    )
    fast = [m.frame_id for m in db.messages if m.cycle_time == 10 and m.senders[0] in ("VCU", "MCU1", "MCU2")]
    slow = [m.frame_id for m in db.messages if m.cycle_time >= 100]
    assert max(fast) < min(slow)
    assert db.get_message_by_name("VCU_TorqueCmd").frame_id == min(ids)


def test_sna_is_all_ones_and_present_on_scaled_signals() -> None:
    for msg in load().messages:
        for sig in msg.signals:
            choices = {str(v): k for k, v in (sig.choices or {}).items()}
            if "SNA" in choices:
                assert choices["SNA"] == (1 << sig.length) - 1, sig.name
            if (sig.scale != 1 or sig.offset != 0) and not sig.is_multiplexer:
                assert "SNA" in choices, sig.name


def test_e2e_layout_crc_byte0_counter_low_nibble_byte1() -> None:
    db = load()
    protected = [m for m in db.messages if any(s.name.endswith("_CRC") for s in m.signals)]
    assert {m.name for m in protected} >= {
        "VCU_TorqueCmd",
        "VCU_VehicleStatus",
        "MCU1_Status",
        "MCU2_Status",
        "BMS_PackStatus",
        "BMS_Status",
        "ESC_WheelSpeeds",
    }
    for msg in protected:
        crc = next(s for s in msg.signals if s.name.endswith("_CRC"))
        counter = next(s for s in msg.signals if s.name.endswith("_Counter"))
        assert (crc.start, crc.length, counter.start, counter.length) == (0, 8, 8, 4), msg.name
        assert str(counter.choices[15]) == "Invalid"
        assert msg.dbc.attributes["E2EProtected"].value == 1


def _range(db: cantools.database.can.Database, signal: str) -> tuple[float, float, float]:
    for msg in db.messages:
        for sig in msg.signals:
            if sig.name == signal:
                return sig.minimum, sig.maximum - sig.scale, sig.scale  # top raw value is SNA
    raise KeyError(signal)


def test_ranges_and_resolution_cover_the_physics() -> None:
    db = load()
    lo, hi, _ = _range(db, "BMS_PackVoltage")
    assert lo <= 250 and hi >= 450
    lo, hi, _ = _range(db, "BMS_PackCurrent")
    assert lo <= -600 and hi >= 600
    for i in range(1, 97):
        lo, hi, scale = _range(db, f"BMS_Cell{i:03d}_V")
        assert lo <= 2.5 and hi >= 4.3 and scale == pytest.approx(0.001)
    probes = [
        s for m in db.messages for s in m.signals if s.name.startswith("BMS_Temp") and s.name[8:].isdigit()
    ]
    assert len(probes) >= 32
    for msg in db.messages:
        for sig in msg.signals:
            if sig.unit == "degC":
                assert sig.minimum <= -40 and sig.maximum - sig.scale >= 125, sig.name
    lo, hi, _ = _range(db, "MCU1_Torque")
    assert lo <= -400 and hi >= 400
    lo, hi, _ = _range(db, "MCU1_Speed")
    assert lo <= -16000 and hi >= 16000


def test_static_bus_load_estimate_is_in_band() -> None:
    """From the cycle times alone: nominal (unstuffed) >= 20 %, worst-case stuffing <= 50 % (2 motors)."""
    db = load()
    running = [m for m in db.messages if m.senders[0] not in ("OBC", "CCU") and m.name != "BMS_ChargeRequest"]
    rate = {m.name: 1000.0 / m.cycle_time for m in running}
    nominal = sum(r * (47 + 8 * db.get_message_by_name(n).length) for n, r in rate.items()) / 500_000
    worst = (
        sum(
            r * (47 + 8 * (m := db.get_message_by_name(n)).length + (34 + 8 * m.length - 1) // 4)
            for n, r in rate.items()
        )
        / 500_000
    )
    assert nominal >= 0.20 and worst <= 0.50, (nominal, worst)


def test_readme_documents_every_message() -> None:
    text = (DBC_DIR / "README.md").read_text(encoding="utf-8")
    for msg in load().messages:
        assert msg.name in text and f"0x{msg.frame_id:03X}" in text, msg.name
    assert "SNA" in text and "CRC8" in text and "bus load" in text.lower()


def test_generator_reproduces_the_committed_dbc() -> None:
    spec = importlib.util.spec_from_file_location("dbc_generate", DBC_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    msgs = module.messages()
    module.validate(msgs)
    assert module.render(msgs) == MAIN.read_text(encoding="ascii")
