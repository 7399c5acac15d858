"""The MQTT uplink against a private Mosquitto (tests/uplink/mosquitto.py): realtime and backlog in order
with QoS 1, outbox emptied only by PUBACKs, broker killed and restarted, downlink through the broker,
MQTT 5 with a JSON mirror, TLS with a generated certificate."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from agent.protocol import wire
from agent.protocol.codec import decode_frame, encode_frame
from agent.protocol.model import (
    Command,
    Edition,
    Encryption,
    Frame,
    Parameter,
    ParameterId,
    ParameterQuery,
    ParameterQueryReply,
    ParameterSet,
    RealtimeReport,
    ResponseFlag,
)
from agent.protocol.session import (
    ClientTiming,
    PlatformConfig,
    PlatformSession,
    ReportReceived,
    TerminalConfig,
    TerminalSession,
    VehicleLoggedIn,
    VehicleLoggedOut,
)
from agent.store import Outbox
from agent.uplink.mqtt import MqttConfig, MqttUplink
from agent.uplink.tcp import AgentHandler, OutboxCodec, TlsConfig
from tests.uplink.mosquitto import Broker, broker, require_mosquitto
from tests.uplink.test_tcp_tls import make_pki

__all__ = ["broker"]  # the fixture

VIN = "LTBXEV00000000001"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMING = ClientTiming(heartbeat_interval=None, login_timeout=5.0, reply_timeout=5.0, login_retry_interval=1.0)
pytestmark = pytest.mark.timeout(60)


class Subscriber:
    """A platform-side MQTT client collecting every upstream message of the VIN (QoS 1)."""

    def __init__(self, port: int, *, tls_ca: Path | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"platform-{time.monotonic_ns()}")
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = self._connected
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscriber not subscribed"

    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"gbt32960/{VIN}/upstream/#", qos=1)

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def frames(self, kind: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.messages if t == f"gbt32960/{VIN}/upstream/{kind}"]

    def times(self, kind: str) -> list[datetime]:
        return [decode_frame(p).body.time for p in self.frames(kind)]  # type: ignore[union-attr]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_uplink(tmp_path: Path, port: int, **kw: Any) -> MqttUplink:
    store = Outbox(tmp_path / "outbox.db", commit_interval_s=0.1)
    handler = AgentHandler({int(ParameterId.REPORT_PERIOD): 10, int(ParameterId.HEARTBEAT_PERIOD): 30})
    session = TerminalSession(TerminalConfig(VIN, Edition.E2016, iccid="8986" + "0" * 16, timing=TIMING),
                              wallclock=lambda: datetime.now(UTC), serial_store=store.serial_store(),
                              handler=handler, codec=OutboxCodec())
    cfg = MqttConfig("127.0.0.1", port, reconnect_min_s=1.0, reconnect_max_s=2.0, logout_wait_s=2.0, **kw)
    return MqttUplink(session, store, cfg, handler=handler)


@contextlib.asynccontextmanager
async def running(uplink: MqttUplink) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        uplink.store.close()


def data_unit(t: datetime) -> bytes:
    frame = encode_frame(Frame(Edition.E2016, Command.REALTIME, ResponseFlag.COMMAND, VIN, Encryption.NONE,
                               RealtimeReport(t)))
    return wire.parse_frame(frame).data


async def until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


def submit(uplink: MqttUplink, i: int) -> None:
    t = T0 + timedelta(seconds=i)
    assert uplink.submit(2016, Command.REALTIME, VIN, data_unit(t), t) is not None


def secs(*ranges: range) -> list[datetime]:
    return [T0 + timedelta(seconds=i) for r in ranges for i in r]


def first_occurrences(times: list[datetime]) -> list[datetime]:
    return list(dict.fromkeys(times))


@pytest.mark.parametrize("protocol", [4, 5])
def test_backlog_as_reissue_then_realtime_in_order(tmp_path: Path, broker: Broker, protocol: int) -> None:
    async def main() -> None:
        sub = Subscriber(broker.port)
        uplink = make_uplink(tmp_path, broker.port, protocol=protocol, reissue_rate=100.0,
                             json_mirror=protocol == 5)
        for i in range(10):  # collected before the link: backlog
            submit(uplink, i)
        assert uplink.backlog == 10
        async with running(uplink):
            await until(lambda: uplink.session.logged_in, what="login (PUBACK of vlogin)")
            for i in range(10, 15):
                submit(uplink, i)
                await asyncio.sleep(0.02)
            await until(lambda: len(sub.frames("reinfo")) == 10, what="backlog drained")
            t = T0 + timedelta(seconds=15)  # an alarm-window record (stored as 0x03) while online
            assert uplink.submit(2016, Command.REISSUE, VIN, data_unit(t), t) is not None
            await until(lambda: uplink.store.pending() == 0, what="every record PUBACKed")
            await until(lambda: len(sub.frames("reinfo")) == 11 and len(sub.frames("info")) == 5)
        await until(lambda: len(sub.frames("vlogout")) == 1, what="logout published")
        sub.close()
        assert len(sub.frames("vlogin")) == 1
        assert sub.times("reinfo") == secs(range(10), range(15, 16))  # original order, original times
        assert sub.times("info") == secs(range(10, 15))
        assert all(decode_frame(p).command == Command.REISSUE for p in sub.frames("reinfo"))
        assert uplink.stats.delivered == 16 and uplink.stats.realtime_sent == 5
        assert uplink.stats.reissue_sent == 11 and uplink.stats.link == "stopped"
        if protocol == 5:
            mirror = [json.loads(p) for p in sub.frames("info/json")]
            assert [m["vin"] for m in mirror] == [VIN] * 5

    asyncio.run(asyncio.wait_for(main(), 45))


def test_records_leave_the_outbox_only_on_puback(tmp_path: Path, broker: Broker) -> None:
    async def main() -> None:
        uplink = make_uplink(tmp_path, broker.port)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGSTOP)  # the broker stops answering; the TCP link stays up
            try:
                for i in range(5):
                    submit(uplink, i)
                assert uplink.stats.realtime_sent == 5
                await asyncio.sleep(0.5)
                assert uplink.store.pending() == 5 and uplink.stats.delivered == 0  # published, no PUBACK
            finally:
                broker.proc.send_signal(signal.SIGCONT)
            await until(lambda: uplink.store.pending() == 0, what="PUBACKs after the broker resumed")
            assert uplink.stats.delivered == 5 and uplink.stats.reissue_sent == 0

    asyncio.run(asyncio.wait_for(main(), 30))


def test_broker_killed_and_restarted_nothing_lost(tmp_path: Path, broker: Broker) -> None:
    async def main() -> None:
        sub = Subscriber(broker.port)
        uplink = make_uplink(tmp_path, broker.port, reissue_rate=40.0)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            for i in range(10):
                submit(uplink, i)
                await asyncio.sleep(0.01)
            await until(lambda: uplink.store.pending() == 0)
            await until(lambda: len(sub.frames("info")) == 10)
            sub.close()
            broker.kill()  # outage: no clean shutdown, the broker forgets every session
            await until(lambda: not uplink.session.logged_in, what="link loss noticed")
            for i in range(10, 40):
                submit(uplink, i)
            assert uplink.store.pending() == 30  # nothing leaves without a PUBACK
            await asyncio.sleep(0.3)
            # restart on the same port; the subscriber is back before the uplink's first retry (>= 1 s)
            broker.start()
            sub = Subscriber(broker.port)
            await until(lambda: uplink.session.logged_in, what="login after the restart")
            await until(lambda: len(sub.frames("reinfo")) >= 5, what="drain under way")
            assert broker.proc is not None
            broker.proc.send_signal(signal.SIGSTOP)  # PUBACKs stop: the next reissues stay in flight
            await until(lambda: uplink.stats.published - uplink.stats.acked >= 3, what="reissues in flight")
            in_flight = len(uplink._inflight_ids)
            broker.kill()  # again, in the middle of the drain, with reissues in flight
            sub.close()
            await until(lambda: not uplink.session.logged_in)
            broker.start()
            sub2 = Subscriber(broker.port)
            for i in range(40, 45):
                await until(lambda: uplink.session.logged_in)
                submit(uplink, i)
                await asyncio.sleep(0.05)
            await until(lambda: uplink.store.pending() == 0, timeout=20, what="backlog drained")
            await until(lambda: len(set(sub.times("reinfo") + sub2.times("reinfo"))) == 30)
        sub2.close()
        reissue = first_occurrences(sub.times("reinfo") + sub2.times("reinfo"))
        assert reissue == secs(range(10, 40))  # every record collected while down, in original order
        realtime = sub2.times("info")
        assert len(realtime) == len(set(realtime)) and set(realtime) == set(secs(range(40, 45)))
        assert uplink.stats.disconnects >= 2 and in_flight >= 3
        assert uplink.stats.reissue_sent == 30  # the in-flight ones were resent by paho, not drained again

    asyncio.run(asyncio.wait_for(main(), 50))


def test_reconnect_now_and_after_a_pause(tmp_path: Path, broker: Broker) -> None:
    async def main() -> None:
        sub = Subscriber(broker.port)
        uplink = make_uplink(tmp_path, broker.port)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            uplink.reconnect()  # 0x82 reset
            await until(lambda: uplink.stats.connects == 2 and uplink.session.logged_in, what="relogin")
            uplink.reconnect(1.0)  # 0x82 disconnect: stay away for a while
            await until(lambda: not uplink.session.logged_in)
            for i in range(3):
                submit(uplink, i)
            await asyncio.sleep(0.5)
            assert not uplink.session.logged_in and uplink.store.pending() == 3
            await until(lambda: uplink.stats.connects == 3 and uplink.session.logged_in, what="back")
            await until(lambda: uplink.store.pending() == 0)
        await until(lambda: len(sub.frames("reinfo")) == 3)
        sub.close()
        assert sub.times("reinfo") == secs(range(3)) and len(sub.frames("vlogin")) == 3

    asyncio.run(asyncio.wait_for(main(), 30))


def _downlink(frame: Frame) -> bytes:
    return encode_frame(frame)


def test_downlink_query_and_set_through_the_broker(tmp_path: Path, broker: Broker) -> None:
    async def main() -> None:
        sub = Subscriber(broker.port)
        uplink = make_uplink(tmp_path, broker.port)
        changed: list[tuple[Parameter, ...]] = []
        uplink.on_parameters = changed.append
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            t = datetime.now(UTC).replace(microsecond=0)
            query = Frame(Edition.E2016, Command.PARAMETER_QUERY, ResponseFlag.COMMAND, VIN, Encryption.NONE,
                          ParameterQuery(t, (ParameterId.REPORT_PERIOD, ParameterId.HEARTBEAT_PERIOD)))
            sub.publish(uplink.dnstream, _downlink(query))
            await until(lambda: len(sub.frames("response")) == 1, what="query answered")
            reply = decode_frame(sub.frames("response")[0])
            assert reply.command == Command.PARAMETER_QUERY and reply.response == ResponseFlag.SUCCESS
            assert isinstance(reply.body, ParameterQueryReply)
            assert {int(p.id): p.value for p in reply.body.items} == {0x02: 10, 0x09: 30}
            new = (Parameter(ParameterId.REPORT_PERIOD, 5),)
            setting = Frame(Edition.E2016, Command.PARAMETER_SET, ResponseFlag.COMMAND, VIN, Encryption.NONE,
                            ParameterSet(t + timedelta(seconds=1), new))
            sub.publish(uplink.dnstream, _downlink(setting))
            await until(lambda: len(sub.frames("response")) == 2, what="set answered")
            ack = wire.parse_frame(sub.frames("response")[1])
            assert ack.command == Command.PARAMETER_SET and ack.response == ResponseFlag.SUCCESS
            assert changed == [new]
            assert uplink.store.load_parameters()[int(ParameterId.REPORT_PERIOD)] == 5
        sub.close()

    asyncio.run(asyncio.wait_for(main(), 30))


class MqttPlatform(Subscriber):
    """A GB/T 32960 platform behind the broker: ``PlatformSession`` fed from the upstream topics, its
    replies published on dnstream (``platform_replies`` mode)."""

    def __init__(self, port: int) -> None:
        self.session = PlatformSession(PlatformConfig(reply_realtime_success=True, idle_factor=100),
                                       wallclock=lambda: datetime.now(UTC))
        self.session.connection_made(time.monotonic())
        self.events: list[object] = []
        super().__init__(port)

    def _message(self, client: Any, userdata: Any, msg: Any) -> None:
        super()._message(client, userdata, msg)
        if msg.topic.endswith("/json"):
            return
        self.events += self.session.receive_data(bytes(msg.payload), time.monotonic())
        out = self.session.data_to_send()
        if out:
            client.publish(f"gbt32960/{VIN}/dnstream", out, qos=1)


def test_platform_replies_mode_login_and_acks_from_a_platform_behind_the_broker(tmp_path: Path,
                                                                                broker: Broker) -> None:
    async def main() -> None:
        platform = MqttPlatform(broker.port)
        uplink = make_uplink(tmp_path, broker.port, platform_replies=True)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in, what="login reply from the platform")
            for i in range(3):
                submit(uplink, i)
            await until(lambda: uplink.store.pending() == 0)
            await until(lambda: sum(isinstance(e, ReportReceived) for e in platform.events) == 3)
            await until(lambda: uplink.session.pending_uploads == 0, what="platform acks via dnstream")
        platform.close()
        assert any(isinstance(e, VehicleLoggedIn) for e in platform.events)
        assert any(isinstance(e, VehicleLoggedOut) for e in platform.events)  # logout answered
        assert uplink.stats.link == "stopped"

    asyncio.run(asyncio.wait_for(main(), 30))


def test_time_calibration_and_the_connected_hook_with_a_platform_behind_the_broker(tmp_path: Path,
                                                                                   broker: Broker) -> None:
    """``calibrate_time`` in ``platform_replies`` mode: 0x08 after the login, answered on dnstream, the
    offset measured; ``on_connected`` runs on the new link right behind the login."""
    async def main() -> None:
        platform = MqttPlatform(broker.port)
        uplink = make_uplink(tmp_path, broker.port, platform_replies=True, calibrate_time=True)
        connected: list[bool] = []
        uplink.on_connected = lambda: connected.append(uplink.session.logged_in)
        async with running(uplink):
            await until(lambda: uplink.stats.clock_offset_s is not None, what="0x08 reply via dnstream")
        platform.close()
        assert connected == [False]  # once, after the login went out and before its reply
        assert uplink.stats.clock_offset_s is not None and abs(uplink.stats.clock_offset_s) <= 1.5

    asyncio.run(asyncio.wait_for(main(), 30))


def test_key_exchange_over_mqtt_switches_the_data_unit_key(tmp_path: Path, broker: Broker) -> None:
    """2025 0x0B on dnstream: the new key is used for the next reports (it was ignored over MQTT)."""
    import os

    from agent.protocol import crypto
    from agent.protocol.model import KeyExchange

    async def main() -> None:
        sub = Subscriber(broker.port)
        store = Outbox(tmp_path / "outbox.db", commit_interval_s=0.1)
        session = TerminalSession(
            TerminalConfig(VIN, Edition.E2025, iccid="8986" + "0" * 16, timing=TIMING, packs_per_bms=(1,),
                           pack_codes=("P" * 24,)),
            wallclock=lambda: datetime.now(UTC), serial_store=store.serial_store(), codec=OutboxCodec())
        uplink = MqttUplink(session, store, MqttConfig("127.0.0.1", broker.port, logout_wait_s=2.0))
        key = os.urandom(16)
        now = datetime.now(UTC)
        kx = KeyExchange(Encryption.SM4, key, now - timedelta(minutes=1), now + timedelta(days=1))
        async with running(uplink):
            await until(lambda: session.logged_in, what="login (PUBACK)")
            sub.publish(uplink.dnstream, encode_frame(Frame(Edition.E2025, Command.KEY_EXCHANGE,
                                                            ResponseFlag.COMMAND, VIN, Encryption.NONE, kx)))
            await until(lambda: isinstance(session.codec, OutboxCodec) and session.codec.cipher is not None,
                        what="new key in use")
            t = T0
            frame = encode_frame(Frame(Edition.E2025, Command.REALTIME, ResponseFlag.COMMAND, VIN,
                                       Encryption.NONE, RealtimeReport(t)))
            uplink.submit(2025, Command.REALTIME, VIN, wire.parse_frame(frame).data, t)
            await until(lambda: len(sub.frames("info")) == 1, what="report published")
        sub.close()
        sent = wire.parse_frame(sub.frames("info")[0])
        assert sent.encryption == Encryption.SM4
        plain = decode_frame(sub.frames("info")[0], cipher=crypto.cipher_for(Encryption.SM4, key=key))
        assert isinstance(plain.body, RealtimeReport) and plain.body.time == t

    asyncio.run(asyncio.wait_for(main(), 30))


def test_tls_with_a_generated_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    b = Broker(require_mosquitto(), tmp_path, tls={
        "cafile": str(pki["ca"]), "certfile": str(pki["server"]),
        "keyfile": str(tmp_path / "server.key")})
    b.start()
    try:
        async def main() -> None:
            sub = Subscriber(b.port, tls_ca=pki["ca"])
            der = x509.load_pem_x509_certificate(pki["server"].read_bytes()).public_bytes(
                serialization.Encoding.DER)
            tls = TlsConfig(ca_file=pki["ca"], server_hostname="localhost",  # verified name != host
                            pin_sha256=hashlib.sha256(der).hexdigest())
            uplink = make_uplink(tmp_path, b.port, tls=tls)
            async with running(uplink):
                await until(lambda: uplink.session.logged_in, what="login over TLS")
                submit(uplink, 0)
                await until(lambda: uplink.store.pending() == 0)
            await until(lambda: len(sub.frames("info")) == 1)
            sub.close()
            # a CA that did not sign the broker's certificate: no connection, the record stays
            (tmp_path / "wrong").mkdir()
            wrong = make_uplink(tmp_path / "wrong", b.port, tls=TlsConfig(ca_file=pki["other"]))
            submit(wrong, 1)
            (tmp_path / "pin").mkdir()  # the right CA but another pinned certificate: dropped after CONNACK
            bad_pin = TlsConfig(ca_file=pki["ca"], pin_sha256="00" * 32)
            pinned = make_uplink(tmp_path / "pin", b.port, tls=bad_pin)
            async with running(wrong), running(pinned):
                await asyncio.sleep(1.5)
                for u in (wrong, pinned):
                    assert not u.session.logged_in and u.stats.connects == 0 and u.stats.connect_failures >= 1
                assert wrong.store.pending() == 1

        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        b.kill()


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_mosquitto_fails_under_ci_else_skips(monkeypatch: pytest.MonkeyPatch, ci: str,
                                                     outcome: type[BaseException]) -> None:
    from tests.uplink import mosquitto

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(mosquitto, "_CANDIDATES", ("/nonexistent/mosquitto",))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        mosquitto.require_mosquitto()


def test_mutual_tls_client_certificate_required(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    b = Broker(require_mosquitto(), tmp_path, tls={
        "cafile": str(pki["ca"]), "certfile": str(pki["server"]), "keyfile": str(tmp_path / "server.key"),
        "require_certificate": "true"})
    b.start()
    try:
        async def main() -> None:
            (tmp_path / "a").mkdir()
            (tmp_path / "b").mkdir()
            with_cert = make_uplink(tmp_path / "a", b.port, tls=TlsConfig(
                ca_file=pki["ca"], cert_file=pki["client"], key_file=tmp_path / "client.key"))
            async with running(with_cert):
                await until(lambda: with_cert.session.logged_in, what="login with a client certificate")
            without = make_uplink(tmp_path / "b", b.port, tls=TlsConfig(ca_file=pki["ca"]))
            async with running(without):
                await asyncio.sleep(1.5)
                assert not without.session.logged_in and without.stats.connects == 0

        asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        b.kill()
