"""The SQLite outbox: semantics, retention, eviction, integrity, disk full, serial and parameters."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.protocol import wire
from agent.protocol.codec import decode_frame
from agent.protocol.model import Command, ParameterId, RealtimeReport, Special
from agent.protocol.session import next_serial
from agent.store import Outbox, retention_for

VIN = "LTBXEV00000000001"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def frame_bytes(t: datetime, command: int = Command.REALTIME) -> bytes:
    from agent.protocol.codec import encode_frame
    from agent.protocol.model import Edition, Encryption, Frame, ResponseFlag

    return encode_frame(Frame(Edition.E2016, command, ResponseFlag.COMMAND, VIN, Encryption.NONE,
                              RealtimeReport(t)))


def add(store: Outbox, t: datetime, command: int = Command.REALTIME, data: bytes | None = None) -> int:
    raw = wire.parse_frame(frame_bytes(t, command))
    rid = store.add(2016, command, VIN, data if data is not None else raw.data, t)
    assert rid is not None
    return rid


def test_records_survive_reopen_in_order_and_leave_when_delivered(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    clock = Clock(T0.timestamp() + 100)
    s = Outbox(db, clock=clock)
    ids = [add(s, T0 + timedelta(seconds=i)) for i in range(5)]
    assert [r.id for r in s.backlog()] == ids  # visible before the commit
    s.delivered(ids[1])
    s.close()
    s = Outbox(db, clock=clock)
    assert [r.id for r in s.backlog()] == [ids[0], *ids[2:]]
    assert s.pending() == 4
    rec = s.backlog()[0]
    # a reissue is the same data unit re-framed with 0x03: decodes, same collection time
    reissue = decode_frame(rec.frame(Command.REISSUE))
    assert reissue.command == Command.REISSUE and reissue.body.time == T0
    assert rec.frame() == frame_bytes(T0)
    # new ids continue after a restart
    assert add(s, T0 + timedelta(seconds=9)) > ids[-1]
    s.close()


def test_backlog_orders_by_collection_time_and_pages(tmp_path: Path) -> None:
    s = Outbox(tmp_path / "o.db", clock=Clock(T0.timestamp() + 100))
    late = add(s, T0 + timedelta(seconds=50))
    window = [add(s, T0 + timedelta(seconds=i), Command.REISSUE) for i in range(3)]  # alarm window, older
    got = s.backlog(limit=2)
    assert [r.id for r in got] == window[:2]
    rest = s.backlog(after=got[-1].order)
    assert [r.id for r in rest] == [window[2], late]
    s.hold(window[0], until=T0.timestamp() + 200)
    assert window[0] not in [r.id for r in s.backlog()]
    s.clock.t = T0.timestamp() + 201  # type: ignore[attr-defined]
    assert s.backlog()[0].id == window[0]
    s.close()


def test_retention_and_size_cap_evict_oldest_counted(tmp_path: Path, caplog: Any) -> None:
    clock = Clock(T0.timestamp())
    s = Outbox(tmp_path / "o.db", clock=clock, retention_s=retention_for(2016))
    assert s.retention_s == 3 * 86400
    old = add(s, T0 - timedelta(days=4))
    new = add(s, T0 - timedelta(days=2))
    assert s.expire() == 1
    assert [r.id for r in s.backlog()] == [new]
    assert s.stats.expired == 1 and old not in [r.id for r in s.backlog()]
    s.close()
    size = len(wire.parse_frame(frame_bytes(T0)).data)
    s = Outbox(tmp_path / "cap.db", clock=clock, max_bytes=size * 10)
    ids = [add(s, T0 + timedelta(seconds=i)) for i in range(25)]
    assert s.stats.evicted == 15 and s.stats.bytes <= size * 10
    assert [r.id for r in s.backlog(limit=100)] == ids[15:]
    assert "evicted" in caplog.text
    s.close()


def test_corrupt_row_is_quarantined_not_raised(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    s = Outbox(db, clock=Clock(T0.timestamp()))
    a, b, c = (add(s, T0 + timedelta(seconds=i)) for i in range(3))
    s.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE outbox SET data = X'00112233' WHERE id = ?", (b,))
    con.execute("UPDATE outbox SET collected_at = collected_at + 1 WHERE id = ?", (c,))
    con.commit()
    con.close()
    s = Outbox(db, clock=Clock(T0.timestamp()))
    assert [r.id for r in s.backlog()] == [a]
    assert s.stats.quarantined == 2 and s.get(b) is None
    s.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 2
    con.close()


def test_batches_commits(tmp_path: Path) -> None:
    clock = Clock(T0.timestamp())
    s = Outbox(tmp_path / "o.db", clock=clock, commit_interval_s=1.0)
    for i in range(50):
        add(s, T0 + timedelta(seconds=i))
        s.maybe_flush()
    assert s.stats.commits == 0
    clock.t += 1.0
    assert s.maybe_flush() and s.stats.commits == 1
    # committed rows are visible to another connection
    con = sqlite3.connect(tmp_path / "o.db")
    assert con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 50
    con.close()
    s.close()


class FullConnection(sqlite3.Connection):
    """A connection whose writes fail with SQLITE_FULL while ``full`` is set."""

    full = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        if FullConnection.full and sql.split()[0].upper() in ("INSERT", "COMMIT", "DELETE", "UPDATE"):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, *args)


def test_disk_full_keeps_what_is_stored_and_holds_new_records(tmp_path: Path) -> None:
    db = tmp_path / "o.db"

    def connect(path: str) -> sqlite3.Connection:
        return sqlite3.connect(path, isolation_level=None, factory=FullConnection)

    clock = Clock(T0.timestamp())
    s = Outbox(db, clock=clock, connect=connect, memory_limit=5)
    stored = [add(s, T0 + timedelta(seconds=i)) for i in range(3)]
    assert s.flush()
    uncommitted = add(s, T0 + timedelta(seconds=3))
    FullConnection.full = True
    try:
        assert not s.flush()  # the commit fails: the transaction's row is held in memory
        held = [s.add(2016, 2, VIN, b"x" * 10, T0 + timedelta(seconds=10 + i)) for i in range(6)]
        s.delivered(stored[0])
        assert held[:4] != [None] * 4 and held[-1] is None  # 1 + 4 held, then the bound
        assert s.stats.dropped == 2 and s.stats.write_errors >= 1
        assert s.get(uncommitted) is not None
        assert [r.id for r in s.backlog()] == stored  # the committed rows are intact
    finally:
        FullConnection.full = False
    assert s.flush()
    ids = [r.id for r in s.backlog()]
    assert ids == [*stored[1:], uncommitted, *[h for h in held if h is not None]]
    assert s.stats.held == 0
    s.close()
    s = Outbox(db)
    assert s.integrity_check() == "ok" and s.pending() == len(ids)
    s.close()


def test_serial_and_parameters_persist(tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    s = Outbox(db)
    serials = s.serial_store()
    now = datetime(2026, 3, 1, 1, tzinfo=UTC)
    assert [next_serial(serials, now) for _ in range(3)] == [1, 2, 3]
    s.save_parameters([(ParameterId.REPORT_PERIOD, 5), (ParameterId.PLATFORM_DOMAIN, "a.example"),
                       (0x80, b"\x01\x02"), (ParameterId.PUBLIC_PORT, Special.INVALID)])
    s.close()
    s = Outbox(db)
    assert s.serial_store().load() == (date(2026, 3, 1), 3)
    assert next_serial(s.serial_store(), now) == 4
    assert s.load_parameters() == {2: 5, 5: "a.example", 0x80: b"\x01\x02", 0x0F: Special.INVALID}
    s.close()


def test_unopenable_store_is_a_store_error(tmp_path: Path) -> None:
    from agent.errors import StoreError

    with pytest.raises(StoreError):
        Outbox(tmp_path / "missing-dir" / "o.db")
