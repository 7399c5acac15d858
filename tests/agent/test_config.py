"""agent.config: TOML → validated settings; errors name the file and the dotted key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import GNSS_NONE, load_config, parse_config
from agent.errors import ConfigError
from agent.protocol.model import CoordinateSystem, Edition

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "agent.toml"

MINIMAL = """
[vehicle]
vin = "LTBXEV00000000001"
[can]
mapping = "mapping.toml"
"""


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "/etc/tbox/agent.toml")
    return info.value


def test_minimal_config_gets_the_documented_defaults() -> None:
    s = parse_config(MINIMAL, "/etc/tbox/agent.toml")
    assert s.vehicle.vin == "LTBXEV00000000001"
    assert s.vehicle.edition is Edition.E2016
    assert s.can.mapping == Path("/etc/tbox/mapping.toml")  # relative to the config file
    assert s.can.source_config() == {"interface": "socketcan", "channel": "can0", "bitrate": 500_000}
    assert s.gnss.source == GNSS_NONE and not s.gnss.enabled
    assert s.gnss.coordinate_system is CoordinateSystem.WGS84
    r = s.report
    assert (r.normal_period_s, r.alarm_period_s, r.sampling_period_s, r.alarm_window_s) == (10, 1, 1.0, 30)
    assert s.uplink.host is None and s.uplink.port is None


def test_the_example_config_loads_and_points_at_the_repository_mapping() -> None:
    s = load_config(EXAMPLE)
    assert s.can.mapping == REPO / "dbc" / "tbox_ev.toml"
    assert s.vehicle.edition in (Edition.E2016, Edition.E2025)


def test_settings_are_frozen() -> None:
    s = parse_config(MINIMAL, "x.toml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.vehicle.vin = "X"  # type: ignore[misc]


def test_can_source_config_passes_options_through() -> None:
    s = parse_config(
        MINIMAL.replace('mapping = "mapping.toml"', 'mapping = "m.toml"\ninterface = "virtual"\n'
                        'channel = "demo"\nfd = true\ndata_bitrate = 2000000\nbackoff_max = 10.0\n'
                        "[can.options]\ntcp_tune = true"),
        "x.toml",
    )
    cfg = s.can.source_config()
    assert cfg["interface"] == "virtual" and cfg["channel"] == "demo" and cfg["fd"] is True
    assert cfg["data_bitrate"] == 2_000_000 and cfg["options"] == {"tcp_tune": True}
    assert cfg["backoff_max"] == 10.0
    from agent.canbus.source import CanConfig

    assert CanConfig.from_mapping(cfg).channel == "demo"


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        ('[vehicle]\nvin = "SHORT"\n[can]\nmapping="m"', "vehicle.vin", "17 characters"),
        ('[vehicle]\nvin = "LTBXEV0000000000I"\n[can]\nmapping="m"', "vehicle.vin", "without I"),
        ('[vehicle]\nvin = 12\n[can]\nmapping="m"', "vehicle.vin", "expected a string, got integer 12"),
        ("[can]\nmapping='m'", "vehicle.vin", "required"),
        ('[vehicle]\nvin = "LTBXEV00000000001"', "can.mapping", "required"),
        (MINIMAL + "colour = 'red'", "can.colour", "unknown key"),
        (MINIMAL + "[weather]\nsunny = true", "weather", "unknown key"),
        (MINIMAL.replace("[can]", '[can]\nbitrate = "fast"'), "can.bitrate", "positive integer"),
        (MINIMAL.replace("[can]", "[can]\ninterface = 'pigeon'"), "can.interface", "unknown interface"),
        (MINIMAL.replace('1"\n', '1"\nedition = 2020\n'), "vehicle.edition", "2016 or 2025"),
        (MINIMAL.replace('1"\n', '1"\niccid = "123"\n'), "vehicle.iccid", "20 characters"),
        (MINIMAL.replace('1"\n', '1"\nedition = 2025\npack_codes = ["ABC"]\n'), "vehicle.pack_codes", "24"),
        (MINIMAL + "[report]\nnormal_period_s = 60", "report.normal_period_s", "[1, 30]"),
        (MINIMAL + "[report]\nnormal_period_s = 5\nalarm_period_s = 6", "report.alarm_period_s", "≤"),
        (MINIMAL + "[report]\nsampling_period_s = 2.0", "report.sampling_period_s", "[0.05, 1.0]"),
        (MINIMAL + "[report]\nsampling_period_s = 0.3", "report.sampling_period_s", "divide 1 s"),
        (MINIMAL + "[gnss]\nsource = 'serial:'", "gnss.source", "needs a device"),
        (MINIMAL + "[gnss]\ncoordinate_system = 'mars'", "gnss.coordinate_system", "wgs84"),
        (MINIMAL + "[uplink]\nport = 70000", "uplink.port", "[1, 65535]"),
        (MINIMAL + "[uplink]\ntransport = 'pigeon'", "uplink.transport", "tcp or mqtt"),
        ("alarms = 3\n" + MINIMAL, "alarms", "expected a table"),
        (MINIMAL + "[uplink]\nreconnect_min_s = 90", "uplink.reconnect_min_s", "reconnect_max_s"),
        (MINIMAL + "[uplink]\nbarrier_after = -1", "uplink.barrier_after", "[0, 4000]"),
        (MINIMAL + "[upgrade]\nschemes = ['gopher']", "upgrade.schemes", "unsupported scheme"),
        (MINIMAL + "[upgrade]\ninstall_command = 'pip install'", "upgrade.install_command", "array"),
    ],
)
def test_errors_name_file_key_and_reason(snippet: str, key: str, words: str) -> None:
    err = _err(snippet)
    assert err.file == "/etc/tbox/agent.toml"
    assert err.key == key
    assert words in err.reason
    assert str(err).startswith(f"/etc/tbox/agent.toml:{key}: ")


def test_toml_syntax_errors_give_line_and_column() -> None:
    err = _err('[vehicle]\nvin = "LTBXEV00000000001"\nbroken = = 3\n')
    assert err.key is None
    assert "line 3" in err.reason and "column" in err.reason


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    cfg = tmp_path / "sub" / "agent.toml"
    cfg.write_text(MINIMAL + "[gnss]\nsource = 'track.nmea'\n[uplink]\nca_file = '/abs/ca.pem'\n")
    s = load_config(cfg)
    assert s.can.mapping == tmp_path / "sub" / "mapping.toml"
    assert s.gnss.source == str(tmp_path / "sub" / "track.nmea")
    assert s.uplink.ca_file == Path("/abs/ca.pem")


def test_serial_gnss_source_is_kept_verbatim() -> None:
    s = parse_config(MINIMAL + "[gnss]\nsource = 'serial:/dev/ttyS0:9600'\n", "x.toml")
    assert s.gnss.source == "serial:/dev/ttyS0:9600" and s.gnss.enabled


def test_with_edition_switches_and_validates() -> None:
    s = parse_config(MINIMAL, "x.toml")
    assert s.with_edition(2025).vehicle.edition is Edition.E2025
    with pytest.raises(ConfigError, match="2016 or 2025"):
        s.with_edition(2017)


def test_link_timing_and_upgrade_keys() -> None:
    s = parse_config(MINIMAL + """
[uplink]
host = "p"
port = 1
max_inflight = 500
reconnect_min_s = 0.5
hold_s = 60
logout_wait_s = 2
connect_timeout_s = 3
session_expiry_s = 3600
barrier_after = 0
[upgrade]
public_key_file = "maker.pub"
install_command = ["pip", "install", "{payload}"]
schemes = ["https"]
""", "/etc/tbox/agent.toml")
    up = s.uplink
    assert (up.max_inflight, up.reconnect_min_s, up.hold_s, up.logout_wait_s, up.connect_timeout_s,
            up.session_expiry_s, up.barrier_after) == (500, 0.5, 60.0, 2.0, 3.0, 3600, 0)
    assert s.upgrade.public_key_file == Path("/etc/tbox/maker.pub")
    assert s.upgrade.install_command == ("pip", "install", "{payload}") and s.upgrade.schemes == ("https",)
    default = parse_config(MINIMAL, "x.toml")
    assert default.uplink.max_inflight is None and default.uplink.barrier_after == 100
    assert default.upgrade.public_key_file is None
