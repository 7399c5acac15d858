"""The lite firmware's NMEA RMC reader (board/micropython/tbox_lite/gnss.py) under MicroPython,
against pynmea2 on the same sentences: positions in all four hemispheres, lost fixes, bad checksums,
other sentences and garbage, fed in arbitrary chunks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pynmea2
import pytest

from sim.nmea import checksum
from tests.micropython_support import ROOT, copy_tree, node_or_skip, run_micropython

pytestmark = pytest.mark.micropython

SCRIPT = """
import json, sys
from tbox_lite.gnss import Gnss

class Uart:
    def __init__(self, chunks):
        self.chunks = chunks
    def read(self):
        return self.chunks.pop(0) if self.chunks else None

class Term:
    position = None
    def __init__(self):
        self.seen = []
    def set_position(self, lon, lat, valid):
        self.position = (lon, lat, valid)
        self.seen.append([lon, lat, valid])

with open('/chunks.json') as f:
    chunks = [bytes.fromhex(c) for c in json.load(f)]
term = Term()
gnss = Gnss(Uart(chunks), term)
while gnss.uart.chunks:
    gnss.poll()
print('IMPL', sys.implementation.name)
print('RESULT', json.dumps({'seen': term.seen, 'fixes': gnss.fixes, 'bad': gnss.bad}))
"""


def _coord(value: float, lat: bool) -> tuple[str, str]:
    hemi = ("N" if value >= 0 else "S") if lat else ("E" if value >= 0 else "W")
    v = abs(value)
    deg = int(v)
    minutes = (v - deg) * 60
    return (f"{deg:02d}{minutes:08.5f}" if lat else f"{deg:03d}{minutes:08.5f}"), hemi


def _rmc(lon: float, lat: float, valid: bool = True) -> str:
    la, ns = _coord(lat, True)
    lo, ew = _coord(lon, False)
    body = f"GNRMC,083015.00,{'A' if valid else 'V'},{la},{ns},{lo},{ew},12.5,87.0,220126,,,A"
    return f"${body}*{checksum(body)}"


def test_rmc_positions_match_pynmea2(tmp_path: Path) -> None:
    node_or_skip()
    rng = random.Random(5)
    lines: list[str] = []
    for _ in range(40):
        lines.append(_rmc(rng.uniform(-180, 180), rng.uniform(-90, 90)))
    lines.append(_rmc(121.5, 31.2, valid=False))  # fix lost: last position, invalid
    body = "GPRMC,083016.00,V,,,,,,,220126,,,N"
    lines.append(f"${body}*{checksum(body)}")  # no fix and no coordinates (what sim.nmea sends)
    good = _rmc(116.397, 39.909)
    lines.append(good[:-2] + ("00" if good[-2:] != "00" else "11"))  # bad checksum
    lines.append("$GPGGA,083015.00,3954.5400,N,11623.8200,E,1,10,0.9,50.0,M,,M,,*47")  # not RMC
    lines.append("#\x00garbage RMC nonsense")
    lines.append(good)
    stream = "".join(line + "\r\n" for line in lines).encode("latin-1")
    cuts = sorted(rng.sample(range(1, len(stream)), 60))
    chunks = [stream[a:b].hex() for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    stage = tmp_path / "board"
    copy_tree(stage, ("tbox_lite/__init__.py", "tbox_lite/gnss.py"), ROOT / "board/micropython")
    (stage / "chunks.json").write_text(json.dumps(chunks))
    script = tmp_path / "gnss.py"
    script.write_text(SCRIPT)
    result = run_micropython(script, stage, ("tbox_lite/__init__.py", "tbox_lite/gnss.py", "chunks.json"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMPL micropython" in result.stdout
    got = json.loads(next(x[7:] for x in result.stdout.splitlines() if x.startswith("RESULT ")))
    want = []
    for line in [*lines[:40], good]:
        msg = pynmea2.parse(line)
        want.append((msg.longitude, msg.latitude))
    valid = [s for s in got["seen"] if s[2]]
    assert len(valid) == len(want) and got["fixes"] == len(want)
    for (lon, lat, _), (wlon, wlat) in zip(valid, want, strict=True):
        assert abs(lon - wlon) < 1e-6 and abs(lat - wlat) < 1e-6
    for lost in got["seen"][40:42]:
        assert lost[2] is False and lost[:2] == got["seen"][39][:2]  # the last fix, marked invalid
    assert got["bad"] == 2  # the bad checksum and the garbage line
