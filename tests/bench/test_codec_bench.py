"""Codec throughput: full 2016 and 2025 realtime reports, encode and decode, one core (``make bench``).

A "full" report carries every info type of its edition, 2 motors, 192 cells and 48 probes. Each figure is
the best of ``ROUNDS`` rounds of ``COUNT`` frames timed with ``time.perf_counter`` (the machines are shared;
the best round is the least disturbed one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from agent.protocol.codec import decode_frame, encode_frame
from agent.protocol.model import (
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    Command,
    CoordinateSystem,
    CustomBlock,
    DcDcState,
    DriveMotor,
    DriveMotor2025,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Encryption,
    Engine,
    Engine2025,
    EngineState,
    Extremes,
    FlagLevel,
    Frame,
    FuelCell,
    FuelCell2025,
    FuelCellStack,
    FuelCellStacks,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    PackVoltages,
    ParallelUnitVoltages,
    RealtimeReport,
    ResponseFlag,
    RunningMode,
    Signature,
    SignatureType,
    SubsystemTemperatures,
    SubsystemVoltages,
    Supercapacitor,
    SupercapacitorExtremes,
    Temperatures,
    VehicleData,
    VehicleData2025,
    VehicleState,
)
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
COUNT = 5000
ROUNDS = 5
TARGET = 30_000
NOW = datetime(2026, 5, 1, 8, 30, 0, tzinfo=UTC)
GEAR = Gear(GearPosition.DRIVE, drive_force=True)
CELLS = tuple((3600 + i % 60) / 1000 for i in range(192))
PROBES = tuple(20 + i % 12 for i in range(48))


def report_2016() -> RealtimeReport:
    return RealtimeReport(
        NOW,
        (
            VehicleData(
                VehicleState.STARTED,
                ChargingState.NOT_CHARGING,
                RunningMode.ELECTRIC,
                62.5,
                12345.6,
                650.2,
                -35.4,
                78,
                DcDcState.WORKING,
                GEAR,
                5000,
                20,
                0,
            ),
            DriveMotors(
                tuple(DriveMotor(i, MotorState.CONSUMING, 55, 4500, 120.5, 70, 648.0, 30.2) for i in (1, 2))
            ),
            FuelCell(300.0, 50.0, 1.25, (25, 26, 27, 28), 60.5, 1, 100, 2, 35.0, 3, DcDcState.WORKING),
            Engine(EngineState.STOPPED, 0, 0.0),
            Location(LocationStatus(0), 121.473701, 31.230416),
            Extremes(1, 17, 3.659, 1, 5, 3.6, 1, 3, 31, 1, 40, 20),
            Alarm(AlarmLevel.LEVEL_1, GeneralAlarmFlag.LOW_SOC, (), (0x01020304,), (), ()),
            CellVoltages((SubsystemVoltages(1, 650.2, -35.4, 192, 1, CELLS),)),
            Temperatures((SubsystemTemperatures(1, PROBES),)),
            CustomBlock(0x80, bytes(16)),
        ),
    )


def report_2025(signature: Signature | None = None) -> RealtimeReport:
    return RealtimeReport(
        NOW,
        (
            VehicleData2025(
                VehicleState.STARTED,
                ChargingState.NOT_CHARGING,
                RunningMode.ELECTRIC,
                62.5,
                12345.6,
                650.2,
                -35.4,
                78,
                DcDcState.WORKING,
                GEAR,
                5000,
            ),
            DriveMotors2025(
                tuple(DriveMotor2025(i, MotorState.CONSUMING, 55, 4500, 120.5, 70) for i in (1, 2))
            ),
            FuelCell2025(60, 1, 0.5, 2, 35.0, 3, DcDcState.WORKING, 80, 45),
            Engine2025(0),
            Location2025(LocationStatus(0), CoordinateSystem.WGS84, 121.473701, 31.230416),
            Alarm2025(
                AlarmLevel.LEVEL_1,
                GeneralAlarmFlag.LOW_SOC,
                (),
                (0x01020304,),
                (),
                (),
                (FlagLevel(4, AlarmLevel.LEVEL_1),),
            ),
            ParallelUnitVoltages((PackVoltages(1, 650.2, -35.4, CELLS),)),
            Temperatures((SubsystemTemperatures(1, PROBES),)),
            FuelCellStacks((FuelCellStack(1, 300.0, 50.0, 150.0, 120.0, 40, (60, 61, 62)),)),
            Supercapacitor(1, 48.0, 10.0, tuple(2.7 for _ in range(18)), (30, 31)),
            SupercapacitorExtremes(1, 3, 2.71, 1, 9, 2.69, 1, 2, 31, 1, 1, 30),
            CustomBlock(0x80, bytes(16)),
        ),
        signature,
    )


def frame(edition: Edition, body: RealtimeReport) -> Frame:
    return Frame(edition, Command.REALTIME, ResponseFlag.COMMAND, "LTBOX000000000001", Encryption.NONE, body)


def rate(fn: Callable[[], object], count: int = COUNT) -> float:
    """Frames per second: best of ROUNDS rounds of ``count`` calls."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def test_codec_throughput() -> None:
    cases: list[tuple[str, Frame]] = [
        (
            "2016 full report (all 9 types + custom, 2 motors, 192 cells, 48 probes)",
            frame(Edition.E2016, report_2016()),
        ),
        (
            "2025 full report (all 11 types + custom, 2 motors, 192 cells, 48 probes), unsigned",
            frame(Edition.E2025, report_2025()),
        ),
        (
            "2025 full report with an SM2 signature block (64-byte R+S), codec only",
            frame(Edition.E2025, report_2025(Signature(SignatureType.SM2, bytes(32), bytes(32)))),
        ),
    ]
    rows = ["| Frame | bytes | encode (frames/s) | decode (frames/s) |", "|---|---|---|---|"]
    results: list[tuple[float, float]] = []
    for name, f in cases:
        raw = encode_frame(f)
        assert decode_frame(raw) == f
        enc = rate(lambda f=f: encode_frame(f))  # type: ignore[misc]
        dec = rate(lambda raw=raw: decode_frame(raw))  # type: ignore[misc]
        results.append((enc, dec))
        rows.append(f"| {name} | {len(raw)} | {enc:,.0f} | {dec:,.0f} |")
    notes = [
        f"Best of {ROUNDS} rounds × {COUNT} frames per figure, one core, `time.perf_counter`; "
        f"target ≥ {TARGET:,} frames/s each way. Encode = model → bytes incl. header and BCC; "
        "decode = bytes → model incl. BCC check.",
    ]
    try:
        from agent.protocol.crypto import generate_keypair, signer_for

        private, _ = generate_keypair(SignatureType.SM2)
        signer = signer_for(SignatureType.SM2, private)
        unsigned = frame(Edition.E2025, report_2025())
        signing = rate(lambda: encode_frame(unsigned, signer=signer), count=50)
        rows.append(
            f"| 2025 full report, encoded **and signed** (SM2 via crypto.py) | — | {signing:,.0f} | — |"
        )
        notes.append(
            "The signed-encode row is dominated by the SM2 signature itself (see the Crypto section)."
        )
    except ImportError:  # crypto.py not there: the codec-only figures above still stand
        pass
    table = "\n".join(rows)
    print("\n" + table + "\n" + "\n".join(notes))
    write_section("Codec", table + "\n\n" + "\n".join(notes))
    for enc, dec in results:
        assert enc > 5_000 and dec > 5_000, "codec throughput collapsed"
