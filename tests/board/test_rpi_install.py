"""board/rpi/install.sh run into a temporary root (--prefix): every file it writes, idempotence, the user's
config never overwritten, the config.txt block replaced in place, bad options refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config

ROOT = Path(__file__).resolve().parents[2]
RPI = ROOT / "board" / "rpi"
INSTALL = RPI / "install.sh"
PROFILES = sorted(p.stem for p in (RPI / "profiles").glob("*.toml"))
BEGIN = "# >>> tbox CAN HAT"
USER_BOOT = "# user settings\n[pi4]\narm_boost=1\n"


def install(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TBOX_PYTHON": sys.executable}
    proc = subprocess.run(["sh", str(INSTALL), "--prefix", str(root), "--no-venv", *args],
                          capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def tree(root: Path) -> dict[str, str]:
    """Every path under root -> kind, mode and content hash (or link target)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(p)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = f"dir {stat.S_IMODE(st.st_mode):o}"
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[rel] = f"file {stat.S_IMODE(st.st_mode):o} {digest}"
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    boot = tmp_path / "root" / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(USER_BOOT)
    return tmp_path / "root"


def test_fresh_install_writes_exactly_these_files(root: Path) -> None:
    proc = install(root, "--profile", "mcp2515-16mhz", "--name", "car1", "--bitrate", "250000")
    files = {k for k, v in tree(root).items() if not v.startswith("dir")}
    assert files == {
        "boot/firmware/config.txt",
        "boot/firmware/config.txt.tbox-orig",
        "etc/systemd/network/80-tbox-can0.network",
        "etc/systemd/system/tbox-agent@.service",
        "etc/tbox/car1.toml",
        "opt/tbox/dbc/tbox_ev.dbc",
        "opt/tbox/dbc/tbox_ev.toml",
        "usr/local/bin/tbox",
    } | ({"opt/tbox/share/raspberry-pi.md"} if (ROOT / "docs" / "raspberry-pi.md").exists() else set())
    assert "reboot" in proc.stdout

    boot = (root / "boot/firmware/config.txt").read_text()
    assert boot.startswith(USER_BOOT)  # the user's lines stay, the block goes after them
    block = boot[boot.index(BEGIN):].splitlines()
    assert block[2:] == ["[all]", "dtparam=spi=on", "# can0",
                         "dtoverlay=mcp2515-can0,oscillator=16000000,interrupt=25,spimaxfrequency=10000000",
                         "# <<< tbox CAN HAT <<<"]
    assert (root / "boot/firmware/config.txt.tbox-orig").read_text() == USER_BOOT

    net = (root / "etc/systemd/network/80-tbox-can0.network").read_text()
    assert "[Match]\nName=can0\n" in net
    assert re.search(r"^\[CAN\]\nBitRate=250000\n", net, re.M)
    assert "RestartSec=100ms" in net and "RequiredForOnline=no" in net
    assert "FDMode" not in net and "DataBitRate" not in net

    unit = (root / "etc/systemd/system/tbox-agent@.service").read_text()
    for line in ("ExecStart=/opt/tbox/venv/bin/tbox agent run --config /etc/tbox/%i.toml",
                 "StateDirectory=tbox/%i", "User=tbox", "SupplementaryGroups=dialout", "Restart=on-failure",
                 "ProtectSystem=strict", "NoNewPrivileges=yes", "StandardOutput=journal"):
        assert line in unit.splitlines(), line
    families = next(x for x in unit.splitlines() if x.startswith("RestrictAddressFamilies="))
    assert "AF_CAN" in families.split("=")[1].split()

    config = root / "etc/tbox/car1.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "etc/tbox").stat().st_mode) == 0o750
    settings = load_config(config)
    assert settings.store.path == Path("/var/lib/tbox/car1/outbox.db")
    assert settings.can.channel == "can0" and settings.can.bus["bitrate"] == 250000
    assert settings.can.interface == "socketcan" and settings.can.bus["fd"] is False
    assert settings.can.mapping == Path("/opt/tbox/dbc/tbox_ev.toml")
    assert (root / "opt/tbox/dbc/tbox_ev.toml").read_bytes() == (ROOT / "dbc/tbox_ev.toml").read_bytes()
    assert os.readlink(root / "usr/local/bin/tbox") == "/opt/tbox/venv/bin/tbox"


def test_second_run_changes_nothing(root: Path) -> None:
    install(root, "--profile", "mcp2515-dual-16mhz", "--name", "bench")
    before = tree(root)
    proc = install(root, "--profile", "mcp2515-dual-16mhz", "--name", "bench")
    assert tree(root) == before
    assert "done: 0 change(s)" in proc.stdout
    assert "wrote" not in proc.stdout


def test_user_config_is_never_overwritten(root: Path) -> None:
    install(root, "--profile", "mcp2515-16mhz", "--name", "car1")
    config = root / "etc/tbox/car1.toml"
    edited = config.read_text().replace("LTBXEV00000000001", "LTBXEV00000000042")
    config.write_text(edited)
    proc = install(root, "--profile", "mcp2515-16mhz", "--name", "car1", "--bitrate", "125000")
    assert config.read_text() == edited
    new = root / "etc/tbox/car1.toml.new"
    assert "bitrate = 125000" in new.read_text()
    assert "kept your" in proc.stdout
    before = tree(root)
    install(root, "--profile", "mcp2515-16mhz", "--name", "car1", "--bitrate", "125000")
    assert tree(root) == before


def test_changing_profile_replaces_the_block_in_place(root: Path) -> None:
    boot = root / "boot/firmware/config.txt"
    install(root, "--profile", "mcp2515-8mhz")
    boot.write_text(boot.read_text() + "# added later by the user\ndtparam=audio=on\n")
    install(root, "--profile", "mcp2515-dual-12mhz")
    text = boot.read_text()
    assert text.count(BEGIN) == 1 and text.count("# <<< tbox CAN HAT <<<") == 1
    assert "oscillator=8000000" not in text
    assert "dtoverlay=mcp2515-can1,oscillator=12000000,interrupt=24,spimaxfrequency=10000000" in text
    assert text.startswith(USER_BOOT) and text.endswith("# added later by the user\ndtparam=audio=on\n")
    assert (root / "boot/firmware/config.txt.tbox-orig").read_text() == USER_BOOT  # first original kept
    assert (root / "etc/systemd/network/80-tbox-can1.network").exists()


def test_fd_profile(root: Path) -> None:
    install(root, "--profile", "mcp251xfd", "--name", "fd", "--data-bitrate", "4000000")
    net = (root / "etc/systemd/network/80-tbox-can0.network").read_text()
    assert "FDMode=yes" in net.splitlines() and "DataBitRate=4000000" in net.splitlines()
    assert "dtoverlay=mcp251xfd,spi0-0,interrupt=25" in (root / "boot/firmware/config.txt").read_text()
    settings = load_config(root / "etc/tbox/fd.toml")
    assert settings.can.bus["fd"] is True and settings.can.bus["data_bitrate"] == 4000000


def test_bullseye_boot_config_and_explicit_file(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/config.txt").write_text("")
    install(tmp_path, "--profile", "mcp2515-12mhz")
    assert "oscillator=12000000" in (tmp_path / "boot/config.txt").read_text()
    (tmp_path / "elsewhere.txt").write_text("x=1")
    install(tmp_path, "--profile", "mcp2515-12mhz", "--boot-config", "/elsewhere.txt")
    assert (tmp_path / "elsewhere.txt").read_text().startswith("x=1\n\n" + BEGIN)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_installs(root: Path, profile: str) -> None:
    install(root, "--profile", profile, "--bitrate", "500000")
    text = (root / "boot/firmware/config.txt").read_text()
    block = text[text.index(BEGIN):].splitlines()
    assert block[2] == "[all]"  # after a [pi4] filter the overlays would otherwise apply to a Pi 4 only
    overlays = [x for x in block if x.startswith("dtoverlay=")]
    nets = sorted(p.name for p in (root / "etc/systemd/network").iterdir())
    assert len(overlays) == len(nets) >= 1
    for line in overlays:
        assert "#" not in line and " " not in line  # config.txt has no trailing comments
        pattern = r"dtoverlay=(mcp2515-can[01],oscillator=\d+|mcp251xfd,spi\d-\d),interrupt=\d+.*"
        assert re.fullmatch(pattern, line)


@pytest.mark.parametrize(("args", "message"), [
    (["--profile", "nope"], "no such profile (known: "),
    (["--name", "car1"], "--profile is required"),
    (["--profile", "mcp2515-16mhz", "--name", "../evil"], "--name must be"),
    (["--profile", "mcp2515-16mhz", "--bitrate", "fast"], "--bitrate must be"),
    (["--profile", "mcp2515-8mhz", "--bitrate", "1000000"], "above what profile mcp2515-8mhz supports"),
    (["--profile", "mcp2515-16mhz", "--frobnicate"], "unknown option --frobnicate"),
    (["--profile", "mcp2515-16mhz", "--boot-config", "/missing.txt"], "does not exist"),
])
def test_bad_options_are_refused_before_writing(root: Path, args: list[str], message: str) -> None:
    before = tree(root)
    proc = install(root, *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert tree(root) == before


def test_no_config_txt(tmp_path: Path) -> None:
    proc = install(tmp_path, "--profile", "mcp2515-16mhz", check=False)
    assert proc.returncode == 2 and "no config.txt" in proc.stderr


def test_bad_profile_file_names_the_key(root: Path, tmp_path: Path) -> None:
    bad = tmp_path / "mine.toml"
    text = (RPI / "profiles/mcp2515-16mhz.toml").read_text().replace('overlay = "mcp2515-can0"',
                                                                      'overlay = "mcp2515-can7"')
    bad.write_text(text)
    proc = install(root, "--profile", str(bad), check=False)
    assert proc.returncode == 2 and "channel[0].overlay: one of mcp2515-can0, mcp2515-can1" in proc.stderr
    bad.write_text(text.replace("mcp2515-can7", "mcp2515-can0").replace('controller = "mcp2515"\nfd = false',
                                                                         'controller = "mcp2515"\nfd = true'))
    proc = install(root, "--profile", str(bad), check=False)
    assert proc.returncode == 2 and "fd: CAN FD needs an MCP251xFD" in proc.stderr


def test_broken_block_is_not_guessed(root: Path) -> None:
    boot = root / "boot/firmware/config.txt"
    install(root, "--profile", "mcp2515-16mhz")
    boot.write_text(boot.read_text().replace("# <<< tbox CAN HAT <<<\n", ""))
    damaged = boot.read_text()
    proc = install(root, "--profile", "mcp2515-16mhz", check=False)
    assert proc.returncode == 2 and "fix it by hand" in proc.stderr
    assert boot.read_text() == damaged


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies(root: Path, tmp_path: Path) -> None:
    install(root, "--profile", "mcp2515-16mhz")
    unit = (root / "etc/systemd/system/tbox-agent@.service").read_text()
    # the venv does not exist here: point ExecStart at an executable, keep every other line
    unit = unit.replace("ExecStart=/opt/tbox/venv/bin/tbox ", "ExecStart=/bin/true ")
    (tmp_path / "tbox-agent@car1.service").write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "tbox-agent@car1.service")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "tbox-agent@" in x]
    assert lines == [], lines  # unknown keys and bad values are only warnings: none allowed


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck() -> None:
    proc = subprocess.run(["shellcheck", "-s", "sh", str(INSTALL)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_venv_step_with_a_recording_python(root: Path, tmp_path: Path) -> None:
    """--venv under a prefix: `python -m venv` once, then pip installs the source tree with the extras.
    The python is a stand-in that records what it is asked (no network, no real venv)."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
    mkdir -p "$3/bin"
    printf '#!/bin/sh\\necho "venv-python $*" >> {log}\\n' > "$3/bin/python"
    chmod +x "$3/bin/python"
    echo "make-venv $3" >> {log}
    exit 0
fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    env = {**os.environ, "TBOX_PYTHON": str(fake)}
    for _ in range(2):
        proc = subprocess.run(["sh", str(INSTALL), "--prefix", str(root), "--venv", "--extras", "mqtt,sim",
                               "--profile", "mcp2515-16mhz"], capture_output=True, text=True, timeout=60,
                              env=env)
        assert proc.returncode == 0, proc.stderr
    calls = log.read_text().splitlines()
    assert calls == [f"make-venv {root}/opt/tbox/venv",
                     f"venv-python -m pip install --quiet --upgrade {ROOT}[mqtt,sim]",
                     f"venv-python -m pip install --quiet --upgrade {ROOT}[mqtt,sim]"]
    proc = subprocess.run(["sh", str(INSTALL), "--prefix", str(root), "--extras", "mqtt;rm", "--profile",
                           "mcp2515-16mhz"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "--extras is a comma-separated list" in proc.stderr


def test_tbox_doctor_reads_the_installed_config(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The template the installer writes is what `tbox doctor` and the agent read (network checks off)."""
    install(root, "--profile", "mcp2515-16mhz", "--name", "car1")
    code = main(["doctor", "--config", str(root / "etc/tbox/car1.toml"), "--json",
                 "--skip", "can", "--skip", "platform", "--skip", "clock"])
    found = {x["name"]: x for x in map(json.loads, capsys.readouterr().out.splitlines())}
    assert found["config"]["level"] == "ok"
    assert "CAN socketcan can0 at 500000 bit/s" in found["config"]["message"]
    assert found["modem"]["level"] == "ok"  # [modem] enabled = false in the template
    assert found["gnss"]["level"] == "warn"  # source = "none" until the user sets one
    if not Path("/var/lib/tbox/car1").exists():
        assert "/var/lib/tbox/car1" in found["storage.outbox"]["message"]
    assert code == 1
