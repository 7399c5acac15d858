"""TLS and mutual TLS of the TCP uplink, with certificates generated here (``cryptography``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.protocol.model import Command
from agent.uplink.tcp import TlsConfig
from tests.uplink.test_tcp import Platform, make_uplink, running, submit, until


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                         x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None = None) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and an unrelated CA."""
    ca_key, other_key, srv_key, cli_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    ca = _cert("tbox test CA", ca_key, "tbox test CA", ca_key, ca=True)
    other = _cert("other CA", other_key, "other CA", other_key, ca=True)
    _write(d / "ca", ca)
    _write(d / "other", other)
    _write(d / "server", _cert("127.0.0.1", srv_key, "tbox test CA", ca_key, ca=False), srv_key)
    _write(d / "client", _cert("LTBXEV00000000001", cli_key, "tbox test CA", ca_key, ca=False), cli_key)
    return {n: d / f"{n}.crt" for n in ("ca", "other", "server", "client")}


def server_context(d: Path, *, mutual: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "server.crt", d / "server.key")
    if mutual:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(d / "ca.crt")
    return ctx


def _login_over(tmp_path: Path, ctx: ssl.SSLContext, tls: TlsConfig, expect_login: bool) -> None:
    async def main() -> None:
        platform = Platform(ctx)
        await platform.start()
        uplink = make_uplink(tmp_path, platform.port, tls=tls)
        async with running(uplink):
            if expect_login:
                await until(lambda: uplink.session.logged_in, what="login over TLS")
                submit(uplink, 0)
                await until(lambda: platform.times(Command.REALTIME) != [], what="realtime over TLS")
            else:
                # TLS 1.3: a client without a certificate learns of the refusal after its handshake,
                # when the server closes the link; either way no login ever succeeds
                await until(lambda: uplink.stats.connect_failures + uplink.stats.connects >= 3,
                            what="refused handshakes")
        assert (uplink.stats.logins >= 1) == expect_login
        await platform.stop()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_tls_server_verified_against_the_configured_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    _login_over(tmp_path, server_context(tmp_path, mutual=False), TlsConfig(ca_file=pki["ca"]), True)


def test_tls_refuses_a_server_of_another_ca(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    _login_over(tmp_path, server_context(tmp_path, mutual=False), TlsConfig(ca_file=pki["other"]), False)


def test_mutual_tls_needs_the_client_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    ctx = server_context(tmp_path, mutual=True)
    with_cert = TlsConfig(ca_file=pki["ca"], cert_file=tmp_path / "client.crt",
                          key_file=tmp_path / "client.key")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _login_over(tmp_path / "a", ctx, with_cert, True)
    _login_over(tmp_path / "b", server_context(tmp_path, mutual=True), TlsConfig(ca_file=pki["ca"]), False)


def test_pinned_server_certificate(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    der = x509.load_pem_x509_certificate(pki["server"].read_bytes()).public_bytes(serialization.Encoding.DER)
    good = hashlib.sha256(der).hexdigest()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ctx = server_context(tmp_path, mutual=False)
    _login_over(tmp_path / "a", ctx, TlsConfig(ca_file=pki["ca"], pin_sha256=good), True)
    _login_over(tmp_path / "b", ctx, TlsConfig(ca_file=pki["ca"], pin_sha256="00" * 32), False)


def test_bad_tls_material_is_a_config_error_at_construction(tmp_path: Path) -> None:
    import pytest

    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match="TLS"):
        make_uplink(tmp_path, 1, tls=TlsConfig(ca_file=tmp_path / "missing.pem"))
