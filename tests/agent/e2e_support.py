"""Helpers of the end-to-end tests: record a simulator run (candump log + ground truth), replay it
through ``tbox replay``, decode the frames and compare them with the truth."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from agent.protocol.codec import decode_frame
from agent.protocol.model import (
    CellVoltages,
    Command,
    DriveMotors,
    DriveMotors2025,
    Frame,
    ParallelUnitVoltages,
    RealtimeReport,
    Special,
    Temperatures,
    VehicleData,
    VehicleData2025,
)
from sim.bus import CandumpSink
from sim.ecus import RawFrame
from sim.nmea import NmeaSink, nmea_sentences
from sim.run import simulate_windows

REPO = Path(__file__).resolve().parents[2]
MAPPING = REPO / "dbc" / "tbox_ev.toml"
START = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
VIN = "LTBXEV00000000001"


@dataclass(frozen=True)
class MotorTruth:
    speed: float
    torque: float
    motor_temp: float
    inverter_temp: float
    dc_voltage: float
    dc_current: float


@dataclass(frozen=True)
class Truth:
    """The simulator's state of one 0.1 s window (copied: the physics reuses its state objects)."""

    t: float
    speed: float
    soc: float
    pack_v: float
    pack_i: float
    odometer: float
    cells: np.ndarray
    temps: np.ndarray
    motors: tuple[MotorTruth, ...]
    latitude: float = 0.0
    longitude: float = 0.0
    gnss_fix: bool = True
    state: Any = None


def _truth(s: Any) -> Truth:
    return Truth(
        t=float(s.t),
        speed=abs(float(s.speed_kmh)),
        soc=float(s.soc_pct),
        pack_v=float(s.pack_voltage_v),
        pack_i=float(s.pack_current_a),
        odometer=float(s.odometer_km),
        cells=np.array(s.cell_voltages_v, dtype=float),
        temps=np.array(s.cell_temps_c, dtype=float),
        motors=tuple(
            MotorTruth(m.speed_rpm, m.torque_nm, m.motor_temp_c, m.inverter_temp_c, m.dc_voltage_v,
                       m.dc_current_a)
            for m in s.motors
        ),
        latitude=float(s.latitude_deg),
        longitude=float(s.longitude_deg),
        gnss_fix=bool(s.gnss_fix),
    )


@dataclass
class Recording:
    log: Path
    truths: list[Truth] = field(default_factory=list)
    frames: int = 0

    def truth_at(self, t: float) -> Truth:
        """The state of the window ending at ``t`` (simulated s)."""
        k = round(t * 10) - 1
        return self.truths[max(0, min(k, len(self.truths) - 1))]

    def candidates(self, t: float, lookback: float) -> list[Truth]:
        """States whose frames may be the latest ones a sample at ``t`` read: windows ending in
        [t - lookback, t + 0.1] (the simulator's send jitter, ±1 ms, stamps a few frames of the window
        starting at ``t`` just before ``t``)."""
        hi = round(t * 10)
        lo = max(0, round((t - lookback) * 10) - 1)
        return self.truths[lo : hi + 1]


PostProcess = Callable[[list[RawFrame], float, float], list[RawFrame]]


def record(
    path: Path,
    *,
    profile: str = "wltc3",
    seconds: float = 60.0,
    scenario: str | None = None,
    seed: int = 1,
    fault_start_s: float | None = None,
    n_motors: int = 2,
    post: Sequence[PostProcess] = (),
    keep_truth: bool = True,
    nmea: Path | None = None,
) -> Recording:
    """Simulate and write a candump log; ``post`` functions rewrite each window's frames (fault
    injection); ``nmea`` also writes the GNSS track (RMC + GGA once per simulated second)."""
    rec = Recording(path)
    sink = CandumpSink(path, START.timestamp(), "can0")
    nmea_sink = NmeaSink(nmea) if nmea is not None else None
    last_second = -1
    try:
        for w in simulate_windows(
            None, profile, seed, seconds, scenario, start_utc=START, n_motors=n_motors,
            fault_start_s=fault_start_s,
        ):
            frames = w.frames
            for fn in post:
                frames = fn(frames, w.t0, w.t1)
            sink.write(frames)
            rec.frames += len(frames)
            if keep_truth:
                rec.truths.append(_truth(w.state))
            second = int(w.t1 + 1e-9)
            if nmea_sink is not None and second != last_second:
                last_second = second
                nmea_sink.write(nmea_sentences(w.state, START + timedelta(seconds=w.state.t)))
    finally:
        sink.close()
        if nmea_sink is not None:
            nmea_sink.close()
    return rec


def write_config(directory: Path, edition: int = 2016, extra: str = "", name: str = "agent.toml") -> Path:
    """An agent config for the simulated vehicle (the repository's mapping)."""
    cfg = directory / name
    cfg.write_text(
        f"""
[vehicle]
vin = "{VIN}"
edition = {edition}
[can]
mapping = "{MAPPING}"
interface = "virtual"
channel = "e2e"
{extra}
""",
        encoding="utf-8",
    )
    return cfg


def decode_lines(path: Path) -> list[Frame]:
    """Every frame of a ``tbox replay`` output file."""
    return [decode_frame(bytes.fromhex(line)) for line in path.read_text().splitlines() if line]


def sim_seconds(when: datetime) -> float:
    return (when - START) / timedelta(seconds=1)


def report_of(frame: Frame) -> RealtimeReport:
    assert isinstance(frame.body, RealtimeReport)
    return frame.body


def block(report: RealtimeReport, *types: type) -> Any:
    for b in report.blocks:
        if isinstance(b, types):
            return b
    return None


# ----------------------------------------------------------------------------- comparison


@dataclass
class FieldCheck:
    """One compared field: ``tolerance`` = half the DBC resolution + half the protocol's."""

    lookback: float
    tolerance: float
    max_dev: float = 0.0
    compared: int = 0
    worst_at: float = 0.0

    def check(self, t: float, got: float, truths: Iterable[float]) -> bool:
        best = min((abs(got - x) for x in truths), default=math.inf)
        self.compared += 1
        if best > self.max_dev:
            self.max_dev, self.worst_at = best, t
        return best <= self.tolerance + 1e-9 * max(1.0, abs(got))  # float rounding of the decoders


def _num(v: Any) -> float | None:
    return None if isinstance(v, Special) or v is None else float(v)


def compare(
    frames: Sequence[Frame],
    rec: Recording,
    edition: int,
    overrides: dict[str, FieldCheck] | None = None,
    skip: Iterable[str] = (),
) -> tuple[dict[str, FieldCheck], list[str]]:
    """Compare every realtime/reissue record with the ground truth; returns per-field figures and the
    list of mismatches (field, time, value, nearest truth). ``overrides`` replaces the checks of fields
    (another DBC's resolutions); ``skip`` names fields not compared (not mapped)."""
    # tolerance: half the DBC resolution, plus half the protocol's where the protocol's is coarser (with
    # equal resolutions the DBC-quantised value is already on the protocol's grid)
    checks = {
        # name: (lookback s: cycle of its message / mux sweep + a window; tolerance)
        "speed": FieldCheck(0.1, 0.01 / 2 + 0.1 / 2),  # DBC 0.01 km/h, wire 0.1 km/h
        "soc": FieldCheck(0.2, 0.1 / 2 + 1 / 2),  # DBC 0.1 %, wire 1 %
        "total_voltage": FieldCheck(0.1, 0.1 / 2),  # 0.1 V both
        "total_current": FieldCheck(0.1, 0.05 / 2 + 0.1 / 2),  # DBC 0.05 A, wire 0.1 A
        "mileage": FieldCheck(1.1, 0.1 / 2),  # 0.1 km both
        "cell_voltage": FieldCheck(0.5, 0.001 / 2),  # 1 mV both
        "temperature": FieldCheck(0.7, 1 / 2),  # 1 °C both
        "motor_speed": FieldCheck(0.1, 1 / 2),  # 1 r/min both
        "motor_torque": FieldCheck(0.1, 0.1 / 2),  # 0.1 N·m both
        "motor_temperature": FieldCheck(0.2, 1 / 2),  # 1 °C both
        "controller_temperature": FieldCheck(0.2, 1 / 2),
    }
    if edition == 2016:
        checks["controller_voltage"] = FieldCheck(0.1, 0.1 / 2)  # 0.1 V both
        checks["controller_current"] = FieldCheck(0.1, 0.05 / 2 + 0.1 / 2)  # DBC 0.05 A, wire 0.1 A
    checks.update({k: replace(v, max_dev=0.0, compared=0) for k, v in (overrides or {}).items()})
    for name in skip:
        checks.pop(name, None)
    bad: list[str] = []

    def cmp(name: str, t: float, got: Any, value: Callable[[Truth], float]) -> None:
        if name not in checks:
            return
        g = _num(got)
        if g is None:
            bad.append(f"{name} at {t}: {got!r}")
            return
        c = checks[name]
        cands = rec.candidates(t, c.lookback)
        if not c.check(t, g, (value(x) for x in cands)):
            near = [round(value(x), 4) for x in cands]
            bad.append(f"{name} at {t}: {g} vs truth {near}")

    for frame in frames:
        if frame.command not in (Command.REALTIME, Command.REISSUE):
            continue
        report = report_of(frame)
        t = sim_seconds(report.time)
        if t < 2.0:
            continue  # the first second: not every message has been sent once yet
        v = block(report, VehicleData, VehicleData2025)
        cmp("speed", t, v.speed, lambda x: x.speed)
        cmp("soc", t, v.soc, lambda x: x.soc)
        cmp("total_voltage", t, v.total_voltage, lambda x: x.pack_v)
        cmp("total_current", t, v.total_current, lambda x: x.pack_i)
        cmp("mileage", t, v.mileage, lambda x: x.odometer)
        motors = block(report, DriveMotors, DriveMotors2025)
        if motors is not None:
            for m in motors.motors:
                i = int(m.number) - 1
                cmp("motor_speed", t, m.speed, lambda x, i=i: x.motors[i].speed)
                cmp("motor_torque", t, m.torque, lambda x, i=i: x.motors[i].torque)
                cmp("motor_temperature", t, m.temperature, lambda x, i=i: x.motors[i].motor_temp)
                cmp("controller_temperature", t, m.controller_temperature,
                    lambda x, i=i: x.motors[i].inverter_temp)
                if edition == 2016 and "controller_voltage" in checks:
                    cmp("controller_voltage", t, m.controller_voltage, lambda x, i=i: x.motors[i].dc_voltage)
                    cmp("controller_current", t, m.controller_current, lambda x, i=i: x.motors[i].dc_current)
        cells = _cells(report)
        n_cells = len(rec.truths[0].cells)
        if len(cells) != n_cells:
            bad.append(f"cells at {t}: {len(cells)} reported, {n_cells} simulated")
        for j, cv in enumerate(cells):
            cmp("cell_voltage", t, cv, lambda x, j=j: float(x.cells[j]))
        temps = _temps(report)
        n_probes = len(rec.truths[0].temps)
        if len(temps) != n_probes:
            bad.append(f"probes at {t}: {len(temps)} reported, {n_probes} simulated")
        for j, tv in enumerate(temps):
            cmp("temperature", t, tv, lambda x, j=j: float(x.temps[j]))
    return checks, bad


def _cells(report: RealtimeReport) -> list[Any]:
    b = block(report, CellVoltages, ParallelUnitVoltages)
    if b is None:
        return []
    out: list[Any] = []
    if isinstance(b, CellVoltages):
        assert not isinstance(b.subsystems, Special)
        for rec in sorted(b.subsystems, key=lambda r: (r.number, r.start_index)):
            out.extend(rec.cell_voltages)
    else:
        assert not isinstance(b.packs, Special)
        for pack in b.packs:
            out.extend(pack.cell_voltages)
    return out


def _temps(report: RealtimeReport) -> list[Any]:
    b = block(report, Temperatures)
    if b is None or isinstance(b.subsystems, Special):
        return []
    out: list[Any] = []
    for sub in b.subsystems:
        if not isinstance(sub.temperatures, Special):
            out.extend(sub.temperatures)
    return out
