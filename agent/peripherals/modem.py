"""Cellular modem over AT commands (pyserial): the SIM's ICCID and the signal quality.

``Modem.open(url)`` opens any pyserial URL (``/dev/ttyUSB2``, ``loop://``, ``rfc2217://host:port``),
checks that something answers ``AT`` and turns echo off (``ATE0``). ``Modem(port)`` wraps an already
open pyserial-like object (``read``, ``write``, ``in_waiting``, ``close``).

Replies are read line by line (``SerialLines``, sans-I/O): the command's echo, unsolicited result codes
(``RING``, ``+CREG: …`` and friends, kept in ``Modem.urcs``) and blank lines are skipped; ``OK`` ends a
reply; ``ERROR``, ``+CME ERROR: n`` and a timeout raise ``ModemError``; a failing port (unplugged, EIO)
raises ``ModemPortError``, a ``ModemError`` too. Garbage lines are returned with
the reply and ignored by the parsers, which look for their own shape.

ICCID (``read_iccid``) — the vendor commands first, the standard SIM access last:

1. ``AT+CCID`` (u-blox, SIMCom SIM800, many others), 2. ``AT+QCCID`` (Quectel), 3. ``AT+ICCID`` and
4. ``AT+CICCID`` (SIMCom and others), 5. ``AT+CRSM=176,12258,0,0,10`` (3GPP TS 27.007 restricted SIM
access: READ BINARY of EF_ICCID 0x2FE2; BCD with the nibbles of each byte swapped, padded with ``F``).

The first command that yields a well-formed ICCID wins and is remembered (``Modem.variant``). An ICCID
is 19 or 20 digits (ITU-T E.118; trailing ``F`` padding removed). Its last digit is a Luhn check digit in
E.118, but real Chinese 20-digit ICCIDs often do not satisfy it, so a failed Luhn check is logged (once
per modem), not refused. ``login_iccid`` turns a 19-digit ICCID into the 20 characters of the GB/T 32960
login field by keeping the SIM's own ``F`` padding. Logs never show more than the last 4 digits.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Protocol

from agent.errors import TransportError
from agent.peripherals.lines import SerialLines

log = logging.getLogger(__name__)

DEFAULT_BAUD: Final = 115200
#: the ICCID commands in the order they are tried (the CRSM read last)
ICCID_COMMANDS: Final = ("AT+CCID", "AT+QCCID", "AT+ICCID", "AT+CICCID", "AT+CRSM=176,12258,0,0,10")
#: 3GPP TS 51.011 / 102.221 status words (SW1) that mean the READ BINARY succeeded
_CRSM_OK: Final = frozenset({0x90, 0x91, 0x92})
#: unsolicited result codes (by the text before ``:``) skipped while waiting for a reply
URC_PREFIXES: Final = frozenset({
    "RING", "+CRING", "+CREG", "+CGREG", "+CEREG", "+C5GREG", "+CMTI", "+CMT", "+CDS", "+CBM", "+CUSD",
    "+CTZV", "+CTZE", "+CTZEU", "+CIEV", "+CPIN", "+CFUN", "+QIND", "+QIURC", "+QUSIM", "+QSTK", "RDY",
    "+PACSP", "CALL READY", "SMS READY", "SMS DONE", "PB DONE", "+CGEV", "+UUSORD", "+UUSOCL", "+UMWI",
    "^SYSSTART", "*ATREADY", "+STIN", "+CNMI",
})
_FINAL_ERROR: Final = ("ERROR", "NO CARRIER", "NO DIALTONE", "BUSY", "NO ANSWER", "COMMAND NOT SUPPORT")
_ICCID_RE: Final = re.compile(r"[0-9]{19,20}")
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")


class ModemError(TransportError):
    """The modem did not answer, answered ``ERROR``/``+CME ERROR``, or gave no usable value."""


class ModemPortError(ModemError):
    """The port itself failed (device unplugged, EIO): no point trying another command."""


class SerialPort(Protocol):
    """What ``Modem`` needs of a pyserial ``Serial``."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SignalQuality:
    """``AT+CSQ``: ``rssi`` 0-31 (99 unknown; 100-191 TD-SCDMA), ``ber`` 0-7 (99 unknown)."""

    rssi: int
    ber: int

    @property
    def dbm(self) -> int | None:
        """Received signal strength in dBm (27.007: 0 → -113 or less, 31 → -51 or more), None if unknown."""
        if 0 <= self.rssi <= 31:
            return -113 + 2 * self.rssi
        if 100 <= self.rssi <= 191:
            return self.rssi - 216  # 100 → -116 dBm or less … 191 → -25 dBm or more
        return None

    @property
    def ber_class(self) -> int | None:
        """Bit error rate class 0-7 (RXQUAL), None if unknown."""
        return self.ber if 0 <= self.ber <= 7 else None


# ------------------------------------------------------------------------------------ ICCID values


def parse_iccid(text: str) -> str:
    """The ICCID digits of ``text`` (quotes, spaces and trailing ``F`` padding removed); ValueError when
    it is not 19 or 20 decimal digits."""
    value = text.strip().strip('"').strip().upper().rstrip("F")
    if not _ICCID_RE.fullmatch(value):
        raise ValueError(f"not an ICCID (19-20 digits): {mask_iccid(value)!r}")
    return value


def swap_nibbles(hex_text: str) -> str:
    """EF_ICCID bytes as the SIM stores them (``98 68 …``) → the digits in reading order (``8986…``)."""
    text = hex_text.strip().strip('"')
    if len(text) % 2 or not _HEX_RE.fullmatch(text):
        raise ValueError(f"EF_ICCID must be an even number of hex digits, got {len(text)} characters")
    return "".join(text[i + 1] + text[i] for i in range(0, len(text), 2)).upper()


def luhn_ok(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others (ISO/IEC 7812, used by E.118)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def login_iccid(iccid: str) -> str:
    """The 20 characters of the GB/T 32960 login ICCID field: a 20-digit ICCID as is, a 19-digit one
    with the trailing ``F`` the SIM itself pads EF_ICCID with."""
    digits = parse_iccid(iccid)
    return digits.ljust(20, "F")


def mask_iccid(iccid: str) -> str:
    """All but the last 4 characters replaced by ``*`` (the form logs may show)."""
    return "*" * max(0, len(iccid) - 4) + iccid[-4:]


# ------------------------------------------------------------------------------------ lines


#: the modem's line splitter (``agent.peripherals.lines.SerialLines``)
AtLines = SerialLines


def _urc(line: str, command: str) -> bool:
    head = line.split(":", 1)[0].strip().upper()
    if head not in URC_PREFIXES:
        return False
    name = command.upper()[2:].split("=", 1)[0].rstrip("?")  # AT+CREG? → +CREG: that reply is not a URC
    return head != name


# ------------------------------------------------------------------------------------ the modem


class Modem:
    """AT commands to one modem. ``clock`` (monotonic seconds) bounds every wait; inject it in tests."""

    def __init__(
        self, port: SerialPort, timeout_s: float = 2.0, *, name: str = "modem",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.name = name
        self.clock = clock
        self.lines = AtLines()
        #: unsolicited result codes seen while waiting for replies (the last 50)
        self.urcs: list[str] = []
        #: the command that gave the ICCID (None until one did)
        self.variant: str | None = None
        self._luhn_logged = False

    @classmethod
    def open(cls, url: str, baudrate: int = DEFAULT_BAUD, timeout_s: float = 2.0) -> Modem:
        """Open ``url`` with pyserial's ``serial_for_url``, check that the modem answers ``AT``, send
        ``ATE0``. ``ModemError`` if the port cannot be opened or nothing answers."""
        import serial  # pyserial, imported when used

        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=min(0.1, timeout_s),
                                         write_timeout=timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ModemError(f"modem: cannot open {url}: {exc}") from exc
        modem = cls(port, timeout_s, name=url)
        try:
            modem.sync()
        except ModemError:
            modem.close()
            raise
        log.info("modem on %s at %d baud answers", url, baudrate)
        return modem

    def sync(self, attempts: int = 3) -> None:
        """``AT`` until ``OK`` (up to ``attempts`` times), then ``ATE0`` (its failure is ignored)."""
        last: ModemError | None = None
        for _ in range(attempts):
            try:
                self.command("AT", min(self.timeout_s, 1.0))
                break
            except ModemError as exc:
                last = exc
        else:
            raise ModemError(f"{self.name}: no answer to AT ({last})")
        try:
            self.command("ATE0")
        except ModemError as exc:
            log.info("%s: ATE0 refused (%s): echo stays on, replies are filtered", self.name, exc)

    # -------------------------------------------------------------- commands

    def command(self, cmd: str, timeout_s: float | None = None) -> list[str]:
        """Send ``cmd`` and return its information lines (echo and URCs removed) once ``OK`` arrives."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self._drain()
        self._write((cmd + "\r").encode("ascii"))
        deadline = self.clock() + wait
        lines: list[str] = []
        while True:
            for line in self._read_lines(cmd, deadline):
                upper = line.upper()
                if upper == cmd.upper():
                    continue  # echo
                if upper == "OK":
                    return lines
                if upper in _FINAL_ERROR:
                    raise ModemError(f"{self.name}: {cmd}: {line}")
                if upper.startswith(("+CME ERROR", "+CMS ERROR")):
                    raise ModemError(f"{self.name}: {cmd}: {line}")
                if _urc(line, cmd):
                    self.urcs = [*self.urcs[-49:], line]
                    continue
                lines.append(line)

    def read_iccid(self) -> str:
        """The SIM's ICCID (19 or 20 digits), by the first command that gives a well-formed one.
        ``ModemError`` naming every attempt when none does."""
        order = list(ICCID_COMMANDS)
        if self.variant in order:  # the one that worked last time first
            order.remove(self.variant)
            order.insert(0, self.variant)
        failures: list[str] = []
        for cmd in order:
            try:
                lines = self.command(cmd)
                iccid = _crsm_iccid(lines) if cmd.startswith("AT+CRSM") else _vendor_iccid(lines)
            except ModemPortError:
                raise
            except (ModemError, ValueError) as exc:
                failures.append(f"{cmd}: {_short(exc, f'{self.name}: {cmd}')}")
                continue
            self.variant = cmd
            if not luhn_ok(iccid) and not self._luhn_logged:
                self._luhn_logged = True
                log.warning("%s: ICCID %s fails its Luhn check digit (kept: common on 20-digit SIMs)",
                            self.name, mask_iccid(iccid))
            log.info("%s: ICCID %s via %s", self.name, mask_iccid(iccid), cmd)
            return iccid
        raise ModemError(f"{self.name}: no ICCID ({'; '.join(failures)})")

    def signal_quality(self) -> SignalQuality:
        """``AT+CSQ`` → ``SignalQuality`` (``ModemError`` on no or a malformed reply)."""
        for line in self.command("AT+CSQ"):
            m = re.fullmatch(r"\+CSQ:\s*(\d+)\s*,\s*(\d+)", line, re.IGNORECASE)
            if m:
                return SignalQuality(int(m.group(1)), int(m.group(2)))
        raise ModemError(f"{self.name}: AT+CSQ gave no +CSQ line")

    def close(self) -> None:
        import serial

        try:
            self.port.close()
        except (serial.SerialException, OSError) as exc:
            log.debug("%s: close: %s", self.name, exc)

    def __enter__(self) -> Modem:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -------------------------------------------------------------- I/O

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise ModemPortError(f"{self.name}: write failed: {exc}") from exc

    def _read(self) -> bytes:
        import serial

        try:
            return self.port.read(max(1, self.port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise ModemPortError(f"{self.name}: read failed: {exc}") from exc

    def _read_lines(self, cmd: str, deadline: float) -> list[str]:
        while True:
            lines = self.lines.feed(self._read())
            if lines:
                return lines
            if self.clock() >= deadline:
                raise ModemError(f"{self.name}: {cmd}: no reply (timeout)")

    def _drain(self) -> None:
        """Forget what arrived before the command (late replies of a timed-out one); keep its URCs."""
        import serial

        for _ in range(64):  # bounded: a modem streaming without pause cannot hold us here
            try:
                waiting = self.port.in_waiting
            except (serial.SerialException, OSError) as exc:
                raise ModemPortError(f"{self.name}: port failed: {exc}") from exc
            if not waiting:
                break
            for line in self.lines.feed(self._read()):
                if line.split(":", 1)[0].strip().upper() in URC_PREFIXES:
                    self.urcs = [*self.urcs[-49:], line]
        self.lines.clear()


def _short(exc: Exception, prefix: str) -> str:
    """The message of ``exc`` without ``prefix: `` (the modem and command the caller names already)."""
    text = str(exc)
    return text[len(prefix) + 2:] if text.startswith(prefix + ": ") else text


def _vendor_iccid(lines: list[str]) -> str:
    """The ICCID in a vendor reply: ``+CCID: …``, ``+QCCID: …``, ``+ICCID: …``, ``ICCID: …`` or bare."""
    for line in lines:
        value = line.split(":", 1)[1] if ":" in line else line
        try:
            return parse_iccid(value)
        except ValueError:
            continue
    raise ValueError("no ICCID in the reply")


def _crsm_iccid(lines: list[str]) -> str:
    """``+CRSM: sw1,sw2,"hex"`` of READ BINARY EF_ICCID → the ICCID digits."""
    for line in lines:
        m = re.fullmatch(r'\+CRSM:\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*"?([0-9A-Fa-f]*)"?)?', line, re.IGNORECASE)
        if not m:
            continue
        sw1, sw2 = int(m.group(1)), int(m.group(2))
        if sw1 not in _CRSM_OK:
            raise ValueError(f"SIM status {sw1:02X}{sw2:02X}")
        return parse_iccid(swap_nibbles(m.group(3) or ""))
    raise ValueError("no +CRSM line in the reply")


__all__ = [
    "ICCID_COMMANDS",
    "AtLines",
    "Modem",
    "ModemError",
    "ModemPortError",
    "SignalQuality",
    "login_iccid",
    "luhn_ok",
    "mask_iccid",
    "parse_iccid",
    "swap_nibbles",
]
