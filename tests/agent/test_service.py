"""The live service: simulator (accelerated, in simulated time) → pipeline → outbox → TCP uplink →
in-test platform; downlink parameter set applied at once and persisted; ``tbox agent run``."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from agent.cli import main as tbox_main
from agent.config import load_config
from agent.protocol.model import Command, Parameter, ParameterId
from agent.protocol.session import DownlinkReplied
from agent.service import AgentService
from sim.run import simulate
from tests.uplink.test_tcp import Platform, until

REPO = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, port: int | None, normal_period: int = 1) -> Path:
    uplink = f'host = "127.0.0.1"\nport = {port}\nheartbeat_s = 1\nreply_timeout_s = 1\n' if port else ""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f"""
[vehicle]
vin = "LTBXEV00000000001"
iccid = "89860000000000000001"
[can]
mapping = "{REPO / 'dbc' / 'tbox_ev.toml'}"
interface = "virtual"
channel = "unused"
[report]
normal_period_s = {normal_period}
[uplink]
{uplink}
[store]
path = "outbox.db"
commit_interval_s = 0.2
""")
    return cfg


def test_simulated_drive_reaches_the_platform_and_a_new_period_applies_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        platform = Platform()
        await platform.start()
        settings = load_config(write_config(tmp_path, platform.port, normal_period=10))
        start = datetime.now(UTC).replace(microsecond=0)
        service = AgentService(settings, messages=simulate(seconds=40, start_utc=start), accelerated=True)
        assert service.uplink is not None
        uplink = service.uplink
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(20, stop))
        await until(lambda: uplink.session.logged_in, what="login")
        await until(lambda: service.stats.messages > 0, what="simulation running")
        # 0x81 set: report period 10 s -> 2 s, applied to the scheduler at once and persisted
        platform.downlink(lambda s, now: s.set_parameters([Parameter(ParameterId.REPORT_PERIOD, 2)], now))
        await until(lambda: any(isinstance(e, DownlinkReplied) for e in platform.events), what="set reply")
        assert service.pipeline.scheduler._normal == 2  # the live period
        await until(lambda: service.stats.messages > 20000 and uplink.store.pending() == 0, timeout=15,
                    what="reports delivered")
        stop.set()
        stats = await asyncio.wait_for(task, 15)
        await platform.stop()
        assert stats.reports > 0
        received = platform.times(Command.REALTIME) + platform.times(Command.REISSUE)
        assert len(received) == len(set(received)) == stats.reports
        assert service.store.stats.dropped == 0
        # persisted: a restart answers queries with the platform's value
        again = AgentService(settings)
        assert again.handler.values[ParameterId.REPORT_PERIOD] == 2
        assert again.pipeline.scheduler._normal == 2
        again.store.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_tbox_agent_run_simulate_without_a_platform_stores_reports(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, None)
    assert tbox_main(["agent", "run", "--config", str(cfg), "--simulate", "--seconds", "3"]) == 0
    con = sqlite3.connect(tmp_path / "outbox.db")
    count = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    con.close()
    assert count >= 1  # real-time pacing onto the virtual bus: about one report per second


def test_uplink_and_store_keys_are_validated(tmp_path: Path) -> None:
    import pytest

    from agent.config import parse_config
    from agent.errors import ConfigError

    base = '[vehicle]\nvin = "LTBXEV00000000001"\n[can]\nmapping = "m.toml"\n'
    text = (base + '[uplink]\nreissue_rate = 200\npin_sha256 = "' + "ab" * 32 + '"\n'
            '[store]\npath = "o.db"\nretention_days = 7\ncommit_interval_s = 0.5\n')
    s = parse_config(text, "/etc/tbox/a.toml")
    assert s.uplink.reissue_rate == 200.0 and s.store.path == Path("/etc/tbox/o.db")
    assert s.store.retention_days == 7.0 and s.store.commit_interval_s == 0.5
    assert parse_config(base).store.retention_days is None  # the edition's window
    with pytest.raises(ConfigError, match=r"store\.max_mb"):
        parse_config(base + "[store]\nmax_mb = -1\n")
    with pytest.raises(ConfigError, match=r"uplink\.pin_sha256"):
        parse_config(base + '[uplink]\npin_sha256 = "xyz"\n')
    with pytest.raises(ConfigError, match=r"store\.nope"):
        parse_config(base + "[store]\nnope = 1\n")
    with pytest.raises(ConfigError, match=r"uplink\.data_key_file"):
        parse_config(base + '[uplink]\nencryption = "aes"\n')
    with pytest.raises(ConfigError, match=r"uplink\.encryption"):
        parse_config(base + '[uplink]\nencryption = "rot13"\n')
    with pytest.raises(ConfigError, match=r"uplink\.sign_key_file"):
        parse_config(base + '[uplink]\nsign_type = "sm2"\n')


def test_gnss_receiver_on_a_serial_port_feeds_the_pipeline(tmp_path: Path) -> None:
    import os

    from sim.nmea import nmea_sentences
    from tests.agent.test_gnss import _track

    master, slave = os.openpty()
    cfg = write_config(tmp_path, None)
    cfg.write_text(cfg.read_text() + f'[gnss]\nsource = "serial:{os.ttyname(slave)}:9600"\n')
    service = AgentService(load_config(cfg), messages=iter(()), accelerated=True)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(10, stop))
        await asyncio.sleep(0.3)  # the reader opened the port (pyserial flushes input on open)
        track = _track(3.0)
        text = "".join(line + "\r\n" for when, s in track for line in nmea_sentences(s, when))  # type: ignore[arg-type]
        os.write(master, text.encode("ascii"))
        await until(lambda: service.pipeline._position is not None, what="a position")
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(asyncio.wait_for(main(), 20))
    finally:
        os.close(master)
        os.close(slave)
    assert service.pipeline._position is not None and service.pipeline._position.valid


def test_terminal_control_reset_factory_reset_upgrade_refused_and_shutdown(tmp_path: Path) -> None:
    from agent.protocol.model import ControlId, RemoteUpgrade

    async def main() -> None:
        platform = Platform()
        await platform.start()
        settings = load_config(write_config(tmp_path, platform.port, normal_period=10))
        service = AgentService(settings, messages=simulate(seconds=30, start_utc=datetime.now(UTC)),
                               accelerated=True)
        uplink = service.uplink
        assert uplink is not None
        task = asyncio.create_task(service.run(30))

        def replies() -> int:
            return sum(isinstance(e, DownlinkReplied) for e in platform.events)

        await until(lambda: uplink.session.logged_in, what="login")
        platform.downlink(lambda s, now: s.control(ControlId.RESET, b"", now))
        await until(lambda: uplink.stats.logins >= 2, what="login after the reset")
        platform.downlink(lambda s, now: s.set_parameters([Parameter(ParameterId.REPORT_PERIOD, 3)], now))
        await until(lambda: service.pipeline.scheduler._normal == 3, what="new period")
        await asyncio.sleep(1.1)  # commands are told apart by their time (1 s): no two 0x82 in a second
        platform.downlink(lambda s, now: s.control(ControlId.FACTORY_RESET, b"", now))
        await until(lambda: service.pipeline.scheduler._normal == 10, what="factory period")
        assert service.store.load_parameters() == {}
        await asyncio.sleep(1.1)
        n = replies()
        upgrade = RemoteUpgrade("cmnet", "", "", bytes(6), 21, "TBOX", "H1.00", "F0.11",
                                "ftp://127.0.0.1/fw.bin", 10)
        platform.downlink(lambda s, now: s.control(ControlId.REMOTE_UPGRADE, upgrade, now))
        await asyncio.sleep(1.1)
        assert replies() == n  # an unverifiable upgrade is ignored, never acknowledged
        platform.downlink(lambda s, now: s.control(ControlId.SHUTDOWN, b"", now))
        await asyncio.wait_for(task, 10)  # the run ends by itself, long before its 30 s
        assert any(type(e).__name__ == "VehicleLoggedOut" for e in platform.events)
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 40))


def test_2025_signed_and_aes_encrypted_reports_verify_at_the_platform(tmp_path: Path) -> None:
    import os

    from agent.protocol import crypto
    from agent.protocol.model import Encryption, SignatureType

    private, public = crypto.generate_keypair(SignatureType.ECC)
    (tmp_path / "sign.pem").write_bytes(crypto.private_key_to_pem(private))
    key = os.urandom(16)
    (tmp_path / "data.key").write_text(key.hex())

    async def main() -> None:
        platform = Platform(cipher=crypto.cipher_for(Encryption.AES, key=key),
                            verifier=crypto.verifier_for(SignatureType.ECC, public))
        await platform.start()
        cfg = write_config(tmp_path, platform.port)
        text = cfg.read_text().replace('iccid = "', 'edition = 2025\niccid = "').replace(
            "[uplink]\n", '[uplink]\nencryption = "aes"\ndata_key_file = "data.key"\nsign_type = "ecc"\n'
            'sign_key_file = "sign.pem"\n')
        cfg.write_text(text)
        service = AgentService(load_config(cfg), messages=simulate(seconds=10, start_utc=datetime.now(UTC)),
                               accelerated=True)
        assert service.uplink is not None
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(20, stop))
        await until(lambda: service.stats.reports > 0 and len(platform.received) == service.stats.reports
                    and service.stats.messages > 5000, what="reports at the platform")
        stop.set()
        await asyncio.wait_for(task, 10)
        await platform.stop()
        assert platform.verified and all(v is True for v in platform.verified)
        assert platform.encryption_seen == {Encryption.AES}

    asyncio.run(asyncio.wait_for(main(), 40))


def test_rsa_2016_and_sm2_2025_data_unit_encryption_from_the_config(tmp_path: Path) -> None:
    """``encryption = "rsa"`` / ``"sm2"``: every data unit encrypted with the platform's public key from
    ``data_key_file``; the platform decrypts with its private key; SM2 in a 2016 config is refused."""
    import pytest

    from agent.errors import ConfigError
    from agent.protocol import crypto
    from agent.protocol.model import Encryption, SignatureType

    for edition, kind, enc in ((2016, SignatureType.RSA, Encryption.RSA), (2025, SignatureType.SM2,
                                                                           Encryption.SM2)):
        sub = tmp_path / str(edition)
        sub.mkdir()
        private, public = crypto.generate_keypair(kind)  # the platform's
        own_private, own_public = crypto.generate_keypair(kind)  # the terminal's
        (sub / "platform.pub").write_bytes(crypto.public_key_to_pem(public))
        (sub / "own.key").write_bytes(crypto.private_key_to_pem(own_private))
        platform_cipher = crypto.cipher_for(enc, public_key=own_public, private_key=private)

        async def main(sub: Path = sub, edition: int = edition, enc: Encryption = enc,
                       platform_cipher: object = platform_cipher) -> None:
            platform = Platform(cipher=platform_cipher)
            await platform.start()
            cfg = write_config(sub, platform.port)
            cfg.write_text(cfg.read_text().replace('iccid = "', f'edition = {edition}\niccid = "').replace(
                "[uplink]\n", f'[uplink]\nencryption = "{enc.name.lower()}"\ndata_key_file = "platform.pub"\n'
                'decrypt_key_file = "own.key"\n'))
            drive = simulate(seconds=5, start_utc=datetime.now(UTC))
            service = AgentService(load_config(cfg), messages=drive, accelerated=True)
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(20, stop))
            await until(lambda: service.stats.reports > 0 and len(platform.received) == service.stats.reports
                        and service.stats.messages > 2000, what="decrypted reports at the platform")
            stop.set()
            await asyncio.wait_for(task, 10)
            await platform.stop()
            assert platform.encryption_seen == {enc}

        asyncio.run(asyncio.wait_for(main(), 40))
    cfg = write_config(tmp_path, 1)
    cfg.write_text(cfg.read_text().replace("[uplink]\n", '[uplink]\nencryption = "sm2"\n'
                                           'data_key_file = "2025/platform.pub"\n'))
    with pytest.raises(ConfigError, match="2025"):
        AgentService(load_config(cfg))


def test_2025_activation_until_the_platform_confirms_it(tmp_path: Path) -> None:
    """``activation_chip_id``: 0x09 (chip id + signing public key, signed) goes out on every link until
    the platform confirms; then never again, also after a restart."""
    from agent.protocol import crypto
    from agent.protocol.model import ActivationInfo, ActivationResult, ActivationStatus, SignatureType
    from agent.protocol.session import ActivationHandled

    private, public = crypto.generate_keypair(SignatureType.ECC)
    (tmp_path / "sign.pem").write_bytes(crypto.private_key_to_pem(private))

    async def main() -> None:
        platform = Platform(verifier=crypto.verifier_for(SignatureType.ECC, public))
        await platform.start()
        cfg = write_config(tmp_path, platform.port)
        cfg.write_text(cfg.read_text().replace('iccid = "', 'edition = 2025\niccid = "').replace(
            "[uplink]\n", '[uplink]\nsign_type = "ecc"\nsign_key_file = "sign.pem"\n'
            'activation_chip_id = "SE0123456789ABCD"\n'))

        def activations() -> list[ActivationHandled]:
            return [e for e in platform.events if isinstance(e, ActivationHandled)]

        confirmed = ActivationResult(ActivationStatus.ACTIVATED, ActivationInfo.SUCCESS)
        for run, answer in enumerate((None, confirmed, None)):
            platform.activation_result = answer
            drive = simulate(seconds=5, start_utc=datetime.now(UTC))
            service = AgentService(load_config(cfg), messages=drive, accelerated=True)
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(20, stop))
            assert service.uplink is not None
            uplink = service.uplink
            await until(lambda u=uplink: u.session.logged_in, what="login")  # type: ignore[misc]
            if run < 2:
                await until(lambda n=run: len(activations()) == n + 1, what="activation")  # type: ignore[misc]
                seen = activations()[-1].activation
                assert seen.chip_id.strip() == "SE0123456789ABCD"
                assert seen.public_key == crypto.encode_public_key(public)
                assert crypto.verifier_for(SignatureType.ECC, public).verify(
                    crypto_signed(seen), seen.signature)
            if run == 1:
                await until(lambda s=service: s.activated, what="confirmation stored")  # type: ignore[misc]
            stop.set()
            await asyncio.wait_for(task, 10)
        assert len(activations()) == 2  # unanswered once, confirmed once, then never again
        await platform.stop()

    def crypto_signed(activation: object) -> bytes:
        from agent.protocol.session import activation_signed_bytes

        return activation_signed_bytes(activation)  # type: ignore[arg-type]

    asyncio.run(asyncio.wait_for(main(), 60))
