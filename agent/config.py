"""The agent's configuration: one TOML file → validated, frozen ``Settings``.

Every option, its type and default is documented in ``docs/configuration.md``. Errors are
``ConfigError(reason, file=..., key=...)`` naming the file and the dotted key: unknown keys are errors,
wrong types say what was expected, TOML syntax errors give the line and column. Relative paths resolve
against the directory of the config file.

``[alarms]`` is not hard-coded: its keys are the fields of ``agent.report.alarms.AlarmConfig`` (nested
dataclasses become sub-tables), validated from the dataclass's type hints, so a new threshold needs no
config code.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from agent.errors import ConfigError
from agent.protocol.model import CoordinateSystem, Edition

VIN_RE: Final = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
ICCID_RE: Final = re.compile(r"[0-9A-Z]{20}")
#: defaults of the bus keys of ``[can]`` this config adds to the CAN source's own
CAN_DEFAULTS: Final = MappingProxyType({"interface": "socketcan", "channel": "can0", "bitrate": 500_000})
GNSS_NONE: Final = "none"
#: ``[gnss] coordinate_system`` names → the 2025 location block's byte (CGCS2000 has no code of its own:
#: 0x03 "other"; within GNSS accuracy it coincides with WGS-84, but the byte says what the receiver uses)
COORDINATE_SYSTEMS: Final = MappingProxyType({
    "wgs84": CoordinateSystem.WGS84,
    "gcj02": CoordinateSystem.GCJ02,
    "cgcs2000": CoordinateSystem.OTHER,
    "other": CoordinateSystem.OTHER,
})


# ------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class VehicleSettings:
    """``[vehicle]``: identity and protocol edition."""

    vin: str
    edition: Edition = Edition.E2016
    iccid: str | None = None
    pack_codes: tuple[str, ...] = ()
    packs_per_bms: tuple[int, ...] = ()


@dataclass(frozen=True)
class CanSettings:
    """``[can]``: the signal mapping, and the bus (validated by ``agent.canbus.source.CanConfig``)."""

    mapping: Path
    dbc: Path | None = None
    #: the bus keys (everything in ``[can]`` but ``mapping``/``dbc``), defaults filled in
    bus: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType(dict(CAN_DEFAULTS)))

    @property
    def interface(self) -> str:
        return str(self.bus.get("interface"))

    @property
    def channel(self) -> Any:
        return self.bus.get("channel")

    def source_config(self) -> dict[str, Any]:
        """The bus settings as the plain dict ``CanSource`` takes."""
        return dict(self.bus)


@dataclass(frozen=True)
class GnssSettings:
    """``[gnss]``: where NMEA comes from (``none``, a file, or ``serial:DEV[:BAUD]``), the 2025
    coordinate system, the reopen backoff and the clock check against GNSS time (docs/peripherals.md)."""

    source: str = GNSS_NONE
    coordinate_system: CoordinateSystem = CoordinateSystem.WGS84
    max_age_s: float = 5.0
    reopen_initial_s: float = 0.5
    reopen_max_s: float = 30.0
    #: ``off``: no check; ``report``: measure and log the system clock's offset to GNSS UTC;
    #: ``step``: also set the system clock when the offset exceeds ``clock_max_offset_s`` (privileged)
    clock: str = "report"
    clock_max_offset_s: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.source != GNSS_NONE


@dataclass(frozen=True)
class ModemSettings:
    """``[modem]``: the cellular modem's AT port; the login ICCID from the SIM (docs/peripherals.md)."""

    enabled: bool = False
    port: str = "/dev/ttyUSB2"
    baud: int = 115200
    #: ``modem``: the SIM's ICCID read at start (``[vehicle] iccid`` only as a fallback); ``config``
    iccid_from: str = "config"
    timeout_s: float = 2.0
    attempts: int = 3
    retry_s: float = 2.0


@dataclass(frozen=True)
class ReportSettings:
    """``[report]``: cadence (seconds)."""

    normal_period_s: int = 10
    alarm_period_s: int = 1
    sampling_period_s: float = 1.0
    alarm_window_s: int = 30
    #: further ``agent.report.cadence.ReportingConfig`` fields (validated from its type hints)
    cadence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class UplinkSettings:
    """``[uplink]``: the platform link (``agent.uplink.tcp``, docs/uplink.md; ``transport = "mqtt"``:
    ``agent.uplink.mqtt``, docs/mqtt.md)."""

    transport: str = "tcp"
    host: str | None = None
    port: int | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    heartbeat_s: int = 30
    #: hex SHA-256 of the server certificate (DER), checked after the handshake
    pin_sha256: str | None = None
    server_hostname: str | None = None
    #: backlog frames per second sent as reissue between realtime frames
    reissue_rate: float = 50.0
    #: param 0x0B platform response timeout and 0x0A terminal response timeout (login reply)
    reply_timeout_s: int = 30
    login_timeout_s: int = 60
    reconnect_max_s: float = 60.0
    #: data-unit encryption: none | aes | sm4 (symmetric key, hex, in ``data_key_file``) | rsa | sm2 (the
    #: platform's public key, PEM/DER, in ``data_key_file``)
    encryption: str = "none"
    data_key_file: Path | None = None
    #: rsa | sm2: the terminal's own private key, to decrypt encrypted platform frames (None: the platform
    #: must answer unencrypted)
    decrypt_key_file: Path | None = None
    #: 2025 signatures: sm2 | rsa | ecc with the private key in ``sign_key_file`` (PEM/DER)
    sign_type: str | None = None
    sign_key_file: Path | None = None
    #: MQTT only (``transport = "mqtt"``): protocol 4 (3.1.1) or 5; client id (None: ``tbox-{vin}``);
    #: credentials (the password is read from ``password_file``, never written in the config)
    mqtt_protocol: int = 4
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    topic_prefix: str = "gbt32960"
    json_mirror: bool = False
    #: True: a platform behind the broker answers login/heartbeat/reports on dnstream; False: PUBACK does
    platform_replies: bool = False
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86400  # MQTT 5: how long the broker keeps our session
    #: both transports: uploads awaiting confirmation (None: 3000 over TCP, 100 over MQTT)
    max_inflight: int | None = None
    reconnect_min_s: float = 1.0
    hold_s: float = 600.0  # a record abandoned after error replies (TCP) or refused by the broker (MQTT)
    logout_wait_s: float = 5.0
    connect_timeout_s: float = 10.0
    #: TCP: a heartbeat after this many uploads proves them (docs/session.md "Delivery barrier"); 0: off
    barrier_after: int = 100
    #: TCP: time calibration (0x08) after every login; the offset is logged when beyond the GNSS limit
    calibrate_time: bool = False
    #: 2025: chip id of the secure element; set, the terminal activates (0x09) until the platform confirms
    activation_chip_id: str | None = None


@dataclass(frozen=True)
class StoreSettings:
    """``[store]``: the SQLite outbox (docs/store.md). ``retention_days`` None: the edition's window."""

    path: Path = Path("tbox-outbox.db")
    retention_days: float | None = None
    max_mb: float = 512.0
    commit_interval_s: float = 1.0
    memory_limit: int = 10_000


@dataclass(frozen=True)
class UpgradeSettings:
    """``[upgrade]``: remote upgrade through Ed25519-signed packages (docs/upgrade.md). Without
    ``public_key_file`` remote upgrade commands are ignored."""

    public_key_file: Path | None = None
    directory: Path | None = None  # None: "upgrades" beside the outbox
    install_command: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ("https", "http", "ftp")
    max_mb: float = 64.0
    download_timeout_s: float = 600.0
    install_timeout_s: float = 600.0


_UPGRADE_SCHEMES = frozenset({"https", "http", "ftp", "file"})


@dataclass(frozen=True)
class Settings:
    """The whole agent configuration (one file)."""

    file: Path
    vehicle: VehicleSettings
    can: CanSettings
    gnss: GnssSettings = field(default_factory=GnssSettings)
    modem: ModemSettings = field(default_factory=ModemSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    #: ``[alarms]`` overrides, validated against ``AlarmConfig`` (nested tables as nested mappings)
    alarms: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    uplink: UplinkSettings = field(default_factory=UplinkSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    upgrade: UpgradeSettings = field(default_factory=UpgradeSettings)

    def with_edition(self, edition: Edition | int) -> Settings:
        """A copy with another protocol edition (``tbox replay --edition``)."""
        try:
            ed = Edition(int(edition))
        except ValueError:
            raise ConfigError(
                f"edition must be 2016 or 2025, not {edition!r}", key="vehicle.edition"
            ) from None
        _check_pack_codes(self.vehicle.pack_codes, ed, str(self.file))
        return dataclasses.replace(self, vehicle=dataclasses.replace(self.vehicle, edition=ed))

    def reporting_config(self) -> Any:
        """``agent.report.cadence.ReportingConfig`` from ``[report]``."""
        cls = _optional_class("agent.report.cadence", "ReportingConfig", str(self.file))
        return None if cls is None else _reporting_config(cls, self.report, str(self.file))

    def alarm_config(self) -> Any:
        """``AlarmConfig()`` with the ``[alarms]`` overrides applied."""
        cls = _alarm_config_class(str(self.file))
        if cls is None:
            return None
        return _build_alarm_config(cls, self.alarms, str(self.file))


# ------------------------------------------------------------------------------------ reading


class _Table:
    """One TOML table being read: typed getters that name file and dotted key, unknown-key check."""

    def __init__(self, data: Mapping[str, Any], file: str, prefix: str) -> None:
        self.data = data
        self.file = file
        self.prefix = prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, reason: str) -> ConfigError:
        return ConfigError(reason, file=self.file, key=self.key(name))

    def get(self, name: str, expected: str, check: Any, default: Any) -> Any:
        self.used.add(name)
        if name not in self.data:
            return default
        value = self.data[name]
        if not check(value):
            raise self.error(name, f"expected {expected}, got {_describe(value)}")
        return value

    def text(self, name: str, default: Any = None) -> Any:
        return self.get(name, "a string", lambda v: isinstance(v, str), default)

    def flag(self, name: str, default: Any = None) -> Any:
        return self.get(name, "true or false", lambda v: isinstance(v, bool), default)

    def integer(self, name: str, default: Any = None, lo: int | None = None, hi: int | None = None) -> Any:
        value = self.get(
            name, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool), default
        )
        self._range(name, value, lo, hi)
        return value

    def number(
        self, name: str, default: Any = None, lo: float | None = None, hi: float | None = None
    ) -> Any:
        value = self.get(
            name, "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool), default
        )
        value = float(value) if value is not None else None
        self._range(name, value, lo, hi)
        return value

    def table(self, name: str) -> _Table:
        value = self.get(name, "a table", lambda v: isinstance(v, dict), {})
        return _Table(value, self.file, self.key(name))

    def array(self, name: str, item: type, expected: str) -> Any:
        def ok(v: Any) -> bool:
            return isinstance(v, list) and all(isinstance(x, item) and not isinstance(x, bool) for x in v)

        return tuple(self.get(name, expected, ok, []))

    def _range(self, name: str, value: Any, lo: Any, hi: Any) -> None:
        if value is None:
            return
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(name, f"must be in [{lo}, {hi}], not {value}")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used)) or "none"
            raise self.error(unknown[0], f"unknown key (known here: {known})")


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"


def _path(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def load_config(path: str | Path) -> Settings:
    """Read and validate the agent config at ``path``."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such file", file=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", file=str(file)) from None
    return parse_config(text, file)


def parse_config(text: str, file: str | Path = "<config>", base_dir: Path | None = None) -> Settings:
    """Validate TOML ``text``; ``file`` names it in errors, relative paths resolve against ``base_dir``
    (default: the file's directory)."""
    name = str(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", file=name) from None
    base = base_dir if base_dir is not None else Path(file).resolve().parent
    root = _Table(data, name, "")
    vehicle = _vehicle(root.table("vehicle"), name)
    can = _can(root.table("can"), base)
    gnss = _gnss(root.table("gnss"), base)
    modem = _modem(root.table("modem"))
    report = _report(root.table("report"))
    alarms_table = root.get("alarms", "a table", lambda v: isinstance(v, dict), {})
    alarms = _alarms(alarms_table, name)
    uplink = _uplink(root.table("uplink"), base)
    store = _store(root.table("store"), base)
    upgrade = _upgrade(root.table("upgrade"), base)
    root.finish()
    return Settings(
        file=Path(file), vehicle=vehicle, can=can, gnss=gnss, modem=modem, report=report, alarms=alarms,
        uplink=uplink, store=store, upgrade=upgrade,
    )


def _vehicle(t: _Table, name: str) -> VehicleSettings:
    if "vin" not in t.data:
        raise t.error("vin", "required (the 17-character VIN)")
    vin = t.text("vin")
    if not VIN_RE.fullmatch(vin):
        raise t.error("vin", f"a VIN is 17 characters A-Z/0-9 without I, O, Q; got {vin!r}")
    edition_raw = t.integer("edition", 2016)
    if edition_raw not in (2016, 2025):
        raise t.error("edition", f"must be 2016 or 2025, not {edition_raw}")
    edition = Edition(edition_raw)
    iccid = t.text("iccid")
    if iccid is not None and re.fullmatch(r"[0-9]{19}", iccid):
        iccid += "F"  # a 19-digit ICCID is carried as the SIM pads it (docs/peripherals.md)
    if iccid is not None and not ICCID_RE.fullmatch(iccid):
        raise t.error("iccid", "an ICCID is 20 characters (digits, upper-case letters) or 19 digits")
    codes = t.array("pack_codes", str, "an array of strings")
    _check_pack_codes(codes, edition, name)
    per_bms = t.array("packs_per_bms", int, "an array of integers")
    if any(not 0 < n < 256 for n in per_bms):
        raise t.error("packs_per_bms", "each entry must be in [1, 255]")
    if per_bms and codes and sum(per_bms) != len(codes):
        raise t.error("packs_per_bms", f"sums to {sum(per_bms)} but there are {len(codes)} pack_codes")
    t.finish()
    return VehicleSettings(vin=vin, edition=edition, iccid=iccid, pack_codes=codes, packs_per_bms=per_bms)


def _check_pack_codes(codes: tuple[str, ...], edition: Edition, file: str) -> None:
    key = "vehicle.pack_codes"
    if any(not c.isascii() for c in codes):
        raise ConfigError("pack codes are ASCII", file=file, key=key)
    if edition is Edition.E2025 and any(len(c) != 24 for c in codes):
        raise ConfigError("2025 pack codes are 24 characters each", file=file, key=key)
    if len({len(c) for c in codes}) > 1:
        raise ConfigError("2016 subsystem codes must all have the same length", file=file, key=key)
    if codes and len(codes[0]) > 255:
        raise ConfigError("codes are at most 255 characters", file=file, key=key)


def _can(t: _Table, base: Path) -> CanSettings:
    mapping = t.text("mapping")
    if mapping is None:
        raise t.error("mapping", "required (path of the signal mapping TOML, e.g. dbc/tbox_ev.toml)")
    dbc = _path(base, t.text("dbc"))
    bus = {k: v for k, v in t.data.items() if k not in ("mapping", "dbc")}
    bus = {**CAN_DEFAULTS, **bus}
    _validate_bus(bus, t.file)
    mapping_path = _path(base, mapping)
    assert mapping_path is not None
    return CanSettings(mapping=mapping_path, dbc=dbc, bus=MappingProxyType(bus))


def _validate_bus(bus: dict[str, Any], file: str) -> None:
    """Validate the bus keys with the CAN source's own rules (``agent.canbus.source.CanConfig``)."""
    try:
        from agent.canbus.source import CanConfig
    except ModuleNotFoundError as exc:  # the CAN input layer is not installed: keys stay unchecked
        if exc.name != "agent.canbus.source":
            raise
        return
    CanConfig.from_mapping(bus, file=file)


def _gnss(t: _Table, base: Path) -> GnssSettings:
    source = t.text("source", GNSS_NONE).strip()
    if source.startswith("serial:"):
        port, _, baud = source[len("serial:"):].partition(":")
        if not port:
            raise t.error("source", "serial source needs a device: serial:/dev/ttyS0[:9600]")
        if baud and not baud.isdigit():
            raise t.error("source", f"baud rate must be an integer, not {baud!r}")
    elif source and source != GNSS_NONE:
        resolved = _path(base, source)
        assert resolved is not None
        source = str(resolved)
    else:
        source = GNSS_NONE
    cs_name = t.text("coordinate_system", "wgs84")
    cs = COORDINATE_SYSTEMS.get(cs_name.lower())
    if cs is None:
        raise t.error("coordinate_system", f"one of {', '.join(COORDINATE_SYSTEMS)}; not {cs_name!r}")
    max_age = t.number("max_age_s", 5.0, 0.1, 3600.0)
    initial = t.number("reopen_initial_s", 0.5, 0.01, 60.0)
    longest = t.number("reopen_max_s", 30.0, 0.01, 3600.0)
    if longest < initial:
        raise t.error("reopen_max_s", f"must be ≥ reopen_initial_s ({initial})")
    clock = t.text("clock", "report")
    if clock not in ("off", "report", "step"):
        raise t.error("clock", f"off, report or step, not {clock!r}")
    max_offset = t.number("clock_max_offset_s", 2.0, 0.5, 86400.0)
    t.finish()
    return GnssSettings(source=source, coordinate_system=cs, max_age_s=max_age, reopen_initial_s=initial,
                        reopen_max_s=longest, clock=clock, clock_max_offset_s=max_offset)


def _modem(t: _Table) -> ModemSettings:
    enabled = t.flag("enabled", False)
    iccid_from = t.text("iccid_from", "modem" if enabled else "config")
    if iccid_from not in ("modem", "config"):
        raise t.error("iccid_from", f"modem or config, not {iccid_from!r}")
    if iccid_from == "modem" and not enabled:
        raise t.error("iccid_from", 'iccid_from = "modem" needs enabled = true')
    port = t.text("port", "/dev/ttyUSB2").strip()
    if not port:
        raise t.error("port", "a device or pyserial URL (/dev/ttyUSB2, rfc2217://host:port)")
    settings = ModemSettings(
        enabled=enabled,
        port=port,
        baud=t.integer("baud", 115200, 300, 4_000_000),
        iccid_from=iccid_from,
        timeout_s=t.number("timeout_s", 2.0, 0.1, 60.0),
        attempts=t.integer("attempts", 3, 1, 100),
        retry_s=t.number("retry_s", 2.0, 0.0, 600.0),
    )
    t.finish()
    return settings


def _report(t: _Table) -> ReportSettings:
    normal = t.integer("normal_period_s", 10, 1, 30)
    alarm = t.integer("alarm_period_s", 1, 1, 30)
    if alarm > normal:
        raise t.error("alarm_period_s", f"must be ≤ normal_period_s ({normal})")
    sampling = t.number("sampling_period_s", 1.0, 0.05, 1.0)
    if abs(round(1.0 / sampling) * sampling - 1.0) > 1e-9:
        raise t.error("sampling_period_s", "must divide 1 s (1, 0.5, 0.25, 0.2, 0.1 …)")
    window = t.integer("alarm_window_s", 30, 0, 300)
    rest = {k: v for k, v in t.data.items() if k not in t.used}
    cadence: Mapping[str, Any] = MappingProxyType({})
    cls = _optional_class("agent.report.cadence", "ReportingConfig", t.file)
    if rest and cls is not None:
        cadence = _validate_dataclass(cls, rest, t.file, "report")
        t.used.update(rest)
    t.finish()
    settings = ReportSettings(
        normal_period_s=normal,
        alarm_period_s=alarm,
        sampling_period_s=sampling,
        alarm_window_s=window,
        cadence=cadence,
    )
    if cls is not None:
        _reporting_config(cls, settings, t.file)  # the cadence's own checks run now
    return settings


def _reporting_config(cls: type, r: ReportSettings, file: str) -> Any:
    try:
        return cls(
            normal_period_s=float(r.normal_period_s),
            alarm_period_s=float(r.alarm_period_s),
            alarm_window_s=float(r.alarm_window_s),
            **r.cadence,
        )
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=file, key=exc.key or "report") from None


def _optional_class(module_name: str, name: str, file: str) -> type | None:
    """A dataclass of another package, or None when that module is not installed yet."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return None
    cls = getattr(module, name, None)
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise ConfigError(f"{module_name}.{name} is not a dataclass", file=file)
    return cls


def _uplink(t: _Table, base: Path) -> UplinkSettings:
    transport = t.text("transport", "tcp")
    if transport not in ("tcp", "mqtt"):
        raise t.error("transport", f"tcp or mqtt, not {transport!r}")
    tls = t.flag("tls", False)
    port = t.integer("port", None, 1, 65535)
    if port is None and transport == "mqtt":
        port = 8883 if tls else 1883
    settings = UplinkSettings(
        transport=transport,
        host=t.text("host"),
        port=port,
        tls=tls,
        ca_file=_path(base, t.text("ca_file")),
        cert_file=_path(base, t.text("cert_file")),
        key_file=_path(base, t.text("key_file")),
        heartbeat_s=t.integer("heartbeat_s", 30, 1, 240),
        pin_sha256=t.text("pin_sha256"),
        server_hostname=t.text("server_hostname"),
        reissue_rate=t.number("reissue_rate", 50.0, 0.1, 100000.0),
        reply_timeout_s=t.integer("reply_timeout_s", 30, 1, 600),
        login_timeout_s=t.integer("login_timeout_s", 60, 1, 600),
        reconnect_max_s=t.number("reconnect_max_s", 60.0, 1.0, 3600.0),
        encryption=t.text("encryption", "none"),
        data_key_file=_path(base, t.text("data_key_file")),
        decrypt_key_file=_path(base, t.text("decrypt_key_file")),
        sign_type=t.text("sign_type"),
        sign_key_file=_path(base, t.text("sign_key_file")),
        mqtt_protocol=t.integer("mqtt_protocol", 4),
        client_id=t.text("client_id"),
        username=t.text("username"),
        password_file=_path(base, t.text("password_file")),
        topic_prefix=t.text("topic_prefix", "gbt32960"),
        json_mirror=t.flag("json_mirror", False),
        platform_replies=t.flag("platform_replies", False),
        keepalive_s=t.integer("keepalive_s", 30, 5, 65535),
        session_expiry_s=t.integer("session_expiry_s", 7 * 86400, 0, 0xFFFFFFFF),
        max_inflight=t.integer("max_inflight", None, 1, 65535),
        reconnect_min_s=t.number("reconnect_min_s", 1.0, 0.01, 3600.0),
        hold_s=t.number("hold_s", 600.0, 0.0, 86400.0),
        logout_wait_s=t.number("logout_wait_s", 5.0, 0.0, 600.0),
        connect_timeout_s=t.number("connect_timeout_s", 10.0, 0.1, 600.0),
        barrier_after=t.integer("barrier_after", 100, 0, 4000),
        calibrate_time=t.flag("calibrate_time", False),
        activation_chip_id=t.text("activation_chip_id"),
    )
    if settings.mqtt_protocol not in (4, 5):
        raise t.error("mqtt_protocol", f"4 (MQTT 3.1.1) or 5 (MQTT 5), not {settings.mqtt_protocol}")
    if settings.client_id is not None and not 1 <= len(settings.client_id.encode("utf-8")) <= 65535:
        raise t.error("client_id", "expected 1 to 65535 bytes")
    prefix = settings.topic_prefix
    if not prefix or prefix.startswith("/") or prefix.endswith("/") or any(c in prefix for c in "+#\0"):
        raise t.error("topic_prefix", f"a topic without wildcards or leading/trailing '/', not {prefix!r}")
    if settings.password_file is not None and settings.username is None:
        raise t.error("password_file", "a password_file needs a username")
    if settings.encryption not in ("none", "aes", "sm4", "rsa", "sm2"):
        raise t.error("encryption", f"none, aes, sm4, rsa or sm2, not {settings.encryption!r}")
    if settings.encryption != "none" and settings.data_key_file is None:
        raise t.error("data_key_file", f"encryption {settings.encryption} needs a data_key_file")
    if settings.decrypt_key_file is not None and settings.encryption not in ("rsa", "sm2"):
        raise t.error("decrypt_key_file", "only with encryption rsa or sm2")
    if settings.sign_type not in (None, "sm2", "rsa", "ecc"):
        raise t.error("sign_type", f"sm2, rsa or ecc, not {settings.sign_type!r}")
    if (settings.sign_type is None) != (settings.sign_key_file is None):
        raise t.error("sign_key_file", "sign_type and sign_key_file go together")
    chip = settings.activation_chip_id
    if chip is not None:
        if not 1 <= len(chip) <= 16 or not chip.isascii() or not chip.isprintable():
            raise t.error("activation_chip_id", "1 to 16 printable ASCII characters")
        if settings.sign_type is None:
            raise t.error("activation_chip_id", "activation is signed: set sign_type and sign_key_file")
    if settings.reconnect_min_s > settings.reconnect_max_s:
        raise t.error("reconnect_min_s", f"larger than reconnect_max_s ({settings.reconnect_max_s})")
    pin = settings.pin_sha256
    if pin is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", pin.replace(":", "")):
        raise t.error("pin_sha256", "expected 64 hex digits (colons allowed)")
    t.finish()
    return settings


def _store(t: _Table, base: Path) -> StoreSettings:
    path = _path(base, t.text("path", "tbox-outbox.db"))
    assert path is not None
    settings = StoreSettings(
        path=path,
        retention_days=t.number("retention_days", None, 0.001, 365.0),
        max_mb=t.number("max_mb", 512.0, 0.01, 1_000_000.0),
        commit_interval_s=t.number("commit_interval_s", 1.0, 0.0, 60.0),
        memory_limit=t.integer("memory_limit", 10_000, 0, 10_000_000),
    )
    t.finish()
    return settings


def _upgrade(t: _Table, base: Path) -> UpgradeSettings:
    schemes = t.array("schemes", str, "an array of URL schemes") or UpgradeSettings.schemes
    bad = sorted(set(schemes) - _UPGRADE_SCHEMES)
    if bad:
        raise t.error("schemes", f"unsupported scheme {bad[0]!r} (use {', '.join(sorted(_UPGRADE_SCHEMES))})")
    settings = UpgradeSettings(
        public_key_file=_path(base, t.text("public_key_file")),
        directory=_path(base, t.text("directory")),
        install_command=t.array("install_command", str, "an array of strings (argv)"),
        schemes=tuple(schemes),
        max_mb=t.number("max_mb", 64.0, 0.001, 4096.0),
        download_timeout_s=t.number("download_timeout_s", 600.0, 1.0, 86400.0),
        install_timeout_s=t.number("install_timeout_s", 600.0, 1.0, 86400.0),
    )
    t.finish()
    return settings


# ------------------------------------------------------------------------------------ [alarms]


def _alarm_config_class(file: str) -> type | None:
    """``agent.report.alarms.AlarmConfig``, or None when the report package has no alarms yet."""
    return _optional_class("agent.report.alarms", "AlarmConfig", file)


def _presets(cls: type) -> list[str]:
    """Class-method constructors of ``AlarmConfig`` usable as ``[alarms] preset`` (nmc, lfp …)."""
    return sorted(
        name for name, attr in vars(cls).items() if isinstance(attr, classmethod) and not name.startswith("_")
    )


def _alarms(data: Mapping[str, Any], file: str) -> Mapping[str, Any]:
    if not data:
        return MappingProxyType({})
    cls = _alarm_config_class(file)
    if cls is None:
        raise ConfigError("alarm thresholds need agent.report.alarms (not installed yet)", file=file,
                          key="alarms")
    body = dict(data)
    preset = body.pop(PRESET_KEY, None)
    if preset is not None and (not isinstance(preset, str) or preset not in _presets(cls)):
        raise ConfigError(f"one of {', '.join(_presets(cls))}, not {preset!r}", file=file,
                          key=f"alarms.{PRESET_KEY}")
    overrides = dict(_validate_dataclass(cls, body, file, "alarms"))
    if preset is not None:
        overrides[PRESET_KEY] = preset
    result = MappingProxyType(overrides)
    _build_alarm_config(cls, result, file)  # the dataclass's own checks (__post_init__) run now
    return result


#: ``[alarms]`` key choosing the base configuration (a class-method constructor of ``AlarmConfig``)
PRESET_KEY: Final = "preset"
#: the base configuration without ``preset`` (the simulated vehicle's NMC pack)
DEFAULT_PRESET: Final = "nmc"


def _build_alarm_config(cls: type, overrides: Mapping[str, Any], file: str) -> Any:
    body = dict(overrides)
    preset = body.pop(PRESET_KEY, None)
    try:
        if preset is not None:
            base = getattr(cls, preset)()
        elif _presets(cls) and _required_fields(cls):  # AlarmConfig needs its rules: take a preset
            names = _presets(cls)
            base = getattr(cls, DEFAULT_PRESET if DEFAULT_PRESET in names else names[0])()
        else:
            base = cls()
        return _apply_overrides(base, body)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=file, key=exc.key or "alarms") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), file=file, key="alarms") from None


def _required_fields(cls: type) -> list[str]:
    return [
        f.name for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]


def _validate_dataclass(cls: type, data: Mapping[str, Any], file: str, prefix: str) -> Mapping[str, Any]:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}"
        if key not in names:
            raise ConfigError(f"unknown key (known here: {', '.join(sorted(names))})", file=file, key=dotted)
        out[key] = _convert(hints.get(key, Any), value, file, dotted)
    return MappingProxyType(out)


class _Build:
    """A validated table that builds a new ``cls`` instance (array items of dataclass type)."""

    def __init__(self, cls: type, values: Mapping[str, Any], file: str, key: str) -> None:
        self.cls, self.values, self.file, self.key = cls, values, file, key

    def build(self) -> Any:
        missing = [n for n in _required_fields(self.cls) if n not in self.values]
        if missing:
            raise ConfigError(f"missing {', '.join(missing)}", file=self.file, key=self.key)
        hints = typing.get_type_hints(self.cls)
        values: dict[str, Any] = {}
        for k, v in self.values.items():
            tp = hints.get(k)
            if isinstance(v, Mapping) and isinstance(tp, type) and dataclasses.is_dataclass(tp):
                v = _Build(tp, v, self.file, f"{self.key}.{k}")
            values[k] = _finish(v)
        return self.cls(**values)


def _finish(value: Any) -> Any:
    if isinstance(value, _Build):
        return value.build()
    if isinstance(value, tuple):
        return tuple(_finish(v) for v in value)
    return value


def _convert(tp: Any, value: Any, file: str, key: str, item: bool = False) -> Any:
    """``value`` (from TOML) checked against type hint ``tp`` and converted (tuples, enums, tables)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        errors: list[str] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, file, key, item)
            except ConfigError as exc:
                errors.append(exc.reason)
        reason = errors[0] if len(errors) == 1 else f"expected {_type_name(tp)}, got {_describe(value)}"
        raise ConfigError(reason, file=file, key=key)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a table, got {_describe(value)}", file=file, key=key)
        validated = _validate_dataclass(tp, value, file, key)
        return _Build(tp, validated, file, key) if item else validated
    if origin in (tuple, list, frozenset, set):
        if not isinstance(value, list):
            raise ConfigError(f"expected an array, got {_describe(value)}", file=file, key=key)
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"expected an array of {len(args)} items, got {len(value)}", file=file,
                                  key=key)
            pairs = enumerate(zip(args, value, strict=True))
            items = [_convert(a, v, file, f"{key}[{i}]", True) for i, (a, v) in pairs]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(item_tp, v, file, f"{key}[{i}]", True) for i, v in enumerate(value)]
        items = [_finish(v) for v in items]
        return origin(items) if origin is not list else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a table, got {_describe(value)}", file=file, key=key)
        args = typing.get_args(tp)
        key_tp, value_tp = args if len(args) == 2 else (Any, Any)
        return _Entries(
            {
                _convert(key_tp, k, file, f"{key}.{k}"): _convert(value_tp, v, file, f"{key}.{k}", item)
                for k, v in value.items()
            }
        )
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp, value, file, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_describe(value)}", file=file, key=key)
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"expected an integer, got {_describe(value)}", file=file, key=key)
        return value
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"expected a number, got {_describe(value)}", file=file, key=key)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_describe(value)}", file=file, key=key)
        return value
    return value


class _Entries(dict[Any, Any]):
    """Validated entries of a mapping-typed field: merged into the current mapping, not replacing it."""


def _enum(tp: type[enum.Enum], value: Any, file: str, key: str) -> Any:
    if isinstance(value, str):
        try:
            return tp[value.upper()]
        except KeyError:
            pass
    elif not isinstance(value, bool):
        try:
            return tp(value)
        except ValueError:
            pass
    choices = ", ".join(str(m.name).lower() for m in tp)
    raise ConfigError(f"expected one of {choices}, got {_describe(value)}", file=file, key=key)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _apply_overrides(obj: Any, overrides: Mapping[str, Any]) -> Any:
    """``dataclasses.replace`` with tables applied to nested dataclass fields and mapping entries."""
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        changes[key] = _merge(getattr(obj, key), value)
    return dataclasses.replace(obj, **changes)


def _merge(current: Any, value: Any) -> Any:
    if isinstance(value, _Entries) and isinstance(current, Mapping):
        merged = dict(current)
        for k, v in value.items():
            merged[k] = _merge(merged.get(k), v)
        return MappingProxyType(merged)
    if isinstance(value, _Build):
        if current is not None and dataclasses.is_dataclass(current) and not isinstance(current, type):
            return _apply_overrides(current, value.values)
        return value.build()
    if isinstance(value, Mapping) and dataclasses.is_dataclass(current) and not isinstance(current, type):
        return _apply_overrides(current, value)
    if isinstance(value, _Entries):
        return MappingProxyType({k: _finish(v) for k, v in value.items()})
    return value


__all__ = [
    "CanSettings",
    "GnssSettings",
    "ModemSettings",
    "ReportSettings",
    "Settings",
    "UplinkSettings",
    "VehicleSettings",
    "load_config",
    "parse_config",
]
