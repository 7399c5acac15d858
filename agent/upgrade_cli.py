"""``tbox upgrade keygen|pack|verify``: the maker's side of remote upgrades (docs/upgrade.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DESCRIPTION = """Signed upgrade packages for 0x82 remote upgrade: make an Ed25519 key pair, pack a payload
(wheel, tarball …) into a signed package, verify a package against a public key."""


def register(subparsers: Any) -> None:
    """Add the ``upgrade`` verb."""
    p = subparsers.add_parser("upgrade", help="signed remote-upgrade packages", description=DESCRIPTION)
    sub = p.add_subparsers(dest="upgrade_verb", required=True, metavar="ACTION")
    k = sub.add_parser("keygen", help="new Ed25519 key pair (PEM)")
    k.add_argument("--out", required=True, metavar="PREFIX",
                   help="writes PREFIX.key (private, mode 0600) and PREFIX.pub (public)")
    k.set_defaults(run=keygen)
    pk = sub.add_parser("pack", help="sign a payload into a package")
    pk.add_argument("payload", help="the file the terminal's install command receives")
    pk.add_argument("--key", required=True, help="Ed25519 private key (PEM)")
    pk.add_argument("--version", required=True, help="firmware version (the 0x82 command announces it)")
    pk.add_argument("--name", help="payload file name on the terminal (default: the payload's name)")
    pk.add_argument("--hardware", action="append", default=[], help="hardware version it fits (repeatable)")
    pk.add_argument("--manufacturer", default="", help="terminal manufacturer id")
    pk.add_argument("--out", required=True, help="package file to write")
    pk.set_defaults(run=pack)
    v = sub.add_parser("verify", help="check a package's signature and payload; prints its manifest")
    v.add_argument("package")
    v.add_argument("--public-key", required=True, help="Ed25519 public key (PEM or 64 hex digits)")
    v.add_argument("--hardware-version", default="", help="refuse if the package does not fit this hardware")
    v.set_defaults(run=verify)


def keygen(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = Path(f"{args.out}.key")
    public = Path(f"{args.out}.pub")
    private.touch(mode=0o600, exist_ok=False)
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    print(f"wrote {private} (keep it off the terminals) and {public} ([upgrade] public_key_file)")
    return 0


def pack(args: argparse.Namespace) -> int:
    from agent.errors import ConfigError
    from agent.upgrade import build_package, load_private_key

    try:
        payload = Path(args.payload).read_bytes()
        key = load_private_key(Path(args.key).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    data = build_package(payload, key, name=args.name or Path(args.payload).name, version=args.version,
                         hardware=args.hardware, manufacturer=args.manufacturer,
                         created=datetime.now(UTC).isoformat(timespec="seconds"))
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out}: {len(data)} bytes, payload {len(payload)} bytes, version {args.version}")
    return 0


def verify(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from agent.errors import ConfigError
    from agent.upgrade import UpgradeError, load_public_key, verify_package

    try:
        data = Path(args.package).read_bytes()
        key = load_public_key(Path(args.public_key).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        pkg = verify_package(data, key, hardware_version=args.hardware_version)
    except UpgradeError as exc:
        print(f"tbox upgrade verify: REFUSED: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(pkg.manifest), indent=2))
    return 0
