"""Fleet scenarios against the strict platform: each produces the misbehaviour (and only the violations)
docs/fleet.md says it does, and the fleet's own accounting still loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.protocol.model import Edition
from sim.fleet.runner import Fleet, FleetConfig, summary
from sim.fleet.silent import SilentServer
from sim.platform.checks import Limits, alarm_windows
from sim.platform.cli import conformance_summary
from sim.platform.server import PlatformServer, ServerConfig


def _run(db: Path, drain: float = 5.0, **kw: Any) -> tuple[dict[str, Any], Counter[str]]:
    async def go() -> dict[str, Any]:
        srv = PlatformServer(ServerConfig(port=0, db_path=str(db), reply_realtime=True))
        await srv.start()
        cfg = FleetConfig(port=srv.port, drain=drain, progress=0, **{"period": 1.0, **kw})
        try:
            return summary(cfg, await Fleet(cfg).run())
        finally:
            await srv.stop()
    s = asyncio.run(go())
    violations: Counter[str] = Counter()
    for entry in conformance_summary(str(db))["vins"].values():
        violations.update(entry["violations"])
    return s, violations


def _no_loss(s: dict[str, Any]) -> None:
    r = s["reports"]
    assert r["generated"] > 0
    assert r["backlog"] == r["in_flight"] == r["dropped"] == r["unaccounted"] == 0


def test_malformed_frames_are_flagged_exactly(tmp_path: Path) -> None:
    s, violations = _run(tmp_path / "p.db", vehicles=40, seconds=6.0, scenario="malformed", drain=1.0,
                         reply_timeout=2.0)
    ev = s["events"]
    assert ev["malformed_bcc"] >= 2 and ev["malformed_length"] >= 2  # 4 vehicles, one of each kind per 5
    assert violations == Counter({"bad_bcc": ev["malformed_bcc"], "bad_length": ev["malformed_length"]})
    # the platform's error replies to the corrupt copies can be taken for a reply to a pending good
    # upload (the session falls back to the oldest pending one): counted, never lost
    r = s["reports"]
    assert r["dropped"] == r["unaccounted"] == 0
    assert r["acked"] + r["backlog"] + r["in_flight"] == r["generated"]


def test_duplicate_vins_collide(tmp_path: Path) -> None:
    s, violations = _run(tmp_path / "p.db", vehicles=20, seconds=3.0, scenario="duplicate-vin")
    assert s["distinct_vins"] == 18 and s["vehicles"] == 20
    assert violations["duplicate_vin"] >= 2
    assert s["connections"] > 20  # the platform drops the older link, that vehicle reconnects
    _no_loss(s)


def test_clock_skew_is_seen_as_time_skew(tmp_path: Path) -> None:
    s, violations = _run(tmp_path / "p.db", vehicles=20, seconds=2.5, scenario="clock-skew")
    assert set(violations) == {"time_skew"} and violations["time_skew"] >= 2
    _no_loss(s)


@pytest.mark.parametrize("edition", [Edition.E2016, Edition.E2025])
def test_alarm_burst_reports_every_level3_window(tmp_path: Path, edition: Edition) -> None:
    """Level-3 bursts at a 5 s period: each vehicle reissues the unreported seconds of the 30 s before the
    fault point and reports every second after it, so the platform finds every alarm window complete."""
    db = tmp_path / "a.db"
    s, violations = _run(db, vehicles=20, seconds=9.0, scenario="alarm-burst", period=5.0, edition=edition)
    assert violations == Counter()
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT vin, collected, alarm_level, command FROM frames "
                           "WHERE command IN (2, 3) AND response = 254").fetchall()
    finally:
        con.close()
    by_vin: dict[str, list[tuple[datetime, int | None]]] = {}
    for vin, collected, level, _ in rows:
        by_vin.setdefault(vin, []).append((datetime.fromisoformat(collected), level))
    assert len(by_vin) == 20
    for vin, samples in by_vin.items():
        windows = alarm_windows(samples, edition, Limits())
        assert windows and all(not w.missing and w.span >= 31 for w in windows), vin  # 30 s before + onset
    reissued = sum(1 for r in rows if r[3] == 3)  # the pre-alarm seconds, and what came before the login
    assert s["frames_sent"]["reissue"] == reissued >= s["events"]["alarm_prehistory"] >= 20 * 24
    _no_loss(s)


def test_login_storm_is_clean(tmp_path: Path) -> None:
    s, violations = _run(tmp_path / "b.db", vehicles=60, seconds=2.0, scenario="login-storm")
    assert violations == Counter() and s["logins"] == 60
    _no_loss(s)


def test_silent_platform_keeps_everything_in_the_backlog() -> None:
    async def go() -> dict[str, Any]:
        srv = SilentServer()
        await srv.start()
        cfg = FleetConfig(port=srv.port, vehicles=5, seconds=2.5, period=1.0, drain=0.5, progress=0,
                          login_timeout=1.0, login_retry=1.0, scenario="silent")
        try:
            return summary(cfg, await Fleet(cfg).run())
        finally:
            await srv.stop()
    s = asyncio.run(go())
    assert s["never_logged_in"] == 5
    assert s["failures"]["login: timeout"] >= 5
    r = s["reports"]
    assert r["backlog"] == r["generated"] > 0 and r["unaccounted"] == 0
    assert s["frames_sent"]["login"] >= 10  # retried
