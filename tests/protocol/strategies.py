"""Hypothesis strategies for every GB/T 32960 data unit and info block of both editions.

Model values are built from raw wire integers (the codec's conversions restated independently here),
so every generated value is exactly representable: ``decode(encode(x)) == x`` must hold for all of them.
Sentinels, codes the standard leaves undefined, empty lists, sentinel counts, 2 motors, 192 cells,
user-defined blocks and signatures are all in the mix.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import Any, TypeVar

from hypothesis import strategies as st

from agent.protocol.model import (
    Activation,
    ActivationInfo,
    ActivationResult,
    ActivationStatus,
    Alarm,
    Alarm2025,
    AlarmLevel,
    CellVoltages,
    ChargingState,
    ControlId,
    CoordinateSystem,
    CustomBlock,
    DcDcState,
    DriveMotor,
    DriveMotor2025,
    DriveMotors,
    DriveMotors2025,
    Edition,
    Empty,
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
    KeyExchange,
    Location,
    Location2025,
    LocationStatus,
    MotorState,
    Opaque,
    PackVoltages,
    ParallelUnitVoltages,
    Parameter,
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
    Signature,
    SignatureType,
    Special,
    SubsystemTemperatures,
    SubsystemVoltages,
    Supercapacitor,
    SupercapacitorExtremes,
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

T = TypeVar("T")
BJ = timezone(timedelta(hours=8))
ABN_RAW = {1: 0xFE, 2: 0xFFFE, 4: 0xFFFFFFFE}
SPECIAL = st.sampled_from([Special.ABNORMAL, Special.INVALID])
E16, E25 = Edition.E2016, Edition.E2025


def _raw(width: int, sentinel: bool) -> st.SearchStrategy[int]:
    top = ABN_RAW[width] - 1 if sentinel else ABN_RAW[width] + 1
    return st.one_of(st.integers(0, min(top, 300)), st.integers(0, top))


def value(width: int, conv: Callable[[int], Any], sentinel: bool = True) -> st.SearchStrategy[Any]:
    """A field value from its raw wire integer (plus the sentinels where the field has them)."""
    plain = _raw(width, sentinel).map(conv)
    return st.one_of(plain, SPECIAL) if sentinel else plain


def num(width: int, sentinel: bool = True) -> st.SearchStrategy[Any]:
    return value(width, lambda r: r, sentinel)


def offset(width: int, off: int, sentinel: bool = True) -> st.SearchStrategy[Any]:
    return value(width, lambda r: r - off, sentinel)


def scaled(width: int, div: int, off: int = 0, sentinel: bool = True) -> st.SearchStrategy[Any]:
    return value(width, lambda r: (r - off) / div, sentinel)


def code(enum: type[IntEnum], sentinel: bool = True, limit: int | None = None) -> st.SearchStrategy[Any]:
    """Enum member for defined codes, plain int for the others (J3 has state 4, charge 5, mode 7)."""
    members = {int(m): m for m in enum if limit is None or m <= limit}
    return value(1, lambda r: members.get(r, r), sentinel)


def special_or(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | Special]:
    """A list, or the sentinel a count field may carry instead of it."""
    return st.one_of(strategy, SPECIAL)


def times() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes whose Beijing wall time lies in 2000..2099, whole seconds."""
    return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)).map(
        lambda d: d.replace(microsecond=0, tzinfo=BJ).astimezone(UTC)
    )


def text(max_size: int, exclude: str = "\x00", min_size: int = 0) -> st.SearchStrategy[str]:
    """Single-byte text; ``exclude`` keeps padding characters out (they are stripped on decode)."""
    alphabet = st.characters(min_codepoint=0, max_codepoint=255, exclude_characters=exclude)
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def gear(edition: Edition) -> st.SearchStrategy[Gear]:
    def make(raw: int) -> Gear:
        if edition is E25:
            return Gear(
                GearPosition(raw & 15), bool(raw & 0x20), bool(raw & 0x10), bool(raw & 0x80), raw & 0x40
            )
        return Gear(GearPosition(raw & 15), bool(raw & 0x20), bool(raw & 0x10), False, raw & 0xC0)

    return st.integers(0, 255).map(make)


def temperatures_list(max_size: int = 6, sentinel: bool = True) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(offset(1, 40, sentinel), max_size=max_size).map(tuple)


def millivolts(min_size: int = 0, max_size: int = 6) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(scaled(2, 1000), min_size=min_size, max_size=max_size).map(tuple)


def cells_192() -> st.SearchStrategy[tuple[Any, ...]]:
    """192 cell voltages in one draw (raw WORDs from 384 random bytes, sentinels included)."""

    def make(raw: bytes) -> tuple[Any, ...]:
        words = struct.unpack(">192H", raw)
        return tuple(
            w / 1000 if w < 0xFFFE else (Special.ABNORMAL if w == 0xFFFE else Special.INVALID) for w in words
        )

    return st.binary(min_size=384, max_size=384).map(make)


def probes_48() -> st.SearchStrategy[tuple[Any, ...]]:
    """48 probe temperatures in one draw."""

    def make(raw: bytes) -> tuple[Any, ...]:
        return tuple(
            b - 40 if b < 0xFE else (Special.ABNORMAL if b == 0xFE else Special.INVALID) for b in raw
        )

    return st.binary(min_size=48, max_size=48).map(make)


# --------------------------------------------------------------------------- 2016 info blocks


def vehicle_2016() -> st.SearchStrategy[VehicleData]:
    head = (
        code(VehicleState),
        code(ChargingState),
        code(RunningMode),
        scaled(2, 10),
        scaled(4, 10),
        scaled(2, 10),
        scaled(2, 10, 10000),
        num(1),
        code(DcDcState),
        gear(E16),
        num(2, sentinel=False),
    )
    pedals = st.builds(VehicleData, *head, num(1), num(1))
    reserved = st.builds(VehicleData, *head, st.none(), st.none(), st.integers(0, 0xFFFF))
    return st.one_of(pedals, reserved)


def motor_2016() -> st.SearchStrategy[DriveMotor]:
    return st.builds(
        DriveMotor,
        num(1),
        code(MotorState),
        offset(1, 40),
        offset(2, 20000),
        scaled(2, 10, 20000),
        offset(1, 40),
        scaled(2, 10),
        scaled(2, 10, 10000),
    )


def motors_2016() -> st.SearchStrategy[DriveMotors]:
    return st.builds(
        DriveMotors,
        st.one_of(
            st.lists(motor_2016(), max_size=3).map(tuple),
            st.lists(motor_2016(), min_size=2, max_size=2).map(tuple),
        ),
    )


def fuel_cell_2016() -> st.SearchStrategy[FuelCell]:
    return st.builds(
        FuelCell,
        scaled(2, 10),
        scaled(2, 10),
        scaled(2, 100),
        special_or(temperatures_list(sentinel=False)),
        scaled(2, 10, 400),
        num(1),
        num(2),
        num(1),
        scaled(2, 10, sentinel=False),
        num(1),
        code(DcDcState),
    )


def engine_2016() -> st.SearchStrategy[Engine]:
    return st.builds(Engine, code(EngineState), num(2), scaled(2, 100))


def _coordinates(status: int, lon: Any, lat: Any) -> tuple[Any, Any]:
    if not isinstance(lon, Special) and status & 0x04:
        lon = -lon
    if not isinstance(lat, Special) and status & 0x02:
        lat = -lat
    return lon, lat


def location_2016() -> st.SearchStrategy[Location]:
    def make(status: int, lon: Any, lat: Any) -> Location:
        return Location(LocationStatus(status), *_coordinates(status, lon, lat))

    return st.builds(make, st.integers(0, 255), scaled(4, 1000000), scaled(4, 1000000))


def extremes_2016() -> st.SearchStrategy[Extremes]:
    side_v = (num(1), num(1), scaled(2, 1000))
    side_t = (num(1), num(1), offset(1, 40))
    return st.builds(Extremes, *side_v, *side_v, *side_t, *side_t)


def fault_list() -> st.SearchStrategy[Any]:
    return special_or(st.lists(st.integers(0, 0xFFFFFFFF), max_size=4).map(tuple))


def alarm_2016() -> st.SearchStrategy[Alarm]:
    return st.builds(
        Alarm,
        code(AlarmLevel, limit=3),
        st.integers(0, 0xFFFFFFFF).map(GeneralAlarmFlag),
        fault_list(),
        fault_list(),
        fault_list(),
        fault_list(),
    )


def subsystem_voltages() -> st.SearchStrategy[SubsystemVoltages]:
    return st.builds(
        SubsystemVoltages,
        num(1),
        scaled(2, 10),
        scaled(2, 10, 10000),
        num(2),
        st.integers(0, 0xFFFF),
        st.one_of(millivolts(), cells_192()),
    )


def cell_voltages_2016() -> st.SearchStrategy[CellVoltages]:
    return st.builds(CellVoltages, special_or(st.lists(subsystem_voltages(), max_size=2).map(tuple)))


def temperatures() -> st.SearchStrategy[Temperatures]:
    sub = st.builds(SubsystemTemperatures, num(1), special_or(st.one_of(temperatures_list(), probes_48())))
    return st.builds(Temperatures, special_or(st.lists(sub, max_size=3).map(tuple)))


def custom_block() -> st.SearchStrategy[CustomBlock]:
    return st.builds(CustomBlock, st.integers(0x80, 0xFE), st.binary(max_size=24))


BLOCKS_2016: list[Callable[[], st.SearchStrategy[Any]]] = [
    vehicle_2016,
    motors_2016,
    fuel_cell_2016,
    engine_2016,
    location_2016,
    extremes_2016,
    alarm_2016,
    cell_voltages_2016,
    temperatures,
    custom_block,
]


# --------------------------------------------------------------------------- 2025 info blocks


def vehicle_2025() -> st.SearchStrategy[VehicleData2025]:
    return st.builds(
        VehicleData2025,
        code(VehicleState),
        code(ChargingState),
        code(RunningMode),
        scaled(2, 10),
        scaled(4, 10),
        scaled(2, 10),
        scaled(2, 10, 30000),
        num(1),
        code(DcDcState),
        gear(E25),
        num(2),
    )


def motor_2025() -> st.SearchStrategy[DriveMotor2025]:
    return st.builds(
        DriveMotor2025,
        num(1),
        code(MotorState),
        offset(1, 40),
        offset(2, 32000),
        scaled(4, 10, 200000),
        offset(1, 40),
    )


def motors_2025() -> st.SearchStrategy[DriveMotors2025]:
    return st.builds(DriveMotors2025, special_or(st.lists(motor_2025(), max_size=3).map(tuple)))


def fuel_cell_2025() -> st.SearchStrategy[FuelCell2025]:
    return st.builds(
        FuelCell2025,
        offset(2, 40),
        num(1),
        scaled(2, 10000),
        num(1),
        scaled(2, 10),
        num(1),
        code(DcDcState),
        num(1),
        offset(1, 40),
    )


def engine_2025() -> st.SearchStrategy[Engine2025]:
    return st.builds(Engine2025, num(2))


def location_2025() -> st.SearchStrategy[Location2025]:
    def make(status: int, cs: Any, lon: Any, lat: Any) -> Location2025:
        return Location2025(LocationStatus(status), cs, *_coordinates(status, lon, lat))

    return st.builds(
        make, st.integers(0, 255), code(CoordinateSystem), scaled(4, 1000000), scaled(4, 1000000)
    )


def alarm_2025() -> st.SearchStrategy[Alarm2025]:
    level = st.integers(0, 255).map(lambda r: AlarmLevel(r) if r <= 4 else r)
    pairs = special_or(st.lists(st.builds(FlagLevel, st.integers(0, 255), level), max_size=4).map(tuple))
    return st.builds(
        Alarm2025,
        code(AlarmLevel),
        st.integers(0, 0xFFFFFFFF).map(GeneralAlarmFlag),
        fault_list(),
        fault_list(),
        fault_list(),
        fault_list(),
        pairs,
    )


def parallel_unit_voltages() -> st.SearchStrategy[ParallelUnitVoltages]:
    pack = st.builds(
        PackVoltages, num(1), scaled(2, 10), scaled(2, 10, 30000), st.one_of(millivolts(), cells_192())
    )
    return st.builds(ParallelUnitVoltages, special_or(st.lists(pack, max_size=2).map(tuple)))


def fuel_cell_stacks() -> st.SearchStrategy[FuelCellStacks]:
    stack = st.builds(
        FuelCellStack,
        num(1),
        scaled(2, 10),
        scaled(2, 10),
        scaled(2, 10, 1000),
        scaled(2, 10, 1000),
        offset(1, 40),
        special_or(temperatures_list()),
    )
    return st.builds(FuelCellStacks, st.lists(stack, max_size=2).map(tuple))


def supercapacitor() -> st.SearchStrategy[Supercapacitor]:
    return st.builds(
        Supercapacitor,
        num(1),
        scaled(2, 10),
        scaled(2, 10, 30000),
        special_or(millivolts()),
        special_or(temperatures_list()),
    )


def supercapacitor_extremes() -> st.SearchStrategy[SupercapacitorExtremes]:
    side_v = (num(1), num(2), scaled(2, 1000))
    side_t = (num(1), num(2), offset(1, 40))
    return st.builds(SupercapacitorExtremes, *side_v, *side_v, *side_t, *side_t)


BLOCKS_2025: list[Callable[[], st.SearchStrategy[Any]]] = [
    vehicle_2025,
    motors_2025,
    fuel_cell_2025,
    engine_2025,
    location_2025,
    alarm_2025,
    parallel_unit_voltages,
    temperatures,
    fuel_cell_stacks,
    supercapacitor,
    supercapacitor_extremes,
    custom_block,
]
BLOCKS = {E16: BLOCKS_2016, E25: BLOCKS_2025}


def signatures() -> st.SearchStrategy[Signature]:
    sig_type = st.integers(0, 255).map(lambda r: SignatureType(r) if 1 <= r <= 3 else r)
    return st.builds(Signature, sig_type, st.binary(max_size=70), st.binary(max_size=40))


def info_blocks(edition: Edition, max_size: int = 6) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.lists(st.one_of([make() for make in BLOCKS[edition]]), max_size=max_size).map(tuple)


def realtime(edition: Edition) -> st.SearchStrategy[RealtimeReport]:
    signature = st.one_of(st.none(), signatures()) if edition is E25 else st.none()
    return st.builds(RealtimeReport, times(), info_blocks(edition), signature)


# --------------------------------------------------------------------------- session units


def login(edition: Edition) -> st.SearchStrategy[Any]:
    if edition is E25:
        return st.lists(st.integers(0, 3), max_size=3).flatmap(
            lambda packs: st.builds(
                VehicleLogin2025,
                times(),
                st.integers(0, 0xFFFF),
                text(20),
                st.just(tuple(packs)),
                st.lists(text(24), min_size=sum(packs), max_size=sum(packs)).map(tuple),
            )
        )

    def with_codes(nm: tuple[int, int]) -> st.SearchStrategy[VehicleLogin]:
        n, m = nm
        count = n if m else 0
        codes = st.lists(text(m, exclude="", min_size=m), min_size=count, max_size=count).map(tuple)
        return st.builds(
            VehicleLogin, times(), st.integers(0, 0xFFFF), text(20), st.just(n), st.just(m), codes
        )

    return st.tuples(st.integers(0, 4), st.integers(0, 6)).flatmap(with_codes)


def activation() -> st.SearchStrategy[Activation]:
    return st.builds(
        Activation, times(), text(16, exclude=" "), st.binary(max_size=80), text(17), signatures()
    )


def activation_result() -> st.SearchStrategy[ActivationResult]:
    return st.builds(
        ActivationResult,
        st.integers(0, 255).map(lambda r: ActivationStatus(r) if r in (1, 2) else r),
        st.integers(0, 255).map(lambda r: ActivationInfo(r) if r <= 2 else r),
    )


def encryption_code(edition: Edition) -> st.SearchStrategy[Any]:
    defined = {int(e): e for e in Encryption if edition is E25 or e not in (Encryption.SM2, Encryption.SM4)}
    return st.integers(0, 255).map(lambda r: defined.get(r, r))


def key_exchange(edition: Edition) -> st.SearchStrategy[KeyExchange]:
    return st.builds(KeyExchange, encryption_code(edition), st.binary(max_size=64), times(), times())


def platform_login(edition: Edition) -> st.SearchStrategy[PlatformLogin]:
    return st.builds(
        PlatformLogin, times(), st.integers(0, 0xFFFF), text(12), text(20), encryption_code(edition)
    )


def _pid(raw: int) -> Any:
    return ParameterId(raw) if 1 <= raw <= 0x10 else raw


def parameter_items(edition: Edition) -> st.SearchStrategy[tuple[Parameter, ...]]:
    word, byte = num(2), num(1)
    widths: dict[int, st.SearchStrategy[Any]] = {
        0x01: word,
        0x02: byte if edition is E25 else word,
        0x03: byte if edition is E25 else word,
        0x06: word,
        0x09: byte,
        0x0A: word,
        0x0B: word,
        0x0C: byte,
        0x0F: word,
        0x10: byte,
    }
    single = st.sampled_from(sorted(widths)).flatmap(
        lambda pid: widths[pid].map(lambda v: (Parameter(_pid(pid), v),))
    )
    version = st.tuples(st.sampled_from([0x07, 0x08]), text(5, exclude="", min_size=5)).map(
        lambda t: (Parameter(_pid(t[0]), t[1]),)
    )

    def domain(pair: tuple[int, int]) -> st.SearchStrategy[tuple[Parameter, ...]]:
        length_id, domain_id = pair
        return st.integers(0, 12).flatmap(
            lambda n: text(n, exclude="", min_size=n).map(
                lambda d: (Parameter(_pid(length_id), n), Parameter(_pid(domain_id), d))
            )
        )

    domains = st.sampled_from([(0x04, 0x05), (0x0D, 0x0E)]).flatmap(domain)
    lone_length = st.tuples(st.sampled_from([0x04, 0x0D]), st.integers(0, 255)).map(
        lambda t: (Parameter(_pid(t[0]), t[1]),)
    )
    groups = st.lists(st.one_of(single, version, domains, lone_length), max_size=5)
    return groups.map(lambda gs: tuple(item for g in gs for item in g))


def upgrade_binary() -> st.SearchStrategy[RemoteUpgrade]:
    field = text(12, exclude="\x00;")
    apn = field.filter(lambda s: "://" not in s)
    return st.builds(
        RemoteUpgrade,
        apn,
        field,
        field,
        st.binary(min_size=6, max_size=6),
        st.integers(0, 0xFFFF),
        field,
        field,
        field,
        field,
        st.integers(0, 0xFFFF),
    )


def upgrade_text() -> st.SearchStrategy[RemoteUpgradeText]:
    field = text(12, exclude=";")
    url = st.builds(lambda a, b: f"{a}://{b}", text(6, exclude=";"), field)
    return st.builds(RemoteUpgradeText, url, *([field] * 9))


def terminal_control(edition: Edition) -> st.SearchStrategy[TerminalControl]:
    limit = 4 if edition is E25 else 3
    level = st.one_of(st.integers(0, 0xFD).map(lambda r: AlarmLevel(r) if r <= limit else r), SPECIAL)
    params = st.one_of(
        st.tuples(st.just(ControlId.REMOTE_UPGRADE), st.one_of(upgrade_binary(), upgrade_text())),
        st.tuples(st.just(ControlId.WARNING), st.builds(WarningParams, level, st.binary(max_size=8))),
        st.tuples(st.just(ControlId.WARNING), st.just(b"")),
        st.tuples(st.sampled_from([ControlId(i) for i in (2, 3, 4, 5, 7)]), st.just(b"")),
        st.tuples(st.one_of(st.integers(0x08, 0xFF), st.just(0)), st.binary(max_size=12)),
    )
    return st.builds(lambda t, p: TerminalControl(t, p[0], p[1]), times(), params)


# --------------------------------------------------------------------------- frames


def command_bodies(edition: Edition) -> st.SearchStrategy[tuple[int, Any]]:
    """(command, body) for requests (flag 0xFE)."""
    options = [
        st.tuples(st.just(0x01), login(edition)),
        st.tuples(st.sampled_from([0x02, 0x03]), realtime(edition)),
        st.tuples(st.just(0x04), st.builds(VehicleLogout, times(), st.integers(0, 0xFFFF))),
        st.tuples(st.just(0x05), platform_login(edition)),
        st.tuples(st.just(0x06), st.builds(PlatformLogout, times(), st.integers(0, 0xFFFF))),
        st.tuples(st.sampled_from([0x07, 0x08]), st.one_of(st.just(Empty()), st.builds(TimeOnly, times()))),
        st.tuples(
            st.just(0x80),
            st.builds(
                ParameterQuery, times(), st.lists(st.integers(0, 255).map(_pid), max_size=8).map(tuple)
            ),
        ),
        st.tuples(st.just(0x81), st.builds(ParameterSet, times(), parameter_items(edition))),
        st.tuples(st.just(0x82), terminal_control(edition)),
        st.tuples(st.integers(0xC0, 0xFE), st.binary(max_size=20).map(Opaque)),
    ]
    if edition is E25:
        options += [
            st.tuples(st.just(0x09), activation()),
            st.tuples(st.just(0x0A), activation_result()),
            st.tuples(st.just(0x0B), key_exchange(edition)),
        ]
    else:
        options.append(st.tuples(st.sampled_from([0x09, 0x0A, 0x0B]), st.binary(max_size=20).map(Opaque)))
    return st.one_of(options)


def _response_flag(edition: Edition) -> st.SearchStrategy[Any]:
    flags = [1, 2, 3] + ([4, 5, 6, 7] if edition is E25 else [])
    return st.sampled_from(flags).map(ResponseFlag)


def vins() -> st.SearchStrategy[str]:
    return text(17)


def frames(edition: Edition | None = None) -> st.SearchStrategy[Frame]:
    """Whole frames: commands, every acknowledgement form, encrypted (opaque) units."""
    if edition is None:
        return st.one_of(frames(E16), frames(E25))

    def request(cb: tuple[int, Any], vin: str) -> Frame:
        return Frame(edition, cb[0], ResponseFlag.COMMAND, vin, Encryption.NONE, cb[1])

    def ack(cb: tuple[int, Any], flag: Any, form: int, when: datetime, vin: str) -> Frame:
        command, body = cb
        if form == 0:
            new: Any = Empty()
        elif form == 1:
            new = TimeOnly(when)
        else:  # echo: any body longer than 6 bytes decodes back to itself
            new = body
        return Frame(edition, command, flag, vin, Encryption.NONE, new)

    echo_bodies = command_bodies(edition).filter(
        lambda cb: (
            not isinstance(cb[1], (Empty, TimeOnly, Opaque, ParameterQuery))
            and not (isinstance(cb[1], RealtimeReport) and not cb[1].blocks and cb[1].signature is None)
        )
    )
    reply = st.builds(
        lambda t, items, flag, vin: Frame(
            edition, 0x80, flag, vin, Encryption.NONE, ParameterQueryReply(t, items)
        ),
        times(),
        parameter_items(edition).filter(bool),
        _response_flag(edition),
        vins(),
    )
    encrypted = st.builds(
        lambda cmd, flag, enc, data, vin: Frame(edition, cmd, flag, vin, enc, Opaque(data)),
        st.integers(0, 255),
        st.one_of(st.just(ResponseFlag.COMMAND), _response_flag(edition)),
        st.sampled_from([2, 3, 0xFE, 0xFF] + ([4, 5] if edition is E25 else [])).map(
            lambda r: Encryption(r) if edition is E25 or r not in (4, 5) else r
        ),
        st.binary(max_size=40),
        vins(),
    )
    return st.one_of(
        st.builds(request, command_bodies(edition), vins()),
        st.builds(ack, echo_bodies, _response_flag(edition), st.integers(0, 2), times(), vins()),
        reply,
        encrypted,
    )


def data_units(edition: Edition) -> st.SearchStrategy[tuple[int, int, Any]]:
    """(command, response, body) triples for decode_body/encode_body round trips."""
    return (
        frames(edition)
        .filter(lambda f: f.encryption == Encryption.NONE)
        .map(lambda f: (int(f.command), int(f.response), f.body))
    )
