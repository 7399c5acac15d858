"""A GNSS route: a closed polyline around West Lake, Hangzhou, with altitude (hence road grade)."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6371000.0

# (latitude, longitude, altitude m): a ~12 km loop along Hubin Rd, Beishan St, Yanggong Causeway,
# Nanshan Rd. Altitudes are approximate (lake level ~8 m, Beishan and Nanshan foothills higher).
WEST_LAKE_LOOP: tuple[tuple[float, float, float], ...] = (
    (30.2590, 120.1640, 8.0),
    (30.2600, 120.1550, 12.0),
    (30.2620, 120.1450, 22.0),
    (30.2580, 120.1350, 18.0),
    (30.2500, 120.1340, 10.0),
    (30.2400, 120.1350, 9.0),
    (30.2300, 120.1380, 14.0),
    (30.2290, 120.1480, 30.0),
    (30.2360, 120.1590, 16.0),
    (30.2450, 120.1650, 9.0),
)


@dataclass(frozen=True)
class RoutePoint:
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    heading_deg: float     # course over ground, degrees clockwise from true north
    grade: float           # rise / run along the direction of travel


class Route:
    """Position along a closed polyline by travelled distance (the loop repeats)."""

    def __init__(self, points: tuple[tuple[float, float, float], ...] = WEST_LAKE_LOOP) -> None:
        pts = [*list(points), points[0]]
        self._pts = pts
        self._cum = [0.0]
        self._heading: list[float] = []
        for (la0, lo0, _), (la1, lo1, _) in itertools.pairwise(pts):
            north = math.radians(la1 - la0) * EARTH_RADIUS_M
            east = math.radians(lo1 - lo0) * EARTH_RADIUS_M * math.cos(math.radians(0.5 * (la0 + la1)))
            self._cum.append(self._cum[-1] + math.hypot(north, east))
            self._heading.append(math.degrees(math.atan2(east, north)) % 360.0)
        self.length_m = self._cum[-1]

    def at(self, distance_m: float) -> RoutePoint:
        """Where the vehicle is after ``distance_m`` along the route."""
        s = distance_m % self.length_m
        k = min(bisect.bisect_right(self._cum, s) - 1, len(self._heading) - 1)
        seg = self._cum[k + 1] - self._cum[k]
        f = (s - self._cum[k]) / seg
        (la0, lo0, al0), (la1, lo1, al1) = self._pts[k], self._pts[k + 1]
        return RoutePoint(la0 + f * (la1 - la0), lo0 + f * (lo1 - lo0), al0 + f * (al1 - al0),
                          self._heading[k], (al1 - al0) / seg)
