"""``tbox doctor``: checks of a terminal's set-up, each explained in plain words.

Every check is a function over the settings and injected probes (``Probes``: the command runner, the
sysfs root, the clock, the python-can bus factory, the modem and GNSS openers, the disk usage call), so
tests emulate good and broken set-ups without hardware. A check returns ``Finding`` values: a dotted
name, a level (ok / warn / fail), a message saying what was found and a hint saying what to do.

Checks: the config file; the CAN interface (present, up, bit rate and FD data bit rate against the
config, controller state and error counters, automatic restart after bus-off) from sysfs and
``ip -details -statistics -json link show``; frames arriving for the mapping's ids (the configured
python-can bus, read for a bounded window); the modem (answers AT, ICCID readable and equal to the
config's, signal); the GNSS receiver (sentences arriving, a fix); the clock (year, NTP sync from
``timedatectl show``, GNSS time vs system time); storage (free space for the outbox, backlog of the
outbox read-only); the platform (TCP connect, TLS handshake with the configured CA and client
certificate, certificate expiry, pin). The worst level is the exit code of ``tbox doctor`` (0/1/2).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import logging
import shutil
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from agent.config import CanSettings, GnssSettings, Settings, StoreSettings, UplinkSettings, load_config
from agent.errors import ConfigError, MappingError, TboxError

log = logging.getLogger(__name__)

#: below this much free space the outbox cannot keep an outage's reports
MIN_FREE_MB: Final = 64.0
#: the oldest unsent report older than this means the platform has not acknowledged for a while
BACKLOG_AGE_S: Final = 600.0
#: certificates expiring within this many days are warned about
CERT_WARN_DAYS: Final = 14
#: a GNSS time this far from the system time is warned about
CLOCK_SKEW_S: Final = 2.0
#: signal below this (dBm) is weak for a data link
WEAK_SIGNAL_DBM: Final = -100
#: at most this many CAN frames are read by the frame check (bounded whatever the bus load)
MAX_FRAMES: Final = 200_000
#: ARPHRD_CAN (linux/if_arp.h): /sys/class/net/IFACE/type of a CAN interface
ARPHRD_CAN: Final = 280


class Level(enum.IntEnum):
    """How bad a finding is; the worst one is the exit code."""

    OK = 0
    WARN = 1
    FAIL = 2


@dataclass(frozen=True)
class Finding:
    """One result: ``name`` (dotted: ``can.bitrate``), ``level``, a plain-words ``message``, a ``hint``."""

    name: str
    level: Level
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level.name.lower(), "message": self.message,
                "hint": self.hint}


def ok(name: str, message: str, hint: str = "") -> Finding:
    return Finding(name, Level.OK, message, hint)


def warn(name: str, message: str, hint: str = "") -> Finding:
    return Finding(name, Level.WARN, message, hint)


def fail(name: str, message: str, hint: str = "") -> Finding:
    return Finding(name, Level.FAIL, message, hint)


def worst(findings: Iterable[Finding]) -> Level:
    """The worst level (OK when there is no finding)."""
    return max((f.level for f in findings), default=Level.OK)


# ------------------------------------------------------------------------------------------ probes


class CommandResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


#: runs argv with a timeout; None when the program is not installed
Runner = Callable[[Sequence[str], float], CommandResult | None]


def run_command(argv: Sequence[str], timeout: float) -> CommandResult | None:
    """The real runner: ``subprocess.run``; None when the program does not exist."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]}: no answer within {timeout:g} s")
    return CommandResult(proc.returncode, proc.stdout, proc.stderr)


def _open_modem(url: str, baudrate: int) -> Any:
    from agent.peripherals.modem import Modem  # lazily: pyserial is only needed when a modem is checked

    return Modem.open(url, baudrate=baudrate)


def _open_gnss(port: str, baudrate: int) -> Any:
    from agent.peripherals.gnss import SerialNmea

    return SerialNmea(port, baudrate, timeout=0.5)


def _can_bus(**kwargs: Any) -> Any:
    import can

    return can.Bus(**kwargs)


@dataclass
class Probes:
    """Everything the checks touch outside the process; tests replace any of it."""

    run: Runner = run_command
    sysfs_net: Path = Path("/sys/class/net")
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    bus_factory: Callable[..., Any] = _can_bus
    open_modem: Callable[[str, int], Any] = _open_modem
    open_gnss: Callable[[str, int], Any] = _open_gnss
    disk_usage: Callable[[str], Any] = shutil.disk_usage
    can_window_s: float = 3.0
    gnss_window_s: float = 5.0
    connect_timeout_s: float = 5.0


# ------------------------------------------------------------------------------------------ config


def check_config(path: str | Path) -> tuple[Finding, Settings | None]:
    """The config loads; its summary or the error naming file and key."""
    try:
        settings = load_config(path)
    except ConfigError as exc:
        return fail("config", f"the config cannot be used: {exc}",
                    "fix the key named above; every option is in docs/configuration.md"), None
    can = settings.can
    bus = f"{can.interface} {can.channel}"
    if can.bus.get("bitrate"):
        bus += f" at {can.bus['bitrate']} bit/s"
    return ok("config", f"{path}: VIN {settings.vehicle.vin}, GB/T 32960-{int(settings.vehicle.edition)},"
                        f" CAN {bus}"), settings


# ------------------------------------------------------------------------------------------ CAN link

_STATE_WORDS: Final = {
    "ERROR-WARNING": "the controller has counted many errors (error warning, 96 or more)",
    "ERROR-PASSIVE": "the controller has counted so many errors that it only listens politely"
                     " (error passive, 128 or more)",
}
_BUS_HINT: Final = ("usual causes: a bit rate different from the car's, CAN-H and CAN-L swapped, no 120 ohm"
                    " termination at the ends of the bus, or a crystal setting (oscillator=) that does not"
                    " match the HAT")


def can_interfaces(sysfs_net: Path) -> list[str]:
    """CAN interfaces (type 280) listed in sysfs."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for entry in sorted(sysfs_net.iterdir()):
            with contextlib.suppress(OSError, ValueError):
                if int((entry / "type").read_text().strip()) == ARPHRD_CAN:
                    found.append(entry.name)
    return found


def check_can_link(can: CanSettings | None, probes: Probes, channel: str | None = None) -> list[Finding]:
    """The kernel's view of a SocketCAN interface: present, up, bit rate, state, counters, restart."""
    if can is not None and can.interface != "socketcan":
        return [ok("can.link", f"python-can interface {can.interface!r}: no kernel CAN interface to"
                               " inspect; the frame check below tells whether frames arrive")]
    name = channel if channel is not None else str(can.channel if can is not None else "can0")
    present = can_interfaces(probes.sysfs_net)
    if not (probes.sysfs_net / name).exists():
        others = f" (there is {', '.join(present)})" if present else " (no CAN interface at all)"
        return [fail("can.interface", f"there is no network interface {name}{others}",
                     "the HAT's overlay did not load: check the tbox block in /boot/firmware/config.txt"
                     " (board/rpi/install.sh --profile ...), that SPI is on, then reboot;"
                     " `dmesg | grep -i mcp25` shows the driver's complaint")]
    result = probes.run(["ip", "-details", "-statistics", "-json", "link", "show", "dev", name], 5.0)
    if result is None:
        return [warn("can.interface", f"{name} exists but `ip` is not installed: bit rate and bus state"
                                      " not checked", "sudo apt install iproute2")]
    if result.returncode != 0:
        return [fail("can.interface", f"ip link show {name} failed: {result.stderr.strip()}")]
    try:
        link = json.loads(result.stdout)[0]
        assert isinstance(link, dict)
    except (ValueError, IndexError, KeyError, AssertionError):
        return [fail("can.interface", f"cannot read `ip -json link show {name}`: {result.stdout[:80]!r}")]
    findings: list[Finding] = []
    linkinfo = link.get("linkinfo") or {}
    kind = linkinfo.get("info_kind")
    info = linkinfo.get("info_data") or {}
    xstats = linkinfo.get("info_xstats") or {}
    if kind == "vcan":
        findings.append(ok("can.interface", f"{name} is a virtual CAN interface (vcan): no bit rate, no bus"))
    elif kind != "can":
        what = kind or link.get("link_type") or "unknown"
        return [fail("can.interface", f"{name} is not a CAN interface ({what})",
                     "set [can] channel to the CAN interface (ip -br link)")]
    else:
        chip = (info.get("bittiming_const") or {}).get("name", "CAN")
        hz = info.get("clock")
        clock = _mhz(hz)
        if chip == "mcp251x" and isinstance(hz, int):  # the MCP2515 driver reports half the crystal
            clock += f", i.e. a {_mhz(2 * hz)} crystal as set by oscillator= in config.txt"
        findings.append(ok("can.interface", f"{name} present ({chip} controller, clock {clock})"))
    up = "UP" in (link.get("flags") or [])
    if not up:
        findings.append(fail("can.up", f"{name} is down: the agent cannot read the bus",
                             f"`sudo networkctl reconfigure {name}` applies"
                             f" /etc/systemd/network/80-tbox-{name}.network (see `networkctl status {name}`);"
                             f" by hand: sudo ip link set {name} up type can bitrate 500000 restart-ms 100"))
        return findings
    findings.append(ok("can.up", f"{name} is up"))
    if kind == "vcan":
        return findings
    findings.extend(_bitrate(name, info, can))
    findings.append(_state(name, info, xstats, link))
    restart = info.get("restart_ms")
    if restart == 0:
        findings.append(warn("can.restart", f"{name} has no automatic restart: after a bus-off it stays"
                                            " silent until someone restarts it",
                             f"RestartSec=100ms in the [CAN] section of the .network file, or"
                             f" `ip link set {name} type can restart-ms 100` while it is down"))
    elif isinstance(restart, int):
        findings.append(ok("can.restart", f"{name} restarts by itself {restart} ms after a bus-off"))
    return findings


def _mhz(hz: Any) -> str:
    return f"{hz / 1e6:g} MHz" if isinstance(hz, int | float) else "unknown"


def _bitrate(name: str, info: dict[str, Any], can: CanSettings | None) -> list[Finding]:
    out: list[Finding] = []
    actual = (info.get("bittiming") or {}).get("bitrate")
    wanted = can.bus.get("bitrate") if can is not None else None
    if not isinstance(actual, int):
        return [fail("can.bitrate", f"{name} has no bit rate set", "BitRate= in its .network file")]
    if wanted is not None and actual != wanted:
        out.append(fail("can.bitrate", f"{name} runs at {actual} bit/s but the config says {wanted}",
                        "every node on a bus uses the car's bit rate: fix BitRate= in"
                        f" /etc/systemd/network/80-tbox-{name}.network or [can] bitrate, whichever is wrong"))
    else:
        out.append(ok("can.bitrate", f"{name} runs at {actual} bit/s"
                      + (" as configured" if wanted is not None else "")))
    if can is not None and can.bus.get("fd"):
        ctrl = info.get("ctrlmode") or []
        data = (info.get("data_bittiming") or {}).get("bitrate")
        want_data = can.bus.get("data_bitrate")
        if "FD" not in ctrl:
            out.append(fail("can.fd", f"the config wants CAN FD but {name} is in classic CAN mode",
                            "FDMode=yes and DataBitRate= in the .network file (an MCP251xFD HAT)"))
        elif want_data is not None and data != want_data:
            out.append(fail("can.fd", f"{name} data phase runs at {data} bit/s, the config says {want_data}",
                            "DataBitRate= in the .network file or [can] data_bitrate"))
        else:
            out.append(ok("can.fd", f"{name} in CAN FD mode, data phase {data} bit/s"))
    return out


def _state(name: str, info: dict[str, Any], xstats: dict[str, Any], link: dict[str, Any]) -> Finding:
    state = str(info.get("state", "unknown"))
    berr = info.get("berr_counter") or {}
    if "tx" in berr and "rx" in berr:
        counters = f"error counters tx {berr['tx']} rx {berr['rx']}"
    else:  # the MCP2515 driver does not report them
        counters = "the driver reports no error counters"
    bus_offs = int(xstats.get("bus_off", 0) or 0)
    history = f", {bus_offs} bus-off(s) since boot" if bus_offs else ""
    rx = ((link.get("stats64") or link.get("stats") or {}).get("rx") or {})
    overruns = int(rx.get("over_errors", 0) or 0) + int(rx.get("dropped", 0) or 0)
    if state == "BUS-OFF":
        return fail("can.state", f"{name} is bus-off ({counters}): it has disconnected itself from the bus"
                                 " after too many errors", _BUS_HINT)
    if state in _STATE_WORDS:
        return warn("can.state", f"{name}: {_STATE_WORDS[state]}; {counters}{history}", _BUS_HINT)
    if state != "ERROR-ACTIVE":
        return warn("can.state", f"{name} is in state {state} ({counters})")
    if overruns:
        return warn("can.state", f"{name} is healthy (error active, {counters}{history}) but lost {overruns}"
                                 " received frames (overruns/drops)",
                    "the Pi did not read the controller fast enough: check spimaxfrequency and the"
                    " interrupt GPIO of the overlay")
    if bus_offs:
        return warn("can.state", f"{name} is healthy now (error active, {counters}) but went bus-off"
                                 f" {bus_offs} time(s) since boot", _BUS_HINT)
    return ok("can.state", f"{name} is healthy: error active, {counters}")


# ------------------------------------------------------------------------------------------ CAN frames


def _fmt_key(key: int) -> str:
    from agent.canbus.cache import split_key

    can_id, extended = split_key(key)
    return f"0x{can_id:08X}" if extended else f"0x{can_id:03X}"


def check_can_frames(settings: Settings, probes: Probes) -> Finding:
    """Open the configured bus for a bounded window; compare the ids seen with the mapping's."""
    from agent.canbus.cache import frame_key
    from agent.canbus.mapping import load_mapping

    can = settings.can
    try:
        mapping = load_mapping(can.mapping, dbc=[can.dbc] if can.dbc is not None else None)
    except (MappingError, ConfigError) as exc:
        return fail("can.frames", f"the signal mapping cannot be loaded: {exc}", "docs/mapping.md")
    wanted = set(mapping.wanted_ids)
    kwargs: dict[str, Any] = {"interface": can.interface}
    for key in ("channel", "bitrate"):
        if can.bus.get(key) is not None:
            kwargs[key] = can.bus[key]
    if can.bus.get("fd"):
        kwargs["fd"] = True
        if can.bus.get("data_bitrate") is not None:
            kwargs["data_bitrate"] = can.bus["data_bitrate"]
    kwargs.update(can.bus.get("options") or {})
    try:
        bus = probes.bus_factory(**kwargs)
    except Exception as exc:  # python-can raises CanError, OSError, ValueError, ImportError by interface
        return fail("can.frames", f"cannot open the CAN bus ({can.interface} {can.channel}): {exc}",
                    "is another program holding it, or the interface down?")
    seen: set[int] = set()
    frames = errors = 0
    start = probes.monotonic()
    deadline = start + probes.can_window_s
    try:
        while frames < MAX_FRAMES and not wanted <= seen:
            left = deadline - probes.monotonic()
            if left <= 0:
                break
            msg = bus.recv(min(0.2, left))
            if msg is None:
                continue
            if msg.is_error_frame:
                errors += 1
                continue
            if msg.is_remote_frame:
                continue
            frames += 1
            seen.add(frame_key(int(msg.arbitration_id), bool(msg.is_extended_id)))
    except Exception as exc:  # a bus that fails while reading is a finding, not a crash
        return fail("can.frames", f"reading the CAN bus failed after {frames} frames: {exc}")
    finally:
        with contextlib.suppress(Exception):
            bus.shutdown()
    took = probes.monotonic() - start
    mapped = wanted & seen
    missing = sorted(wanted - seen)
    err_note = f"; {errors} error frames" if errors else ""
    if frames == 0:
        return fail("can.frames", f"no CAN frames in {took:.1f} s{err_note}",
                    "is the car awake (ignition on, or charging)? Is the HAT wired to the right pins"
                    " (CAN-H, CAN-L, ground) of a bus that carries the mapped ECUs? " + _BUS_HINT)
    if not mapped:
        sample = ", ".join(_fmt_key(k) for k in sorted(seen)[:6])
        return fail("can.frames", f"{frames} frames from {len(seen)} ids ({sample} ...) but none of the"
                                  f" {len(wanted)} ids the mapping reads{err_note}",
                    "a mapping for another vehicle, or the wrong bus (a gateway may only pass diagnostic"
                    " traffic): compare `candump " + f"{can.channel}` with the DBC")
    if missing:
        listed = ", ".join(_fmt_key(k) for k in missing[:8]) + (" ..." if len(missing) > 8 else "")
        return warn("can.frames", f"{len(mapped)} of {len(wanted)} mapped ids seen in {took:.1f} s;"
                                  f" missing {listed}{err_note}",
                    "ids sent only in some states (charging, driving) may be missing now; fields from"
                    " the others are reported invalid")
    return ok("can.frames", f"all {len(wanted)} mapped ids seen in {took:.1f} s ({frames} frames{err_note})")


# ------------------------------------------------------------------------------------------ modem


def check_modem(url: str | None, baudrate: int, expected_iccid: str | None, probes: Probes,
                iccid_from_modem: bool = False) -> list[Finding]:
    """The modem answers AT, gives the SIM's ICCID (equal to the config's) and has signal.
    ``iccid_from_modem``: the login carries the SIM's ICCID (``[modem] iccid_from = "modem"``), so a
    different ``[vehicle] iccid`` is only a stale fallback."""
    if url is None:
        return [ok("modem", "no modem configured or given: not checked",
                   "[modem] enabled = true and port, or tbox doctor --modem /dev/ttyUSB2 (the AT port)")]
    from agent.peripherals.modem import ModemError, mask_iccid

    try:
        modem = probes.open_modem(url, baudrate)
    except ModemError as exc:
        return [fail("modem", f"no modem answers on {url}: {exc}",
                     "ls /dev/ttyUSB* /dev/ttyACM*: the AT port is often the 3rd of a USB modem (ttyUSB2);"
                     " ModemManager may hold it (systemctl stop ModemManager); the user needs group"
                     " dialout")]
    findings: list[Finding] = []
    try:
        try:
            iccid = modem.read_iccid()
        except ModemError as exc:
            findings.append(fail("modem.iccid", f"the modem answers but gives no ICCID: {exc}",
                                 "is the SIM inserted the right way round, and not PIN-locked?"))
        else:
            shown = mask_iccid(iccid)
            if iccid_from_modem:
                same = expected_iccid is None or expected_iccid.rstrip("F") == iccid.rstrip("F")
                findings.append(ok("modem.iccid", f"SIM ICCID {shown}, carried at login"
                                   + ("" if same else " ([vehicle] iccid, the fallback, differs)")))
            elif expected_iccid is None:
                findings.append(warn("modem.iccid", f"SIM ICCID {shown}, but the login carries none",
                                     "set [vehicle] iccid, or [modem] iccid_from = \"modem\""))
            elif expected_iccid.rstrip("F") != iccid.rstrip("F"):
                findings.append(warn("modem.iccid", f"the SIM's ICCID {shown} is not the config's"
                                                    f" {mask_iccid(expected_iccid)}",
                                     "the platform matches VIN and ICCID: set [vehicle] iccid to the SIM's"))
            else:
                findings.append(ok("modem.iccid", f"SIM ICCID {shown}, as configured"))
        try:
            quality = modem.signal_quality()
        except ModemError as exc:
            findings.append(warn("modem.signal", f"no signal report: {exc}"))
        else:
            dbm = quality.dbm
            if dbm is None:
                findings.append(warn("modem.signal", "no mobile signal (unknown strength)",
                                     "antenna connected? coverage? a SIM with data enabled?"))
            elif dbm < WEAK_SIGNAL_DBM:
                findings.append(warn("modem.signal", f"weak mobile signal ({dbm} dBm)",
                                     "an external antenna on the roof or the windscreen helps"))
            else:
                findings.append(ok("modem.signal", f"mobile signal {dbm} dBm"))
    finally:
        modem.close()
    return findings


# ------------------------------------------------------------------------------------------ GNSS


@dataclass(frozen=True)
class GnssReading:
    """A valid fix's time and the system time when it was read (for the clock check)."""

    fix_time: datetime
    system_time: datetime


def check_gnss(gnss: GnssSettings, probes: Probes) -> tuple[Finding, GnssReading | None]:
    """A GNSS source is configured, sentences arrive, and there is a fix."""
    from agent.peripherals.gnss import parse_source

    if not gnss.enabled:
        return warn("gnss", "no GNSS source: every report carries an invalid position",
                    "[gnss] source = \"serial:/dev/ttyUSB1:9600\" (the receiver's port and baud rate)"), None
    kind, port, baud = parse_source(gnss.source)
    if kind == "file":
        if Path(port).is_file():
            return ok("gnss", f"positions are read from the file {port} (a replay, not a receiver)"), None
        return fail("gnss", f"the GNSS file {port} does not exist"), None
    try:
        receiver = probes.open_gnss(port, baud)
    except TboxError as exc:
        return fail("gnss", f"cannot open the GNSS receiver: {exc}",
                    "the device path (ls /dev/ttyUSB* /dev/ttyACM* /dev/serial0) and group dialout"), None
    reading: GnssReading | None = None
    last = None
    start = probes.monotonic()
    try:
        while probes.monotonic() - start < probes.gnss_window_s:
            try:
                pos = receiver.read_position()
            except TboxError as exc:
                return fail("gnss", f"reading {port} failed: {exc}"), None
            if pos is None:
                continue
            last = pos
            if pos.valid and pos.time is not None:
                reading = GnssReading(pos.time, probes.now())
                break
    finally:
        receiver.close()
    parser = receiver.parser
    bad = sum(parser.errors.values())
    if reading is not None:
        return ok("gnss", f"GNSS fix on {port} ({parser.sentences} sentences read)"), reading
    if parser.sentences == 0:
        what = f"only unreadable data ({bad} bad lines)" if bad else "nothing"
        return fail("gnss", f"{what} from {port} at {baud} baud in {probes.gnss_window_s:g} s",
                    "bad lines usually mean a wrong baud rate (9600 is common, some send 38400 or"
                    " 115200); nothing means the wrong port or a receiver without power"), None
    if last is not None and last.valid:
        return warn("gnss", f"GNSS fix on {port} without a time: cannot compare clocks"), None
    return warn("gnss", f"the receiver on {port} talks ({parser.sentences} sentences) but has no fix yet",
                "it needs open sky: a cold start takes a minute or more; check the antenna"), None


# ------------------------------------------------------------------------------------------ clock


def check_clock(probes: Probes, gnss: GnssReading | None = None,
                max_offset_s: float = CLOCK_SKEW_S) -> list[Finding]:
    """The year is plausible, NTP has synchronised the clock, GNSS time agrees (within ``max_offset_s``)."""
    now = probes.now()
    findings: list[Finding] = []
    if now.year < 2024:
        findings.append(fail("clock.time", f"the system clock says {now:%Y-%m-%d %H:%M} UTC: never set",
                             "a Pi has no battery-backed clock: it needs NTP over the network, an RTC"
                             " module, or GNSS time; reports with this time are rejected by platforms"))
    else:
        findings.append(ok("clock.time", f"system time {now:%Y-%m-%d %H:%M:%S} UTC"))
    result = probes.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], 5.0)
    if result is None or result.returncode != 0:
        findings.append(ok("clock.ntp", "no answer from timedatectl (no systemd here?): NTP not checked"))
    elif result.stdout.strip() == "yes":
        findings.append(ok("clock.ntp", "synchronised with NTP"))
    else:
        findings.append(warn("clock.ntp", "the clock is not synchronised with NTP",
                             "needs a network link; `timedatectl timesync-status` shows the servers tried"))
    if gnss is not None:
        skew = (gnss.system_time - gnss.fix_time).total_seconds()
        if abs(skew) > max_offset_s:
            findings.append(warn("clock.gnss", f"the system clock is {skew:+.1f} s off GNSS time",
                                 "reports carry the system time: fix NTP, or set the clock from GNSS"))
        else:
            findings.append(ok("clock.gnss", f"system clock within {abs(skew):.1f} s of GNSS time"))
    return findings


# ------------------------------------------------------------------------------------------ storage


def check_storage(store: StoreSettings, probes: Probes) -> list[Finding]:
    """Free space where the outbox lives, and its backlog (read-only)."""
    findings: list[Finding] = []
    directory = store.path.parent
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free_mb = probes.disk_usage(str(existing)).free / 1024 / 1024
    except OSError as exc:
        findings.append(fail("storage.space", f"cannot tell the free space of {existing}: {exc}"))
        free_mb = None
    if free_mb is not None:
        if free_mb < MIN_FREE_MB:
            findings.append(fail("storage.space", f"only {free_mb:.0f} MB free for the outbox in {existing}",
                                 "reports of an outage are lost when the disk is full: free space or use a"
                                 " larger SD card"))
        elif free_mb < store.max_mb:
            findings.append(warn("storage.space", f"{free_mb:.0f} MB free in {existing}, less than the"
                                                  f" outbox may use ([store] max_mb = {store.max_mb:g})",
                                 "lower max_mb or free space"))
        else:
            findings.append(ok("storage.space", f"{free_mb:.0f} MB free for the outbox in {existing}"))
    if not directory.exists():
        findings.append(warn("storage.outbox", f"the outbox directory {directory} does not exist yet",
                             "systemd creates /var/lib/tbox/NAME when tbox-agent@NAME first starts"))
        return findings
    if not store.path.exists():
        findings.append(ok("storage.outbox", f"no outbox yet at {store.path} (created at the first start)"))
        return findings
    findings.append(_backlog(store.path, probes.now()))
    return findings


def _backlog(path: Path, now: datetime) -> Finding:
    # A read-only connection to a WAL database creates the -wal and -shm files when they are missing and
    # leaves them behind: owned by root (sudo tbox doctor), they would stop the agent's user from opening
    # its outbox. So: while the agent has them open, share them; otherwise (a closed, fully checkpointed
    # outbox) read the file as immutable, which creates nothing.
    shared = all(path.with_name(path.name + suffix).exists() for suffix in ("-wal", "-shm"))
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if shared else "&immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        return warn("storage.outbox", f"cannot open the outbox {path} read-only: {exc}",
                    "run tbox doctor as root or as the tbox user")
    try:
        count, oldest = db.execute("SELECT COUNT(*), MIN(collected_at) FROM outbox").fetchone()
    except sqlite3.Error as exc:
        return fail("storage.outbox", f"the outbox {path} cannot be read: {exc}",
                    "stop the agent, move the file away; the agent makes a new one (docs/store.md)")
    finally:
        db.close()
    if not count:
        return ok("storage.outbox", "the outbox is empty: everything reached the platform")
    age = now.timestamp() - float(oldest)
    if age > BACKLOG_AGE_S:
        return warn("storage.outbox", f"{count} reports wait in the outbox, the oldest collected"
                                      f" {_duration(age)} ago",
                    "the platform has not acknowledged for a while: see the platform checks below and"
                    " journalctl -u tbox-agent@NAME")
    return ok("storage.outbox", f"{count} reports in flight (oldest {_duration(age)} old)")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ------------------------------------------------------------------------------------------ platform


def check_platform(uplink: UplinkSettings, probes: Probes) -> list[Finding]:
    """TCP connect to the platform (or broker), then the TLS handshake and certificates when TLS is on."""
    host, port = uplink.host, uplink.port
    if not host:
        return [warn("platform", "no platform configured ([uplink] host): reports stay in the outbox")]
    if port is None:
        return [fail("platform", "[uplink] port is not set")]
    where = f"{host}:{port}"
    t0 = probes.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=probes.connect_timeout_s)
    except socket.gaierror as exc:
        return [fail("platform.tcp", f"cannot resolve {host}: {exc.strerror}",
                     "no DNS: is the mobile data link up (an APN set)? is the name right?")]
    except ConnectionRefusedError:
        return [fail("platform.tcp", f"{where} refused the connection: nothing listens there",
                     "check [uplink] host and port with the platform's operator")]
    except TimeoutError:
        return [fail("platform.tcp", f"no answer from {where} in {probes.connect_timeout_s:g} s",
                     "a firewall, a private APN without a route, or a wrong address")]
    except OSError as exc:
        return [fail("platform.tcp", f"cannot reach {where}: {exc.strerror or exc}",
                     "is there a network link at all (ip route)?")]
    took_ms = (probes.monotonic() - t0) * 1000
    findings = [ok("platform.tcp", f"{where} accepts TCP connections ({took_ms:.0f} ms)")]
    try:
        if uplink.tls:
            findings.extend(_tls(sock, uplink, host, probes))
        elif port in (8883, 19443, 443):
            findings.append(warn("platform.tls", f"TLS is off but port {port} usually speaks TLS",
                                 "[uplink] tls = true with the platform's ca_file"))
    finally:
        sock.close()
    return findings


def _tls(sock: socket.socket, uplink: UplinkSettings, host: str, probes: Probes) -> list[Finding]:
    from agent.uplink.tcp import TlsConfig

    findings: list[Finding] = []
    if uplink.cert_file is not None:
        findings.append(_client_cert(uplink.cert_file, probes.now()))
    try:
        config = TlsConfig(ca_file=uplink.ca_file, cert_file=uplink.cert_file, key_file=uplink.key_file)
        ctx = config.context()
    except ConfigError as exc:
        return [*findings, fail("platform.tls", f"the TLS files cannot be loaded: {exc.reason}",
                                "[uplink] ca_file, cert_file, key_file: PEM files readable by the tbox user")]
    name = uplink.server_hostname or host
    sock.settimeout(probes.connect_timeout_s)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=name)
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message
        return [*findings, fail("platform.tls", f"the platform's certificate is refused: {why}",
                                "ca_file must be the CA that signed the platform's certificate, the name"
                                f" must match {name!r} (server_hostname), and the clock must be right")]
    except (ssl.SSLError, OSError) as exc:
        return [*findings, fail("platform.tls", f"TLS handshake with {host} failed: {exc}",
                                "does the port speak TLS? does the platform want a client certificate?")]
    try:
        der = tls.getpeercert(binary_form=True) or b""
        peer = tls.getpeercert() or {}
        version = tls.version() or "TLS"
        # TLS 1.3: a refused client certificate shows only as an alert on the first read
        tls.settimeout(0.5)
        try:
            data = tls.recv(1)
        except (TimeoutError, ssl.SSLWantReadError):
            data = None
        except (ssl.SSLError, OSError) as exc:
            return [*findings, fail("platform.tls", f"the platform closed TLS after the handshake: {exc}",
                                    "it refused our client certificate (cert_file/key_file)")]
        if data == b"":
            findings.append(warn("platform.tls", "the platform hung up right after the handshake",
                                 "it may refuse our client certificate"))
    finally:
        tls.close()
    pin = (uplink.pin_sha256 or "").replace(":", "").lower()
    if pin and hashlib.sha256(der).hexdigest() != pin:
        findings.append(fail("platform.pin", "the platform's certificate does not match pin_sha256",
                             "the platform changed its certificate (or this is not the platform)"))
    not_after = peer.get("notAfter")
    if isinstance(not_after, str):
        days = (ssl.cert_time_to_seconds(not_after) - probes.now().timestamp()) / 86400
        if days < CERT_WARN_DAYS:
            findings.append(warn("platform.tls", f"TLS with {name} works but its certificate expires in"
                                                 f" {days:.0f} days", "tell the platform's operator"))
            return findings
    findings.append(ok("platform.tls", f"TLS with {name} verified ({version})"))
    return findings


def _client_cert(path: Path, now: datetime) -> Finding:
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return fail("platform.client_cert", f"cannot read the client certificate {path}: {exc}")
    days = (cert.not_valid_after_utc - now).total_seconds() / 86400
    if days < 0:
        return fail("platform.client_cert", f"client certificate {path.name} expired {-days:.0f} days ago",
                    "ask the platform's operator for a new one")
    if now < cert.not_valid_before_utc:
        return fail("platform.client_cert", f"the client certificate {path.name} is not valid yet"
                                            " (or the clock is wrong)")
    if days < CERT_WARN_DAYS:
        return warn("platform.client_cert", f"the client certificate {path.name} expires in {days:.0f} days",
                    "ask the platform's operator for a new one")
    return ok("platform.client_cert", f"client certificate {path.name} valid for {days:.0f} more days")


# ------------------------------------------------------------------------------------------ all


@dataclass
class DoctorOptions:
    """What ``tbox doctor`` was asked to check."""

    config: Path | None = None
    modem: str | None = None
    modem_baud: int = 115200
    skip: frozenset[str] = frozenset()


def run_checks(options: DoctorOptions, probes: Probes | None = None) -> list[Finding]:
    """Every check in order (later ones skipped when what they need failed)."""
    probes = probes or Probes()
    findings: list[Finding] = []
    settings: Settings | None = None
    if options.config is not None:
        finding, settings = check_config(options.config)
        findings.append(finding)
    else:
        findings.append(warn("config", "no config given: checking every CAN interface without expectations",
                             "tbox doctor --config /etc/tbox/NAME.toml checks bit rate, frames, storage and"
                             " the platform too"))

    def wanted(name: str) -> bool:
        return name not in options.skip

    if wanted("can"):
        if settings is not None:
            link = check_can_link(settings.can, probes)
            findings.extend(link)
            if worst(link) < Level.FAIL:
                findings.append(check_can_frames(settings, probes))
        elif options.config is None:
            names = can_interfaces(probes.sysfs_net) or ["can0"]
            for name in names:
                findings.extend(check_can_link(None, probes, channel=name))
    if wanted("modem"):
        url, baud = options.modem, options.modem_baud
        iccid, from_modem = None, False
        if settings is not None:
            iccid = settings.vehicle.iccid
            from_modem = settings.modem.enabled and settings.modem.iccid_from == "modem"
            if url is None and settings.modem.enabled:
                url, baud = settings.modem.port, settings.modem.baud
        findings.extend(check_modem(url, baud, iccid, probes, iccid_from_modem=from_modem))
    reading: GnssReading | None = None
    if wanted("gnss") and settings is not None:
        finding, reading = check_gnss(settings.gnss, probes)
        findings.append(finding)
    if wanted("clock"):
        max_offset = settings.gnss.clock_max_offset_s if settings is not None else CLOCK_SKEW_S
        findings.extend(check_clock(probes, reading, max_offset))
    if settings is not None:
        if wanted("storage"):
            findings.extend(check_storage(settings.store, probes))
        if wanted("platform"):
            findings.extend(check_platform(settings.uplink, probes))
    return findings


#: the check groups ``--skip`` accepts
CHECK_GROUPS: Final = ("can", "modem", "gnss", "clock", "storage", "platform")

__all__ = [
    "CHECK_GROUPS",
    "CommandResult",
    "DoctorOptions",
    "Finding",
    "GnssReading",
    "Level",
    "Probes",
    "check_can_frames",
    "check_can_link",
    "check_clock",
    "check_config",
    "check_gnss",
    "check_modem",
    "check_platform",
    "check_storage",
    "run_checks",
    "worst",
]
