"""Per-operation cost of data-unit ciphers and 2025 signatures (median of N runs)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from agent.protocol.crypto import cipher_for, generate_keypair, signer_for, verifier_for
from agent.protocol.model import Encryption, SignatureType
from tests.bench.report import write_section

pytestmark = pytest.mark.bench
RUNS = 30
DATA = bytes(range(256)) * 4  # a 1 KiB signed range / data unit, about a full realtime report


def median_ms(fn: Callable[[], object]) -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def test_crypto_costs() -> None:
    rows = ["| Signature | sign (ms) | verify (ms) |", "|---|---|---|"]
    for sig_type in SignatureType:
        private, public = generate_keypair(sig_type)
        signer, verifier = signer_for(sig_type, private), verifier_for(sig_type, public)
        signature = signer.sign(DATA)
        assert verifier.verify(DATA, signature)
        sign = median_ms(lambda s=signer: s.sign(DATA))
        verify = median_ms(lambda v=verifier, g=signature: v.verify(DATA, g))
        rows.append(f"| {sig_type.name} | {sign:.3f} | {verify:.3f} |")
    rows += ["", "| Cipher | size (B) | encrypt (ms) | decrypt (ms) |", "|---|---|---|---|"]
    for enc in (Encryption.AES, Encryption.SM4, Encryption.RSA, Encryption.SM2):
        kwargs: dict[str, Any]
        if enc in (Encryption.AES, Encryption.SM4):
            kwargs = {"key": bytes(range(16))}
        else:
            private, public = generate_keypair(enc)
            kwargs = {"public_key": public, "private_key": private}
        cipher = cipher_for(enc, **kwargs)
        for size in (1024, 65531 // 2):
            plain = bytes(size)
            secret = cipher.encrypt(plain)
            assert cipher.decrypt(secret) == plain
            enc_ms = median_ms(lambda c=cipher, p=plain: c.encrypt(p))
            dec_ms = median_ms(lambda c=cipher, s=secret: c.decrypt(s))
            rows.append(f"| {enc.name} | {size} | {enc_ms:.3f} | {dec_ms:.3f} |")
    table = "\n".join(rows)
    print("\n" + table)
    write_section(
        "Crypto",
        f"Median of {RUNS} runs per operation, 1 KiB signed range.\n"
        "SM2 is pure Python (gmssl arithmetic); the others use `cryptography` (OpenSSL).\n\n" + table,
    )
