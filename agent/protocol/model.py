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
from enum import Enum, IntEnum
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
    body: object = field(default_factory=Empty)
