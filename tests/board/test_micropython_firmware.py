"""The MicroPython lite firmware (board/micropython) under the real MicroPython interpreter.

The test compiles the signal table from the repo DBC + mapping (``agent.boardgen``), records 40 s of
simulated CAN traffic (WLTC, HV interlock opening at 28 s), and runs the firmware in 100 KiB of heap
(WebAssembly port on Node, ``make tools``) with a hardware shim (tests/board/micropython/shim.py):
fake CAN fed with the recorded frames and their timestamps, fake clock, fake link that captures the
frames and answers logins, cut from 12 s to 22 s, and the flash ring as a real file. The captured
frames are decoded with the CPython codec and compared with the CPython agent pipeline's snapshots of
the same traffic (tolerance: the field's resolution).
"""

from __future__ import annotations

import itertools
import json
import shutil
import struct
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.boardgen import compile_table
from agent.canbus.mapping import load_mapping
from agent.config import parse_config
from agent.pipeline import AgentPipeline
from agent.protocol.codec import decode_frame
from agent.protocol.model import (
    Alarm,
    Alarm2025,
    Command,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Extremes,
    Location,
    Location2025,
    RealtimeReport,
    VehicleData,
    VehicleData2025,
    VehicleLogin,
    VehicleLogin2025,
)
from agent.report.alarms import AlarmState
from agent.report.builder import build_report
from agent.report.snapshot import Snapshot
from sim.run import simulate
from tests.micropython_support import ROOT, copy_tree, node_or_skip, run_micropython

HERE = Path(__file__).with_name("micropython")
MAPPING = ROOT / "dbc" / "tbox_ev.toml"
START = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
VIN = "LTBXLTE0000000001"
SECONDS = 40.0
DOWN = (12.0, 22.0)
FAULT_AT = 28.0
PERIOD = 2  # normal report period of the test (10 s by default): more records to compare
HEAP = 100 * 1024
FIRMWARE = ("tbox_lite/__init__.py", "tbox_lite/signals.py", "tbox_lite/alarm.py", "tbox_lite/report.py",
            "tbox_lite/ring.py", "tbox_lite/terminal.py")
PROTOCOL = ("agent/__init__.py", "agent/protocol/__init__.py", "agent/protocol/errors.py",
            "agent/protocol/wire.py")

pytestmark = pytest.mark.micropython

# resolution of the wire fields that carry a physical value (tolerance of the comparison)
_RESOLUTION = {
    "speed": 0.1, "mileage": 0.1, "total_voltage": 0.1, "total_current": 0.1, "soc": 1,
    "insulation_resistance": 1, "accelerator_pedal": 1, "brake_pedal": 1,
    "controller_temperature": 1, "torque": 0.1, "temperature": 1, "controller_voltage": 0.1,
    "controller_current": 0.1, "max_cell_voltage": 0.001, "min_cell_voltage": 0.001,
    "max_temperature": 1, "min_temperature": 1,
}


def _stage(tmp: Path, edition: int) -> tuple[Path, list[str], dict[str, Any]]:
    """The board's filesystem: firmware, wire.py, the generated table, recorded frames, params."""
    stage = tmp / "board"
    copy_tree(stage, FIRMWARE, ROOT / "board/micropython")
    copy_tree(stage, PROTOCOL)
    mapping = load_mapping(MAPPING)
    table = compile_table(mapping, edition)
    (stage / "tbox_table.py").write_text(table)
    namespace: dict[str, Any] = {}
    exec(compile(table, "tbox_table.py", "exec"), namespace)
    wanted = set(namespace["ROUTES"])  # the CAN controller's filters pass only the table's ids
    messages = list(simulate(None, "wltc3", 1, SECONDS, "hvil-open", start_utc=START, fault_start_s=FAULT_AT))
    with (stage / "frames.bin").open("wb") as f:
        for m in messages:
            key = m.arbitration_id | (1 << 31 if m.is_extended_id else 0)
            if key in wanted and not m.is_error_frame and not m.is_remote_frame:
                data = bytes(m.data)
                f.write(struct.pack(">dIB", m.timestamp, key, len(data)) + data.ljust(8, b"\0"))
    t0 = START.timestamp()
    params = {
        "start": t0, "end": t0 + SECONDS, "down_from": t0 + DOWN[0], "down_until": t0 + DOWN[1],
        "vin": VIN, "slots": 32,
        "options": {"period_s": PERIOD, "retry_s": 2, "heartbeat_s": 5, "serial_path": "/serial.txt"},
    }
    (stage / "params.json").write_text(json.dumps(params))
    shutil.copy(HERE / "shim.py", stage / "shim.py")
    files = [*FIRMWARE, *PROTOCOL, "tbox_table.py", "frames.bin", "params.json"]
    return stage, files, {"messages": messages, "mapping": mapping, "edition": edition}


@pytest.fixture(scope="module", params=[2016, 2025])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    node_or_skip()
    tmp = tmp_path_factory.mktemp("mpy_firmware")
    stage, files, extra = _stage(tmp, request.param)
    result = run_micropython(stage / "shim.py", stage, files, timeout=180, heap=HEAP)
    out = result.stdout
    assert result.returncode == 0 and "DONE" in out, result.stderr[-3000:] + out[-3000:]
    tx = []
    for line in out.splitlines():
        if line.startswith("TX "):
            _, at, hexdata = line.split()
            tx.append((float(at), decode_frame(bytes.fromhex(hexdata))))
    counters = json.loads(next(x[9:] for x in out.splitlines() if x.startswith("COUNTERS ")))
    heap = json.loads(next(x[5:] for x in out.splitlines() if x.startswith("HEAP ")))
    return {"out": out, "tx": tx, "counters": counters, "heap": heap, **extra}


def _reference(
    messages: list[Any], mapping: Any, edition: int
) -> dict[datetime, tuple[Snapshot, AlarmState]]:
    """The CPython agent pipeline's snapshot and alarm state of every second of the same traffic."""
    settings = parse_config(
        f'[vehicle]\nvin = "{VIN}"\nedition = {edition}\n'
        f'[can]\nmapping = "{MAPPING}"\ninterface = "virtual"\n[report]\nnormal_period_s = 1\n',
        "lite.toml",
    )
    samples: dict[datetime, tuple[Snapshot, AlarmState]] = {}
    pipeline = AgentPipeline(
        settings, mapping=mapping, on_sample=lambda s, a: samples.__setitem__(s.time, (s, a))
    )
    for m in messages:
        pipeline.feed(m)
    pipeline.tick(START.timestamp() + SECONDS)  # the firmware's clock runs to the end of the recording
    return samples


def _close(a: Any, b: Any, name: str) -> bool:
    if is_dataclass(a) and is_dataclass(b):
        return all(_close(getattr(a, f.name), getattr(b, f.name), f.name) for f in fields(a))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y, name) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and type(a) is type(b):
        return abs(a - b) <= _RESOLUTION.get(name, 0) + 1e-9
    return bool(a == b)


def test_firmware_runs_under_micropython_in_100k_heap(run: dict[str, Any]) -> None:
    assert "IMPL micropython" in run["out"]
    assert "RING OK" in run["out"]
    heap = run["heap"]
    # live heap after each collection, and live heap + everything one poll allocates (this port collects
    # only between polls, so the latter is what a 100 KiB heap collected once per poll must hold)
    assert heap["peak"] < heap["step_peak"] < HEAP, heap
    print(f"\nlite firmware {run['edition']}: heap {heap}")  # shown with pytest -s (docs/micropython.md)


def test_session_outage_and_reissue_in_order(run: dict[str, Any]) -> None:
    tx = run["tx"]
    t0 = START.timestamp()
    commands = [f.command for _, f in tx]
    assert commands[0] is Command.VEHICLE_LOGIN
    assert isinstance(tx[0][1].body, VehicleLogin if run["edition"] == 2016 else VehicleLogin2025)
    assert tx[0][1].body.serial == 1 and tx[0][1].body.iccid == "89860000000000000001"
    logins = [(at, f) for at, f in tx if f.command is Command.VEHICLE_LOGIN]
    assert len(logins) == 2 and logins[1][1].body.serial == 2
    # nothing leaves while the link is cut
    assert not [at for at, _ in tx if t0 + DOWN[0] <= at < t0 + DOWN[1]]
    reissued = [f.body.time for _, f in tx if f.command is Command.REISSUE]
    realtime = [f.body.time for _, f in tx if f.command is Command.REALTIME]
    # the records made during the outage come back as reissue, oldest first, after the second login
    assert reissued == sorted(reissued) and len(reissued) >= (DOWN[1] - DOWN[0]) // PERIOD - 1
    assert all(t0 + DOWN[0] - 1 <= t.timestamp() < t0 + DOWN[1] + 2 for t in reissued), reissued
    first_reissue = next(at for at, f in tx if f.command is Command.REISSUE)
    assert first_reissue > logins[1][0]
    assert not set(reissued) & set(realtime)
    made = sorted(t.timestamp() for t in reissued + realtime)  # no record lost: no gap beyond the period
    assert made[0] <= t0 + PERIOD and all(b - a <= PERIOD for a, b in itertools.pairwise(made)), made
    c = run["counters"]
    assert c["reissue"] == len(reissued) and c["realtime"] == len(realtime) and c["left"] == 0
    assert c["unknown"] == 0 and c["frames"] == c["decoded"]
    assert commands[-1] is Command.VEHICLE_LOGOUT


def test_reports_match_the_cpython_pipeline(run: dict[str, Any]) -> None:
    edition = Edition(run["edition"])
    reference = _reference(run["messages"], run["mapping"], run["edition"])
    if edition is Edition.E2016:
        kinds: tuple[type, ...] = (VehicleData, DriveMotors, Location, Extremes)
        alarm_kind: type = Alarm
    else:
        kinds, alarm_kind = (VehicleData2025, DriveMotors2025, Location2025), Alarm2025
    reports = [f.body for _, f in run["tx"] if f.command in (Command.REALTIME, Command.REISSUE)]
    assert len(reports) >= 20
    speeds = [b.speed for r in reports for b in r.blocks if isinstance(b, (VehicleData, VehicleData2025))]
    assert max(s for s in speeds if isinstance(s, float)) > 5  # the car moves during the recording
    for body in reports:
        assert isinstance(body, RealtimeReport)
        snap, alarm = reference[body.time]
        want = build_report(snap, alarm, edition)
        got_blocks = {type(b): b for b in body.blocks}
        want_blocks = {type(b): b for b in want.blocks}
        assert Extremes not in got_blocks or edition is Edition.E2016
        for kind in kinds:
            assert (kind in got_blocks) == (kind in want_blocks), (body.time, kind)
            if kind in want_blocks:
                assert _close(got_blocks[kind], want_blocks[kind], kind.__name__), (
                    body.time, got_blocks[kind], want_blocks[kind])
        got_alarm, want_alarm = got_blocks[alarm_kind], want_blocks[alarm_kind]
        assert got_alarm.ress_faults == want_alarm.ress_faults
        assert got_alarm.motor_faults == want_alarm.motor_faults
        # the lite firmware raises ECU fault inputs at once; the agent may debounce thresholds
        assert int(got_alarm.general_flags) & ~int(want_alarm.general_flags) == 0, body.time
        if edition is Edition.E2025:
            want_levels = {p.bit: p.level for p in want_alarm.flag_levels}
            assert all(want_levels[p.bit] == p.level for p in got_alarm.flag_levels), body.time


def test_level_3_alarm_reports_every_second(run: dict[str, Any]) -> None:
    realtime = [f.body for _, f in run["tx"] if f.command is Command.REALTIME]
    t0 = START.timestamp()
    before = [r for r in realtime if t0 + DOWN[1] <= r.time.timestamp() < t0 + FAULT_AT]
    after = [r for r in realtime if r.time.timestamp() >= t0 + FAULT_AT + 2]
    gaps = {round(b.time.timestamp() - a.time.timestamp()) for a, b in itertools.pairwise(before)}
    assert gaps == {PERIOD}, gaps
    alarms = [next(b for b in r.blocks if isinstance(b, (Alarm, Alarm2025))) for r in after]
    assert alarms and all(a.max_level == 3 and a.general_flags >> 16 & 1 for a in alarms)
    stamps = [r.time.timestamp() for r in after]
    assert {round(b - a) for a, b in itertools.pairwise(stamps)} == {1}
