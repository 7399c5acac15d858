"""Whole runs with the real vehicle physics: every frame decodes, cycle times, counters, CRCs, faults.

The default run covers 5 simulated minutes of WLTC class 3 driving (two motors), 2 minutes of AC and
1 minute of DC charging; a full simulated hour is decoded too (streamed).
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from datetime import UTC, datetime

import can
import pytest
from crccheck.crc import Crc8SaeJ1850

from agent.errors import ConfigError
from sim.bus import bus_load
from sim.ecus import COUNTER_MODULO, ERROR_FRAME, JITTER_FRACTION, JITTER_MAX_S, RawFrame, load_dbc
from sim.run import scenario_names, simulate, simulate_windows, split_scenarios
from sim.scenarios import SCENARIOS
from tests.sim.test_ecus import SyntheticVehicle

#: Extra period deviation allowed on top of twice the send jitter: bus queueing behind other frames.
QUEUEING_S = 0.001
RUNS = (("wltc3", 300.0), ("ac-charge", 120.0), ("dc-charge", 60.0))


def record(profile: str, seconds: float, **kw: object) -> list[RawFrame]:
    frames: list[RawFrame] = []
    for window in simulate_windows(None, profile, 1, seconds, n_motors=2, **kw):
        frames += window.frames
    return frames


@pytest.fixture(scope="module")
def runs() -> dict[str, list[RawFrame]]:
    return {profile: record(profile, seconds) for profile, seconds in RUNS}


def test_every_frame_decodes_against_the_dbc(runs: dict[str, list[RawFrame]]) -> None:
    db = load_dbc()
    names: dict[str, set[str]] = {}
    for profile, frames in runs.items():
        assert frames
        seen = set()
        for _, can_id, data in frames:
            msg = db.get_message_by_frame_id(can_id)
            msg.decode(data, decode_choices=True)  # raises on any malformed frame
            seen.add(msg.name)
        names[profile] = seen
    assert len(names["wltc3"]) == 20  # everything but the chargers
    assert {"OBC_Status", "BMS_ChargeRequest"} <= names["ac-charge"]
    assert "CCU_DCChargerStatus" in names["dc-charge"]
    assert not any(n.startswith("MCU") for n in names["ac-charge"] | names["dc-charge"])


def test_decoded_values_follow_the_physics() -> None:
    db = load_dbc()
    last: dict[str, dict[str, object]] = {}
    state = None
    for window in simulate_windows(None, "wltc3", 2, 120.0, n_motors=2):
        state = window.state
        for _, can_id, data in window.frames:
            last[db.get_message_by_frame_id(can_id).name] = db.decode_message(can_id, data)
    assert state is not None
    assert last["BMS_PackStatus"]["BMS_PackVoltage"] == pytest.approx(state.pack_voltage_v, abs=0.06)
    assert last["BMS_PackStatus"]["BMS_PackCurrent"] == pytest.approx(state.pack_current_a, abs=0.03)
    assert last["BMS_Status"]["BMS_SOC"] == pytest.approx(state.soc_pct, abs=0.06)
    assert last["VCU_VehicleStatus"]["VCU_VehicleSpeed"] == pytest.approx(state.speed_kmh, abs=0.006)
    assert last["MCU2_Status"]["MCU2_Speed"] == pytest.approx(state.motors[1].speed_rpm, abs=0.6)
    assert last["VCU_Odometer"]["VCU_Odometer"] == pytest.approx(state.odometer_km, abs=0.2)


def test_periods_match_gen_msg_cycle_time(runs: dict[str, list[RawFrame]]) -> None:
    """Median period within 2 % of GenMsgCycleTime; every period within 2 x jitter + queueing of it."""
    db = load_dbc()
    for frames in runs.values():
        times: dict[int, list[float]] = defaultdict(list)
        for t, can_id, _ in frames:
            times[can_id].append(t)
        for can_id, ts in times.items():
            msg = db.get_message_by_frame_id(can_id)
            cycle = msg.cycle_time / 1000.0
            periods = [b - a for a, b in itertools.pairwise(ts)]
            if len(periods) < 10:
                continue
            assert statistics.median(periods) == pytest.approx(cycle, rel=0.02), msg.name
            bound = 2 * min(JITTER_FRACTION * cycle, JITTER_MAX_S) + QUEUEING_S
            assert max(abs(p - cycle) for p in periods) <= bound, msg.name


def test_bus_load_of_the_real_two_motor_drive_is_in_band(runs: dict[str, list[RawFrame]]) -> None:
    """Exact stuffed bits over 20 s of WLTC driving with two motors: 20-50 % of 500 kbit/s."""
    window = [f for f in runs["wltc3"] if 100.0 <= f[0] < 120.0]
    assert 0.20 <= bus_load(window, 20.0) <= 0.50


def test_counters_and_checksums_verify(runs: dict[str, list[RawFrame]]) -> None:
    db = load_dbc()
    protected = {m.frame_id for m in db.messages if any(s.name.endswith("_Counter") for s in m.signals)}
    assert len(protected) == 10
    for frames in runs.values():
        last: dict[int, int] = {}
        for _, can_id, data in frames:
            if can_id not in protected:
                continue
            assert data[0] == Crc8SaeJ1850.calc(bytes((can_id & 0xFF, can_id >> 8)) + data[1:])
            counter = data[1] & 0x0F
            assert counter < COUNTER_MODULO
            if can_id in last:
                assert counter == (last[can_id] + 1) % COUNTER_MODULO
            last[can_id] = counter


def test_timestamps_strictly_increase_and_messages_carry_the_epoch() -> None:
    start = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    msgs = list(simulate(None, "wltc3", 3, 5.0, start_utc=start, channel="vcan0", n_motors=1))
    assert msgs and all(isinstance(m, can.Message) for m in msgs)
    stamps = [m.timestamp for m in msgs]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert start.timestamp() <= stamps[0] and stamps[-1] < start.timestamp() + 5.1
    assert {m.channel for m in msgs} == {"vcan0"}


def test_runs_are_reproducible_per_seed() -> None:
    a = record("nedc", 10.0)
    b = record("nedc", 10.0)
    assert a == b
    c = [f for w in simulate_windows(None, "nedc", 2, 10.0, n_motors=2) for f in w.frames]
    assert c != a


def test_external_state_source_and_bus_scenario() -> None:
    frames = [
        f
        for w in simulate_windows(
            None, seconds=20.0, source=SyntheticVehicle(), scenario="error-frames", fault_start_s=5.0
        )
        for f in w.frames
    ]
    errors = [t for t, i, _ in frames if i == ERROR_FRAME]
    assert errors and min(errors) >= 5.0


@pytest.mark.parametrize(
    ("scenario", "message", "signal", "shown"),
    [
        ("cell-over-voltage", "BMS_Faults", "BMS_FltCellOverVoltage", {"1"}),
        ("hvil-open", "BMS_Status", "BMS_HVIL", {"Open"}),
        ("insulation-fault", "BMS_Faults", "BMS_FltInsulationLow", {"1"}),
        ("controller-over-temperature", "MCU1_Status", "MCU1_FaultLevel", {"Warning", "Derate", "Shutdown"}),
        ("dcdc-fault", "VCU_DCDCStatus", "VCU_DCDCState", {"Fault"}),
        ("brake-fault", "VCU_Pedals", "VCU_BrakeSystemFault", {"1"}),
    ],
)
def test_physics_scenarios_show_on_the_bus(scenario: str, message: str, signal: str, shown: set[str]) -> None:
    """Once the physics shows the fault (its own signature), the ECUs report it within 2 s."""
    db = load_dbc()
    sc = SCENARIOS[scenario]
    frame_id = db.get_message_by_name(message).frame_id
    physics_at = None
    seen: set[str] = set()
    for window in simulate_windows(
        None, sc.default_profile, 1, 1800.0, scenario, n_motors=2, fault_start_s=5.0
    ):
        if physics_at is None and sc.signature([window.state]):
            physics_at = window.t1
        if physics_at is not None:
            seen |= {str(db.decode_message(i, d)[signal]) for _, i, d in window.frames if i == frame_id}
            if seen & shown or window.t1 > physics_at + 2.0:
                break
    assert physics_at is not None, f"{scenario}: the physics never showed it"
    assert seen & shown, (scenario, physics_at, seen)


def test_scenario_names_and_errors() -> None:
    names = scenario_names()
    assert {"ecu-silent", "bad-crc", "cell-over-voltage"} <= set(names)
    physics, bus = split_scenarios("cell-over-voltage,bad-crc")
    assert physics == "cell-over-voltage" and [b.name for b in bus] == ["bad-crc"]
    with pytest.raises(ConfigError, match=r"valid: .*bad-counter"):
        split_scenarios("nope")
    with pytest.raises(ConfigError, match="only one physics"):
        split_scenarios("cell-over-voltage,hvil-open")
    with pytest.raises(ConfigError, match="unknown cycle"):
        next(simulate_windows(None, "autobahn", 0, 1.0))
    with pytest.raises(ConfigError, match="seconds"):
        next(simulate_windows(None, "wltc3", 0, -1.0))


@pytest.mark.parametrize("seconds", [
    600.0,  # ten minutes: every phase of the WLTC (low, medium, high, extra high) in the default run
    pytest.param(3600.0, marks=pytest.mark.soak),  # the whole hour: `pytest -m soak`
])
def test_simulated_driving_decodes(seconds: float) -> None:
    """Every frame of simulated WLTC driving (two motors) decodes against dbc/ (streamed)."""
    decoders = {message.frame_id: message.decode for message in load_dbc().messages}
    count = 0
    for window in simulate_windows(None, "wltc3", 1, seconds, n_motors=2):
        for _, can_id, data in window.frames:
            decoders[can_id](data, decode_choices=True)  # raises on any malformed frame
            count += 1
    assert 830 * seconds < count < 1250 * seconds  # ~991 frames/s at ~23 % bus load
