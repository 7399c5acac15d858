"""A staged Locust load shape for the GB/T 32960 vehicle user, driven by ``--stages``.

    locust -f sim/locustfile.py,sim/fleet/locust_shape.py --headless --stages 100:60:10,500:300:20,0:30

Each stage ``USERS:SECONDS[:RATE]`` ramps to USERS at RATE users/s and holds until SECONDS after the
stage began; after the last stage the run stops. Kept out of sim/locustfile.py because Locust uses any
shape class it finds, which would override ``-u``/``-r`` and the web UI's user count.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape

from sim.fleet.locust_options import Stage, parse_stages, stage_at


class StagesShape(LoadTestShape):
    """Users per ``--stages`` (required with this shape)."""

    _stages: tuple[Stage, ...] | None = None

    def stages(self) -> tuple[Stage, ...]:
        if self._stages is None:
            runner = self.runner
            text = getattr(runner.environment.parsed_options, "stages", None) if runner else None
            self._stages = parse_stages(text or "")
        return self._stages

    def tick(self) -> tuple[int, float] | None:
        untyped: Any = self  # Locust's LoadTestShape methods carry no annotations
        return stage_at(self.stages(), float(untyped.get_run_time()))
