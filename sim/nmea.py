"""NMEA 0183 output of the simulated GNSS receiver: RMC + GGA, to a file or a serial port."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sim.vehicle.state import VehicleState

log = logging.getLogger(__name__)

KNOTS_PER_KMH = 1.0 / 1.852
GEOID_SEPARATION_M = 7.0      # approximate geoid height over Hangzhou (EGM96)


def checksum(body: str) -> str:
    """XOR of the characters between ``$`` and ``*``, two hex digits."""
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"{c:02X}"


def _sentence(body: str) -> str:
    return f"${body}*{checksum(body)}"


def _lat(deg: float) -> tuple[str, str]:
    a = abs(deg)
    d = int(a)
    return f"{d:02d}{(a - d) * 60.0:07.4f}", "N" if deg >= 0 else "S"


def _lon(deg: float) -> tuple[str, str]:
    a = abs(deg)
    d = int(a)
    return f"{d:03d}{(a - d) * 60.0:07.4f}", "E" if deg >= 0 else "W"


def nmea_sentences(state: VehicleState, utc: datetime) -> list[str]:
    """``$GPRMC`` and ``$GPGGA`` sentences (no CR LF) for the state's position at ``utc``."""
    hms = utc.strftime("%H%M%S") + f".{utc.microsecond // 10000:02d}"
    date = utc.strftime("%d%m%y")
    if state.gnss_fix:
        lat, ns = _lat(state.latitude_deg)
        lon, ew = _lon(state.longitude_deg)
        knots = f"{state.speed_kmh * KNOTS_PER_KMH:.2f}"
        course = f"{state.heading_deg % 360.0:.1f}"
        rmc = f"GPRMC,{hms},A,{lat},{ns},{lon},{ew},{knots},{course},{date},,,A"
        gga = (f"GPGGA,{hms},{lat},{ns},{lon},{ew},1,10,0.9,{state.altitude_m:.1f},M,"
               f"{GEOID_SEPARATION_M:.1f},M,,")
    else:
        rmc = f"GPRMC,{hms},V,,,,,,,{date},,,N"
        gga = f"GPGGA,{hms},,,,,0,00,99.9,,M,,M,,"
    return [_sentence(rmc), _sentence(gga)]


class NmeaSink:
    """Writes sentences (CR LF terminated) to a file path or ``serial:/dev/ttyUSB0[:9600]``."""

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self._file: IO[bytes] | None = None
        self._serial: Any = None
        if self.target.startswith("serial:"):
            import serial  # pyserial

            rest = self.target[len("serial:"):]
            port, _, baud = rest.partition(":")
            self._serial = serial.Serial(port, int(baud) if baud else 9600, timeout=1)
            log.info("NMEA output on %s at %s baud", port, baud or "9600")
        else:
            self._file = Path(self.target).open("ab")  # noqa: SIM115 - closed in close()

    def write(self, sentences: list[str]) -> None:
        """Write the sentences, each followed by CR LF."""
        data = "".join(s + "\r\n" for s in sentences).encode("ascii")
        if self._serial is not None:
            self._serial.write(data)
        elif self._file is not None:
            self._file.write(data)
            self._file.flush()

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> NmeaSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
