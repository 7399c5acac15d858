"""Builder properties: whatever the snapshot holds, the report encodes and decodes back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.protocol.codec import CodecOptions, decode_body, encode_body, split_cell_records
from agent.protocol.model import (
    AlarmLevel,
    CellVoltages,
    ChargingState,
    Command,
    DcDcState,
    Edition,
    GearPosition,
    GeneralAlarmFlag,
    MotorState,
    RealtimeReport,
    ResponseFlag,
    RunningMode,
    Special,
    VehicleState,
)
from agent.report.alarms import AlarmState
from agent.report.builder import build_report
from agent.report.snapshot import MotorSnapshot, Position, Snapshot, SubsystemSnapshot

T0 = datetime(2026, 1, 1, tzinfo=UTC)

any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=-1e5, max_value=1e7),
    st.integers(min_value=-(10**9), max_value=10**9),
)
value = st.one_of(st.none(), st.sampled_from(list(Special)), any_number)


def coded(enum: Any) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.sampled_from(list(Special)), st.sampled_from(list(enum)), st.integers(-5, 300)
    )


vehicle = st.fixed_dictionaries(
    {},
    optional={
        "vehicle_state": coded(VehicleState),
        "charging_state": coded(ChargingState),
        "running_mode": coded(RunningMode),
        "dcdc_state": coded(DcDcState),
        "gear": coded(GearPosition),
        "drive_force": st.booleans(),
        "brake_force": st.one_of(st.booleans(), st.sampled_from(list(Special))),
        **{
            k: value
            for k in (
                "speed",
                "mileage",
                "total_voltage",
                "total_current",
                "soc",
                "insulation_resistance",
                "accelerator_pedal",
                "brake_pedal",
            )
        },
    },
)
motor = st.builds(
    MotorSnapshot,
    st.integers(0, 300),
    st.fixed_dictionaries(
        {},
        optional={
            "state": coded(MotorState),
            **{
                k: value
                for k in (
                    "controller_temperature",
                    "speed",
                    "torque",
                    "temperature",
                    "controller_voltage",
                    "controller_current",
                )
            },
        },
    ).map(MappingProxyType),
)
reading = st.one_of(
    st.sampled_from(list(Special)),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=-50, max_value=70),
)
subsystem = st.builds(
    SubsystemSnapshot,
    st.integers(0, 260),
    st.lists(reading, max_size=230).map(tuple),
    st.lists(reading, max_size=20).map(tuple),
    st.one_of(st.none(), value),
    st.one_of(st.none(), value),
)
position = st.one_of(
    st.none(),
    st.builds(
        Position, st.floats(allow_nan=True, width=32), st.floats(allow_nan=True, width=32), st.booleans()
    ),
)
alarm = st.builds(
    lambda flags, lv, codes: AlarmState(
        max_level=AlarmLevel(lv),
        flags=GeneralAlarmFlag(flags),
        levels=MappingProxyType(
            {GeneralAlarmFlag(1 << b): AlarmLevel(max(lv, 1)) for b in range(32) if flags >> b & 1}
        ),
        ress_faults=codes,
    ),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 4),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=260).map(tuple),
)
snapshots = st.builds(
    lambda v, motors, subs, pos, secs: Snapshot(
        time=T0 + timedelta(seconds=secs),
        vehicle=MappingProxyType(v),
        motors=tuple(motors),
        subsystems=tuple(subs),
        position=pos,
    ),
    vehicle,
    st.lists(motor, max_size=3),
    st.lists(subsystem, max_size=3),
    position,
    st.integers(0, 10**8),
)


def normalise(report: RealtimeReport) -> RealtimeReport:
    blocks = tuple(split_cell_records(b) if isinstance(b, CellVoltages) else b for b in report.blocks)
    return RealtimeReport(report.time, blocks)


@settings(max_examples=150, deadline=None)
@given(snapshots, alarm, st.sampled_from([Edition.E2016, Edition.E2025]))
def test_any_snapshot_builds_an_encodable_report(snap: Snapshot, state: AlarmState, edition: Edition) -> None:
    report = build_report(snap, state, edition)
    # 2016's insulation resistance has no sentinel: an unknown value goes out as 0xFFFF, outside the
    # documented range, so strict encoding is checked on 2025 only
    options = CodecOptions(strict=edition is Edition.E2025)
    data = encode_body(edition, Command.REALTIME, ResponseFlag.COMMAND, report, options=options)
    back = decode_body(edition, Command.REALTIME, ResponseFlag.COMMAND, data)
    assert back == normalise(report)
