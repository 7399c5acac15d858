"""Fleets against the strict reference platform on loopback: zero violations, zero loss, counts that
agree with what the platform stored, a platform restart with every backlog reissued."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.protocol.model import Edition
from sim.fleet.client import frame_kinds
from sim.fleet.runner import Fleet, FleetConfig, merge_results, summary
from sim.fleet.stats import Histogram
from sim.platform.cli import conformance_summary
from sim.platform.server import PlatformServer, ServerConfig

COMMANDS = {"login": 0x01, "realtime": 0x02, "reissue": 0x03, "logout": 0x04, "heartbeat": 0x07}


def violations(db: Path) -> Counter[str]:
    out: Counter[str] = Counter()
    for entry in conformance_summary(str(db))["vins"].values():
        out.update(entry["violations"])
    return out


def stored(db: Path) -> dict[str, Any]:
    """Frames the platform stored by command, and distinct (VIN, collection second) of 0x02/0x03 data."""
    con = sqlite3.connect(db)
    try:
        by_cmd = Counter({cmd: n for cmd, n in con.execute(
            "SELECT command, COUNT(*) FROM frames WHERE response = 254 GROUP BY command")})
        seconds = {(vin, t) for vin, t in con.execute(
            "SELECT vin, collected FROM frames WHERE command IN (2, 3) AND response = 254 AND decodable = 1")}
        per_vin = Counter(vin for vin, _ in seconds)
    finally:
        con.close()
    return {"by_cmd": by_cmd, "seconds": seconds, "per_vin": per_vin}


async def _fleet_with_platform(db: Path, config: FleetConfig, *, restart_at: float | None = None,
                               down_for: float = 3.0, **server: Any) -> dict[str, Any]:
    srv = PlatformServer(ServerConfig(port=0, db_path=str(db), reply_realtime=True, **server))
    await srv.start()
    port = srv.port
    fleet = Fleet(FleetConfig(**{**config.__dict__, "port": port}))
    task = asyncio.create_task(fleet.run())
    if restart_at is not None:
        await asyncio.sleep(restart_at)
        await srv.stop()
        await asyncio.sleep(down_for)
        srv = PlatformServer(ServerConfig(port=port, db_path=str(db), reply_realtime=True, **server))
        await srv.start()
    result = await asyncio.wait_for(task, config.seconds + config.drain + 30)
    await srv.stop()
    return result


def test_frame_kinds() -> None:
    from agent.protocol import codec
    from agent.protocol.model import Command, Empty, Encryption, Frame, ResponseFlag, TimeOnly

    hb = codec.encode_frame(Frame(Edition.E2016, Command.HEARTBEAT, ResponseFlag.COMMAND, "V" * 17,
                                  Encryption.NONE, Empty()))
    reply = codec.encode_frame(Frame(Edition.E2025, Command.PARAMETER_SET, ResponseFlag.SUCCESS, "V" * 17,
                                     Encryption.NONE, TimeOnly(datetime(2026, 1, 1).astimezone())))
    assert frame_kinds(hb + reply + hb[:10]) == ["heartbeat", "reply"]


def test_histogram_percentiles_and_merge() -> None:
    a, b = Histogram(), Histogram()
    for i in range(1, 101):
        (a if i % 2 else b).add(i / 1000.0)
    a.merge(b)
    s = a.summary_ms()
    assert s["count"] == 100 and s["max"] == 100.0
    assert 49.0 <= s["p50"] <= 51.5 and 98.0 <= s["p99"] <= 100.0  # type: ignore[operator]
    assert Histogram().summary_ms()["p50"] is None


def test_shards_split_the_vin_space() -> None:
    vins: list[str] = []
    for i in range(3):
        cfg = FleetConfig(vehicles=100, shard=(i, 3))
        vins += [f"{k}" for k in cfg.indices()]
    assert sorted(vins, key=int) == [str(k) for k in range(100)]
    assert len(set(vins)) == 100


@pytest.mark.parametrize("kw, key", [({"shard": (3, 3)}, "--shard"), ({"period": 0.5}, "--period"),
                                     ({"scenario": "nope"}, "--scenario"), ({"vehicles": 0}, "--vehicles")])
def test_bad_config(kw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        Fleet(FleetConfig(**kw))
    assert err.value.key == key


def test_300_vehicles_zero_violations_zero_loss(tmp_path: Path) -> None:
    """300 vehicles at 1 s for 6 s: every report acknowledged, no violation, and the summary's frame
    counts equal what the platform stored."""
    db = tmp_path / "p.db"
    cfg = FleetConfig(vehicles=300, seconds=6.0, period=1.0, drain=10.0, progress=0)
    result = asyncio.run(_fleet_with_platform(db, cfg))
    s = summary(cfg, result)
    reports = s["reports"]
    assert reports["generated"] > 300 * 3
    assert reports["acked"] == reports["generated"]
    assert reports["backlog"] == reports["in_flight"] == reports["dropped"] == reports["unaccounted"] == 0
    assert s["never_logged_in"] == 0 and s["logins"] == 300
    assert s["failures"] == {}
    assert s["latency_ms"]["ack"]["count"] == reports["acked"]
    assert s["latency_ms"]["login"]["count"] == 300
    assert violations(db) == Counter()
    got = stored(db)
    for kind, cmd in COMMANDS.items():
        assert got["by_cmd"][cmd] == s["frames_sent"].get(kind, 0), kind
    assert len(got["seconds"]) == reports["generated"]


def test_platform_restart_every_backlog_reissued(tmp_path: Path) -> None:
    """The platform goes away for 3 s mid-run: vehicles keep collecting, reconnect, reissue; afterwards the
    platform holds every collected second of every vehicle, with no violation."""
    db = tmp_path / "p.db"
    cfg = FleetConfig(vehicles=60, seconds=10.0, period=1.0, drain=15.0, progress=0, reconnect_min=0.5,
                      reconnect_max=2.0, edition=Edition.E2025)
    result = asyncio.run(_fleet_with_platform(db, cfg, restart_at=4.0, down_for=3.0))
    s = summary(cfg, result)
    reports = s["reports"]
    assert s["frames_sent"].get("reissue", 0) > 60  # every vehicle had a backlog
    assert reports["backlog"] == reports["in_flight"] == reports["dropped"] == reports["unaccounted"] == 0
    assert reports["acked"] == reports["generated"]
    assert s["connections"] >= 120
    got = stored(db)
    assert len(got["seconds"]) == reports["generated"]
    assert set(got["per_vin"]) == {v for v, _ in got["seconds"]} and len(got["per_vin"]) == 60
    assert violations(db) == Counter()


def test_merge_results_adds_shards(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    results = []
    for i in range(2):
        cfg = FleetConfig(vehicles=20, shard=(i, 2), seconds=2.0, period=1.0, drain=5.0, progress=0)
        results.append(asyncio.run(_fleet_with_platform(db, cfg)))
    merged = merge_results(results)
    assert merged["vehicles"] == merged["vins"] == 20
    s = summary(FleetConfig(vehicles=20, seconds=3.0, period=1.0), merged, processes=2)
    assert s["reports"]["acked"] == s["reports"]["generated"] == sum(
        r["stats"]["counters"]["collected"] for r in results)
    assert s["logins"] == 20


def test_downlink_query_set_control_answered(tmp_path: Path) -> None:
    """The platform queries, sets the report period and sends 'disconnect' while the fleet runs: every
    command gets a success reply, the new period is applied, the disconnected vehicle comes back."""
    from sim.fleet.lite import vin_for
    from sim.platform.db import PlatformDB

    db = tmp_path / "p.db"

    async def go() -> tuple[dict[str, Any], list[Any]]:
        srv = PlatformServer(ServerConfig(port=0, db_path=str(db), reply_realtime=True))
        await srv.start()
        cfg = FleetConfig(port=srv.port, vehicles=3, seconds=5.0, period=1.0, drain=3.0, progress=0,
                          reconnect_min=0.2, reconnect_max=0.5)
        task = asyncio.create_task(Fleet(cfg).run())
        await asyncio.sleep(2.5)
        pdb = PlatformDB(db)
        ids = [pdb.queue_command(vin_for(0), "query", {"ids": [0x02, 0x09]}),
               pdb.queue_command(vin_for(1), "set", {"items": [[0x02, 2]]}),
               pdb.queue_command(vin_for(2), "control", {"id": 0x05, "params": ""})]
        pdb.commit()
        result = await task
        rows = [pdb.command(i) for i in ids]
        pdb.close()
        await srv.stop()
        return summary(cfg, result), rows

    s, rows = asyncio.run(go())
    assert [r.status for r in rows] == ["replied"] * 3, rows
    assert [r.result["flag"] for r in rows] == [1, 1, 1], rows
    assert s["events"]["controls"] == 1 and s["events"]["parameter_sets"] == 1
    assert s["connections"] >= 4  # vehicle 2 reconnected after the disconnect command
    assert s["frames_sent"]["reply"] == 3
    assert s["reports"]["unaccounted"] == 0 and s["reports"]["dropped"] == 0
    assert violations(db) == Counter()


def test_full_fidelity_vehicles(tmp_path: Path) -> None:
    """--full: three vehicles each run the CAN simulator and the agent's pipeline; their reports (the
    agent's, at the agent's period) reach the strict platform acknowledged, without a violation."""
    db = tmp_path / "p.db"
    cfg = FleetConfig(vehicles=3, seconds=5.0, period=2.0, drain=5.0, progress=0, full=True)
    result = asyncio.run(_fleet_with_platform(db, cfg))
    s = summary(cfg, result)
    r = s["reports"]
    assert r["generated"] >= 3
    assert r["acked"] == r["generated"] and r["unaccounted"] == 0
    got = stored(db)
    assert len(got["per_vin"]) == 3 and len(got["seconds"]) == r["generated"]
    times = sorted(t for v, t in got["seconds"] if v == min(got["per_vin"]))
    gaps = {(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
            for a, b in itertools.pairwise(times)}
    assert gaps == {2.0}  # the agent's cadence at the configured period
    assert violations(db) == Counter()


def test_tls_fleet(tmp_path: Path) -> None:
    """Vehicles over TLS, the platform's certificate verified against its own (self-signed) CA."""
    import ssl

    from tests.platform.test_server import _certificate

    cert, key = _certificate(tmp_path)
    db = tmp_path / "p.db"
    ctx = ssl.create_default_context(cafile=str(cert))
    cfg = FleetConfig(vehicles=10, seconds=3.0, period=1.0, drain=5.0, progress=0, ssl=ctx,
                      server_hostname="localhost")
    result = asyncio.run(_fleet_with_platform(db, cfg, tls_cert=str(cert), tls_key=str(key)))
    s = summary(cfg, result)
    assert s["logins"] == 10 and s["failures"] == {}
    assert s["reports"]["acked"] == s["reports"]["generated"] > 0
    assert violations(db) == Counter()
