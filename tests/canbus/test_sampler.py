"""Sampler semantics on hand-made frames of our DBC: transforms, enums, SNA, staleness, expressions, codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.canbus.mapping import CompiledMapping, load_mapping
from agent.canbus.sampler import Sampler
from agent.protocol.model import GearPosition, Special, VehicleState

ROOT = Path(__file__).resolve().parents[2]
DBC = ROOT / "dbc" / "tbox_ev.dbc"
INVALID = Special.INVALID

BODY = """
[defaults]
stale_min = 0
[vehicle]
vehicle_state = "VCU_VehicleState"
gear = { signal = "VCU_Gear", map = { P = "park", D = "drive" } }
running_mode = { signal = "VCU_RunMode", map = { Electric = "electric" }, unmapped = "hybrid" }
speed = { signal = "VCU_VehicleSpeed", scale = 2, offset = -1, stale = 0.5, check_unit = false }
total_voltage = "BMS_PackVoltage"
brake_force = { signal = "VCU_BrakeSwitch" }
hv_on = 'BMS_MainPosContactor == "Closed" and BMS_MainNegContactor == "Closed"'
[extremes]
max_cell_voltage_index = "BMS_MaxCellVoltageIdx"
[faults]
hv_interlock = 'BMS_FltHVILOpen or VCU_BrakeSystemFault'
insulation = 'BMS_InsulationRes < 100 and BMS_SOC > 10'
brake_system = 'BMS_FaultCode & 0x10'
[fault_codes]
ress = { signal = "BMS_FaultCode", count = "BMS_FaultCodeCount", index = "BMS_FaultCodeIndex" }
other = ["MCU1_FaultCode"]
"""


@pytest.fixture()
def mapping(tmp_path: Path) -> CompiledMapping:
    path = tmp_path / "m.toml"
    path.write_text(f'dbc = "{DBC.as_posix()}"\n' + BODY, encoding="utf-8")
    return load_mapping(path)


class Frames:
    def __init__(self, mapping: CompiledMapping) -> None:
        self.db = mapping.database
        self.cache = mapping.new_cache()
        self.sampler = Sampler(mapping, self.cache)

    def put(self, name: str, t: float, *, raw: bool = False, dlc: int = 8, **values: Any) -> None:
        message = self.db.get_message_by_name(name)
        full: dict[str, Any] = {s.name: 0 for s in message.signals}
        full.update(values)
        data = message.encode(full, scaling=not raw, strict=False)
        self.cache.put(message.frame_id, data[:dlc], t)

    def sample(self, now: float) -> Any:
        return self.sampler.sample(now)


def status(f: Frames, t: float, **values: Any) -> None:
    base = {"VCU_VehicleState": 1, "VCU_Gear": 3, "VCU_RunMode": 1, "VCU_VehicleSpeed": 50.0}
    base.update(values)
    f.put("VCU_VehicleStatus", t, **base)


def test_transforms_and_enums(mapping: CompiledMapping) -> None:
    f = Frames(mapping)
    status(f, 1.0)
    f.put("VCU_Pedals", 1.0, VCU_BrakeSwitch=1)
    f.put("BMS_PackStatus", 1.0, BMS_PackVoltage=400.0)
    f.put(
        "BMS_Status", 1.0, BMS_MainPosContactor=1, BMS_MainNegContactor=1, BMS_InsulationRes=5000, BMS_SOC=50
    )
    f.put("BMS_CellExtremes", 1.0, BMS_MaxCellVoltageIdx=17)
    v = f.sample(1.01)
    assert v.vehicle["vehicle_state"] is VehicleState.STARTED  # no map: the raw value is the wire code
    assert v.vehicle["gear"] is GearPosition.DRIVE
    assert v.vehicle["running_mode"].name == "ELECTRIC"
    assert v.vehicle["speed"] == pytest.approx(99.0)  # 50 * 2 - 1
    assert v.vehicle["brake_force"] is True
    assert v.vehicle["hv_on"] is True
    assert v.extremes["max_cell_voltage_index"] == 17 and isinstance(
        v.extremes["max_cell_voltage_index"], int
    )
    assert v.faults["insulation"] is False
    status(f, 1.1, VCU_VehicleState=0, VCU_Gear=2, VCU_RunMode=2)  # Reserved, N (not mapped), Hybrid
    v = f.sample(1.11)
    assert v.vehicle["vehicle_state"] is INVALID  # 0 is no VehicleState
    assert v.vehicle["gear"] is INVALID  # not in the map
    assert v.vehicle["running_mode"].name == "HYBRID"  # unmapped = "hybrid"


def test_sna_values_are_invalid(mapping: CompiledMapping) -> None:
    f = Frames(mapping)
    f.put("VCU_VehicleStatus", 1.0, raw=True, VCU_VehicleState=7, VCU_Gear=15, VCU_VehicleSpeed=0xFFFF)
    f.put("BMS_PackStatus", 1.0, raw=True, BMS_PackVoltage=0xFFFF)
    v = f.sample(1.0)
    for name in ("vehicle_state", "gear", "speed", "total_voltage"):
        assert v.vehicle[name] is INVALID, name


def test_staleness_per_field_and_recovery(mapping: CompiledMapping) -> None:
    f = Frames(mapping)
    status(f, 1.0)
    f.put("BMS_PackStatus", 1.0, BMS_PackVoltage=400.0)
    v = f.sample(1.2)  # 20 ms status: 3 x 20 ms = 60 ms; speed has its own 0.5 s
    assert v.vehicle["gear"] is INVALID and v.vehicle["speed"] == pytest.approx(99.0)
    assert v.vehicle["total_voltage"] is INVALID  # 10 ms pack status: 30 ms
    assert f.sample(1.6).vehicle["speed"] is INVALID
    status(f, 2.0)
    assert f.sample(2.01).vehicle["gear"] is GearPosition.DRIVE
    assert f.sampler.counters["VCU_VehicleStatus"]["stale"] >= 1


def test_short_frames_invalidate_only_missing_signals(mapping: CompiledMapping) -> None:
    f = Frames(mapping)
    f.put(
        "BMS_Status",
        1.0,
        dlc=5,
        BMS_MainPosContactor=1,
        BMS_MainNegContactor=1,
        BMS_SOC=50.0,
        BMS_InsulationRes=5000,
    )
    v = f.sample(1.0)
    assert v.vehicle["hv_on"] is True  # bits 13..17: inside 5 bytes
    assert v.faults["insulation"] is INVALID  # insulation resistance is in bytes 6-7
    assert f.sampler.counters["BMS_Status"]["short"] == 1


def test_three_valued_expressions(mapping: CompiledMapping) -> None:
    f = Frames(mapping)
    # never received anything: every term left out -> invalid
    assert f.sample(0.0).faults["hv_interlock"] is INVALID
    f.put("BMS_Faults", 1.0, BMS_FltHVILOpen=0)
    assert f.sample(1.0).faults["hv_interlock"] is False  # VCU_Pedals never heard: its term left out
    f.put("VCU_Pedals", 1.0, VCU_BrakeSystemFault=0)
    assert f.sample(1.01).faults["hv_interlock"] is False
    # the pedals frame goes stale: False or INVALID = INVALID; True or INVALID = True
    assert f.sample(1.2).faults["hv_interlock"] is INVALID
    f.put("BMS_Faults", 1.25, BMS_FltHVILOpen=1)
    assert f.sample(1.26).faults["hv_interlock"] is True
    f.put("BMS_Faults", 1.3, BMS_FaultCode=0x30)
    assert f.sample(1.31).faults["brake_system"] is True  # bit mask on the raw value
    f.put("BMS_Status", 1.3, BMS_InsulationRes=40, BMS_SOC=5.0)
    assert f.sample(1.31).faults["insulation"] is False  # AND: one false side decides
    f.put("BMS_Status", 1.4, BMS_InsulationRes=40, BMS_SOC=50.0)
    assert f.sample(1.41).faults["insulation"] is True


def test_rotating_fault_codes_are_collected(mapping: CompiledMapping) -> None:
    f = Frames(mapping)
    codes = (0x1001, 0x2002, 0x3003)
    t = 1.0
    for _ in range(2):
        for i, code in enumerate(codes):
            t += 0.1
            f.put("BMS_Faults", t, BMS_FaultCodeCount=3, BMS_FaultCodeIndex=i, BMS_FaultCode=code)
            f.put("MCU1_Thermal", t, MCU1_FaultCode=0x151)
            snap = f.sample(t)
    assert snap.fault_codes == {"ress": codes, "other": (0x151,)}
    f.put("BMS_Faults", t + 0.1, BMS_FaultCodeCount=1, BMS_FaultCodeIndex=0, BMS_FaultCode=0x2002)
    f.put("MCU1_Thermal", t + 0.1, MCU1_FaultCode=0)
    assert f.sample(t + 0.1).fault_codes == {"ress": (0x2002,), "other": ()}
    f.put("BMS_Faults", t + 0.2, BMS_FaultCodeCount=0, BMS_FaultCodeIndex=0, BMS_FaultCode=0)
    assert f.sample(t + 0.2).fault_codes["ress"] == ()
    # stale: nothing known, nothing reported (never the last list)
    f.put("BMS_Faults", t + 0.3, BMS_FaultCodeCount=1, BMS_FaultCodeIndex=0, BMS_FaultCode=0x4004)
    assert f.sample(t + 0.3).fault_codes["ress"] == (0x4004,)
    assert f.sample(t + 5.0).fault_codes["ress"] == ()


OUR_MAPPING = ROOT / "dbc" / "tbox_ev.toml"
_FUZZ_MAPPING = load_mapping(OUR_MAPPING)
_VALUE_TYPES = (float, int, bool, Special, type(None))


@settings(max_examples=150)
@given(
    frames=st.lists(
        st.tuples(
            st.sampled_from(sorted(_FUZZ_MAPPING.wanted_ids)),
            st.binary(min_size=0, max_size=8),
            st.floats(min_value=0.0, max_value=2.0),
        ),
        max_size=60,
    ),
    now=st.floats(min_value=0.0, max_value=3.0),
)
def test_garbage_frames_never_crash_the_sampler(frames: list[tuple[int, bytes, float]], now: float) -> None:
    cache = _FUZZ_MAPPING.new_cache()
    sampler = Sampler(_FUZZ_MAPPING, cache)
    for key, data, t in sorted(frames, key=lambda f: f[2]):
        cache.put(key, data, t)
    snap = sampler.sample(now)
    for value in (*snap.vehicle.values(), *snap.extremes.values(), *snap.faults.values()):
        assert isinstance(value, _VALUE_TYPES) or hasattr(value, "name")
    for sub in snap.subsystems:
        assert all(isinstance(c, float | int | Special) for c in (*sub.cell_voltages, *sub.temperatures))
    assert all(isinstance(c, int) for codes in snap.fault_codes.values() for c in codes)
