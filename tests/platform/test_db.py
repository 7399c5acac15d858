"""PlatformDB's buffered writes: ids, reads see buffered rows, reopening continues the ids."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sim.platform.db import PlatformDB

T = datetime(2026, 5, 1, 8, 0, 0, tzinfo=UTC)


def _frame(db: PlatformDB, conn: int = 1) -> int:
    return db.add_frame(conn=conn, received_at=T, vin="LTBOXTEST00000001", edition=2016, command=2,
                        response=254, collected=T, alarm_level=None, raw=b"##\x02", reply=b"##\x02\x01",
                        decodable=True, decoded=None)


def test_buffered_rows_are_read_back_and_ids_continue_after_reopen(tmp_path: Path) -> None:
    db = PlatformDB(tmp_path / "p.db")
    first, second = _frame(db), _frame(db)
    db.add_violation(second, "LTBOXTEST00000001", "time_skew", "late", T)
    assert [r.id for r in db.frames()] == [first, second] == [1, 2]  # a read flushes the buffer
    assert db.violations() == [(2, "LTBOXTEST00000001", "time_skew", "late")]
    third = _frame(db)
    db.add_violation(None, "LTBOXTEST00000001", "heartbeat", "silent", T)
    db.close()  # commits the buffer
    again = PlatformDB(tmp_path / "p.db")
    assert [r.id for r in again.frames()] == [1, 2, third]
    assert _frame(again) == third + 1
    again.add_violation(third + 1, "LTBOXTEST00000001", "time_skew", "late", T)
    again.commit()
    assert [v[0] for v in again.violations()] == [2, None, third + 1]
    assert again.frames().__next__().raw == "232302"
    again.close()


def test_the_log_restarts_while_commits_keep_coming(tmp_path: Path) -> None:
    """With the checkpoint thread following the commits, the write-ahead log stays about one commit long
    instead of growing with every commit (bounded: 400 commits of 20 frames)."""
    db = PlatformDB(tmp_path / "p.db")
    db.start_checkpointer(interval=1.0)
    wal = tmp_path / "p.db-wal"
    try:
        sizes = []
        for i in range(400):
            for _ in range(20):
                _frame(db, conn=i)
            db.commit()
            time.sleep(0.002)  # the next group commit comes a little later
            sizes.append(wal.stat().st_size)
    finally:
        db.stop_checkpointer()
    written = 400 * 20 * 600  # bytes of rows alone, far below what the log holds in pages
    assert max(sizes[-100:]) < written / 4, (max(sizes), written)
    assert len(list(db.frames())) == 8000
    db.close()


def test_fsync_checkpoints_run_on_their_clock(tmp_path: Path) -> None:
    """``fsync=True``: checkpoints once per interval, synced; every frame is still there."""
    db = PlatformDB(tmp_path / "p.db")
    db.start_checkpointer(interval=0.05, fsync=True)
    try:
        for i in range(20):
            _frame(db, conn=i)
            db.commit()
            time.sleep(0.01)
    finally:
        db.stop_checkpointer()
    assert len(list(db.frames())) == 20
    db.close()
