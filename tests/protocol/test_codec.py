"""Codec behaviour: options, contested points, errors (offset + field), encryption and signature hooks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from agent.protocol import wire
from agent.protocol.codec import (
    DEFAULT,
    CodecOptions,
    ResponseForm,
    VehicleTail,
    decode_body,
    decode_frame,
    decode_info_blocks,
    decode_raw,
    encode_body,
    encode_frame,
    encode_info_blocks,
    make_response,
    signed_range,
    split_cell_records,
)
from agent.protocol.errors import ProtocolError
from agent.protocol.model import (
    Activation,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    Command,
    ControlId,
    CustomBlock,
    DcDcState,
    DriveMotor2025,
    DriveMotors2025,
    Edition,
    Empty,
    Encryption,
    FlagLevel,
    Frame,
    Gear,
    GearPosition,
    GeneralAlarmFlag,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    Opaque,
    Parameter,
    ParameterId,
    ParameterQueryReply,
    ParameterSet,
    RealtimeReport,
    RemoteUpgrade,
    RemoteUpgradeText,
    ResponseFlag,
    RunningMode,
    Signature,
    SignatureType,
    Special,
    SubsystemVoltages,
    SupercapacitorExtremes,
    TerminalControl,
    TimeOnly,
    VehicleData,
    VehicleData2025,
    VehicleLogin,
    VehicleLogout,
    VehicleState,
    WarningParams,
)

E16, E25 = Edition.E2016, Edition.E2025
BJ = timezone(timedelta(hours=8))
T = datetime(2024, 3, 1, 2, 3, 4, tzinfo=UTC)  # 10:03:04 in Beijing
T_WIRE = bytes([24, 3, 1, 10, 3, 4])
VIN = "LTEST000000000001"


def vehicle_2016(**changes: object) -> VehicleData:
    base = VehicleData(
        VehicleState.STARTED,
        ChargingState.NOT_CHARGING,
        RunningMode.ELECTRIC,
        60.5,
        1234.5,
        650.0,
        -12.3,
        80,
        DcDcState.WORKING,
        Gear(GearPosition.DRIVE, True, False),
        5000,
        15,
        0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def vehicle_2025(**changes: object) -> VehicleData2025:
    base = VehicleData2025(
        VehicleState.STARTED,
        ChargingState.NOT_CHARGING,
        RunningMode.ELECTRIC,
        60.5,
        1234.5,
        650.0,
        -12.3,
        80,
        DcDcState.WORKING,
        Gear(GearPosition.DRIVE, True, False),
        5000,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def realtime_frame(edition: Edition, *blocks: object, signature: Signature | None = None) -> Frame:
    return Frame(
        edition,
        Command.REALTIME,
        ResponseFlag.COMMAND,
        VIN,
        Encryption.NONE,
        RealtimeReport(T, tuple(blocks), signature),
    )  # type: ignore[arg-type]


def frame_with_unit(edition: int, command: int, unit: bytes, response: int = 0xFE) -> bytes:
    return wire.build_frame(edition, command, response, VIN.encode(), 1, unit)


# --------------------------------------------------------------------------- times and strings


def test_time_is_beijing_on_the_wire_and_utc_in_the_model() -> None:
    raw = encode_frame(
        Frame(E16, Command.VEHICLE_LOGOUT, ResponseFlag.COMMAND, VIN, Encryption.NONE, VehicleLogout(T, 7))
    )
    assert raw[24:30] == T_WIRE
    body = decode_frame(raw).body
    assert isinstance(body, VehicleLogout) and body.time == T and body.time.tzinfo is UTC
    # any aware datetime is accepted and converted
    other = T.astimezone(timezone(timedelta(hours=-5)))
    assert encode_body(E16, 0x04, 0xFE, VehicleLogout(other, 7))[:6] == T_WIRE


def test_naive_time_and_bad_year_are_rejected_with_field() -> None:
    with pytest.raises(ProtocolError) as exc:
        encode_body(E16, 0x04, 0xFE, VehicleLogout(datetime(2024, 1, 1), 1))
    assert exc.value.field == "logout.time"
    with pytest.raises(ProtocolError, match="year"):
        encode_body(E16, 0x04, 0xFE, VehicleLogout(datetime(2100, 6, 1, tzinfo=UTC), 1))
    with pytest.raises(ProtocolError):
        encode_body(
            E16, 0x04, 0xFE, VehicleLogout(T.replace(microsecond=5), 1), options=CodecOptions(strict=True)
        )


def test_bad_month_names_offset_and_field() -> None:
    unit = bytes([24, 13, 1, 0, 0, 0])
    with pytest.raises(ProtocolError) as exc:
        decode_frame(frame_with_unit(2016, 0x02, unit))
    assert exc.value.offset == 25 and exc.value.field == "realtime.time.month"


def test_vin_padding_and_length() -> None:
    raw = encode_frame(
        Frame(E16, Command.HEARTBEAT, ResponseFlag.COMMAND, "123456789", Encryption.NONE, Empty())
    )
    assert raw[4:21] == b"123456789" + bytes(8)
    assert decode_frame(raw).vin == "123456789"
    with pytest.raises(ProtocolError) as exc:
        encode_frame(Frame(E16, Command.HEARTBEAT, ResponseFlag.COMMAND, "X" * 18, Encryption.NONE, Empty()))
    assert exc.value.field == "vin"


# --------------------------------------------------------------------------- info blocks


def test_unknown_info_types_have_no_length() -> None:
    for edition, t in ((2016, 0x0A), (2016, 0x30), (2016, 0xFF), (2025, 0x09), (2025, 0x33), (2025, 0x7F)):
        unit = T_WIRE + bytes([0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0]) if edition == 2016 else T_WIRE
        unit += bytes([t, 1, 2, 3])
        with pytest.raises(ProtocolError) as exc:
            decode_frame(frame_with_unit(edition, 0x02, unit))
        assert exc.value.field == "realtime.info_type"
        assert exc.value.offset == 24 + unit.index(bytes([t, 1, 2, 3]))
        assert f"0x{t:02X}" in str(exc.value)


def test_truncated_block_names_offset() -> None:
    unit = T_WIRE + b"\x01" + bytes(10)  # vehicle block needs 20 bytes
    with pytest.raises(ProtocolError) as exc:
        decode_frame(frame_with_unit(2016, 0x02, unit))
    assert exc.value.offset == 31 and exc.value.field == "realtime.vehicle"


def test_vehicle_tail_pedals_or_reserved() -> None:
    tail = bytes.fromhex("1234")
    block = encode_info_blocks(E16, [vehicle_2016(accelerator_pedal=0x12, brake_pedal=0x34)])
    assert block.endswith(tail)
    (pedals,), _ = decode_info_blocks(E16, block)
    assert isinstance(pedals, VehicleData) and (
        pedals.accelerator_pedal,
        pedals.brake_pedal,
        pedals.reserved,
    ) == (0x12, 0x34, None)
    options = CodecOptions(vehicle_tail=VehicleTail.RESERVED)
    (reserved,), _ = decode_info_blocks(E16, block, options=options)
    assert isinstance(reserved, VehicleData)
    assert (reserved.accelerator_pedal, reserved.brake_pedal, reserved.reserved) == (None, None, 0x1234)
    assert encode_info_blocks(E16, [reserved]) == block  # the encoder follows the value
    assert encode_info_blocks(E16, [vehicle_2016(accelerator_pedal=None, brake_pedal=None)]).endswith(
        b"\x00\x00"
    )


def test_sentinels_are_width_specific_and_encode_back() -> None:
    v = vehicle_2016(speed=Special.ABNORMAL, mileage=Special.INVALID, soc=Special.ABNORMAL)
    data = encode_info_blocks(E16, [v])
    assert data[4:6] == b"\xff\xfe" and data[6:10] == b"\xff\xff\xff\xff" and data[14] == 0xFE
    assert decode_info_blocks(E16, data)[0] == (v,)
    with pytest.raises(ProtocolError) as exc:  # 2016 insulation has no sentinel
        encode_info_blocks(E16, [vehicle_2016(insulation_resistance=Special.INVALID)])
    assert exc.value.field == "realtime.vehicle.insulation_resistance"
    v25 = vehicle_2025(insulation_resistance=Special.INVALID)
    assert decode_info_blocks(E25, encode_info_blocks(E25, [v25]))[0] == (v25,)


def test_gear_bits_and_reserved_bits() -> None:
    for raw in range(256):
        for edition, make in ((E16, vehicle_2016), (E25, vehicle_2025)):
            block = encode_info_blocks(edition, [make()])
            patched = block[:16] + bytes([raw]) + block[17:]
            (v,), _ = decode_info_blocks(edition, patched)
            assert encode_info_blocks(edition, [v]) == patched
            gear = v.gear  # type: ignore[attr-defined]
            assert int(gear.gear) == raw & 0x0F
            assert gear.drive_force == bool(raw & 0x20) and gear.brake_force == bool(raw & 0x10)
            assert gear.invalid == (bool(raw & 0x80) if edition is E25 else False)


def test_location_signs_follow_hemisphere_bits() -> None:
    loc = Location(LocationStatus(0), -120.5, -30.25)
    data = encode_info_blocks(E16, [loc])
    assert data[1] == LocationStatus.WEST | LocationStatus.SOUTH
    (back,), _ = decode_info_blocks(E16, data)
    assert back == Location(LocationStatus.WEST | LocationStatus.SOUTH, -120.5, -30.25)
    loc25 = Location2025(LocationStatus.INVALID_FIX, 7, 116.397128, 39.916527)  # undefined coordinate system
    assert decode_info_blocks(E25, encode_info_blocks(E25, [loc25]))[0] == (loc25,)


def test_alarm_2025_sentinel_counts_carry_no_list_and_unknown_flags_survive() -> None:
    alarm = Alarm2025(
        AlarmLevel.LEVEL_4,
        GeneralAlarmFlag.THERMAL_EVENT | GeneralAlarmFlag(1 << 30),
        Special.INVALID,
        (1,),
        Special.ABNORMAL,
        (),
        (FlagLevel(23, AlarmLevel.LEVEL_4),),
    )
    data = encode_info_blocks(E25, [alarm])
    assert data == bytes.fromhex("060440800000FF0100000001FE00011704")
    (back,), _ = decode_info_blocks(E25, data)
    assert back == alarm
    assert isinstance(back, Alarm2025) and back.general_flags & (1 << 30)


def test_2016_cells_split_into_records_of_200() -> None:
    cells = tuple((3000 + i) / 1000 for i in range(450))
    block = CellVoltages((SubsystemVoltages(1, 650.0, 10.0, 450, 1, cells),))
    data = encode_info_blocks(E16, [block])
    (back,), _ = decode_info_blocks(E16, data)
    assert isinstance(back, CellVoltages) and not isinstance(back.subsystems, Special)
    assert [(r.number, r.start_index, len(r.cell_voltages)) for r in back.subsystems] == [
        (1, 1, 200),
        (1, 201, 200),
        (1, 401, 50),
    ]
    assert sum((r.cell_voltages for r in back.subsystems), ()) == cells
    assert back == split_cell_records(block)
    assert encode_info_blocks(E16, [back]) == data
    # a smaller limit, or none (then more than 255 cells cannot be written)
    small = encode_info_blocks(E16, [block], options=CodecOptions(max_cells_per_record=100))
    (five,), _ = decode_info_blocks(E16, small)
    assert len(five.subsystems) == 5  # type: ignore[union-attr, arg-type]
    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [block], options=CodecOptions(max_cells_per_record=0))


def test_2025_motors_dword_torque_and_sentinel_count() -> None:
    motors = DriveMotors2025((DriveMotor2025(1, MotorState.READY, 30, -1500, -19999.9, 45),))
    data = encode_info_blocks(E25, [motors])
    assert data == bytes.fromhex("020101044677240000000155")
    assert decode_info_blocks(E25, data)[0] == (motors,)
    assert decode_info_blocks(E25, b"\x02\xff")[0] == (DriveMotors2025(Special.INVALID),)


def test_supercapacitor_extremes_is_18_bytes() -> None:
    ext = SupercapacitorExtremes(1, 300, 2.7, 1, 2, 2.5, 1, 10, 35, 1, 11, 20)
    data = encode_info_blocks(E25, [ext])
    assert len(data) == 1 + 18
    assert decode_info_blocks(E25, data)[0] == (ext,)


def test_custom_block_passes_through_and_blocks_keep_wire_order() -> None:
    blocks = (CustomBlock(0xA0, b"\x01\x02"), vehicle_2016(), CustomBlock(0x80, b""))
    data = encode_info_blocks(E16, blocks)
    assert decode_info_blocks(E16, data)[0] == blocks


def test_edition_foreign_blocks_are_rejected() -> None:
    with pytest.raises(ProtocolError, match="2016"):
        encode_frame(realtime_frame(E16, vehicle_2025()))
    with pytest.raises(ProtocolError, match="2025"):
        encode_frame(realtime_frame(E25, vehicle_2016()))


def test_out_of_range_values_decode_and_strict_encoding_rejects_them() -> None:
    fast = vehicle_2016(speed=300.0)  # 2016 range is 0..220 km/h
    assert decode_info_blocks(E16, encode_info_blocks(E16, [fast]))[0] == (fast,)
    strict = CodecOptions(strict=True)
    with pytest.raises(ProtocolError) as exc:
        encode_info_blocks(E16, [fast], options=strict)
    assert exc.value.field == "realtime.vehicle.speed"
    with pytest.raises(ProtocolError) as exc:
        encode_info_blocks(E16, [vehicle_2016(running_mode=7)], options=strict)
    assert exc.value.field == "realtime.vehicle.running_mode"
    encode_info_blocks(E16, [vehicle_2016()], options=strict)
    with pytest.raises(ProtocolError) as exc:  # does not fit the WORD at all
        encode_info_blocks(E16, [vehicle_2016(total_voltage=7000.0)])
    assert exc.value.field == "realtime.vehicle.total_voltage"
    with pytest.raises(ProtocolError) as exc:
        encode_info_blocks(E16, [vehicle_2016(soc="full")])
    assert exc.value.field == "realtime.vehicle.soc"


# --------------------------------------------------------------------------- data units


def test_response_forms_decode() -> None:
    for unit, expected in ((b"", Empty()), (T_WIRE, TimeOnly(T))):
        for command in (0x01, 0x02, 0x04, 0x07, 0x08, 0x80, 0x81, 0x82):
            assert decode_body(E16, command, 0x01, unit) == expected
    echo = encode_body(E16, 0x04, 0xFE, VehicleLogout(T, 3))
    assert decode_body(E16, 0x04, 0x01, echo) == VehicleLogout(T, 3)
    with pytest.raises(ProtocolError):
        decode_body(E16, 0x07, 0xFE, b"\x00\x01\x02")


def test_make_response_per_edition_and_option() -> None:
    request = Frame(
        E16, Command.VEHICLE_LOGOUT, ResponseFlag.COMMAND, VIN, Encryption.NONE, VehicleLogout(T, 3)
    )
    later = T + timedelta(seconds=5)
    echo = make_response(request, ResponseFlag.SUCCESS, time=later)
    assert echo.body == VehicleLogout(later, 3) and echo.response is ResponseFlag.SUCCESS
    e25 = make_response(dataclasses.replace(request, edition=E25))
    assert e25.body == TimeOnly(T)
    empty = make_response(request, options=CodecOptions(response_form=ResponseForm.EMPTY))
    assert empty.body == Empty()
    heartbeat = Frame(E16, Command.HEARTBEAT, ResponseFlag.COMMAND, VIN, Encryption.NONE, Empty())
    assert make_response(heartbeat, time=later).body == TimeOnly(later)
    assert make_response(heartbeat).body == Empty()


def test_trailing_bytes_are_an_error() -> None:
    unit = encode_body(E16, 0x04, 0xFE, VehicleLogout(T, 3)) + b"\x00"
    with pytest.raises(ProtocolError) as exc:
        decode_frame(frame_with_unit(2016, 0x04, unit))
    assert exc.value.offset == 32


def test_login_2016_codes_must_match_counts() -> None:
    with pytest.raises(ProtocolError) as exc:
        encode_body(E16, 0x01, 0xFE, VehicleLogin(T, 1, "8986", 2, 3, ("abc",)))
    assert exc.value.field == "login.codes"
    body = VehicleLogin(T, 1, "8986", 3, 0, ())  # m = 0: codes not sent
    assert decode_body(E16, 0x01, 0xFE, encode_body(E16, 0x01, 0xFE, body)) == body


def test_parameter_widths_per_edition() -> None:
    items = ParameterSet(
        T, (Parameter(ParameterId.REPORT_PERIOD, 10), Parameter(ParameterId.ALARM_REPORT_PERIOD, 1))
    )
    assert encode_body(E16, 0x81, 0xFE, items)[6:] == bytes.fromhex("0202000A030001")
    assert encode_body(E25, 0x81, 0xFE, items)[6:] == bytes.fromhex("02020A0301")
    assert decode_body(E25, 0x81, 0xFE, T_WIRE + bytes.fromhex("02020A0301")) == items


def test_parameter_domain_needs_its_length_first() -> None:
    with pytest.raises(ProtocolError) as exc:
        decode_body(E16, 0x81, 0xFE, T_WIRE + bytes.fromhex("010541"))
    assert exc.value.offset == 24 + 7 and "0x04" in str(exc.value)
    bad = ParameterSet(
        T, (Parameter(ParameterId.PLATFORM_DOMAIN_LENGTH, 3), Parameter(ParameterId.PLATFORM_DOMAIN, "ab"))
    )
    with pytest.raises(ProtocolError):
        encode_body(E16, 0x81, 0xFE, bad)
    good = ParameterSet(
        T,
        (
            Parameter(ParameterId.PLATFORM_DOMAIN_LENGTH, 8),
            Parameter(ParameterId.PLATFORM_DOMAIN, "tbox.org"),
            Parameter(ParameterId.HARDWARE_VERSION, "HW1.0"),
        ),
    )
    reply = ParameterQueryReply(T, good.items)
    assert decode_body(E16, 0x80, 0x01, encode_body(E16, 0x80, 0x01, reply)) == reply
    assert decode_body(E16, 0x81, 0xFE, encode_body(E16, 0x81, 0xFE, good)) == good


def test_user_defined_parameter_ids_need_a_size() -> None:
    unit = T_WIRE + bytes.fromhex("0201000A80ABCD")
    with pytest.raises(ProtocolError) as exc:
        decode_body(E16, 0x81, 0xFE, unit)
    assert exc.value.offset == 24 + 10 and "0x80" in str(exc.value)
    options = CodecOptions(parameter_sizes=((0x80, 2),))
    body = decode_body(E16, 0x81, 0xFE, unit, options=options)
    assert body == ParameterSet(
        T, (Parameter(ParameterId.LOCAL_STORAGE_PERIOD, 10), Parameter(0x80, b"\xab\xcd"))
    )
    assert encode_body(E16, 0x81, 0xFE, body, options=options) == unit


def test_binary_upgrade_with_semicolons_inside_binary_fields() -> None:
    params = RemoteUpgrade(
        "cmnet",
        "",
        "",
        bytes([0, 0, 10, 59, 59, 59]),
        0x3B3B,
        "ABCD",
        "HW001",
        "FW002",
        "ftp://x/y;z",
        0x3B3B,
    )
    body = TerminalControl(T, ControlId.REMOTE_UPGRADE, params)
    unit = encode_body(E16, 0x82, 0xFE, body)
    assert decode_body(E16, 0x82, 0xFE, unit) == body


def test_text_upgrade_variant_and_bad_parameters() -> None:
    text = RemoteUpgradeText(
        "http://h/f.bin", "apn", "u", "p", "h.org", "8080", "ABCD", "1.0.0", "2.0.0", "10"
    )
    body = TerminalControl(T, ControlId.REMOTE_UPGRADE, text)
    unit = encode_body(E25, 0x82, 0xFE, body)
    assert unit[7:].startswith(b"http://h/f.bin;apn;")
    assert decode_body(E25, 0x82, 0xFE, unit) == body
    with pytest.raises(ProtocolError):
        decode_body(E16, 0x82, 0xFE, T_WIRE + b"\x01garbage")


def test_warning_levels_per_edition() -> None:
    level4 = T_WIRE + bytes([0x06, 0x04, 0xAA])
    assert decode_body(E25, 0x82, 0xFE, level4) == TerminalControl(
        T, ControlId.WARNING, WarningParams(AlarmLevel.LEVEL_4, b"\xaa")
    )
    old = decode_body(E16, 0x82, 0xFE, level4)
    assert isinstance(old, TerminalControl) and isinstance(old.params, WarningParams)
    assert old.params.level == 4 and not isinstance(old.params.level, AlarmLevel)
    invalid = decode_body(E16, 0x82, 0xFE, T_WIRE + bytes([0x06, 0xFF]))
    assert invalid == TerminalControl(T, ControlId.WARNING, WarningParams(Special.INVALID))
    custom = TerminalControl(T, 0x90, b"\x01\x02")
    assert decode_body(E16, 0x82, 0xFE, encode_body(E16, 0x82, 0xFE, custom)) == custom


# --------------------------------------------------------------------------- encryption and signatures


class XorCipher:
    """A toy cipher standing in for crypto.py's (the codec only needs the protocol)."""

    def __init__(self, encryption: Encryption = Encryption.AES) -> None:
        self._encryption = encryption

    @property
    def encryption(self) -> Encryption:
        return self._encryption

    def encrypt(self, plaintext: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in plaintext) + b"\x00"

    def decrypt(self, ciphertext: bytes) -> bytes:
        if not ciphertext.endswith(b"\x00"):
            raise ValueError("bad padding")
        return bytes(b ^ 0x5A for b in ciphertext[:-1])


def test_encrypted_unit_with_and_without_cipher() -> None:
    frame = Frame(E25, Command.VEHICLE_LOGOUT, ResponseFlag.COMMAND, VIN, Encryption.AES, VehicleLogout(T, 9))
    raw = encode_frame(frame, cipher=XorCipher())
    assert raw[21] == 0x03 and raw[24:30] != T_WIRE
    assert decode_frame(raw, cipher=XorCipher()) == frame
    opaque = decode_frame(raw)
    assert isinstance(opaque.body, Opaque) and encode_frame(opaque) == raw
    with pytest.raises(ProtocolError):
        decode_frame(raw, cipher=XorCipher(Encryption.SM4))
    with pytest.raises(ProtocolError):
        encode_frame(frame)  # encrypted frame, no cipher, not opaque
    broken = wire.build_frame(2025, 0x04, 0xFE, VIN.encode(), 0x03, b"\x01\x02")
    with pytest.raises(ProtocolError, match="decryption"):
        decode_frame(broken, cipher=XorCipher())
    raw_frame = wire.parse_frame(raw)
    assert decode_raw(raw_frame, cipher=XorCipher()) == frame


class FakeSigner:
    def __init__(self) -> None:
        self.signed: list[bytes] = []

    def sign(self, data: bytes) -> Signature:
        self.signed.append(data)
        return Signature(SignatureType.SM2, b"R" * 32, b"S" * 32)


def test_signer_signs_unsigned_2025_reports() -> None:
    frame = realtime_frame(E25, vehicle_2025())
    signer = FakeSigner()
    raw = encode_frame(frame, signer=signer)
    body = frame.body
    assert isinstance(body, RealtimeReport)
    signed = signed_range(E25, body)
    assert signer.signed == [signed]
    assert raw[24 : 24 + len(signed)] == signed and raw[24 + len(signed)] == 0xFF
    decoded = decode_frame(raw)
    assert isinstance(decoded.body, RealtimeReport)
    assert decoded.body.signature == Signature(SignatureType.SM2, b"R" * 32, b"S" * 32)
    assert signed_range(E25, decoded.body) == signed
    # a body that already has a signature is written as it is
    assert encode_frame(decoded, signer=FakeSigner()) == raw
    # 2016 has no signature block
    with pytest.raises(ProtocolError):
        encode_frame(realtime_frame(E16, vehicle_2016(), signature=Signature(SignatureType.RSA, b"x")))
    assert encode_frame(realtime_frame(E16, vehicle_2016()), signer=FakeSigner())[-2] != 0xFF or True


def test_signature_must_be_last() -> None:
    unit = T_WIRE + b"\xff\x01\x00\x01A\x00\x00" + b"\x01"
    with pytest.raises(ProtocolError) as exc:
        decode_frame(frame_with_unit(2025, 0x02, unit))
    assert exc.value.field == "realtime.signature"


def test_activation_signed_range_is_time_through_vin() -> None:
    body = Activation(
        T, "CHIP01", b"\x04" + bytes(64), VIN, Signature(SignatureType.SM2, b"r" * 32, b"s" * 32)
    )
    unit = encode_body(E25, 0x09, 0xFE, body)
    rng = signed_range(E25, body)
    assert unit.startswith(rng) and rng.endswith(VIN.encode()) and rng[6:22] == b"CHIP01".ljust(16)
    assert decode_body(E25, 0x09, 0xFE, unit) == body


def test_real_crypto_round_trip() -> None:
    crypto = pytest.importorskip("agent.protocol.crypto")
    private, public = crypto.generate_keypair(SignatureType.SM2)
    signer = crypto.signer_for(SignatureType.SM2, private)
    verifier = crypto.verifier_for(SignatureType.SM2, public)
    frame = dataclasses.replace(realtime_frame(E25, vehicle_2025()), encryption=Encryption.SM4)
    cipher = crypto.cipher_for(Encryption.SM4, key=bytes(range(16)))
    raw = encode_frame(frame, cipher=cipher, signer=signer)
    decoded = decode_frame(raw, cipher=cipher)
    assert isinstance(decoded.body, RealtimeReport) and decoded.body.signature is not None
    assert verifier.verify(signed_range(E25, decoded.body), decoded.body.signature)
    assert dataclasses.replace(decoded.body, signature=None) == frame.body


def test_default_options_object() -> None:
    assert CodecOptions() == DEFAULT
    assert DEFAULT.max_cells_per_record == 200 and DEFAULT.vehicle_tail is VehicleTail.PEDALS


def test_signed_range_may_include_the_marker() -> None:
    frame = realtime_frame(E25, vehicle_2025())
    body = frame.body
    assert isinstance(body, RealtimeReport)
    options = CodecOptions(sign_includes_marker=True)
    signer = FakeSigner()
    raw = encode_frame(frame, signer=signer, options=options)
    assert signer.signed == [signed_range(E25, body) + b"\xff"] == [signed_range(E25, body, options=options)]
    assert decode_frame(raw, options=options).body == dataclasses.replace(
        body, signature=Signature(SignatureType.SM2, b"R" * 32, b"S" * 32)
    )


def test_decode_raw_checks_the_bcc_of_framer_output() -> None:
    good = encode_frame(Frame(E16, Command.HEARTBEAT, ResponseFlag.COMMAND, VIN, Encryption.NONE, Empty()))
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    (raw,) = wire.Framer().feed(bad)
    assert not raw.bcc_ok
    with pytest.raises(ProtocolError) as exc:
        decode_raw(raw)
    assert exc.value.field == "bcc" and exc.value.offset == len(bad) - 1
    assert decode_raw(raw, options=CodecOptions(check_bcc=False)).body == Empty()


def test_counts_without_sentinels_reject_special() -> None:
    from agent.protocol.model import DriveMotors, FuelCellStacks

    with pytest.raises(ProtocolError):
        encode_info_blocks(E16, [DriveMotors(Special.INVALID)])
    with pytest.raises(ProtocolError):
        encode_info_blocks(E25, [FuelCellStacks(Special.INVALID)])


def test_info_type_ids_per_edition() -> None:
    from agent.protocol.codec import info_type_ids
    from agent.protocol.model import Alarm, Temperatures

    assert info_type_ids(E16)[Alarm] == 0x07 and info_type_ids(E25)[Alarm2025] == 0x06
    assert info_type_ids(E16)[Temperatures] == 0x09 and info_type_ids(E25)[Temperatures] == 0x08
    assert info_type_ids(E25)[SupercapacitorExtremes] == 0x32
