"""The live service over MQTT: simulator (accelerated) → pipeline → outbox → ``MqttUplink`` → a private
Mosquitto → a subscriber on ``gbt32960/{vin}/upstream/#``; and the ``[uplink]`` MQTT keys."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config import load_config, parse_config
from agent.errors import ConfigError
from agent.protocol.codec import decode_frame
from agent.protocol.model import Command
from agent.service import AgentService
from agent.store import Outbox
from agent.uplink.mqtt import MqttUplink
from sim.run import simulate
from tests.agent.test_service import write_config
from tests.uplink.mosquitto import Broker, broker
from tests.uplink.test_mqtt import VIN, Subscriber, until

__all__ = ["broker"]  # the fixture
pytestmark = pytest.mark.timeout(60)


def test_simulated_drive_reaches_the_broker_and_the_outbox_empties(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path, broker.port, normal_period=1)
    text = cfg.read_text().replace("[uplink]\n", '[uplink]\ntransport = "mqtt"\nreconnect_max_s = 2\n')
    (tmp_path / "mqtt.pw").write_text("unused-by-an-anonymous-broker\n")
    text = text.replace("[uplink]\n", '[uplink]\nusername = "tbox"\npassword_file = "mqtt.pw"\n')
    cfg.write_text(text)
    settings = load_config(cfg)
    assert settings.uplink.transport == "mqtt"

    async def main() -> tuple[int, int]:
        sub = Subscriber(broker.port)
        try:
            start = datetime.now(UTC).replace(microsecond=0)
            messages = list(simulate(seconds=60, start_utc=start))
            service = AgentService(settings, messages=messages, accelerated=True)
            uplink = service.uplink
            assert isinstance(uplink, MqttUplink)
            assert uplink.config.password == "unused-by-an-anonymous-broker"
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(15, stop))
            await until(lambda: uplink.session.logged_in, what="login through the broker")
            # the feed ends when the simulation does (then the pipeline's finish); every record PUBACKed
            await until(lambda: service.stats.messages == len(messages), timeout=10, what="simulation fed")
            await asyncio.sleep(0.1)
            await until(lambda: service.stats.reports > 0 and uplink.store.pending() == 0
                        and uplink.backlog == 0, timeout=8, what="reports delivered")
            reports = service.stats.reports
            await until(lambda: len(sub.frames("info")) + len(sub.frames("reinfo")) >= reports, timeout=5,
                        what="frames at the subscriber")
            stop.set()
            stats = await asyncio.wait_for(task, 10)
            assert stats.reports == reports  # nothing new after the wait
            info, reinfo = sub.frames("info"), sub.frames("reinfo")
            assert len(sub.frames("vlogin")) >= 1 and uplink.stats.logins >= 1
            assert stats.realtime > 0 and len(info) > 0
            times = []
            for payload in info + reinfo:
                frame = decode_frame(payload)
                assert frame.vin == VIN
                assert frame.command in (Command.REALTIME, Command.REISSUE)
                times.append(frame.body.time)  # type: ignore[union-attr]
            assert len(times) == len(set(times)) == stats.reports  # every report once
            assert [decode_frame(p).command for p in info] == [Command.REALTIME] * len(info)
            return len(info), len(reinfo)
        finally:
            sub.close()

    asyncio.run(asyncio.wait_for(main(), 45))
    # the outbox ends empty (reopened after the service closed it)
    store = Outbox(tmp_path / "outbox.db")
    try:
        assert store.pending() == 0
    finally:
        store.close()


MINIMAL = """
[vehicle]
vin = "LTBXEV00000000001"
[can]
mapping = "mapping.toml"
[uplink]
"""


FILE = "/etc/tbox/agent.toml"


def test_mqtt_keys_defaults_and_values() -> None:
    up = parse_config(MINIMAL + 'transport = "mqtt"\nhost = "broker.example"\n', FILE).uplink
    assert (up.transport, up.host, up.port, up.mqtt_protocol, up.client_id, up.username) == (
        "mqtt", "broker.example", 1883, 4, None, None)
    assert (up.password_file, up.topic_prefix, up.json_mirror, up.platform_replies, up.keepalive_s) == (
        None, "gbt32960", False, False, 30)
    tls = parse_config(MINIMAL + 'transport = "mqtt"\nhost = "b"\ntls = true\n', FILE).uplink
    assert tls.port == 8883
    tcp = parse_config(MINIMAL + 'host = "b"\n', "/etc/tbox/agent.toml").uplink
    assert tcp.port is None  # no default port for TCP
    up = parse_config(MINIMAL + """transport = "mqtt"
host = "b"
port = 1884
mqtt_protocol = 5
client_id = "car-1"
username = "car"
password_file = "secrets/pw"
topic_prefix = "fleet/gbt"
json_mirror = true
platform_replies = true
keepalive_s = 60
""", "/etc/tbox/agent.toml").uplink
    assert (up.port, up.mqtt_protocol, up.client_id, up.username, up.password_file) == (
        1884, 5, "car-1", "car", Path("/etc/tbox/secrets/pw"))
    assert (up.topic_prefix, up.json_mirror, up.platform_replies, up.keepalive_s) == (
        "fleet/gbt", True, True, 60)


@pytest.mark.parametrize(
    ("line", "key", "words"),
    [
        ("mqtt_protocol = 3", "uplink.mqtt_protocol", "4 (MQTT 3.1.1) or 5"),
        ("mqtt_protocol = '5'", "uplink.mqtt_protocol", "an integer"),
        ("client_id = ''", "uplink.client_id", "1 to 65535 bytes"),
        ("client_id = 7", "uplink.client_id", "a string"),
        ("username = 1", "uplink.username", "a string"),
        ("password_file = 'pw'", "uplink.password_file", "needs a username"),
        ("topic_prefix = 'a/#'", "uplink.topic_prefix", "without wildcards"),
        ("topic_prefix = '/gbt'", "uplink.topic_prefix", "leading/trailing"),
        ("topic_prefix = ''", "uplink.topic_prefix", "without wildcards"),
        ("json_mirror = 'yes'", "uplink.json_mirror", "true or false"),
        ("platform_replies = 1", "uplink.platform_replies", "true or false"),
        ("keepalive_s = 0", "uplink.keepalive_s", "[5, 65535]"),
        ("keepalive_s = 1.5", "uplink.keepalive_s", "an integer"),
    ],
)
def test_mqtt_keys_bad_values_name_the_key(line: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + f'transport = "mqtt"\nhost = "b"\n{line}\n', "/etc/tbox/agent.toml")
    assert info.value.key == key
    assert words in info.value.reason


def test_an_unreadable_password_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 1883)
    cfg.write_text(cfg.read_text().replace(
        "[uplink]\n", '[uplink]\ntransport = "mqtt"\nusername = "u"\npassword_file = "missing.pw"\n'))
    with pytest.raises(ConfigError) as info:
        AgentService(load_config(cfg))
    assert info.value.key == "uplink.password_file"
    assert "FileNotFoundError" in info.value.reason
