"""Remote upgrade (0x82 control 0x01): download a package, verify its Ed25519 signature, stage it, install.

A terminal must never run code it cannot prove came from its maker, whatever the platform sends. The
URL in the control command (either parameter layout, docs/conformance.md) names a **signed package**:

==========  ========  ==========================================================================
offset      size      content
==========  ========  ==========================================================================
0           8         magic ``TBOXPKG1``
8           4         manifest length N (big-endian)
12          N         manifest, UTF-8 JSON: name, version, size, sha256 (of the payload), and
                      optionally hardware (versions it fits), manufacturer, created
12 + N      64        Ed25519 signature over bytes 0 .. 12 + N (magic, length and manifest)
76 + N      size      payload (what the install command receives: a wheel, a tarball …)
==========  ========  ==========================================================================

The package is refused (nothing staged, nothing run) when the signature does not verify against the
configured public key, the payload's size or SHA-256 differ from the manifest, the manifest is not the
firmware version the command announced (when it announced one), or the hardware does not match. Every
attempt ends in an ``UpgradeStatus`` (persisted by the caller, logged, shown by ``tbox doctor``).

``build_package``/``parse_package``/``verify_package`` are pure; ``Upgrader.run`` does the I/O (urllib:
https, http, ftp, file as configured; bounded size and time) and calls the install command.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import TboxError
from agent.protocol.model import RemoteUpgrade, RemoteUpgradeText

log = logging.getLogger(__name__)

MAGIC = b"TBOXPKG1"
HEADER = len(MAGIC) + 4
SIGNATURE_SIZE = 64
MAX_MANIFEST = 64 * 1024
_CHUNK = 64 * 1024
#: failed checks of what was sent (refused) as opposed to failures of the terminal or network (failed)
_REFUSALS = frozenset({"request", "package", "signature", "payload", "match"})


class UpgradeError(TboxError):
    """An upgrade step failed; ``stage`` names it (download, package, signature, payload, match, install)
    and ``offset`` the byte of the package where a format problem was found."""

    def __init__(self, stage: str, reason: str, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"upgrade {stage}: {reason}{where}")
        self.stage = stage
        self.reason = reason
        self.offset = offset


@dataclass(frozen=True)
class Manifest:
    """What the maker signed about the payload."""

    name: str
    version: str
    size: int
    sha256: str
    hardware: tuple[str, ...] = ()  # hardware versions it fits; empty: any
    manufacturer: str = ""
    created: str = ""

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["hardware"] = list(self.hardware)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Package:
    """A parsed (not yet verified) package."""

    manifest: Manifest
    signed: bytes  # magic + length + manifest
    signature: bytes
    payload: bytes
    payload_offset: int


@dataclass(frozen=True)
class UpgradeRequest:
    """The fields of a 0x82/0x01 command that matter here, from either parameter layout."""

    url: str
    firmware_version: str = ""
    hardware_version: str = ""
    manufacturer_id: str = ""
    time_limit_min: int = 0  # connect-to-upgrade-server limit (minutes; 0: none given)

    @classmethod
    def from_params(cls, params: object) -> UpgradeRequest:
        """Read a ``RemoteUpgrade`` (Table B.16 binary) or ``RemoteUpgradeText`` (URL-first text)."""
        if isinstance(params, RemoteUpgrade):
            return cls(params.url, params.firmware_version.strip(), params.hardware_version.strip(),
                       params.manufacturer_id.strip(), params.connect_timeout)
        if isinstance(params, RemoteUpgradeText):
            try:
                limit = int(params.connect_timeout or 0)
            except ValueError:
                limit = 0
            return cls(params.url, params.firmware_version.strip(), params.hardware_version.strip(),
                       params.manufacturer_id.strip(), limit)
        raise UpgradeError("request", f"no upgrade parameters ({type(params).__name__})")


@dataclass
class UpgradeStatus:
    """The outcome of the last attempt (JSON in the store's key ``upgrade.status``)."""

    state: str  # downloading | refused | failed | staged | installed
    url: str
    version: str = ""
    reason: str = ""
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.url = redact_url(self.url)  # statuses are stored and logged: no credentials in them

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def redact_url(url: str) -> str:
    """``url`` without the user name and password an FTP/HTTP URL may carry."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# ============================================================================== pure part


def build_package(payload: bytes, private_key: Ed25519PrivateKey, *, name: str, version: str,
                  hardware: Sequence[str] = (), manufacturer: str = "", created: str = "") -> bytes:
    """A signed package (the maker's side; ``tbox upgrade pack``)."""
    manifest = Manifest(name, version, len(payload), hashlib.sha256(payload).hexdigest(), tuple(hardware),
                        manufacturer, created)
    body = manifest.to_json()
    signed = MAGIC + struct.pack(">I", len(body)) + body
    return signed + private_key.sign(signed) + payload


def parse_package(data: bytes) -> Package:
    """Split a package; format errors name the byte offset."""
    if len(data) < HEADER or data[: len(MAGIC)] != MAGIC:
        raise UpgradeError("package", "not a tbox package (magic TBOXPKG1 missing)", 0)
    (n,) = struct.unpack_from(">I", data, len(MAGIC))
    if n > MAX_MANIFEST:
        raise UpgradeError("package", f"manifest length {n} exceeds {MAX_MANIFEST}", len(MAGIC))
    end = HEADER + n
    if len(data) < end + SIGNATURE_SIZE:
        raise UpgradeError("package", "truncated before the end of the signature", len(data))
    try:
        doc = json.loads(data[HEADER:end].decode("utf-8"))
        manifest = Manifest(str(doc["name"]), str(doc["version"]), int(doc["size"]),
                            str(doc["sha256"]).lower(), tuple(str(h) for h in doc.get("hardware", ())),
                            str(doc.get("manufacturer", "")), str(doc.get("created", "")))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise UpgradeError("package", f"manifest unreadable ({type(exc).__name__}: {exc})", HEADER) from None
    return Package(manifest, data[:end], data[end:end + SIGNATURE_SIZE], data[end + SIGNATURE_SIZE:],
                   end + SIGNATURE_SIZE)


def verify_package(data: bytes, public_key: Ed25519PublicKey, request: UpgradeRequest | None = None,
                   *, hardware_version: str = "") -> Package:
    """Parse and verify: signature, payload size and SHA-256, announced version, hardware. Raises
    ``UpgradeError`` on the first failure; returns the package only when everything holds."""
    pkg = parse_package(data)
    try:
        public_key.verify(pkg.signature, pkg.signed)
    except InvalidSignature:
        raise UpgradeError("signature", "Ed25519 signature does not verify with the configured key",
                           len(pkg.signed)) from None
    m = pkg.manifest
    if len(pkg.payload) != m.size:
        raise UpgradeError("payload", f"{len(pkg.payload)} payload bytes, the manifest says {m.size}",
                           pkg.payload_offset)
    if hashlib.sha256(pkg.payload).hexdigest() != m.sha256:
        raise UpgradeError("payload", "payload SHA-256 differs from the manifest", pkg.payload_offset)
    if request is not None and request.firmware_version and request.firmware_version != m.version:
        raise UpgradeError("match", f"the command announced firmware {request.firmware_version!r}, "
                                    f"the package is {m.version!r}")
    if m.hardware and hardware_version and hardware_version not in m.hardware:
        raise UpgradeError("match", f"package for hardware {list(m.hardware)}, this terminal is "
                                    f"{hardware_version!r}")
    return pkg


def load_public_key(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key: PEM, or 32 raw bytes written as 64 hex digits."""
    text = data.strip()
    try:
        if len(text) == 64:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.decode("ascii")))
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpgradeError("key", f"not an Ed25519 public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UpgradeError("key", f"not an Ed25519 public key ({type(key).__name__})")
    return key


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key (PEM, unencrypted)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise UpgradeError("key", f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UpgradeError("key", f"not an Ed25519 private key ({type(key).__name__})")
    return key


# ============================================================================== I/O part


@dataclass(frozen=True)
class UpgradeConfig:
    """``[upgrade]`` (docs/upgrade.md)."""

    public_key: Ed25519PublicKey
    directory: Path  # staging area: DIR/VERSION/{package,manifest.json}
    install_command: tuple[str, ...] = ()  # argv; {payload}, {version}, {dir} substituted; empty: stage only
    schemes: tuple[str, ...] = ("https", "http", "ftp")
    max_bytes: int = 64 * 1024 * 1024
    download_timeout_s: float = 600.0  # also capped by the command's time limit
    install_timeout_s: float = 600.0
    hardware_version: str = ""


Fetch = Callable[[str, int, float], bytes]


#: longest wait for one socket operation of a download (connect, each read): also how long a stopping
#: agent may wait for a download that has stalled
READ_TIMEOUT_S = 10.0


def fetch_url(url: str, max_bytes: int, timeout_s: float, cancel: threading.Event | None = None) -> bytes:
    """Download ``url`` (urllib) into memory, at most ``max_bytes`` and ``timeout_s`` in total; ``cancel``
    set (the agent is stopping) ends it at the next chunk or within ``READ_TIMEOUT_S``."""
    deadline = time.monotonic() + timeout_s
    try:
        with urllib.request.urlopen(url, timeout=min(timeout_s, READ_TIMEOUT_S)) as resp:  # scheme checked
            chunks: list[bytes] = []
            got = 0
            while True:
                if cancel is not None and cancel.is_set():
                    raise UpgradeError("download", "cancelled: the agent is stopping")
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    break
                got += len(chunk)
                if got > max_bytes:
                    raise UpgradeError("download", f"larger than the {max_bytes}-byte limit")
                if time.monotonic() > deadline:
                    raise UpgradeError("download", f"took longer than {timeout_s:.0f} s")
                chunks.append(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise UpgradeError("download", f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from None
    return b"".join(chunks)


class Upgrader:
    """Runs one upgrade at a time; ``accepts`` is the cheap check made before the 0x82 reply."""

    def __init__(self, config: UpgradeConfig, *, fetch: Fetch = fetch_url,
                 on_status: Callable[[UpgradeStatus], None] | None = None,
                 run_command: Callable[..., subprocess.CompletedProcess[Any]] = subprocess.run) -> None:
        self.config = config
        self.fetch = fetch
        self.on_status = on_status
        self.run_command = run_command
        self.busy = False
        self.last: UpgradeStatus | None = None
        self.cancel = threading.Event()  # set by ``stop``: a running download ends, no install starts
        if fetch is fetch_url:
            self.fetch = lambda url, most, timeout: fetch_url(url, most, timeout, self.cancel)

    def stop(self) -> None:
        """The agent is stopping: end a running download (``fetch_url``: at its next chunk, or within
        ``READ_TIMEOUT_S`` when it stalls) and start no installation. An installation already running
        is left to finish (stopping it half-way could leave the unit without firmware)."""
        self.cancel.set()

    def accepts(self, params: object) -> bool:
        """Whether a 0x82/0x01 can be attempted: parameters readable, URL scheme allowed, none running."""
        try:
            request = UpgradeRequest.from_params(params)
        except UpgradeError:
            return False
        scheme = urllib.parse.urlsplit(request.url).scheme.lower()
        return not self.busy and scheme in self.config.schemes

    def run(self, params: object) -> UpgradeStatus:
        """Download, verify, stage, install; never raises: the outcome is the returned status."""
        self.busy = True
        try:
            request = UpgradeRequest.from_params(params)
        except UpgradeError as exc:
            self.busy = False
            return self._finish(UpgradeStatus("refused", "", reason=str(exc)))
        self._report(UpgradeStatus("downloading", request.url, request.firmware_version))
        try:
            return self._finish(self._upgrade(request))
        except UpgradeError as exc:
            state = "refused" if exc.stage in _REFUSALS else "failed"
            log.error("remote upgrade %s: %s", state, exc)
            return self._finish(UpgradeStatus(state, request.url, request.firmware_version, str(exc)))
        finally:
            self.busy = False

    def _upgrade(self, request: UpgradeRequest) -> UpgradeStatus:
        cfg = self.config
        scheme = urllib.parse.urlsplit(request.url).scheme.lower()
        if scheme not in cfg.schemes:
            raise UpgradeError("request", f"URL scheme {scheme!r} not allowed ({', '.join(cfg.schemes)})")
        timeout = cfg.download_timeout_s
        if request.time_limit_min > 0:
            timeout = min(timeout, request.time_limit_min * 60.0)
        data = self.fetch(request.url, cfg.max_bytes, timeout)
        if self.cancel.is_set():
            raise UpgradeError("download", "cancelled: the agent is stopping")
        pkg = verify_package(data, cfg.public_key, request, hardware_version=cfg.hardware_version)
        m = pkg.manifest
        target = cfg.directory / _safe(m.version)
        payload = target / (_safe(m.name) or "payload")
        try:
            target.mkdir(parents=True, exist_ok=True)
            tmp = payload.with_suffix(payload.suffix + ".part")
            tmp.write_bytes(pkg.payload)
            tmp.replace(payload)
            (target / "manifest.json").write_bytes(m.to_json())
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise UpgradeError("stage", f"{type(exc).__name__}: {exc}") from None
        log.warning("remote upgrade %s %s verified and staged in %s", m.name, m.version, target)
        if not cfg.install_command:
            return UpgradeStatus("staged", request.url, m.version, f"staged in {target}")
        argv = [a.format(payload=str(payload), version=m.version, dir=str(target))
                for a in cfg.install_command]
        try:
            done = self.run_command(argv, capture_output=True, text=True, timeout=cfg.install_timeout_s,
                                    check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise UpgradeError("install", f"{type(exc).__name__}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] or [""]
            raise UpgradeError("install", f"install command exited {done.returncode}: {tail[0][:200]}")
        return UpgradeStatus("installed", request.url, m.version)

    def _report(self, status: UpgradeStatus) -> None:
        self.last = status
        if self.on_status is not None:
            self.on_status(status)

    def _finish(self, status: UpgradeStatus) -> UpgradeStatus:
        self._report(status)
        return status


def _safe(text: str) -> str:
    """A path component from a manifest field (no separators, no dot-only names)."""
    cleaned = "".join(c if c.isalnum() or c in "._-+" else "_" for c in text)
    return "" if cleaned.strip(".") == "" else cleaned
