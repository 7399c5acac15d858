"""``tbox mapping scaffold``: a starting mapping that loads, for our DBC and for a vendor's."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent.mapping_cli as mapping_cli
from agent.canbus.mapping import load_mapping
from agent.cli import main

ROOT = Path(__file__).resolve().parents[2]
OUR_DBC = ROOT / "dbc" / "tbox_ev.dbc"
VENDOR_DBC = Path(__file__).parent / "data" / "vendor_ev.dbc"


def scaffold_to(tmp_path: Path, dbc: Path) -> Path:
    out = tmp_path / "sub" / "scaffold.toml"
    out.parent.mkdir()
    assert main(["mapping", "scaffold", "--dbc", str(dbc), "--out", str(out)]) == 0
    return out


def test_scaffold_of_our_dbc_loads_and_finds_the_main_fields(tmp_path: Path) -> None:
    out = scaffold_to(tmp_path, OUR_DBC)
    text = out.read_text(encoding="utf-8")
    assert 'dbc = "../../' in text and text.count("tbox_ev.dbc") == 1  # relative to the output file
    mapping = load_mapping(out)
    names = set(mapping.field_names())
    for field in (
        "vehicle.speed",
        "vehicle.mileage",
        "vehicle.total_voltage",
        "vehicle.total_current",
        "vehicle.soc",
        "vehicle.insulation_resistance",
        "vehicle.gear",
        "vehicle.vehicle_state",
        "vehicle.charging_state",
        "vehicle.dcdc_state",
        "vehicle.hv_interlock_closed",
        "motors.1.speed",
        "motors.1.torque",
        "motors.1.state",
        "motors.2.temperature",
        "faults.hv_interlock",
        "faults.cell_overvoltage",
        "faults.battery_high_temperature",
        "fault_codes.ress",
    ):
        assert field in names, field
    rules = {r.key: r for r in mapping.vehicle}
    speed_input = rules["vehicle.speed"].input
    assert speed_input is not None and speed_input.signal == "VCU_VehicleSpeed"
    assert (
        next(r for r in mapping.faults if r.key == "faults.cell_overvoltage").expr.text
        == "BMS_FltCellOverVoltage"
    )  # type: ignore[union-attr]
    assert len(mapping.subsystems[0].cells.inputs) == 96
    extremes = {r.key: r for r in mapping.extremes}
    assert extremes["extremes.min_temperature_index"].input.signal == "BMS_MinTempIdx"  # type: ignore[union-attr]
    assert extremes["extremes.max_cell_voltage_subsystem"].const == 1
    # the fields it could not match are listed as comments
    assert "# hv_on = ?   # no match" in text
    assert "# [checks.BMS_PackStatus]" in text


def test_scaffold_of_a_vendor_dbc_converts_units(tmp_path: Path) -> None:
    out = scaffold_to(tmp_path, VENDOR_DBC)
    text = out.read_text(encoding="utf-8")
    mapping = load_mapping(out)
    rules = {r.key: r for r in mapping.vehicle}
    assert rules["vehicle.mileage"].scale == pytest.approx(0.001)  # m -> km
    assert rules["vehicle.total_current"].scale == pytest.approx(0.001)  # mA -> A (sign: review!)
    assert rules["vehicle.insulation_resistance"].scale == pytest.approx(1000)  # MOhm -> kOhm
    assert mapping.subsystems[0].cells.scale == pytest.approx(0.001)  # mV cells
    assert mapping.subsystems[0].temperatures.scale == pytest.approx(0.1)  # 0.1 degC probes
    assert len(mapping.subsystems[0].cells.inputs) == 24  # both CMUs, ordered (CMU, cell)
    assert mapping.subsystems[0].cells.inputs[12].signal == "CMU2_U_Zelle01"
    (motor,) = mapping.motors
    assert {r.key for r in motor.rules} >= {"motors.1.speed", "motors.1.torque", "motors.1.state"}
    assert "ress" in mapping.fault_codes
    assert "# [checks.FZG_Status]" in text


def test_rejected_guesses_become_comments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a deliberately wrong heuristic: "speed" from a temperature signal -> unit mismatch at load time
    wrong = dict(mapping_cli._SCALARS)
    wrong["speed"] = ("°C", (r"dcdc",), (), r"")
    monkeypatch.setattr(mapping_cli, "_SCALARS", wrong)
    text, summary = mapping_cli.scaffold([OUR_DBC], tmp_path / "m.toml")
    assert '# speed = { signal = "VCU_DCDCTemp" }   # rejected:' in text and "unit mismatch" in text
    (tmp_path / "m.toml").write_text(text, encoding="utf-8")
    assert "vehicle.speed" not in load_mapping(tmp_path / "m.toml").field_names()
    assert "fields mapped" in summary


def test_scaffold_to_stdout_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mapping", "scaffold", "--dbc", str(VENDOR_DBC)]) == 0
    assert "[vehicle]" in capsys.readouterr().out
    out = tmp_path / "exists.toml"
    out.write_text("x", encoding="utf-8")
    assert main(["mapping", "scaffold", "--dbc", str(VENDOR_DBC), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_scaffold_of_our_dbc_reads_what_the_reference_mapping_reads(tmp_path: Path) -> None:
    pytest.importorskip("sim.vehicle")
    from agent.canbus.sampler import Sampler
    from sim.run import simulate_windows

    reference = load_mapping(ROOT / "dbc" / "tbox_ev.toml")
    guessed = load_mapping(scaffold_to(tmp_path, OUR_DBC))
    samplers = [Sampler(m, m.new_cache()) for m in (reference, guessed)]
    for w in simulate_windows(profile="wltc3", seed=2, seconds=20.0):
        for t, can_id, data in w.frames:
            for s in samplers:
                s.cache.put(can_id, data, t)
    ref, got = (s.sample(20.0) for s in samplers)
    shared = set(ref.vehicle) & set(got.vehicle)
    assert len(shared) >= 15
    for name in shared:
        assert got.vehicle[name] == ref.vehicle[name], name
    assert got.subsystems[0].cell_voltages == ref.subsystems[0].cell_voltages
    assert got.motors[0].values["speed"] == ref.motors[0].values["speed"]
