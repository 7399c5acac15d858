"""The TCP uplink against an in-test platform (``PlatformSession`` on loopback): login, realtime, outage
and recovery as reissue, silent platform, error replies, flapping link, half-open TCP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.protocol import wire
from agent.protocol.codec import encode_frame
from agent.protocol.model import (
    Command,
    Edition,
    Encryption,
    Frame,
    Parameter,
    ParameterId,
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
)
from agent.store import Outbox
from agent.uplink.tcp import OutboxCodec, TcpUplink, TlsConfig, UplinkConfig

VIN = "LTBXEV00000000001"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = ClientTiming(heartbeat_interval=0.3, login_timeout=1.0, reply_timeout=0.3, login_retry_interval=0.3,
                    login_backoff=1.0, resend_interval=0.1, heartbeat_misses=3)


class Platform:
    """A minimal GB/T 32960 platform: ``PlatformSession`` per connection, records what it receives.

    ``mode``: "ok" (silent on success, Annex B), "error" (every upload answered with flag 0x02),
    ``deafen()``: the current connections stop reading and answering, sockets kept open (half-open from
    the terminal's view); new connections are served normally.
    """

    def __init__(self, ssl_context: object = None, *, cipher: object = None, verifier: object = None) -> None:
        self.mode = "ok"
        self.skew_s = 0.0  # the platform's clock runs this far ahead
        self.activation_result: object = None  # the answer to a 2025 activation (None: none)
        self.received: list[tuple[int, datetime]] = []
        self.logins = 0
        self.port = 0
        self.ssl = ssl_context
        self.cipher = cipher
        self.verifier = verifier
        self.verified: list[bool | None] = []
        self.encryption_seen: set[int] = set()  # encryption bytes of the uploads received
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._deaf: set[asyncio.StreamWriter] = set()
        self.links: list[tuple[PlatformSession, asyncio.StreamWriter]] = []
        self.events: list[object] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._conn, "127.0.0.1", self.port, ssl=self.ssl)  # type: ignore[arg-type]
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and abort every connection (RST, no logout)."""
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()

    def deafen(self) -> None:
        self._deaf |= self._writers

    def downlink(self, send: Callable[[PlatformSession, float], object]) -> None:
        """Issue a downlink command on the newest connection (``send(session, now)``)."""
        session, writer = self.links[-1]
        send(session, asyncio.get_running_loop().time())
        writer.write(session.data_to_send())

    def drop_connections(self) -> None:
        for w in list(self._writers):
            w.transport.abort()

    def times(self, command: int) -> list[datetime]:
        return [t for c, t in self.received if c == command]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        session = PlatformSession(PlatformConfig(heartbeat_interval=0.3, idle_factor=100),
                                  wallclock=lambda: datetime.now(UTC) + timedelta(seconds=self.skew_s),
                                  cipher=self.cipher,  # type: ignore[arg-type]
                                  verifier=self.verifier, edition=Edition.E2025,  # type: ignore[arg-type]
                                  on_activation=lambda frame: self.activation_result)
        session.connection_made(loop.time())
        framer = wire.Framer()
        peek = wire.Framer()
        self._writers.add(writer)
        self.links.append((session, writer))
        try:
            while True:
                if writer in self._deaf:
                    await asyncio.sleep(3600)
                data = await reader.read(65536)
                if not data:
                    return
                self.encryption_seen |= {raw.encryption for raw in peek.feed(data)
                                         if raw.command in (Command.REALTIME, Command.REISSUE)}
                if self.mode == "error":
                    data = self._answer_errors(framer, data, writer)
                for ev in session.receive_data(data, loop.time()):
                    self.events.append(ev)
                    if isinstance(ev, ReportReceived):
                        self.received.append((int(ev.command), ev.report.time))
                        self.verified.append(ev.verified)
                    elif type(ev).__name__ == "VehicleLoggedIn":
                        self.logins += 1
                writer.write(session.data_to_send())
        except (ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    def _answer_errors(self, framer: wire.Framer, data: bytes, writer: asyncio.StreamWriter) -> bytes:
        rest = b""
        for raw in framer.feed(data):
            if raw.command in (Command.REALTIME, Command.REISSUE):
                writer.write(wire.build_frame(raw.edition, raw.command, ResponseFlag.ERROR, raw.vin, 1,
                                              bytes(raw.data[:6])))
            else:
                rest += raw.raw
        return rest


def data_unit(t: datetime) -> bytes:
    frame = encode_frame(Frame(Edition.E2016, Command.REALTIME, ResponseFlag.COMMAND, VIN, Encryption.NONE,
                               RealtimeReport(t)))
    return wire.parse_frame(frame).data


def make_uplink(tmp_path: Path, port: int, *, tls: TlsConfig | None = None, timing: ClientTiming = FAST,
                **kw: Any) -> TcpUplink:
    store = Outbox(tmp_path / "outbox.db", commit_interval_s=0.1)
    session = TerminalSession(TerminalConfig(VIN, Edition.E2016, iccid="8986" + "0" * 16, timing=timing),
                              wallclock=lambda: datetime.now(UTC), serial_store=store.serial_store(),
                              codec=OutboxCodec())
    config = UplinkConfig("127.0.0.1", port, tls=tls, reconnect_min_s=0.05, reconnect_max_s=0.2,
                          proof_timeout_s=kw.pop("proof_timeout_s", 5.0), logout_wait_s=1.0, **kw)
    return TcpUplink(session, store, config)


@contextlib.asynccontextmanager
async def running(uplink: TcpUplink) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        uplink.store.close()


async def until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


def submit(uplink: TcpUplink, i: int) -> None:
    t = T0 + timedelta(seconds=i)
    assert uplink.submit(2016, Command.REALTIME, VIN, data_unit(t), t) is not None


def assert_every_record_once_as_realtime(platform: Platform, n: int) -> None:
    expected = [T0 + timedelta(seconds=i) for i in range(n)]
    realtime = platform.times(Command.REALTIME)
    assert len(realtime) == len(set(realtime)), "a record was sent twice as realtime"
    assert set(realtime) | set(platform.times(Command.REISSUE)) == set(expected)


def test_login_realtime_and_silent_delivery(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in, what="login")
            for i in range(5):
                submit(uplink, i)
                await asyncio.sleep(0.05)
            await until(lambda: len(platform.received) == 5, what="5 records")
            # silent platform (Annex B): delivered after the response timeout, once a later frame (the
            # heartbeat reply) proved the link alive
            await until(lambda: uplink.store.pending() == 0, what="outbox empty")
        assert platform.times(Command.REALTIME) == [T0 + timedelta(seconds=i) for i in range(5)]
        assert uplink.stats.delivered == 5 and uplink.stats.realtime_sent == 5
        assert uplink.stats.link == "stopped"
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_outage_then_recovery_everything_in_order_as_reissue(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port, reissue_rate=200.0)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            for i in range(10):
                submit(uplink, i)
                await asyncio.sleep(0.02)
            await until(lambda: len(platform.received) == 10)
            await platform.stop()  # outage: RST, listener closed
            await until(lambda: not uplink.session.logged_in, what="link loss noticed")
            for i in range(10, 40):
                submit(uplink, i)
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # a few failed connects
            await platform.start()  # same port
            for i in range(40, 50):  # realtime keeps flowing during the drain
                await until(lambda: uplink.session.logged_in)
                submit(uplink, i)
                await asyncio.sleep(0.05)
            await until(lambda: uplink.store.pending() == 0, what="backlog drained and confirmed")
        assert_every_record_once_as_realtime(platform, 50)
        reissue = platform.times(Command.REISSUE)
        down = [T0 + timedelta(seconds=i) for i in range(10, 40)]
        assert [t for t in reissue if t in down] == down  # original order, original times
        assert not set(platform.times(Command.REALTIME)) & set(down)
        assert uplink.stats.connect_failures >= 1
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 40))


def test_silent_platform_backlog_is_proven_by_barrier_heartbeats_not_the_timeout(tmp_path: Path) -> None:
    """A 2,000-record backlog against an Annex B (silent) platform with a 60 s response timeout: the
    heartbeat barriers prove the records long before any timeout could; none is lost or sent twice."""
    slow = ClientTiming(heartbeat_interval=60.0, reply_timeout=60.0, login_timeout=5.0)

    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port, timing=slow, reissue_rate=1e5, proof_timeout_s=600.0)
        for i in range(2000):  # collected while offline
            submit(uplink, i)
        uplink.store.flush()
        async with running(uplink):
            await until(lambda: uplink.store.pending() == 0, timeout=50.0, what="backlog drained and proven")
        reissue = platform.times(Command.REISSUE)
        assert reissue == [T0 + timedelta(seconds=i) for i in range(2000)]  # in order, each once
        assert uplink.stats.unproven == 0 and uplink.stats.acknowledged == 0
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_time_calibration_after_login_measures_the_clock_offset(tmp_path: Path) -> None:
    async def main() -> None:
        for skew in (0.0, 100.0):
            platform = Platform()
            platform.skew_s = skew
            await platform.start()
            (tmp_path / str(skew)).mkdir()
            uplink = make_uplink(tmp_path / str(skew), platform.port, calibrate_time=True)
            async with running(uplink):
                await until(lambda u=uplink: u.stats.clock_offset_s is not None, what="0x08 reply")  # type: ignore[misc]
            assert uplink.stats.clock_offset_s is not None
            assert abs(uplink.stats.clock_offset_s - skew) <= 1.5
            await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_error_replies_resend_three_times_then_keep_for_reissue(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        platform.mode = "error"
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port, hold_abandoned_s=0.5)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            submit(uplink, 0)
            await until(lambda: uplink.stats.abandoned == 1, what="abandoned")
            assert uplink.stats.rejected == 3 and uplink.store.pending() == 1  # never dropped
            platform.mode = "ok"
            await until(lambda: uplink.store.pending() == 0, what="reissued after the hold")
        assert platform.times(Command.REISSUE) == [T0]
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_flapping_link_loses_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port, reissue_rate=500.0)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            for i in range(60):
                submit(uplink, i)
                await asyncio.sleep(0.02)
                if i % 12 == 11:
                    platform.drop_connections()
            await until(lambda: uplink.store.pending() == 0, timeout=20, what="all confirmed")
        assert_every_record_once_as_realtime(platform, 60)
        assert uplink.stats.connects >= 5
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 40))


def test_half_open_link_detected_by_heartbeat_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            submit(uplink, 0)
            await until(lambda: len(platform.received) == 1)
            platform.deafen()  # no FIN, no reply, no reading
            submit(uplink, 1)
            submit(uplink, 2)
            await until(lambda: uplink.stats.reconnects.get("heartbeat_timeout", 0) >= 1, what="detection")
            await until(lambda: uplink.store.pending() == 0, what="records of the dead link reissued")
        assert uplink.stats.unproven >= 2  # silently "delivered" on the dead link, then reissued
        assert_every_record_once_as_realtime(platform, 3)
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_shutdown_logs_out(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port)
        events: list[object] = []
        uplink.on_event = events.append
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
        assert any(type(e).__name__ == "LoggedOut" and e.acknowledged for e in events)  # type: ignore[attr-defined]
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


@pytest.mark.parametrize("port_offset", [0])
def test_connect_refused_backs_off(tmp_path: Path, port_offset: int) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        port = platform.port + port_offset
        await platform.stop()
        uplink = make_uplink(tmp_path, port)
        async with running(uplink):
            await until(lambda: uplink.stats.connect_failures >= 3)
            submit(uplink, 0)
        assert uplink.stats.logins == 0
        store = Outbox(tmp_path / "outbox.db")
        assert store.pending() == 1  # kept for later
        store.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def _address(host: str, port: int) -> list[Parameter]:
    return [Parameter(ParameterId.PLATFORM_DOMAIN_LENGTH, len(host)),
            Parameter(ParameterId.PLATFORM_DOMAIN, host), Parameter(ParameterId.PLATFORM_PORT, port)]


def test_platform_address_change_moves_on_success_and_rolls_back_on_failure(tmp_path: Path) -> None:
    from agent.uplink.tcp import AgentHandler

    async def main() -> None:
        old, new = Platform(), Platform()
        await old.start()
        await new.start()
        dead = Platform()
        await dead.start()
        await dead.stop()  # a port nobody listens on
        uplink = make_uplink(tmp_path, old.port)
        uplink.handler = uplink.session.handler = AgentHandler({}, Edition.E2016)
        seen: list[object] = []
        uplink.on_event = seen.append
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            # failure: the old address stays, the old platform gets 0x81 "modification error"
            old.downlink(lambda s, now: s.set_parameters(_address("127.0.0.1", dead.port), now))
            await until(lambda: any(type(e).__name__ == "PlatformChangeRequested" for e in seen))
            await until(lambda: not uplink._background, what="probe finished")
            # the second 0x81 reply (flag 0x02) reaches the old platform; this minimal one no longer
            # waits for it, so it shows up as a reply to no pending command
            await until(lambda: any(getattr(e, "command", None) == Command.PARAMETER_SET
                                    and type(e).__name__ == "ProtocolViolation" for e in old.events),
                        what="modification error at the old platform")
            assert uplink.config.port == old.port and uplink.store.load_parameters() == {}
            await asyncio.sleep(1.1)  # the next 0x81 must carry another time
            # success: a probe login on the new platform, then the link moves there; persisted
            old.downlink(lambda s, now: s.set_parameters(_address("127.0.0.1", new.port), now))
            await until(lambda: uplink.config.port == new.port, what="moved")
            await until(lambda: new.logins >= 2 and uplink.session.logged_in, what="logged in on the new one")
            submit(uplink, 0)
            await until(lambda: new.times(Command.REALTIME) == [T0], what="realtime on the new platform")
        stored = Outbox(tmp_path / "outbox.db")
        assert stored.load_parameters()[ParameterId.PLATFORM_PORT] == new.port
        stored.close()
        await old.stop()
        await new.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def make_uplink_2025(tmp_path: Path, port: int) -> TcpUplink:
    store = Outbox(tmp_path / "outbox.db", commit_interval_s=0.1)
    session = TerminalSession(TerminalConfig(VIN, Edition.E2025, iccid="8986" + "0" * 16, timing=FAST),
                              wallclock=lambda: datetime.now(UTC), serial_store=store.serial_store(),
                              codec=OutboxCodec())
    config = UplinkConfig("127.0.0.1", port, reconnect_min_s=0.05, proof_timeout_s=5.0, logout_wait_s=1.0)
    return TcpUplink(session, store, config)


def test_key_exchange_switches_the_data_unit_key(tmp_path: Path) -> None:
    import os

    from agent.protocol import crypto
    from agent.protocol.model import KeyExchange

    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink_2025(tmp_path, platform.port)
        session = uplink.session
        key = os.urandom(16)
        now = datetime.now(UTC)
        kx = KeyExchange(Encryption.SM4, key, now - timedelta(minutes=1), now + timedelta(days=1))
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            platform.downlink(lambda s, t: s.send_key_exchange(kx, t))
            await until(lambda: isinstance(session.codec, OutboxCodec) and session.codec.cipher is not None,
                        what="new key in use")
            for ps, _ in platform.links:
                ps.set_cipher(crypto.cipher_for(Encryption.SM4, key=key))
            t = T0
            frame = encode_frame(Frame(Edition.E2025, Command.REALTIME, ResponseFlag.COMMAND, VIN,
                                       Encryption.NONE, RealtimeReport(t)))
            uplink.submit(2025, Command.REALTIME, VIN, wire.parse_frame(frame).data, t)
            await until(lambda: platform.times(Command.REALTIME) == [t], what="decrypted at the platform")
        assert platform.encryption_seen == {Encryption.SM4}
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_exchanged_key_expires_and_an_expired_key_is_refused(tmp_path: Path) -> None:
    import os

    from agent.protocol.model import KeyExchange

    async def main() -> None:
        platform = Platform()
        await platform.start()
        uplink = make_uplink_2025(tmp_path, platform.port)
        session = uplink.session
        codec = session.codec
        assert isinstance(codec, OutboxCodec)
        async with running(uplink):
            await until(lambda: uplink.session.logged_in)
            now = datetime.now(UTC)
            stale = KeyExchange(Encryption.SM4, os.urandom(16), now - timedelta(days=2),
                                now - timedelta(days=1))
            platform.downlink(lambda s, t: s.send_key_exchange(stale, t))
            await asyncio.sleep(0.3)
            assert codec.cipher is None  # refused
            await asyncio.sleep(1.1)  # one downlink per second (told apart by time)
            short = KeyExchange(Encryption.SM4, os.urandom(16), now - timedelta(seconds=5),
                                datetime.now(UTC) + timedelta(seconds=3))
            platform.downlink(lambda s, t: s.send_key_exchange(short, t))
            await until(lambda: codec.cipher is not None, what="exchanged key in use")
            await until(lambda: codec.cipher is None, timeout=5, what="back to the configured (none)")
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 20))
