"""agent.protocol.jsonform: conventions, error paths and round trips over every model class."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum, Flag
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.protocol import model
from agent.protocol.errors import ProtocolError
from agent.protocol.jsonform import (
    frame_from_json,
    frame_to_json,
    from_json,
    json_type_name,
    model_classes,
    to_json,
)
from agent.protocol.model import (
    Alarm,
    Command,
    CustomBlock,
    Edition,
    Encryption,
    Frame,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    Location,
    LocationStatus,
    Parameter,
    ParameterId,
    RealtimeReport,
    ResponseFlag,
    Special,
    TerminalControl,
    VehicleData,
    VehicleLogin,
)

T0 = datetime(2018, 6, 23, 4, 5, 2, tzinfo=UTC)  # 12:05:02 Beijing


def _classes() -> list[type]:
    return [cls for cls in vars(model).values() if isinstance(cls, type) and dataclasses.is_dataclass(cls)]


# --------------------------------------------------------------------------- generic strategies


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A hypothesis strategy for any model type, built from the type hints (as jsonform reads them)."""
    if tp is object or tp is Any:
        units = typing.get_args(model.DataUnit)
        return st.one_of([st.deferred(lambda cls=cls: strategy_for(cls)) for cls in units])
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([strategy_for(arg) for arg in typing.get_args(tp)])
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=3).map(tuple)
        return st.tuples(*[strategy_for(arg) for arg in args])
    if tp is type(None):
        return st.none()
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(tp) if f.init}
            return st.builds(tp, **fields)
        if issubclass(tp, Flag):
            return st.integers(0, 2**32 - 1).map(tp)
        if issubclass(tp, Enum):
            return st.sampled_from(list(tp))
        if issubclass(tp, bool):
            return st.booleans()
        if issubclass(tp, int):
            return st.integers(-(2**40), 2**40)
        if issubclass(tp, float):
            return st.floats(allow_nan=False, allow_infinity=False)
        if issubclass(tp, str):
            return st.text(max_size=8)
        if issubclass(tp, bytes):
            return st.binary(max_size=8)
        if issubclass(tp, datetime):
            return st.datetimes(
                min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.just(UTC)
            )
    raise NotImplementedError(tp)


def _through_text(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False))


@pytest.mark.parametrize("cls", _classes(), ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_every_model_class_round_trips(cls: type, data: st.DataObject) -> None:
    value = data.draw(strategy_for(cls))
    assert from_json(cls, _through_text(to_json(value))) == value
    assert from_json(object, _through_text(to_json(value))) == value


@given(
    frame=st.builds(
        Frame,
        edition=st.sampled_from(list(Edition)),
        command=st.one_of(st.sampled_from(list(Command)), st.integers(0x83, 0xFF)),
        response=st.one_of(st.sampled_from(list(ResponseFlag)), st.integers(0x08, 0xFD)),
        vin=st.text(max_size=17),
        encryption=st.one_of(st.sampled_from(list(Encryption)), st.integers(0x06, 0xFD)),
        body=strategy_for(object),
    )
)
def test_frame_round_trips(frame: Frame) -> None:
    obj = _through_text(frame_to_json(frame, length=0))
    assert frame_from_json(obj) == frame


def test_type_names_are_unique_and_registered() -> None:
    names = [json_type_name(cls) for cls in _classes()]
    assert len(names) == len(set(names))
    assert set(names) <= set(model_classes())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("VehicleLogin", "vehicle_login"),
        ("VehicleLogin2025", "vehicle_login_2025"),
        ("RealtimeReport", "realtime_report"),
        ("DriveMotors2025", "drive_motors_2025"),
        ("Empty", "empty"),
    ],
)
def test_json_type_name(name: str, expected: str) -> None:
    assert json_type_name(getattr(model, name)) == expected


# --------------------------------------------------------------------------- conventions


def _vehicle(**changes: Any) -> VehicleData:
    base = VehicleData(
        vehicle_state=model.VehicleState.STARTED,
        charging_state=model.ChargingState.NOT_CHARGING,
        running_mode=model.RunningMode.ELECTRIC,
        speed=5.0,
        mileage=57.3,
        total_voltage=700.0,
        total_current=500.0,
        soc=50,
        dcdc_state=model.DcDcState.WORKING,
        gear=Gear(GearPosition.DRIVE, drive_force=True, brake_force=True),
        insulation_resistance=4637,
        accelerator_pedal=0,
        brake_pedal=101,
    )
    return dataclasses.replace(base, **changes)


def test_frame_object_keys_and_values() -> None:
    frame = Frame(
        Edition.E2016,
        Command.REALTIME,
        ResponseFlag.COMMAND,
        "ERR08030000000000",
        Encryption.NONE,
        RealtimeReport(T0, (_vehicle(),)),
    )
    obj = frame_to_json(frame, length=183)
    assert list(obj) == ["edition", "command", "response", "vin", "encryption", "length", "data"]
    assert obj["edition"] == 2016
    assert obj["command"] == "realtime"
    assert obj["response"] == "command"
    assert obj["encryption"] == "none"
    assert obj["length"] == 183
    data = obj["data"]
    assert data["type"] == "realtime_report"
    assert data["time"] == "2018-06-23T12:05:02+08:00"
    assert data["signature"] is None
    block = data["blocks"][0]
    assert block["type"] == "vehicle_data"
    assert block["speed"] == 5.0 and block["total_voltage"] == 700.0 and block["soc"] == 50
    assert block["vehicle_state"] == "started"
    assert block["gear"] == {
        "gear": "drive",
        "drive_force": True,
        "brake_force": True,
        "invalid": False,
        "reserved_bits": 0,
    }  # a field whose type pins the class carries no "type"
    assert frame_from_json(obj) == frame


def test_unknown_codes_stay_ints() -> None:
    frame = Frame(Edition.E2025, 0x90, 0x20, "VIN", 0x42)
    obj = frame_to_json(frame, length=0)
    assert (obj["command"], obj["response"], obj["encryption"]) == (0x90, 0x20, 0x42)
    assert obj["data"] == {"type": "empty"}
    assert frame_from_json(obj) == frame


def test_codes_accepted_as_ints_and_any_case() -> None:
    obj = {"edition": "2025", "command": 2, "response": "COMMAND", "vin": "X", "encryption": 1,
           "data": {"type": "empty"}}
    frame = frame_from_json(obj)
    assert frame.command is Command.REALTIME and frame.response is ResponseFlag.COMMAND
    assert frame.edition is Edition.E2025 and frame.encryption is Encryption.NONE


def test_special_sentinels() -> None:
    value = _vehicle(speed=Special.INVALID, soc=Special.ABNORMAL, accelerator_pedal=None)
    obj = to_json(value)
    assert obj["speed"] == "invalid" and obj["soc"] == "abnormal" and obj["accelerator_pedal"] is None
    assert from_json(VehicleData, obj) == value


def test_flags_value_and_names() -> None:
    alarm = Alarm(model.AlarmLevel.LEVEL_3, GeneralAlarmFlag(3 | 1 << 30), other_faults=(0x10003,))
    obj = to_json(alarm)
    assert obj["general_flags"] == {
        "value": 3 | 1 << 30,
        "names": ["temperature_difference", "battery_high_temperature"],
    }
    assert obj["max_level"] == "level_3"
    assert from_json(Alarm, obj) == alarm
    # the raw value wins over the names; names alone, a bare int or a list of names also work
    obj["general_flags"] = {"value": 1, "names": ["low_soc"]}
    assert from_json(Alarm, obj).general_flags == GeneralAlarmFlag.TEMPERATURE_DIFFERENCE
    obj["general_flags"] = {"names": ["low_soc", "insulation"]}
    assert from_json(Alarm, obj).general_flags == GeneralAlarmFlag.LOW_SOC | GeneralAlarmFlag.INSULATION
    obj["general_flags"] = 16
    assert from_json(Alarm, obj).general_flags == GeneralAlarmFlag.LOW_SOC
    obj["general_flags"] = ["low_soc"]
    assert from_json(Alarm, obj).general_flags == GeneralAlarmFlag.LOW_SOC


def test_location_status_flags() -> None:
    loc = Location(LocationStatus.SOUTH | LocationStatus.WEST, -120.009633, -30.344348)
    obj = to_json(loc)
    assert obj["status"] == {"value": 6, "names": ["south", "west"]}
    assert obj["longitude"] == -120.009633
    assert from_json(Location, obj) == loc


def test_time_any_offset_in_utc_out() -> None:
    login = VehicleLogin(T0, 1, "89860616020046379629", 1, 0)
    obj = to_json(login)
    assert obj["time"] == "2018-06-23T12:05:02+08:00"
    for text in ("2018-06-23T04:05:02+00:00", "2018-06-23T04:05:02Z", "2018-06-23T12:05:02",
                 "2018-06-23T06:05:02+02:00"):
        obj["time"] = text
        decoded = from_json(VehicleLogin, obj)
        assert decoded.time == T0 and decoded.time.utcoffset() == timedelta(0)


def test_time_of_other_zone_printed_in_beijing() -> None:
    login = VehicleLogin(T0.astimezone(timezone(timedelta(hours=-5))), 1, "x", 0, 0)
    assert to_json(login)["time"] == "2018-06-23T12:05:02+08:00"


def test_bytes_as_hex() -> None:
    block = CustomBlock(0x80, bytes.fromhex("00CD0036"))
    obj = to_json(block)
    assert obj == {"type": "custom_block", "info_type": 0x80, "data": "00cd0036"}
    assert from_json(CustomBlock, obj) == block
    obj["data"] = "00 CD 00 36"
    assert from_json(CustomBlock, obj) == block


def test_ambiguous_strings_are_wrapped() -> None:
    as_bytes = Parameter(0x80, b"\x01\x02")
    as_text = Parameter(ParameterId.PLATFORM_DOMAIN, "invalid")
    as_special = Parameter(ParameterId.PLATFORM_PORT, Special.INVALID)
    assert to_json(as_bytes)["value"] == {"hex": "0102"}
    assert to_json(as_text)["value"] == {"text": "invalid"}
    assert to_json(as_special)["value"] == "invalid"
    assert to_json(Parameter(ParameterId.PLATFORM_DOMAIN, "a.example"))["value"] == "a.example"
    for value in (as_bytes, as_text, as_special):
        assert from_json(Parameter, to_json(value)) == value


def test_terminal_control_params_union() -> None:
    control = TerminalControl(T0, model.ControlId.WARNING, model.WarningParams(model.AlarmLevel.LEVEL_1))
    obj = to_json(control)
    assert obj["params"]["type"] == "warning_params"
    assert from_json(TerminalControl, obj) == control
    raw = TerminalControl(T0, model.ControlId.SHUTDOWN)
    assert to_json(raw)["params"] == ""
    assert from_json(TerminalControl, to_json(raw)) == raw


def test_float_shortest_repr_round_trips() -> None:
    for speed in (0.1, 57.3, 6553.4, 1 / 3, 2.675):
        text = json.dumps(to_json(_vehicle(speed=speed)))
        assert from_json(VehicleData, json.loads(text)).speed == speed
        assert repr(speed) in text


# --------------------------------------------------------------------------- errors


def _frame_obj(**data: Any) -> dict[str, Any]:
    body = to_json(RealtimeReport(T0, (_vehicle(),)))
    body["blocks"][0].update(data)
    return {"edition": 2016, "command": "realtime", "response": "command", "vin": "V",
            "encryption": "none", "length": 999, "data": body}


@pytest.mark.parametrize(
    ("obj", "field", "words"),
    [
        (_frame_obj(speed="fast"), "data.blocks[0].speed", "abnormal"),
        (_frame_obj(speed=None), "data.blocks[0].speed", "null"),
        (_frame_obj(soc=1.5), "data.blocks[0].soc", "integer"),
        (_frame_obj(soc=True), "data.blocks[0].soc", "boolean"),
        (_frame_obj(vehicle_state="flying"), "data.blocks[0].vehicle_state", "flying"),
        (_frame_obj(gear={"gear": "drive", "oops": 1}), "data.blocks[0].gear.oops", "unknown"),
        (_frame_obj(gear=3), "data.blocks[0].gear", "object"),
        (_frame_obj(type="no_such_block"), "data.blocks[0].type", "no_such_block"),
        (_frame_obj(extra=1), "data.blocks[0].extra", "unknown field"),
        ({"edition": 2017, "command": 1, "response": 1, "vin": "V"}, "edition", "2016 or 2025"),
        ({"edition": 2016, "command": "nope", "response": 1, "vin": "V"}, "command", "nope"),
        ({"edition": 2016, "command": 1, "response": 1}, "vin", "missing"),
        ({"edition": 2016, "command": 1, "response": 1, "vin": "V", "bogus": 1}, "bogus", "unknown key"),
        ({"edition": 2016, "command": 1, "response": 1, "vin": "V", "data": {}}, "data.type", "missing"),
        ({"edition": 2016, "command": 1, "response": 1, "vin": "V", "data": []}, "data", "array"),
        ({"edition": 2016, "command": 1, "response": 1, "vin": "V",
          "data": {"type": "time_only", "time": "yesterday"}}, "data.time", "ISO 8601"),
        ({"edition": 2016, "command": 1, "response": 1, "vin": "V",
          "data": {"type": "opaque", "data": "zz"}}, "data.data", "hex"),
        ({"edition": 2016, "command": 1, "response": 1, "vin": "V",
          "data": {"type": "vehicle_logout", "serial": 1}}, "data.time", "missing"),
    ],
)
def test_bad_input_names_the_path(obj: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        frame_from_json(obj)
    assert info.value.field == field
    assert words in str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(ProtocolError):
        frame_from_json([1, 2])


def test_length_is_ignored_on_input() -> None:
    obj = _frame_obj()
    obj["length"] = 12345
    assert frame_from_json(obj).body == RealtimeReport(T0, (_vehicle(),))


def test_items_of_a_fixed_class_carry_no_type() -> None:
    motor = model.DriveMotor(1, model.MotorState.CONSUMING, 20, 5000, 1500.0, 20, 12.0, 500.0)
    motors = model.DriveMotors((motor,))
    obj = to_json(motors)
    assert obj["type"] == "drive_motors"
    assert "type" not in obj["motors"][0]
    assert obj["motors"][0]["state"] == "consuming"
    assert from_json(model.DriveMotors, obj) == motors
    assert to_json(model.DriveMotors(Special.INVALID))["motors"] == "invalid"
