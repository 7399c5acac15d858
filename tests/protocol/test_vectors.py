"""Golden vectors (../shared/spec/vectors.md): decode, check the values the sources assert, re-encode exactly."""
# ruff: noqa: E501  (golden hex frames are long by nature)

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.protocol import wire
from agent.protocol.codec import (
    decode_body,
    decode_frame,
    decode_info_blocks,
    encode_body,
    encode_frame,
    encode_info_blocks,
)
from agent.protocol.model import (
    ActivationInfo,
    ActivationResult,
    ActivationStatus,
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    Command,
    ControlId,
    CustomBlock,
    DcDcState,
    DriveMotors,
    Edition,
    Empty,
    Encryption,
    Engine,
    EngineState,
    Extremes,
    FlagLevel,
    FuelCell,
    GearPosition,
    GeneralAlarmFlag,
    Location,
    LocationStatus,
    MotorState,
    Opaque,
    ParameterId,
    ParameterQuery,
    ParameterQueryReply,
    ParameterSet,
    PlatformLogin,
    PlatformLogout,
    RealtimeReport,
    RemoteUpgrade,
    RemoteUpgradeText,
    ResponseFlag,
    RunningMode,
    SignatureType,
    Special,
    Temperatures,
    TerminalControl,
    TimeOnly,
    VehicleData,
    VehicleData2025,
    VehicleLogin,
    VehicleLogin2025,
    VehicleLogout,
    VehicleState,
    WarningParams,
)

BJ = timezone(timedelta(hours=8))
ABN, INV = Special.ABNORMAL, Special.INVALID


def bj(*fields: int) -> datetime:
    """A Beijing wall time as the model's UTC datetime."""
    return datetime(*fields, tzinfo=BJ).astimezone(UTC)


FRAMES: dict[str, str] = {
    "J1": "232301FE313233343536373839000000000000000001002A130116173738000131323334353637383939383736353433323130300304313233343435363739383730FD",
    "J5": "232307FE3132333435363738390000000000000000010000C9",
    "J6": "232308FE3132333435363738390000000000000000010000C6",
    "J4": "232304FE31323334353637383900000000000000000100081301171737380001DE",
    "J2": "232301FE31323334353637383900000000000000000300307C9AAF67FB9408A75FAFC1C87F1E2AECD79DDAB8219016A5DD0911283922805EF450045EA3611C0D5CFBFD8F2581CEED30",
    "J3": "2323020131323334353637383900000000000000000100D001040507003A00001A0A00640063030602007B02030202010201004100370300EC00640203020042023605085800650308AE006F0C9600030102030D1B221A0A560D086502040100CB006605010031AD030012D1CB061115007B0709000832124211320607110000159D03000003E8000003E9000003EA03000007D0000007D1000007D20300000BB800000BB900000BBA0300000FA000000FA100000FA20802010002007B0037006F03006F00DE014D03000504D2004200DE0301BC022B029A0902010004010203040200040506070867",
    "T1": "232301FE4C5A59545547455735473130353935343501001E12061610150F001F38393836303631363032303034363337393632390100A8",
    "T3": "232301FE4C46574144524A463031313030323334360100281206050B2C1D00013833363035333337393831363035343930313837020531303030313130303032C2",
    "T4": "232301FE4C464E41344C4441394A4B4C303030383101001F120A1E10240000033839383631363136303230303134313030303032010131DF",
    "T4r": "232301014C464E41344C4441394A4B4C3030303831010006120A1E10240000",
    "T5": "232307FE4838323230363530303030303030303030010000BB",
    "T5r": "23230701483832323036353030303030303030303001000044",
    "T2": "232304FE4C5A595441474257394A313030343136340100081206161015150046EA",
    "T2r": "232304014C5A595441474257394A313030343136340100061206161015155D",
    "T9": "232306FE4C5A595441474257394A313030343136340100081206161015150046E8",
    "T9r": "232306014C5A595441474257394A313030343136340100061206161015155F",
    "T8": "232308FE4552523038303330303030303030303030010000B9",
    "T6": "232302FE45525230383033303030303030303030300100B71206170C05020101030100320000023D1B583A9832013E121D0065020101013C61A888B83C00783A980500072733A101CF049C060111064001020500010150010540070000000000000000000801011B583A9800110001110640050006400640064006400640064006400640064006400640064006400640064009010100055040404040800030CD0036277E32B038380500000000000000000000001766271A000000000000000000000000121D0000383C000000001674",
    "R1": "232301FE484155563442474E365335303032323139010066190A1B140202000C3839383630393234373930303233313636363036031830524A50454130304841553041414631333130303139353530524A50454130304841553041414631333130303139353630524A504541303048415530414146313331303031393537DC",
    "R2": "232302FE484155563442474E36533530303232313901001B190A1B14020201FFFFFFFFFFFFFFFFFFFFFFFFFFFFFF3FFFFFFFFF16",
    "R3": "232302FE484155563442474E365335303032323139010020190A1B1402020202FFFFFFFFFFFFFFFFFFFFFFFFFEFEFEFEFEFEFEFEFEFEFEFEEC",
    "R4": "232302FE484155563442474E36533530303232313901000C190A1B14020204FFFFFFFFFF3B",
    "R5": "232302FE484155563442474E365335303032323139010010190A1B1402020507FFFFFFFFFFFFFFFFDE",
    "R6": "232302FE484155563442474E365335303032323139010015190A1B14020206FFFFFFFFFFFFFFFFFFFFFFFFFFFFDF",
    "R7": "232302FE484155563442474E36533530303232313901002C190A1B14020207030000000300000007000100030008000200080003000C0004000D000100060920000A000BC9",
    "R8": "232302FE484155563442474E36533530303232313901002A190A1B1402020802FFFFFFFFFFFFFFFFFF04FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF03FFFFFFFFFFFFEB",
    "R9": "232302FE484155563442474E365335303032323139010013190A1B1402020902FF0000050005FFFFFFFFFFD4",
    "R10": "232302FE484155563442474E365335303032323139010019190A1B140202800010FEFEFEFEFEFEFEFEFEFEFEFEFEFEFEFE45",
    "R11": "232304FE484155563442474E365335303032323139010008190A1B1402020802C8",
    "R12": "232305FE484155563442474E365335303032323139010029190A1B1402020802484155563442474E36533530484155563442474E365335303032323139484155018D",
    "R13": "232306FE484155563442474E365335303032323139010008190A1B1402020802CA",
    "R14": "23230101484155563442474E365335303032323139010006190A1B14020236",
    "E1": "232301FE314731424C35325037545231313535323001001F0C0C1D0C13140001313233343536373839303132333435363738393001014398",
    "E2": "232302FE314731424C35325037545231313535323001001B100101023B000101010107D0000F423F13883A9832010517705A0075",
    "E3": "232302FE314731424C353250375452313135353230010020100101023B00020201017D753061A87D753C79E302017D75F862D4917D0075F8A2",
    "E4": "232302FE314731424C353250375452313135353230010024110C1416173B070200000000010000007B020000007B000000DF010000007B010000007D18",
    "E5": "232307FE314731424C353250375452313135353230010000D5",
    "E6": "232382FE314731424C353250375452313135353230010057110C1209161E01656D7174743B65757365726E616D653B70617373776F72643B0000C0A801013B1F903B766869643B312E302E303B302E302E313B6674703A2F2F656D7174742E696F2F6674702F7365727665723B0BB80F",
    "R20": "242401FE484155563442474E365335303032323139010036190A1B140202000C3839383630393234373930303233313636363036010130524A50454130304841553041414631333130303139353596",
    "R21": "242401FE484155563442474E365335303032323139010067190A1B140202000C383938363039323437393030323331363636303602010230524A50454130304841553041414631333130303139353530524A50454130304841553041414631333130303139353630524A504541303048415530414146313331303031393537C7",
    "R22": "242404FE484155563442474E365335303032323139010008190A1B1402020802C8",
    "R23": "242405FE484155563442474E365335303032323139010029190A1B1402020802484155563442474E36533530484155563442474E365335303032323139484155018D",
    "R24": "24240101484155563442474E365335303032323139010006190A1B14020236",
    "R25": "24240AFE48474C48334143463150413731343430380100020201A6",
    "R26": "242402FE484155563442474E36533530303232313901011F190A1B14020201FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFBFFFFFFF02010095588E186FE1D88CD6F8B6D7FCA7E0E89550D61ECBC663996536689FB662D7F53078D7BEF16960C299D8E8C5F38A9F68BD40AD4F29A08A4A870DB4B9AADD4AE956801575FBC86D2E11BA0034427E1D54969367B645D6A44289151EEB5D573E6FA0D8342ED785C1D1B0FF5BA52A3E9C35F9A485C92A565BB92512CBDDA30F0E93B3FD20EDB4B117E87CE652F4980D7C57F04637D4A1F3DCCE28DA5D7E7365793694C4942F0FBCB6FB726AE6FAC5113024A2F458C31E63A9237AE2721C24045B778B4531F493C630B179642E6ED1F214FFD223F9FC6C1974C1F05A3DB4BCE2CADCDF788E579F16D2690BF916379390BC033EDA081511CE1F3A8ED23EBFFEABFAE2000078",
    "R27": "242402FE484155563442474E365335303032323139010137190A1B14020206030000000300000007000100030008000200080003000C0004000D000100060920000A000B0200030103FF02010050662E2363BF35A6F93D050EB1439957160216DAECDBBE7CDF8F95BAF1AA6955610CED3B63CFC200E16CAD5033A370A254EDA60F99D812A04BCA4C24B64FCF8F703176DB01AA664597034494AB42DF190FCC930F788579F25E8C264FE5457B529BA1458611578AF4A554D7A4B828F14DC75FBCAAF52D08910810EADC8E1E28F4062D95EB95A20C58FB61C4A8DF97897134A2573EB9AC4261AFDCFB745615A64E6126705C8D950A1164BE5202D5B07819BEB6F49586AC5C9F653A62871829C7DC856680031A23B12D0FA27165A55A5B442B51051F241EB342548904E41527EFB04DEBAF85EC0547C9239E7ECC2A712D080032837BFDC81312C741DFADF60FE0F100001A",
    "E7": "242401FE56494E31323334353637383930313233340100361901010A1E000001313233343536373839303132333435363738393001015041434B313233343536373839303132333435363738393089",
}
WHOLE_FRAMES = [name for name in FRAMES if name != "J3"]  # J3 lacks the realtime time (JTNE bug)


@pytest.mark.parametrize("name", WHOLE_FRAMES)
def test_frame_round_trip(name: str) -> None:
    raw = bytes.fromhex(FRAMES[name])
    frame = decode_frame(raw)
    assert encode_frame(frame) == raw
    assert decode_frame(encode_frame(frame)) == frame
    start = Edition.E2025 if raw[:2] == b"$$" else Edition.E2016
    assert frame.edition is start


def frame(name: str):  # type: ignore[no-untyped-def]
    return decode_frame(bytes.fromhex(FRAMES[name]))


def blocks(name: str) -> tuple[object, ...]:
    body = frame(name).body
    assert isinstance(body, RealtimeReport)
    return body.blocks


# ------------------------------------------------------------------ session-level units


def test_j1_login_with_nul_padded_vin() -> None:
    f = frame("J1")
    assert (f.command, f.response, f.vin, f.encryption) == (Command.VEHICLE_LOGIN, ResponseFlag.COMMAND, "123456789", Encryption.NONE)
    assert f.body == VehicleLogin(bj(2019, 1, 22, 23, 55, 56), 1, "12345678998765432100", 3, 4, ("1234", "4567", "9870"))


def test_j2_encrypted_without_key_is_opaque() -> None:
    f = frame("J2")
    assert f.encryption is Encryption.AES
    assert isinstance(f.body, Opaque) and len(f.body.data) == 48


@pytest.mark.parametrize("name", ["J5", "J6", "T5", "T8", "E5"])
def test_empty_requests(name: str) -> None:
    f = frame(name)
    assert f.response is ResponseFlag.COMMAND and f.body == Empty()


def test_j4_logout() -> None:
    assert frame("J4").body == VehicleLogout(bj(2019, 1, 23, 23, 55, 56), 1)


def test_terryhart_logins() -> None:
    t1 = frame("T1")
    assert t1.vin == "LZYTUGEW5G1059545"
    assert t1.body == VehicleLogin(bj(2018, 6, 22, 16, 21, 15), 31, "89860616020046379629", 1, 0, ())
    assert frame("T3").body == VehicleLogin(bj(2018, 6, 5, 11, 44, 29), 1, "83605337981605490187", 2, 5, ("10001", "10002"))
    assert frame("T4").body == VehicleLogin(bj(2018, 10, 30, 16, 36, 0), 3, "89861616020014100002", 1, 1, ("1",))


def test_time_only_replies_keep_request_time() -> None:
    assert frame("T4r").body == TimeOnly(bj(2018, 10, 30, 16, 36, 0))
    assert frame("T4r").response is ResponseFlag.SUCCESS
    assert frame("T2").body == VehicleLogout(bj(2018, 6, 22, 16, 21, 21), 70)
    assert frame("T2r").body == TimeOnly(bj(2018, 6, 22, 16, 21, 21))
    assert frame("T9").body == PlatformLogout(bj(2018, 6, 22, 16, 21, 21), 70)
    assert frame("T9r").body == TimeOnly(bj(2018, 6, 22, 16, 21, 21))
    assert frame("T5r").body == Empty() and frame("T5r").response is ResponseFlag.SUCCESS
    assert frame("R14").body == TimeOnly(bj(2025, 10, 27, 20, 2, 2))
    assert frame("R24").body == TimeOnly(bj(2025, 10, 27, 20, 2, 2))


def test_r1_login_three_pack_codes() -> None:
    body = frame("R1").body
    assert isinstance(body, VehicleLogin)
    assert (body.serial, body.iccid, body.subsystem_count, body.code_length) == (12, "89860924790023166606", 3, 24)
    assert body.codes == ("0RJPEA00HAU0AAF131001955", "0RJPEA00HAU0AAF131001956", "0RJPEA00HAU0AAF131001957")


def test_rtm_con_logout_and_platform_units() -> None:
    assert frame("R11").body == VehicleLogout(bj(2025, 10, 27, 20, 2, 2), 2050)
    assert frame("R12").body == PlatformLogin(bj(2025, 10, 27, 20, 2, 2), 2050, "HAUV4BGN6S50", "HAUV4BGN6S5002219HAU", Encryption.NONE)
    assert frame("R13").body == PlatformLogout(bj(2025, 10, 27, 20, 2, 2), 2050)
    assert frame("R22").body == VehicleLogout(bj(2025, 10, 27, 20, 2, 2), 2050)
    assert frame("R23").body == frame("R12").body


def test_e1_login() -> None:
    f = frame("E1")
    assert f.vin == "1G1BL52P7TR115520"
    assert f.body == VehicleLogin(bj(2012, 12, 29, 12, 19, 20), 1, "12345678901234567890", 1, 1, ("C",))


def test_2025_logins() -> None:
    r20 = frame("R20").body
    assert r20 == VehicleLogin2025(bj(2025, 10, 27, 20, 2, 2), 12, "89860924790023166606", (1,), ("0RJPEA00HAU0AAF131001955",))
    r21 = frame("R21").body
    assert isinstance(r21, VehicleLogin2025)
    assert r21.packs_per_bms == (1, 2) and len(r21.pack_codes) == 3 and r21.pack_codes[2].endswith("957")
    e7 = frame("E7")
    assert e7.vin == "VIN12345678901234"
    assert e7.body == VehicleLogin2025(bj(2025, 1, 1, 10, 30, 0), 1, "12345678901234567890", (1,), ("PACK12345678901234567890",))


def test_r25_activation_result() -> None:
    f = frame("R25")
    assert f.command is Command.ACTIVATION_RESULT and f.response is ResponseFlag.COMMAND
    assert f.body == ActivationResult(ActivationStatus.FAILED, ActivationInfo.CHIP_ALREADY_ACTIVATED)


# ------------------------------------------------------------------ 2016 realtime


def test_t6_production_like_report() -> None:
    f = frame("T6")
    body = f.body
    assert isinstance(body, RealtimeReport) and body.time == bj(2018, 6, 23, 12, 5, 2) and body.signature is None
    vehicle, motors, location, extremes, alarm, cells, temps, custom = body.blocks
    assert vehicle == VehicleData(
        VehicleState.STARTED, ChargingState.NOT_CHARGING, RunningMode.ELECTRIC, 5.0, 57.3, 700.0, 500.0, 50,
        DcDcState.WORKING, vehicle.gear, 4637, 0, 101,  # type: ignore[attr-defined]
    )
    gear = vehicle.gear  # type: ignore[attr-defined]
    assert (gear.gear, gear.drive_force, gear.brake_force) == (GearPosition.DRIVE, True, True)
    assert isinstance(motors, DriveMotors) and not isinstance(motors.motors, Special)
    (m,) = motors.motors
    assert (m.number, m.state, m.controller_temperature, m.speed, m.torque, m.temperature) == (1, MotorState.CONSUMING, 20, 5000, 1500.0, 20)
    assert (m.controller_voltage, m.controller_current) == (12.0, 500.0)
    assert location == Location(LocationStatus(0), 120.009633, 30.344348)
    assert extremes == Extremes(1, 17, 1.6, 1, 2, 1.28, 1, 1, 40, 1, 5, 24)
    assert alarm == Alarm(AlarmLevel.NONE, GeneralAlarmFlag(0), (), (), (), ())
    assert isinstance(cells, CellVoltages) and not isinstance(cells.subsystems, Special)
    (sub,) = cells.subsystems
    assert (sub.number, sub.voltage, sub.current, sub.cell_count, sub.start_index) == (1, 700.0, 500.0, 17, 1)
    assert sub.cell_voltages == (1.6, 1.28, *([1.6] * 15))
    assert isinstance(temps, Temperatures) and not isinstance(temps.subsystems, Special)
    assert temps.subsystems[0].temperatures == (40, 24, 24, 24, 24)
    assert isinstance(custom, CustomBlock) and custom.info_type == 0x80 and len(custom.data) == 48


def test_r2_vehicle_all_invalid() -> None:
    (v,) = blocks("R2")
    assert isinstance(v, VehicleData)
    for name in ("vehicle_state", "charging_state", "running_mode", "speed", "mileage", "total_voltage",
                 "total_current", "soc", "dcdc_state", "accelerator_pedal", "brake_pedal"):
        assert getattr(v, name) is INV, name
    assert v.insulation_resistance == 65535  # 2016 defines no sentinel for it
    assert (v.gear.gear, v.gear.drive_force, v.gear.brake_force, v.gear.invalid) == (GearPosition.PARK, True, True, False)


def test_r3_width_specific_sentinels() -> None:
    (motors,) = blocks("R3")
    assert isinstance(motors, DriveMotors) and not isinstance(motors.motors, Special)
    m1, m2 = motors.motors
    assert all(getattr(m1, f) is INV for f in ("number", "state", "controller_temperature", "speed", "torque",
                                                 "temperature", "controller_voltage", "controller_current"))
    assert (m2.number, m2.state, m2.controller_temperature, m2.temperature) == (ABN, ABN, ABN, ABN)
    assert (m2.speed, m2.torque, m2.controller_voltage, m2.controller_current) == (45278, 4527.8, 6527.8, 5527.8)


def test_r4_engine_invalid() -> None:
    assert blocks("R4") == (Engine(INV, INV, INV),)


def test_r5_location_status_bits() -> None:
    (loc,) = blocks("R5")
    assert isinstance(loc, Location)
    assert loc.status == LocationStatus.INVALID_FIX | LocationStatus.SOUTH | LocationStatus.WEST
    assert (loc.longitude, loc.latitude) == (INV, INV)


def test_r6_extremes_invalid() -> None:
    (ext,) = blocks("R6")
    assert isinstance(ext, Extremes)
    assert all(getattr(ext, name) is INV for name in ext.__dataclass_fields__)


def test_r7_alarm() -> None:
    (alarm,) = blocks("R7")
    assert alarm == Alarm(
        AlarmLevel.LEVEL_3, GeneralAlarmFlag.TEMPERATURE_DIFFERENCE | GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE,
        (), (), (), (0x00010003, 0x00080002, 0x00080003, 0x000C0004, 0x000D0001, 0x00060920, 0x000A000B),
    )


def test_r8_cell_voltages_invalid() -> None:
    (cells,) = blocks("R8")
    assert isinstance(cells, CellVoltages) and not isinstance(cells.subsystems, Special)
    a, b = cells.subsystems
    assert (a.number, a.voltage, a.current, a.cell_count, a.start_index) == (INV, INV, INV, INV, 0xFFFF)
    assert a.cell_voltages == (INV,) * 4 and b.cell_voltages == (INV,) * 3


def test_r9_temperatures() -> None:
    (temps,) = blocks("R9")
    assert isinstance(temps, Temperatures) and not isinstance(temps.subsystems, Special)
    a, b = temps.subsystems
    assert (a.number, a.temperatures) == (INV, ())
    assert (b.number, b.temperatures) == (5, (INV,) * 5)


def test_r10_custom_block() -> None:
    assert blocks("R10") == (CustomBlock(0x80, b"\xfe" * 16),)


def test_e2_vehicle_raw_values() -> None:
    f = frame("E2")
    assert isinstance(f.body, RealtimeReport) and f.body.time == bj(2016, 1, 1, 2, 59, 0)
    (v,) = f.body.blocks
    assert isinstance(v, VehicleData)
    assert (v.vehicle_state, v.charging_state, v.running_mode) == (VehicleState.STARTED, ChargingState.PARKED_CHARGING, RunningMode.ELECTRIC)
    assert (v.speed, v.mileage, v.total_voltage, v.total_current, v.soc) == (200.0, 99999.9, 500.0, 500.0, 50)
    assert (v.dcdc_state, v.gear.gear, v.insulation_resistance, v.accelerator_pedal, v.brake_pedal) == (
        DcDcState.WORKING, GearPosition.GEAR_5, 6000, 90, 0)


def test_e3_two_motors() -> None:
    (motors,) = blocks("E3")
    assert isinstance(motors, DriveMotors) and not isinstance(motors.motors, Special)
    m1, m2 = motors.motors
    # raw (1, 1, 125, 30000, 25000, 125, 30012, 31203) and (2, 1, 125, 30200, 25300, 145, 32000, 30200)
    assert (m1.number, m1.controller_temperature, m1.speed, m1.torque, m1.temperature) == (1, 85, 10000, 500.0, 85)
    assert (m1.controller_voltage, m1.controller_current) == (3001.2, 2120.3)
    assert (m2.number, m2.speed, m2.torque, m2.temperature, m2.controller_voltage, m2.controller_current) == (
        2, 10200, 530.0, 105, 3200.0, 2020.0)


def test_e4_alarm_groups() -> None:
    assert blocks("E4") == (Alarm(AlarmLevel.LEVEL_2, GeneralAlarmFlag(0), (0x7B,), (0x7B, 0xDF), (0x7B,), (0x7D,)),)


def test_e6_binary_upgrade() -> None:
    body = frame("E6").body
    assert isinstance(body, TerminalControl) and body.command_id is ControlId.REMOTE_UPGRADE
    assert body.params == RemoteUpgrade(
        "emqtt", "eusername", "password", bytes([0, 0, 192, 168, 1, 1]), 8080, "vhid", "1.0.0", "0.0.1",
        "ftp://emqtt.io/ftp/server", 3000,
    )


def test_j3_blocks_from_offset_zero() -> None:
    raw = wire.parse_frame(bytes.fromhex(FRAMES["J3"]))
    assert (raw.command, raw.response, len(raw.data)) == (0x02, 0x01, 208)
    found, signature = decode_info_blocks(Edition.E2016, raw.data, 0)
    assert signature is None
    assert encode_info_blocks(Edition.E2016, found) == raw.data
    vehicle, motors, fuel, engine, location, extremes, alarm, cells, temps = found
    assert isinstance(vehicle, VehicleData)
    assert (vehicle.vehicle_state, vehicle.charging_state, vehicle.running_mode) == (4, 5, 7)  # undefined codes stay int
    assert (vehicle.speed, vehicle.mileage, vehicle.total_voltage, vehicle.total_current) == (5.8, 666.6, 10.0, -990.1)
    assert (vehicle.soc, vehicle.dcdc_state, vehicle.gear.gear, vehicle.insulation_resistance) == (3, 6, GearPosition.GEAR_2, 123)
    assert (vehicle.accelerator_pedal, vehicle.brake_pedal) == (2, 3)
    assert isinstance(motors, DriveMotors) and not isinstance(motors.motors, Special)
    m1, m2 = motors.motors
    assert (m1.number, m1.state, m1.controller_temperature, m1.speed, m1.torque, m1.temperature) == (1, MotorState.GENERATING, -39, 65 - 20000, -1994.5, -37)
    assert (m1.controller_voltage, m1.controller_current) == (23.6, -990.0)
    assert (m2.number, m2.state, m2.speed, m2.controller_voltage) == (2, MotorState.OFF, 66 - 20000, 213.6)
    assert fuel == FuelCell(222.2, 11.1, 32.22, (-39, -38, -37), 295.5, 0x22, 6666, 0x56, 333.6, 0x65, DcDcState.DISCONNECTED)
    assert engine == Engine(EngineState.RUNNING, 203, 1.02)
    assert location == Location(LocationStatus.INVALID_FIX, 3.255555, 1.233355)
    assert extremes == Extremes(0x11, 0x15, 0.123, 0x07, 0x09, 0.008, 0x32, 0x12, 0x42 - 40, 0x11, 0x32, 0x06 - 40)
    assert isinstance(alarm, Alarm) and alarm.max_level == 0x11 and alarm.general_flags == 5533
    assert (alarm.ress_faults, alarm.motor_faults, alarm.engine_faults, alarm.other_faults) == (
        (1000, 1001, 1002), (2000, 2001, 2002), (3000, 3001, 3002), (4000, 4001, 4002))
    assert isinstance(cells, CellVoltages) and not isinstance(cells.subsystems, Special)
    s1, s3 = cells.subsystems
    assert (s1.number, s1.voltage, s1.current, s1.cell_count, s1.start_index, s1.cell_voltages) == (1, 0.2, -987.7, 55, 111, (0.111, 0.222, 0.333))
    assert (s3.number, s3.voltage, s3.current, s3.cell_count, s3.start_index, s3.cell_voltages) == (3, 0.5, -876.6, 66, 222, (0.444, 0.555, 0.666))
    assert isinstance(temps, Temperatures) and not isinstance(temps.subsystems, Special)
    assert [(t.number, t.temperatures) for t in temps.subsystems] == [(1, (-39, -38, -37, -36)), (2, (-35, -34, -33, -32))]


# ------------------------------------------------------------------ 2025 realtime


def test_r26_vehicle_2025_invalid_with_rsa_signature() -> None:
    body = frame("R26").body
    assert isinstance(body, RealtimeReport)
    (v,) = body.blocks
    assert isinstance(v, VehicleData2025)
    assert v.insulation_resistance is INV and v.total_current is INV  # 2025 defines the sentinel
    assert (v.gear.invalid, v.gear.drive_force, v.gear.brake_force, v.gear.gear) == (True, True, True, GearPosition.PARK)
    assert body.signature is not None
    assert body.signature.sig_type is SignatureType.RSA and len(body.signature.r) == 256 and body.signature.s == b""


def test_r27_alarm_2025_with_levels() -> None:
    body = frame("R27").body
    assert isinstance(body, RealtimeReport) and body.signature is not None
    assert body.signature.sig_type is SignatureType.RSA
    (alarm,) = body.blocks
    assert alarm == Alarm2025(
        AlarmLevel.LEVEL_3, GeneralAlarmFlag.TEMPERATURE_DIFFERENCE | GeneralAlarmFlag.BATTERY_HIGH_TEMPERATURE,
        (), (), (), (0x00010003, 0x00080002, 0x00080003, 0x000C0004, 0x000D0001, 0x00060920, 0x000A000B),
        (FlagLevel(0, AlarmLevel.LEVEL_3), FlagLevel(1, AlarmLevel.LEVEL_3)),
    )


# ------------------------------------------------------------------ §D data units (JTNE)

T_D = bj(2019, 1, 22, 23, 55, 56)
UPGRADE_TEXT = (
    "13011617373801687474703A2F2F7777772E62616964752E636F6D3A383338333B544B3B544B557365723B544B5077643B62642E636F6D3B"
    "383338333B4D616E7566616374757265724E616D653B322E303B312E303B3130"
)
DATA_UNITS = [
    ("130116173738020102", 0x80, 0xFE, ParameterQuery(T_D, (ParameterId.LOCAL_STORAGE_PERIOD, ParameterId.REPORT_PERIOD))),
    ("1301161737380101000A", 0x81, 0xFE, ParameterSet(T_D, ((ParameterId.LOCAL_STORAGE_PERIOD, 10),))),
    ("1301161737380101000A", 0x80, 0x01, ParameterQueryReply(T_D, ((ParameterId.LOCAL_STORAGE_PERIOD, 10),))),
    ("13011617373801020014", 0x81, 0xFE, ParameterSet(T_D, ((ParameterId.REPORT_PERIOD, 20),))),
    ("130116173738030408050102030405060708060028", 0x81, 0xFE, ParameterSet(T_D, (
        (ParameterId.PLATFORM_DOMAIN_LENGTH, 8), (ParameterId.PLATFORM_DOMAIN, "\x01\x02\x03\x04\x05\x06\x07\x08"),
        (ParameterId.PLATFORM_PORT, 40)))),
    ("130116173738030D080E01020304050607080F0028", 0x81, 0xFE, ParameterSet(T_D, (
        (ParameterId.PUBLIC_DOMAIN_LENGTH, 8), (ParameterId.PUBLIC_DOMAIN, "\x01\x02\x03\x04\x05\x06\x07\x08"),
        (ParameterId.PUBLIC_PORT, 40)))),
    ("13011617373802", 0x82, 0xFE, TerminalControl(T_D, ControlId.SHUTDOWN, b"")),
    ("1301161737380601", 0x82, 0xFE, TerminalControl(T_D, ControlId.WARNING, WarningParams(AlarmLevel.LEVEL_1))),
    (UPGRADE_TEXT, 0x82, 0xFE, TerminalControl(T_D, ControlId.REMOTE_UPGRADE, RemoteUpgradeText(
        "http://www.baidu.com:8383", "TK", "TKUser", "TKPwd", "bd.com", "8383", "ManufacturerName", "2.0", "1.0", "10"))),
]


def _normalise(expected: object) -> object:
    """Let the table above write parameter items as (id, value) pairs."""
    from agent.protocol.model import Parameter

    if isinstance(expected, (ParameterSet, ParameterQueryReply)):
        items = tuple(Parameter(i, v) for i, v in expected.items)  # type: ignore[misc]
        return type(expected)(expected.time, items)
    return expected


@pytest.mark.parametrize(("hexdata", "command", "response", "expected"), DATA_UNITS)
def test_jtne_data_units(hexdata: str, command: int, response: int, expected: object) -> None:
    data = bytes.fromhex(hexdata)
    body = decode_body(Edition.E2016, command, response, data)
    assert body == _normalise(expected)
    assert encode_body(Edition.E2016, command, response, body) == data


STRICT_OK = [n for n in WHOLE_FRAMES if n not in ("R2", "R3", "R8", "E3")]


@pytest.mark.parametrize("name", STRICT_OK)
def test_in_range_vectors_pass_the_strict_encoder(name: str) -> None:
    from agent.protocol.codec import CodecOptions

    raw = bytes.fromhex(FRAMES[name])
    assert encode_frame(decode_frame(raw), options=CodecOptions(strict=True)) == raw


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("R2", "realtime.vehicle.insulation_resistance"),  # 65535 kΩ > 60000
        ("R3", "realtime.motors.motors[1].controller_voltage"),  # raw 0xFEFE > 60000
        ("R8", "realtime.cell_voltages.start_index"),  # 0xFFFF > 65531
        ("E3", "realtime.motors.motors[0].controller_current"),  # raw 31203 > 20000
    ],
)
def test_out_of_range_vectors_fail_the_strict_encoder(name: str, field: str) -> None:
    from agent.protocol.codec import CodecOptions
    from agent.protocol.errors import ProtocolError

    with pytest.raises(ProtocolError) as exc:
        encode_frame(frame(name), options=CodecOptions(strict=True))
    assert exc.value.field == field
