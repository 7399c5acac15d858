"""The login ICCID: read from the SIM through an emulated modem at start (bounded retries), the configured
fallback with a warning, refusal without any ICCID, ``[modem]`` config; the live service's login carries
the SIM's ICCID to an in-test platform on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from agent.config import ModemSettings, load_config, parse_config
from agent.errors import ConfigError
from agent.peripherals.identity import LoginIdentity, login_identity
from agent.peripherals.modem import Modem, ModemError
from agent.service import AgentService
from tests.agent.test_service import write_config
from tests.peripherals.devices import FakeModem, PtyDevice
from tests.uplink.test_tcp import Platform, until

SIM = "89860000000000000001"
SIM19 = "8944500601234567890"
CONFIGURED = "89861616020014100002"


def modem_settings(link: Path, **kw: object) -> ModemSettings:
    values: dict[str, object] = {"enabled": True, "port": str(link), "iccid_from": "modem",
                                 "timeout_s": 0.3, "attempts": 3, "retry_s": 0.0}
    values.update(kw)
    return ModemSettings(**values)  # type: ignore[arg-type]


def test_the_sims_iccid_wins_over_the_configured_one(tmp_path: Path, devices: list[PtyDevice],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    link = tmp_path / "ttyMODEM"
    devices.append(PtyDevice(link, handler=FakeModem(vendor="quectel", iccid=SIM)))
    with caplog.at_level(logging.INFO):
        identity = login_identity(modem_settings(link), CONFIGURED)
    assert identity == LoginIdentity(SIM, "modem")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "differs" in text and "-67 dBm" in text
    assert SIM not in text and CONFIGURED not in text  # masked: last 4 digits only


def test_a_19_digit_sim_iccid_is_padded_for_the_login(tmp_path: Path, devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyMODEM"
    devices.append(PtyDevice(link, handler=FakeModem(vendor="crsm", iccid=SIM19)))
    assert login_identity(modem_settings(link), None) == LoginIdentity(SIM19 + "F", "modem")


def test_a_modem_that_appears_late_is_found_by_a_later_attempt(tmp_path: Path,
                                                                devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyMODEM"
    sleeps: list[float] = []

    def sleep(s: float) -> None:  # the modem enumerates on USB while the agent waits
        sleeps.append(s)
        if len(sleeps) == 2:
            devices.append(PtyDevice(link, handler=FakeModem(vendor="simcom", iccid=SIM)))

    identity = login_identity(modem_settings(link, retry_s=1.5), None, sleep=sleep)
    assert identity == LoginIdentity(SIM, "modem")
    assert sleeps == [1.5, 1.5]


def test_a_dead_modem_falls_back_to_the_configured_iccid_or_refuses(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    def opener(port: str, baud: int, timeout_s: float) -> Modem:
        calls.append(port)
        raise ModemError(f"modem: cannot open {port}: gone")

    settings = modem_settings(tmp_path / "ttyNONE", attempts=2)
    with caplog.at_level(logging.WARNING):
        identity = login_identity(settings, CONFIGURED, opener=opener, sleep=lambda s: None)
    assert identity == LoginIdentity(CONFIGURED, "config-fallback")
    assert len(calls) == 2
    assert any("uses [vehicle] iccid" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModemError, match="not starting without an ICCID"):
        login_identity(settings, None, opener=opener, sleep=lambda s: None)
    assert len(calls) == 4


def test_iccid_from_config_asks_the_modem_once_and_keeps_the_configured_one(tmp_path: Path) -> None:
    calls: list[str] = []

    def opener(port: str, baud: int, timeout_s: float) -> Modem:
        calls.append(port)
        raise ModemError("gone")

    settings = modem_settings(tmp_path / "ttyNONE", iccid_from="config")
    assert login_identity(settings, CONFIGURED, opener=opener) == LoginIdentity(CONFIGURED, "config")
    assert len(calls) == 1
    assert login_identity(ModemSettings(), None) == LoginIdentity("", "none")
    assert login_identity(ModemSettings(), CONFIGURED) == LoginIdentity(CONFIGURED, "config")


MINIMAL = """
[vehicle]
vin = "LTBXEV00000000001"
{iccid}
[can]
mapping = "m.toml"
{modem}
"""


def config(modem: str = "", iccid: str = "") -> str:
    return MINIMAL.format(modem=modem, iccid=iccid)


def test_modem_config_keys_and_defaults() -> None:
    assert parse_config(config()).modem == ModemSettings()
    m = parse_config(config('[modem]\nenabled = true\nport = "rfc2217://127.0.0.1:7000"\nbaud = 9600')).modem
    assert (m.enabled, m.port, m.baud, m.iccid_from, m.timeout_s, m.attempts) == (
        True, "rfc2217://127.0.0.1:7000", 9600, "modem", 2.0, 3)
    v = parse_config(config(iccid=f'iccid = "{SIM19}"')).vehicle
    assert v.iccid == SIM19 + "F"


@pytest.mark.parametrize(
    ("modem", "key", "reason"),
    [
        ('[modem]\niccid_from = "modem"', "modem.iccid_from", "needs enabled = true"),
        ('[modem]\nenabled = true\niccid_from = "sim"', "modem.iccid_from", "modem or config"),
        ("[modem]\nenabled = 1", "modem.enabled", "true or false"),
        ("[modem]\nbaud = 12", "modem.baud", "must be in"),
        ('[modem]\nport = ""', "modem.port", "device"),
        ("[modem]\nattempts = 0", "modem.attempts", "must be in"),
        ("[modem]\nspeed = 1", "modem.speed", "unknown key"),
    ],
)
def test_bad_modem_config_names_the_key(modem: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config(modem), "agent.toml")
    assert info.value.key == key and reason in info.value.reason and info.value.file == "agent.toml"


def test_the_live_login_carries_the_sims_iccid(tmp_path: Path, devices: list[PtyDevice]) -> None:
    link = tmp_path / "ttyMODEM"
    devices.append(PtyDevice(link, handler=FakeModem(vendor="ublox", iccid=SIM19, urcs=("+CREG: 1,5",))))

    async def main() -> list[object]:
        platform = Platform()
        await platform.start()
        cfg = write_config(tmp_path, platform.port)
        cfg.write_text(cfg.read_text() + f'[modem]\nenabled = true\nport = "{link}"\ntimeout_s = 0.5\n')
        settings = load_config(cfg)
        settings = dataclasses.replace(settings, vehicle=dataclasses.replace(settings.vehicle, iccid=None))
        service = AgentService(settings, messages=iter(()), accelerated=True)
        assert service.identity == LoginIdentity(SIM19 + "F", "modem")
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(10, stop))
        await until(lambda: platform.logins > 0, what="login")
        stop.set()
        await asyncio.wait_for(task, 10)
        await platform.stop()
        return [e for e in platform.events if type(e).__name__ == "VehicleLoggedIn"]

    logins = asyncio.run(main())
    assert logins
    assert logins[0].login.iccid == SIM19 + "F"  # type: ignore[attr-defined]


def test_the_service_refuses_to_start_without_any_iccid(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, None)
    text = cfg.read_text().replace('iccid = "89860000000000000001"\n', "")
    cfg.write_text(text + f'[modem]\nenabled = true\nport = "{tmp_path / "ttyNONE"}"\ntimeout_s = 0.2\n'
                   "attempts = 2\nretry_s = 0.0\n")
    with pytest.raises(ModemError, match="not starting without an ICCID"):
        AgentService(load_config(cfg))
    assert not (tmp_path / "outbox.db").exists()  # refused before anything was opened
