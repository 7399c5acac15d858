"""``tbox demo`` on loopback: simulator -> agent -> strict platform with a scripted outage; the summary
and the exit status (0: every report at the platform, no violation, outbox empty)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli import main
from agent.demo import StatusView, Summary, flag_names

REPO = Path(__file__).resolve().parents[1]


def _summary(**kw: object) -> Summary:
    base: dict[str, object] = dict(
        frames={"0x02": 10}, realtime=10, reissue=0, seconds_with_data=10, span_seconds=10, emitted=10,
        missing=[], violations={}, alarm_gaps=[], outbox_pending=0, outage="none", reissue_in_order=True,
        resent=0, max_level=0, fault_point=None, fault_flags=(), wall_s=1.0,
    )
    base.update(kw)
    return Summary(**base)  # type: ignore[arg-type]


def test_short_demo_exits_0_with_realtime_reissue_and_the_outage(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path) -> None:
    code = main(["demo", "--seconds", "240", "--speed", "30", "--outage-at", "0.3", "--outage", "0.25",
                 "--scenario-at", "0.2", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "RESULT: OK" in out
    assert "platform DOWN" in out and "platform UP again" in out
    assert "violations:              none" in out
    assert "missing reports: 0" in out
    assert "outbox at the end:       0 pending" in out
    m = re.search(r"^reports: +(\d+) realtime \(0x02\) \+ (\d+) reissue", out, re.M)
    assert m is not None and int(m[1]) > 0 and int(m[2]) > 0, out
    assert "alarm window:            level 3" in out and "window complete" in out
    assert (tmp_path / "platform.db").exists() and (tmp_path / "agent.toml").exists()


def test_platform_that_never_comes_back_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--seconds", "90", "--speed", "30", "--outage-at", "0.5", "--outage", "0.5",
                 "--scenario", "none", "--drain-timeout", "2"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "RESULT: FAIL" in out and "missing at the platform" in out and "left in the outbox" in out
    assert "never came back" in out


def test_tbox_demo_as_a_command() -> None:
    tbox = Path(sys.executable).parent / "tbox"
    cmd = [str(tbox)] if tbox.exists() else [sys.executable, "-m", "agent.cli"]
    proc = subprocess.run([*cmd, "demo", "--seconds", "120", "--speed", "40"], cwd=REPO,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESULT: OK" in proc.stdout
    assert "\x1b[" not in proc.stdout  # not a terminal: plain lines, no redrawing


def test_summary_reasons_and_exit_codes() -> None:
    assert _summary().exit_code == 0
    t = datetime(2025, 1, 1, tzinfo=UTC)
    bad = _summary(missing=[t], violations={"time_skew": 2}, outbox_pending=3)
    assert bad.exit_code == 1 and len(bad.reasons) == 3
    assert "RESULT: FAIL" in bad.lines()[-1]
    assert _summary(interrupted=True).exit_code == 130
    assert _summary(emitted=0).exit_code == 1


def test_flag_names_and_plain_status_lines() -> None:
    assert flag_names((1 << 11) | (1 << 16)) == ("insulation", "hv_interlock")
    assert flag_names(1 << 30) == ("bit 30",)
    buf = io.StringIO()
    view = StatusView(buf, live=False, interval=5.0)
    view.update(["a", "  b"])
    view.update(["c"])  # within the interval: nothing
    view.event("x")
    assert buf.getvalue() == "a | b\n  * x\n"
