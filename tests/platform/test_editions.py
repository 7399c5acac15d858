"""2025 traffic: encrypted data units and signatures with per-VIN keys; mutual TLS; the serve verb."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from agent import cli
from agent.protocol import crypto
from agent.protocol.model import (
    ChargingState,
    Command,
    DcDcState,
    Edition,
    Encryption,
    Gear,
    GearPosition,
    RealtimeReport,
    RunningMode,
    SignatureType,
    VehicleData2025,
    VehicleState,
)
from agent.protocol.session import MemorySerialStore, beijing_date
from sim.platform.server import load_keys
from tests.platform.support import VIN, Client, now_utc, run, settle, start
from tests.platform.test_server import _certificate

KEY = bytes(range(16))


def _report() -> RealtimeReport:
    v = VehicleData2025(VehicleState.STARTED, ChargingState.NOT_CHARGING, RunningMode.ELECTRIC, 60.0, 1200.0,
                        350.0, 10.0, 70, DcDcState.WORKING, Gear(GearPosition.DRIVE), 5000)
    return RealtimeReport(now_utc(), (v,))


def test_2025_encrypted_and_signed_with_keys_file(tmp_path: Path) -> None:
    private, public = crypto.generate_keypair(SignatureType.ECC)
    (tmp_path / "vin.pem").write_bytes(crypto.public_key_to_pem(public))
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({VIN: {"encryption": "aes", "key": KEY.hex(), "signature": "ecc",
                                           "public_key": "vin.pem"}}))
    keys = load_keys(str(keys_file))
    signer = crypto.signer_for(SignatureType.ECC, private)

    async def main() -> tuple[list[str], list[int | None]]:
        server = await start(tmp_path, keys=keys)
        try:
            good = Client(server.port, edition=Edition.E2025, signer=signer,
                          cipher=crypto.cipher_for(Encryption.AES, key=KEY))
            await good.login()
            await good.realtime(_report())
            await good.pump(0.3)
            await good.close()
            store = MemorySerialStore(beijing_date(now_utc()), 5)
            unsigned = Client(server.port, edition=Edition.E2025, serial_store=store,
                              cipher=crypto.cipher_for(Encryption.AES, key=KEY))
            await unsigned.login()
            await unsigned.realtime(_report())
            reply = await unsigned.pump(0.3)
            await unsigned.close()
            await settle(server)
            kinds = [k for _f, _v, k, _r in server.db.violations()]
            realtime = [r for r in server.db.frames() if r.command == Command.REALTIME]
            assert reply[:4] == b"$$\x02\x05"  # signature error
            return kinds, [r.edition for r in realtime]
        finally:
            await server.stop()

    kinds, editions = run(main())
    assert editions == [2025, 2025]
    assert "signature" in kinds and kinds.count("signature") == 1


def test_mutual_tls_requires_a_client_certificate(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)

    async def main() -> tuple[int, bool]:
        server = await start(tmp_path, tls_cert=str(cert), tls_key=str(key), tls_client_ca=str(cert))
        try:
            ctx = ssl.create_default_context(cafile=str(cert))
            ctx.load_cert_chain(str(cert), str(key))  # self-signed: the same pair is client and CA
            c = Client(server.port, ssl_ctx=ctx)
            await c.login()
            await c.close()
            bare = Client(server.port, ssl_ctx=ssl.create_default_context(cafile=str(cert)))
            refused = False
            try:
                await bare.login()
            except (ssl.SSLError, ConnectionError, AssertionError, OSError):
                refused = True
            await settle(server)
            return len(list(server.db.frames())), refused
        finally:
            await server.stop()

    frames, refused = run(main())
    assert frames == 1 and refused


def test_serve_verb_runs_for_seconds(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    argv = ["platform", "serve", "--listen", "127.0.0.1:0", "--db", str(db), "--seconds", "0.3"]
    assert cli.main(argv) == 0
    assert db.exists()
