"""A real write limit instead of a simulated error: the store runs in a subprocess whose file-size limit
(``RLIMIT_FSIZE``, settable without root) stands in for a tiny filesystem. Writes start failing (SQLite
reports "disk I/O error"), the agent keeps going, records are held in memory, nothing committed is lost;
once the limit is lifted every record is written and the database is sound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, os, resource, signal, sys
from datetime import UTC, datetime, timedelta
from agent.store import Outbox
db = sys.argv[1]
t0 = datetime(2026, 1, 1, tzinfo=UTC)
s = Outbox(db, commit_interval_s=0, memory_limit=1500)
def add(i):
    return s.add(2016, 2, "LTBXEV00000000001", bytes([i % 256]) * 300, t0 + timedelta(seconds=i))
committed = [add(i) for i in range(50)]
assert s.flush()
size = sum(os.path.getsize(db + ext) for ext in ("", "-wal") if os.path.exists(db + ext))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20000, resource.RLIM_INFINITY))
failed = 0
ids = []
for i in range(50, 2000):
    ids.append(add(i))
    if i % 10 == 0 and not s.flush():
        failed += 1
full = dict(held=s.stats.held, dropped=s.stats.dropped, errors=s.stats.write_errors, failed=failed,
            present=len({r.id for r in s.backlog(limit=10**6)} & set(committed)))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
assert s.flush()
s.close()
s = Outbox(db)
stored = {r.id for r in s.backlog(limit=10**6)}
print(json.dumps(dict(full=full, integrity=s.integrity_check(), stored=len(stored),
                      kept=sum(1 for i in ids if i is not None and i in stored),
                      accepted=sum(1 for i in ids if i is not None), committed_ok=set(committed) <= stored)))
"""


def test_file_size_limit_holds_new_records_and_loses_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "o.db")], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    full = result["full"]
    assert full["errors"] > 0 and full["failed"] > 0  # the limit really bit
    assert full["present"] == 50  # committed records readable while the disk is full
    # held in memory up to the bound (1500), the rest counted as dropped, never silently
    assert full["held"] == 1500 and full["dropped"] > 0
    assert result["accepted"] + full["dropped"] == 1950
    assert result["integrity"] == "ok"
    assert result["committed_ok"]
    assert result["kept"] == result["accepted"]  # every record the store accepted is on disk now
    assert result["stored"] == 50 + result["accepted"]
