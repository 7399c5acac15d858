"""Durable outbox (SQLite, WAL): every report is stored before it is sent and stays until delivered.

One connection, used from one thread (the agent's event loop). Writes go into an open transaction that
``flush`` commits about once per ``commit_interval_s`` (one fsync per commit: ``synchronous=FULL``), so
an SD card sees about one fsync per second. Reads on the same connection see uncommitted rows, so a
record is sendable the moment ``add`` returns. Worst-case loss on power failure or ``kill -9``: the
records added since the last successful commit (``commit_interval_s``); see docs/store.md.

What is stored per record: the encoded data unit (plain, as the pipeline produced it), the header fields
(edition, original command, VIN, encryption byte), the collection time (UTC) and a CRC32 over all of
them, checked on every read: a corrupt row is moved to ``quarantine`` and counted, never raised.

Besides the outbox: the daily login serial (``SqliteSerialStore``, the session's ``SerialStore``) and
parameters set by the platform (``save_parameters`` / ``load_parameters``), committed at once.

Disk full (or any write error): what is committed stays; rows of the failed transaction and new records
are held in memory up to ``memory_limit`` (then counted as dropped) and written at the next flush.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from agent.errors import StoreError
from agent.protocol import wire
from agent.protocol.model import Edition, Encryption, Special

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DAY = 86400.0
#: reissue window of the standard: 2016 Annex B 3 days, 2025 Annex B 7 days
DEFAULT_RETENTION_S = {Edition.E2016: 3 * DAY, Edition.E2025: 7 * DAY}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    edition INTEGER NOT NULL,
    command INTEGER NOT NULL,
    vin TEXT NOT NULL,
    encryption INTEGER NOT NULL,
    collected_at INTEGER NOT NULL,
    stored_at REAL NOT NULL,
    hold_until REAL NOT NULL DEFAULT 0,
    data BLOB NOT NULL,
    crc INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (collected_at, id);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY,
    moved_at REAL NOT NULL,
    reason TEXT NOT NULL,
    row TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parameters (id INTEGER PRIMARY KEY, value TEXT NOT NULL);
"""
_DELETE_ONE = "DELETE FROM outbox WHERE id = ? RETURNING length(data)"
_TOTALS = "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM outbox"
_COLUMNS = "id, edition, command, vin, encryption, collected_at, stored_at, hold_until, data, crc"


def record_crc(edition: int, command: int, vin: str, encryption: int, collected_at: int, data: bytes) -> int:
    """CRC32 over a record's header fields, collection time and data unit."""
    head = struct.pack(">HBBq", edition, command, encryption, collected_at) + vin.encode("latin-1")
    return zlib.crc32(data, zlib.crc32(head))


@dataclass(frozen=True)
class OutboxRecord:
    """One stored report: the data unit as encoded and what is needed to frame it again."""

    id: int
    edition: int
    command: int  # as collected: 0x02 realtime, 0x03 reissue (alarm window)
    vin: str
    encryption: int
    collected_at: datetime  # UTC
    data: bytes = field(repr=False)
    stored_at: float = 0.0
    hold_until: float = 0.0

    @property
    def order(self) -> tuple[int, int]:
        """Sort key of the backlog: collection time, then arrival."""
        return (int(self.collected_at.timestamp()), self.id)

    def frame(self, command: int | None = None) -> bytes:
        """The whole frame; ``command`` re-frames it (0x03 for a reissue; the BCC is recomputed, a 2025
        signature covers the data unit only and stays valid)."""
        cmd = self.command if command is None else command
        vin = self.vin.encode("latin-1").ljust(17, b"\x00")
        return wire.build_frame(self.edition, cmd, 0xFE, vin, self.encryption, self.data)

    def crc(self) -> int:
        return record_crc(self.edition, self.command, self.vin, self.encryption,
                          int(self.collected_at.timestamp()), self.data)


@dataclass
class StoreStats:
    """Counters since the store was opened (``pending`` and ``bytes`` are current)."""

    added: int = 0
    delivered: int = 0
    expired: int = 0
    evicted: int = 0
    quarantined: int = 0
    dropped: int = 0
    held: int = 0
    commits: int = 0
    write_errors: int = 0
    pending: int = 0
    bytes: int = 0


Connect = Callable[[str], sqlite3.Connection]


def _default_connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


class Outbox:
    """The SQLite outbox. See the module docstring and docs/store.md.

    ``retention_s``: records collected longer ago are removed (no longer eligible for reissue).
    ``max_bytes``: cap on the stored data units; the oldest are evicted first (counted and logged).
    ``commit_interval_s``: batch window of ``maybe_flush``. ``memory_limit``: records held in memory when
    writes fail. ``connect``: connection factory (tests inject failures). ``clock``: wall time (POSIX s).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        retention_s: float = 7 * DAY,
        max_bytes: int = 512 * 1024 * 1024,
        commit_interval_s: float = 1.0,
        memory_limit: int = 10_000,
        connect: Connect | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = str(path)
        self.retention_s = retention_s
        self.max_bytes = max_bytes
        self.commit_interval_s = commit_interval_s
        self.memory_limit = memory_limit
        self.clock = clock
        self.stats = StoreStats()
        self._connect = connect or _default_connect
        self._in_txn = False
        self._txn_added: list[OutboxRecord] = []  # rows written in the open transaction
        self._txn_deleted: list[int] = []
        self._held: list[OutboxRecord] = []  # rows that could not be written (disk full)
        self._deletes_todo: list[int] = []  # deletes that could not be written
        self._last_commit = clock()
        self._next_id = 1
        try:
            self._db = self._connect(self.path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO kv VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            row = self._db.execute("SELECT COALESCE(MAX(id), 0), COUNT(*), "
                                   "COALESCE(SUM(length(data)), 0) FROM outbox").fetchone()
            qmax = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM quarantine").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self._next_id = max(int(row[0]), int(qmax)) + 1
        self.stats.pending, self.stats.bytes = int(row[1]), int(row[2])
        log.info("store %s: %d records pending (%d bytes)", self.path, self.stats.pending, self.stats.bytes)

    # ------------------------------------------------------------------ writing

    def add(
        self,
        edition: int,
        command: int,
        vin: str,
        data: bytes,
        collected_at: datetime,
        encryption: int = Encryption.NONE,
    ) -> int | None:
        """Store a record (in the open transaction); returns its id, None if it had to be dropped."""
        rec = OutboxRecord(self._next_id, int(edition), int(command), vin, int(encryption),
                           collected_at.astimezone(UTC).replace(microsecond=0), bytes(data), self.clock())
        self._next_id += 1
        self.stats.added += 1
        if self._held:  # the disk was full: keep the order, try at the next flush
            return self._hold(rec)
        try:
            self._insert(rec)
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return self._hold(rec)
        self._enforce_cap()
        return rec.id

    def add_frame(self, frame: bytes, collected_at: datetime) -> int | None:
        """Store a whole encoded frame (the pipeline's bytes)."""
        raw = wire.parse_frame(frame)
        vin = bytes(raw.vin).rstrip(b"\x00").decode("latin-1")
        return self.add(raw.edition, raw.command, vin, raw.data, collected_at, raw.encryption)

    def delivered(self, record_id: int) -> None:
        """The record reached the platform: remove it (committed with the next flush)."""
        for i, rec in enumerate(self._held):
            if rec.id == record_id:
                del self._held[i]
                self.stats.held = len(self._held)
                self.stats.delivered += 1
                return
        if self._deletes_todo:
            self._deletes_todo.append(record_id)
            return
        try:
            if self._delete(record_id):
                self.stats.delivered += 1
        except sqlite3.Error as exc:
            self._write_failed(exc)
            self._deletes_todo.append(record_id)

    def hold(self, record_id: int, until: float) -> None:
        """Keep a record out of the backlog until wall time ``until`` (e.g. after ``UploadAbandoned``)."""
        try:
            self._begin()
            self._db.execute("UPDATE outbox SET hold_until = ? WHERE id = ?", (until, record_id))
        except sqlite3.Error as exc:
            self._write_failed(exc)

    def maybe_flush(self) -> bool:
        """Commit if the batch window has passed; returns True when a commit happened."""
        if self.clock() - self._last_commit < self.commit_interval_s:
            return False
        return self.flush()

    def flush(self) -> bool:
        """Commit the open transaction now (one fsync); retry held rows first. True on success."""
        self._last_commit = self.clock()
        try:
            if self._held or self._deletes_todo:
                self._retry_held()
            if not self._in_txn:
                return True
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._write_failed(exc)
            self._rollback()
            return False
        self._in_txn = False
        self._txn_added.clear()
        self._txn_deleted.clear()
        self.stats.commits += 1
        return True

    def expire(self) -> int:
        """Remove records older than the retention window; returns how many."""
        cutoff = int(self.clock() - self.retention_s)
        try:
            rows = self._db.execute("SELECT id, length(data) FROM outbox WHERE collected_at < ?",
                                    (cutoff,)).fetchall()
            if not rows:
                return 0
            self._begin()
            self._db.execute("DELETE FROM outbox WHERE collected_at < ?", (cutoff,))
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return 0
        self._forget(rows)
        self.stats.expired += len(rows)
        log.warning("%d records older than the %.1f-day retention removed", len(rows), self.retention_s / DAY)
        return len(rows)

    def close(self) -> None:
        """Commit and close (records still held in memory are lost: they are counted as dropped)."""
        self.flush()
        if self._held:
            self.stats.dropped += len(self._held)
            log.error("closing with %d records that could not be written", len(self._held))
        try:
            self._db.close()
        except sqlite3.Error as exc:
            raise StoreError(f"closing the store failed: {exc}") from exc

    # ------------------------------------------------------------------ reading

    def backlog(self, after: tuple[int, int] | None = None, limit: int = 100) -> list[OutboxRecord]:
        """Pending records in (collection time, id) order after ``after``, not on hold; corrupt rows are
        quarantined and skipped."""
        now = self.clock()
        if after is None:
            after = (-(2**62), 0)
        try:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE (collected_at, id) > (?, ?) AND hold_until <= ? "
                "ORDER BY collected_at, id LIMIT ?",
                (after[0], after[1], now, limit),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"reading the outbox failed: {exc}") from exc
        return [rec for rec in (self._checked(r) for r in rows) if rec is not None]

    def get(self, record_id: int) -> OutboxRecord | None:
        """One record by id (None: delivered, evicted, expired or quarantined)."""
        for rec in self._held:
            if rec.id == record_id:
                return rec
        try:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (record_id,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"reading the outbox failed: {exc}") from exc
        return None if row is None else self._checked(row)

    def pending(self) -> int:
        """Records waiting for delivery (stored and held in memory)."""
        return self.stats.pending + len(self._held)

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result ("ok" when sound)."""
        try:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            return f"error: {exc}"

    # ------------------------------------------------------------------ key/value, parameters, serial

    def get_value(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        """Set and commit at once (serials and parameters must survive a crash right after)."""
        try:
            self._begin()
            self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, value))
        except sqlite3.Error as exc:
            self._write_failed(exc)
            raise StoreError(f"cannot save {key}: {exc}") from exc
        if not self.flush():
            raise StoreError(f"cannot commit {key}")

    def save_parameters(self, items: Iterable[tuple[int, int | str | bytes | Special]]) -> None:
        """Persist platform-set parameters (id → value), committed at once."""
        try:
            self._begin()
            for pid, value in items:
                self._db.execute("INSERT OR REPLACE INTO parameters VALUES (?, ?)",
                                 (int(pid), json.dumps(_dump_value(value))))
        except sqlite3.Error as exc:
            self._write_failed(exc)
            raise StoreError(f"cannot save parameters: {exc}") from exc
        if not self.flush():
            raise StoreError("cannot commit parameters")

    def clear_parameters(self) -> None:
        """Forget every platform-set parameter (factory reset), committed at once."""
        try:
            self._begin()
            self._db.execute("DELETE FROM parameters")
        except sqlite3.Error as exc:
            self._write_failed(exc)
            raise StoreError(f"cannot clear parameters: {exc}") from exc
        if not self.flush():
            raise StoreError("cannot commit the parameter reset")

    def load_parameters(self) -> dict[int, int | str | bytes | Special]:
        """Parameters saved by ``save_parameters`` (id → value)."""
        out: dict[int, int | str | bytes | Special] = {}
        for pid, text in self._db.execute("SELECT id, value FROM parameters ORDER BY id"):
            try:
                out[int(pid)] = _load_value(json.loads(text))
            except (ValueError, KeyError, TypeError):
                log.warning("stored parameter 0x%02X is unreadable; ignored", pid)
        return out

    def serial_store(self) -> SqliteSerialStore:
        """The session's ``SerialStore`` backed by this database."""
        return SqliteSerialStore(self)

    # ------------------------------------------------------------------ internals

    def _begin(self) -> None:
        if not self._in_txn:
            self._db.execute("BEGIN")
            self._in_txn = True

    def _insert(self, rec: OutboxRecord) -> None:
        self._begin()
        self._db.execute(
            f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (rec.id, rec.edition, rec.command, rec.vin, rec.encryption, int(rec.collected_at.timestamp()),
             rec.stored_at, rec.hold_until, rec.data, rec.crc()),
        )
        self._txn_added.append(rec)
        self.stats.pending += 1
        self.stats.bytes += len(rec.data)

    def _delete(self, record_id: int) -> bool:
        self._begin()
        row = self._db.execute(_DELETE_ONE, (record_id,)).fetchone()
        if row is None:
            return False
        self._txn_deleted.append(record_id)
        self._forget([(record_id, row[0])])
        return True

    def _forget(self, rows: Iterable[tuple[int, int]]) -> None:
        for _, size in rows:
            self.stats.pending -= 1
            self.stats.bytes -= int(size)

    def _enforce_cap(self) -> None:
        if self.stats.bytes <= self.max_bytes:
            return
        rows = self._db.execute("SELECT id, length(data) FROM outbox ORDER BY collected_at, id LIMIT 256")
        victims: list[tuple[int, int]] = []
        excess = self.stats.bytes - self.max_bytes
        for rid, size in rows:
            if excess <= 0:
                break
            victims.append((int(rid), int(size)))
            excess -= int(size)
        self._db.executemany("DELETE FROM outbox WHERE id = ?", [(v[0],) for v in victims])
        self._forget(victims)
        before = self.stats.evicted
        self.stats.evicted += len(victims)
        if before == 0 or before // 1000 != self.stats.evicted // 1000:
            log.warning("store full (%d bytes cap): %d oldest records evicted so far", self.max_bytes,
                        self.stats.evicted)

    def _hold(self, rec: OutboxRecord) -> int | None:
        if len(self._held) >= self.memory_limit:
            self.stats.dropped += 1
            if self.stats.dropped == 1 or self.stats.dropped % 1000 == 0:
                log.error("store unwritable and %d records held in memory: %d records dropped",
                          len(self._held), self.stats.dropped)
            return None
        self._held.append(rec)
        self.stats.held = len(self._held)
        return rec.id

    def _retry_held(self) -> None:
        held, self._held = self._held, []
        deletes, self._deletes_todo = self._deletes_todo, []
        for i, rec in enumerate(held):
            try:
                self._insert(rec)
            except sqlite3.Error:
                self._held = held[i:] + self._held
                self._deletes_todo = deletes + self._deletes_todo
                self.stats.held = len(self._held)
                raise
        self.stats.held = 0
        for rid in deletes:
            if self._delete(rid):
                self.stats.delivered += 1

    def _rollback(self) -> None:
        """A commit failed: undo the transaction and keep its work in memory for the next flush."""
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already (SQLITE_FULL)
            self._db.execute("ROLLBACK")
        self._in_txn = False
        lost, self._txn_added = self._txn_added, []
        undeleted, self._txn_deleted = self._txn_deleted, []
        self.stats.delivered -= len(undeleted)
        self._recount()
        self._deletes_todo = undeleted + self._deletes_todo
        for rec in lost:
            if self._hold(rec) is None:
                break
        self._held.sort(key=lambda r: r.id)

    def _recount(self) -> None:
        try:
            count, size = self._db.execute(_TOTALS).fetchone()
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return
        self.stats.pending, self.stats.bytes = int(count), int(size)

    def _write_failed(self, exc: sqlite3.Error) -> None:
        self.stats.write_errors += 1
        if self.stats.write_errors == 1 or self.stats.write_errors % 100 == 0:
            log.error("store write failed (%d so far): %s", self.stats.write_errors, exc)

    def _checked(self, row: Any) -> OutboxRecord | None:
        rid, edition, command, vin, enc, collected, stored, hold, data, crc = row
        try:
            rec = OutboxRecord(int(rid), int(edition), int(command), str(vin), int(enc),
                               datetime.fromtimestamp(int(collected), UTC), bytes(data), float(stored),
                               float(hold))
            ok = rec.crc() == int(crc)
        except (TypeError, ValueError, OverflowError, OSError, UnicodeError):
            ok = False
        if ok:
            return rec
        self._quarantine(row)
        return None

    def _quarantine(self, row: Any) -> None:
        rid = row[0]
        text = json.dumps([v.hex() if isinstance(v, bytes) else v for v in row], default=str)
        try:
            self._begin()
            self._db.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?)",
                             (rid, self.clock(), "crc mismatch", text))
            size = self._db.execute(_DELETE_ONE, (rid,)).fetchone()
        except sqlite3.Error as exc:
            self._write_failed(exc)
            return
        if size is not None:
            self._forget([(rid, size[0] or 0)])
        self.stats.quarantined += 1
        log.error("outbox record %s failed its integrity check; quarantined (%d so far)", rid,
                  self.stats.quarantined)


class SqliteSerialStore:
    """``agent.protocol.session.SerialStore`` persisted in the outbox database."""

    KEY = "login_serial"

    def __init__(self, store: Outbox) -> None:
        self.store = store

    def load(self) -> tuple[date, int] | None:
        text = self.store.get_value(self.KEY)
        if text is None:
            return None
        try:
            day, serial = text.split(" ")
            return date.fromisoformat(day), int(serial)
        except ValueError:
            log.warning("stored login serial is unreadable; starting at 1")
            return None

    def save(self, day: date, serial: int) -> None:
        self.store.set_value(self.KEY, f"{day.isoformat()} {serial}")


def _dump_value(value: int | str | bytes | Special) -> dict[str, Any]:
    if isinstance(value, Special):
        return {"special": value.value}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, str):
        return {"str": value}
    return {"int": int(value)}


def _load_value(obj: dict[str, Any]) -> int | str | bytes | Special:
    if "special" in obj:
        return Special(obj["special"])
    if "bytes" in obj:
        return bytes.fromhex(obj["bytes"])
    if "str" in obj:
        return str(obj["str"])
    return int(obj["int"])


def retention_for(edition: Edition | int) -> float:
    """The standard's reissue window for an edition (seconds)."""
    return DEFAULT_RETENTION_S.get(Edition(int(edition)), 7 * DAY)


__all__ = ["Outbox", "OutboxRecord", "SqliteSerialStore", "StoreStats", "record_crc", "retention_for"]
