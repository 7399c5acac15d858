"""Legislative drive cycles: speed traces loaded from ``sim/vehicle/data`` (published tables).

* ``wltc3``: WLTC class 3b, 1800 s, 1 Hz table from UN GTR No. 15.
* ``nedc``: built from its definition (UNECE R83): 4 x ECE-15 urban cycle + EUDC, 1180 s.

CLTC-P (GB/T 38146.1-2019) is not included: no verifiable 1800 s table could be sourced (see
docs/simulator-physics.md).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from sim.vehicle.state import FloatArray

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).with_name("data")

CYCLE_NAMES: tuple[str, ...] = ("nedc", "wltc3")


@dataclass(frozen=True)
class DriveCycle:
    """A speed trace: ``speed_kmh[i]`` at ``t_s[i]``, linear in between, repeated after the end."""

    name: str
    t_s: FloatArray
    speed_kmh: FloatArray

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1])

    @property
    def distance_km(self) -> float:
        """Distance of one pass (exact for a piecewise-linear trace)."""
        v = self.speed_kmh / 3.6
        return float(np.sum((v[1:] + v[:-1]) * 0.5 * np.diff(self.t_s)) / 1000.0)

    @property
    def max_speed_kmh(self) -> float:
        return float(self.speed_kmh.max())

    def speed_ms(self, t: float) -> float:
        """Target speed in m/s at run time ``t`` (the cycle repeats)."""
        tc = t % self.duration_s
        return float(np.interp(tc, self.t_s, self.speed_kmh)) / 3.6


def _read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as fh:
        rows = [r for r in csv.reader(line for line in fh if not line.startswith("#"))]
    return rows[1:]  # drop the header


def _load_wltc3() -> DriveCycle:
    rows = _read_rows(DATA_DIR / "wltc3.csv")
    t = np.array([float(r[0]) for r in rows])
    v = np.array([float(r[1]) for r in rows])
    return DriveCycle("wltc3", t, v)


def _load_nedc() -> DriveCycle:
    rows = _read_rows(DATA_DIR / "nedc.csv")
    parts: dict[str, list[tuple[float, float]]] = {}
    for part, t_s, v_kmh in rows:
        parts.setdefault(part, []).append((float(t_s), float(v_kmh)))
    ts: list[float] = []
    vs: list[float] = []
    offset = 0.0
    for seg in [parts["ece15"]] * 4 + [parts["eudc"]]:
        for i, (t, v) in enumerate(seg):
            if ts and i == 0:
                continue  # joint point: end of the previous part == start of this one
            ts.append(offset + t)
            vs.append(v)
        offset += seg[-1][0]
    return DriveCycle("nedc", np.array(ts), np.array(vs))


@cache
def load_cycle(name: str) -> DriveCycle:
    """Load a drive cycle by name (``nedc`` or ``wltc3``)."""
    if name == "wltc3":
        return _load_wltc3()
    if name == "nedc":
        return _load_nedc()
    raise KeyError(f"unknown drive cycle {name!r}; known: {', '.join(CYCLE_NAMES)}")
