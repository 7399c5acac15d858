"""The reference platform over loopback: logins, storage, dump/check, downlink, TLS, garbage, load."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import cli
from agent.protocol.model import Command
from agent.protocol.session import ClientTiming
from sim.platform.cli import conformance_summary
from tests.platform.support import VIN, Client, ago, frame_bytes, now_utc, report, run, settle, start


def test_login_realtime_reissue_heartbeat_are_stored(tmp_path: Path) -> None:
    async def main() -> None:
        server = await start(tmp_path)
        try:
            c = Client(server.port)
            await c.login()
            t = now_utc()
            await c.realtime(report(t))
            await c.reissue(report(ago(60)))
            c.session.timing = ClientTiming(heartbeat_interval=0.1)
            await c.pump(0.4)  # a heartbeat goes out and is answered
            await c.close()
            await settle(server)
            rows = list(server.db.frames())
            commands = [r.command for r in rows]
            assert commands[:3] == [Command.VEHICLE_LOGIN, Command.REALTIME, Command.REISSUE]
            assert Command.HEARTBEAT in commands
            assert rows[0].reply is not None and rows[1].reply is None  # realtime: Annex B silence
            assert rows[1].vin == VIN and rows[1].collected == t.isoformat()
            assert rows[1].decoded["data"]["time"]
            assert server.db.violations() == []
        finally:
            await server.stop()

    run(main())
    summary = conformance_summary(str(tmp_path / "p.db"))
    v = summary["vins"][VIN]
    assert v["realtime"] == 1 and v["reissue"] == 1 and summary["violations"] == 0
    assert json.dumps(summary)


def test_downlink_round_trip_through_tbox_platform_send(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "p.db")

    async def main() -> list[int]:
        server = await start(tmp_path)
        try:
            c = Client(server.port)
            await c.login()
            codes = []
            for argv in (["query", "0x01,0x02"], ["set", "0x02=10", "0x09=20"], ["control", "reset"]):
                task = asyncio.create_task(asyncio.to_thread(
                    cli.main, ["platform", "send", "--db", db, "--vin", VIN, "--wait", "10", *argv]))
                for _ in range(100):  # the terminal answers while `send` waits (bounded)
                    if task.done():
                        break
                    await c.pump(0.1)
                codes.append(await asyncio.wait_for(task, 10))
            await c.close()
            return codes
        finally:
            await server.stop()

    assert run(main()) == [0, 0, 0]
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["status"] for o in out] == ["replied"] * 3
    items = out[0]["result"]["body"]["items"]
    pairs = [(i["id"], i["value"]) for i in items]
    assert pairs[:2] == [("local_storage_period", 1000), ("report_period", 10)]
    assert cli.main(["platform", "send", "--db", db, "--vin", "LNOTONLINE0000001", "--wait", "3",
                     "control", "reset"]) == 1


def test_dump_and_check_verbs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        server = await start(tmp_path)
        try:
            c = Client(server.port)
            await c.login()
            await c.realtime(report(now_utc(), soc=150))
            await c.pump(0.3)
            await c.close()
            await settle(server)
        finally:
            await server.stop()

    run(main())
    db = str(tmp_path / "p.db")
    assert cli.main(["platform", "dump", "--db", db]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["command"] for x in lines] == [1, 2]
    assert set(lines[1]) >= {"vin", "command", "time", "received_at", "body", "violations"}
    assert lines[1]["violations"][0]["kind"] == "out_of_range"
    assert cli.main(["platform", "check", "--db", db]) == 1
    text = capsys.readouterr().out
    assert "out_of_range=1" in text and "realtime: 1" in text and "coverage: 1/1 s" in text


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)

    async def main() -> int:
        server = await start(tmp_path, tls_cert=str(cert), tls_key=str(key))
        try:
            ctx = ssl.create_default_context(cafile=str(cert))
            c = Client(server.port, ssl_ctx=ctx)
            await c.login()
            await c.realtime(report(now_utc()))
            await c.pump(0.3)
            await c.close()
            await settle(server)
            return len(list(server.db.frames()))
        finally:
            await server.stop()

    assert run(main()) == 2


def test_garbage_never_crashes_the_server(tmp_path: Path) -> None:
    rng = random.Random(32960)

    async def main() -> tuple[int, list[str]]:
        server = await start(tmp_path)
        try:
            junk = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) for _ in range(20)]
            good = frame_bytes(Command.REALTIME, report(now_utc()))
            junk += [b"##" + bytes(30), b"$$" + bytes(rng.randrange(256) for _ in range(100)),
                     good[:40], good[:-1] + bytes([good[-1] ^ 1]),
                     b"##\x02\xfe" + b"A" * 17 + b"\x01\xff\xff"]
            for blob in junk:
                bad = Client(server.port)
                await bad.connect()
                for i in range(0, len(blob), 97):
                    await bad.raw(blob[i:i + 97])
                await bad.pump(0.02)
                await bad.close()
            c = Client(server.port)
            await c.login()
            await c.realtime(report(now_utc()))
            await c.pump(0.3)
            await c.close()
            await settle(server)
            stored = [r for r in server.db.frames() if r.vin == VIN and r.command == Command.REALTIME
                      and r.decoded is not None]
            return len(stored), [k for _f, _v, k, _r in server.db.violations()]
        finally:
            await server.stop()

    count, found = run(main())
    assert count >= 1
    assert "bad_bcc" in found


def test_fifty_concurrent_clients(tmp_path: Path) -> None:
    n = 50

    async def one(port: int, i: int, t0: datetime) -> None:
        c = Client(port, f"LCONC{i:012d}")
        await c.login()
        for k in range(3):
            await c.realtime(report(t0 + timedelta(seconds=k)))
            await c.pump(0.5)
        await c.close()

    async def main() -> tuple[int, list[tuple[int | None, str, str, str]]]:
        server = await start(tmp_path)
        try:
            t0 = now_utc()
            await asyncio.gather(*(one(server.port, i, t0) for i in range(n)))
            await settle(server)
            return len(list(server.db.frames())), server.db.violations()
        finally:
            await server.stop()

    frames, violations = run(main(), timeout=60)
    assert frames == n * 4
    assert violations == []


def test_without_stored_json_dump_decodes_the_raw_frames(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        server = await start(tmp_path, store_json=False)
        try:
            c = Client(server.port)
            await c.login()
            await c.realtime(report(now_utc()))
            await c.pump(0.3)
            await c.close()
            await settle(server)
            assert all(r.decoded is None and r.decodable for r in server.db.frames())
        finally:
            await server.stop()

    run(main())
    assert cli.main(["platform", "dump", "--db", str(tmp_path / "p.db")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[1]["body"]["blocks"] and lines[1]["time"]
    assert cli.main(["platform", "check", "--db", str(tmp_path / "p.db")]) == 0
