"""tbox doctor against emulated good and bad set-ups: recorded `ip -json` answers and a fake sysfs for the
CAN link, python-can's virtual bus for frames, emulated modems and GNSS receivers on ptys, a fake clock
and disk, real outboxes, and loopback TCP/TLS listeners with certificates made here."""

from __future__ import annotations

import copy
import ipaddress
import json
import shutil
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import can
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.canbus.cache import split_key
from agent.canbus.mapping import load_mapping
from agent.cli import main
from agent.config import GnssSettings, StoreSettings, UplinkSettings, parse_config
from agent.doctor import (
    CommandResult,
    DoctorOptions,
    Finding,
    Level,
    Probes,
    check_can_frames,
    check_can_link,
    check_clock,
    check_gnss,
    check_modem,
    check_platform,
    check_storage,
    run_checks,
    run_command,
    worst,
)
from agent.doctor import GnssReading as Reading
from agent.store import Outbox
from tests.peripherals.devices import FakeModem, PtyDevice, fix_lines

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "dbc" / "tbox_ev.toml"
VIN = "LTBXEV00000000001"
ICCID = "89860000000000000001"
NOW = datetime(2025, 1, 1, 8, 0, 30, tzinfo=UTC)


def by_name(findings: Sequence[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


# ------------------------------------------------------------------------------------ emulated CAN link

#: `ip -details -statistics -json link show can0` of a healthy MCP2515 at 500 kbit/s (iproute2 6.x shape)
GOOD_LINK: dict[str, Any] = {
    "ifindex": 3, "ifname": "can0", "flags": ["NOARP", "UP", "LOWER_UP", "ECHO"], "mtu": 16,
    "qdisc": "pfifo_fast", "operstate": "UP", "linkmode": "DEFAULT", "group": "default", "txqlen": 10,
    "link_type": "can", "promiscuity": 0,
    "linkinfo": {
        "info_kind": "can",
        "info_data": {
            "state": "ERROR-ACTIVE", "berr_counter": {"tx": 0, "rx": 0}, "restart_ms": 100,
            "bittiming": {"bitrate": 500000, "sample_point": "0.875", "tq": 125, "prop_seg": 6,
                          "phase_seg1": 7, "phase_seg2": 2, "sjw": 1, "brp": 1},
            "bittiming_const": {"name": "mcp251x", "tseg1": {"min": 3, "max": 16},
                                "tseg2": {"min": 2, "max": 8}, "sjw": {"min": 1, "max": 4},
                                "brp": {"min": 1, "max": 64}, "brp_inc": 1},
            "clock": 8000000,
        },
        "info_xstats": {"restarts": 0, "bus_error": 0, "arbitration_lost": 0, "error_warning": 0,
                        "error_passive": 0, "bus_off": 0},
    },
    "stats64": {"rx": {"bytes": 8000, "packets": 1000, "errors": 0, "dropped": 0, "over_errors": 0,
                       "multicast": 0},
                "tx": {"bytes": 0, "packets": 0, "errors": 0, "dropped": 0, "carrier_errors": 0,
                       "collisions": 0}},
}


def link(**changes: Any) -> dict[str, Any]:
    """GOOD_LINK with dotted-path changes (``info_data.state="BUS-OFF"``)."""
    data = copy.deepcopy(GOOD_LINK)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for p in parents:
            node = node["linkinfo"][p] if p in ("info_data", "info_xstats") else node[p]
        node[last] = value
    return data


class FakeRunner:
    """Answers `ip ... link show DEV` with a recorded JSON and `timedatectl show` with a value."""

    def __init__(self, links: dict[str, dict[str, Any]] | None = None, ntp: str | None = "yes",
                 ip: bool = True) -> None:
        self.links = links or {}
        self.ntp = ntp
        self.ip = ip
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult | None:
        self.calls.append(list(argv))
        if argv[0] == "ip":
            if not self.ip:
                return None
            dev = argv[-1]
            if dev not in self.links:
                return CommandResult(1, "", f'Device "{dev}" does not exist.\n')
            return CommandResult(0, json.dumps([self.links[dev]]), "")
        if argv[0] == "timedatectl":
            return None if self.ntp is None else CommandResult(0, self.ntp + "\n", "")
        raise AssertionError(f"unexpected command {argv}")


def sysfs(tmp_path: Path, *names: str) -> Path:
    root = tmp_path / f"sys-class-net-{'-'.join(names)}"
    root.mkdir(parents=True)
    for name in ("lo", *names):
        (root / name).mkdir()
        (root / name / "type").write_text("772\n" if name == "lo" else "280\n")
    return root


def write_config(tmp_path: Path, **tables: str) -> Path:
    parts = {
        "vehicle": f'vin = "{VIN}"\niccid = "{ICCID}"',
        "can": f'mapping = "{MAPPING}"\ninterface = "socketcan"\nchannel = "can0"\nbitrate = 500000',
        "store": f'path = "{tmp_path / "state" / "outbox.db"}"',
    }
    parts.update(tables)
    path = tmp_path / "agent.toml"
    path.write_text("".join(f"[{k}]\n{v}\n\n" for k, v in parts.items()))
    return path


def can_settings(tmp_path: Path, extra: str = "") -> Any:
    cfg = write_config(tmp_path, can=f'mapping = "{MAPPING}"\ninterface = "socketcan"\nchannel = "can0"\n'
                                     f"bitrate = 500000\n{extra}")
    return parse_config(cfg.read_text(), cfg).can


def probes(tmp_path: Path, runner: FakeRunner | None = None, **kw: Any) -> Probes:
    if "sysfs_net" not in kw:
        kw["sysfs_net"] = sysfs(tmp_path / uuid.uuid4().hex, "can0")
    return Probes(run=runner or FakeRunner({"can0": GOOD_LINK}), now=lambda: NOW, **kw)


def test_healthy_interface(tmp_path: Path) -> None:
    found = by_name(check_can_link(can_settings(tmp_path), probes(tmp_path)))
    assert {n: f.level for n, f in found.items()} == {
        "can.interface": Level.OK, "can.up": Level.OK, "can.bitrate": Level.OK, "can.state": Level.OK,
        "can.restart": Level.OK}
    assert "mcp251x controller, clock 8 MHz, i.e. a 16 MHz crystal" in found["can.interface"].message
    assert "500000 bit/s as configured" in found["can.bitrate"].message


@pytest.mark.parametrize(("changes", "name", "level", "words"), [
    ({"flags": ["NOARP", "ECHO"], "operstate": "DOWN", "info_data__state": "STOPPED"},
     "can.up", Level.FAIL, "can0 is down"),
    ({"info_data__state": "BUS-OFF", "info_data__berr_counter": {"tx": 255, "rx": 0}},
     "can.state", Level.FAIL, "bus-off (error counters tx 255 rx 0)"),
    ({"info_data__bittiming": {"bitrate": 250000}}, "can.bitrate", Level.FAIL,
     "runs at 250000 bit/s but the config says 500000"),
    ({"info_data__state": "ERROR-PASSIVE", "info_data__berr_counter": {"tx": 0, "rx": 135}},
     "can.state", Level.WARN, "error passive"),
    ({"info_data__state": "ERROR-WARNING"}, "can.state", Level.WARN, "error warning"),
    ({"info_data__state": "ERROR-PASSIVE", "info_data__berr_counter": None}, "can.state", Level.WARN,
     "the driver reports no error counters"),
    ({"info_data__restart_ms": 0}, "can.restart", Level.WARN, "no automatic restart"),
    ({"info_xstats__bus_off": 3}, "can.state", Level.WARN, "went bus-off 3 time(s)"),
    ({"stats64": {"rx": {"over_errors": 12, "dropped": 0}}}, "can.state", Level.WARN, "lost 12 received"),
])
def test_broken_interfaces(tmp_path: Path, changes: dict[str, Any], name: str, level: Level,
                           words: str) -> None:
    runner = FakeRunner({"can0": link(**changes)})
    found = by_name(check_can_link(can_settings(tmp_path), probes(tmp_path, runner)))
    assert found[name].level == level, found[name]
    assert words in found[name].message
    assert found[name].hint or level == Level.OK
    assert worst(found.values()) == level


def test_no_interface_names_the_ones_there_are(tmp_path: Path) -> None:
    pr = probes(tmp_path, sysfs_net=sysfs(tmp_path, "can1"))
    (finding,) = check_can_link(can_settings(tmp_path), pr)
    assert finding.name == "can.interface" and finding.level == Level.FAIL
    assert "no network interface can0 (there is can1)" in finding.message
    assert "config.txt" in finding.hint


def test_fd_mode_and_data_bitrate(tmp_path: Path) -> None:
    fd = can_settings(tmp_path, "fd = true\ndata_bitrate = 2000000")
    classic = by_name(check_can_link(fd, probes(tmp_path)))
    assert classic["can.fd"].level == Level.FAIL and "classic CAN mode" in classic["can.fd"].message
    good = link(info_data__ctrlmode=["FD"], info_data__data_bittiming={"bitrate": 2000000})
    found = by_name(check_can_link(fd, probes(tmp_path, FakeRunner({"can0": good}))))["can.fd"]
    assert found.level == Level.OK
    slow = link(info_data__ctrlmode=["FD"], info_data__data_bittiming={"bitrate": 1000000})
    found = by_name(check_can_link(fd, probes(tmp_path, FakeRunner({"can0": slow}))))["can.fd"]
    assert found.level == Level.FAIL and "1000000" in found.message


def test_without_ip_or_with_garbage(tmp_path: Path) -> None:
    (finding,) = check_can_link(can_settings(tmp_path), probes(tmp_path, FakeRunner(ip=False)))
    assert finding.level == Level.WARN and "iproute2" in finding.hint

    class Garbage(FakeRunner):
        def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult | None:
            return CommandResult(0, "not json", "")

    (finding,) = check_can_link(can_settings(tmp_path), probes(tmp_path, Garbage()))
    assert finding.level == Level.FAIL and "cannot read" in finding.message


def test_a_vcan_interface_has_no_bitrate(tmp_path: Path) -> None:
    vcan = {"ifname": "can0", "flags": ["NOARP", "UP", "LOWER_UP"], "linkinfo": {"info_kind": "vcan"}}
    found = by_name(check_can_link(can_settings(tmp_path), probes(tmp_path, FakeRunner({"can0": vcan}))))
    assert [f.level for f in found.values()] == [Level.OK, Level.OK]
    assert "virtual CAN interface" in found["can.interface"].message


def test_other_python_can_interfaces_are_not_inspected(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, can=f'mapping = "{MAPPING}"\ninterface = "virtual"\nchannel = "x"')
    runner = FakeRunner()
    (finding,) = check_can_link(parse_config(cfg.read_text(), cfg).can, probes(tmp_path, runner))
    assert finding.level == Level.OK and runner.calls == []


# ------------------------------------------------------------------------------------ frames (virtual bus)


class Sender:
    """Sends frames with the given ids on a virtual channel every 10 ms until stopped (at most 10 s)."""

    def __init__(self, channel: str, ids: Sequence[int]) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.ids = ids
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        end = time.monotonic() + 10.0
        while not self.stop.is_set() and time.monotonic() < end:
            for key in self.ids:
                can_id, ext = split_key(key)
                self.bus.send(can.Message(arbitration_id=can_id, is_extended_id=ext, data=bytes(8)))
            self.stop.wait(0.01)

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5.0)
        self.bus.shutdown()


@pytest.fixture(scope="module")
def mapped_ids() -> list[int]:
    return sorted(load_mapping(MAPPING).wanted_ids)


def virtual_settings(tmp_path: Path, channel: str) -> Any:
    cfg = write_config(tmp_path, can=f'mapping = "{MAPPING}"\ninterface = "virtual"\nchannel = "{channel}"')
    return parse_config(cfg.read_text(), cfg)


@pytest.mark.parametrize(("which", "level", "words"), [
    ("all", Level.OK, "mapped ids seen"),
    ("some", Level.WARN, "missing 0x"),
    ("unmapped", Level.FAIL, "none of the"),
    ("none", Level.FAIL, "no CAN frames"),
])
def test_frames_for_the_mapped_ids(tmp_path: Path, mapped_ids: list[int], which: str, level: Level,
                                   words: str) -> None:
    channel = f"doctor-{uuid.uuid4().hex}"
    ids = {"all": mapped_ids, "some": mapped_ids[: len(mapped_ids) // 2], "unmapped": [0x7DF, 0x7E8],
           "none": []}[which]
    pr = Probes(can_window_s={"all": 5.0, "none": 0.3}.get(which, 1.0))  # "all" stops when all are seen
    with Sender(channel, ids):
        finding = check_can_frames(virtual_settings(tmp_path, channel), pr)
    assert finding.level == level, finding
    assert words in finding.message


def test_a_bus_that_cannot_be_opened(tmp_path: Path) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise can.CanInterfaceNotImplementedError(f"no such interface {kwargs['channel']}")

    finding = check_can_frames(virtual_settings(tmp_path, "x"), Probes(bus_factory=refuse))
    assert finding.level == Level.FAIL and "cannot open the CAN bus" in finding.message


# ------------------------------------------------------------------------------------ modem (pty)


def modem_findings(tmp_path: Path, devices: list[PtyDevice], fake: FakeModem | None,
                   expected: str | None = ICCID) -> dict[str, Finding]:
    path = tmp_path / "ttyMODEM"
    if fake is not None:
        devices.append(PtyDevice(path, handler=fake))
    return by_name(check_modem(str(path), 115200, expected, Probes()))


def test_modem_good(tmp_path: Path, devices: list[PtyDevice]) -> None:
    found = modem_findings(tmp_path, devices, FakeModem(vendor="quectel", iccid=ICCID, csq=(20, 99)))
    assert found["modem.iccid"].level == Level.OK and "****************0001, as configured" in \
        found["modem.iccid"].message
    assert ICCID not in json.dumps([f.as_dict() for f in found.values()])  # never the full ICCID
    assert found["modem.signal"].level == Level.OK and "-73 dBm" in found["modem.signal"].message


def test_modem_other_sim_and_weak_signal(tmp_path: Path, devices: list[PtyDevice]) -> None:
    found = modem_findings(tmp_path, devices, FakeModem(iccid="89860000000000009999", csq=(5, 99)))
    assert found["modem.iccid"].level == Level.WARN and "not the config's" in found["modem.iccid"].message
    assert found["modem.signal"].level == Level.WARN and "-103 dBm" in found["modem.signal"].message


def test_modem_without_sim_or_signal(tmp_path: Path, devices: list[PtyDevice]) -> None:
    found = modem_findings(tmp_path, devices, FakeModem(vendor="crsm", replies={
        "AT+CRSM=176,12258,0,0,10": "+CRSM: 148,4,\"\""}, csq=(99, 99)))
    assert found["modem.iccid"].level == Level.FAIL and "SIM" in found["modem.iccid"].hint
    assert found["modem.signal"].level == Level.WARN


def test_modem_iccid_from_the_sim_or_none_configured(tmp_path: Path, devices: list[PtyDevice]) -> None:
    path = tmp_path / "ttyMODEM"
    devices.append(PtyDevice(path, handler=FakeModem(iccid="89860000000000009999")))
    found = by_name(check_modem(str(path), 115200, ICCID, Probes(), iccid_from_modem=True))
    assert found["modem.iccid"].level == Level.OK and "carried at login" in found["modem.iccid"].message
    assert "the fallback, differs" in found["modem.iccid"].message
    found = by_name(check_modem(str(path), 115200, None, Probes()))
    assert found["modem.iccid"].level == Level.WARN and "login carries none" in found["modem.iccid"].message


def test_the_configured_modem_is_checked(tmp_path: Path, devices: list[PtyDevice]) -> None:
    path = tmp_path / "ttyMODEM"
    devices.append(PtyDevice(path, handler=FakeModem(iccid=ICCID)))
    cfg = write_config(tmp_path, modem=f'enabled = true\nport = "{path}"\niccid_from = "modem"')
    found = by_name(run_checks(DoctorOptions(config=cfg, skip=frozenset({"can", "platform"})),
                               probes(tmp_path, disk_usage=disk(5000))))
    assert found["modem.iccid"].level == Level.OK and "carried at login" in found["modem.iccid"].message


def test_no_modem_at_the_port(tmp_path: Path, devices: list[PtyDevice]) -> None:
    found = modem_findings(tmp_path, devices, None)
    assert found["modem"].level == Level.FAIL and "no modem answers" in found["modem"].message
    assert check_modem(None, 115200, None, Probes())[0].level == Level.OK  # not asked: not checked


# ------------------------------------------------------------------------------------ GNSS (pty)


def gnss_on_pty(tmp_path: Path, devices: list[PtyDevice], chunks: list[bytes]) -> tuple[Finding, Any]:
    path = tmp_path / "ttyGNSS"
    devices.append(PtyDevice(path, stream=iter(chunks), period_s=0.05))
    return check_gnss(GnssSettings(source=f"serial:{path}:9600"), Probes(now=lambda: NOW, gnss_window_s=1.0))


def test_gnss_fix(tmp_path: Path, devices: list[PtyDevice]) -> None:
    chunks = [("\r\n".join(fix_lines(s)) + "\r\n").encode() for s in range(28, 40)]
    finding, reading = gnss_on_pty(tmp_path, devices, chunks)
    assert finding.level == Level.OK and "GNSS fix" in finding.message
    assert reading is not None and abs((reading.fix_time - NOW).total_seconds()) < 5


def test_gnss_without_fix(tmp_path: Path, devices: list[PtyDevice]) -> None:
    chunks = [("\r\n".join(fix_lines(s, valid=False)) + "\r\n").encode() for s in range(60)]
    finding, reading = gnss_on_pty(tmp_path, devices, chunks)
    assert finding.level == Level.WARN and "no fix yet" in finding.message and reading is None


def test_gnss_wrong_baud_rate(tmp_path: Path, devices: list[PtyDevice]) -> None:
    noise = [bytes((i * 37 + k) % 256 for k in range(40)) + b"\r\n" for i in range(60)]
    finding, _ = gnss_on_pty(tmp_path, devices, noise)
    assert finding.level == Level.FAIL and "bad lines" in finding.message and "baud" in finding.hint


def test_gnss_missing_or_none(tmp_path: Path) -> None:
    finding, _ = check_gnss(GnssSettings(source=f"serial:{tmp_path / 'nothing'}:9600"), Probes())
    assert finding.level == Level.FAIL and "cannot open" in finding.message
    assert check_gnss(GnssSettings(), Probes())[0].level == Level.WARN


# ------------------------------------------------------------------------------------ clock


def test_clock() -> None:
    def clock(now: datetime, ntp: str | None, reading: Reading | None = None) -> dict[str, Finding]:
        return by_name(check_clock(Probes(now=lambda: now, run=FakeRunner(ntp=ntp)), reading))

    good = clock(NOW, "yes", Reading(NOW - timedelta(seconds=0.4), NOW))
    assert worst(good.values()) == Level.OK and set(good) == {"clock.time", "clock.ntp", "clock.gnss"}
    assert clock(datetime(1970, 1, 1, 0, 1, tzinfo=UTC), "no")["clock.time"].level == Level.FAIL
    assert clock(NOW, "no")["clock.ntp"].level == Level.WARN
    assert clock(NOW, None)["clock.ntp"].level == Level.OK  # no timedatectl: not checked
    skewed = clock(NOW, "yes", Reading(NOW - timedelta(seconds=12), NOW))["clock.gnss"]
    assert skewed.level == Level.WARN and "+12.0 s" in skewed.message
    late = Reading(NOW - timedelta(seconds=12), NOW)
    tolerant = check_clock(Probes(now=lambda: NOW, run=FakeRunner()), late, max_offset_s=30.0)
    assert by_name(tolerant)["clock.gnss"].level == Level.OK


# ------------------------------------------------------------------------------------ storage


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def disk(free_mb: float) -> Any:
    return lambda path: Usage(0, 0, int(free_mb * 1024 * 1024))


def test_storage_space(tmp_path: Path) -> None:
    store = StoreSettings(path=tmp_path / "outbox.db", max_mb=512.0)
    levels = {mb: by_name(check_storage(store, Probes(disk_usage=disk(mb))))["storage.space"].level
              for mb in (10, 300, 5000)}
    assert levels == {10: Level.FAIL, 300: Level.WARN, 5000: Level.OK}


def test_outbox_backlog(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    store = StoreSettings(path=path)
    pr = Probes(now=lambda: NOW, disk_usage=disk(5000))
    assert "no outbox yet" in by_name(check_storage(store, pr))["storage.outbox"].message
    box = Outbox(path, clock=lambda: NOW.timestamp())
    box.flush()
    assert "empty" in by_name(check_storage(store, pr))["storage.outbox"].message
    for i in range(5):
        box.add(2016, 0x02, VIN, b"\x01" * 20, NOW - timedelta(seconds=30 - i))
    box.flush()
    recent = by_name(check_storage(store, pr))["storage.outbox"]
    assert recent.level == Level.OK and "5 reports in flight" in recent.message
    box.add(2016, 0x02, VIN, b"\x01" * 20, NOW - timedelta(hours=3))
    box.flush()
    old = by_name(check_storage(store, pr))["storage.outbox"]
    assert old.level == Level.WARN and "6 reports wait" in old.message and "3.0 h ago" in old.message
    box.close()
    # the agent stopped: the doctor (often root) must not leave -wal/-shm files the agent could not open
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox.db"]
    again = by_name(check_storage(store, pr))["storage.outbox"]
    assert "6 reports wait" in again.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox.db"]


def test_outbox_unreadable_or_missing_directory(tmp_path: Path) -> None:
    bad = tmp_path / "outbox.db"
    bad.write_bytes(b"this is not a database" * 100)
    found = by_name(check_storage(StoreSettings(path=bad), Probes(disk_usage=disk(5000))))
    assert found["storage.outbox"].level == Level.FAIL
    gone = by_name(check_storage(StoreSettings(path=tmp_path / "no" / "where.db"),
                                 Probes(disk_usage=disk(5000))))
    assert gone["storage.outbox"].level == Level.WARN and gone["storage.space"].level == Level.OK


# ------------------------------------------------------------------------------------ platform


class Listener:
    """A loopback server accepting connections (optionally TLS) for at most 10 s; it never sends."""

    def __init__(self, ctx: ssl.SSLContext | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.ctx = ctx
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        end = time.monotonic() + 10.0
        while not self.stop.is_set() and time.monotonic() < end:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(2.0)
            try:
                if self.ctx is not None:
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                conn.recv(1)  # until the client closes
            except (ssl.SSLError, OSError):
                pass
            finally:
                conn.close()

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5.0)
        self.sock.close()


def uplink(port: int, **kw: Any) -> UplinkSettings:
    return UplinkSettings(host="127.0.0.1", port=port, **kw)


def test_platform_tcp(tmp_path: Path) -> None:
    with Listener() as srv:
        (found,) = check_platform(uplink(srv.port), Probes())
    assert found.level == Level.OK and "accepts TCP" in found.message
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    (found,) = check_platform(uplink(port), Probes())
    assert found.level == Level.FAIL and "refused" in found.message
    assert check_platform(UplinkSettings(), Probes())[0].level == Level.WARN


def _cert(path: Path, cn: str, key: ec.EllipticCurvePrivateKey, issuer: str,
          issuer_key: ec.EllipticCurvePrivateKey, days: float, *, ca: bool) -> None:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    path.with_suffix(".crt").write_bytes(builder.sign(issuer_key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, an unrelated CA, a server certificate for 127.0.0.1 (a year, and one expiring in 5 days), a
    client certificate for 60 days."""
    d = tmp_path_factory.mktemp("pki")
    ca, other, srv, cli = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    _cert(d / "ca", "test CA", ca, "test CA", ca, 3650, ca=True)
    _cert(d / "other", "other CA", other, "other CA", other, 3650, ca=True)
    _cert(d / "server", "127.0.0.1", srv, "test CA", ca, 365, ca=False)
    _cert(d / "soon", "127.0.0.1", srv, "test CA", ca, 5, ca=False)
    _cert(d / "client", "LTBXEV00000000001", cli, "test CA", ca, 60, ca=False)
    return d


def server_ctx(pki: Path, *, mutual: bool = False, cert: str = "server") -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki / "ca.crt")
    return ctx


def tls_uplink(port: int, pki: Path, ca: str = "ca", client: bool = False, **kw: Any) -> UplinkSettings:
    if client:
        kw.update(cert_file=pki / "client.crt", key_file=pki / "client.key")
    return uplink(port, tls=True, ca_file=pki / f"{ca}.crt", **kw)


def test_platform_tls(pki: Path) -> None:
    with Listener(server_ctx(pki)) as srv:
        found = by_name(check_platform(tls_uplink(srv.port, pki), Probes()))
        assert found["platform.tls"].level == Level.OK, found
        assert "TLS with 127.0.0.1 verified" in found["platform.tls"].message
        wrong = by_name(check_platform(tls_uplink(srv.port, pki, ca="other"), Probes()))["platform.tls"]
        assert wrong.level == Level.FAIL and "refused" in wrong.message and "ca_file" in wrong.hint
        pinned = by_name(check_platform(tls_uplink(srv.port, pki, pin_sha256="00" * 32), Probes()))
        assert pinned["platform.pin"].level == Level.FAIL
        plain = by_name(check_platform(uplink(srv.port), Probes()))
        assert plain["platform.tcp"].level == Level.OK  # TLS off: nothing more is checked
    with Listener(server_ctx(pki, cert="soon")) as srv:
        soon = by_name(check_platform(tls_uplink(srv.port, pki), Probes()))["platform.tls"]
        assert soon.level == Level.WARN and "expires in 5 days" in soon.message


def test_platform_mutual_tls(pki: Path) -> None:
    with Listener(server_ctx(pki, mutual=True)) as srv:
        good = by_name(check_platform(tls_uplink(srv.port, pki, client=True), Probes()))
        assert good["platform.tls"].level == Level.OK, good
        assert good["platform.client_cert"].level == Level.OK and "valid for 60 more days" in \
            good["platform.client_cert"].message
        without = by_name(check_platform(tls_uplink(srv.port, pki), Probes()))["platform.tls"]
        assert without.level >= Level.WARN and "client certificate" in without.hint, without
        later = datetime.now(UTC) + timedelta(days=50)
        soon = by_name(check_platform(tls_uplink(srv.port, pki, client=True), Probes(now=lambda: later)))
        assert soon["platform.client_cert"].level == Level.WARN
        after = datetime.now(UTC) + timedelta(days=61)
        expired = by_name(check_platform(tls_uplink(srv.port, pki, client=True), Probes(now=lambda: after)))
        assert expired["platform.client_cert"].level == Level.FAIL and "expired" in \
            expired["platform.client_cert"].message


# ------------------------------------------------------------------------------------ whole runs


def test_run_checks_skips_frames_when_the_link_fails(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    down = FakeRunner({"can0": link(flags=["NOARP"], info_data__state="STOPPED")})
    calls: list[dict[str, Any]] = []
    pr = probes(tmp_path, down, bus_factory=lambda **kw: calls.append(kw), disk_usage=disk(5000))
    found = by_name(run_checks(DoctorOptions(config=cfg), pr))
    assert found["can.up"].level == Level.FAIL and "can.frames" not in found and calls == []
    assert worst(found.values()) == Level.FAIL


def test_bad_config_is_one_finding(tmp_path: Path) -> None:
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[vehicle]\nvin = "short"\n')
    found = run_checks(DoctorOptions(config=cfg), probes(tmp_path))
    assert found[0].level == Level.FAIL and "vehicle.vin" in found[0].message
    assert {f.name for f in found} == {"config", "modem", "clock.time", "clock.ntp"}


def test_cli_good_and_bad_setups(tmp_path: Path, mapped_ids: list[int],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    channel = f"doctor-{uuid.uuid4().hex}"
    nmea = tmp_path / "track.nmea"
    nmea.write_text("\r\n".join(fix_lines(1)) + "\r\n")
    with Listener() as srv:
        cfg = write_config(
            tmp_path, can=f'mapping = "{MAPPING}"\ninterface = "virtual"\nchannel = "{channel}"',
            gnss=f'source = "{nmea}"', uplink=f'host = "127.0.0.1"\nport = {srv.port}')
        with Sender(channel, mapped_ids):
            code = main(["doctor", "--config", str(cfg), "--json", "--can-seconds", "3", "--skip", "clock"])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    levels = {x["name"]: x["level"] for x in lines}
    # the state directory does not exist yet (systemd makes it): the only warning
    assert levels == {"config": "ok", "can.link": "ok", "can.frames": "ok", "modem": "ok", "gnss": "ok",
                      "storage.space": "ok", "storage.outbox": "warn", "platform.tcp": "ok"}, lines
    assert code == 1
    (tmp_path / "state").mkdir()
    with Listener() as srv, Sender(channel, mapped_ids):
        cfg = write_config(
            tmp_path, can=f'mapping = "{MAPPING}"\ninterface = "virtual"\nchannel = "{channel}"',
            gnss=f'source = "{nmea}"', uplink=f'host = "127.0.0.1"\nport = {srv.port}')
        code = main(["doctor", "--config", str(cfg), "--can-seconds", "3", "--skip", "clock"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out and "WARN" not in out
    # bad: nothing on the bus, nobody listening
    cfg = write_config(tmp_path, can=f'mapping = "{MAPPING}"\ninterface = "virtual"\nchannel = "{channel}-x"',
                       uplink='host = "127.0.0.1"\nport = 9')
    code = main(["doctor", "--config", str(cfg), "--can-seconds", "0.3", "--skip", "clock"])
    out = capsys.readouterr().out
    assert code == 2
    assert "FAIL  can.frames" in out and "no CAN frames" in out and "-> " in out


@pytest.mark.skipif(shutil.which("ip") is None or not Path("/sys/class/net/lo").exists(),
                    reason="needs iproute2 and sysfs")
def test_the_real_ip_command_and_sysfs(tmp_path: Path) -> None:
    """The default probes on this machine: `lo` is found in sysfs, `ip -json` is parsed, it is no CAN."""
    (finding,) = check_can_link(None, Probes(), channel="lo")
    assert finding.level == Level.FAIL and "lo is not a CAN interface (loopback)" in finding.message
    assert run_command(["no-such-program-tbox"], 1.0) is None
    assert run_command(["sh", "-c", "sleep 5"], 0.2) == CommandResult(124, "", "sh: no answer within 0.2 s")


def test_without_a_config_every_can_interface_is_checked(tmp_path: Path) -> None:
    runner = FakeRunner({"can0": GOOD_LINK, "can1": link(info_data__state="BUS-OFF")})
    pr = Probes(run=runner, now=lambda: NOW, sysfs_net=sysfs(tmp_path, "can0", "can1"))
    found = run_checks(DoctorOptions(), pr)
    states = [(f.name, f.level) for f in found if f.name == "can.state"]
    assert states == [("can.state", Level.OK), ("can.state", Level.FAIL)]
    assert found[0].name == "config" and found[0].level == Level.WARN
    assert worst(found) == Level.FAIL
