"""kill -9 at random instants: every record the writer reported committed is still there, the database
passes ``PRAGMA integrity_check`` and the writer resumes where it stopped."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from agent.store import Outbox

CYCLES = 20  # the issue asks for at least 20 kill -9 cycles
REPO = Path(__file__).resolve().parents[2]

# The writer adds records (and delivers some) as fast as it can and commits about every 20 ms. Before a
# commit it prints the ids whose delete the commit may carry ("?id"), after it returns the ids added ("+id").
WRITER = r"""
import sys, random, time
from datetime import UTC, datetime, timedelta
from agent.store import Outbox
store = Outbox(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
t0 = datetime(2026, 1, 1, tzinfo=UTC)
added, deleted = [], []
live = [r.id for r in store.backlog(limit=1000000)]
last = time.monotonic()
while True:
    rid = store.add(2016, 2, "LTBXEV00000000001", rng.randbytes(rng.randint(20, 400)),
                    t0 + timedelta(seconds=rng.randint(0, 10**6)))
    added.append(rid)
    live.append(rid)
    if rng.random() < 0.3 and live:
        victim = live.pop(rng.randrange(len(live)))
        store.delivered(victim)
        deleted.append(victim)
    if time.monotonic() - last >= 0.02:
        sys.stdout.write("".join(f"?{i}\n" for i in deleted))  # may be deleted from now on
        sys.stdout.flush()
        assert store.flush()
        last = time.monotonic()
        sys.stdout.write("".join(f"+{i}\n" for i in added))  # committed
        sys.stdout.flush()
        added.clear()
        deleted.clear()
"""


def test_kill_9_loop_loses_no_committed_record(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(32960)
    present: set[int] = set()
    deleted: set[int] = set()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    deadline = time.monotonic() + 45
    cycles = 0
    for cycle in range(CYCLES):
        assert time.monotonic() < deadline, f"only {cycles} cycles in time"
        out_path = tmp_path / f"out{cycle}.txt"
        with out_path.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(cycle)], stdout=out, env=env)
            time.sleep(0.2 + rng.random() * 0.3)  # startup (~0.2 s) plus a random instant of writing
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        for line in out_path.read_text().splitlines():
            if not line.endswith(("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")):
                continue  # a line cut by the kill was never reported as committed
            rid = int(line[1:])
            if line[0] == "+":
                present.add(rid)
            else:
                deleted.add(rid)
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        store = Outbox(db)
        ids = {r.id for r in store.backlog(limit=10**7)}
        assert store.stats.quarantined == 0
        store.close()
        missing = (present - deleted) - ids
        assert not missing, f"cycle {cycle}: committed records lost: {sorted(missing)[:10]}"
        cycles += 1
    assert cycles >= 20
    assert len(present) > 1000  # the writer really wrote between the kills
