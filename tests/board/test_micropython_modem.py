"""The lite firmware's UART modem link (AT commands, transparent TCP) under MicroPython, with a fake
modem and a platform behind it: the AT dialogue, login through the modem, realtime reports, a dropped
connection (``CLOSED``) detected and redialled, the records made while it was down reissued, and the
logout followed by the escape (``+++``) and ``AT+CIPCLOSE``."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.boardgen import compile_table
from agent.canbus.mapping import load_mapping
from agent.protocol.codec import decode_frame
from agent.protocol.model import Command
from tests.micropython_support import ROOT, copy_tree, run_micropython

HERE = Path(__file__).with_name("micropython")
FILES = ("tbox_lite/__init__.py", "tbox_lite/signals.py", "tbox_lite/alarm.py", "tbox_lite/report.py",
         "tbox_lite/ring.py", "tbox_lite/terminal.py", "tbox_lite/link.py")
PROTOCOL = ("agent/__init__.py", "agent/protocol/__init__.py", "agent/protocol/errors.py",
            "agent/protocol/wire.py")

pytestmark = pytest.mark.micropython


def test_modem_link_dials_reports_and_redials(tmp_path: Path) -> None:
    stage = tmp_path / "board"
    copy_tree(stage, FILES, ROOT / "board/micropython")
    copy_tree(stage, PROTOCOL)
    (stage / "tbox_table.py").write_text(compile_table(load_mapping(ROOT / "dbc" / "tbox_ev.toml")))
    result = run_micropython(HERE / "modem.py", stage, (*FILES, *PROTOCOL, "tbox_table.py"))
    out = result.stdout
    assert result.returncode == 0 and "DONE" in out, result.stderr[-3000:] + out[-3000:]
    assert "IMPL micropython" in out and "ICCID 89860000000000000003" in out
    at = [line[3:] for line in out.splitlines() if line.startswith("AT ")]
    dial = ["AT", "ATE0", "AT+CIPSHUT", "AT+CIPMODE=1", 'AT+CSTT="cmnet"',
            'AT+CIPSTART="TCP","203.0.113.7",32960']
    # ICCID, dial, CLOSED by the network -> dial again after retry_s, logout -> escape and close
    assert at == ["AT+CCID", *dial, *dial, "AT+CIPCLOSE"], at
    frames = [decode_frame(bytes.fromhex(line[3:])) for line in out.splitlines() if line.startswith("TX ")]
    commands = [f.command for f in frames]
    logins = [f for f in frames if f.command is Command.VEHICLE_LOGIN]
    assert [f.body.serial for f in logins] == [1, 2]
    assert commands[0] is Command.VEHICLE_LOGIN and commands[-1] is Command.VEHICLE_LOGOUT
    assert Command.REALTIME in commands
    reissued = [f.body.time for f in frames if f.command is Command.REISSUE]
    assert reissued and reissued == sorted(reissued)
    assert commands.index(Command.REISSUE) > commands.index(Command.VEHICLE_LOGIN, 1)
    counters = next(line.split()[1:] for line in out.splitlines() if line.startswith("COUNTERS "))
    assert int(counters[-1]) == 0  # ring empty at the end
