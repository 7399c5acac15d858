"""ECU layer: packers byte-identical to cantools, E2E CRC/counters, mux cycling, power states.

Also hosts ``SyntheticVehicle``, a tiny stand-in for the physics used by the CAN-side tests.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from crccheck.crc import Crc8SaeJ1850

from sim.ecus import (
    BEHAVIOURS,
    COUNTER_MODULO,
    ERROR_FRAME,
    Network,
    RawFrame,
    compile_packer,
    crc8_sae_j1850,
    e2e_crc,
    load_dbc,
)
from sim.vehicle.state import ChargeMode, Gear, MotorState, VehicleState


class SyntheticVehicle:
    """Deterministic plausible states: asleep, drive, park, AC charge, complete, DC charge, asleep."""

    def __init__(
        self,
        drive_s: float = 240.0,
        ac_s: float = 60.0,
        dc_s: float = 60.0,
        n_motors: int = 2,
        n_cells: int = 96,
        n_probes: int = 32,
        seed: int = 0,
        fault_codes: tuple[int, ...] = (),
    ) -> None:
        self.t = 0.0
        self.n_motors = n_motors
        self.fault_codes = fault_codes
        rng = np.random.default_rng(seed)
        self.cell_offsets = rng.normal(0.0, 0.004, n_cells)
        self.probe_offsets = rng.normal(0.0, 1.5, n_probes)
        self.phases = [
            ("off", 2.0),
            ("drive", drive_s),
            ("park", 5.0),
            ("ac", ac_s),
            ("complete", 5.0),
            ("park", 3.0),
            ("dc", dc_s),
            ("off", math.inf),
        ]
        self.soc = 60.0
        self.odo = 12345.0

    def phase(self, t: float) -> str:
        end = 0.0
        for name, length in self.phases:
            end += length
            if t < end:
                return name
        return "off"

    def step(self, dt: float) -> VehicleState:
        self.t += dt
        t = self.t
        ph = self.phase(t)
        drive = ph == "drive"
        speed = max(0.0, 60.0 * math.sin(t / 20.0) + 40.0) if drive else 0.0
        accel = max(0.0, math.cos(t / 20.0)) * 60.0 if drive else 0.0
        torque = 180.0 * math.cos(t / 20.0) if drive else 0.0
        charge_mode = {"ac": ChargeMode.AC, "dc": ChargeMode.DC, "complete": ChargeMode.COMPLETE}.get(
            ph, ChargeMode.NONE
        )
        charger_i = {"ac": 18.0, "dc": 250.0}.get(ph, 0.0)
        current = (torque * speed / 40.0) / 4.0 if drive else -charger_i
        self.soc = min(100.0, max(0.0, self.soc - current * dt / 3600.0 / 1.5))
        self.odo += speed * dt / 3600.0
        ocv = 3.45 + 0.007 * self.soc
        cells = ocv - current * 0.0008 + self.cell_offsets
        temps = 28.0 + t / 200.0 + self.probe_offsets
        pack_v = float(cells.sum())
        motors = tuple(
            MotorState(
                speed_rpm=speed * 80.0,
                torque_nm=torque / self.n_motors,
                motor_temp_c=40.0 + i,
                inverter_temp_c=35.0 + i,
                dc_voltage_v=pack_v,
                dc_current_a=current / self.n_motors,
                enabled=drive,
            )
            for i in range(self.n_motors)
        )
        return VehicleState(
            t=t,
            key_on=ph in ("drive", "park"),
            ready=drive,
            gear=Gear.DRIVE if drive else Gear.PARK,
            speed_kmh=speed,
            odometer_km=self.odo,
            accel_pedal_pct=accel,
            brake_pedal_pct=0.0 if accel > 0 else 20.0 * float(drive),
            dcdc_active=ph != "off",
            dcdc_temp_c=35.0,
            pack_voltage_v=pack_v,
            pack_current_a=current,
            soc_pct=self.soc,
            cell_voltages_v=cells,
            cell_temps_c=temps,
            insulation_kohm=3000.0,
            main_contactors_closed=ph in ("drive", "ac", "dc"),
            bms_fault_codes=self.fault_codes,
            motors=motors,
            charge_mode=charge_mode,
            charger_voltage_v=pack_v if charger_i else 0.0,
            charger_current_a=charger_i,
            charger_max_power_kw={"ac": 6.6, "dc": 120.0}.get(ph, 0.0),
        )


def run_network(source: SyntheticVehicle, seconds: float, seed: int = 0, **kw: int) -> list[RawFrame]:
    net = Network(seed=seed, n_motors=source.n_motors, **kw)
    frames: list[RawFrame] = []
    for k in range(round(seconds / 0.1)):
        frames += net.frames(source.step(0.1), k * 0.1, (k + 1) * 0.1)
    return frames


# ------------------------------------------------------------------------------------------- tests


def test_crc8_check_value_and_matches_crccheck() -> None:
    assert crc8_sae_j1850(b"123456789") == 0x4B
    rng = random.Random(1)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        assert crc8_sae_j1850(data) == Crc8SaeJ1850.calc(data)


def _random_physical(sig: Any, rng: random.Random) -> Any:
    lo, hi = sig.minimum, sig.maximum
    if rng.random() < 0.1 and sig.choices:
        return rng.choice(list(sig.choices.values()))
    raw = rng.randrange(0, 1 << sig.length)
    value = raw * sig.scale + sig.offset
    if rng.random() < 0.5:  # off-grid values exercise rounding
        value += rng.uniform(-0.49, 0.49) * sig.scale
    return min(max(value, lo), hi)


def _as_packer_value(sig: Any, value: Any) -> Any:
    if isinstance(value, str) or hasattr(value, "value"):
        raw = sig.conversion.choice_to_number(value)
        return None if raw == (1 << sig.length) - 1 and sig.length > 1 else raw * sig.scale + sig.offset
    return value


@pytest.mark.parametrize("message", load_dbc().messages, ids=lambda m: m.name)
def test_packer_is_byte_identical_to_cantools(message: Any) -> None:
    rng = random.Random(message.frame_id)
    if message.is_multiplexed():
        mux = next(s for s in message.signals if s.is_multiplexer)
        groups = sorted({i for s in message.signals for i in (s.multiplexer_ids or [])})
        cases = [(g, [s for s in message.signals if s.multiplexer_ids == [g]]) for g in groups]
    else:
        mux = None
        cases = [(None, list(message.signals))]
    for group, sigs in cases:
        names = [s.name for s in sigs]
        packer = compile_packer(message, names, {mux.name: group} if mux is not None else None)
        for _ in range(60):
            phys = {s.name: _random_physical(s, rng) for s in sigs}
            expected = dict(phys)
            if mux is not None:
                expected[mux.name] = group
            want = message.encode(expected, strict=True)
            raw = packer([_as_packer_value(s, phys[s.name]) for s in sigs])
            assert raw.to_bytes(message.length, "little") == want, (message, phys)


def test_packer_sna_none_and_nan_give_all_ones() -> None:
    msg = load_dbc().get_message_by_name("BMS_PackStatus")
    packer = compile_packer(msg, ["BMS_PackVoltage", "BMS_PackCurrent"])
    data = packer([None, float("nan")]).to_bytes(8, "little")
    decoded = msg.decode(data, decode_choices=True)
    assert str(decoded["BMS_PackVoltage"]) == "SNA" and str(decoded["BMS_PackCurrent"]) == "SNA"


def test_every_sent_message_has_a_behaviour_with_real_signal_names() -> None:
    db = load_dbc()
    for name, behaviour in BEHAVIOURS.items():
        msg = db.get_message_by_name(name)
        assert set(behaviour.fields) <= {s.name for s in msg.signals}, name


def test_e2e_frames_verify_with_an_independent_crc_and_counters_increment() -> None:
    frames = run_network(SyntheticVehicle(drive_s=30, ac_s=5, dc_s=5), 30)
    db = load_dbc()
    e2e_ids = {m.frame_id for m in db.messages if any(s.name.endswith("_CRC") for s in m.signals)}
    last: dict[int, int] = {}
    checked = 0
    for _, can_id, data in frames:
        if can_id not in e2e_ids:
            continue
        calc = Crc8SaeJ1850.calc(bytes((can_id & 0xFF, can_id >> 8)) + data[1:])
        assert data[0] == calc == e2e_crc(can_id, data)
        counter = data[1] & 0x0F
        assert counter < COUNTER_MODULO
        if can_id in last:
            assert counter == (last[can_id] + 1) % COUNTER_MODULO
        last[can_id] = counter
        checked += 1
    assert checked > 10000


def test_power_states_drive_charge_and_sleep() -> None:
    db = load_dbc()
    src = SyntheticVehicle(drive_s=20, ac_s=20, dc_s=20)
    net = Network(seed=0)
    senders: dict[str, set[str]] = defaultdict(set)
    names: dict[str, set[str]] = defaultdict(set)
    last_t = 0.0
    for k in range(round((2 + 20 + 5 + 20 + 5 + 3 + 20 + 10) / 0.1)):
        state = src.step(0.1)
        phase = src.phase(state.t)
        for t, can_id, _ in net.frames(state, k * 0.1, (k + 1) * 0.1):
            msg = db.get_message_by_frame_id(can_id)
            senders[phase].add(msg.senders[0])
            names[phase].add(msg.name)
            last_t = t
    assert "off" not in senders
    assert senders["drive"] == {"VCU", "BMS", "MCU1", "MCU2", "ESC"}
    assert senders["park"] == {"VCU", "BMS", "MCU1", "MCU2", "ESC"}  # key on, not ready
    assert senders["ac"] == {"VCU", "BMS", "OBC"}
    assert senders["dc"] == {"VCU", "BMS", "CCU"}
    assert senders["complete"] == {"VCU", "BMS", "OBC"}  # COMPLETE after AC keeps the OBC awake
    assert "BMS_ChargeRequest" in names["ac"] and "VCU_TorqueCmd" not in names["ac"]
    assert "BMS_ChargeRequest" not in names["drive"]
    assert last_t < 2 + 20 + 5 + 20 + 5 + 3 + 20 + 0.1  # silent once everything sleeps


def test_one_motor_vehicle_has_no_mcu2_frames() -> None:
    db = load_dbc()
    frames = run_network(SyntheticVehicle(drive_s=10, n_motors=1), 8)
    names = {db.get_message_by_frame_id(i).name for _, i, _ in frames}
    assert "MCU1_Status" in names and not any(n.startswith("MCU2") for n in names)
    cmd = next(d for _, i, d in frames if i == db.get_message_by_name("VCU_TorqueCmd").frame_id)
    decoded = db.decode_message("VCU_TorqueCmd", cmd)
    assert str(decoded["VCU_MCU2_TorqueReq"]) == "SNA"


def test_mux_frames_cycle_through_every_cell_and_probe() -> None:
    db = load_dbc()
    src = SyntheticVehicle(drive_s=10)
    net = Network(seed=3)
    cells: dict[str, float] = {}
    temps: dict[str, float] = {}
    for _ in range(40):
        state = src.step(0.1)
    assert state.ready
    for k in range(40, 50):  # 1 s of driving, same state every window
        for _, can_id, data in net.frames(state, k * 0.1, (k + 1) * 0.1):
            msg = db.get_message_by_frame_id(can_id)
            if msg.name == "BMS_CellVoltages":
                cells.update({k2: v for k2, v in msg.decode(data).items() if k2 != "BMS_CellVoltGroup"})
            elif msg.name == "BMS_CellTemps":
                temps.update({k2: v for k2, v in msg.decode(data).items() if k2 != "BMS_TempGroup"})
    assert len(cells) == 96 and len([v for v in temps.values() if str(v) != "SNA"]) == 32
    for i, v in enumerate(state.cell_voltages_v, 1):
        assert cells[f"BMS_Cell{i:03d}_V"] == pytest.approx(v, abs=0.0005)
    for i, v in enumerate(state.cell_temps_c, 1):
        assert temps[f"BMS_Temp{i:02d}"] == pytest.approx(v, abs=0.5)
    assert {str(temps[f"BMS_Temp{i:02d}"]) for i in range(33, 36)} == {"SNA"}


def test_fault_codes_roll_through_bms_faults() -> None:
    db = load_dbc()
    src = SyntheticVehicle(drive_s=10, fault_codes=(0x1001, 0x2002, 0x3003))
    frames = run_network(src, 5)
    seen = {db.decode_message("BMS_Faults", d)["BMS_FaultCode"] for _, i, d in frames if i == 0x125}
    assert seen == {0x1001, 0x2002, 0x3003}


def test_extremes_and_limits_are_consistent_with_the_state() -> None:
    db = load_dbc()
    src = SyntheticVehicle(drive_s=10)
    net = Network(seed=0)
    state = src.step(0.1)
    for _ in range(30):
        state = src.step(0.1)
    frames: list[RawFrame] = []
    for k in range(10):
        frames += net.frames(state, k * 0.1, (k + 1) * 0.1)
    ext = db.decode_message("BMS_CellExtremes", next(d for _, i, d in frames if i == 0x122))
    assert ext["BMS_MaxCellVoltage"] == pytest.approx(float(np.max(state.cell_voltages_v)), abs=0.0006)
    assert ext["BMS_MaxCellVoltageIdx"] == int(np.argmax(state.cell_voltages_v)) + 1
    assert ext["BMS_MinCellVoltageIdx"] == int(np.argmin(state.cell_voltages_v)) + 1
    assert ERROR_FRAME not in {i for _, i, _ in frames}
