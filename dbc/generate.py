"""Generate ``tbox_ev.dbc`` from the compact table below (run: ``python dbc/generate.py``).

The DBC file is the artefact everyone reads; this script only keeps its layout consistent
(unique names, no overlaps, SNA value tables, cycle-time attributes). Edit here, regenerate, commit both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

RECEIVERS_ALL = "TBOX"


@dataclass
class Sig:
    name: str
    start: int  # Intel (little-endian) start bit = LSB position
    length: int
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    comment: str = ""
    choices: dict[int, str] | None = None
    sna: bool = True  # raw all-ones means "signal not available"
    mux: str = ""  # "M" for the multiplexor, "m<k>" for multiplexed signals
    receivers: str = ""


@dataclass
class Msg:
    frame_id: int
    name: str
    sender: str
    cycle_ms: int
    comment: str
    signals: list[Sig] = field(default_factory=list)
    dlc: int = 8
    e2e: bool = False
    receivers: str = ""


def e2e_header(prefix: str) -> list[Sig]:
    return [
        Sig(
            f"{prefix}_CRC",
            0,
            8,
            sna=False,
            comment="CRC8 SAE J1850 (poly 0x1D, init 0xFF, xorout 0xFF) over CAN id (low byte, high byte) "
            "then data bytes 1..DLC-1 (AUTOSAR E2E profile 1 style, data id = CAN id).",
        ),
        Sig(
            f"{prefix}_Counter",
            8,
            4,
            sna=False,
            choices={15: "Invalid"},
            comment="Alive counter, +1 per transmission, 0..14 then wraps to 0; 15 = invalid.",
        ),
    ]


def fmt(x: float) -> str:
    if float(x).is_integer():
        return str(int(x))
    return repr(round(x, 10))


GB_VEHICLE_STATE = {1: "Started", 2: "Off", 3: "Other", 0: "Reserved", 7: "SNA"}
CONTACTOR = {0: "Open", 1: "Closed", 2: "Welded", 3: "SNA"}
MCU_STATE = {0: "Off", 1: "Standby", 2: "Ready", 3: "Driving", 4: "Regenerating", 5: "Fault", 15: "SNA"}


def mcu_messages(n: int) -> list[Msg]:
    p = f"MCU{n}"
    rx = "VCU,TBOX"
    return [
        Msg(
            0x0A0 + n - 1,
            f"{p}_Status",
            p,
            10,
            f"Motor controller {n}: speed, achieved torque, state.",
            [
                *e2e_header(p + "_Status"),
                Sig(f"{p}_State", 12, 4, choices=MCU_STATE, sna=False, comment="Inverter state."),
                Sig(f"{p}_Speed", 16, 16, 1, -20000, "rpm", "Motor speed, + = forward."),
                Sig(
                    f"{p}_Torque", 32, 16, 0.1, -3000, "Nm", "Achieved motor torque, + = driving, - = regen."
                ),
                Sig(
                    f"{p}_FaultLevel",
                    48,
                    2,
                    choices={0: "NoFault", 1: "Warning", 2: "Derate", 3: "Shutdown"},
                    sna=False,
                    comment="Highest active inverter fault level.",
                ),
            ],
            e2e=True,
            receivers=rx,
        ),
        Msg(
            0x0B0 + n - 1,
            f"{p}_Electrical",
            p,
            10,
            f"Motor controller {n}: DC-link voltage and current.",
            [
                *e2e_header(p + "_Elec"),
                Sig(f"{p}_DCVoltage", 16, 16, 0.1, 0, "V", "Controller DC-link input voltage."),
                Sig(
                    f"{p}_DCCurrent",
                    32,
                    16,
                    0.05,
                    -1600,
                    "A",
                    "Controller DC input current, + = from HV bus.",
                ),
            ],
            e2e=True,
            receivers=rx,
        ),
        Msg(
            0x2A0 + n - 1,
            f"{p}_Thermal",
            p,
            100,
            f"Motor controller {n}: motor and controller temperatures.",
            [
                Sig(f"{p}_MotorTemp", 0, 8, 1, -40, "degC", "Motor winding temperature."),
                Sig(f"{p}_InverterTemp", 8, 8, 1, -40, "degC", "Controller (inverter) temperature."),
                Sig(f"{p}_FaultCode", 16, 16, sna=False, comment="Active inverter fault code, 0 = none."),
            ],
            receivers=rx,
        ),
    ]


def messages() -> list[Msg]:
    msgs: list[Msg] = [
        Msg(
            0x090,
            "VCU_TorqueCmd",
            "VCU",
            10,
            "VCU torque requests to the motor controllers.",
            [
                *e2e_header("VCU_TorqueCmd"),
                Sig(
                    "VCU_MCU1_ModeReq",
                    12,
                    2,
                    choices={0: "Standby", 1: "TorqueControl", 2: "Discharge", 3: "SNA"},
                    sna=False,
                    comment="Requested mode of motor controller 1.",
                ),
                Sig(
                    "VCU_MCU2_ModeReq",
                    14,
                    2,
                    choices={0: "Standby", 1: "TorqueControl", 2: "Discharge", 3: "SNA"},
                    sna=False,
                    comment="Requested mode of motor controller 2.",
                ),
                Sig("VCU_MCU1_TorqueReq", 16, 16, 0.1, -3000, "Nm", "Torque request to motor 1."),
                Sig("VCU_MCU2_TorqueReq", 32, 16, 0.1, -3000, "Nm", "Torque request to motor 2."),
                Sig("VCU_RegenAllowed", 48, 1, sna=False, comment="1 = regenerative braking allowed."),
            ],
            e2e=True,
            receivers="MCU1,MCU2,TBOX",
        ),
        *mcu_messages(1),
        *mcu_messages(2),
        Msg(
            0x0E0,
            "ESC_WheelSpeeds",
            "ESC",
            10,
            "Brake controller (ESC): the four wheel speeds.",
            [
                *e2e_header("ESC_WheelSpeeds"),
                Sig("ESC_WheelSpeedsValid", 12, 1, sna=False, comment="1 = wheel speeds valid."),
                Sig("ESC_WheelSpeedFL", 16, 12, 0.1, 0, "km/h", "Front-left wheel speed."),
                Sig("ESC_WheelSpeedFR", 28, 12, 0.1, 0, "km/h", "Front-right wheel speed."),
                Sig("ESC_WheelSpeedRL", 40, 12, 0.1, 0, "km/h", "Rear-left wheel speed."),
                Sig("ESC_WheelSpeedRR", 52, 12, 0.1, 0, "km/h", "Rear-right wheel speed."),
            ],
            e2e=True,
            receivers="VCU,TBOX",
        ),
        Msg(
            0x100,
            "VCU_VehicleStatus",
            "VCU",
            20,
            "Vehicle state: key, ready, gear, speed, modes.",
            [
                *e2e_header("VCU_VehStatus"),
                Sig(
                    "VCU_Gear",
                    12,
                    4,
                    choices={0: "P", 1: "R", 2: "N", 3: "D", 15: "SNA"},
                    sna=False,
                    comment="Selected gear.",
                ),
                Sig("VCU_VehicleSpeed", 16, 16, 0.01, 0, "km/h", "Vehicle speed (always >= 0)."),
                Sig("VCU_KeyOn", 32, 1, sna=False, comment="KL15 (ignition) on."),
                Sig("VCU_Ready", 33, 1, sna=False, comment="High voltage ready to drive."),
                Sig(
                    "VCU_VehicleState",
                    34,
                    3,
                    choices=GB_VEHICLE_STATE,
                    sna=False,
                    comment="GB/T 32960 vehicle state.",
                ),
                Sig(
                    "VCU_ChargeState",
                    37,
                    3,
                    choices={
                        1: "ParkedCharging",
                        2: "DrivingCharging",
                        3: "NotCharging",
                        4: "ChargeComplete",
                        0: "Reserved",
                        7: "SNA",
                    },
                    sna=False,
                    comment="GB/T 32960 charging state (driving charging = regenerative braking).",
                ),
                Sig(
                    "VCU_RunMode",
                    40,
                    2,
                    choices={1: "Electric", 2: "Hybrid", 3: "Fuel", 0: "Reserved"},
                    sna=False,
                    comment="GB/T 32960 running mode.",
                ),
                Sig(
                    "VCU_DriveMode",
                    42,
                    2,
                    choices={0: "Eco", 1: "Normal", 2: "Sport", 3: "SNA"},
                    sna=False,
                    comment="Driver-selected drive mode.",
                ),
            ],
            e2e=True,
            receivers="MCU1,MCU2,BMS,ESC,TBOX",
        ),
        Msg(
            0x101,
            "VCU_Pedals",
            "VCU",
            20,
            "Pedal positions and brake switch.",
            [
                *e2e_header("VCU_Pedals"),
                Sig("VCU_AccelPedal", 16, 8, 0.4, 0, "%", "Accelerator pedal travel."),
                Sig("VCU_BrakePedal", 24, 8, 0.4, 0, "%", "Brake pedal travel."),
                Sig("VCU_BrakeSwitch", 32, 1, sna=False, comment="Brake light switch."),
                Sig("VCU_BrakeSystemFault", 33, 1, sna=False, comment="Brake system fault present."),
                Sig("VCU_AccelPedalFault", 34, 1, sna=False, comment="Accelerator pedal sensor fault."),
            ],
            e2e=True,
            receivers="MCU1,MCU2,ESC,TBOX",
        ),
        Msg(
            0x120,
            "BMS_PackStatus",
            "BMS",
            10,
            "Pack voltage and current (safety relevant).",
            [
                *e2e_header("BMS_Pack"),
                Sig(
                    "BMS_State",
                    12,
                    4,
                    choices={
                        0: "Init",
                        1: "Standby",
                        2: "Precharge",
                        3: "HVActive",
                        4: "Charging",
                        5: "Fault",
                        6: "Shutdown",
                        15: "SNA",
                    },
                    sna=False,
                    comment="BMS operating state.",
                ),
                Sig("BMS_PackVoltage", 16, 16, 0.1, 0, "V", "Pack voltage (sum of cells), battery side."),
                Sig("BMS_PackCurrent", 32, 16, 0.05, -1600, "A", "Pack current, + = discharge."),
                Sig(
                    "BMS_LinkVoltage",
                    48,
                    16,
                    0.1,
                    0,
                    "V",
                    "HV bus voltage on the vehicle side of the contactors.",
                ),
            ],
            e2e=True,
            receivers="VCU,MCU1,MCU2,OBC,TBOX",
        ),
        Msg(
            0x121,
            "BMS_Status",
            "BMS",
            100,
            "SOC, insulation, HV interlock and contactors.",
            [
                *e2e_header("BMS_Status"),
                Sig(
                    "BMS_HVIL",
                    12,
                    1,
                    choices={0: "Open", 1: "Closed"},
                    sna=False,
                    comment="High-voltage interlock loop.",
                ),
                Sig(
                    "BMS_MainPosContactor",
                    13,
                    2,
                    choices=CONTACTOR,
                    sna=False,
                    comment="Main positive contactor.",
                ),
                Sig(
                    "BMS_MainNegContactor",
                    16,
                    2,
                    choices=CONTACTOR,
                    sna=False,
                    comment="Main negative contactor.",
                ),
                Sig(
                    "BMS_PrechargeContactor",
                    18,
                    2,
                    choices=CONTACTOR,
                    sna=False,
                    comment="Pre-charge contactor.",
                ),
                Sig("BMS_ChargerConnected", 20, 1, sna=False, comment="Charging plug detected (CC/CC2)."),
                Sig(
                    "BMS_FaultLevel",
                    21,
                    2,
                    choices={0: "NoFault", 1: "Level1", 2: "Level2", 3: "Level3"},
                    sna=False,
                    comment="Highest active fault level (GB/T 32960 alarm level).",
                ),
                Sig("BMS_SOC", 24, 10, 0.1, 0, "%", "Displayed state of charge."),
                Sig("BMS_SOH", 34, 10, 0.1, 0, "%", "State of health."),
                Sig(
                    "BMS_InsulationRes",
                    48,
                    16,
                    1,
                    0,
                    "kOhm",
                    "Insulation resistance, min(HV+, HV-) to chassis.",
                ),
            ],
            e2e=True,
            receivers="VCU,OBC,TBOX",
        ),
        Msg(
            0x122,
            "BMS_CellExtremes",
            "BMS",
            100,
            "Highest and lowest cell voltage with cell numbers.",
            [
                Sig("BMS_MaxCellVoltage", 0, 16, 0.001, 0, "V", "Highest cell voltage."),
                Sig("BMS_MaxCellVoltageIdx", 16, 8, comment="Number (1-based) of the highest cell."),
                Sig("BMS_MinCellVoltage", 24, 16, 0.001, 0, "V", "Lowest cell voltage."),
                Sig("BMS_MinCellVoltageIdx", 40, 8, comment="Number (1-based) of the lowest cell."),
                Sig("BMS_AvgCellVoltage", 48, 16, 0.001, 0, "V", "Mean cell voltage."),
            ],
            receivers="VCU,TBOX",
        ),
        Msg(
            0x123,
            "BMS_TempExtremes",
            "BMS",
            100,
            "Highest and lowest probe temperature with probe numbers.",
            [
                Sig("BMS_MaxTemp", 0, 8, 1, -40, "degC", "Highest probe temperature."),
                Sig("BMS_MaxTempIdx", 8, 8, comment="Number (1-based) of the hottest probe."),
                Sig("BMS_MinTemp", 16, 8, 1, -40, "degC", "Lowest probe temperature."),
                Sig("BMS_MinTempIdx", 24, 8, comment="Number (1-based) of the coldest probe."),
                Sig("BMS_AvgTemp", 32, 8, 1, -40, "degC", "Mean probe temperature."),
                Sig("BMS_NumCells", 40, 8, comment="Number of series cells in the pack."),
                Sig("BMS_NumTempProbes", 48, 8, comment="Number of temperature probes."),
            ],
            receivers="VCU,TBOX",
        ),
        Msg(
            0x124,
            "BMS_Limits",
            "BMS",
            100,
            "Allowed currents and charge voltage (derated with temperature/SOC).",
            [
                Sig("BMS_DischargeCurrentLimit", 0, 16, 0.1, 0, "A", "Allowed discharge current."),
                Sig("BMS_ChargeCurrentLimit", 16, 16, 0.1, 0, "A", "Allowed charge (incl. regen) current."),
                Sig("BMS_ChargeVoltageLimit", 32, 16, 0.1, 0, "V", "Maximum pack voltage while charging."),
            ],
            receivers="VCU,OBC,TBOX",
        ),
        Msg(
            0x125,
            "BMS_Faults",
            "BMS",
            100,
            "Fault flags and the active fault codes, one code per frame in turn.",
            [
                *[
                    Sig(f"BMS_Flt{name}", i, 1, sna=False, comment=text)
                    for i, (name, text) in enumerate(
                        [
                            ("CellOverVoltage", "A cell above the over-voltage threshold."),
                            ("CellUnderVoltage", "A cell below the under-voltage threshold."),
                            ("CellOverTemp", "A probe above the over-temperature threshold."),
                            ("CellUnderTemp", "A probe below the under-temperature threshold."),
                            ("CellVoltageImbalance", "Cell voltage spread too large."),
                            ("TempImbalance", "Probe temperature spread too large."),
                            ("PackOverVoltage", "Pack voltage too high."),
                            ("PackUnderVoltage", "Pack voltage too low."),
                            ("SocLow", "SOC low."),
                            ("SocHigh", "SOC too high (over-charge)."),
                            ("InsulationLow", "Insulation resistance low."),
                            ("HVILOpen", "High-voltage interlock open."),
                            ("OverCurrent", "Pack current beyond its limit."),
                            ("ContactorFault", "Contactor welded or not closing."),
                        ]
                    )
                ],
                Sig("BMS_FaultCodeCount", 16, 8, sna=False, comment="Number of active fault codes."),
                Sig(
                    "BMS_FaultCodeIndex",
                    24,
                    8,
                    sna=False,
                    comment="Index (0-based) of the code in this frame.",
                ),
                Sig("BMS_FaultCode", 32, 32, sna=False, comment="Active OEM fault code, 0 = none."),
            ],
            receivers="VCU,TBOX",
        ),
        Msg(
            0x180,
            "BMS_CellVoltages",
            "BMS",
            10,
            "Cell voltages, three per frame, multiplexed by group; one group per transmission in turn.",
            [Sig("BMS_CellVoltGroup", 0, 8, mux="M", sna=False, comment="Group k carries cells 3k+1..3k+3.")]
            + [
                Sig(
                    f"BMS_Cell{3 * g + j + 1:03d}_V",
                    8 + 16 * j,
                    16,
                    0.001,
                    0,
                    "V",
                    f"Cell {3 * g + j + 1} voltage.",
                    mux=f"m{g}",
                )
                for g in range(32)
                for j in range(3)
            ],
            receivers="TBOX",
        ),
        Msg(
            0x181,
            "BMS_CellTemps",
            "BMS",
            100,
            "Probe temperatures, seven per frame, multiplexed by group; one group per transmission in turn.",
            [Sig("BMS_TempGroup", 0, 8, mux="M", sna=False, comment="Group k carries probes 7k+1..7k+7.")]
            + [
                Sig(
                    f"BMS_Temp{7 * g + j + 1:02d}",
                    8 + 8 * j,
                    8,
                    1,
                    -40,
                    "degC",
                    f"Probe {7 * g + j + 1} temperature.",
                    mux=f"m{g}",
                )
                for g in range(5)
                for j in range(7)
            ],
            receivers="TBOX",
        ),
        Msg(
            0x210,
            "VCU_DCDCStatus",
            "VCU",
            100,
            "DC-DC converter and 12 V network.",
            [
                Sig(
                    "VCU_DCDCState",
                    0,
                    2,
                    choices={0: "Off", 1: "Active", 2: "Fault", 3: "SNA"},
                    sna=False,
                    comment="DC-DC converter state.",
                ),
                Sig("VCU_DCDCFault", 2, 1, sna=False, comment="DC-DC converter fault."),
                Sig("VCU_DCDCTemp", 8, 8, 1, -40, "degC", "DC-DC converter temperature."),
                Sig("VCU_LVVoltage", 16, 12, 0.01, 0, "V", "12 V network voltage."),
            ],
            receivers="TBOX",
        ),
        Msg(
            0x310,
            "OBC_Status",
            "OBC",
            100,
            "On-board (AC) charger status; sent only while an AC plug is in.",
            [
                Sig(
                    "OBC_State",
                    0,
                    3,
                    choices={0: "Standby", 1: "Charging", 2: "Complete", 3: "Fault", 7: "SNA"},
                    sna=False,
                    comment="On-board charger state.",
                ),
                Sig("OBC_OutVoltage", 8, 16, 0.1, 0, "V", "Charger output voltage."),
                Sig("OBC_OutCurrent", 24, 16, 0.1, 0, "A", "Charger output current into the pack."),
                Sig("OBC_MaxPower", 40, 8, 0.1, 0, "kW", "Available charger power."),
            ],
            receivers="VCU,BMS,TBOX",
        ),
        Msg(
            0x320,
            "CCU_DCChargerStatus",
            "CCU",
            100,
            "Charging communication unit: off-board DC charger status (from GB/T 27930); "
            "sent only while DC plugged.",
            [
                Sig(
                    "CCU_State",
                    0,
                    3,
                    choices={0: "Handshake", 1: "Charging", 2: "Complete", 3: "Fault", 7: "SNA"},
                    sna=False,
                    comment="DC charging session state.",
                ),
                Sig("CCU_OutVoltage", 8, 16, 0.1, 0, "V", "Charger output voltage measured at the inlet."),
                Sig("CCU_OutCurrent", 24, 16, 0.1, 0, "A", "Charger output current into the pack."),
                Sig("CCU_MaxPower", 40, 16, 0.1, 0, "kW", "Charger maximum power."),
            ],
            receivers="VCU,BMS,TBOX",
        ),
        Msg(
            0x330,
            "BMS_ChargeRequest",
            "BMS",
            100,
            "BMS charge request to the charger; sent only while plugged.",
            [
                Sig("BMS_ChgReqVoltage", 0, 16, 0.1, 0, "V", "Requested charge voltage."),
                Sig("BMS_ChgReqCurrent", 16, 16, 0.1, 0, "A", "Requested charge current."),
                Sig(
                    "BMS_ChgMode",
                    32,
                    2,
                    choices={0: "None", 1: "ConstantCurrent", 2: "ConstantVoltage", 3: "SNA"},
                    sna=False,
                    comment="Requested charge mode.",
                ),
                Sig("BMS_ChgEnable", 34, 1, sna=False, comment="1 = charging permitted."),
            ],
            receivers="OBC,CCU,TBOX",
        ),
        Msg(
            0x3F0,
            "VCU_Odometer",
            "VCU",
            1000,
            "Odometer and trip distance.",
            [
                Sig("VCU_Odometer", 0, 32, 0.1, 0, "km", "Total distance."),
                Sig("VCU_Trip", 32, 24, 0.1, 0, "km", "Distance since the start of this run."),
            ],
            receivers="TBOX",
        ),
    ]
    for m in msgs:
        if not m.receivers:
            m.receivers = RECEIVERS_ALL
    return msgs


def validate(msgs: list[Msg]) -> None:
    ids: set[int] = set()
    names: set[str] = set()
    for m in msgs:
        assert m.frame_id not in ids and m.frame_id < 0x800, m.name
        ids.add(m.frame_id)
        groups: dict[str, set[int]] = {}
        for s in m.signals:
            assert s.name not in names, s.name
            names.add(s.name)
            assert s.start + s.length <= 8 * m.dlc, s.name
            key = s.mux if s.mux.startswith("m") else ""
            bits = set(range(s.start, s.start + s.length))
            for k, used in groups.items():
                if k in ("", key) or key == "":
                    assert not (used & bits), (m.name, s.name)
            groups.setdefault(key, set()).update(bits)


def render(msgs: list[Msg]) -> str:
    nodes = ["VCU", "BMS", "MCU1", "MCU2", "ESC", "OBC", "CCU", "TBOX"]
    out = [
        'VERSION "tbox-ev-1.0"',
        "",
        "NS_ :",
        "\tCM_",
        "\tBA_DEF_",
        "\tBA_",
        "\tVAL_",
        "\tBA_DEF_DEF_",
        "",
        "BS_:",
        "",
        "BU_: " + " ".join(nodes),
        "",
        "",
    ]
    comments: list[str] = []
    attrs: list[str] = []
    vals: list[str] = []
    for m in msgs:
        out.append(f"BO_ {m.frame_id} {m.name}: {m.dlc} {m.sender}")
        for s in m.signals:
            lo = s.offset
            hi = s.offset + s.scale * ((1 << s.length) - 1)
            mux = f" {s.mux}" if s.mux else ""
            unit = s.unit.replace('"', "")
            out.append(
                f" SG_ {s.name}{mux} : {s.start}|{s.length}@1+ ({fmt(s.scale)},{fmt(s.offset)}) "
                f'[{fmt(lo)}|{fmt(hi)}] "{unit}" {s.receivers or m.receivers}'
            )
            text = s.comment
            choices = dict(s.choices or {})
            if s.sna and s.length > 1:
                choices[(1 << s.length) - 1] = "SNA"
                text = (text + " " if text else "") + "Raw all-ones = SNA (not available)."
            if text:
                comments.append(f'CM_ SG_ {m.frame_id} {s.name} "{text}";')
            if choices:
                body = " ".join(f'{k} "{v}"' for k, v in sorted(choices.items(), reverse=True))
                vals.append(f"VAL_ {m.frame_id} {s.name} {body} ;")
        out.append("")
        comments.append(f'CM_ BO_ {m.frame_id} "{m.comment}";')
        attrs.append(f'BA_ "GenMsgCycleTime" BO_ {m.frame_id} {m.cycle_ms};')
        attrs.append(f'BA_ "GenMsgSendType" BO_ {m.frame_id} 0;')
        attrs.append(f'BA_ "E2EProtected" BO_ {m.frame_id} {1 if m.e2e else 0};')
    out.append("")
    out.append(
        'CM_ "tbox reference battery EV: VCU, BMS (96 cells, 32 probes), two motor controllers, ESC, '
        'OBC, DC charging unit. 500 kbit/s, 11-bit ids, Intel byte order. See dbc/README.md.";'
    )
    out.extend(comments)
    out += [
        'BA_DEF_ "BusType" STRING ;',
        'BA_DEF_ "Baudrate" INT 0 1000000;',
        'BA_DEF_ "DBName" STRING ;',
        'BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;',
        'BA_DEF_ BO_ "GenMsgSendType" ENUM "Cyclic","NoMsgSendType";',
        'BA_DEF_ BO_ "E2EProtected" INT 0 1;',
        'BA_DEF_DEF_ "BusType" "CAN";',
        'BA_DEF_DEF_ "Baudrate" 500000;',
        'BA_DEF_DEF_ "DBName" "";',
        'BA_DEF_DEF_ "GenMsgCycleTime" 0;',
        'BA_DEF_DEF_ "GenMsgSendType" "Cyclic";',
        'BA_DEF_DEF_ "E2EProtected" 0;',
        'BA_ "BusType" "CAN";',
        'BA_ "Baudrate" 500000;',
        'BA_ "DBName" "tbox_ev";',
    ]
    out.extend(attrs)
    out.extend(vals)
    return "\n".join(out) + "\n"


def main() -> None:
    msgs = messages()
    validate(msgs)
    path = Path(__file__).with_name("tbox_ev.dbc")
    path.write_text(render(msgs), encoding="ascii")
    print(f"wrote {path} ({len(msgs)} messages, {sum(len(m.signals) for m in msgs)} signals)")


if __name__ == "__main__":
    main()
