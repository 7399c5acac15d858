"""The Locust vehicle's pieces without Locust: the blocking-socket link against the in-process reference
platform (real threads instead of greenlets), the options and the VIN slots. Locust itself (gevent
monkey-patching) never enters this process: tests/fleet/test_locust.py runs it in subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.protocol.model import Edition, ParameterId
from agent.protocol.session import ClientTiming, TerminalConfig, TerminalHandler, next_serial
from agent.uplink.tcp import AgentHandler, TlsConfig
from sim.fleet.lite import LiteVehicle, iccid_for, vin_for
from sim.fleet.locust_link import Backlog, ClockSeededSerialStore, Outcome, Target, VehicleLink, parse_target
from sim.fleet.locust_options import Settings, SlotAllocator, Stage, parse_stages, stage_at
from sim.platform.server import PlatformServer, ServerConfig
from tests.uplink.test_tcp_tls import make_pki

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10.0


class Platform:
    """The reference platform on 127.0.0.1:0, its asyncio loop in a thread."""

    def __init__(self, db: Path, **kw: Any) -> None:
        self.config = replace(ServerConfig(host="127.0.0.1", port=0, db_path=str(db)), **kw)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: PlatformServer = self.call(self._start())  # its SQLite lives in the loop's thread
        self.port = self.server.port

    async def _start(self) -> PlatformServer:
        server = PlatformServer(self.config)
        await server.start()
        return server

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    def stop(self) -> None:
        if self.loop.is_running():
            self.call(self.server.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)

    def commands(self, vin: str) -> list[int]:
        async def read() -> list[int]:
            self.server.db.commit()
            return [row.command for row in self.server.db.frames(vin)]

        return list(self.call(read()))


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Callable[..., Platform]]:
    started: list[Platform] = []

    def make(**kw: Any) -> Platform:
        p = Platform(tmp_path / f"p{len(started)}.db", **kw)
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


def make_link(port: int, record: list[Outcome], *, index: int = 0, require_ack: bool = True,
              heartbeat: float | None = None, reply_timeout: float = 5.0,
              ssl_context: ssl.SSLContext | None = None,
              handler: TerminalHandler | None = None) -> VehicleLink:
    timing = ClientTiming(heartbeat_interval=heartbeat, login_timeout=reply_timeout,
                          reply_timeout=reply_timeout, max_resends=0, max_login_attempts=1)
    config = TerminalConfig(vin_for(index, "LTBOXLNK"), Edition.E2016, iccid=iccid_for(index), timing=timing)
    return VehicleLink(Target("127.0.0.1", port, ssl_context is not None), config, record.append,
                       require_ack=require_ack, serial_store=ClockSeededSerialStore(), connect_timeout=WAIT,
                       ssl_context=ssl_context, handler=handler)


def a_report(vin: str, offset: float = 0.0) -> Any:
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=offset)
    vehicle = LiteVehicle(vin, 7, Edition.E2016, now)
    vehicle.step(5.0)
    return vehicle.report(now)


def wait_until(cond: Callable[[], bool], seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# ---- the link against the platform


def test_login_acknowledged_realtime_and_logout(platform_factory: Callable[..., Platform]) -> None:
    platform = platform_factory(reply_realtime=True)
    got: list[Outcome] = []
    link = make_link(platform.port, got)
    assert link.connect()
    assert link.logged_in
    first = link.send_realtime(a_report(link.vin))
    second = link.send_realtime(a_report(link.vin, 1.0))
    link.close()
    assert first.ok and second.ok, (first, second)
    assert [(o.name, o.ok) for o in got] == [("login", True), ("realtime", True), ("realtime", True),
                                            ("logout", True)]
    assert all(o.latency >= 0 and o.size > 0 for o in got)
    assert platform.commands(link.vin) == [0x01, 0x02, 0x02, 0x04]
    assert not link.logged_in


def test_silent_platform_fails_required_acks_but_not_silent_mode(
        platform_factory: Callable[..., Platform]) -> None:
    platform = platform_factory(reply_realtime=False)  # Annex B: a correct realtime gets no reply
    got: list[Outcome] = []
    strict = make_link(platform.port, got, index=1, reply_timeout=0.3)
    assert strict.connect()
    outcome = strict.send_realtime(a_report(strict.vin))
    assert not outcome.ok and outcome.error is not None and "no acknowledgement" in outcome.error
    strict.close()

    silent: list[Outcome] = []
    lax = make_link(platform.port, silent, index=2, require_ack=False)
    assert lax.connect()
    assert lax.send_realtime(a_report(lax.vin)).ok
    lax.close()
    assert [(o.name, o.ok) for o in silent] == [("login", True), ("realtime", True), ("logout", True)]
    assert platform.commands(lax.vin) == [0x01, 0x02, 0x04]


def test_heartbeats_go_on_while_idle(platform_factory: Callable[..., Platform]) -> None:
    platform = platform_factory()
    got: list[Outcome] = []
    link = make_link(platform.port, got, index=3, heartbeat=0.1)
    assert link.connect()
    wait_until(lambda: sum(o.name == "heartbeat" for o in got) >= 2)
    link.close()
    beats = [o for o in got if o.name == "heartbeat"]
    assert beats and all(o.ok for o in beats), beats
    assert platform.commands(link.vin).count(0x07) >= 2


def test_downlink_query_answered_while_idle(platform_factory: Callable[..., Platform],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from agent import cli

    platform = platform_factory()
    got: list[Outcome] = []
    handler = AgentHandler({ParameterId.REPORT_PERIOD: 10, ParameterId.HEARTBEAT_PERIOD: 30})
    link = make_link(platform.port, got, index=9, handler=handler)
    assert link.connect()
    # nobody calls the link while `send` waits: its reader thread answers the query
    argv = ["platform", "send", "--db", platform.config.db_path, "--vin", link.vin, "--wait", "10",
            "query", "0x02,0x09"]
    assert cli.main(argv) == 0
    link.close()
    reply = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert reply["status"] == "replied"
    assert [(i["id"], i["value"]) for i in reply["result"]["body"]["items"]] == [
        ("report_period", 10), ("heartbeat_period", 30)]
    assert all(o.ok for o in got), got


def test_disconnect_control_is_acknowledged_then_the_link_drops(
        platform_factory: Callable[..., Platform], capsys: pytest.CaptureFixture[str]) -> None:
    from agent import cli

    platform = platform_factory()
    got: list[Outcome] = []
    link = make_link(platform.port, got, index=10,
                     handler=AgentHandler({ParameterId.REPORT_PERIOD: 10, ParameterId.HEARTBEAT_PERIOD: 30}))
    assert link.connect()
    argv = ["platform", "send", "--db", platform.config.db_path, "--vin", link.vin, "--wait", "10",
            "control", "disconnect"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["status"] == "replied"
    wait_until(lambda: not link.logged_in)
    assert link.down_reason == "platform control 0x05"
    link.close()


def test_refused_connection_is_a_failed_login() -> None:
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connect is refused
        got: list[Outcome] = []
        link = make_link(port, got, index=4)
        assert not link.connect()
    assert len(got) == 1 and got[0].name == "login" and not got[0].ok
    assert got[0].error is not None and "connect to 127.0.0.1" in got[0].error
    assert not link.send_realtime(a_report(link.vin)).ok
    link.close()


def test_platform_going_away_ends_the_link(platform_factory: Callable[..., Platform]) -> None:
    platform = platform_factory(reply_realtime=True)
    got: list[Outcome] = []
    link = make_link(platform.port, got, index=5)
    assert link.connect()
    platform.stop()
    wait_until(lambda: not link.logged_in)
    outcome = link.send_realtime(a_report(link.vin))
    assert not outcome.ok and outcome.error is not None and "not logged in" in outcome.error
    link.close()  # no logout on a dead link, and no hang
    assert [o.name for o in got] == ["login", "realtime"]


def test_refused_login_is_a_failure(platform_factory: Callable[..., Platform], tmp_path: Path) -> None:
    platform = platform_factory(vins=frozenset({"LTBOXOTHER000001"}))  # an allow-list without our VIN
    got: list[Outcome] = []
    link = make_link(platform.port, got, index=6)
    assert not link.connect()
    assert got[0].name == "login" and got[0].error is not None and "refused" in got[0].error
    link.close()


def test_mutual_tls(platform_factory: Callable[..., Platform], tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    platform = platform_factory(reply_realtime=True, tls_cert=str(pki["server"]),
                                tls_key=str(tmp_path / "server.key"), tls_client_ca=str(pki["ca"]))
    ctx = TlsConfig(ca_file=pki["ca"], cert_file=pki["client"], key_file=tmp_path / "client.key").context()
    got: list[Outcome] = []
    link = make_link(platform.port, got, index=7, ssl_context=ctx, heartbeat=0.2)
    assert link.connect()
    for k in range(3):
        assert link.send_realtime(a_report(link.vin, float(k))).ok
    wait_until(lambda: any(o.name == "heartbeat" for o in got))
    link.close()
    assert all(o.ok for o in got), got
    assert platform.commands(link.vin)[:4] == [0x01, 0x02, 0x02, 0x02]

    wrong = TlsConfig(ca_file=pki["other"], cert_file=pki["client"], key_file=tmp_path / "client.key")
    refused: list[Outcome] = []
    other = make_link(platform.port, refused, index=8, ssl_context=wrong.context())
    assert not other.connect()
    assert refused[0].name == "login" and refused[0].error is not None and "CERTIFICATE" in refused[0].error
    other.close()


# ---- options, targets, slots, serials


@pytest.mark.parametrize(("text", "target"), [
    ("tcp://127.0.0.1:32960", Target("127.0.0.1", 32960, False)),
    ("tls://platform.example:8443", Target("platform.example", 8443, True)),
    ("127.0.0.1:5000", Target("127.0.0.1", 5000, False)),
    ("tcp://[::1]:7000", Target("::1", 7000, False)),
])
def test_parse_target(text: str, target: Target) -> None:
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["http://127.0.0.1:80", "tcp://127.0.0.1", "tcp://:80", "tcp://h:0",
                                  "tcp://h:99999", "tcp://h:1/path"])
def test_bad_target_names_the_host_option(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_target(text)
    assert err.value.key == "host" and text in str(err.value)


def test_settings_from_parsed_options() -> None:
    ns = SimpleNamespace(period=2.0, edition="2025", vin_prefix="LTBOXA", seed=5, vin_offset=10,
                         vins_per_worker=100, heartbeat=0.0, ack_timeout=3.0, realtime_ack="silent",
                         scenario="alarm-burst", ca_file=None, client_cert=None, client_key=None,
                         server_name=None, backlog=10, reissue_window=2)
    s = Settings.from_namespace(ns)
    assert (s.period, s.edition, s.require_ack, s.scenario) == (2.0, Edition.E2025, False, "alarm-burst")
    assert (s.backlog, s.reissue_window) == (10, 2)
    assert s.vin_index(0, 0) == 10 and s.vin_index(3, 7) == 317
    with pytest.raises(ConfigError) as err:
        s.vin_index(1, 100)
    assert err.value.key == "vins-per-worker"
    assert Settings.from_namespace(SimpleNamespace()) == Settings()  # every option has a default


@pytest.mark.parametrize(("name", "value", "key"), [
    ("period", 0.5, "period"), ("vin_prefix", "ltbox", "vin-prefix"),
    ("vin_prefix", "A" * 13, "vin-prefix"), ("vin_offset", -1, "vin-offset"),
    ("vins_per_worker", 0, "vins-per-worker"), ("heartbeat", 300.0, "heartbeat"),
    ("ack_timeout", 0.0, "ack-timeout"), ("backlog", -1, "backlog"), ("reissue_window", 0, "reissue-window"),
])
def test_bad_settings_name_the_option(name: str, value: Any, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_namespace(SimpleNamespace(**{name: value}))
    assert err.value.key == key


def test_stages_parse_and_schedule() -> None:
    stages = parse_stages("100:60:10, 500:300:20,0:30")
    assert stages == (Stage(100, 60.0, 10.0), Stage(500, 300.0, 20.0), Stage(0, 30.0, 1.0))
    assert [stage_at(stages, t) for t in (0.0, 59.9, 60.0, 359.9, 360.0, 389.9)] == [
        (100, 10.0), (100, 10.0), (500, 20.0), (500, 20.0), (0, 1.0), (0, 1.0)]
    assert stage_at(stages, 390.0) is None  # the run stops after the last stage
    assert parse_stages("7:1") == (Stage(7, 1.0, 7.0),)  # default rate: all users within a second


@pytest.mark.parametrize("text", ["", "10", "10:0", "-1:5", "10:5:0", "a:5", "10:5:1:1"])
def test_bad_stages_name_the_option(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_stages(text)
    assert err.value.key == "stages" and "stage 1" in str(err.value)


def test_slots_reuse_the_lowest_free_one() -> None:
    slots = SlotAllocator()
    assert [slots.take() for _ in range(4)] == [0, 1, 2, 3]
    slots.release(2)
    slots.release(0)
    slots.release(0)  # twice: still one free slot 0
    assert len(slots) == 2
    assert [slots.take(), slots.take(), slots.take()] == [0, 2, 4]


def test_clock_seeded_serials_increase_across_restarts_within_a_day() -> None:
    morning = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)  # 09:00 Beijing
    first = ClockSeededSerialStore(lambda: morning)
    a, b = next_serial(first, morning), next_serial(first, morning)
    later = morning + timedelta(minutes=5)
    restarted = ClockSeededSerialStore(lambda: later)
    c = next_serial(restarted, later)
    assert b == a + 1 and c > b
    assert a >= 1 and c <= 65531
    midnight = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)  # 00:00 Beijing: the count restarts at 1
    assert next_serial(ClockSeededSerialStore(lambda: midnight), midnight) == 1


def test_nothing_outside_the_locust_user_imports_locust() -> None:
    code = ("import sys, agent.cli, sim.fleet, sim.fleet.lite\n"
            "import sim.fleet.locust_link, sim.fleet.locust_options\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ---- the backlog: kept while offline, reissued after the next login


def reports_from(vin: str, start: datetime, n: int) -> list[Any]:
    vehicle = LiteVehicle(vin, 11, Edition.E2016, start)
    out = []
    for k in range(n):
        vehicle.step(1.0)
        out.append(vehicle.report(start + timedelta(seconds=k)))
    return out


def stored(platform: Platform, vin: str) -> list[tuple[int, str | None]]:
    """The (command, collection time) of every realtime/reissue frame the platform stored for ``vin``."""
    if platform.loop.is_running():
        async def commit() -> None:
            platform.server.db.commit()

        platform.call(commit())
    with contextlib.closing(sqlite3.connect(platform.config.db_path)) as con:
        rows = con.execute("SELECT command, collected FROM frames WHERE vin = ? AND command IN (2, 3) "
                           "ORDER BY id", (vin,))
        return [(int(c), t) for c, t in rows]


def test_backlog_keeps_the_newest_and_counts_the_dropped() -> None:
    got: list[Outcome] = []
    backlog = Backlog(3, got.append)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    reports = reports_from("LTBOXBKL000000001", start, 5)
    for r in (reports[0], reports[2], reports[1], reports[3], reports[4]):  # one out of order
        backlog.keep(r)
    assert [r.time for r in backlog.reports] == [r.time for r in reports[2:]]
    assert backlog.dropped == 2 and [(o.name, o.ok) for o in got] == [("backlog_full", False)] * 2
    none = Backlog(0, got.append)
    none.keep(reports[0])
    assert len(none) == 0 and none.dropped == 1


def test_backlog_is_reissued_oldest_first_after_a_platform_restart(
        platform_factory: Callable[..., Platform]) -> None:
    first = platform_factory(reply_realtime=True)
    got: list[Outcome] = []
    link = make_link(first.port, got, index=20)
    backlog = Backlog(100, got.append)
    assert link.connect()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    reports = reports_from(link.vin, start, 12)
    for r in reports[:3]:
        assert link.send_realtime(r).ok
    first.stop()  # the platform goes away: what the vehicle collects now is kept
    wait_until(lambda: not link.logged_in)
    for r in reports[3:9]:
        backlog.keep(r)
    assert backlog.drain(link, 4) == 0 and len(backlog) == 6  # nothing goes out over a dead link
    link.close(logout=False)

    second = platform_factory(reply_realtime=True)
    link = make_link(second.port, got, index=20)
    assert link.connect()
    assert backlog.drain(link, 4) == 6 and len(backlog) == 0
    for r in reports[9:]:
        assert link.send_realtime(r).ok
    link.close()
    reissues = [o for o in got if o.name == "reissue"]
    assert len(reissues) == 6 and all(o.ok and o.size > 0 for o in reissues), reissues
    assert all(o.ok for o in got), [o for o in got if not o.ok]
    iso = [r.time.isoformat() for r in reports]
    assert [t for _, t in stored(first, link.vin)] == iso[:3]
    assert stored(second, link.vin) == [(3, t) for t in iso[3:9]] + [(2, t) for t in iso[9:]]


def test_uploads_unconfirmed_when_the_link_drops_go_back_to_the_backlog(
        platform_factory: Callable[..., Platform]) -> None:
    silent = platform_factory(reply_realtime=False)  # Annex B: a correct upload gets no reply
    got: list[Outcome] = []
    link = make_link(silent.port, got, index=21, reply_timeout=5.0)
    backlog = Backlog(100, got.append)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    reports = reports_from(link.vin, start, 5)
    for r in reports:
        backlog.keep(r)
    assert link.connect()
    stopper = threading.Timer(0.5, silent.stop)  # while the first window waits for its replies
    stopper.start()
    try:
        assert backlog.drain(link, 3) == 0
    finally:
        stopper.join(WAIT)
    assert [r.time for r in backlog.reports] == [r.time for r in reports]  # all kept, in order
    lost = [o for o in got if o.name == "reissue"]
    assert len(lost) == 3 and all(o.unconfirmed and not o.ok for o in lost), lost
    link.close(logout=False)

    acking = platform_factory(reply_realtime=True)
    link = make_link(acking.port, got, index=21)
    assert link.connect()
    assert backlog.drain(link, 3) == 5 and not backlog
    link.close()
    iso = [r.time.isoformat() for r in reports]
    assert [t for _, t in stored(acking, link.vin)] == iso
