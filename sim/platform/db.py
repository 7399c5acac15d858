"""SQLite (WAL) storage of the reference platform: frames, violations and queued downlink commands.

The server is the only writer of ``frames`` and ``violations``; ``tbox platform send`` (another process)
inserts into ``commands``, which the server polls once per second and updates with the outcome.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import StoreError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    conn INTEGER NOT NULL,          -- connection number (per server run)
    received_at TEXT NOT NULL,      -- server receive time, ISO 8601 UTC
    vin TEXT NOT NULL,
    edition INTEGER NOT NULL,       -- 2016 ('##') or 2025 ('$$')
    command INTEGER NOT NULL,
    response INTEGER NOT NULL,
    collected TEXT,                 -- collection time of the data unit, ISO 8601 UTC (NULL: none)
    alarm_level INTEGER,            -- highest alarm level of a realtime/reissue report
    raw TEXT NOT NULL,              -- the frame as received, hex
    reply TEXT,                     -- bytes the server answered with, hex (NULL: no answer)
    decodable INTEGER NOT NULL,     -- 1: decoded (header, BCC and data unit valid), 0: corrupt
    decoded TEXT                    -- agent.protocol.jsonform.frame_to_json (NULL: corrupt, or not stored)
);
CREATE INDEX IF NOT EXISTS frames_vin ON frames (vin, collected);
CREATE TABLE IF NOT EXISTS violations (
    id INTEGER PRIMARY KEY,
    frame_id INTEGER REFERENCES frames (id),
    vin TEXT NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS violations_frame ON violations (frame_id);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY,
    vin TEXT NOT NULL,
    kind TEXT NOT NULL,             -- alarm (level >= 3 alarm window) | hv_off (2025 59:30-60:00 report)
    frame_id INTEGER REFERENCES frames (id),  -- the fault-point frame / the first "off" report
    at TEXT NOT NULL,               -- fault point / first "off" collection time, ISO 8601 UTC
    start_at TEXT NOT NULL,         -- first collection time the window needs (alarm) or accepts (hv_off)
    end_at TEXT NOT NULL,           -- last one
    status TEXT NOT NULL,           -- open | complete | gap | cancelled (hv_off: HV back on before it)
    decided_at TEXT,                -- server time of the decision (NULL while open)
    reason TEXT                     -- why it was decided (logout, timeout, data) and what was missing
);
CREATE INDEX IF NOT EXISTS windows_vin ON windows (vin, kind, status);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    vin TEXT NOT NULL,
    kind TEXT NOT NULL,             -- query | set | control
    args TEXT NOT NULL,             -- JSON
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | replied | abandoned | failed
    result TEXT,                    -- JSON: reply flag and body, or the failure reason
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

FINAL_STATUSES = ("replied", "abandoned", "failed")


def iso(t: datetime) -> str:
    """ISO 8601 UTC text of an aware datetime."""
    return t.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class FrameRow:
    """One stored frame."""

    id: int
    conn: int
    received_at: str
    vin: str
    edition: int
    command: int
    response: int
    collected: str | None
    alarm_level: int | None
    raw: str
    reply: str | None
    decodable: bool
    decoded: Any


@dataclass(frozen=True)
class WindowRow:
    """One window obligation (see the ``windows`` table)."""

    id: int
    vin: str
    kind: str
    frame_id: int | None
    at: str
    start_at: str
    end_at: str
    status: str
    decided_at: str | None
    reason: str | None


@dataclass(frozen=True)
class CommandRow:
    """One queued downlink command."""

    id: int
    vin: str
    kind: str
    args: Any
    status: str
    result: Any


class PlatformDB:
    """The platform database; one connection per process (the server's lives on its event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self.conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open platform database: {exc}") from exc
        self._in_tx = False
        # frames and violations are buffered and inserted with one executemany per commit; their ids are
        # assigned here (one writer per database: the server)
        self._frames: list[tuple[Any, ...]] = []
        self._violations: list[tuple[Any, ...]] = []
        self._frame_id = self._max_id("frames")
        self._violation_id = self._max_id("violations")
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._committed = threading.Event()  # set by each commit: wakes the checkpoint thread

    def start_checkpointer(self, interval: float = 1.0, fsync: bool = False) -> None:
        """Move WAL checkpoints off the writer: the server's connection stops checkpointing by itself and
        a thread with its own connection checkpoints (PASSIVE), so a commit never does that work.

        ``fsync`` False (default): a checkpoint right after each commit (at least every ``interval`` s),
        without fsync. One that finishes before the next commit has copied the whole log, and that commit
        starts the log from its beginning again: the log stays about one group commit long. (A checkpoint
        running while commits keep landing never catches up: the log grew by about a gigabyte a minute at
        3,000 frames/s.) Without fsync because an fsync of the database file stalls the writer's next
        commits for up to 0.3 s on this machine (the file system's journal) — at the price of SQLite's
        ``synchronous=OFF`` for the checkpoints: a process crash loses nothing, but an OS crash or power
        loss can corrupt the database.

        ``fsync`` True: a checkpoint with fsync (``synchronous=NORMAL``: no corruption on power loss)
        every ``interval`` s; under continuous load the log then keeps growing until the load pauses."""
        if self._checkpointer is not None:
            return
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(target=self._checkpoints, args=(interval, fsync),
                                              name="platform-db-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoints(self, interval: float, fsync: bool) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.execute(f"PRAGMA synchronous={'NORMAL' if fsync else 'OFF'}")
        except sqlite3.Error as exc:
            log.error("%s: checkpoint connection failed: %s", self.path, exc)
            return
        try:
            while not self._stop_checkpoints.is_set():
                if fsync:
                    self._stop_checkpoints.wait(interval)
                else:
                    self._committed.wait(interval)
                    self._committed.clear()
                if self._stop_checkpoints.is_set():
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy, disk full…: the WAL keeps the data; try again later
                    log.warning("%s: checkpoint failed: %s", self.path, exc)
        finally:
            conn.close()

    def stop_checkpointer(self) -> None:
        """Stop the checkpoint thread; the connection checkpoints by itself again."""
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._committed.set()
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
            self.conn.execute("PRAGMA wal_autocheckpoint=1000")

    def _max_id(self, table: str) -> int:
        try:
            return int(self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the {table} table: {exc}") from exc

    def close(self) -> None:
        self.commit()
        self.stop_checkpointer()
        self.conn.close()

    # ---- writes (server)

    def _begin(self) -> None:
        if not self._in_tx:
            self.conn.execute("BEGIN")
            self._in_tx = True

    def flush(self) -> None:
        """Insert the buffered frames and violations (one statement each, all or nothing; on an error they
        stay buffered for the next attempt)."""
        if not self._frames and not self._violations:
            return
        self._begin()
        try:
            self.conn.execute("SAVEPOINT flush")
            try:
                if self._frames:
                    self.conn.executemany(
                        "INSERT INTO frames (id, conn, received_at, vin, edition, command, response,"
                        " collected, alarm_level, raw, reply, decodable, decoded)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        self._frames)
                if self._violations:
                    self.conn.executemany(
                        "INSERT INTO violations (id, frame_id, vin, kind, reason, at) VALUES (?,?,?,?,?,?)",
                        self._violations)
            except sqlite3.Error:
                self.conn.execute("ROLLBACK TO flush")
                raise
            finally:
                self.conn.execute("RELEASE flush")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot store {len(self._frames)} frames: {exc}") from exc
        self._frames.clear()
        self._violations.clear()

    def commit(self) -> None:
        """Commit what was written since the last commit (the server group-commits every 15 ms)."""
        self.flush()
        if self._in_tx:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: commit failed: {exc}") from exc
            self._in_tx = False
            self._committed.set()

    def add_frame(self, *, conn: int, received_at: datetime, vin: str, edition: int, command: int,
                  response: int, collected: datetime | None, alarm_level: int | None, raw: bytes,
                  reply: bytes | None, decodable: bool, decoded: Any) -> int:
        """Store one received frame (buffered until ``flush``/``commit``); returns its id."""
        self._frame_id += 1
        self._frames.append(
            (self._frame_id, conn, iso(received_at), vin, edition, command, response,
             iso(collected) if collected is not None else None, alarm_level, raw.hex().upper(),
             reply.hex().upper() if reply else None, int(decodable),
             json.dumps(decoded, ensure_ascii=False) if decoded is not None else None))
        return self._frame_id

    def add_violation(self, frame_id: int | None, vin: str, kind: str, reason: str, at: datetime) -> None:
        """Record one violation (``frame_id`` None: not tied to one frame, e.g. a silence); buffered like
        the frames."""
        self._violation_id += 1
        self._violations.append((self._violation_id, frame_id, vin, kind, reason, iso(at)))

    # ---- windows (alarm windows, 2025 post-HV-off windows)

    def add_window(self, vin: str, kind: str, frame_id: int | None, at: datetime, start: datetime,
                   end: datetime, status: str = "open", reason: str | None = None,
                   decided_at: datetime | None = None) -> int:
        """Record one window obligation; returns its id."""
        self._begin()
        cur = self.conn.execute(
            "INSERT INTO windows (vin, kind, frame_id, at, start_at, end_at, status, decided_at, reason)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (vin, kind, frame_id, iso(at), iso(start), iso(end), status,
             iso(decided_at) if decided_at is not None else None, reason))
        return int(cur.lastrowid or 0)

    def update_window(self, window_id: int, *, status: str | None = None, reason: str | None = None,
                      decided_at: datetime | None = None, at: datetime | None = None,
                      frame_id: int | None = None, start: datetime | None = None) -> None:
        """Change the given columns of a window row."""
        sets: list[str] = []
        args: list[Any] = []
        for column, value in (("status", status), ("reason", reason), ("frame_id", frame_id),
                              ("decided_at", iso(decided_at) if decided_at else None),
                              ("at", iso(at) if at else None), ("start_at", iso(start) if start else None)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if sets:
            self._begin()
            self.conn.execute(f"UPDATE windows SET {', '.join(sets)} WHERE id = ?", (*args, window_id))

    def delete_window(self, window_id: int) -> None:
        self._begin()
        self.conn.execute("DELETE FROM windows WHERE id = ?", (window_id,))

    def windows(self, vin: str | None = None, kind: str | None = None,
                status: str | None = None) -> list[WindowRow]:
        """Window rows, optionally filtered, in id order."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("vin", vin), ("kind", kind), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = ("SELECT id, vin, kind, frame_id, at, start_at, end_at, status, decided_at, reason FROM windows"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id")
        return [WindowRow(*r) for r in self.conn.execute(sql, args)]

    def report_samples(self, vin: str, since: datetime) -> list[tuple[datetime, int | None, int]]:
        """(collection time, alarm level, frame id) of the VIN's decodable realtime and reissue reports
        collected at or after ``since``, plus the last one before it, in collection-time order."""
        base = ("SELECT collected, alarm_level, id FROM frames WHERE vin = ? AND command IN (2, 3)"
                " AND response = 254 AND decodable = 1 AND collected IS NOT NULL")
        self.flush()
        text = iso(since)
        rows = self.conn.execute(base + " AND collected < ? ORDER BY collected DESC LIMIT 1",
                                 (vin, text)).fetchall()
        rows += self.conn.execute(base + " AND collected >= ? ORDER BY collected", (vin, text)).fetchall()
        return [(datetime.fromisoformat(c), level, fid) for c, level, fid in rows]

    def has_report_between(self, vin: str, start: datetime, end: datetime) -> bool:
        """Whether the VIN has a decodable realtime/reissue report collected in [start, end]."""
        self.flush()
        row = self.conn.execute(
            "SELECT 1 FROM frames WHERE vin = ? AND command IN (2, 3) AND response = 254 AND decodable = 1"
            " AND collected >= ? AND collected <= ? LIMIT 1", (vin, iso(start), iso(end))).fetchone()
        return row is not None

    # ---- downlink commands

    def queue_command(self, vin: str, kind: str, args: Any) -> int:
        """Queue a downlink command for the running server (``tbox platform send``)."""
        now = iso(datetime.now(UTC))
        cur = self.conn.execute(
            "INSERT INTO commands (vin, kind, args, created_at, updated_at) VALUES (?,?,?,?,?)",
            (vin, kind, json.dumps(args), now, now))
        return int(cur.lastrowid or 0)

    def pending_commands(self) -> list[CommandRow]:
        rows = self.conn.execute(
            "SELECT id, vin, kind, args, status, result FROM commands WHERE status = 'pending' ORDER BY id"
        ).fetchall()
        return [_command(r) for r in rows]

    def update_command(self, command_id: int, status: str, result: Any = None) -> None:
        self._begin()
        self.conn.execute("UPDATE commands SET status = ?, result = ?, updated_at = ? WHERE id = ?",
                          (status, json.dumps(result) if result is not None else None,
                           iso(datetime.now(UTC)), command_id))

    def command(self, command_id: int) -> CommandRow | None:
        row = self.conn.execute("SELECT id, vin, kind, args, status, result FROM commands WHERE id = ?",
                                (command_id,)).fetchone()
        return _command(row) if row is not None else None

    # ---- reads

    def frames(self, vin: str | None = None) -> Iterator[FrameRow]:
        """Stored frames in arrival order (optionally one VIN's)."""
        self.flush()
        sql = ("SELECT id, conn, received_at, vin, edition, command, response, collected, alarm_level, raw,"
               " reply, decodable, decoded FROM frames")
        args: tuple[Any, ...] = ()
        if vin is not None:
            sql += " WHERE vin = ?"
            args = (vin,)
        for r in self.conn.execute(sql + " ORDER BY id", args):
            decoded = json.loads(r[12]) if r[12] is not None else None
            yield FrameRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], bool(r[11]),
                           decoded)

    def violations_by_frame(self) -> dict[int | None, list[tuple[str, str]]]:
        self.flush()
        out: dict[int | None, list[tuple[str, str]]] = {}
        for frame_id, kind, reason in self.conn.execute(
                "SELECT frame_id, kind, reason FROM violations ORDER BY id"):
            out.setdefault(frame_id, []).append((kind, reason))
        return out

    def violations(self, vin: str | None = None) -> list[tuple[int | None, str, str, str]]:
        """(frame id, VIN, kind, reason) of every recorded violation."""
        self.flush()
        sql = "SELECT frame_id, vin, kind, reason FROM violations"
        if vin is not None:
            return list(self.conn.execute(sql + " WHERE vin = ? ORDER BY id", (vin,)))
        return list(self.conn.execute(sql + " ORDER BY id"))

    def realtime_times(self, vin: str, limit: int | None = None) -> set[str]:
        """Collection times (ISO) this VIN already sent as realtime 0x02 (duplicate detection); with
        ``limit`` only the latest that many."""
        self.flush()
        sql = ("SELECT collected FROM frames WHERE vin = ? AND command = 2 AND response = 254"
               " AND collected IS NOT NULL AND decodable = 1 ORDER BY collected DESC")
        if limit is not None:
            return {r[0] for r in self.conn.execute(sql + " LIMIT ?", (vin, limit))}
        return {r[0] for r in self.conn.execute(sql, (vin,))}


def _command(row: tuple[Any, ...]) -> CommandRow:
    return CommandRow(row[0], row[1], row[2], json.loads(row[3]), row[4],
                      json.loads(row[5]) if row[5] is not None else None)


__all__ = ["FINAL_STATUSES", "SCHEMA", "CommandRow", "FrameRow", "PlatformDB", "WindowRow", "iso"]
