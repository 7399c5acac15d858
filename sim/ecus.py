"""The ECUs of the simulated EV: they turn ``VehicleState`` snapshots into timed CAN frames.

Each ECU (VCU, BMS, MCU1, MCU2, ESC, OBC, CCU) sends the messages of ``dbc/tbox_ev.dbc`` that name it as
sender, at their ``GenMsgCycleTime``, with its own phase offset, clock drift and send jitter (all seeded),
alive counters and CRCs on the E2E-protected frames, and multiplexed cell voltage / temperature frames
cycling through every group. An ECU only sends while it is powered (see ``Network.powered``).

Hot path: message definitions come from cantools, but every message gets a packer compiled to plain
integer arithmetic (``compile_packer``); tests prove it byte-identical to ``cantools`` ``Message.encode``.
The E2E CRC is affine in the data, so per 0.1 s window the CRC of the counter-free payload is computed
once and each frame only XORs in a precomputed counter term.
"""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cantools
import cantools.database
import cantools.database.errors

from agent.errors import MappingError
from sim.vehicle.state import ChargeMode, Gear, MotorState, VehicleState

log = logging.getLogger(__name__)

#: The reference DBC shipped with the project.
DEFAULT_DBC = Path(__file__).resolve().parent.parent / "dbc" / "tbox_ev.dbc"

#: One emitted frame: (simulated time in s, arbitration id or ``ERROR_FRAME``, data bytes).
RawFrame = tuple[float, int, bytes]
#: Arbitration-id sentinel of an error frame in a ``RawFrame``.
ERROR_FRAME = -1

#: Bit rate the schedule and the bus-load figures assume.
BITRATE = 500_000
#: Alive counters count 0..COUNTER_MODULO-1 (15 = invalid, AUTOSAR E2E profile 1 style).
COUNTER_MODULO = 15
#: Cells per BMS_CellVoltages group and probes per BMS_CellTemps group.
CELLS_PER_GROUP = 3
PROBES_PER_GROUP = 7
#: Send jitter: uniform in +-min(JITTER_FRACTION * cycle, JITTER_MAX_S) around the nominal time.
JITTER_FRACTION = 0.05
JITTER_MAX_S = 0.001
#: ECU crystal tolerance: each ECU's clock runs fast or slow by up to this many ppm.
DRIFT_PPM = 200.0

Value = float | int | bool | None
Values = tuple[Value, ...]
Packer = Callable[[Sequence[Value]], int]

# ---------------------------------------------------------------------------------------------- CRC


def _crc8_table(poly: int) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


#: CRC8 SAE J1850 table (polynomial 0x1D).
CRC8_TABLE = _crc8_table(0x1D)


def crc8_sae_j1850(data: bytes | Sequence[int], crc: int = 0xFF, xorout: int = 0xFF) -> int:
    """CRC8 SAE J1850 (poly 0x1D, init 0xFF, xorout 0xFF); check value of b"123456789" is 0x4B."""
    table = CRC8_TABLE
    for byte in data:
        crc = table[crc ^ byte]
    return crc ^ xorout


def e2e_crc(frame_id: int, data: bytes) -> int:
    """The E2E checksum of a frame: CRC8 J1850 over id low byte, id high byte, then data[1:]."""
    return crc8_sae_j1850(bytes((frame_id & 0xFF, (frame_id >> 8) & 0xFF)) + bytes(data[1:]))


# ------------------------------------------------------------------------------------------ packers


@functools.cache
def load_dbc(path: Path = DEFAULT_DBC) -> cantools.database.can.Database:
    """Load (once) and return a DBC with cantools in strict mode."""
    try:
        db = cantools.database.load_file(str(path), strict=True)
    except (OSError, cantools.database.errors.Error) as exc:
        raise MappingError(f"{path}: cannot load DBC: {exc}") from exc
    if not isinstance(db, cantools.database.can.Database):
        raise MappingError(f"{path}: not a CAN database")
    return db


def compile_packer(message: Any, names: Sequence[str], fixed: dict[str, int] | None = None) -> Packer:
    """Compile ``values -> raw little-endian payload int`` for ``names`` of a cantools ``message``.

    Values are physical; each is clamped to the signal's [minimum, maximum]; ``None`` or NaN gives raw
    all-ones (SNA). ``fixed`` sets raw constants (e.g. the multiplexor value of a group). Signals not
    named are zero. Only Intel, unsigned, integer-raw signals are supported (all of ours are).
    """
    lines = ["def pack(v):"]
    consts: dict[str, Any] = {"round": round, "min": min, "max": max}
    const_raw = 0
    for name, raw in (fixed or {}).items():
        sig = message.get_signal_by_name(name)
        const_raw |= (raw & ((1 << sig.length) - 1)) << sig.start
    terms = [str(const_raw)] if const_raw else []
    if names:
        lines.append("    " + ", ".join(f"x{i}" for i in range(len(names))) + ", = v")
    for i, name in enumerate(names):
        sig = message.get_signal_by_name(name)
        if sig.byte_order != "little_endian" or sig.is_signed or sig.is_float:
            raise MappingError(f"{message.name}.{name}: only Intel unsigned integer signals are supported")
        mask = (1 << sig.length) - 1
        lo = sig.minimum if sig.minimum is not None else sig.offset
        hi = sig.maximum if sig.maximum is not None else sig.offset + sig.scale * mask
        consts.update({f"LO{i}": lo, f"HI{i}": hi, f"OF{i}": sig.offset, f"SC{i}": sig.scale})
        if sig.scale == 1 and sig.offset == 0:
            expr = f"round(min(max(x{i}, LO{i}), HI{i}))"
        else:
            expr = f"round((min(max(x{i}, LO{i}), HI{i}) - OF{i}) / SC{i})"
        lines.append(f"    r{i} = {mask} if x{i} is None or x{i} != x{i} else ({expr}) & {mask}")
        terms.append(f"(r{i} << {sig.start})" if sig.start else f"r{i}")
    lines.append("    return " + (" | ".join(terms) if terms else "0"))
    code = "\n".join(lines)
    namespace: dict[str, Any] = dict(consts)
    exec(compile(code, f"<packer {message.name}>", "exec"), namespace)
    packer: Packer = namespace["pack"]
    return packer


@functools.cache
def _packer(message: Any, names: tuple[str, ...], fixed: tuple[tuple[str, int], ...]) -> Packer:
    """``compile_packer``, compiled once per process for each (message, signals, constants)."""
    return compile_packer(message, names, dict(fixed))


# ------------------------------------------------------------------------------------ ECU behaviour


@dataclass
class EcuContext:
    """What the ECUs remember between windows (not physics): plug history, trip start, fault index."""

    n_motors: int
    n_cells: int
    n_probes: int
    last_plug: ChargeMode = ChargeMode.NONE
    trip_start_km: float | None = None
    fault_index: int = 0
    cells: list[float] = field(default_factory=list)
    temps: list[float] = field(default_factory=list)

    def motor(self, s: VehicleState, i: int) -> MotorState | None:
        return s.motors[i] if i < len(s.motors) and i < self.n_motors else None


_GEAR = {Gear.PARK: 0, Gear.REVERSE: 1, Gear.NEUTRAL: 2, Gear.DRIVE: 3}
_CONTACTOR_OPEN, _CONTACTOR_CLOSED = 0, 1

# Fault thresholds of the simulated BMS (physical units) and the GB/T 32960 level each raises.
# Where the physics documents a threshold (sim.scenarios), the BMS uses the same value.
CELL_OV_V, CELL_UV_V = 4.25, 2.80
PACK_OV_PER_CELL_V, PACK_UV_PER_CELL_V = 4.25, 3.00
CELL_OT_C, CELL_UT_C = 55.0, -20.0
CELL_SPREAD_V, TEMP_SPREAD_C = 0.30, 12.0
SOC_LOW_PCT, SOC_HIGH_PCT = 10.0, 100.5
INSULATION_LOW_KOHM = 50.0
OVER_CURRENT_A = 600.0
CELL_CHARGE_LIMIT_V = 4.20
# Where a fault escalates, the level follows the T-Box's default staging (docs/alarms.md, NMC preset):
# the flag's own threshold raises the lower level, these raise level 3 (level 2 for the cell spread).
CELL_OV_L3_V, CELL_UV_L3_V = 4.35, 2.50
CELL_OT_L3_C = 60.0
CELL_SPREAD_L2_V, TEMP_SPREAD_L3_C = 0.50, 15.0
PACK_UV_L3_PER_CELL_V = 2.50
SOC_LOW_L2_PCT = 5.0
INSULATION_L3_OHM_PER_V = 100.0
# Motor controller self-protection: (warning, derate) thresholds, and the fault codes it reports.
MOTOR_TEMP_C = (140.0, 150.0)
INVERTER_TEMP_C = (80.0, 85.0)
MCU_CODE_MOTOR_OT, MCU_CODE_INVERTER_OT = 0x0151, 0x0152


def _plugged(s: VehicleState, c: EcuContext) -> ChargeMode:
    """The plug type: AC or DC while plugged in (COMPLETE keeps the type it had), NONE otherwise."""
    if s.charge_mode in (ChargeMode.AC, ChargeMode.DC):
        return s.charge_mode
    if s.charge_mode is ChargeMode.COMPLETE:
        return c.last_plug if c.last_plug is not ChargeMode.NONE else ChargeMode.AC
    return ChargeMode.NONE


def _mode_req(m: MotorState | None) -> int | None:
    return None if m is None else (1 if m.enabled else 0)


def _vcu_torque(s: VehicleState, c: EcuContext) -> Values:
    m1, m2 = c.motor(s, 0), c.motor(s, 1)
    return (
        _mode_req(m1),
        3 if m2 is None else _mode_req(m2),
        m1.torque_nm if m1 else None,
        m2.torque_nm if m2 else None,
        s.soc_pct < 98.0,
    )


def _mcu_state(m: MotorState) -> int:
    if not m.enabled:
        return 1
    if m.torque_nm > 1.0:
        return 3
    if m.torque_nm < -1.0:
        return 4
    return 2


def mcu_fault(m: MotorState) -> tuple[int, int]:
    """(fault level 0..2, fault code) of a motor controller from its temperatures."""
    level, code = 0, 0
    for temp, (warn, derate), fault in (
        (m.motor_temp_c, MOTOR_TEMP_C, MCU_CODE_MOTOR_OT),
        (m.inverter_temp_c, INVERTER_TEMP_C, MCU_CODE_INVERTER_OT),
    ):
        here = 2 if temp >= derate else (1 if temp >= warn else 0)
        if here > level:
            level, code = here, fault
    return level, code


def _mcu_status(i: int) -> Callable[[VehicleState, EcuContext], Values]:
    def values(s: VehicleState, c: EcuContext) -> Values:
        m = c.motor(s, i)
        if m is None:
            return (15, None, None, 0)
        return (_mcu_state(m), m.speed_rpm, m.torque_nm, mcu_fault(m)[0])

    return values


def _mcu_elec(i: int) -> Callable[[VehicleState, EcuContext], Values]:
    def values(s: VehicleState, c: EcuContext) -> Values:
        m = c.motor(s, i)
        return (None, None) if m is None else (m.dc_voltage_v, m.dc_current_a)

    return values


def _mcu_thermal(i: int) -> Callable[[VehicleState, EcuContext], Values]:
    def values(s: VehicleState, c: EcuContext) -> Values:
        m = c.motor(s, i)
        return (None, None, 0) if m is None else (m.motor_temp_c, m.inverter_temp_c, mcu_fault(m)[1])

    return values


def _esc_wheels(s: VehicleState, c: EcuContext) -> Values:
    v = abs(s.speed_kmh)
    return (1, v, v, v, v)


def _charge_state(s: VehicleState, c: EcuContext) -> int:
    if s.charge_mode in (ChargeMode.AC, ChargeMode.DC):
        return 1
    if s.charge_mode is ChargeMode.COMPLETE:
        return 4
    if s.key_on and s.pack_current_a < 0 and s.speed_kmh > 0.5:
        return 2
    return 3


def _vcu_status(s: VehicleState, c: EcuContext) -> Values:
    return (
        _GEAR[s.gear],
        abs(s.speed_kmh),
        s.key_on,
        s.ready,
        1 if s.key_on else 2,
        _charge_state(s, c),
        1,
        1,
    )


def _vcu_pedals(s: VehicleState, c: EcuContext) -> Values:
    return (s.accel_pedal_pct, s.brake_pedal_pct, s.brake_pedal_pct > 2.0, s.brake_fault, False)


def _bms_state(s: VehicleState, c: EcuContext) -> int:
    if not s.hv_interlock_closed:
        return 5
    if s.main_contactors_closed:
        return 4 if s.charge_mode in (ChargeMode.AC, ChargeMode.DC) else 3
    return 1


def _bms_pack(s: VehicleState, c: EcuContext) -> Values:
    link = s.pack_voltage_v if s.main_contactors_closed else 0.0
    return (_bms_state(s, c), s.pack_voltage_v, s.pack_current_a, link)


def _extremes(values: list[float]) -> tuple[float, int, float, int, float] | None:
    if not values:
        return None
    hi = max(values)
    lo = min(values)
    return hi, values.index(hi) + 1, lo, values.index(lo) + 1, sum(values) / len(values)


def fault_flags(s: VehicleState, c: EcuContext) -> tuple[tuple[bool, ...], int]:
    """The BMS fault flags (BMS_Faults order) and the highest level they raise (0..3).

    Each flag's level escalates as the T-Box's default alarm staging does (docs/alarms.md): e.g. a probe
    above 55 degC is level 2, from 60 degC level 3; a cell over 4.25 V level 2, level 3 from 4.35 V or while
    a full pack is still being charged (over-charge); the pack under 3.0 V/cell level 2, 2.5 V/cell level 3.
    """
    cells, temps = c.cells, c.temps
    vmax = max(cells) if cells else 0.0
    vmin = min(cells) if cells else 0.0
    tmax = max(temps) if temps else 25.0
    tmin = min(temps) if temps else 25.0
    n = max(c.n_cells, 1)
    flags = (
        vmax > CELL_OV_V,
        bool(cells) and vmin < CELL_UV_V,
        tmax > CELL_OT_C,
        tmin < CELL_UT_C,
        bool(cells) and vmax - vmin > CELL_SPREAD_V,
        tmax - tmin > TEMP_SPREAD_C,
        s.pack_voltage_v > n * PACK_OV_PER_CELL_V,
        bool(cells) and s.pack_voltage_v < n * PACK_UV_PER_CELL_V,
        s.soc_pct < SOC_LOW_PCT,
        s.soc_pct > SOC_HIGH_PCT,
        s.insulation_kohm < INSULATION_LOW_KOHM,
        not s.hv_interlock_closed,
        abs(s.pack_current_a) > OVER_CURRENT_A,
        False,
    )
    charging = s.charge_mode in (ChargeMode.AC, ChargeMode.DC)
    ohm_per_v = s.insulation_kohm * 1000.0 / s.pack_voltage_v if s.pack_voltage_v > 0.0 else 0.0
    levels = (
        3 if vmax >= CELL_OV_L3_V or (charging and s.soc_pct >= 100.0) else 2,   # over-charge: 3
        3 if vmin <= CELL_UV_L3_V else 2,
        3 if tmax >= CELL_OT_L3_C else 2,
        1,
        2 if vmax - vmin >= CELL_SPREAD_L2_V else 1,
        3 if tmax - tmin >= TEMP_SPREAD_L3_C else 2,
        3,
        3 if s.pack_voltage_v <= n * PACK_UV_L3_PER_CELL_V else 2,
        2 if s.soc_pct <= SOC_LOW_L2_PCT else 1,
        1,
        3 if ohm_per_v <= INSULATION_L3_OHM_PER_V else 2,
        3,
        2,
        3,
    )
    level = max((lv for f, lv in zip(flags, levels, strict=True) if f), default=0)
    if s.bms_fault_codes and level == 0:
        level = 1
    return tuple(bool(f) for f in flags), level


def _bms_status(s: VehicleState, c: EcuContext) -> Values:
    contactor = _CONTACTOR_CLOSED if s.main_contactors_closed else _CONTACTOR_OPEN
    soh = getattr(s, "soh_pct", None)
    _, level = fault_flags(s, c)
    return (
        s.hv_interlock_closed,
        contactor,
        contactor,
        _CONTACTOR_OPEN,
        s.charge_mode is not ChargeMode.NONE,
        level,
        s.soc_pct,
        soh,
        min(s.insulation_kohm, 65534.0),
    )


def _cell_extremes(s: VehicleState, c: EcuContext) -> Values:
    e = _extremes(c.cells)
    return (None,) * 5 if e is None else e


def _temp_extremes(s: VehicleState, c: EcuContext) -> Values:
    e = _extremes(c.temps)
    base: Values = (None,) * 5 if e is None else e
    return (*base, c.n_cells, c.n_probes)


def _derate(x: float, full: float, zero: float) -> float:
    """1 at ``full``, 0 at ``zero``, linear between (either direction)."""
    if full == zero:
        return 1.0
    return min(1.0, max(0.0, (x - zero) / (full - zero)))


def _bms_limits(s: VehicleState, c: EcuContext) -> Values:
    tmax = max(c.temps) if c.temps else 25.0
    tmin = min(c.temps) if c.temps else 25.0
    temp = _derate(tmax, 45.0, 60.0) * _derate(tmin, 10.0, -30.0)
    discharge = OVER_CURRENT_A * temp * (0.3 + 0.7 * _derate(s.soc_pct, 20.0, 0.0))
    vmax = max(c.cells) if c.cells else 0.0
    charge = 0.5 * OVER_CURRENT_A * temp * _derate(vmax, 4.05, CELL_CHARGE_LIMIT_V + 0.05)
    return (discharge, charge, c.n_cells * CELL_CHARGE_LIMIT_V)


def _bms_faults(s: VehicleState, c: EcuContext) -> Values:
    flags, _ = fault_flags(s, c)
    codes = s.bms_fault_codes
    if codes:
        index = c.fault_index % len(codes)
        c.fault_index += 1
        tail: Values = (len(codes), index, codes[index])
    else:
        c.fault_index = 0
        tail = (0, 0, 0)
    return (*flags, *tail)


def _dcdc(s: VehicleState, c: EcuContext) -> Values:
    state = 2 if s.dcdc_fault else (1 if s.dcdc_active else 0)
    return (state, s.dcdc_fault, s.dcdc_temp_c, s.lv_voltage_v)


def _charger(s: VehicleState, c: EcuContext) -> Values:
    state = 2 if s.charge_mode is ChargeMode.COMPLETE else 1
    return (state, s.charger_voltage_v, max(s.charger_current_a, 0.0), s.charger_max_power_kw)


def _charge_request(s: VehicleState, c: EcuContext) -> Values:
    charging = s.charge_mode in (ChargeMode.AC, ChargeMode.DC)
    vmax = max(c.cells) if c.cells else 0.0
    mode = (2 if vmax >= CELL_CHARGE_LIMIT_V - 0.05 else 1) if charging else 0
    return (
        c.n_cells * CELL_CHARGE_LIMIT_V,
        max(s.charger_current_a, 0.0) if charging else 0.0,
        mode,
        charging,
    )


def _odometer(s: VehicleState, c: EcuContext) -> Values:
    if c.trip_start_km is None:
        c.trip_start_km = s.odometer_km
    return (s.odometer_km, max(s.odometer_km - c.trip_start_km, 0.0))


@dataclass(frozen=True)
class MessageBehaviour:
    """How an ECU fills one DBC message: the signal order and the function giving their values."""

    fields: tuple[str, ...]
    values: Callable[[VehicleState, EcuContext], Values]
    #: extra condition on top of the ECU being powered (None = always while powered)
    active: Callable[[VehicleState, EcuContext], bool] | None = None
    #: recompute the values for every frame, not once per window (rolling contents)
    per_frame: bool = False


def _key_on(s: VehicleState, c: EcuContext) -> bool:
    return s.key_on


def _plugged_in(s: VehicleState, c: EcuContext) -> bool:
    return s.charge_mode is not ChargeMode.NONE


def _behaviours() -> dict[str, MessageBehaviour]:
    b: dict[str, MessageBehaviour] = {
        "VCU_TorqueCmd": MessageBehaviour(
            (
                "VCU_MCU1_ModeReq",
                "VCU_MCU2_ModeReq",
                "VCU_MCU1_TorqueReq",
                "VCU_MCU2_TorqueReq",
                "VCU_RegenAllowed",
            ),
            _vcu_torque,
            _key_on,
        ),
        "ESC_WheelSpeeds": MessageBehaviour(
            (
                "ESC_WheelSpeedsValid",
                "ESC_WheelSpeedFL",
                "ESC_WheelSpeedFR",
                "ESC_WheelSpeedRL",
                "ESC_WheelSpeedRR",
            ),
            _esc_wheels,
        ),
        "VCU_VehicleStatus": MessageBehaviour(
            (
                "VCU_Gear",
                "VCU_VehicleSpeed",
                "VCU_KeyOn",
                "VCU_Ready",
                "VCU_VehicleState",
                "VCU_ChargeState",
                "VCU_RunMode",
                "VCU_DriveMode",
            ),
            _vcu_status,
        ),
        "VCU_Pedals": MessageBehaviour(
            (
                "VCU_AccelPedal",
                "VCU_BrakePedal",
                "VCU_BrakeSwitch",
                "VCU_BrakeSystemFault",
                "VCU_AccelPedalFault",
            ),
            _vcu_pedals,
        ),
        "BMS_PackStatus": MessageBehaviour(
            ("BMS_State", "BMS_PackVoltage", "BMS_PackCurrent", "BMS_LinkVoltage"), _bms_pack
        ),
        "BMS_Status": MessageBehaviour(
            (
                "BMS_HVIL",
                "BMS_MainPosContactor",
                "BMS_MainNegContactor",
                "BMS_PrechargeContactor",
                "BMS_ChargerConnected",
                "BMS_FaultLevel",
                "BMS_SOC",
                "BMS_SOH",
                "BMS_InsulationRes",
            ),
            _bms_status,
        ),
        "BMS_CellExtremes": MessageBehaviour(
            (
                "BMS_MaxCellVoltage",
                "BMS_MaxCellVoltageIdx",
                "BMS_MinCellVoltage",
                "BMS_MinCellVoltageIdx",
                "BMS_AvgCellVoltage",
            ),
            _cell_extremes,
        ),
        "BMS_TempExtremes": MessageBehaviour(
            (
                "BMS_MaxTemp",
                "BMS_MaxTempIdx",
                "BMS_MinTemp",
                "BMS_MinTempIdx",
                "BMS_AvgTemp",
                "BMS_NumCells",
                "BMS_NumTempProbes",
            ),
            _temp_extremes,
        ),
        "BMS_Limits": MessageBehaviour(
            ("BMS_DischargeCurrentLimit", "BMS_ChargeCurrentLimit", "BMS_ChargeVoltageLimit"), _bms_limits
        ),
        "BMS_Faults": MessageBehaviour(
            (
                "BMS_FltCellOverVoltage",
                "BMS_FltCellUnderVoltage",
                "BMS_FltCellOverTemp",
                "BMS_FltCellUnderTemp",
                "BMS_FltCellVoltageImbalance",
                "BMS_FltTempImbalance",
                "BMS_FltPackOverVoltage",
                "BMS_FltPackUnderVoltage",
                "BMS_FltSocLow",
                "BMS_FltSocHigh",
                "BMS_FltInsulationLow",
                "BMS_FltHVILOpen",
                "BMS_FltOverCurrent",
                "BMS_FltContactorFault",
                "BMS_FaultCodeCount",
                "BMS_FaultCodeIndex",
                "BMS_FaultCode",
            ),
            _bms_faults,
            per_frame=True,
        ),
        "VCU_DCDCStatus": MessageBehaviour(
            ("VCU_DCDCState", "VCU_DCDCFault", "VCU_DCDCTemp", "VCU_LVVoltage"), _dcdc
        ),
        "OBC_Status": MessageBehaviour(
            ("OBC_State", "OBC_OutVoltage", "OBC_OutCurrent", "OBC_MaxPower"), _charger
        ),
        "CCU_DCChargerStatus": MessageBehaviour(
            ("CCU_State", "CCU_OutVoltage", "CCU_OutCurrent", "CCU_MaxPower"), _charger
        ),
        "BMS_ChargeRequest": MessageBehaviour(
            ("BMS_ChgReqVoltage", "BMS_ChgReqCurrent", "BMS_ChgMode", "BMS_ChgEnable"),
            _charge_request,
            _plugged_in,
        ),
        "VCU_Odometer": MessageBehaviour(("VCU_Odometer", "VCU_Trip"), _odometer),
    }
    for i in (1, 2):
        b[f"MCU{i}_Status"] = MessageBehaviour(
            (f"MCU{i}_State", f"MCU{i}_Speed", f"MCU{i}_Torque", f"MCU{i}_FaultLevel"), _mcu_status(i - 1)
        )
        b[f"MCU{i}_Electrical"] = MessageBehaviour(
            (f"MCU{i}_DCVoltage", f"MCU{i}_DCCurrent"), _mcu_elec(i - 1)
        )
        b[f"MCU{i}_Thermal"] = MessageBehaviour(
            (f"MCU{i}_MotorTemp", f"MCU{i}_InverterTemp", f"MCU{i}_FaultCode"), _mcu_thermal(i - 1)
        )
    return b


#: name -> behaviour of every non-multiplexed message the ECUs send.
BEHAVIOURS = _behaviours()
#: The two multiplexed BMS messages: name -> (signal name pattern, items per group).
MUX_MESSAGES = {"BMS_CellVoltages": ("cells", CELLS_PER_GROUP), "BMS_CellTemps": ("temps", PROBES_PER_GROUP)}


def powered(ecu: str, s: VehicleState, c: EcuContext) -> bool:
    """Whether ``ecu`` is awake: VCU/BMS with key on or a plug in; MCUs/ESC with key on; chargers by plug."""
    if ecu in ("VCU", "BMS"):
        return s.key_on or s.charge_mode is not ChargeMode.NONE
    if ecu in ("MCU1", "ESC"):
        return s.key_on
    if ecu == "MCU2":
        return s.key_on and c.n_motors >= 2
    if ecu == "OBC":
        return _plugged(s, c) is ChargeMode.AC
    if ecu == "CCU":
        return _plugged(s, c) is ChargeMode.DC
    return False


# -------------------------------------------------------------------------------------- scheduling


class TxMessage:
    """One periodic message of one ECU: its schedule, counter and packer(s)."""

    __slots__ = (
        "active",
        "counter",
        "crc_counter_terms",
        "crc_zero",
        "cycle",
        "dlc",
        "e2e",
        "ecu",
        "fields",
        "frame_id",
        "group",
        "groups",
        "jitter",
        "mux_kind",
        "n",
        "name",
        "packers",
        "per_frame",
        "period",
        "phase",
        "values",
    )

    def __init__(
        self,
        message: Any,
        ecu: str,
        rng: random.Random,
        ecu_offset: float,
        drift: float,
        behaviour: MessageBehaviour | None,
        mux: tuple[str, int] | None,
        n_items: int,
    ) -> None:
        self.name: str = message.name
        self.frame_id: int = message.frame_id
        self.ecu = ecu
        self.dlc: int = message.length
        self.cycle: float = message.cycle_time / 1000.0
        self.period = self.cycle * drift
        self.jitter = min(JITTER_FRACTION * self.cycle, JITTER_MAX_S)
        self.phase = ecu_offset + rng.uniform(0.0, self.cycle)
        self.n = 0  # index of the next nominal send
        self.counter = 0
        self.group = 0
        names = {sig.name for sig in message.signals}
        self.e2e = any(n.endswith("_CRC") for n in names) and any(n.endswith("_Counter") for n in names)
        self.per_frame = behaviour.per_frame if behaviour else False
        self.active = behaviour.active if behaviour else None
        self.values = behaviour.values if behaviour else None
        self.fields = behaviour.fields if behaviour else ()
        self.mux_kind = mux[0] if mux else ""
        self.packers: list[Packer] = []
        if mux is not None:
            per = mux[1]
            mux_sig = next(sig for sig in message.signals if sig.is_multiplexer)
            self.groups = max(1, math.ceil(n_items / per))
            n_groups_dbc = 1 + max(max(sig.multiplexer_ids or [0]) for sig in message.signals)
            if self.groups > n_groups_dbc:
                raise MappingError(
                    f"{self.name}: {n_items} items need {self.groups} groups, DBC has {n_groups_dbc}"
                )
            for g in range(self.groups):
                group_sigs = [sig.name for sig in message.signals if sig.multiplexer_ids == [g]]
                self.packers.append(_packer(message, tuple(group_sigs), ((mux_sig.name, g),)))
        else:
            self.groups = 1
            self.packers.append(_packer(message, self.fields, ()))
        if self.e2e:
            zero = bytes(self.dlc)
            self.crc_zero = e2e_crc(self.frame_id, zero)
            self.crc_counter_terms = tuple(
                e2e_crc(self.frame_id, (k << 8).to_bytes(self.dlc, "little")) ^ self.crc_zero
                for k in range(16)
            )
        else:
            self.crc_zero = 0
            self.crc_counter_terms = ()

    def nominal(self) -> float:
        return float(self.phase + self.n * self.period)

    def skip_until(self, t1: float) -> None:
        """Advance the schedule past ``t1`` without sending (ECU asleep); the counter restarts at wake-up."""
        nxt = self.nominal()
        if nxt < t1:
            self.n += math.ceil((t1 - nxt) / self.period)
        self.counter = 0


class Network:
    """All ECUs of one vehicle on one bus, producing the frames of each physics window."""

    def __init__(
        self,
        *,
        n_motors: int = 2,
        n_cells: int = 96,
        n_probes: int = 32,
        seed: int = 0,
        dbc: Path = DEFAULT_DBC,
    ) -> None:
        if n_motors not in (1, 2):
            raise MappingError(f"n_motors must be 1 or 2, not {n_motors}")
        self.db = load_dbc(dbc)
        self.ctx = EcuContext(n_motors=n_motors, n_cells=n_cells, n_probes=n_probes)
        self.messages: list[TxMessage] = []
        self.bus_free_at = 0.0
        rng = random.Random(seed)
        ecus: dict[str, tuple[float, float]] = {}
        by_id = sorted(self.db.messages, key=lambda m: m.frame_id)
        for message in by_id:
            ecu = message.senders[0]
            if ecu == "MCU2" and n_motors < 2:
                continue
            if ecu not in ecus:
                ecus[ecu] = (rng.uniform(0.0, 0.005), 1.0 + rng.uniform(-DRIFT_PPM, DRIFT_PPM) * 1e-6)
            offset, drift = ecus[ecu]
            if message.cycle_time is None or message.cycle_time <= 0:
                raise MappingError(f"{message.name}: no GenMsgCycleTime")
            mux = MUX_MESSAGES.get(message.name)
            behaviour = BEHAVIOURS.get(message.name)
            if mux is None and behaviour is None:
                raise MappingError(f"{message.name}: no ECU behaviour defined")
            n_items = n_cells if mux and mux[0] == "cells" else n_probes
            self.messages.append(
                TxMessage(message, ecu, random.Random(rng.random()), offset, drift, behaviour, mux, n_items)
            )
        self.ecu_names = tuple(ecus)
        self._rng = random.Random(rng.random())
        self._bits = [47 + 8 * d + (34 + 8 * d) // 10 for d in range(9)]
        self.by_id = {m.frame_id: m for m in self.messages}

    def frames(self, s: VehicleState, t0: float, t1: float) -> list[RawFrame]:
        """The frames whose nominal send time is in [t0, t1), from state ``s``, in bus order.

        Timestamps include jitter and bus serialisation (a frame starts once the previous one has left
        the wire, at ``BITRATE`` with an estimated stuffing), so they strictly increase across windows.
        """
        c = self.ctx
        if s.charge_mode in (ChargeMode.AC, ChargeMode.DC):
            c.last_plug = s.charge_mode
        elif s.charge_mode is ChargeMode.NONE:
            c.last_plug = ChargeMode.NONE
        awake = {ecu: powered(ecu, s, c) for ecu in self.ecu_names}
        if awake.get("BMS"):
            c.cells = [float(x) for x in s.cell_voltages_v[: c.n_cells].tolist()]
            c.temps = [float(x) for x in s.cell_temps_c[: c.n_probes].tolist()]
        out: list[RawFrame] = []
        uniform = self._rng.uniform
        append = out.append
        for m in self.messages:
            nt = m.phase + m.n * m.period
            if nt >= t1:
                continue
            if not awake[m.ecu] or (m.active is not None and not m.active(s, c)):
                m.skip_until(t1)
                continue
            fid = m.frame_id
            dlc = m.dlc
            period = m.period
            jit = m.jitter
            if m.mux_kind:
                items = c.cells if m.mux_kind == "cells" else c.temps
                per = CELLS_PER_GROUP if m.mux_kind == "cells" else PROBES_PER_GROUP
                pad = (None,) * per
                while nt < t1:
                    g = m.group
                    vals = (items[g * per : (g + 1) * per] + list(pad))[:per]
                    raw = m.packers[g](vals)
                    append((max(nt + uniform(-jit, jit), 0.0), fid, raw.to_bytes(dlc, "little")))
                    m.group = (g + 1) % m.groups
                    m.n += 1
                    nt = m.phase + m.n * period
                continue
            assert m.values is not None
            base = m.packers[0](m.values(s, c))
            if m.e2e:
                crc_base = e2e_crc(fid, base.to_bytes(dlc, "little"))
                terms = m.crc_counter_terms
                while nt < t1:
                    k = m.counter
                    raw = base | (k << 8) | (crc_base ^ terms[k])
                    append((max(nt + uniform(-jit, jit), 0.0), fid, raw.to_bytes(dlc, "little")))
                    m.counter = 0 if k == COUNTER_MODULO - 1 else k + 1
                    m.n += 1
                    nt = m.phase + m.n * period
            else:
                data = base.to_bytes(dlc, "little")
                while nt < t1:
                    append((max(nt + uniform(-jit, jit), 0.0), fid, data))
                    m.n += 1
                    nt = m.phase + m.n * period
                    if m.per_frame and nt < t1:
                        data = m.packers[0](m.values(s, c)).to_bytes(dlc, "little")
        return self.serialise(out)

    def serialise(self, frames: list[RawFrame]) -> list[RawFrame]:
        """Sort by time (lower id wins ties) and delay each frame until the bus is free."""
        frames.sort()
        free = self.bus_free_at
        bits = self._bits
        tick = 1.0 / BITRATE
        out: list[RawFrame] = []
        append = out.append
        for f in frames:
            t = f[0]
            if t < free:
                t = free
                f = (t, f[1], f[2])
            append(f)
            free = t + bits[len(f[2])] * tick
        self.bus_free_at = free
        return out
