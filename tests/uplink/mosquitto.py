"""A private Mosquitto broker for tests: 127.0.0.1, a free port, a temp config, persistence off.

``mosquitto_binary()`` finds the broker (PATH, then /usr/sbin, /usr/local/sbin, Homebrew). Missing broker:
the test fails under ``CI=true`` (CI must run the MQTT tests; ``make test`` installs it) and is skipped
with a reason otherwise. ``Broker.kill()`` / ``start()`` restart it on the same port (outage tests).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto",
               "/usr/local/opt/mosquitto/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    """Path of the mosquitto executable, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


def require_mosquitto() -> str:
    """The broker's path; fail under CI, skip elsewhere, when it is missing."""
    path = mosquitto_binary()
    if path is not None:
        return path
    reason = "mosquitto not installed (`make test` installs it as root: apt-get install mosquitto)"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(reason + "; CI=true requires it")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One mosquitto process on 127.0.0.1:``port`` (``tls``: dict with cafile/certfile/keyfile and
    optional require_certificate)."""

    def __init__(self, binary: str, workdir: Path, tls: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "mosquitto.log"

    def config(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "persistence false",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice",
                 "max_inflight_messages 0", "max_queued_messages 100000"]
        if os.geteuid() == 0:  # stay root: the temp files are root's (mosquitto drops to 'mosquitto')
            lines.append(f"user {pwd.getpwuid(0).pw_name}")
        for key, value in (self.tls or {}).items():
            lines.append(f"{key} {value}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait (bounded) until the port accepts connections."""
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.config())
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=err, stderr=err)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): {tail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen within {timeout} s: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL (no clean shutdown, nothing saved) and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running private broker, killed at teardown."""
    b = Broker(require_mosquitto(), tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.kill()
