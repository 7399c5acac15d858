"""Mapping files: validation errors name the file, the key and the signal; the compiled form is lean."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.canbus.mapping import CompiledMapping, load_mapping, unit_of
from agent.errors import MappingError
from agent.protocol.model import GearPosition, Special

ROOT = Path(__file__).resolve().parents[2]
DBC = ROOT / "dbc" / "tbox_ev.dbc"
HEAD = f'dbc = "{DBC.as_posix()}"\n'

DUP_DBC = """VERSION ""
NS_ :
BS_:
BU_: A B
BO_ 1793 Other_Status: 8 A
 SG_ BMS_SOC : 0|8@1+ (1,0) [0|255] "%" B
"""


def compile_text(tmp_path: Path, body: str, *, head: str = HEAD) -> CompiledMapping:
    path = tmp_path / "map.toml"
    path.write_text(head + body, encoding="utf-8")
    return load_mapping(path)


def error_of(tmp_path: Path, body: str, *, head: str = HEAD) -> str:
    with pytest.raises(MappingError) as info:
        compile_text(tmp_path, body, head=head)
    text = str(info.value)
    assert str(tmp_path / "map.toml") in text
    return text


def test_our_mapping_loads() -> None:
    mapping = load_mapping(ROOT / "dbc" / "tbox_ev.toml")
    assert mapping.dbc_paths == (DBC,)
    assert mapping.mux_selectors.keys() == {0x180, 0x181}
    # one decoder per (id, mux page), each with only the mapped signals
    cells = [g for g in mapping.groups if g.frame_id == 0x180]
    assert len(cells) == 32 and all(len(g.signals) == 3 for g in cells)
    status = next(g for g in mapping.groups if g.message == "VCU_VehicleStatus")
    assert "VCU_DriveMode" not in status.signals and status.check is not None


def test_missing_signal(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[vehicle]\nspeed = { signal = "VCU_VehSpeed" }\n')
    assert "vehicle.speed.signal" in text and "'VCU_VehSpeed' is not in the DBC" in text


def test_case_hint(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[vehicle]\nsoc = "bms_soc"\n')
    assert "did you mean BMS_SOC" in text


def test_message_dot_signal(tmp_path: Path) -> None:
    mapping = compile_text(tmp_path, '[vehicle]\nsoc = "BMS_Status.BMS_SOC"\n')
    assert mapping.vehicle[0].input is not None and mapping.vehicle[0].input.signal == "BMS_SOC"
    text = error_of(tmp_path, '[vehicle]\nsoc = "BMS_Stat.BMS_SOC"\n')
    assert "message 'BMS_Stat' is not in the DBC" in text


def test_ambiguous_signal(tmp_path: Path) -> None:
    (tmp_path / "dup.dbc").write_text(DUP_DBC, encoding="utf-8")
    head = f'dbc = ["{DBC.as_posix()}", "dup.dbc"]\n'
    text = error_of(tmp_path, '[vehicle]\nsoc = "BMS_SOC"\n', head=head)
    assert "vehicle.soc.signal" in text and "ambiguous" in text
    assert "BMS_Status.BMS_SOC" in text and "Other_Status.BMS_SOC" in text
    mapping = compile_text(tmp_path, '[vehicle]\nsoc = "Other_Status.BMS_SOC"\n', head=head)
    assert mapping.wanted_ids == {1793}


def test_unknown_field_lists_valid_names(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[vehicle]\nvelocity = "VCU_VehicleSpeed"\n')
    assert "vehicle.velocity" in text and "unknown field" in text and "speed" in text and "soc" in text
    text = error_of(tmp_path, '[faults]\nhvil = "BMS_FltHVILOpen"\n')
    assert "faults.hvil" in text and "hv_interlock" in text


def test_unknown_keys_are_typos(tmp_path: Path) -> None:
    assert "vehicle.speed.scael" in error_of(
        tmp_path, '[vehicle]\nspeed = { signal = "VCU_VehicleSpeed", scael = 2 }\n'
    )
    assert "vehical" in error_of(tmp_path, '[vehical]\nspeed = "VCU_VehicleSpeed"\n')
    assert "defaults.stale" in error_of(tmp_path, "[defaults]\nstale = 3\n")


def test_bad_regex_and_no_match(tmp_path: Path) -> None:
    text = error_of(tmp_path, "[battery]\ncell_voltages = { pattern = 'BMS_Cell(\\d+_V' }\n")
    assert "battery.cell_voltages.pattern" in text and "bad regular expression" in text
    text = error_of(tmp_path, "[battery]\ncell_voltages = { pattern = 'Zelle(\\d+)' }\n")
    assert "battery.cell_voltages.pattern" in text and "no signal matches" in text
    text = error_of(tmp_path, "[battery]\ncell_voltages = { pattern = 'BMS_Cell001_V' }\n")
    assert "capture group" in text


def test_unit_mismatch(tmp_path: Path) -> None:
    # a temperature signal for a speed
    text = error_of(tmp_path, '[vehicle]\nspeed = "VCU_DCDCTemp"\n')
    assert "vehicle.speed" in text and "unit mismatch" in text and "degC" in text
    # a declared unit that contradicts the DBC
    text = error_of(tmp_path, '[vehicle]\nspeed = { signal = "VCU_VehicleSpeed", unit = "m/s" }\n')
    assert "vehicle.speed.unit" in text and "km/h" in text
    # V cells scaled as if they were mV
    text = error_of(tmp_path, "[battery]\ncell_voltages = { pattern = 'BMS_Cell(\\d+)_V', scale = 0.001 }\n")
    assert "battery.cell_voltages" in text and "scale = 1" in text


def test_unit_conversion_needs_the_right_scale(tmp_path: Path) -> None:
    # the DBC says V; a mapping declaring mV contradicts it
    assert "declared unit" in error_of(
        tmp_path, '[vehicle]\ntotal_voltage = { signal = "BMS_PackVoltage", unit = "mV" }\n'
    )
    # sign flips keep the unit: scale = -1 is accepted
    mapping = compile_text(
        tmp_path, '[vehicle]\ntotal_current = { signal = "BMS_PackCurrent", scale = -1 }\n'
    )
    assert mapping.vehicle[0].scale == -1
    assert unit_of("mV") == ("V", 0.001) and unit_of("MOhm") == ("kΩ", 1000.0) and unit_of("furlong") is None


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[vehicle]\nspeed = { signal = "VCU_VehicleSpeed"\n')
    assert "TOML syntax error" in text and "line 3" in text and "column" in text


def test_enum_maps_are_checked(tmp_path: Path) -> None:
    text = error_of(tmp_path, '[vehicle]\ngear = { signal = "VCU_Gear", map = { Park = "park" } }\n')
    assert "vehicle.gear.map.Park" in text and "DBC values: D, N, P, R, SNA" in text
    text = error_of(tmp_path, '[vehicle]\ngear = { signal = "VCU_Gear", map = { P = "parking" } }\n')
    assert "vehicle.gear.map.P" in text and "not a GearPosition" in text and "park" in text
    mapping = compile_text(
        tmp_path, '[vehicle]\ngear = { signal = "VCU_Gear", map = { P = "park", 3 = "drive" } }\n'
    )
    assert mapping.vehicle[0].table == {0: GearPosition.PARK, 3: GearPosition.DRIVE}


def test_expressions_are_checked(tmp_path: Path) -> None:
    text = error_of(tmp_path, "[faults]\nhv_interlock = 'BMS_HVIL == \"Opened\"'\n")
    assert "faults.hv_interlock.expr" in text and "Open" in text
    text = error_of(tmp_path, "[faults]\nhv_interlock = 'BMS_HVIL =! 1'\n")
    assert "cannot parse" in text
    text = error_of(tmp_path, "[vehicle]\nspeed = { expr = 'VCU_VehicleSpeed > 1' }\n")
    assert "true/false" in text


def test_subsystem_split_is_checked(tmp_path: Path) -> None:
    body = "[battery]\ncell_voltages = { pattern = 'BMS_Cell(\\d+)_V' }\n"
    body += "subsystems = [{ number = 1, cells = 97 }]\n"
    assert "battery.subsystems[0].cells" in error_of(tmp_path, body)
    body = (
        "[battery]\ncell_voltages = { pattern = 'BMS_Cell(\\d+)_V' }\n"
        "subsystems = [{ number = 1, cells = 48 }, { number = 2, cells = 48 }]\n"
    )
    mapping = compile_text(tmp_path, body)
    first, second = mapping.subsystems
    assert (
        first.cells.inputs[-1].signal == "BMS_Cell048_V" and second.cells.inputs[0].signal == "BMS_Cell049_V"
    )
    body = (
        "[battery]\ncell_voltages = { pattern = 'BMS_Cell(\\d+)_V' }\n"
        "subsystems = [{ number = 1 }, { number = 2 }]\n"
    )
    assert "needed to split" in error_of(tmp_path, body)


def test_checks_are_validated(tmp_path: Path) -> None:
    head = "[checks.BMS_PackStatus]\n"
    body = head + 'counter = "BMS_Counter"\nchecksum = "BMS_Pack_CRC"\nalgorithm = "crc8_sae_j1850"\n'
    assert "checks.BMS_PackStatus.counter" in error_of(tmp_path, body)
    body = head + 'counter = "BMS_Pack_Counter"\nchecksum = "BMS_Pack_CRC"\nalgorithm = "md5"\n'
    assert "checks.BMS_PackStatus" in error_of(tmp_path, body)
    assert "not in the DBC" in error_of(tmp_path, '[checks.Nope]\nalgorithm = "none"\n')


def test_dbc_errors(tmp_path: Path) -> None:
    assert "dbc" in error_of(tmp_path, "[vehicle]\n", head="")
    assert "not found" in error_of(tmp_path, "[vehicle]\n", head='dbc = "nope.dbc"\n')


def test_const_and_special_values(tmp_path: Path) -> None:
    mapping = compile_text(
        tmp_path,
        '[vehicle]\nrunning_mode = { const = "electric" }\n'
        'dcdc_state = { signal = "VCU_DCDCState", map = { Active = "working", Fault = "abnormal" } }\n',
    )
    assert mapping.vehicle[0].const.name == "ELECTRIC"
    assert mapping.vehicle[1].table is not None and mapping.vehicle[1].table[2] is Special.ABNORMAL
    assert "not allowed with const" in error_of(
        tmp_path, '[vehicle]\nrunning_mode = { const = "electric", scale = 2 }\n'
    )


def test_sna_defaults_come_from_the_dbc(tmp_path: Path) -> None:
    mapping = compile_text(
        tmp_path,
        '[vehicle]\nsoc = "BMS_SOC"\ngear = "VCU_Gear"\n'
        'speed = { signal = "VCU_VehicleSpeed", sna = false }\n',
    )
    soc, gear, speed = (r.input for r in mapping.vehicle)
    assert soc is not None and soc.sna == {1023}
    assert gear is not None and gear.sna == {15}
    assert speed is not None and speed.sna == frozenset()


def test_staleness(tmp_path: Path) -> None:
    body = (
        '[defaults]\nstale_cycles = 5\nstale_min = 0\n[vehicle]\nsoc = "BMS_SOC"\n'
        'speed = { signal = "VCU_VehicleSpeed", stale = 2.5 }\n'
        "[battery]\ncell_voltages = { pattern = 'BMS_Cell(\\d+)_V' }\n"
    )
    mapping = compile_text(tmp_path, body)
    soc, speed = (r.input for r in mapping.vehicle)
    assert soc is not None and soc.stale == pytest.approx(0.5)  # 5 x 100 ms
    assert speed is not None and speed.stale == 2.5
    assert mapping.subsystems[0].cells.inputs[0].stale == pytest.approx(5 * 0.010 * 32)  # 32 pages


def test_integer_literals(tmp_path: Path) -> None:
    body = "[faults]\nbrake_system = 'BMS_FaultCode & 010 == 0x08 or BMS_FaultCode & 0b100'\n"
    (term1, term2) = compile_text(tmp_path, body).faults[0].expr.terms  # type: ignore[union-attr]
    assert term1[0].mask == 10 and term1[0].value == 8.0 and term2[0].mask == 4


def test_option_errors_name_the_option(tmp_path: Path) -> None:
    assert "vehicle.soc.sna:" in error_of(tmp_path, '[vehicle]\nsoc = { signal = "BMS_SOC", sna = "none" }\n')
    assert "vehicle.soc.stale:" in error_of(tmp_path, '[vehicle]\nsoc = { signal = "BMS_SOC", stale = -1 }\n')
    text = error_of(tmp_path, '[vehicle]\ngear = { signal = "VCU_Gear", scale = 2 }\n')
    assert "vehicle.gear.scale" in text and "do not apply" in text
