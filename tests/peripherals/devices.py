"""Emulated serial devices for the peripheral tests: a fake modem (vendor variants, echo, URCs, garbage)
and a fake GNSS receiver, each serving the master side of a pty. The code under test opens a symlink
(``link``) that the device points at its pty slave, so a device can disappear (its pty closes) and a new
one return at the same configured path. Every thread is bounded in time and stops by itself."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_LIFE_S = 30.0  # a device thread never outlives this


class PtyDevice:
    """A pty whose master end is driven by ``handler`` (bytes in → bytes out) and/or ``stream`` (chunks
    written every ``period_s``). ``link`` is (re)pointed at the slave."""

    def __init__(
        self,
        link: Path,
        handler: Callable[[bytes], bytes] | None = None,
        stream: Iterator[bytes] | None = None,
        period_s: float = 0.02,
    ) -> None:
        self.link = link
        self.handler = handler
        self.stream = stream
        self.period_s = period_s
        self.written = 0
        self.gone = False
        self._stop = threading.Event()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # as a real UART: no echo, no line discipline before anyone opens it
        self.slave_path = os.ttyname(self.slave)
        tmp = link.with_name(link.name + ".new")
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(self.slave_path, tmp)
        os.replace(tmp, link)
        self._thread = threading.Thread(target=self._run, name="fake-device", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        end = time.monotonic() + MAX_LIFE_S
        next_chunk = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.01)
                if ready:
                    data = os.read(self.master, 4096)
                    if self.handler is not None and data:
                        self._send(self.handler(data))
                if self.stream is not None and time.monotonic() >= next_chunk:
                    next_chunk += self.period_s
                    chunk = next(self.stream, None)
                    if chunk is None:
                        self.stream = None
                    else:
                        self._send(chunk)
            except OSError:
                return

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self._stop.is_set():
            _, ready, _ = select.select([], [self.master], [], 0.05)
            if not ready:
                return  # nobody reads: drop, as a UART would
            n = os.write(self.master, view)
            self.written += n
            view = view[n:]

    def disappear(self) -> None:
        """The device goes away: its thread stops and both pty ends close (readers get EIO)."""
        if self.gone:
            return  # never close a descriptor number twice: it may belong to someone else by now
        self.gone = True
        self._stop.set()
        self._thread.join(2.0)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


# ------------------------------------------------------------------------------------ modem

#: the ICCID commands each emulated vendor answers; others get ERROR (or +CME ERROR: 4)
VENDOR_COMMANDS: dict[str, dict[str, str]] = {
    "ublox": {"AT+CCID": "+CCID: {iccid}"},
    "sim800": {"AT+CCID": "{iccid}"},
    "quectel": {"AT+QCCID": "+QCCID: {iccid}"},
    "simcom": {"AT+ICCID": "ICCID: {iccid}", "AT+CICCID": "+ICCID: {iccid}"},
    "crsm": {},
}


def ef_iccid(iccid: str) -> str:
    """How a SIM stores the ICCID in EF_ICCID (F-padded to 20, nibbles of each byte swapped)."""
    padded = iccid.ljust(20, "F")
    return "".join(padded[i + 1] + padded[i] for i in range(0, 20, 2))


@dataclass
class FakeModem:
    """A modem's command interpreter. ``echo``: echoes commands; ``sticky_echo``: ignores ATE0;
    ``urcs``: lines sent before and inside each reply; ``garbage``: bytes before each reply;
    ``silent``: commands never answered; ``cme``: unknown commands get ``+CME ERROR: 4``."""

    vendor: str = "ublox"
    iccid: str = "89860000000000000001"
    csq: tuple[int, int] = (23, 99)
    echo: bool = True
    sticky_echo: bool = False
    urcs: tuple[str, ...] = ()
    garbage: bytes = b""
    silent: frozenset[str] = frozenset()
    cme: bool = False
    replies: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    _buf: bytes = b""

    def __call__(self, data: bytes) -> bytes:
        self._buf += data
        out = b""
        while b"\r" in self._buf:
            raw, self._buf = self._buf.split(b"\r", 1)
            cmd = raw.strip(b"\n").decode("latin-1").strip()
            if not cmd:
                continue
            self.commands.append(cmd)
            if self.echo:
                out += raw + b"\r"
            out += self._reply(cmd.upper())
        return out

    def _reply(self, cmd: str) -> bytes:
        if cmd in self.silent:
            return b""
        body = self._answer(cmd)
        lines: list[str] = []
        for i, line in enumerate(body):
            if i == 1 and self.urcs:
                lines.append(self.urcs[-1])
            lines.append(line)
        head = "".join(f"\r\n{u}\r\n" for u in self.urcs[:1])
        return self.garbage + (head + "".join(f"\r\n{line}\r\n" for line in lines)).encode("latin-1")

    def _answer(self, cmd: str) -> list[str]:
        error = "+CME ERROR: 4" if self.cme else "ERROR"
        if cmd in self.replies:
            return [self.replies[cmd], "OK"]
        if cmd == "AT":
            return ["OK"]
        if cmd in ("ATE0", "ATE1"):
            if not self.sticky_echo:
                self.echo = cmd == "ATE1"
            return ["OK"]
        if cmd == "AT+CSQ":
            return [f"+CSQ: {self.csq[0]},{self.csq[1]}", "OK"]
        wanted = VENDOR_COMMANDS[self.vendor].get(cmd)
        if wanted is not None:
            return [wanted.format(iccid=self.iccid.ljust(20, "F")), "OK"]
        if cmd == "AT+CRSM=176,12258,0,0,10":
            return [f'+CRSM: 144,0,"{ef_iccid(self.iccid)}"', "OK"]
        return [error]


# ------------------------------------------------------------------------------------ GNSS


def nmea(body: str) -> str:
    """``$body*CS`` with its checksum."""
    cs = 0
    for ch in body.encode("ascii"):
        cs ^= ch
    return f"${body}*{cs:02X}"


def fix_lines(second: int, valid: bool = True, day: str = "010125") -> list[str]:
    """One epoch (RMC + GGA) at 08:00:``second`` UTC on ``day`` (ddmmyy), moving east 0.0001° a second."""
    hhmmss = f"0800{second:02d}.00"
    lon = 11620.0000 + second * 0.006  # minutes: 0.006' = 0.0001°
    lon_text = f"{int(lon // 100):03d}{lon % 100:07.4f}"
    status = "A" if valid else "V"
    if valid:
        rmc = nmea(f"GPRMC,{hhmmss},{status},3954.0000,N,{lon_text},E,10.0,90.0,{day},,,A")
        gga = nmea(f"GPGGA,{hhmmss},3954.0000,N,{lon_text},E,1,08,0.9,50.0,M,0.0,M,,")
    else:
        rmc = nmea(f"GPRMC,{hhmmss},V,,,,,,,{day},,,N")
        gga = nmea(f"GPGGA,{hhmmss},,,,,0,00,99.9,,M,,M,,")
    return [rmc, gga]


def ublox_epoch(second: int) -> list[str]:
    """One epoch as a u-blox M8 prints it: GN talker, TXT/GSA/GSV/VTG/GLL around RMC and GGA."""
    rmc, gga = (line.replace("$GP", "$GN", 1) for line in fix_lines(second))
    rmc, gga = nmea(rmc[1:-3]), nmea(gga[1:-3])  # re-checksum after the talker change
    return [
        nmea("GNTXT,01,01,02,u-blox AG - www.u-blox.com"),
        rmc,
        nmea("GNVTG,90.0,T,,M,10.0,N,18.5,K,A"),
        gga,
        nmea("GNGSA,A,3,80,71,73,79,69,,,,,,,,1.83,1.09,1.47"),
        nmea("GPGSV,3,1,10,23,38,230,44,29,71,156,47,07,29,116,41,08,09,081,36"),
        nmea(f"GNGLL,3954.0000,N,11620.0000,E,0800{second:02d}.00,A,A"),
    ]
