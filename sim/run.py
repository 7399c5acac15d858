"""The simulator's run loop, as a library: physics step -> ECU frames of that window -> faults -> sinks.

Every ``dt`` (0.1 s) the vehicle physics advances one step; the ECUs then emit the frames whose nominal
send time falls in that window, from that state, in timestamp order (``sim.ecus.Network.frames``); bus
fault scenarios post-process them. Consumers:

* ``simulate(...)`` -> ``Iterator[can.Message]`` (absolute timestamps = ``start_utc`` + simulated time);
* ``simulate_windows(...)`` -> ``Iterator[Window]`` (state + raw frames, the fast path);
* ``run_to_sink(...)`` drives any ``sim.bus.FrameSink`` (candump file, python-can bus), optionally paced
  to the wall clock, and returns ``RunStats``.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import can

from agent.errors import ConfigError
from sim.bus import FrameSink, PacedSink, Pacer, to_message
from sim.bus_faults import BUS_SCENARIOS, BusScenario
from sim.ecus import Network, RawFrame
from sim.vehicle.state import VehicleState

log = logging.getLogger(__name__)

#: Physics step and ECU window length (s).
DT = 0.1
#: Default simulated start time (fixed, so runs are reproducible).
DEFAULT_START = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
#: Upper bound on a run's length (s): 31 days.
MAX_SECONDS = 31 * 86400.0


class StateSource(Protocol):
    """Anything that advances and returns a ``VehicleState`` (``sim.vehicle.Vehicle`` does)."""

    def step(self, dt: float) -> VehicleState: ...


@dataclass
class Window:
    """One physics step: the state and the frames emitted in [t0, t1)."""

    t0: float
    t1: float
    state: VehicleState
    frames: list[RawFrame]


@dataclass
class RunStats:
    """What a run produced."""

    frames: int = 0
    error_frames: int = 0
    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    max_lag_s: float = 0.0
    by_id: dict[int, int] = field(default_factory=dict)


def _physics_scenarios() -> dict[str, Any]:
    try:
        from sim.scenarios import SCENARIOS
    except ImportError:
        return {}
    return dict(SCENARIOS)


def scenario_names() -> list[str]:
    """Every scenario name ``--scenario`` accepts (physics ones, then bus ones)."""
    return sorted(_physics_scenarios()) + sorted(BUS_SCENARIOS)


def split_scenarios(names: str | Sequence[str] | None) -> tuple[str | None, list[BusScenario]]:
    """Split comma-separated scenario names into (one physics scenario or None, fresh bus scenarios)."""
    if names is None:
        return None, []
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
    physics_known = _physics_scenarios()
    physics: str | None = None
    bus: list[BusScenario] = []
    for name in items:
        if not name or name == "none":
            continue
        if name in BUS_SCENARIOS:
            bus.append(BUS_SCENARIOS[name].fresh())
        elif name in physics_known:
            if physics is not None:
                raise ConfigError(f"only one physics scenario at a time ({physics}, {name})", key="scenario")
            physics = name
        else:
            raise ConfigError(
                f"unknown scenario {name!r}; valid: {', '.join(scenario_names())}", key="scenario"
            )
    return physics, bus


def make_vehicle(
    profile: str,
    seed: int,
    *,
    n_motors: int = 2,
    scenario: str | None = None,
    start_utc: datetime = DEFAULT_START,
    config: Any = None,
    scenario_start_s: float | None = None,
) -> StateSource:
    """Build ``sim.vehicle.Vehicle`` (ConfigError if the physics is not there or rejects the input)."""
    try:
        physics = importlib.import_module("sim.vehicle")
        Vehicle, VehicleConfig, PROFILES = physics.Vehicle, physics.VehicleConfig, physics.PROFILES
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"vehicle physics is not available yet (sim.vehicle: {exc})") from exc
    if profile not in PROFILES:
        raise ConfigError(f"unknown cycle {profile!r}; valid: {', '.join(sorted(PROFILES))}", key="cycle")
    cfg = config if config is not None else VehicleConfig(n_motors=n_motors)
    try:
        vehicle: StateSource = Vehicle(
            cfg, profile, seed=seed, scenario=scenario, start_utc=start_utc, scenario_start_s=scenario_start_s
        )
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"cannot build the vehicle: {exc}") from exc
    return vehicle


def simulate_windows(
    config: Any = None,
    profile: str = "wltc3",
    seed: int = 0,
    seconds: float = 60.0,
    scenario: str | Sequence[str] | None = None,
    *,
    start_utc: datetime = DEFAULT_START,
    source: StateSource | None = None,
    n_motors: int | None = None,
    fault_start_s: float | None = None,
    dt: float = DT,
) -> Iterator[Window]:
    """Run the vehicle and yield each physics window with its frames (times in simulated seconds).

    ``config`` is a ``sim.vehicle.VehicleConfig`` (or None for the defaults); ``source`` replaces the
    physics (any ``StateSource``, e.g. recorded or synthetic states). ``fault_start_s`` moves the start
    of the fault scenarios (bus and physics).
    """
    if not 0 < seconds <= MAX_SECONDS:
        raise ConfigError(f"seconds must be in (0, {MAX_SECONDS:.0f}], not {seconds}", key="seconds")
    physics, bus_faults = split_scenarios(scenario)
    if fault_start_s is not None:
        bus_faults = [f.fresh(start_s=fault_start_s) for f in bus_faults]
    motors = n_motors if n_motors is not None else int(getattr(config, "n_motors", 2))
    if source is None:
        source = make_vehicle(
            profile,
            seed,
            n_motors=motors,
            scenario=physics,
            start_utc=start_utc,
            config=config,
            scenario_start_s=fault_start_s,
        )
        config = getattr(source, "config", config)
    elif physics is not None:
        raise ConfigError("a physics scenario needs the real vehicle, not an external state source")
    network = Network(
        n_motors=int(getattr(config, "n_motors", motors)),
        n_cells=int(getattr(config, "n_cells", 96)),
        n_probes=int(getattr(config, "n_temp_probes", 32)),
        seed=seed,
    )
    steps = math.ceil(seconds / dt - 1e-9)
    log.debug(
        "simulating %s s of %r, seed %s, %d motor(s), physics scenario %s, bus faults %s",
        seconds,
        profile,
        seed,
        network.ctx.n_motors,
        physics,
        [f.name for f in bus_faults],
    )
    for k in range(steps):
        t0, t1 = k * dt, (k + 1) * dt
        state = source.step(dt)
        frames = network.frames(state, t0, t1)
        for fault in bus_faults:
            frames = fault.apply(frames, t0, t1)
        yield Window(t0, t1, state, frames)


def simulate(
    config: Any = None,
    profile: str = "wltc3",
    seed: int = 0,
    seconds: float = 60.0,
    scenario: str | Sequence[str] | None = None,
    *,
    start_utc: datetime = DEFAULT_START,
    channel: str = "can0",
    source: StateSource | None = None,
    n_motors: int | None = None,
    fault_start_s: float | None = None,
) -> Iterator[can.Message]:
    """The simulated bus traffic as python-can messages, timestamps ``start_utc`` + simulated time."""
    epoch = start_utc.timestamp()
    for window in simulate_windows(
        config,
        profile,
        seed,
        seconds,
        scenario,
        start_utc=start_utc,
        source=source,
        n_motors=n_motors,
        fault_start_s=fault_start_s,
    ):
        for frame in window.frames:
            yield to_message(frame, epoch, channel)


def run_to_sink(
    windows: Iterator[Window],
    sinks: Sequence[FrameSink],
    *,
    realtime: bool = False,
    on_window: Callable[[Window], None] | None = None,
    count_ids: bool = False,
) -> RunStats:
    """Feed every window's frames to ``sinks`` (paced to the wall clock if ``realtime``)."""
    stats = RunStats()
    pacer = Pacer() if realtime else None
    targets: list[FrameSink] = [PacedSink(s, pacer) for s in sinks] if pacer else list(sinks)
    started = time.perf_counter()
    for window in windows:
        frames = window.frames
        for sink in targets:
            sink.write(frames)
        stats.frames += len(frames)
        stats.sim_seconds = window.t1
        if count_ids:
            for f in frames:
                stats.by_id[f[1]] = stats.by_id.get(f[1], 0) + 1
        if on_window is not None:
            on_window(window)
    stats.error_frames = stats.by_id.get(-1, 0)
    stats.wall_seconds = time.perf_counter() - started
    stats.max_lag_s = pacer.max_lag if pacer else 0.0
    return stats
