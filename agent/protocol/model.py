"""GB/T 32960 data model: enums for wire constants and frozen dataclasses for every data unit.

Pure values, no I/O. Times are timezone-aware ``datetime`` in UTC; the codec converts to the
Beijing time (UTC+8) the wire carries. Physical values are in engineering units; a field whose
wire value is an abnormal/invalid sentinel holds ``Special.ABNORMAL`` / ``Special.INVALID``.
Coded fields hold the enum member, or the plain ``int`` when the wire carries a code the standard
does not define (so every frame still re-encodes byte for byte).

Section numbers (§) refer to ../shared/spec/gbt32960.md (2016) and gbt32960-2025.md (2025).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum, IntFlag
from typing import Protocol


class Edition(IntEnum):
    """Protocol edition, carried in-band by the start marker (``##`` 2016, ``$$`` 2025)."""

    E2016 = 2016
    E2025 = 2025


class Command(IntEnum):
    """Command id (§2.1; 2025 §3.2)."""

    VEHICLE_LOGIN = 0x01
    REALTIME = 0x02
    REISSUE = 0x03
    VEHICLE_LOGOUT = 0x04
    PLATFORM_LOGIN = 0x05
    PLATFORM_LOGOUT = 0x06
    HEARTBEAT = 0x07
    TIME_CALIBRATION = 0x08
    ACTIVATION = 0x09          # 2025 only, terminal -> platform
    ACTIVATION_RESULT = 0x0A   # 2025 only, platform -> terminal (sent as a command, flag 0xFE)
    KEY_EXCHANGE = 0x0B        # 2025 only, either direction
    PARAMETER_QUERY = 0x80
    PARAMETER_SET = 0x81
    TERMINAL_CONTROL = 0x82


class ResponseFlag(IntEnum):
    """Response flag (§2.2). 0x04-0x07 exist only in 2025."""

    SUCCESS = 0x01
    ERROR = 0x02               # 2016 "error"; 2025 "other error"
    VIN_DUPLICATE = 0x03
    VIN_NOT_EXIST = 0x04
    SIGNATURE_ERROR = 0x05
    STRUCTURE_ERROR = 0x06
    DECRYPTION_ERROR = 0x07
    COMMAND = 0xFE             # the frame is a command, not a response


class Encryption(IntEnum):
    """Data-unit encryption byte (§2.3). SM2/SM4 exist only in 2025."""

    NONE = 0x01
    RSA = 0x02
    AES = 0x03                 # 2016: AES-128
    SM2 = 0x04
    SM4 = 0x05
    ABNORMAL = 0xFE
    INVALID = 0xFF


class SignatureType(IntEnum):
    """2025 signature algorithm (Table 8) — numbered differently from ``Encryption``."""

    SM2 = 0x01
    RSA = 0x02
    ECC = 0x03


class Special(Enum):
    """Explicit stand-ins for the abnormal (0xFE…) and invalid (0xFF…) wire sentinels (§3.3)."""

    ABNORMAL = "abnormal"
    INVALID = "invalid"


@dataclass(frozen=True)
class Signature:
    """2025 signature block (Table 8): algorithm, R and S as raw bytes (either may be empty)."""

    sig_type: SignatureType | int
    r: bytes
    s: bytes = b""


class Cipher(Protocol):
    """Data-unit encryption for one direction of one link (see ``crypto.py``)."""

    @property
    def encryption(self) -> Encryption: ...

    def encrypt(self, plaintext: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes) -> bytes: ...


class Signer(Protocol):
    """Produces 2025 signatures over the signed range of a data unit."""

    def sign(self, data: bytes) -> Signature: ...


class Verifier(Protocol):
    """Checks 2025 signatures; returns False on a wrong signature (never raises for that)."""

    def verify(self, data: bytes, signature: Signature) -> bool: ...


# --------------------------------------------------------------------------- session-level units


@dataclass(frozen=True)
class Empty:
    """An empty data unit (L = 0): heartbeat, time-calibration request, bare acknowledgements."""


@dataclass(frozen=True)
class TimeOnly:
    """A 6-byte data unit holding only a time: acknowledgements, time-calibration reply (§2.2)."""

    time: datetime


@dataclass(frozen=True)
class Opaque:
    """Bytes the codec does not interpret: an encrypted unit without its key, a vendor command."""

    data: bytes


@dataclass(frozen=True)
class VehicleLogin:
    """2016 vehicle login 0x01 (§4.2): n subsystems, each code m characters (m = 0: no codes)."""

    time: datetime
    serial: int
    iccid: str
    subsystem_count: int
    code_length: int
    codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class VehicleLogin2025:
    """2025 vehicle login 0x01 (§10.2): pack count per BMS, then 24-character pack codes."""

    time: datetime
    serial: int
    iccid: str
    packs_per_bms: tuple[int, ...]
    pack_codes: tuple[str, ...]


@dataclass(frozen=True)
class VehicleLogout:
    """Vehicle logout 0x04 (§4.3), both editions: the serial is the current login's."""

    time: datetime
    serial: int


@dataclass(frozen=True)
class PlatformLogin:
    """Platform login 0x05 (§4.4): platform-to-platform forwarding only."""

    time: datetime
    serial: int
    username: str
    password: str
    encryption_rule: Encryption | int


@dataclass(frozen=True)
class PlatformLogout:
    """Platform logout 0x06 (§4.5)."""

    time: datetime
    serial: int


class ActivationStatus(IntEnum):
    """2025 activation result status (Table B.4)."""

    ACTIVATED = 0x01
    FAILED = 0x02


class ActivationInfo(IntEnum):
    """2025 activation result info (Table B.4; rtm_con's 1/2/3 numbering is off by one)."""

    SUCCESS = 0x00
    CHIP_ALREADY_ACTIVATED = 0x01
    VIN_DUPLICATE = 0x02


@dataclass(frozen=True)
class Activation:
    """2025 activation 0x09 (Table B.3): signed from the time through the VIN, no 0xFF marker."""

    time: datetime
    chip_id: str               # 16 characters on the wire, right-padded with spaces
    public_key: bytes
    vin: str
    signature: Signature


@dataclass(frozen=True)
class ActivationResult:
    """2025 activation result 0x0A (Table B.4)."""

    status: ActivationStatus | int
    info: ActivationInfo | int


@dataclass(frozen=True)
class KeyExchange:
    """2025 data-unit key exchange 0x0B (Table 31): no leading message time."""

    key_type: Encryption | int
    key: bytes
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True)
class Frame:
    """One GB/T 32960 frame: header fields and the decoded data unit."""

    edition: Edition
    command: Command | int
    response: ResponseFlag | int
    vin: str                   # trailing 0x00 padding removed; re-padded with 0x00 on encode
    encryption: Encryption | int = Encryption.NONE
    body: DataUnit = field(default_factory=Empty)


# =========================================================================== coded values


class VehicleState(IntEnum):
    """Vehicle state (GB/T 32960.3-2016 whole-vehicle data / spec §5.2 byte 0; 2025 Table 10)."""

    STARTED = 0x01
    STOPPED = 0x02
    OTHER = 0x03


class ChargingState(IntEnum):
    """Charging state (2016 whole-vehicle data / spec §5.2 byte 1; 2025 Table 10)."""

    PARKED_CHARGING = 0x01
    DRIVING_CHARGING = 0x02
    NOT_CHARGING = 0x03
    CHARGING_COMPLETE = 0x04


class RunningMode(IntEnum):
    """Running mode (2016 whole-vehicle data / spec §5.2 byte 2; 2025 Table 10)."""

    ELECTRIC = 0x01
    HYBRID = 0x02
    FUEL = 0x03


class DcDcState(IntEnum):
    """DC-DC state (spec §5.2 byte 14) and fuel-cell high-voltage DC/DC state (§5.4, 2025 Table 17)."""

    WORKING = 0x01
    DISCONNECTED = 0x02


class GearPosition(IntEnum):
    """Gear code, bits 3-0 of the gear byte (Annex A Table A.1 / spec §5.2.1). All 16 codes are defined."""

    NEUTRAL = 0
    GEAR_1 = 1
    GEAR_2 = 2
    GEAR_3 = 3
    GEAR_4 = 4
    GEAR_5 = 5
    GEAR_6 = 6
    GEAR_7 = 7
    GEAR_8 = 8
    GEAR_9 = 9
    GEAR_10 = 10
    GEAR_11 = 11
    GEAR_12 = 12
    REVERSE = 13
    DRIVE = 14
    PARK = 15


class MotorState(IntEnum):
    """Drive-motor state (2016 drive-motor data / spec §5.3; 2025 Table 16)."""

    CONSUMING = 0x01
    GENERATING = 0x02
    OFF = 0x03
    READY = 0x04


class EngineState(IntEnum):
    """2016 engine state (spec §5.5)."""

    RUNNING = 0x01
    STOPPED = 0x02


class LocationStatus(IntFlag):
    """Positioning status bits (spec §5.6; 2025 Table 22). Bits 3-7 are reserved and kept as they are."""

    INVALID_FIX = 0x01
    SOUTH = 0x02
    WEST = 0x04


class CoordinateSystem(IntEnum):
    """2025 coordinate-system byte of the location block (2025 Table 21)."""

    WGS84 = 0x01
    GCJ02 = 0x02
    OTHER = 0x03


class AlarmLevel(IntEnum):
    """Highest alarm level (spec §5.8; 2025 Table 23 adds level 4 = thermal event, GB 38031).

    Also the terminal-control warning level (spec §8; 2025 Table B.13 adds level 4).
    """

    NONE = 0
    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3
    LEVEL_4 = 4


class GeneralAlarmFlag(IntFlag):
    """General alarm flags, bit n = ``(dword >> n) & 1`` (spec §5.8.1 bits 0-18; 2025 Table 24 bits 19-27).

    2025 renames bit 5/6 "minimum parallel unit over/under-voltage", bit 10 "minimum parallel unit poor
    consistency", bit 11 "insulation resistance failure"; the members keep the 2016 names.
    Reserved bits (2016: 19-31, 2025: 28-31) survive decoding as unnamed bits (``IntFlag`` KEEP).
    """

    TEMPERATURE_DIFFERENCE = 1 << 0
    BATTERY_HIGH_TEMPERATURE = 1 << 1
    STORAGE_OVERVOLTAGE = 1 << 2
    STORAGE_UNDERVOLTAGE = 1 << 3
    LOW_SOC = 1 << 4
    CELL_OVERVOLTAGE = 1 << 5
    CELL_UNDERVOLTAGE = 1 << 6
    HIGH_SOC = 1 << 7
    SOC_JUMP = 1 << 8
    STORAGE_MISMATCH = 1 << 9
    CELL_POOR_CONSISTENCY = 1 << 10
    INSULATION = 1 << 11
    DCDC_TEMPERATURE = 1 << 12
    BRAKE_SYSTEM = 1 << 13
    DCDC_STATE = 1 << 14
    MOTOR_CONTROLLER_TEMPERATURE = 1 << 15
    HV_INTERLOCK = 1 << 16
    MOTOR_TEMPERATURE = 1 << 17
    STORAGE_OVERCHARGE = 1 << 18
    MOTOR_OVERSPEED = 1 << 19            # 2025
    MOTOR_OVERCURRENT = 1 << 20          # 2025
    SUPERCAP_OVERTEMPERATURE = 1 << 21   # 2025
    SUPERCAP_OVERVOLTAGE = 1 << 22       # 2025
    THERMAL_EVENT = 1 << 23              # 2025, always a level-4 fault
    HYDROGEN_LEAK = 1 << 24              # 2025
    H2_PRESSURE_ABNORMAL = 1 << 25       # 2025
    H2_TEMPERATURE_ABNORMAL = 1 << 26    # 2025
    STACK_OVERTEMPERATURE = 1 << 27      # 2025


class ParameterId(IntEnum):
    """Terminal parameter ids (Table B.12 / spec §7; 2025 Table B.8). 0x80-0xFE are user-defined."""

    LOCAL_STORAGE_PERIOD = 0x01          # WORD, ms
    REPORT_PERIOD = 0x02                 # 2016 WORD s; 2025 BYTE s
    ALARM_REPORT_PERIOD = 0x03           # 2016 WORD ms; 2025 BYTE s
    PLATFORM_DOMAIN_LENGTH = 0x04        # BYTE M
    PLATFORM_DOMAIN = 0x05               # BYTE[M] (needs an earlier 0x04 in the same list)
    PLATFORM_PORT = 0x06                 # WORD
    HARDWARE_VERSION = 0x07              # STRING[5], query only
    FIRMWARE_VERSION = 0x08              # STRING[5], query only
    HEARTBEAT_PERIOD = 0x09              # BYTE s
    TERMINAL_RESPONSE_TIMEOUT = 0x0A     # WORD s
    PLATFORM_RESPONSE_TIMEOUT = 0x0B     # WORD s
    LOGIN_RETRY_INTERVAL = 0x0C          # BYTE min
    PUBLIC_DOMAIN_LENGTH = 0x0D          # BYTE N
    PUBLIC_DOMAIN = 0x0E                 # BYTE[N] (needs an earlier 0x0D in the same list)
    PUBLIC_PORT = 0x0F                   # WORD
    SAMPLING_MONITORING = 0x10           # BYTE 0x01 yes, 0x02 no


class ControlId(IntEnum):
    """Terminal control command ids (2016 Annex B Tables B.14-B.17 / spec §8). 0x80-0xFE user-defined."""

    REMOTE_UPGRADE = 0x01
    SHUTDOWN = 0x02
    RESET = 0x03
    FACTORY_RESET = 0x04
    DISCONNECT = 0x05
    WARNING = 0x06
    OPEN_SAMPLING_LINK = 0x07


# =========================================================================== info blocks (0x02 / 0x03)
#
# Field conventions: ``X | Special`` where the standard defines abnormal/invalid sentinels for the
# field; coded fields hold ``Enum | int`` (int for codes the standard does not define). Lists whose
# count byte/word carries a sentinel hold ``Special`` instead of a tuple (the wire then has no list).


@dataclass(frozen=True)
class Gear:
    """Gear byte (Annex A Table A.1 / spec §5.2.1; 2025 Table A.1).

    ``invalid`` is bit 7 (2025 only: gear invalid); ``reserved_bits`` keeps the reserved bits as on the
    wire (2016: bits 7-6, mask 0xC0; 2025: bit 6, mask 0x40) so every byte re-encodes exactly.
    """

    gear: GearPosition
    drive_force: bool = False
    brake_force: bool = False
    invalid: bool = False
    reserved_bits: int = 0


@dataclass(frozen=True)
class VehicleData:
    """2016 info type 0x01, whole-vehicle data, 20 bytes (GB/T 32960.3-2016 Annex B: Body Table 9 + pedals;
    spec §5.2).

    Bytes 18-19 are accelerator + brake pedal (Annex B, default). With
    ``CodecOptions.vehicle_tail = VehicleTail.RESERVED`` (Body Table 9) they decode into ``reserved``
    (a WORD) and both pedals are ``None``; the encoder writes ``reserved`` whenever both pedals are None.
    Units: km/h, km, V, A (offset 1000 A), %, kΩ (no sentinel in 2016), pedal %.
    """

    vehicle_state: VehicleState | int | Special
    charging_state: ChargingState | int | Special
    running_mode: RunningMode | int | Special
    speed: float | Special
    mileage: float | Special
    total_voltage: float | Special
    total_current: float | Special
    soc: int | Special
    dcdc_state: DcDcState | int | Special
    gear: Gear
    insulation_resistance: int
    accelerator_pedal: int | Special | None
    brake_pedal: int | Special | None
    reserved: int | None = None


@dataclass(frozen=True)
class VehicleData2025:
    """2025 info type 0x01, whole-vehicle data, 18 bytes (2025 Table 10 / spec §10.4).

    Current offset 3000 A; insulation resistance gains FE/FF sentinels; pedals removed.
    """

    vehicle_state: VehicleState | int | Special
    charging_state: ChargingState | int | Special
    running_mode: RunningMode | int | Special
    speed: float | Special
    mileage: float | Special
    total_voltage: float | Special
    total_current: float | Special
    soc: int | Special
    dcdc_state: DcDcState | int | Special
    gear: Gear
    insulation_resistance: int | Special


@dataclass(frozen=True)
class DriveMotor:
    """One 2016 drive motor, 12 bytes (GB/T 32960.3-2016 drive-motor data / spec §5.3).

    °C (offset 40), r/min (offset 20000), N·m (0.1, offset 2000 N·m), V, A (offset 1000 A).
    """

    number: int | Special
    state: MotorState | int | Special
    controller_temperature: int | Special
    speed: int | Special
    torque: float | Special
    temperature: int | Special
    controller_voltage: float | Special
    controller_current: float | Special


@dataclass(frozen=True)
class DriveMotors:
    """2016 info type 0x02 (spec §5.3): motor count BYTE then 12 bytes per motor."""

    motors: tuple[DriveMotor, ...] | Special


@dataclass(frozen=True)
class DriveMotor2025:
    """One 2025 drive motor, 10 bytes (2025 Table 16): speed offset 32000 r/min, DWORD torque
    (0.1 N·m, offset 20000 N·m); controller voltage/current removed."""

    number: int | Special
    state: MotorState | int | Special
    controller_temperature: int | Special
    speed: int | Special
    torque: float | Special
    temperature: int | Special


@dataclass(frozen=True)
class DriveMotors2025:
    """2025 info type 0x02 (2025 Table 15): count BYTE (FE/FF: no list) then 10 bytes per motor."""

    motors: tuple[DriveMotor2025, ...] | Special


@dataclass(frozen=True)
class FuelCell:
    """2016 info type 0x03, fuel-cell data, 18 + N bytes (GB/T 32960.3-2016 fuel-cell data / spec §5.4).

    V, A, kg/100 km (0.01), probe temperatures °C (offset 40, no sentinel), hydrogen-system max temperature
    °C (0.1, offset 40), concentration mg/kg, pressure MPa (0.1, no sentinel).
    """

    voltage: float | Special
    current: float | Special
    consumption_rate: float | Special
    probe_temperatures: tuple[int, ...] | Special
    h2_max_temperature: float | Special
    h2_max_temperature_probe: int | Special
    h2_max_concentration: int | Special
    h2_max_concentration_sensor: int | Special
    h2_max_pressure: float
    h2_max_pressure_sensor: int | Special
    dcdc_state: DcDcState | int | Special


@dataclass(frozen=True)
class FuelCell2025:
    """2025 info type 0x03, fuel-cell engine and on-board hydrogen system, 12 bytes (2025 Table 17).

    Max temperature °C (WORD, offset 40), concentration % by volume (0.0001 %), pressure MPa (0.1),
    remaining hydrogen %, DC/DC controller temperature °C (offset 40).
    """

    h2_max_temperature: int | Special
    h2_max_temperature_probe: int | Special
    h2_max_concentration: float | Special
    h2_max_concentration_sensor: int | Special
    h2_max_pressure: float | Special
    h2_max_pressure_sensor: int | Special
    dcdc_state: DcDcState | int | Special
    h2_remaining: int | Special
    dcdc_controller_temperature: int | Special


@dataclass(frozen=True)
class Engine:
    """2016 info type 0x04, engine data, 5 bytes (spec §5.5): r/min, L/100 km (0.01)."""

    state: EngineState | int | Special
    crankshaft_speed: int | Special
    fuel_consumption_rate: float | Special


@dataclass(frozen=True)
class Engine2025:
    """2025 info type 0x04, engine data, 2 bytes (2025 Table 20): crankshaft speed r/min."""

    crankshaft_speed: int | Special


@dataclass(frozen=True)
class Location:
    """2016 info type 0x05, vehicle location, 9 bytes (GB/T 32960.3-2016 location data / spec §5.6).

    Degrees, signed: the wire carries magnitudes ×10⁶ and the hemisphere in ``status`` (SOUTH/WEST);
    the codec derives the sign from the status on decode; on encode the sign of each non-zero
    coordinate sets or clears SOUTH/WEST (a zero or sentinel coordinate keeps the given bit). A sentinel
    coordinate (0xFFFFFFFE/F) is a ``Special``.
    """

    status: LocationStatus
    longitude: float | Special
    latitude: float | Special


@dataclass(frozen=True)
class Location2025:
    """2025 info type 0x05, vehicle location, 10 bytes (2025 Table 21): adds the coordinate system."""

    status: LocationStatus
    coordinate_system: CoordinateSystem | int | Special
    longitude: float | Special
    latitude: float | Special


@dataclass(frozen=True)
class Extremes:
    """2016 info type 0x06, extreme values, 14 bytes (GB/T 32960.3-2016 extreme-value data / spec §5.7).

    V (0.001), °C (offset 40).
    """

    max_voltage_subsystem: int | Special
    max_voltage_cell: int | Special
    max_cell_voltage: float | Special
    min_voltage_subsystem: int | Special
    min_voltage_cell: int | Special
    min_cell_voltage: float | Special
    max_temperature_subsystem: int | Special
    max_temperature_probe: int | Special
    max_temperature: int | Special
    min_temperature_subsystem: int | Special
    min_temperature_probe: int | Special
    min_temperature: int | Special


@dataclass(frozen=True)
class Alarm:
    """2016 info type 0x07, alarm data (GB/T 32960.3-2016 / spec §5.8): level, flags, four fault-code lists.

    A list is ``Special`` when its count byte is 0xFE/0xFF (no codes follow).
    """

    max_level: AlarmLevel | int | Special
    general_flags: GeneralAlarmFlag
    ress_faults: tuple[int, ...] | Special = ()
    motor_faults: tuple[int, ...] | Special = ()
    engine_faults: tuple[int, ...] | Special = ()
    other_faults: tuple[int, ...] | Special = ()


@dataclass(frozen=True)
class FlagLevel:
    """One entry of the 2025 N5 list (2025 Table 23): general-flag bit index and its alarm level."""

    bit: int
    level: AlarmLevel | int


@dataclass(frozen=True)
class Alarm2025:
    """2025 info type 0x06, alarm data (2025 Tables 23-24): as 2016 plus the N5 flag-level list."""

    max_level: AlarmLevel | int | Special
    general_flags: GeneralAlarmFlag
    ress_faults: tuple[int, ...] | Special = ()
    motor_faults: tuple[int, ...] | Special = ()
    engine_faults: tuple[int, ...] | Special = ()
    other_faults: tuple[int, ...] | Special = ()
    flag_levels: tuple[FlagLevel, ...] | Special = ()


@dataclass(frozen=True)
class SubsystemVoltages:
    """One 2016 0x08 record (Annex B Tables B.5-B.6 / spec §5.9): V, A (offset 1000 A), cells V (0.001).

    ``start_index`` is 1-based; a record carries at most 200 cells (the encoder splits longer ones,
    see ``CodecOptions.max_cells_per_record``).
    """

    number: int | Special
    voltage: float | Special
    current: float | Special
    cell_count: int | Special
    start_index: int
    cell_voltages: tuple[float | Special, ...]


@dataclass(frozen=True)
class CellVoltages:
    """2016 info type 0x08, RESS voltage data (spec §5.9): subsystem count BYTE then records."""

    subsystems: tuple[SubsystemVoltages, ...] | Special


@dataclass(frozen=True)
class PackVoltages:
    """One 2025 0x07 pack (2025 Table 12): V, A (offset 3000 A), unit count WORD, unit voltages V (0.001)."""

    number: int | Special
    voltage: float | Special
    current: float | Special
    cell_voltages: tuple[float | Special, ...]


@dataclass(frozen=True)
class ParallelUnitVoltages:
    """2025 info type 0x07, minimum-parallel-unit voltages (2025 Table 11): pack count then packs."""

    packs: tuple[PackVoltages, ...] | Special


@dataclass(frozen=True)
class SubsystemTemperatures:
    """One temperature record: number, probe count WORD (FFFE/FFFF: no list), °C (offset 40) per probe."""

    number: int | Special
    temperatures: tuple[int | Special, ...] | Special


@dataclass(frozen=True)
class Temperatures:
    """Probe temperatures: 2016 info type 0x09 (Annex B Tables B.7-B.8 / spec §5.9) and 2025 0x08
    (2025 Tables 13-14), same layout in both editions."""

    subsystems: tuple[SubsystemTemperatures, ...] | Special


@dataclass(frozen=True)
class FuelCellStack:
    """One 2025 fuel-cell stack (2025 Table 19): V, A, kPa (0.1, offset 100 kPa), °C (offset 40)."""

    number: int | Special
    voltage: float | Special
    current: float | Special
    h2_inlet_pressure: float | Special
    air_inlet_pressure: float | Special
    air_inlet_temperature: int | Special
    coolant_temperatures: tuple[int | Special, ...] | Special


@dataclass(frozen=True)
class FuelCellStacks:
    """2025 info type 0x30, fuel-cell stack data (2025 Table 18): count BYTE then stacks."""

    stacks: tuple[FuelCellStack, ...] | Special


@dataclass(frozen=True)
class Supercapacitor:
    """2025 info type 0x31, super-capacitor data (2025 Table 25): one system, no count prefix.

    V (0.1), A (0.1, offset 3000 A), cell voltages V (0.001), temperatures °C (offset 40).
    """

    number: int | Special
    total_voltage: float | Special
    total_current: float | Special
    cell_voltages: tuple[float | Special, ...] | Special
    temperatures: tuple[int | Special, ...] | Special


@dataclass(frozen=True)
class SupercapacitorExtremes:
    """2025 info type 0x32, super-capacitor extremes, 18 bytes (2025 Table 26): cell/probe codes are WORDs."""

    max_voltage_system: int | Special
    max_voltage_cell: int | Special
    max_voltage: float | Special
    min_voltage_system: int | Special
    min_voltage_cell: int | Special
    min_voltage: float | Special
    max_temperature_system: int | Special
    max_temperature_probe: int | Special
    max_temperature: int | Special
    min_temperature_system: int | Special
    min_temperature_probe: int | Special
    min_temperature: int | Special


@dataclass(frozen=True)
class CustomBlock:
    """User-defined info type 0x80-0xFE (spec §5.10; 2025 Table 27): WORD length + OEM bytes, kept intact."""

    info_type: int
    data: bytes


InfoBlock = (
    VehicleData | VehicleData2025 | DriveMotors | DriveMotors2025 | FuelCell | FuelCell2025 | Engine
    | Engine2025 | Location | Location2025 | Extremes | Alarm | Alarm2025 | CellVoltages
    | ParallelUnitVoltages | Temperatures | FuelCellStacks | Supercapacitor | SupercapacitorExtremes
    | CustomBlock
)


@dataclass(frozen=True)
class RealtimeReport:
    """Realtime report 0x02 and reissue 0x03 (spec §5; 2025 Tables 7-9): time, info blocks in wire order,
    and (2025) the signature block after the 0xFF marker (None = unsigned)."""

    time: datetime
    blocks: tuple[InfoBlock, ...] = ()
    signature: Signature | None = None


# =========================================================================== parameters (0x80 / 0x81)


@dataclass(frozen=True)
class Parameter:
    """One parameter item (Table B.12 / spec §7; 2025 Table B.8).

    ``value``: int (periods, ports, lengths 0x04/0x0D, timeouts, 0x10) or ``Special`` where the id has
    sentinels; str for domains 0x05/0x0E and versions 0x07/0x08 (bytes mapped 1:1 via latin-1); bytes for
    user-defined ids whose size is configured in ``CodecOptions.parameter_sizes``.
    """

    id: ParameterId | int
    value: int | str | bytes | Special


@dataclass(frozen=True)
class ParameterQuery:
    """Parameter query command 0x80 (Annex B Tables B.9-B.11 / spec §7): time + parameter ids."""

    time: datetime
    ids: tuple[ParameterId | int, ...]


@dataclass(frozen=True)
class ParameterQueryReply:
    """Parameter query reply (0x80 response, Annex B Tables B.9-B.13 / spec §7): time + parameter items."""

    time: datetime
    items: tuple[Parameter, ...]


@dataclass(frozen=True)
class ParameterSet:
    """Parameter set command 0x81 (Annex B Tables B.9-B.13 / spec §7): time + parameter items."""

    time: datetime
    items: tuple[Parameter, ...]


# =========================================================================== terminal control (0x82)


@dataclass(frozen=True)
class RemoteUpgrade:
    """Remote-upgrade parameters, binary Table B.16 order (EMQX; vector E6), fields separated by ';'.

    ``server_address`` is exactly 6 raw bytes (IPv4: two zero bytes first); port and time limit (min)
    are WORDs. Text fields must not contain ';'.
    """

    apn: str
    username: str
    password: str
    server_address: bytes
    server_port: int
    manufacturer_id: str
    hardware_version: str
    firmware_version: str
    url: str
    connect_timeout: int


@dataclass(frozen=True)
class RemoteUpgradeText:
    """Remote-upgrade parameters, text variant with the URL first (Table B.15 prose order; JTNE, spec §D):
    ten ';'-separated text fields, numbers as decimal text (kept verbatim)."""

    url: str
    apn: str
    username: str
    password: str
    server_address: str
    server_port: str
    manufacturer_id: str
    hardware_version: str
    firmware_version: str
    connect_timeout: str


@dataclass(frozen=True)
class WarningParams:
    """Terminal warning parameters (control 0x06, spec §8; 2025 Table B.13): level + info bytes."""

    level: AlarmLevel | int | Special
    info: bytes = b""


@dataclass(frozen=True)
class TerminalControl:
    """Terminal control command 0x82 (Tables B.14-B.17 / spec §8): time, control id, parameters.

    ``params`` is ``RemoteUpgrade``/``RemoteUpgradeText`` for 0x01, ``WarningParams`` for 0x06, raw bytes
    otherwise (b"" for the parameterless shutdown/reset/factory reset/disconnect/open sampling link).
    """

    time: datetime
    command_id: ControlId | int
    params: RemoteUpgrade | RemoteUpgradeText | WarningParams | bytes = b""


DataUnit = (
    Empty | TimeOnly | Opaque | VehicleLogin | VehicleLogin2025 | VehicleLogout | PlatformLogin
    | PlatformLogout | Activation | ActivationResult | KeyExchange | RealtimeReport | ParameterQuery
    | ParameterQueryReply | ParameterSet | TerminalControl
)
