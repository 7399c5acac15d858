"""``tbox demo``: simulated EV -> agent -> strict reference platform on loopback, with a scripted outage.

A composition root like ``agent.cli``: it may import ``sim`` (lazily, inside functions). The run:

1. the reference platform (``sim.platform.server.PlatformServer``, strict, SQLite) on 127.0.0.1:0;
2. the agent (``agent.service.AgentService``) fed by the simulator in-process (a WLTC drive, fixed seed,
   a fault scenario late in the run). Accelerated by default: the messages go straight into the pipeline
   in simulated time, throttled to ``speed`` × real time, and the platform's clock follows the simulated
   clock (so its latency/skew checks hold); ``realtime`` paces them onto a virtual CAN bus instead;
3. the platform is stopped for a fraction of the run (the drive goes on) and restarted on the same port;
4. a status view (``StatusView``) while it runs; a closing ``Summary`` from the platform's database.

Exit status 0 only when the platform holds every report the agent produced, saw no violation, and the
outbox is empty at the end. See docs/demo.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from agent.errors import TboxError
from agent.pipeline import Emitted
from agent.protocol.model import Alarm, Alarm2025, Command, GeneralAlarmFlag, SignatureType, Special, Verifier

if TYPE_CHECKING:
    import can

    from agent.service import AgentService
    from sim.platform.server import PlatformServer

log = logging.getLogger(__name__)

VIN = "LTBXEV00000000001"
ICCID = "89860000000000000001"
DB_NAME = "platform.db"
OUTBOX_NAME = "outbox.db"
#: loggers whose expected warnings during the outage (connect refused, reconnecting) the view replaces
QUIET_LOGGERS = ("agent.uplink.tcp", "sim.platform.server", "agent.service", "agent.canbus.sampler")


@dataclass(frozen=True)
class DemoOptions:
    """What ``tbox demo`` runs; fractions are of the simulated run (``seconds``)."""

    seconds: float = 1800.0  # one whole WLTC class 3 cycle
    edition: int = 2025
    cycle: str = "wltc3"
    scenario: str | None = "insulation-fault"
    scenario_at: float = 0.75
    outage_at: float = 0.4
    outage: float = 0.2  # 0: no outage; outage_at + outage ≥ 1: the platform stays down to the end
    speed: float = 30.0  # simulated seconds per wall second (accelerated mode)
    realtime: bool = False
    period: int = 1  # normal report period (s)
    seed: int = 0
    workdir: Path | None = None
    silent_platform: bool = False  # Annex B style: no reply to correct realtime/reissue (else acknowledged)
    drain_timeout: float = 60.0  # s to wait for the backlog after the drive
    interval: float | None = None  # status refresh (s); None: 1 s on a terminal, 5 s otherwise
    live: bool | None = None  # redraw in place; None: when the output is a terminal


@dataclass
class LiveState:
    """What the view shows, updated from the agent's reports."""

    sim_now: float = 0.0  # POSIX seconds of the latest simulated CAN message
    sim_start: float = 0.0
    feed_done: bool = False
    reports: int = 0
    speed_kmh: float | None = None
    soc: int | None = None
    alarm_level: int = 0
    alarm_flags: tuple[str, ...] = ()
    max_level: int = 0
    fault_point: datetime | None = None
    fault_flags: tuple[str, ...] = ()
    emitted: set[datetime] = field(default_factory=set)
    events: list[str] = field(default_factory=list)

    def on_emit(self, e: Emitted) -> None:
        """``AgentService.on_emit``: remember the report and its vehicle/alarm state."""
        self.reports += 1
        self.emitted.add(e.time)
        for b in e.report.blocks:
            speed = getattr(b, "speed", None)
            soc = getattr(b, "soc", None)
            if speed is not None and hasattr(b, "vehicle_state"):
                self.speed_kmh = None if isinstance(speed, Special) else float(speed)
                self.soc = None if isinstance(soc, Special) or soc is None else int(soc)
            if isinstance(b, Alarm | Alarm2025) and not isinstance(b.max_level, Special):
                level = int(b.max_level)
                flags = flag_names(int(b.general_flags))
                if level >= 3 and self.alarm_level < 3 and self.fault_point is None:
                    self.fault_point = e.time
                    self.fault_flags = flags
                    self.events.append(f"level {level} alarm at {e.time:%H:%M:%S}Z: {', '.join(flags)}")
                self.alarm_level, self.alarm_flags = level, flags
                self.max_level = max(self.max_level, level)

    @property
    def sim_elapsed(self) -> float:
        return max(0.0, self.sim_now - self.sim_start)


def flag_names(flags: int) -> tuple[str, ...]:
    """Names of the set general alarm flags (``bit N`` for unnamed bits)."""
    out = []
    for bit in range(32):
        if flags >> bit & 1:
            try:
                name = GeneralAlarmFlag(1 << bit).name
            except ValueError:
                name = None
            out.append((name or f"bit {bit}").lower())
    return tuple(out)


SIGN_KEY_NAME = "sign-sm2.pem"


def config_text(options: DemoOptions, port: int) -> str:
    """The embedded agent configuration (written to the work directory as ``agent.toml``); 2025 frames
    are signed with SM2 (the key ``SIGN_KEY_NAME`` beside it)."""
    signing = f'sign_type = "sm2"\nsign_key_file = "{SIGN_KEY_NAME}"\n' if options.edition == 2025 else ""
    mapping = Path(__file__).resolve().parents[1] / "dbc" / "tbox_ev.toml"
    return f"""# written by tbox demo
[vehicle]
vin = "{VIN}"
edition = {options.edition}
iccid = "{ICCID}"
[can]
mapping = "{mapping.as_posix()}"
interface = "virtual"
channel = "tbox-demo-{port}"
[report]
normal_period_s = {options.period}
[uplink]
host = "127.0.0.1"
port = {port}
heartbeat_s = 1
reply_timeout_s = 1
reconnect_max_s = 2.0
reissue_rate = 50.0
{signing}[store]
path = "{OUTBOX_NAME}"
commit_interval_s = 0.2
"""


class _Messages:
    """The simulator's messages, recording the simulated clock; throttled to ``speed`` × wall time
    (accelerated mode: short blocking sleeps between messages, at most 20 ms at a time)."""

    def __init__(self, source: Iterator[can.Message], state: LiveState, speed: float | None) -> None:
        self.source = source
        self.state = state
        self.speed = speed
        self.wall0: float | None = None

    def __iter__(self) -> Iterator[can.Message]:
        st = self.state
        for msg in self.source:
            if self.wall0 is None:
                self.wall0 = time.monotonic()
            st.sim_now = float(msg.timestamp)
            if self.speed is not None:
                ahead = self.wall0 + (st.sim_now - st.sim_start) / self.speed - time.monotonic()
                if ahead > 0.002:
                    time.sleep(min(ahead, 0.02))
            yield msg
        st.feed_done = True


class StatusView:
    """Terminal status: redrawn in place on a terminal, one line every few seconds otherwise."""

    def __init__(self, out: IO[str], live: bool, interval: float) -> None:
        self.out = out
        self.live = live
        self.interval = interval
        self._drawn = 0
        self._next = 0.0

    def event(self, text: str) -> None:
        """A one-off event line (kept above the live block)."""
        self._clear()
        print(f"  * {text}", file=self.out, flush=True)
        if self.live:
            self._next = 0.0  # redraw the block at once

    def update(self, lines: list[str], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.interval
        if self.live:
            self._clear()
            self.out.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            self.out.write(" | ".join(x.strip() for x in lines) + "\n")
        self.out.flush()

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0


@dataclass
class Summary:
    """The closing summary; ``exit_code`` 0 only when ``reasons`` is empty."""

    frames: dict[str, int]
    realtime: int
    reissue: int
    seconds_with_data: int
    span_seconds: int
    emitted: int
    missing: list[datetime]
    violations: dict[str, int]
    alarm_gaps: list[str]
    outbox_pending: int
    outage: str
    reissue_in_order: bool
    resent: int  # reissues of seconds the platform also holds as realtime (unconfirmed when the link fell)
    max_level: int
    fault_point: datetime | None
    fault_flags: tuple[str, ...]
    wall_s: float
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        out = []
        if self.interrupted:
            out.append("interrupted")
        if self.missing:
            out.append(
                f"{len(self.missing)} report(s) missing at the platform (first {self.missing[0].isoformat()})"
            )
        if self.violations:
            out.append(f"{sum(self.violations.values())} violation(s) at the platform")
        if self.outbox_pending:
            out.append(f"{self.outbox_pending} record(s) left in the outbox")
        if self.emitted == 0:
            out.append("the agent produced no report")
        return out

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.reasons else 0)

    def lines(self) -> list[str]:
        frames = ", ".join(f"{k}={v}" for k, v in sorted(self.frames.items())) or "none"
        ratio = self.seconds_with_data / self.span_seconds if self.span_seconds else 0.0
        viol = ", ".join(f"{k}={v}" for k, v in sorted(self.violations.items())) or "none"
        if self.fault_point is not None:
            alarm = (
                f"level {self.max_level} at {self.fault_point:%H:%M:%S}Z "
                f"({', '.join(self.fault_flags) or 'no flag'}); window "
                + ("complete" if not self.alarm_gaps else "GAPS: " + "; ".join(self.alarm_gaps))
            )
        else:
            alarm = f"none of level >= 3 (highest level {self.max_level})"
        out = [
            "── tbox demo summary " + "─" * 40,
            f"frames at the platform:  {frames}",
            f"reports:                 {self.realtime} realtime (0x02) + {self.reissue} reissue (0x03)"
            f" of {self.emitted} produced by the agent",
            f"                         reissue = {self.reissue - self.resent} collected while the link was "
            f"down + {self.resent} re-sent (sent as realtime, unconfirmed when the link fell)",
            f"coverage:                {self.seconds_with_data}/{self.span_seconds} s with data "
            f"({ratio:.1%}); missing reports: {len(self.missing)}",
            f"reissue in order:        {'yes' if self.reissue_in_order else 'NO'}",
            f"outage:                  {self.outage}",
            f"alarm window:            {alarm}",
            f"violations:              {viol}",
            f"outbox at the end:       {self.outbox_pending} pending",
            f"wall time:               {self.wall_s:.1f} s",
        ]
        out += [f"note: {n}" for n in self.notes]
        reasons = self.reasons
        out.append(
            "RESULT: OK (every report at the platform, no violation, outbox empty)"
            if not reasons
            else "RESULT: FAIL: " + "; ".join(reasons)
        )
        return out


class Demo:
    """One demo run; ``run()`` returns the ``Summary``."""

    def __init__(self, options: DemoOptions, out: IO[str] | None = None) -> None:
        self.options = options
        self.out = out if out is not None else sys.stdout
        live = options.live if options.live is not None else self.out.isatty()
        interval = options.interval if options.interval is not None else (1.0 if live else 5.0)
        self.view = StatusView(self.out, live, interval)
        self.state = LiveState()
        self.server: PlatformServer | None = None
        self._verifier: Verifier | None = None
        self.port = 0
        self.outage_text = "not reached" if options.outage > 0 else "none scheduled"
        self.interrupted = False
        self._seen_events = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if options.workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tbox-demo-")
            self.workdir = Path(self._tmp.name)
        else:
            self.workdir = options.workdir
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.workdir / DB_NAME

    # ------------------------------------------------------------------ platform

    def _clock(self) -> Callable[[], datetime] | None:
        """The platform's clock: the simulated clock when accelerated (its time checks then hold)."""
        if self.options.realtime:
            return None
        st = self.state
        return lambda: datetime.fromtimestamp(max(st.sim_now, st.sim_start), UTC)

    def _make_signing_key(self) -> Verifier:
        """A fresh SM2 key pair: the private key for the agent's config, the verifier for the platform."""
        from agent.protocol import crypto

        private, public = crypto.generate_keypair(SignatureType.SM2)
        (self.workdir / SIGN_KEY_NAME).write_bytes(crypto.private_key_to_pem(private))
        return crypto.verifier_for(SignatureType.SM2, public)

    async def _start_platform(self) -> None:
        from sim.platform.server import PlatformServer, ServerConfig, VinKeys

        keys = {VIN: VinKeys(verifier=self._verifier)} if self._verifier is not None else {}
        cfg = ServerConfig(
            host="127.0.0.1",
            port=self.port,
            db_path=str(self.db_path),
            keys=keys,
            heartbeat_interval=1.0,
            reply_realtime=not self.options.silent_platform,
        )
        server = PlatformServer(cfg, wallclock=self._clock())
        await server.start()
        self.server, self.port = server, server.port

    async def _stop_platform(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()
            server.db.close()

    def _platform_frames(self) -> Counter[int]:
        if self.server is None:
            return Counter()
        rows = self.server.db.conn.execute("SELECT command, COUNT(*) FROM frames GROUP BY command")
        return Counter({int(c): int(n) for c, n in rows})

    # ------------------------------------------------------------------ run

    def run(self) -> Summary:
        """Run the demo (installs SIGINT/SIGTERM handlers on its loop: Ctrl-C stops it cleanly)."""
        quiet = logging.getLogger().getEffectiveLevel() >= logging.WARNING
        saved = {n: logging.getLogger(n).level for n in QUIET_LOGGERS}
        if quiet:
            for n in QUIET_LOGGERS:
                logging.getLogger(n).setLevel(logging.ERROR)
        try:
            return asyncio.run(self._main())
        finally:
            for n, level in saved.items():
                logging.getLogger(n).setLevel(level)
            if self._tmp is not None:
                self._tmp.cleanup()

    async def _main(self) -> Summary:
        from agent.config import parse_config
        from agent.service import AgentService
        from sim.run import simulate

        o = self.options
        wall0 = time.monotonic()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def interrupt() -> None:
            self.interrupted = True
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, interrupt)

        if o.edition == 2025:
            self._verifier = self._make_signing_key()
        await self._start_platform()
        cfg_path = self.workdir / "agent.toml"
        cfg_path.write_text(config_text(o, self.port), encoding="utf-8")
        settings = parse_config(cfg_path.read_text(encoding="utf-8"), cfg_path)
        start = datetime.now(UTC).replace(microsecond=0)
        self.state.sim_start = self.state.sim_now = start.timestamp()
        fault_at = o.scenario_at * o.seconds if o.scenario else None
        source = simulate(
            profile=o.cycle,
            seed=o.seed,
            seconds=o.seconds,
            scenario=o.scenario,
            start_utc=start,
            fault_start_s=fault_at,
        )
        messages = _Messages(source, self.state, None if o.realtime else o.speed)
        service = AgentService(
            settings,
            messages=messages,
            accelerated=not o.realtime,
            virtual_channel=f"tbox-demo-sim-{self.port}",
            on_emit=self.state.on_emit,
        )
        self._intro(o)
        task = asyncio.create_task(service.run(None, stop))
        try:
            await self._direct(service, stop, task)
        finally:
            stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), 20.0)
            except TimeoutError:
                log.error("the agent did not stop within 20 s")
                task.cancel()
            await self._stop_platform()
        return self._summary(service, time.monotonic() - wall0)

    def _intro(self, o: DemoOptions) -> None:
        mode = "real time" if o.realtime else f"accelerated x{o.speed:g}"
        print(
            f"tbox demo: {o.cycle} drive, {o.seconds:g} s simulated ({mode}), GB/T 32960-{o.edition}, "
            f"VIN {VIN}",
            file=self.out,
        )
        print(
            f"  platform 127.0.0.1:{self.port} (strict), work dir {self.workdir}"
            + ("" if self.options.workdir else " (temporary)"),
            file=self.out,
        )
        if o.scenario:
            print(f"  fault scenario {o.scenario} from t+{o.scenario_at * o.seconds:.0f} s", file=self.out)
        if o.outage > 0:
            end = min(o.outage_at + o.outage, 1.0)
            print(
                f"  platform outage t+{o.outage_at * o.seconds:.0f} s .. t+{end * o.seconds:.0f} s"
                + (" (to the end)" if o.outage_at + o.outage >= 1.0 else ""),
                file=self.out,
            )
        print(
            "  platform replies: "
            + ("none to correct reports (Annex B)" if o.silent_platform else "acknowledges every report"),
            file=self.out,
        )
        if o.edition == 2025:
            print(
                "  2025 reports signed with SM2 (SM3, default user id); the platform verifies every one",
                file=self.out,
            )
        self.out.flush()

    async def _direct(self, service: AgentService, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
        """Script the outage, refresh the view, stop once the drive is over and the backlog drained."""
        o = self.options
        st = self.state
        down_at = o.outage_at * o.seconds if o.outage > 0 else None
        up_at = (o.outage_at + o.outage) * o.seconds if o.outage > 0 and o.outage_at + o.outage < 1 else None
        wall_budget = (o.seconds if o.realtime else o.seconds / o.speed) * 1.5 + o.drain_timeout + 60.0
        deadline = time.monotonic() + wall_budget
        outage_wall = 0.0
        drain_since: float | None = None
        restart_failed = False
        while not stop.is_set() and not task.done():
            if time.monotonic() > deadline:
                self.view.event(f"giving up after {wall_budget:.0f} s of wall time")
                break
            t = st.sim_elapsed
            if down_at is not None and self.server is not None and t >= down_at and outage_wall == 0.0:
                await self._stop_platform()
                outage_wall = time.monotonic()
                self.view.event(f"t+{t:.0f} s: platform DOWN (listener stopped, connections closed)")
            elif up_at is not None and self.server is None and t >= up_at and not restart_failed:
                try:
                    await self._start_platform()
                except TboxError as exc:  # e.g. the port was taken meanwhile: the summary will say
                    restart_failed = True
                    self.outage_text = f"from t+{down_at:.0f} s: the platform could not restart ({exc})"
                    self.view.event(f"t+{t:.0f} s: platform restart FAILED: {exc}")
                    continue
                lasted = time.monotonic() - outage_wall
                self.outage_text = (
                    f"t+{down_at:.0f} s .. t+{t:.0f} s simulated ({lasted:.1f} s wall), "
                    f"platform restarted on port {self.port}"
                )
                self.view.event(f"t+{t:.0f} s: platform UP again on port {self.port}")
            if down_at is not None and up_at is None and outage_wall and self.server is None:
                self.outage_text = f"from t+{down_at:.0f} s to the end: the platform never came back"
            while self._seen_events < len(st.events):
                self.view.event(st.events[self._seen_events])
                self._seen_events += 1
            self.view.update(self._status(service))
            if st.feed_done:
                pending = service.store.pending()
                if drain_since is None:
                    drain_since = time.monotonic()
                    self.view.event(f"drive over ({st.reports} reports); draining the outbox ({pending})")
                waited = time.monotonic() - drain_since
                settle = 1.5 if o.realtime else 0.5  # the pipeline's last ticks come after the last message
                if (
                    (pending == 0 and waited >= settle)
                    or (pending <= 3 and waited > 3.0)
                    or waited > o.drain_timeout
                ):
                    break  # what is left is realtime awaiting its proof: the acknowledged logout gives it
            await asyncio.sleep(0.1)
        self.view.update(self._status(service), force=True)

    def _status(self, service: AgentService) -> list[str]:
        st = self.state
        up = service.uplink.stats if service.uplink is not None else None
        frames = self._platform_frames()
        link = up.link if up is not None else "-"
        platform = "up" if self.server is not None else "DOWN"
        speed = f"{st.speed_kmh:5.1f} km/h" if st.speed_kmh is not None else "  -  km/h"
        soc = f"{st.soc:3d} %" if st.soc is not None else " - %"
        alarm = (
            f"level {st.alarm_level} {','.join(st.alarm_flags)}"
            if st.alarm_level or st.alarm_flags
            else "none"
        )
        sent = (
            f"sent {up.realtime_sent} rt + {up.reissue_sent} reissue, delivered {up.delivered}" if up else ""
        )
        return [
            f"t+{st.sim_elapsed:5.0f}/{self.options.seconds:.0f} s  platform {platform:4}  link {link:10} "
            f"logins {up.logins if up else 0}",
            f"  reports {st.reports}  {sent}  outbox backlog {service.store.pending()}",
            f"  platform rx 0x02={frames.get(2, 0)} 0x03={frames.get(3, 0)}  vehicle {speed} SOC {soc}"
            f"  alarm {alarm}",
        ]

    # ------------------------------------------------------------------ summary

    def _summary(self, service: AgentService, wall_s: float) -> Summary:
        from agent.store import Outbox
        from sim.platform.cli import conformance_summary
        from sim.platform.db import PlatformDB

        st = self.state
        report = conformance_summary(str(self.db_path), VIN)
        v = report["vins"].get(VIN, {})
        cov = v.get("coverage", {})
        db = PlatformDB(self.db_path)
        try:
            got: set[datetime] = set()
            realtime: set[datetime] = set()
            reissue: list[datetime] = []
            for f in db.frames(VIN):
                if f.command in (Command.REALTIME, Command.REISSUE) and f.response == 0xFE and f.collected:
                    t = datetime.fromisoformat(f.collected)
                    got.add(t)
                    if f.command == Command.REISSUE:
                        reissue.append(t)
                    else:
                        realtime.add(t)
        finally:
            db.close()
        outbox = Outbox(self.workdir / OUTBOX_NAME)
        try:
            pending = outbox.pending()
        finally:
            outbox.close()
        notes = []
        if self.options.scenario and st.fault_point is None:
            notes.append(f"scenario {self.options.scenario} raised no level-3 alarm within the run")
        if self.options.outage > 0 and self.outage_text != "not reached" and not reissue:
            notes.append("the outage produced no reissue")
        gaps = [g["reason"] for g in report.get("alarm_window_gaps", [])]
        return Summary(
            frames=dict(v.get("frames", {})),
            realtime=int(v.get("realtime", 0)),
            reissue=int(v.get("reissue", 0)),
            seconds_with_data=int(cov.get("seconds_with_data", 0)),
            span_seconds=int(cov.get("span_seconds", 0)),
            emitted=len(st.emitted),
            missing=sorted(st.emitted - got),
            violations=dict(v.get("violations", {})),
            alarm_gaps=gaps,
            outbox_pending=pending,
            outage=self.outage_text,
            reissue_in_order=reissue == sorted(reissue),
            resent=sum(1 for t in reissue if t in realtime),
            max_level=st.max_level,
            fault_point=st.fault_point,
            fault_flags=st.fault_flags,
            wall_s=wall_s,
            interrupted=self.interrupted,
            notes=notes,
        )


def run_demo(options: DemoOptions, out: IO[str] | None = None) -> Summary:
    """Run the demo, print the summary to ``out`` (default stdout) and return it."""
    demo = Demo(options, out)
    summary = demo.run()
    stream = demo.out
    for line in summary.lines():
        print(line, file=stream)
    stream.flush()
    return summary


__all__ = [
    "Demo",
    "DemoOptions",
    "LiveState",
    "StatusView",
    "Summary",
    "config_text",
    "flag_names",
    "run_demo",
]
