"""Remote upgrade: signed packages (build, parse, verify, every refusal) and the Upgrader end to end over a
loopback HTTP server (download, verify, stage, install command)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from agent.protocol.model import RemoteUpgrade, RemoteUpgradeText
from agent.upgrade import (
    SIGNATURE_SIZE,
    UpgradeConfig,
    UpgradeError,
    Upgrader,
    UpgradeRequest,
    build_package,
    load_private_key,
    load_public_key,
    parse_package,
    verify_package,
)

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
PAYLOAD = b"tbox-0.2.0-py3-none-any.whl contents " * 100


def package(payload: bytes = PAYLOAD, key: Ed25519PrivateKey = KEY, **kw: object) -> bytes:
    args: dict[str, object] = {"name": "tbox.whl", "version": "0.2.0", "hardware": ("HW001",)}
    args.update(kw)
    return build_package(payload, key, **args)  # type: ignore[arg-type]


def request(url: str = "http://127.0.0.1/p", version: str = "0.2.0") -> UpgradeRequest:
    return UpgradeRequest(url, firmware_version=version)


def test_a_signed_package_verifies() -> None:
    pkg = verify_package(package(), KEY.public_key(), request(), hardware_version="HW001")
    assert pkg.payload == PAYLOAD and pkg.manifest.version == "0.2.0" and pkg.manifest.size == len(PAYLOAD)


def test_another_key_is_refused() -> None:
    with pytest.raises(UpgradeError) as err:
        verify_package(package(key=OTHER), KEY.public_key())
    assert err.value.stage == "signature"


def test_a_changed_manifest_breaks_the_signature() -> None:
    data = bytearray(package())
    i = data.index(b'"version":"0.2.0"') + len('"version":"0.2.')
    data[i] = ord("9")  # 0.2.9: still valid JSON, no longer what was signed
    with pytest.raises(UpgradeError) as err:
        verify_package(bytes(data), KEY.public_key())
    assert err.value.stage == "signature" and err.value.offset is not None


def test_a_changed_payload_is_refused_with_its_offset() -> None:
    data = bytearray(package())
    data[-1] ^= 0xFF
    with pytest.raises(UpgradeError) as err:
        verify_package(bytes(data), KEY.public_key())
    assert err.value.stage == "payload" and "SHA-256" in err.value.reason
    assert err.value.offset == len(data) - len(PAYLOAD)


def test_a_truncated_payload_is_refused() -> None:
    with pytest.raises(UpgradeError) as err:
        verify_package(package()[:-10], KEY.public_key())
    assert err.value.stage == "payload"


@pytest.mark.parametrize("data, offset", [
    (b"", 0),
    (b"PK\x03\x04 a zip, not signed", 0),
    (PAYLOAD, 0),  # the bare payload: unsigned
    (b"TBOXPKG1\x00\x00\x00\x05{}", None),  # manifest length runs past the end
])
def test_unsigned_or_malformed_packages_are_refused(data: bytes, offset: int | None) -> None:
    with pytest.raises(UpgradeError) as err:
        verify_package(data, KEY.public_key())
    assert err.value.stage == "package"
    if offset is not None:
        assert err.value.offset == offset


def test_version_and_hardware_must_match() -> None:
    with pytest.raises(UpgradeError, match="announced firmware"):
        verify_package(package(), KEY.public_key(), request(version="0.3.0"))
    with pytest.raises(UpgradeError, match="hardware"):
        verify_package(package(), KEY.public_key(), hardware_version="HW999")


@given(st.binary(max_size=300))
def test_parse_never_fails_otherwise(data: bytes) -> None:
    with contextlib.suppress(UpgradeError):
        parse_package(data)


@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_is_refused(position: int, flip: int) -> None:
    data = bytearray(package(payload=PAYLOAD[:500]))
    i = position % len(data)
    data[i] ^= flip
    with pytest.raises(UpgradeError):
        verify_package(bytes(data), KEY.public_key())


def test_keys_load_from_pem_and_hex() -> None:
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for data in (pem, raw.hex().encode() + b"\n"):
        verify_package(package(), load_public_key(data))
    private = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    assert load_private_key(private).public_key() == KEY.public_key()
    with pytest.raises(UpgradeError, match="Ed25519"):
        load_public_key(b"not a key")


def test_request_from_both_parameter_layouts() -> None:
    binary = RemoteUpgrade("cmnet", "", "", bytes(6), 21, "ABCD", "HW001", "0.2.0", "http://h/p", 10)
    text = RemoteUpgradeText("http://h/p", "cmnet", "", "", "1.2.3.4", "21", "ABCD", "HW001", "0.2.0", "10")
    assert UpgradeRequest.from_params(binary) == UpgradeRequest("http://h/p", "0.2.0", "HW001", "ABCD", 10)
    assert UpgradeRequest.from_params(text) == UpgradeRequest("http://h/p", "0.2.0", "HW001", "ABCD", 10)
    with pytest.raises(UpgradeError):
        UpgradeRequest.from_params(b"")


# ------------------------------------------------------------------------------ Upgrader over HTTP


def upgrade_params(url: str, version: str = "0.2.0") -> RemoteUpgrade:
    return RemoteUpgrade("cmnet", "", "", bytes(6), 0, "ABCD", "HW001", version, url, 1)


def make_upgrader(tmp_path: Path, install: tuple[str, ...] = ()) -> tuple[Upgrader, list[str]]:
    states: list[str] = []
    config = UpgradeConfig(KEY.public_key(), tmp_path / "staging", install_command=install,
                           max_bytes=1_000_000, hardware_version="HW001")
    return Upgrader(config, on_status=lambda s: states.append(s.state)), states


def test_download_verify_stage_install(tmp_path: Path, http_files: tuple[dict[str, bytes], str]) -> None:
    files, base = http_files
    files["/tbox-0.2.0.pkg"] = package()
    marker = tmp_path / "installed.txt"
    script = ("import sys, pathlib; "
              "pathlib.Path(sys.argv[2]).write_bytes(pathlib.Path(sys.argv[1]).read_bytes())")
    upgrader, states = make_upgrader(tmp_path, (sys.executable, "-c", script, "{payload}", str(marker)))
    params = upgrade_params(base + "/tbox-0.2.0.pkg")
    assert upgrader.accepts(params)
    status = upgrader.run(params)
    assert status.state == "installed" and status.version == "0.2.0", status
    assert states == ["downloading", "installed"]
    assert marker.read_bytes() == PAYLOAD
    assert (tmp_path / "staging" / "0.2.0" / "tbox.whl").read_bytes() == PAYLOAD


@pytest.mark.parametrize("content, stage", [
    ("unsigned", "package"),
    ("other-key", "signature"),
    ("tampered", "payload"),
])
def test_bad_packages_are_refused_and_nothing_runs(tmp_path: Path, http_files: tuple[dict[str, bytes], str],
                                                   content: str, stage: str) -> None:
    files, base = http_files
    data = {"unsigned": PAYLOAD, "other-key": package(key=OTHER), "tampered": package()[:-1] + b"X"}[content]
    files["/p"] = data
    marker = tmp_path / "ran"
    upgrader, states = make_upgrader(tmp_path, (sys.executable, "-c", f"open(r'{marker}', 'w')"))
    status = upgrader.run(upgrade_params(base + "/p"))
    assert status.state == "refused" and f"upgrade {stage}" in status.reason
    assert states == ["downloading", "refused"]
    assert not marker.exists() and not (tmp_path / "staging").exists()


def test_download_failures_are_reported(tmp_path: Path, http_files: tuple[dict[str, bytes], str]) -> None:
    files, base = http_files
    upgrader, _ = make_upgrader(tmp_path)
    status = upgrader.run(upgrade_params(base + "/missing"))
    assert status.state == "failed" and "download" in status.reason
    files["/big"] = b"x" * 1_000_001
    assert "limit" in upgrader.run(upgrade_params(base + "/big")).reason


def test_stop_ends_a_slow_download_and_installs_nothing(tmp_path: Path) -> None:
    """A package trickling in (1 KiB every 50 ms, ≈ 40 s in all): ``stop`` from another thread ends the
    download at its next chunk and nothing is staged or installed (an agent stopping must not wait for
    a download; before, it waited up to the whole download time)."""
    import http.server
    import threading
    import time

    body = package(b"x" * 800_000)
    started = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            started.set()
            with contextlib.suppress(OSError):
                for i in range(0, len(body), 1024):
                    self.wfile.write(body[i:i + 1024])
                    self.wfile.flush()
                    time.sleep(0.05)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        marker = tmp_path / "ran"
        upgrader, states = make_upgrader(tmp_path, (sys.executable, "-c", f"open(r'{marker}', 'w')"))
        result: list[object] = []
        worker = threading.Thread(target=lambda: result.append(
            upgrader.run(upgrade_params(f"http://127.0.0.1:{server.server_address[1]}/p"))))
        worker.start()
        assert started.wait(10)
        time.sleep(0.3)
        upgrader.stop()
        worker.join(timeout=5)
        assert not worker.is_alive(), "the download did not end after stop()"
        status = result[0]
        assert status.state == "failed" and "cancelled" in status.reason  # type: ignore[attr-defined]
        assert states == ["downloading", "failed"]
        assert not marker.exists() and not (tmp_path / "staging").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_install_failure_is_reported(tmp_path: Path, http_files: tuple[dict[str, bytes], str]) -> None:
    files, base = http_files
    files["/p"] = package()
    upgrader, _ = make_upgrader(tmp_path, (sys.executable, "-c", "import sys; sys.exit('disk full')"))
    status = upgrader.run(upgrade_params(base + "/p"))
    assert status.state == "failed" and "exited 1" in status.reason and "disk full" in status.reason


def test_stage_only_without_an_install_command(tmp_path: Path,
                                               http_files: tuple[dict[str, bytes], str]) -> None:
    files, base = http_files
    files["/p"] = package()
    upgrader, _ = make_upgrader(tmp_path)
    assert upgrader.run(upgrade_params(base + "/p")).state == "staged"


def test_accepts_checks_scheme_and_parameters(tmp_path: Path) -> None:
    upgrader, _ = make_upgrader(tmp_path)
    assert upgrader.accepts(upgrade_params("https://example.com/p"))
    assert not upgrader.accepts(upgrade_params("file:///etc/passwd"))
    assert not upgrader.accepts(upgrade_params("gopher://x/p"))
    assert not upgrader.accepts(b"")
    upgrader.busy = True
    assert not upgrader.accepts(upgrade_params("https://example.com/p"))


def test_signature_size_is_ed25519() -> None:
    assert len(KEY.sign(b"x")) == SIGNATURE_SIZE


def test_cli_keygen_pack_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main

    prefix = tmp_path / "maker"
    assert main(["upgrade", "keygen", "--out", str(prefix)]) == 0
    assert (prefix.with_suffix(".key").stat().st_mode & 0o777) == 0o600
    payload = tmp_path / "tbox.whl"
    payload.write_bytes(PAYLOAD)
    pkg = tmp_path / "tbox.pkg"
    assert main(["upgrade", "pack", str(payload), "--key", f"{prefix}.key", "--version", "0.2.0",
                 "--hardware", "HW001", "--out", str(pkg)]) == 0
    capsys.readouterr()
    assert main(["upgrade", "verify", str(pkg), "--public-key", f"{prefix}.pub"]) == 0
    assert '"version": "0.2.0"' in capsys.readouterr().out
    assert main(["upgrade", "verify", str(pkg), "--public-key", f"{prefix}.pub",
                 "--hardware-version", "HW002"]) == 2
    pkg.write_bytes(pkg.read_bytes()[:-1])
    assert main(["upgrade", "verify", str(pkg), "--public-key", f"{prefix}.pub"]) == 2
    assert "REFUSED: upgrade payload" in capsys.readouterr().err


def test_statuses_never_carry_url_credentials() -> None:
    from agent.upgrade import UpgradeStatus

    status = UpgradeStatus("failed", "ftp://fw:s3cret@10.0.0.1:2121/tbox.pkg")
    assert status.url == "ftp://***@10.0.0.1:2121/tbox.pkg" and "s3cret" not in status.to_json()
    assert UpgradeStatus("staged", "https://h/p.pkg").url == "https://h/p.pkg"
