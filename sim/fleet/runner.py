"""A fleet of ``FleetVehicle``s in one asyncio loop, driven by ONE scheduler for all their timers.

The scheduler is a heap of (time, sequence, kind, vehicle): report times (``collect``), session deadlines
(``tick`` at ``TerminalSession.next_deadline()``; an entry superseded by an earlier deadline is skipped
when it comes up) and (re)connects. No task sleeps per vehicle. ``Fleet.run`` ramps the connects up
(``ramp`` seconds; 0 = everyone at once), runs ``seconds``, stops collecting, waits up to ``drain`` seconds
for every backlog and in-flight upload to settle, logs every vehicle out and returns the summary.

Scenarios acting on the link (see docs/fleet.md): ``login-storm`` (ramp 0), ``duplicate-vin`` (every
10th vehicle uses the VIN of the one before), ``malformed`` (every 10th vehicle adds a corrupted copy of
every 5th realtime frame: bad BCC and bad length in turn), ``clock-skew`` (every 10th vehicle's clock is
45-344 s off, ahead or behind), ``alarm-burst`` (in the physics, ``sim.fleet.lite``); ``outage`` and
``silent`` change nothing here: the platform side does the misbehaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import heapq
import logging
import math
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from agent.errors import ConfigError
from agent.protocol.model import Edition
from agent.protocol.session import (
    BEIJING,
    ClientTiming,
    MemorySerialStore,
    TerminalConfig,
    TerminalSession,
    beijing_date,
)
from sim.eventloop import loop_factory
from sim.fleet.client import FleetHandler, FleetVehicle
from sim.fleet.frames import FleetCodec
from sim.fleet.lite import SCENARIOS, LiteVehicle, iccid_for, vin_for
from sim.fleet.stats import FleetStats, Histogram

if TYPE_CHECKING:
    from sim.fleet.full import FullVehicle

log = logging.getLogger(__name__)

COLLECT, TICK, CONNECT = 0, 1, 2
_GOLDEN: Final = 0.6180339887498949
_BATCH: Final = 256  # heap entries handled between two yields to the I/O
_EARLY: Final = 0.001  # entries due within this are run now (the loop's timer resolution)


@dataclass(frozen=True)
class FleetConfig:
    """Everything a fleet run needs; defaults are the documented ones (docs/fleet.md)."""

    host: str = "127.0.0.1"
    port: int = 32960
    vehicles: int = 10  # the whole fleet; this process runs its shard
    shard: tuple[int, int] = (0, 1)  # (I, K): this process runs indices [I*N/K, (I+1)*N/K)
    seconds: float = 60.0
    period: float = 10.0
    edition: Edition = Edition.E2016
    scenario: str | None = None
    seed: int = 1
    ramp: float | None = None  # None: min(10 s, N/1000 s); login-storm: 0
    drain: float = 15.0
    window: int = 16  # uploads in flight per vehicle while reissuing its backlog
    backlog_limit: int = 3600  # reports kept per vehicle while offline
    heartbeat: float = 30.0
    reply_timeout: float = 30.0
    login_timeout: float = 60.0
    login_retry: float | None = None  # None: the edition's default (60 s / 180 s)
    reconnect_min: float = 1.0
    reconnect_max: float = 30.0
    connect_timeout: float = 10.0
    vin_prefix: str = "LTBXFLT0"
    cells: int = 96
    probes: int = 32
    full: bool = False  # full fidelity: CAN simulator + agent pipeline per vehicle (sim.fleet.full)
    progress: float = 1.0  # seconds between progress callbacks (0: none)
    ssl: ssl.SSLContext | None = field(default=None, compare=False)
    server_hostname: str | None = None

    def indices(self) -> range:
        """The vehicle indices of this shard."""
        i, k = self.shard
        return range(self.vehicles * i // k, self.vehicles * (i + 1) // k)

    def validate(self) -> None:
        i, k = self.shard
        if not (k >= 1 and 0 <= i < k):
            raise ConfigError(f"shard {i}/{k}: want I/K with 0 <= I < K", key="--shard")
        if self.vehicles < 1:
            raise ConfigError(f"{self.vehicles} vehicles: want at least 1", key="--vehicles")
        if not self.period >= 1.0:
            raise ConfigError(f"period {self.period} s: the protocol's resolution is 1 s", key="--period")
        if self.scenario is not None and self.scenario not in SCENARIOS:
            raise ConfigError(f"unknown scenario {self.scenario!r} (one of {', '.join(SCENARIOS)})",
                              key="--scenario")
        if self.seconds <= 0:
            raise ConfigError(f"{self.seconds} s: want a positive duration", key="--seconds")
        if self.window < 1 or self.backlog_limit < 1:
            raise ConfigError("window and backlog limit must be at least 1", key="--window")


def _serial_start(now: datetime) -> MemorySerialStore:
    """Login serials start from half the seconds since Beijing midnight, so a later run on the same day
    continues above an earlier one (the platform wants them to increase within a Beijing day)."""
    bj = now.astimezone(BEIJING)
    secs = bj.hour * 3600 + bj.minute * 60 + bj.second
    return MemorySerialStore(beijing_date(now), secs // 2)


class Fleet:
    """The vehicles of one shard, one scheduler, counters and the summary. See the module docstring."""

    def __init__(self, config: FleetConfig, *,
                 on_progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        config.validate()
        self.config = config
        self.stats = FleetStats()
        self.on_progress = on_progress
        self.vehicles: list[FleetVehicle] = []
        self.connected = 0
        self.online = 0
        self.lag = Histogram()
        self.collecting = False
        self._heap: list[tuple[float, int, int, FleetVehicle]] = []
        self._seq = 0
        self._timer: asyncio.Handle | None = None
        self._timer_when = math.inf  # when the armed timer fires (inf: none armed)
        self._running = False  # inside _run_due
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = config.seed * 7919 + config.shard[0]
        self.started_at: datetime | None = None
        self._wall0 = datetime.now(UTC)
        self.elapsed = 0.0

    # ---- clock and scheduling

    def now(self) -> float:
        """Monotonic seconds for the sessions' timers, the scheduler and latencies (not ``loop.time()``:
        uvloop's has millisecond resolution, too coarse for ack latencies on loopback)."""
        return time.monotonic()

    def _push(self, when: float, kind: int, vehicle: FleetVehicle) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, vehicle))
        if when < self._timer_when and not self._running:
            self._arm()

    def schedule_tick(self, vehicle: FleetVehicle) -> None:
        """Make sure ``vehicle.tick`` runs at its session's next deadline."""
        d = vehicle.session.next_deadline()
        if d is not None and (vehicle.tick_at is None or d < vehicle.tick_at):
            vehicle.tick_at = d
            self._push(d, TICK, vehicle)

    def _jitter(self) -> float:
        self._rng = (self._rng * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
        return 0.5 + (self._rng >> 11) / float(1 << 53)

    def schedule_reconnect(self, vehicle: FleetVehicle) -> None:
        """Reconnect with exponential backoff and jitter (``reconnect_min`` .. ``reconnect_max``)."""
        c = self.config
        delay = min(c.reconnect_max, c.reconnect_min * 2 ** min(vehicle.attempts, 10)) * self._jitter()
        vehicle.attempts += 1
        self._push(self.now() + delay, CONNECT, vehicle)

    # ---- building the fleet

    def _build(self, t0: float) -> None:
        c = self.config
        n = max(1, c.vehicles)
        ramp = c.ramp
        if c.scenario == "login-storm":
            ramp = 0.0
        elif ramp is None:
            ramp = min(10.0, c.vehicles / 1000.0)  # about 1,000 connects a second
        start = datetime.now(UTC).replace(microsecond=0)
        for k in c.indices():
            vin_index = k - 1 if c.scenario == "duplicate-vin" and k % 10 == 9 else k
            vin = vin_for(vin_index, c.vin_prefix)
            car: LiteVehicle | FullVehicle
            if c.full:
                from sim.fleet.full import FullVehicle  # the CAN simulator and the agent: only when asked

                car = FullVehicle(vin, c.seed * 1_000_003 + k, c.edition, start, iccid=iccid_for(k),
                                  period=c.period, scenario=c.scenario)
            else:
                car = LiteVehicle(vin, c.seed * 1_000_003 + k, c.edition, start, scenario=c.scenario,
                                  n_cells=c.cells, n_probes=c.probes)
            skew = 0.0
            if c.scenario == "clock-skew" and k % 10 == 0:
                skew = (45.0 + (k * 37) % 300) * (1 if k % 20 == 0 else -1)
            malformed = 5 if c.scenario == "malformed" and k % 10 == 0 else 0
            period = 1.0 if c.full else c.period  # full fidelity: the agent's cadence decides
            v = FleetVehicle(self, k, car, self._session_factory(k), period=period, skew=skew,
                             malformed_every=malformed)
            self.vehicles.append(v)
            at = t0 + ramp * k / n
            self._push(at, CONNECT, v)
            self._push(at + 1.0 + c.period * ((k * _GOLDEN) % 1.0), COLLECT, v)

    def _session_factory(self, k: int) -> Callable[[FleetVehicle], TerminalSession]:
        c = self.config
        timing = ClientTiming(heartbeat_interval=c.heartbeat, reply_timeout=c.reply_timeout,
                              login_timeout=c.login_timeout, login_retry_interval=c.login_retry)

        def make(v: FleetVehicle) -> TerminalSession:
            pack = f"P{v.vin}{k % 1_000_000:06d}"
            cfg = TerminalConfig(v.vin, c.edition, iccid=iccid_for(k), packs_per_bms=(1,), pack_codes=(pack,),
                                 timing=timing)
            return TerminalSession(cfg, wallclock=v.wallclock, serial_store=_serial_start(v.wallclock()),
                                   handler=FleetHandler(v), codec=FleetCodec())
        return make

    # ---- connecting

    def _connect(self, v: FleetVehicle) -> None:
        if v.connecting or v.transport is not None or v.closing:
            return
        v.connecting = True
        v.connect_started = self.now()
        task = asyncio.get_running_loop().create_task(self._open(v))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, v: FleetVehicle) -> None:
        c = self.config
        loop = asyncio.get_running_loop()
        try:
            hostname = c.server_hostname if c.ssl else None
            await asyncio.wait_for(loop.create_connection(lambda: v, c.host, c.port, ssl=c.ssl,
                                                          server_hostname=hostname), c.connect_timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            v.connecting = False
            name = errno.errorcode.get(exc.errno, str(exc.errno)) if isinstance(exc, OSError) and exc.errno \
                else type(exc).__name__
            self.stats.failures[f"connect: {name}"] += 1
            if not v.closing:
                self.schedule_reconnect(v)

    # ---- the scheduler

    def _arm(self) -> None:
        """Keep one loop timer at the heap's earliest entry (no task sleeps: the timer runs ``_run_due``)."""
        heap = self._heap
        if not heap or self._loop is None or self._stopped:
            return
        when = heap[0][0]
        if self._timer is not None:
            if self._timer_when <= when:
                return
            self._timer.cancel()
        self._timer_when = when
        self._timer = self._loop.call_later(max(0.0, when - self.now()), self._run_due)

    def _run_due(self) -> None:
        """Run the heap entries that are due, at most ``_BATCH`` before letting the loop do I/O. A bug in
        one vehicle's step is logged and counted (``failures["bug: …"]``), never stops the others."""
        self._timer = None
        self._timer_when = math.inf
        if self._stopped:
            return
        heap = self._heap
        now = self.now()
        due = now + _EARLY  # the loop's timers have millisecond resolution: take what is due within it
        handled = 0
        batch = 2 if self.config.full else _BATCH  # a full vehicle's second costs ~7 ms: yield often
        pop, push = heapq.heappop, self._push
        self._running = True  # pushes wait for the re-arm below
        try:
            while heap and heap[0][0] <= due and handled < batch:
                when, _, kind, v = pop(heap)
                handled += 1
                try:
                    if kind == COLLECT:
                        if not self.collecting or v.closing:
                            continue
                        self.lag.add(now - when if now > when else 0.0)
                        push(max(when + v.sample_period, now + 0.001), COLLECT, v)
                        v.collect(now, self._wall0 + timedelta(seconds=when))
                    elif kind == TICK:
                        if v.tick_at != when:
                            continue  # superseded by an earlier deadline
                        v.tick_at = None
                        v.tick(max(now, when))
                    else:
                        self._connect(v)
                except Exception as exc:  # a bug must cost one vehicle's step, not the fleet's scheduler
                    log.exception("vehicle %s: %s failed", v.vin, ("collect", "tick", "connect")[kind])
                    self.stats.failures[f"bug: {type(exc).__name__}"] += 1
        finally:
            self._running = False
        if heap and heap[0][0] <= due:  # more is due: after the I/O that is waiting
            assert self._loop is not None
            self._timer_when = now
            self._timer = self._loop.call_soon(self._run_due)
        else:
            self._arm()

    async def _progress(self, stop: asyncio.Event, t0: float) -> None:
        interval = self.config.progress
        last_sent, last_acked, last_t = 0, 0, t0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            now = self.now()
            sent = sum(self.stats.sent.values())
            acked = sum(self.stats.acked.values())
            dt = max(1e-6, now - last_t)
            if self.on_progress is not None:
                self.on_progress({
                    "t": round(now - t0, 1), "vehicles": len(self.vehicles), "connected": self.connected,
                    "online": self.online, "frames_per_s": round((sent - last_sent) / dt, 1),
                    "acks_per_s": round((acked - last_acked) / dt, 1), "acks": acked,
                    "errors": sum(self.stats.failures.values()),
                    "backlog": sum(len(v.backlog) for v in self.vehicles),
                })
            last_sent, last_acked, last_t = sent, acked, now

    async def run(self) -> dict[str, Any]:
        """Run the shard; returns ``self.result()``."""
        c = self.config
        self._loop = asyncio.get_running_loop()
        t0 = self.now()
        self.started_at = datetime.now(UTC)
        self._wall0 = self.started_at - timedelta(seconds=t0)  # loop time -> UTC
        self._build(t0)
        gc.collect()
        gc.freeze()  # thousands of long-lived vehicles and sessions: keep them out of every collection
        self.collecting = True
        self._arm()
        stop = asyncio.Event()
        progress = asyncio.create_task(self._progress(stop, t0)) if c.progress > 0 and self.on_progress \
            else None
        try:
            await asyncio.sleep(max(0.0, t0 + c.seconds - self.now()))
            self.collecting = False
            deadline = self.now() + c.drain
            while self.now() < deadline and not all(v.settled for v in self.vehicles):
                await asyncio.sleep(0.1)
            now = self.now()
            for v in self.vehicles:
                v.logout(now)
            deadline = self.now() + min(5.0, c.reply_timeout)
            while self.now() < deadline and (self.connected or any(v.connecting for v in self.vehicles)):
                await asyncio.sleep(0.05)
        finally:
            self.collecting = False
            for v in self.vehicles:
                v.closing = True
                if v.transport is not None:
                    v.transport.abort()
            stop.set()
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if progress is not None:
                await progress
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.elapsed = self.now() - t0
            gc.unfreeze()
        return self.result()

    # ---- results

    def result(self) -> dict[str, Any]:
        """This shard's raw result (mergeable): gauges, counters and histograms."""
        return {
            "vehicles": len(self.vehicles),
            "vins": len({v.vin for v in self.vehicles}),
            "backlog": sum(len(v.backlog) for v in self.vehicles),
            "in_flight": sum(len(v.inflight) for v in self.vehicles),
            "never_logged_in": sum(not v.logged_in_once for v in self.vehicles),
            "elapsed": round(self.elapsed, 3),
            "stats": self.stats.to_json(),
            "lag": self.lag.to_json(),
        }


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Add several shards' ``Fleet.result()`` into one."""
    stats = FleetStats()
    lag = Histogram()
    out: dict[str, Any] = {"vehicles": 0, "vins": 0, "backlog": 0, "in_flight": 0, "never_logged_in": 0,
                           "elapsed": 0.0}
    for r in results:
        for key in ("vehicles", "vins", "backlog", "in_flight", "never_logged_in"):
            out[key] += r[key]
        out["elapsed"] = max(out["elapsed"], r["elapsed"])
        stats.merge(FleetStats.from_json(r["stats"]))
        lag.merge(Histogram.from_json(r["lag"]))
    out["stats"] = stats.to_json()
    out["lag"] = lag.to_json()
    return out


def summary(config: FleetConfig, result: dict[str, Any], processes: int = 1) -> dict[str, Any]:
    """The closing JSON summary (docs/fleet.md) of a merged result."""
    stats = FleetStats.from_json(result["stats"])
    lag = Histogram.from_json(result["lag"])
    c = stats.counters
    acked = sum(stats.acked.values())
    generated = c["collected"]
    dropped = sum(stats.dropped.values())
    accounted = acked + c["delivered_unacked"] + result["backlog"] + result["in_flight"] + dropped
    elapsed = max(result["elapsed"], 1e-9)
    sent_total = sum(stats.sent.values())
    return {
        "vehicles": result["vehicles"],
        "distinct_vins": result["vins"],
        "edition": int(config.edition),
        "period_s": config.period,
        "seconds": config.seconds,
        "scenario": config.scenario,
        "shard": f"{config.shard[0]}/{config.shard[1]}",
        "processes": processes,
        "elapsed_s": round(elapsed, 1),
        "frames_sent": dict(sorted(stats.sent.items())),
        "frames_per_s": round(sent_total / elapsed, 1),
        "acks": dict(sorted(stats.acked.items())),
        "logins": c["logins"],
        "connections": c["connections"],
        "never_logged_in": result["never_logged_in"],
        "reports": {
            "generated": generated, "acked": acked, "delivered_unacked": c["delivered_unacked"],
            "backlog": result["backlog"], "in_flight": result["in_flight"], "dropped": dropped,
            "unaccounted": generated - accounted,
        },
        "dropped": dict(sorted(stats.dropped.items())),
        "failures": dict(sorted(stats.failures.items())),
        "events": {k: v for k, v in sorted(c.items()) if k not in ("collected", "logins", "connections")},
        "latency_ms": {"login": stats.login_latency.summary_ms(), "ack": stats.ack_latency.summary_ms()},
        "scheduler_lag_ms": lag.summary_ms(),
    }


def _raise_file_limit() -> None:
    """One socket per vehicle: lift the soft limit on open files to the hard one."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_fleet(config: FleetConfig,
              on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one shard in a fresh event loop (uvloop when installed); returns ``Fleet.result()``."""
    _raise_file_limit()
    fleet = Fleet(config, on_progress=on_progress)
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(fleet.run())


__all__ = ["Fleet", "FleetConfig", "merge_results", "run_fleet", "summary"]
