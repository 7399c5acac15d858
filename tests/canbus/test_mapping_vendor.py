"""A DBC in another vendor's style, mapped by TOML alone: no code knows it.

vendor_ev.dbc differs from ours in naming (German), byte order (Motorola), identifiers (29-bit), units
(mV cells, 0.1 degC probes, current in mA positive while charging, MOhm, metres), multiplexing (mux in
byte 6, 3 cells per page, two cell monitoring units = two subsystems) and its E2E (CRC8 AUTOSAR).
Frames are hand-encoded with cantools from that DBC and fed to the real FrameCache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.canbus.cache import frame_key
from agent.canbus.checks import crc8
from agent.canbus.mapping import CompiledMapping, load_mapping
from agent.canbus.sampler import Sampler
from agent.protocol.model import ChargingState, GearPosition, MotorState, RunningMode, Special, VehicleState

DATA = Path(__file__).parent / "data"
INVALID = Special.INVALID


@pytest.fixture()
def mapping() -> CompiledMapping:
    return load_mapping(DATA / "vendor_ev.toml")


class Bus:
    """Encodes vendor frames with cantools and puts them in the mapping's frame cache."""

    def __init__(self, mapping: CompiledMapping) -> None:
        self.db = mapping.database
        self.cache = mapping.new_cache()
        self.sampler = Sampler(mapping, self.cache)
        self.counter = 0

    def send(self, name: str, t: float, **values: Any) -> bytes:
        message = self.db.get_message_by_name(name)
        full = {s.name: 0 for s in message.signals if not s.multiplexer_ids or s.name in values}
        full.update(values)
        if message.is_multiplexed():
            mux = next(s for s in message.signals if s.is_multiplexer)
            page = full[mux.name]
            full = {
                k: v
                for k, v in full.items()
                if k == mux.name or page in (message.get_signal_by_name(k).multiplexer_ids or [page])
            }
        data = bytearray(message.encode(full, strict=False, scaling=True))
        if name == "FZG_Status":
            data[6] = (data[6] & 0x0F) | (self.counter << 4)
            self.counter = (self.counter + 1) % 16
            data[7] = crc8(bytes(data[:7]), poly=0x2F, init=0xFF, xorout=0xFF)
        self.cache.put(frame_key(message.frame_id, True), bytes(data), t)
        return bytes(data)

    def send_all(self, t: float) -> None:
        self.send(
            "FZG_Status",
            t,
            FZG_Geschw=87.65,
            FZG_Zustand=2,
            GTR_Gang=3,
            LADE_Zustand=0,
            FZG_Bremse=1,
            FZG_Fahrpedal=20.0,
        )
        self.send("EM_Status", t, EM_Drehzahl=-3210, EM_Moment=-123.5, EM_Temp=71, LE_Temp=44, EM_Zustand=3)
        self.send(
            "HVB_Status", t, HVB_Spannung=398.7, HVB_Strom_Ist=-152_340, HVB_SOC=63.5, HVB_Isowiderstand=2.3
        )
        self.send("BMS_Fehler", t, BMS_Fehlerbits=0x0009, BMS_DTC1=0x00A1B2C3)
        self.send("BMS_Fehler2", t, BMS_DTC2=0)
        self.send("KOMBI_Kilometerstand", t, KOMBI_km=12_345_678)
        for slave in (1, 2):
            for page in range(4):
                cells = {
                    f"CMU{slave}_U_Zelle{page * 3 + j + 1:02d}": 3600 + 100 * slave + page * 3 + j
                    for j in range(3)
                }
                self.send(f"CMU{slave}_Zellspannungen", t, **{f"CMU{slave}_ZS_Block": page}, **cells)
            for page in range(2):
                probes = {
                    f"CMU{slave}_T{page * 3 + j + 1}_Modul": 250 + 10 * slave + page * 3 + j for j in range(3)
                }
                if page == 1:
                    probes[f"CMU{slave}_T6_Modul"] = 32767  # no sixth probe fitted
                self.send(f"CMU{slave}_Temperaturen", t, **{f"CMU{slave}_T_Block": page}, **probes)


def test_vendor_frames_give_the_snapshot(mapping: CompiledMapping) -> None:
    bus = Bus(mapping)
    bus.send_all(100.0)
    bus.send_all(100.02)  # a second round: the alive counter has a predecessor
    snap = bus.sampler.sample(100.05)
    v = snap.vehicle
    assert v["speed"] == pytest.approx(87.65)
    assert v["vehicle_state"] is VehicleState.STARTED
    assert v["charging_state"] is ChargingState.NOT_CHARGING
    assert v["running_mode"] is RunningMode.ELECTRIC
    assert v["gear"] is GearPosition.DRIVE
    assert v["brake_force"] is True and v["drive_force"] is True
    assert v["accelerator_pedal"] == pytest.approx(20.0)
    assert v["total_voltage"] == pytest.approx(398.7)
    assert v["total_current"] == pytest.approx(152.34)  # -152340 mA charging = +152.34 A discharging
    assert v["soc"] == pytest.approx(63.5)
    assert v["insulation_resistance"] == pytest.approx(2300)
    assert v["mileage"] == pytest.approx(12345.678)
    (motor,) = snap.motors
    assert motor.number == 1
    assert motor.values["state"] is MotorState.GENERATING
    assert motor.values["speed"] == -3210
    assert motor.values["torque"] == pytest.approx(-123.5)
    assert motor.values["temperature"] == 71 and motor.values["controller_temperature"] == 44
    assert [s.number for s in snap.subsystems] == [1, 2]
    for sub in snap.subsystems:
        base = 3.6 + 0.1 * sub.number
        assert sub.cell_voltages == pytest.approx([base + 0.001 * k for k in range(12)])
        assert sub.temperatures == pytest.approx([25.0 + sub.number + 0.1 * k for k in range(5)])
    assert snap.faults["hv_interlock"] is True and snap.faults["insulation"] is True
    assert snap.faults["cell_overvoltage"] is False and snap.faults["temperature_difference"] is False
    assert snap.fault_codes == {"ress": (0x00A1B2C3,)}


def test_vendor_e2e_failure_invalidates_that_message(mapping: CompiledMapping) -> None:
    bus = Bus(mapping)
    bus.send_all(10.0)
    data = bytearray(bus.send("FZG_Status", 10.02, FZG_Geschw=50.0, FZG_Zustand=2, GTR_Gang=3))
    data[7] ^= 0x55
    bus.cache.put(frame_key(0x0CF00400, True), bytes(data), 10.03)
    snap = bus.sampler.sample(10.04)
    for name in ("speed", "gear", "vehicle_state", "charging_state", "brake_force", "accelerator_pedal"):
        assert snap.vehicle[name] is INVALID, name
    assert snap.vehicle["soc"] == pytest.approx(63.5)
    assert snap.vehicle["running_mode"] is RunningMode.ELECTRIC  # a constant
    # the next good frame repairs it (its counter follows the corrupted frame's)
    bus.send("FZG_Status", 10.05, FZG_Geschw=50.0, FZG_Zustand=2, GTR_Gang=3)
    assert bus.sampler.sample(10.06).vehicle["speed"] == pytest.approx(50.0)


def test_vendor_staleness_and_sna(mapping: CompiledMapping) -> None:
    bus = Bus(mapping)
    bus.send_all(0.0)
    bus.send(
        "CMU2_Zellspannungen",
        0.01,
        CMU2_ZS_Block=1,
        CMU2_U_Zelle04=65535,
        CMU2_U_Zelle05=3700,
        CMU2_U_Zelle06=3701,
    )
    snap = bus.sampler.sample(0.05)
    cells2 = snap.subsystems[1].cell_voltages
    assert cells2[3] is INVALID and cells2[4] == pytest.approx(3.7)
    # 20 ms status frame: stale after max(3 x 20 ms, 0.1 s); 4-page 50 ms cells: 0.6 s; odometer: 5 s
    snap = bus.sampler.sample(0.5)
    assert snap.vehicle["speed"] is INVALID
    assert not isinstance(snap.subsystems[0].cell_voltages[0], Special)
    snap = bus.sampler.sample(1.0)
    assert all(c is INVALID for c in snap.subsystems[0].cell_voltages)
    assert snap.vehicle["mileage"] == pytest.approx(12345.678)
    assert bus.sampler.sample(6.0).vehicle["mileage"] is INVALID


def test_vendor_mapping_reads_only_what_it_maps(mapping: CompiledMapping) -> None:
    assert all(key & (1 << 31) for key in mapping.wanted_ids)  # 29-bit ids
    assert len(mapping.wanted_ids) == 10
    pages = sorted((g.message, g.mux) for g in mapping.groups if g.mux is not None)
    assert pages[:4] == [
        ("CMU1_Temperaturen", 0),
        ("CMU1_Temperaturen", 1),
        ("CMU1_Zellspannungen", 0),
        ("CMU1_Zellspannungen", 1),
    ]
