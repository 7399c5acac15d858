"""Tests for agent.protocol.crypto: ciphers, signatures, keys, known-answer vectors, fuzzing."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from gmssl import sm3 as gm_sm3
from gmssl import sm4 as gm_sm4
from gmssl.sm2 import CryptSM2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.protocol import crypto
from agent.protocol.crypto import (
    DEFAULT_SM2_USER_ID,
    SIGN_INCLUDES_MARKER,
    BlockCipher,
    CipherOptions,
    KeyFormatOptions,
    NullCipher,
    RsaCipher,
    SignatureOptions,
    Sm2Cipher,
    Sm2PrivateKey,
    Sm2PublicKey,
    cipher_for,
    cipher_from_key_exchange,
    decode_public_key,
    encode_public_key,
    generate_keypair,
    load_private_key,
    load_public_key,
    private_key_to_pem,
    public_key_to_pem,
    signer_for,
    sm2_z,
    sm3,
    verifier_for,
)
from agent.protocol.errors import ProtocolError
from agent.protocol.model import Cipher, Encryption, Signature, SignatureType

MAX_L = 65531
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# GM/T 0003.5-2012 (= GB/T 32918.5-2017) Annex A example on the recommended curve.
GM_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
GM_X = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
GM_Y = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
GM_K = 0x59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21
GM_Z = "b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3"
GM_E = 0xF0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640
GM_R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
GM_S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
GM_C1 = (
    "04"
    "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
    "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0"
)
GM_C3 = "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766"
GM_C2 = "21886CA989CA9C7D58087307CA93092D651EFA"


@cache
def rsa_pair() -> tuple[rsa.RSAPrivateKey, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, key.public_key()


@cache
def rsa_other() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def sm2_pair() -> tuple[Sm2PrivateKey, Sm2PublicKey]:
    key = Sm2PrivateKey(GM_D)
    return key, key.public_key()


@cache
def ecc_pair() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.public_key()


def flip(data: bytes, index: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# ------------------------------------------------------------------ known-answer: SM3, SM4, AES


def test_sm3_standard_vectors_agree_with_gmssl() -> None:
    # GB/T 32905-2016 Annex A, examples 1 and 2
    assert sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abcd" * 16).hex() == "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    for msg in (b"", b"abc", bytes(range(256)) * 3):
        assert sm3(msg).hex() == gm_sm3.sm3_hash(list(msg))


def test_sm4_standard_vector() -> None:
    # GB/T 32907-2016 Annex A example 1: the key encrypts itself
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    ecb = BlockCipher(Encryption.SM4, key, CipherOptions(block_mode="ecb"))
    out = ecb.encrypt(key)
    assert out[:16].hex() == "681edf34d206965e86b3e94f536e4246"
    assert len(out) == 32  # a full PKCS#7 padding block follows
    assert ecb.decrypt(out) == key


def test_aes_sp800_38a_vectors() -> None:
    # NIST SP 800-38A F.1.1 (ECB-AES128) and F.2.1 (CBC-AES128), first block
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    p1 = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    ecb = BlockCipher(Encryption.AES, key, CipherOptions(block_mode="ecb"))
    assert ecb.encrypt(p1)[:16].hex() == "3ad77bb40d7a3660a89ecaf32466ef97"
    cbc = BlockCipher(Encryption.AES, key, CipherOptions(iv_mode="fixed", iv=iv))
    assert cbc.encrypt(p1)[:16].hex() == "7649abac8119b246cee98e9b12e9197d"
    prepend = BlockCipher(Encryption.AES, key)
    assert prepend.decrypt(iv + cbc.encrypt(p1)) == p1  # prepend = IV || CBC body


def test_sm4_cbc_matches_gmssl() -> None:
    key = bytes(range(16))
    iv = bytes(range(16, 32))
    plain = b"GB/T 32960 data unit" * 5
    ours = BlockCipher(Encryption.SM4, key, CipherOptions(iv_mode="fixed", iv=iv)).encrypt(plain)
    ref = gm_sm4.CryptSM4()
    ref.set_key(key, gm_sm4.SM4_ENCRYPT)
    assert ours == ref.crypt_cbc(iv, plain)  # gmssl pads with PKCS#7 too


# ------------------------------------------------------------------ block ciphers

BLOCK_OPTIONS = [
    CipherOptions(),
    CipherOptions(iv_mode="fixed", iv=bytes(range(16))),
    CipherOptions(iv_mode="zero"),
    CipherOptions(block_mode="ecb"),
]
BLOCK_KEYS = [
    (Encryption.AES, bytes(range(16))),
    (Encryption.AES, bytes(range(24))),
    (Encryption.AES, bytes(range(32))),
    (Encryption.SM4, bytes(range(100, 116))),
]


@pytest.mark.parametrize("options", BLOCK_OPTIONS, ids=["prepend", "fixed", "zero", "ecb"])
@pytest.mark.parametrize("enc,key", BLOCK_KEYS, ids=["aes128", "aes192", "aes256", "sm4"])
@FAST
@given(plain=st.binary(max_size=300))
def test_block_round_trip(enc: Encryption, key: bytes, options: CipherOptions, plain: bytes) -> None:
    cipher = BlockCipher(enc, key, options)
    out = cipher.encrypt(plain)
    assert len(out) == cipher.ciphertext_length(len(plain))
    assert cipher.decrypt(out) == plain


@pytest.mark.parametrize("options", BLOCK_OPTIONS, ids=["prepend", "fixed", "zero", "ecb"])
@pytest.mark.parametrize("enc,key", BLOCK_KEYS, ids=["aes128", "aes192", "aes256", "sm4"])
def test_block_edges(enc: Encryption, key: bytes, options: CipherOptions) -> None:
    cipher = BlockCipher(enc, key, options)
    for plain in (b"", bytes(15), bytes(16), bytes(range(256)) * 255 + bytes(251)):
        assert cipher.decrypt(cipher.encrypt(plain)) == plain
    big = cipher.encrypt(bytes(MAX_L))
    assert len(big) == cipher.ciphertext_length(MAX_L)  # > 65531: the codec must check L


def test_prepend_uses_a_fresh_iv() -> None:
    cipher = BlockCipher(Encryption.AES, bytes(16))
    a, b = cipher.encrypt(b"same"), cipher.encrypt(b"same")
    assert a != b and a[:16] != b[:16]


def test_block_wrong_key_and_truncation_raise_protocol_error() -> None:
    opts = CipherOptions(iv_mode="fixed", iv=bytes(16))
    good = BlockCipher(Encryption.SM4, bytes(16), opts)
    ct = good.encrypt(b"vehicle data 1234567890")
    with pytest.raises(ProtocolError) as info:
        BlockCipher(Encryption.SM4, bytes([1]) * 16, opts).decrypt(ct)
    assert info.value.field == "data_unit" and "padding" in info.value.reason
    for bad in (b"", ct[:-1], ct[:8]):
        with pytest.raises(ProtocolError) as info:
            good.decrypt(bad)
        assert info.value.field == "data_unit"
    with pytest.raises(ProtocolError):
        BlockCipher(Encryption.AES, bytes(16)).decrypt(bytes(16))  # IV only, no block


def test_block_key_lengths_and_no_key_in_messages() -> None:
    secret = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f")  # 15 bytes
    for enc in (Encryption.AES, Encryption.SM4):
        with pytest.raises(ProtocolError) as info:
            BlockCipher(enc, secret)
        assert info.value.field == "key"
        assert secret.hex() not in str(info.value) and "a1b2" not in str(info.value)
    cipher = BlockCipher(Encryption.AES, bytes.fromhex("00112233445566778899aabbccddeeff"))
    assert "0011" not in repr(cipher) and "redacted" in repr(cipher)
    with pytest.raises(ProtocolError):
        BlockCipher(Encryption.SM4, bytes(24))


def test_cipher_options_validation() -> None:
    with pytest.raises(ValueError):
        CipherOptions(iv_mode="fixed")
    with pytest.raises(ValueError):
        CipherOptions(iv_mode="fixed", iv=bytes(8))
    with pytest.raises(ValueError):
        CipherOptions(iv=bytes(16))  # an IV without iv_mode "fixed" would be silently ignored
    with pytest.raises(ValueError):
        CipherOptions(block_mode="gcm")  # type: ignore[arg-type]
    assert "0102" not in repr(CipherOptions(iv_mode="fixed", iv=bytes(range(1, 17))))


# ------------------------------------------------------------------ RSA encryption


@pytest.mark.parametrize("padding", ["oaep-sha256", "oaep-sha1", "pkcs1v15"])
@SLOW
@given(plain=st.binary(max_size=600))
def test_rsa_round_trip(padding: str, plain: bytes) -> None:
    priv, pub = rsa_pair()
    cipher = RsaCipher(pub, priv, CipherOptions(rsa_padding=padding))  # type: ignore[arg-type]
    out = cipher.encrypt(plain)
    assert len(out) == cipher.ciphertext_length(len(plain))
    assert len(out) % 256 == 0
    assert cipher.decrypt(out) == plain


def test_rsa_chunking() -> None:
    priv, pub = rsa_pair()
    cipher = RsaCipher(pub, priv)  # OAEP-SHA256: 256 - 66 = 190 bytes per block
    for size, blocks in ((0, 1), (1, 1), (190, 1), (191, 2), (380, 2), (381, 3)):
        out = cipher.encrypt(bytes(size))
        assert len(out) == 256 * blocks
        assert cipher.decrypt(out) == bytes(size)
    pkcs = RsaCipher(pub, priv, CipherOptions(rsa_padding="pkcs1v15"))
    assert len(pkcs.encrypt(bytes(245))) == 256 and len(pkcs.encrypt(bytes(246))) == 512


def test_rsa_max_data_unit() -> None:
    priv, pub = rsa_pair()
    cipher = RsaCipher(pub, priv, CipherOptions(rsa_padding="pkcs1v15"))
    plain = bytes(range(256)) * 255 + bytes(251)
    assert cipher.decrypt(cipher.encrypt(plain)) == plain


def test_rsa_failures() -> None:
    priv, pub = rsa_pair()
    ct = RsaCipher(pub).encrypt(b"hello")
    with pytest.raises(ProtocolError) as info:
        RsaCipher(private_key=rsa_other()).decrypt(ct)  # OAEP detects a wrong key
    assert info.value.field == "data_unit"
    with pytest.raises(ProtocolError) as info:
        RsaCipher(private_key=priv).decrypt(flip(ct, 100))
    assert info.value.field == "data_unit"
    for bad in (b"", ct[:-1], ct + b"\x00"):
        with pytest.raises(ProtocolError):
            RsaCipher(private_key=priv).decrypt(bad)
    with pytest.raises(ProtocolError):
        RsaCipher(private_key=priv).encrypt(b"x")  # no peer public key configured
    with pytest.raises(ProtocolError):
        RsaCipher(public_key=pub).decrypt(ct)


# ------------------------------------------------------------------ SM2 encryption


def test_sm2_encryption_known_answer() -> None:
    # GM/T 0003.5-2012 Annex A: "encryption standard" with the example key and nonce, C1C3C2
    priv, pub = sm2_pair()
    assert (pub.x, pub.y) == (GM_X, GM_Y)
    cipher = Sm2Cipher(pub, priv)
    out = cipher.encrypt(b"encryption standard", _k=GM_K)
    assert out.hex().upper() == GM_C1 + GM_C3 + GM_C2
    assert cipher.decrypt(out) == b"encryption standard"
    raw_c2c3 = Sm2Cipher(pub, priv, CipherOptions(sm2_order="c1c2c3", sm2_c1="raw"))
    assert raw_c2c3.encrypt(b"encryption standard", _k=GM_K).hex().upper() == GM_C1[2:] + GM_C2 + GM_C3


SM2_OPTIONS = [
    CipherOptions(),
    CipherOptions(sm2_order="c1c2c3"),
    CipherOptions(sm2_c1="raw"),
    CipherOptions(sm2_order="c1c2c3", sm2_c1="raw"),
]


@pytest.mark.parametrize("options", SM2_OPTIONS, ids=["c1c3c2", "c1c2c3", "c1c3c2-raw", "c1c2c3-raw"])
@SLOW
@given(plain=st.binary(max_size=400))
def test_sm2_round_trip(options: CipherOptions, plain: bytes) -> None:
    priv, pub = sm2_pair()
    cipher = Sm2Cipher(pub, priv, options)
    out = cipher.encrypt(plain)
    assert len(out) == cipher.ciphertext_length(len(plain))
    assert cipher.decrypt(out) == plain


def test_sm2_edges() -> None:
    priv, pub = sm2_pair()
    cipher = Sm2Cipher(pub, priv)
    assert len(cipher.encrypt(b"")) == 97 and cipher.decrypt(cipher.encrypt(b"")) == b""
    plain = bytes(range(256)) * 255 + bytes(251)
    assert cipher.decrypt(cipher.encrypt(plain)) == plain


@pytest.mark.parametrize("mode", [0, 1])
def test_sm2_interoperates_with_gmssl(mode: int) -> None:
    """gmssl: mode 0 = C1C2C3, 1 = C1C3C2, C1 always 64-byte x||y."""
    priv, pub = sm2_pair()
    options = CipherOptions(sm2_order="c1c3c2" if mode else "c1c2c3", sm2_c1="raw")
    ours = Sm2Cipher(pub, priv, options)
    ref = CryptSM2(private_key=f"{GM_D:064x}", public_key="", mode=mode)
    ref.public_key = f"{GM_X:064x}{GM_Y:064x}"  # set directly: gmssl's lstrip("04") can eat x
    msg = b"GB/T 32960 realtime data unit" * 3
    assert ours.decrypt(ref.encrypt(msg)) == msg
    assert ref.decrypt(ours.encrypt(msg)) == msg


def test_sm2_tamper_and_wrong_key() -> None:
    priv, pub = sm2_pair()
    cipher = Sm2Cipher(pub, priv)
    ct = cipher.encrypt(b"state of charge 87%")
    for index in (0, 1, 40, 70, 100, len(ct) - 1):  # prefix, C1, C3, C2
        with pytest.raises(ProtocolError) as info:
            cipher.decrypt(flip(ct, index))
        assert info.value.field == "data_unit"
    with pytest.raises(ProtocolError) as info:
        Sm2Cipher(private_key=Sm2PrivateKey.generate()).decrypt(ct)
    assert "C3" in info.value.reason
    with pytest.raises(ProtocolError):
        Sm2Cipher(pub, priv, CipherOptions(sm2_order="c1c2c3")).decrypt(ct)
    with pytest.raises(ProtocolError):
        cipher.decrypt(ct[:96])
    with pytest.raises(ProtocolError):
        Sm2Cipher(private_key=priv).encrypt(b"x")


# ------------------------------------------------------------------ fuzz: decrypt raises only ProtocolError


@cache
def all_ciphers() -> list[Cipher]:
    rpriv, rpub = rsa_pair()
    spriv, spub = sm2_pair()
    out: list[Cipher] = [BlockCipher(enc, key, opt) for enc, key in BLOCK_KEYS for opt in BLOCK_OPTIONS]
    out += [RsaCipher(rpub, rpriv, CipherOptions(rsa_padding=p)) for p in ("oaep-sha256", "pkcs1v15")]
    out += [Sm2Cipher(spub, spriv, opt) for opt in SM2_OPTIONS]
    out.append(NullCipher())
    return out


@settings(max_examples=150, deadline=None)
@given(
    data=st.one_of(st.binary(max_size=600), st.binary(min_size=97, max_size=130)), which=st.integers(0, 25)
)
def test_decrypt_fuzz_raises_only_protocol_error(data: bytes, which: int) -> None:
    ciphers = all_ciphers()
    cipher = ciphers[which % len(ciphers)]
    with contextlib.suppress(ProtocolError):
        cipher.decrypt(data)


def test_decrypt_fuzz_sm2_with_valid_c1() -> None:
    """Garbage after a valid C1 reaches the C3 check (and RSA blocks reach the padding check)."""
    priv, pub = sm2_pair()
    cipher = Sm2Cipher(pub, priv)
    c1 = pub.to_bytes()
    for tail in (bytes(32), bytes(range(40)), b"\xff" * 100):
        with pytest.raises(ProtocolError):
            cipher.decrypt(c1 + tail)
    rpriv, _ = rsa_pair()
    for block in (bytes(256), b"\xff" * 256, bytes(range(256))):
        with pytest.raises(ProtocolError):
            RsaCipher(private_key=rpriv).decrypt(block)


# ------------------------------------------------------------------ SM2 signatures


def test_sm2_signature_known_answer() -> None:
    # GM/T 0003.5-2012 Annex A: "message digest", default user id, fixed nonce
    _, pub = sm2_pair()
    assert sm2_z(pub).hex() == GM_Z
    e = int.from_bytes(sm3(bytes.fromhex(GM_Z) + b"message digest"), "big")
    assert e == GM_E
    assert crypto._sm2_sign_digest(GM_D, e, GM_K) == (GM_R, GM_S)
    sig = Signature(SignatureType.SM2, GM_R.to_bytes(32, "big"), GM_S.to_bytes(32, "big"))
    assert verifier_for(SignatureType.SM2, pub).verify(b"message digest", sig)
    assert not verifier_for(SignatureType.SM2, pub).verify(b"message digesT", sig)


def test_sm2_sign_verify_and_tamper() -> None:
    priv, pub = sm2_pair()
    data = bytes(range(200))
    sig = signer_for(SignatureType.SM2, priv).sign(data)
    assert sig.sig_type == SignatureType.SM2 and len(sig.r) == 32 and len(sig.s) == 32
    verifier = verifier_for(SignatureType.SM2, pub)
    assert verifier.verify(data, sig)
    for index in (0, 77, 199):
        assert not verifier.verify(flip(data, index), sig)
    assert not verifier.verify(data, Signature(SignatureType.SM2, flip(sig.r, 5), sig.s))
    assert not verifier.verify(data, Signature(SignatureType.SM2, sig.r, flip(sig.s, 31)))
    assert not verifier_for(SignatureType.SM2, Sm2PrivateKey.generate().public_key()).verify(data, sig)
    assert not verifier.verify(data, Signature(SignatureType.SM2, bytes(32), sig.s))  # r = 0
    assert not verifier.verify(data, Signature(SignatureType.SM2, b"\xff" * 32, sig.s))  # r >= n
    assert not verifier.verify(data, Signature(SignatureType.SM2, sig.r, bytes(31) + b"\x01"))
    # a 33-byte 0x00-prefixed R (Java BigInteger style) is tolerated
    assert verifier.verify(data, Signature(SignatureType.SM2, b"\x00" + sig.r, sig.s))


def test_sm2_user_id_is_configurable() -> None:
    priv, pub = sm2_pair()
    alice = SignatureOptions(sm2_user_id=b"ALICE123@YAHOO.COM")
    sig = signer_for(SignatureType.SM2, priv, alice).sign(b"m")
    assert verifier_for(SignatureType.SM2, pub, alice).verify(b"m", sig)
    assert not verifier_for(SignatureType.SM2, pub).verify(b"m", sig)
    assert sm2_z(pub, b"ALICE123@YAHOO.COM") != sm2_z(pub)


def test_sm2_signatures_interoperate_with_gmssl() -> None:
    """gmssl's sign_with_sm3/verify_with_sm3 hash Z_A with the default id itself."""
    priv, pub = sm2_pair()
    ref = CryptSM2(private_key=f"{GM_D:064x}", public_key="")
    ref.public_key = f"{GM_X:064x}{GM_Y:064x}"
    data = b"$$ realtime signed range"
    theirs = bytes.fromhex(ref.sign_with_sm3(data))
    sig = Signature(SignatureType.SM2, theirs[:32], theirs[32:])
    assert verifier_for(SignatureType.SM2, pub).verify(data, sig)
    ours = signer_for(SignatureType.SM2, priv).sign(data)
    assert ref.verify_with_sm3((ours.r + ours.s).hex(), data)


def test_sm2_malformed_signatures_raise() -> None:
    _, pub = sm2_pair()
    verifier = verifier_for(SignatureType.SM2, pub)
    for r, s, field in (
        (b"", bytes(32), "signature.r"),
        (bytes(34), bytes(32), "signature.r"),
        (b"\x01" + bytes(32), bytes(32), "signature.r"),
        (bytes(32), b"", "signature.s"),
        (bytes(32), bytes(64), "signature.s"),
    ):
        with pytest.raises(ProtocolError) as info:
            verifier.verify(b"x", Signature(SignatureType.SM2, r, s))
        assert info.value.field == field
    with pytest.raises(ProtocolError) as info:
        verifier.verify(b"x", Signature(SignatureType.RSA, bytes(32), bytes(32)))
    assert info.value.field == "signature.type"


# ------------------------------------------------------------------ RSA and ECDSA signatures


def test_rsa_signature() -> None:
    priv, pub = rsa_pair()
    sig = signer_for(SignatureType.RSA, priv).sign(b"signed range")
    assert sig.sig_type == SignatureType.RSA and len(sig.r) == 256 and sig.s == b""
    verifier = verifier_for(SignatureType.RSA, pub)
    assert verifier.verify(b"signed range", sig)
    assert not verifier.verify(b"signed rangE", sig)
    assert not verifier.verify(b"signed range", Signature(SignatureType.RSA, flip(sig.r, 9)))
    assert not verifier_for(SignatureType.RSA, rsa_other().public_key()).verify(b"signed range", sig)
    with pytest.raises(ProtocolError) as info:
        verifier.verify(b"signed range", Signature(SignatureType.RSA, sig.r[:-1]))
    assert info.value.field == "signature.r"
    with pytest.raises(ProtocolError) as info:
        verifier.verify(b"signed range", Signature(SignatureType.RSA, sig.r, b"\x00"))
    assert info.value.field == "signature.s"
    sha512 = SignatureOptions(rsa_hash="sha512")
    sig512 = signer_for(SignatureType.RSA, priv, sha512).sign(b"m")
    assert verifier_for(SignatureType.RSA, pub, sha512).verify(b"m", sig512)
    assert not verifier.verify(b"m", sig512)


@pytest.mark.parametrize("encoding", ["raw", "der"])
def test_ecdsa_signature(encoding: str) -> None:
    priv, pub = ecc_pair()
    opts = SignatureOptions(ecc_encoding=encoding)  # type: ignore[arg-type]
    sig = signer_for(SignatureType.ECC, priv, opts).sign(b"signed range")
    verifier = verifier_for(SignatureType.ECC, pub, opts)
    if encoding == "raw":
        assert len(sig.r) == 32 and len(sig.s) == 32
    else:
        assert sig.r[0] == 0x30 and sig.s == b""
    assert verifier.verify(b"signed range", sig)
    assert not verifier.verify(b"signed rangE", sig)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert not verifier_for(SignatureType.ECC, other, opts).verify(b"signed range", sig)


def test_ecdsa_raw_encoding_details() -> None:
    priv, pub = ecc_pair()
    verifier = verifier_for(SignatureType.ECC, pub)
    der = priv.sign(b"m", ec.ECDSA(crypto._hash("sha256")))
    r, s = decode_dss_signature(der)
    sig = Signature(SignatureType.ECC, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    assert verifier.verify(b"m", sig)
    assert not verifier.verify(b"m", Signature(SignatureType.ECC, sig.r, flip(sig.s, 0)))
    assert not verifier.verify(b"m", Signature(SignatureType.ECC, bytes(32), sig.s))
    with pytest.raises(ProtocolError) as info:
        verifier.verify(b"m", Signature(SignatureType.ECC, bytes(40), sig.s))
    assert info.value.field == "signature.r"
    with pytest.raises(ProtocolError) as info:
        verifier.verify(b"m", Signature(SignatureType.ECC, sig.r, b""))
    assert info.value.field == "signature.s"
    der_verifier = verifier_for(SignatureType.ECC, pub, SignatureOptions(ecc_encoding="der"))
    assert der_verifier.verify(b"m", Signature(SignatureType.ECC, encode_dss_signature(r, s)))
    with pytest.raises(ProtocolError) as info:
        der_verifier.verify(b"m", Signature(SignatureType.ECC, b"\x30\x05garbage"))
    assert info.value.field == "signature.r"
    with pytest.raises(ProtocolError):
        der_verifier.verify(b"m", Signature(SignatureType.ECC, der, b"\x01"))


@settings(max_examples=60, deadline=None)
@given(
    r=st.binary(max_size=70),
    s=st.binary(max_size=70),
    which=st.sampled_from(["sm2", "rsa", "ecc", "ecc-der"]),
    sig_type=st.integers(0, 255),
)
def test_verify_fuzz_returns_bool_or_protocol_error(r: bytes, s: bytes, which: str, sig_type: int) -> None:
    kind = {"sm2": SignatureType.SM2, "rsa": SignatureType.RSA}.get(which, SignatureType.ECC)
    public = {"sm2": sm2_pair()[1], "rsa": rsa_pair()[1]}.get(which, ecc_pair()[1])
    opts = SignatureOptions(ecc_encoding="der" if which == "ecc-der" else "raw")
    verifier = verifier_for(kind, public, opts)  # type: ignore[arg-type]
    chosen = kind if sig_type % 2 else sig_type
    try:
        assert verifier.verify(b"data", Signature(chosen, r, s)) is False
    except ProtocolError as exc:
        assert exc.field in ("signature.r", "signature.s", "signature.type")


# ------------------------------------------------------------------ public keys on the wire


def test_rsa_public_key_wire_format() -> None:
    _, pub = rsa_pair()
    wire = encode_public_key(pub)
    assert len(wire) == 259 and wire[-3:] == b"\x01\x00\x01"  # modulus (256) || exponent 010001
    assert wire[:256] == pub.public_numbers().n.to_bytes(256, "big")
    back = decode_public_key(wire, SignatureType.RSA)
    assert isinstance(back, rsa.RSAPublicKey) and back.public_numbers() == pub.public_numbers()
    der = encode_public_key(pub, KeyFormatOptions(rsa="der"))
    assert der[0] == 0x30
    back = decode_public_key(der, Encryption.RSA)
    assert isinstance(back, rsa.RSAPublicKey) and back.public_numbers() == pub.public_numbers()
    small = rsa.generate_private_key(public_exponent=3, key_size=1024).public_key()
    assert len(encode_public_key(small)) == 129
    back = decode_public_key(encode_public_key(small), SignatureType.RSA)
    assert isinstance(back, rsa.RSAPublicKey) and back.public_numbers().e == 3
    for bad in (wire[:256], b"", b"\x01" * 20):
        with pytest.raises(ProtocolError) as info:
            decode_public_key(bad, SignatureType.RSA)
        assert info.value.field == "public_key"


@pytest.mark.parametrize("kind", [SignatureType.SM2, SignatureType.ECC])
def test_ec_public_key_wire_formats(kind: SignatureType) -> None:
    _, pub = sm2_pair() if kind == SignatureType.SM2 else ecc_pair()
    sizes = {"uncompressed": 65, "raw": 64, "compressed": 33, "der": 91}
    for fmt, size in sizes.items():
        wire = encode_public_key(pub, KeyFormatOptions(ec=fmt))  # type: ignore[arg-type]
        assert len(wire) == size
        back = decode_public_key(wire, kind)
        assert encode_public_key(back) == encode_public_key(pub)
    assert encode_public_key(pub)[0] == 0x04
    for bad in (b"", bytes(65), b"\x04" + bytes(64), bytes(63), b"\x05" + encode_public_key(pub)[1:]):
        with pytest.raises(ProtocolError) as info:
            decode_public_key(bad, kind)
        assert info.value.field == "public_key"


def test_sm2_point_validation() -> None:
    with pytest.raises(ProtocolError):
        Sm2PublicKey(GM_X, GM_Y + 1)
    wire = bytearray(sm2_pair()[1].to_bytes())
    wire[-1] ^= 1
    with pytest.raises(ProtocolError):
        Sm2PublicKey.from_bytes(bytes(wire))
    # x of 11·G starts with 0x04, the case gmssl's lstrip("04") mangles
    eleven = Sm2PrivateKey(11).public_key()
    assert eleven.to_bytes("raw")[0] == 0x04
    assert Sm2PublicKey.from_bytes(eleven.to_bytes("raw")) == eleven
    sig = signer_for(SignatureType.SM2, Sm2PrivateKey(11)).sign(b"m")
    assert verifier_for(SignatureType.SM2, eleven).verify(b"m", sig)


# ------------------------------------------------------------------ key loading and generation


@pytest.mark.parametrize("kind", list(SignatureType))
def test_generate_serialise_load(kind: SignatureType) -> None:
    priv, pub = generate_keypair(kind, rsa_bits=1024)
    priv2 = load_private_key(private_key_to_pem(priv), kind)
    pub2 = load_public_key(public_key_to_pem(pub))
    assert encode_public_key(priv2) == encode_public_key(pub)
    assert encode_public_key(pub2) == encode_public_key(pub)
    sig = signer_for(kind, priv2).sign(b"m")
    assert verifier_for(kind, pub2).verify(b"m", sig)
    wire_hex = encode_public_key(pub).hex()
    assert encode_public_key(load_public_key(wire_hex, kind)) == encode_public_key(pub)


def test_load_raw_and_hex_private_keys() -> None:
    sm2 = load_private_key(f"{GM_D:064x}", SignatureType.SM2)
    assert isinstance(sm2, Sm2PrivateKey) and sm2.public_key() == sm2_pair()[1]
    assert isinstance(load_private_key(GM_D.to_bytes(32, "big"), Encryption.SM2), Sm2PrivateKey)
    assert isinstance(load_private_key(f"0x{GM_D:064X}\n", SignatureType.SM2), Sm2PrivateKey)
    ecc = load_private_key(GM_D.to_bytes(32, "big"), SignatureType.ECC)
    assert isinstance(ecc, ec.EllipticCurvePrivateKey) and ecc.private_numbers().private_value == GM_D
    with pytest.raises(ProtocolError):
        load_private_key(GM_D.to_bytes(32, "big"))  # raw needs the algorithm
    with pytest.raises(ProtocolError):
        load_private_key(private_key_to_pem(sm2), SignatureType.RSA)  # family mismatch
    with pytest.raises(ProtocolError):
        load_private_key(bytes(32), SignatureType.SM2)  # d = 0


def test_key_material_never_in_errors_or_repr() -> None:
    priv = Sm2PrivateKey(GM_D)
    secret = f"{GM_D:064x}"
    assert secret not in repr(priv).lower() and "redacted" in repr(priv)
    assert "3945" not in repr(signer_for(SignatureType.SM2, priv))
    pem = private_key_to_pem(rsa_pair()[0])
    broken = pem[:200] + b"!!!!" + pem[204:]
    for bad in (broken, pem[:-60], b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
        with pytest.raises(ProtocolError) as info:
            load_private_key(bad)
        text = str(info.value)
        assert info.value.field == "key"
        assert "BEGIN" not in text and pem[40:60].decode() not in text
    with pytest.raises(ProtocolError) as info:
        load_private_key(secret[:-2] + "zz", SignatureType.SM2)
    assert secret[:20] not in str(info.value)


# ------------------------------------------------------------------ factories and key exchange


def test_cipher_for() -> None:
    assert isinstance(cipher_for(Encryption.NONE), NullCipher)
    assert cipher_for(0x01).encrypt(b"abc") == b"abc"
    assert cipher_for(Encryption.AES, key=bytes(16)).encryption == Encryption.AES
    assert cipher_for(0x05, key=bytes(16)).encryption == Encryption.SM4
    rpriv, rpub = rsa_pair()
    rsa_cipher = cipher_for(Encryption.RSA, public_key=rpub, private_key=rpriv)
    assert rsa_cipher.decrypt(rsa_cipher.encrypt(b"x")) == b"x"
    spriv, spub = sm2_pair()
    sm2_cipher = cipher_for(Encryption.SM2, public_key=spub, private_key=spriv)
    assert sm2_cipher.decrypt(sm2_cipher.encrypt(b"x")) == b"x"
    for value in (Encryption.ABNORMAL, Encryption.INVALID, 0x06, 0x00):
        with pytest.raises(ProtocolError) as info:
            cipher_for(value, key=bytes(16))
        assert info.value.field == "encryption"
    with pytest.raises(ProtocolError):
        cipher_for(Encryption.AES)
    with pytest.raises(ProtocolError):
        cipher_for(Encryption.SM2, public_key=rpub)
    with pytest.raises(ProtocolError):
        cipher_for(Encryption.RSA)
    with pytest.raises(ProtocolError):
        signer_for(SignatureType.SM2, rpriv)
    with pytest.raises(ProtocolError):
        verifier_for(SignatureType.RSA, spub)


def test_cipher_from_key_exchange() -> None:
    aes = cipher_from_key_exchange(Encryption.AES, bytes(range(32)))
    assert aes.encryption == Encryption.AES and aes.decrypt(aes.encrypt(b"k")) == b"k"
    sm4 = cipher_from_key_exchange(0x05, bytes(16), options=CipherOptions(block_mode="ecb"))
    assert sm4.decrypt(sm4.encrypt(b"k")) == b"k"
    rpriv, rpub = rsa_pair()
    to_peer = cipher_from_key_exchange(Encryption.RSA, encode_public_key(rpub))
    assert RsaCipher(private_key=rpriv).decrypt(to_peer.encrypt(b"hello")) == b"hello"
    spriv, spub = sm2_pair()
    to_sm2 = cipher_from_key_exchange(Encryption.SM2, spub.to_bytes("raw"), private_key=spriv)
    assert to_sm2.decrypt(to_sm2.encrypt(b"hello")) == b"hello"
    for key_type, key, field in (
        (0x01, bytes(16), "key_exchange.key_type"),
        (0x06, bytes(16), "key_exchange.key_type"),
        (Encryption.SM4, bytes(15), "key_exchange.key"),
        (Encryption.AES, bytes(20), "key_exchange.key"),
        (Encryption.SM2, bytes(65), "key_exchange.key"),
        (Encryption.RSA, bytes(10), "key_exchange.key"),
    ):
        with pytest.raises(ProtocolError) as info:
            cipher_from_key_exchange(key_type, key)
        assert info.value.field == field


def test_signed_range_flag() -> None:
    assert SIGN_INCLUDES_MARKER is False
    assert DEFAULT_SM2_USER_ID == b"1234567812345678"


# ------------------------------------------------------------------ OpenSSL as an independent SM2 reference


def _openssl_sm2() -> bool:
    if shutil.which("openssl") is None:
        return False
    probe = subprocess.run(["openssl", "genpkey", "-algorithm", "SM2"], capture_output=True, check=False)
    return probe.returncode == 0


needs_openssl = pytest.mark.skipif(not _openssl_sm2(), reason="openssl CLI with SM2 not available")


def _run(*args: str) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True).stdout


def _der_ints_and_octets(der: bytes) -> list[bytes]:
    """Flat list of the values inside a DER SEQUENCE of INTEGER/OCTET STRING (test helper)."""
    _, body, _ = crypto._der_read(der, 0)
    return [value for _, value in crypto._der_items(body)]


@needs_openssl
def test_openssl_sm2_keys_signatures_and_ciphertexts(tmp_path: Path) -> None:
    key_pem, pub_pem, msg = tmp_path / "k.pem", tmp_path / "pub.pem", tmp_path / "m.bin"
    _run("genpkey", "-algorithm", "SM2", "-out", str(key_pem))
    _run("pkey", "-in", str(key_pem), "-pubout", "-out", str(pub_pem))
    data = b"2025 realtime signed range \x00\xff"
    msg.write_bytes(data)
    priv = load_private_key(key_pem.read_bytes())
    pub = load_public_key(pub_pem.read_bytes())
    assert isinstance(priv, Sm2PrivateKey) and priv.public_key() == pub
    assert public_key_to_pem(pub) == pub_pem.read_bytes()

    # OpenSSL signs (SM3, default id) -> we verify
    sig_der = _run("dgst", "-sm3", "-sign", str(key_pem), "-sigopt", "distid:1234567812345678", str(msg))
    r, s = decode_dss_signature(sig_der)
    sig = Signature(SignatureType.SM2, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    assert verifier_for(SignatureType.SM2, pub).verify(data, sig)

    # we sign -> OpenSSL verifies
    ours = signer_for(SignatureType.SM2, priv).sign(data)
    sig_file = tmp_path / "sig.der"
    sig_file.write_bytes(encode_dss_signature(int.from_bytes(ours.r, "big"), int.from_bytes(ours.s, "big")))
    out = _run(
        "dgst",
        "-sm3",
        "-verify",
        str(pub_pem),
        "-sigopt",
        "distid:1234567812345678",
        "-signature",
        str(sig_file),
        str(msg),
    )
    assert b"Verified OK" in out

    # OpenSSL encrypts (ASN.1 x, y, C3, C2) -> we decrypt as C1C3C2
    ct = _run("pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub_pem), "-in", str(msg))
    x, y, c3, c2 = _der_ints_and_octets(ct)
    c1 = b"\x04" + int.from_bytes(x, "big").to_bytes(32, "big") + int.from_bytes(y, "big").to_bytes(32, "big")
    assert Sm2Cipher(private_key=priv).decrypt(c1 + c3 + c2) == data

    # our PKCS#8 PEM is readable by OpenSSL, and SEC1 "EC PRIVATE KEY" files load
    ours_pem = tmp_path / "ours.pem"
    ours_pem.write_bytes(private_key_to_pem(priv))
    assert _run("pkey", "-in", str(ours_pem), "-pubout") == pub_pem.read_bytes()
    sec1 = _run("ecparam", "-name", "SM2", "-genkey")
    sec1_key = load_private_key(sec1)
    assert isinstance(sec1_key, Sm2PrivateKey)
