"""Fleet counters and latency histograms that merge across worker processes.

``Histogram`` keeps counts in logarithmic buckets (about 1 % wide) of microseconds, so the p50/p90/p99
of several workers are computed from the merged counts rather than averaged; ``max`` is exact.
``FleetStats`` is plain counters (``collections.Counter``) plus two histograms; ``to_json`` /
``from_json`` carry it between processes, ``merge`` adds another one in.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

_BASE: Final = 1.01
_LOG_BASE: Final = math.log(_BASE)


class Histogram:
    """Latency samples (seconds) in ~1 %-wide logarithmic buckets of microseconds."""

    __slots__ = ("buckets", "count", "max")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        us = seconds * 1e6
        self.buckets[int(math.log(us) / _LOG_BASE) if us > 1.0 else 0] += 1
        self.count += 1
        if seconds > self.max:
            self.max = seconds

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) in seconds, the upper edge of its bucket (None: no samples)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(self.max, _BASE ** (b + 1) / 1e6)
        return self.max  # pragma: no cover - rank ≤ count

    def summary_ms(self) -> dict[str, float | int | None]:
        """``{"count", "p50", "p90", "p99", "max"}`` in milliseconds (None without samples)."""
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000.0, 3)
        return {"count": self.count, "p50": ms(self.percentile(50)), "p90": ms(self.percentile(90)),
                "p99": ms(self.percentile(99)), "max": ms(self.max if self.count else None)}

    def to_json(self) -> dict[str, Any]:
        return {"buckets": {str(k): v for k, v in self.buckets.items()}, "count": self.count, "max": self.max}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        h = cls()
        h.buckets = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        h.count = int(data["count"])
        h.max = float(data["max"])
        return h


@dataclass
class FleetStats:
    """Everything a fleet counts. Keys of ``sent``: frame kinds (login, realtime, reissue, heartbeat,
    logout, reply, malformed …); ``acked``: realtime/reissue; ``failures`` and ``dropped``: reason."""

    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)
    login_latency: Histogram = field(default_factory=Histogram)
    ack_latency: Histogram = field(default_factory=Histogram)

    def merge(self, other: FleetStats) -> None:
        self.sent.update(other.sent)
        self.acked.update(other.acked)
        self.failures.update(other.failures)
        self.dropped.update(other.dropped)
        self.counters.update(other.counters)
        self.login_latency.merge(other.login_latency)
        self.ack_latency.merge(other.ack_latency)

    def to_json(self) -> dict[str, Any]:
        return {"sent": dict(self.sent), "acked": dict(self.acked), "failures": dict(self.failures),
                "dropped": dict(self.dropped), "counters": dict(self.counters),
                "login_latency": self.login_latency.to_json(), "ack_latency": self.ack_latency.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FleetStats:
        return cls(Counter(data["sent"]), Counter(data["acked"]), Counter(data["failures"]),
                   Counter(data["dropped"]), Counter(data["counters"]),
                   Histogram.from_json(data["login_latency"]), Histogram.from_json(data["ack_latency"]))


__all__ = ["FleetStats", "Histogram"]
