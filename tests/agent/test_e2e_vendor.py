"""End to end with another vendor's DBC: the simulated vehicle's states encoded with
``tests/canbus/data/vendor_ev.dbc`` (German names, Motorola byte order, 29-bit ids, mV cells over two
cell monitoring units, 0.1 °C probes, mA current positive while charging, odometer in metres, CRC8
AUTOSAR) → candump log → ``tbox replay`` with ``vendor_ev.toml`` → decoded frames = simulator truth.
No code knows this vendor: only the config points at another mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cantools
import pytest

from agent.canbus.checks import crc8
from agent.cli import main
from agent.protocol.model import CellVoltages, ParallelUnitVoltages, Temperatures
from sim.bus import CandumpSink
from sim.ecus import RawFrame
from sim.run import simulate_windows
from sim.vehicle import VehicleConfig

from .e2e_support import START, VIN, FieldCheck, Recording, _truth, block, compare, decode_lines, report_of

DATA = Path(__file__).resolve().parents[1] / "canbus" / "data"


class VendorEcus:
    """Encodes a ``VehicleState`` into every vendor frame once per 0.1 s window (all mux pages)."""

    def __init__(self) -> None:
        self.db = cantools.database.load_file(str(DATA / "vendor_ev.dbc"))
        self.counter = 0

    def _frame(self, t: float, name: str, values: dict[str, Any]) -> RawFrame:
        msg = self.db.get_message_by_name(name)
        data = bytearray(msg.encode(values, strict=False, scaling=True))
        if name == "FZG_Status":
            data[6] = (data[6] & 0x0F) | (self.counter << 4)
            self.counter = (self.counter + 1) % 16
            data[7] = crc8(bytes(data[:7]), poly=0x2F, init=0xFF, xorout=0xFF)
        return (t, msg.frame_id, bytes(data))

    def frames(self, s: Any, t0: float) -> list[RawFrame]:
        m = s.motors[0]
        state = 0 if not m.enabled else (2 if m.torque_nm > 1 else (3 if m.torque_nm < -1 else 1))
        out = [
            self._frame(t0 + 0.001, "FZG_Status", {
                "FZG_Geschw": abs(s.speed_kmh), "FZG_Zustand": 2 if s.ready else 0,
                "GTR_Gang": {"P": 0, "R": 1, "N": 2, "D": 3}[s.gear.value], "LADE_Zustand": 0,
                "FZG_Bremse": int(s.brake_pedal_pct > 2), "FZG_Fahrpedal": s.accel_pedal_pct,
                "FZG_BZ": 0, "FZG_CRC": 0,
            }),
            self._frame(t0 + 0.002, "EM_Status", {
                "EM_Drehzahl": round(m.speed_rpm), "EM_Moment": m.torque_nm, "EM_Temp": m.motor_temp_c,
                "LE_Temp": m.inverter_temp_c, "EM_Zustand": state,
            }),
            self._frame(t0 + 0.003, "HVB_Status", {
                "HVB_Spannung": s.pack_voltage_v, "HVB_Strom_Ist": round(-1000 * s.pack_current_a),
                "HVB_SOC": s.soc_pct, "HVB_Isowiderstand": min(25.4, s.insulation_kohm / 1000),
            }),
            self._frame(t0 + 0.004, "BMS_Fehler", {"BMS_Fehlerbits": 0, "BMS_DTC1": 0}),
            self._frame(t0 + 0.005, "BMS_Fehler2", {"BMS_DTC2": 0}),
            self._frame(t0 + 0.006, "KOMBI_Kilometerstand", {"KOMBI_km": round(s.odometer_km * 1000)}),
        ]
        t = t0 + 0.01
        for cmu in (1, 2):
            cells = s.cell_voltages_v[12 * (cmu - 1): 12 * cmu]
            for page in range(4):
                values = {f"CMU{cmu}_ZS_Block": page}
                for j in range(3):
                    values[f"CMU{cmu}_U_Zelle{3 * page + j + 1:02d}"] = round(1000 * cells[3 * page + j])
                out.append(self._frame(t, f"CMU{cmu}_Zellspannungen", values))
                t += 0.001
            probes = s.cell_temps_c[5 * (cmu - 1): 5 * cmu]
            for page in range(2):
                values = {f"CMU{cmu}_T_Block": page}
                for j in range(3):
                    k = 3 * page + j
                    values[f"CMU{cmu}_T{k + 1}_Modul"] = round(10 * probes[k]) if k < 5 else 32767
                out.append(self._frame(t, f"CMU{cmu}_Temperaturen", values))
                t += 0.001
        return out


@pytest.fixture(scope="module")
def vendor_drive(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    path = tmp_path_factory.mktemp("vendor") / "vendor.log"
    rec = Recording(path)
    ecus = VendorEcus()
    sink = CandumpSink(path, START.timestamp(), "can0")
    config = VehicleConfig(n_cells=24, n_temp_probes=10, n_motors=1)
    try:
        for w in simulate_windows(config, "wltc3", 3, 90.0, start_utc=START):
            frames = ecus.frames(w.state, w.t0)
            sink.write(frames)
            rec.frames += len(frames)
            rec.truths.append(_truth(w.state))
    finally:
        sink.close()
    return rec


#: the vendor DBC's resolutions (half of them, plus half the protocol's where it is coarser)
VENDOR = {
    "soc": FieldCheck(0.2, 0.5 / 2 + 1 / 2),  # 0.5 %
    "total_current": FieldCheck(0.1, 0.001 / 2 + 0.1 / 2),  # mA
    "mileage": FieldCheck(1.1, 0.001 / 2 + 0.1 / 2),  # m
    "temperature": FieldCheck(0.7, 0.1 / 2 + 1 / 2),  # 0.1 °C
    "motor_torque": FieldCheck(0.1, 0.5 / 2),  # 0.5 N·m (on the 0.1 N·m wire grid)
}


@pytest.mark.parametrize("edition", [2016, 2025])
def test_vendor_dbc_log_matches_the_ground_truth(
    vendor_drive: Recording, tmp_path: Path, edition: int
) -> None:
    cfg = tmp_path / "vendor.toml"
    cfg.write_text(
        f'[vehicle]\nvin = "{VIN}"\nedition = {edition}\n'
        f'[can]\nmapping = "{DATA / "vendor_ev.toml"}"\ninterface = "socketcan"\nchannel = "can1"\n'
        "[report]\nnormal_period_s = 1\n"
    )
    out = tmp_path / "out.hex"
    assert main(["replay", str(vendor_drive.log), "--config", str(cfg), "--out", str(out)]) == 0
    frames = decode_lines(out)
    assert len(frames) >= 85
    checks, bad = compare(frames, vendor_drive, edition, overrides=VENDOR,
                          skip=("controller_voltage", "controller_current"))
    figures = "; ".join(f"{k} {c.max_dev:.4f} (n={c.compared})" for k, c in checks.items())
    print(f"\nvendor {edition}: {figures}")
    assert not bad, bad[:20]
    assert checks["cell_voltage"].compared == 24 * checks["speed"].compared
    assert checks["temperature"].compared == 10 * checks["speed"].compared
    # two subsystems (CMU1, CMU2) of 12 cells and 5 probes
    r = report_of(frames[-1])
    cells = block(r, CellVoltages, ParallelUnitVoltages)
    subsystems = cells.subsystems if isinstance(cells, CellVoltages) else cells.packs
    assert [(int(x.number), len(x.cell_voltages)) for x in subsystems] == [(1, 12), (2, 12)]
    temps = block(r, Temperatures)
    assert [(int(x.number), len(x.temperatures)) for x in temps.subsystems] == [(1, 5), (2, 5)]
