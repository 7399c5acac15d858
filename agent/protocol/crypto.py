"""Data-unit encryption (encryption byte, §2.3) and 2025 signatures (Table 8) for GB/T 32960.

The standard names the algorithms but leaves mode, padding, IV, envelope and R/S encoding open;
the readings chosen here, and how to change them, are in ``docs/conformance.md`` ("Encryption
and signatures"). In short:

* AES (0x03, 128/192/256-bit keys) and SM4 (0x05): CBC + PKCS#7, random IV prepended
  (``CipherOptions.iv_mode`` = ``"prepend"`` | ``"fixed"`` | ``"zero"``; ``block_mode="ecb"``).
* RSA (0x02): OAEP-SHA256 (or OAEP-SHA1, PKCS#1 v1.5), plaintext cut into blocks of the key's
  maximum, ciphertext = the concatenated modulus-sized blocks.
* SM2 (0x04): GB/T 32918.4, C1C3C2 (or C1C2C3), C1 = 04||x||y (or x||y).
* Signatures: SM2 = SM3(Z_A || M) with user id "1234567812345678", R/S 32 bytes each;
  RSA = PKCS#1 v1.5 + SHA-256, whole signature in R, S empty; ECC = ECDSA P-256 + SHA-256,
  R/S fixed-width (or DER in R, S empty).

``cryptography`` provides AES, SM4, SM3, RSA and ECDSA; ``gmssl`` provides the SM2 curve
arithmetic and signing equation. On top of gmssl this module adds what it lacks or gets wrong:
the Z_A value for any user id, CSPRNG nonces (gmssl draws them from ``random``), point
validation, the C3 integrity check on decryption, C1 with its 0x04 prefix, and a verification
that handles the point-at-infinity cases. gmssl is not constant-time.

Every failure to decrypt or to parse a signature, key or ciphertext raises ``ProtocolError``
naming the field; messages never contain key material.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.ciphers import Cipher as _CryptoCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from gmssl.sm2 import CryptSM2, default_ecc_table

from agent.protocol.errors import ProtocolError
from agent.protocol.model import Cipher, Encryption, Signature, SignatureType, Signer, Verifier

__all__ = [
    "DEFAULT_SM2_USER_ID",
    "SIGN_INCLUDES_MARKER",
    "BlockCipher",
    "CipherOptions",
    "EcdsaSigner",
    "EcdsaVerifier",
    "KeyFormatOptions",
    "NullCipher",
    "PrivateKey",
    "PublicKey",
    "RsaCipher",
    "RsaSigner",
    "RsaVerifier",
    "SignatureOptions",
    "Sm2Cipher",
    "Sm2PrivateKey",
    "Sm2PublicKey",
    "Sm2Signer",
    "Sm2Verifier",
    "cipher_for",
    "cipher_from_key_exchange",
    "decode_public_key",
    "encode_public_key",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "private_key_to_pem",
    "public_key_to_pem",
    "signer_for",
    "sm2_z",
    "sm3",
    "verifier_for",
]

logger = logging.getLogger(__name__)

SIGN_INCLUDES_MARKER: Final = False
"""Whether the 0xFF marker before a realtime/reissue signature is inside the signed range.

2025 Table 7 says "from the collection time to the byte before the signature information";
rtm_con and EMQX stop before the 0xFF marker, and so does tbox by default. The codec reads this
flag (or its own option defaulting to it) when it cuts the signed range."""

DEFAULT_SM2_USER_ID: Final = b"1234567812345678"
"""GM/T 0009 default distinguishing identifier used in Z_A."""

_FIELD_DATA = "data_unit"
_BLOCK = 16

BlockMode: TypeAlias = Literal["cbc", "ecb"]
IvMode: TypeAlias = Literal["prepend", "fixed", "zero"]
RsaPadding: TypeAlias = Literal["oaep-sha256", "oaep-sha1", "pkcs1v15"]
Sm2Order: TypeAlias = Literal["c1c3c2", "c1c2c3"]
PointFormat: TypeAlias = Literal["uncompressed", "raw"]
EcKeyFormat: TypeAlias = Literal["uncompressed", "raw", "compressed", "der"]
RsaKeyFormat: TypeAlias = Literal["modulus-exponent", "der"]
EcdsaEncoding: TypeAlias = Literal["raw", "der"]
HashName: TypeAlias = Literal["sha256", "sha384", "sha512"]


def _check_choice(name: str, value: object, allowed: object) -> None:
    choices = get_args(allowed)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")


# =========================================================================== options


@dataclass(frozen=True)
class CipherOptions:
    """How a data-unit cipher is applied (the standard leaves all of it open).

    ``block_mode``/``iv_mode``/``iv`` apply to AES and SM4 (``iv_mode`` is ignored in ECB);
    ``rsa_padding`` to RSA; ``sm2_order``/``sm2_c1`` to SM2.
    """

    block_mode: BlockMode = "cbc"
    iv_mode: IvMode = "prepend"
    iv: bytes | None = None
    rsa_padding: RsaPadding = "oaep-sha256"
    sm2_order: Sm2Order = "c1c3c2"
    sm2_c1: PointFormat = "uncompressed"

    def __post_init__(self) -> None:
        _check_choice("block_mode", self.block_mode, BlockMode)
        _check_choice("iv_mode", self.iv_mode, IvMode)
        _check_choice("rsa_padding", self.rsa_padding, RsaPadding)
        _check_choice("sm2_order", self.sm2_order, Sm2Order)
        _check_choice("sm2_c1", self.sm2_c1, PointFormat)
        if self.block_mode == "cbc" and self.iv_mode == "fixed":
            if self.iv is None or len(self.iv) != _BLOCK:
                raise ValueError("iv_mode 'fixed' needs a 16-byte iv")
        elif self.iv is not None:
            raise ValueError("iv is only used with block_mode 'cbc' and iv_mode 'fixed'")

    def __repr__(self) -> str:
        return (
            f"CipherOptions(block_mode={self.block_mode!r}, iv_mode={self.iv_mode!r}, "
            f"iv={'<set>' if self.iv is not None else None}, rsa_padding={self.rsa_padding!r}, "
            f"sm2_order={self.sm2_order!r}, sm2_c1={self.sm2_c1!r})"
        )


@dataclass(frozen=True)
class SignatureOptions:
    """Signature conventions: SM2 user id, RSA/ECDSA hash, and ECDSA R/S encoding."""

    sm2_user_id: bytes = DEFAULT_SM2_USER_ID
    rsa_hash: HashName = "sha256"
    ecc_hash: HashName = "sha256"
    ecc_encoding: EcdsaEncoding = "raw"

    def __post_init__(self) -> None:
        _check_choice("rsa_hash", self.rsa_hash, HashName)
        _check_choice("ecc_hash", self.ecc_hash, HashName)
        _check_choice("ecc_encoding", self.ecc_encoding, EcdsaEncoding)
        if len(self.sm2_user_id) >= 8192:
            raise ValueError("sm2_user_id must be shorter than 8192 bytes (ENTL is 16 bits)")


@dataclass(frozen=True)
class KeyFormatOptions:
    """Public-key wire format for the 2025 activation (0x09) and key exchange (0x0B).

    ``rsa``: ``"modulus-exponent"`` = big-endian modulus (key size bytes) followed by the
    minimal big-endian public exponent (2048-bit/65537 gives 256 + 3 = 259 bytes, as seen in
    real frames) or ``"der"`` (SubjectPublicKeyInfo). ``ec`` (SM2 and ECC): ``"uncompressed"``
    04||x||y (65 bytes for 256-bit curves), ``"raw"`` x||y (64), ``"compressed"`` (33) or
    ``"der"``. Decoding accepts every one of these whatever is configured.
    """

    rsa: RsaKeyFormat = "modulus-exponent"
    ec: EcKeyFormat = "uncompressed"

    def __post_init__(self) -> None:
        _check_choice("rsa", self.rsa, RsaKeyFormat)
        _check_choice("ec", self.ec, EcKeyFormat)


def _hash(name: HashName) -> hashes.HashAlgorithm:
    if name == "sha384":
        return hashes.SHA384()
    if name == "sha512":
        return hashes.SHA512()
    return hashes.SHA256()


# =========================================================================== SM3 and SM2 keys


def sm3(data: bytes) -> bytes:
    """SM3 digest (GB/T 32905) of ``data``."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


_P: Final = int(default_ecc_table["p"], 16)
_A: Final = int(default_ecc_table["a"], 16)
_B: Final = int(default_ecc_table["b"], 16)
_N: Final = int(default_ecc_table["n"], 16)
_GX: Final = int(default_ecc_table["g"][:64], 16)
_GY: Final = int(default_ecc_table["g"][64:], 16)
_CURVE: Final = CryptSM2(private_key="", public_key="")  # curve arithmetic only, holds no key

# SubjectPublicKeyInfo header for an SM2 key: id-ecPublicKey + curve sm2p256v1, BIT STRING of 66.
_SM2_SPKI_PREFIX: Final = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
_OID_SM2_CURVE: Final = bytes.fromhex("06082a811ccf5501822d")
_OID_EC_PUBLIC_KEY: Final = bytes.fromhex("06072a8648ce3d0201")

_Point: TypeAlias = tuple[int, int]


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < _P and 0 <= y < _P and (y * y - (x * x * x + _A * x + _B)) % _P == 0


def _point_hex(p: _Point) -> str:
    return f"{p[0]:064x}{p[1]:064x}"


def _mul(k: int, p: _Point) -> _Point | None:
    """k·P with gmssl's Jacobian ladder; None for the point at infinity."""
    k %= _N
    if k == 0:
        return None
    out = _CURVE._kg(k, _point_hex(p))
    if out is None:
        return None
    text = str(out)
    return int(text[:64], 16), int(text[64:128], 16)


def _add(p1: _Point | None, p2: _Point | None) -> _Point | None:
    """P1 + P2, covering the infinity, doubling and inverse cases gmssl does not."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0]:
        return _mul(2, p1) if p1[1] == p2[1] else None
    jac = _CURVE._add_point(_point_hex(p1), _point_hex(p2))
    out = _CURVE._convert_jacb_to_nor(jac)
    if out is None:
        return None
    text = str(out)
    return int(text[:64], 16), int(text[64:128], 16)


def _sqrt_mod_p(v: int) -> int | None:
    root = pow(v, (_P + 1) // 4, _P)  # p ≡ 3 (mod 4)
    return root if root * root % _P == v % _P else None


def _decode_point(data: bytes, field: str) -> _Point:
    """SM2 point from 04||x||y (65), x||y (64) or 02/03||x (33); validated on the curve."""
    if len(data) == 65 and data[0] == 0x04:
        x, y = int.from_bytes(data[1:33], "big"), int.from_bytes(data[33:], "big")
    elif len(data) == 64:
        x, y = int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")
    elif len(data) == 33 and data[0] in (0x02, 0x03):
        x = int.from_bytes(data[1:], "big")
        if x >= _P:
            raise ProtocolError("SM2 point x is not a field element", field=field)
        y_root = _sqrt_mod_p(x * x * x + _A * x + _B)
        if y_root is None:
            raise ProtocolError("SM2 compressed point is not on the curve", field=field)
        y = y_root if (y_root & 1) == (data[0] & 1) else _P - y_root
    else:
        raise ProtocolError(
            f"SM2 point must be 65 bytes 04||x||y, 64 bytes x||y or 33 bytes compressed, "
            f"not {len(data)} bytes",
            field=field,
        )
    if not _on_curve(x, y):
        raise ProtocolError("SM2 point is not on the curve", field=field)
    return x, y


class Sm2PublicKey:
    """An SM2 public key (a validated point on the sm2p256v1 curve)."""

    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        if not _on_curve(x, y):
            raise ProtocolError("SM2 public key is not a point on the curve", field="public_key")
        self.x = x
        self.y = y

    @classmethod
    def from_bytes(cls, data: bytes) -> Sm2PublicKey:
        """From 04||x||y (65 bytes), x||y (64), compressed (33) or SubjectPublicKeyInfo DER."""
        return cls(*_decode_point(_strip_sm2_spki(bytes(data)), "public_key"))

    def to_bytes(self, fmt: EcKeyFormat = "uncompressed") -> bytes:
        """Encode as ``uncompressed`` 04||x||y, ``raw`` x||y, ``compressed`` or ``der`` SPKI."""
        xy = self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big")
        if fmt == "raw":
            return xy
        if fmt == "compressed":
            return bytes([0x02 | (self.y & 1)]) + xy[:32]
        if fmt == "der":
            return _SM2_SPKI_PREFIX + b"\x04" + xy
        return b"\x04" + xy

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sm2PublicKey) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))

    def __repr__(self) -> str:
        return f"Sm2PublicKey(x={self.x:064x}, y={self.y:064x})"


class Sm2PrivateKey:
    """An SM2 private key: scalar d in [1, n-2]. Its repr never shows d."""

    __slots__ = ("_d", "_public")

    def __init__(self, d: int) -> None:
        if not 1 <= d <= _N - 2:
            raise ProtocolError("SM2 private key scalar out of range [1, n-2]", field="key")
        self._d = d
        self._public: Sm2PublicKey | None = None

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        """A fresh key from the OS CSPRNG."""
        return cls(secrets.randbelow(_N - 2) + 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> Sm2PrivateKey:
        """From the 32-byte big-endian scalar."""
        if len(data) != 32:
            raise ProtocolError(f"SM2 private key must be 32 bytes, not {len(data)}", field="key")
        return cls(int.from_bytes(data, "big"))

    def private_bytes(self) -> bytes:
        """The 32-byte big-endian scalar (secret: never log it)."""
        return self._d.to_bytes(32, "big")

    def public_key(self) -> Sm2PublicKey:
        """d·G."""
        if self._public is None:
            point = _mul(self._d, (_GX, _GY))
            assert point is not None  # 1 <= d < n
            self._public = Sm2PublicKey(*point)
        return self._public

    def __repr__(self) -> str:
        return "Sm2PrivateKey(<redacted>)"


PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Sm2PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | Sm2PublicKey


def sm2_z(public_key: Sm2PublicKey, user_id: bytes = DEFAULT_SM2_USER_ID) -> bytes:
    """Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A) (GB/T 32918.2 §5.5)."""
    entl = (len(user_id) * 8).to_bytes(2, "big")
    parts = (_A, _B, _GX, _GY, public_key.x, public_key.y)
    return sm3(entl + user_id + b"".join(v.to_bytes(32, "big") for v in parts))


def _sm2_sign_digest(d: int, e: int, k: int | None = None) -> tuple[int, int]:
    """Raw SM2 signature of digest ``e`` (gmssl's equation; nonce from ``secrets`` unless given)."""
    signer = CryptSM2(private_key=f"{d:064x}", public_key="")
    while True:
        nonce = secrets.randbelow(_N - 1) + 1 if k is None else k
        out = signer.sign(e.to_bytes(32, "big"), f"{nonce:064x}")
        if out is not None:
            text = str(out)
            return int(text[:64], 16), int(text[64:128], 16)
        if k is not None:
            raise ValueError("the given nonce yields r = 0, r + k = n or s = 0")


def _sm2_verify_digest(public_key: Sm2PublicKey, e: int, r: int, s: int) -> bool:
    """GB/T 32918.2 §7: verification on gmssl's curve arithmetic, with range checks."""
    if not (1 <= r < _N and 1 <= s < _N):
        return False
    t = (r + s) % _N
    if t == 0:
        return False
    point = _add(_mul(s, (_GX, _GY)), _mul(t, (public_key.x, public_key.y)))
    if point is None:
        return False
    return (e + point[0]) % _N == r


def _sm2_kdf(z: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 1
    while len(out) < length:
        out += sm3(z + counter.to_bytes(4, "big"))
        counter += 1
    return bytes(out[:length])


def _xor(a: bytes, b: bytes) -> bytes:
    if not a:
        return b""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


# =========================================================================== ciphers


class NullCipher:
    """Encryption byte 0x01: the data unit travels in clear."""

    @property
    def encryption(self) -> Encryption:
        """Always ``Encryption.NONE``."""
        return Encryption.NONE

    def encrypt(self, plaintext: bytes) -> bytes:
        """Identity."""
        return bytes(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Identity."""
        return bytes(ciphertext)

    def ciphertext_length(self, plaintext_length: int) -> int:
        """L for a data unit of ``plaintext_length`` bytes."""
        return plaintext_length


class BlockCipher:
    """AES (0x03; 16/24/32-byte keys) or SM4 (0x05; 16-byte key) with PKCS#7 padding.

    CBC with the IV handling of ``options.iv_mode``: ``prepend`` puts a fresh random IV in
    front of the ciphertext, ``fixed`` uses ``options.iv``, ``zero`` an all-zero IV; or ECB.
    """

    def __init__(self, encryption: Encryption, key: bytes, options: CipherOptions | None = None) -> None:
        if encryption == Encryption.AES:
            if len(key) not in (16, 24, 32):
                raise ProtocolError(f"AES key must be 16, 24 or 32 bytes, not {len(key)}", field="key")
        elif encryption == Encryption.SM4:
            if len(key) != 16:
                raise ProtocolError(f"SM4 key must be 16 bytes, not {len(key)}", field="key")
        else:
            raise ProtocolError(f"{encryption!r} is not a block cipher", field="encryption")
        self._encryption = encryption
        self._key = bytes(key)
        self._options = options or CipherOptions()

    @property
    def encryption(self) -> Encryption:
        """``Encryption.AES`` or ``Encryption.SM4``."""
        return self._encryption

    def __repr__(self) -> str:
        return f"BlockCipher({self._encryption.name}, key=<redacted>, {self._options!r})"

    def _algorithm(self) -> algorithms.AES | algorithms.SM4:
        if self._encryption == Encryption.AES:
            return algorithms.AES(self._key)
        return algorithms.SM4(self._key)

    def _mode(self, iv: bytes) -> modes.CBC | modes.ECB:
        return modes.ECB() if self._options.block_mode == "ecb" else modes.CBC(iv)

    def _fixed_iv(self) -> bytes:
        if self._options.iv_mode == "fixed" and self._options.iv is not None:
            return self._options.iv
        return bytes(_BLOCK)

    def ciphertext_length(self, plaintext_length: int) -> int:
        """L for a data unit of ``plaintext_length`` bytes."""
        padded = (plaintext_length // _BLOCK + 1) * _BLOCK
        prepend = self._options.block_mode == "cbc" and self._options.iv_mode == "prepend"
        return padded + (_BLOCK if prepend else 0)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Pad (PKCS#7) and encrypt; with ``iv_mode="prepend"`` the output starts with the IV."""
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        prepend = self._options.block_mode == "cbc" and self._options.iv_mode == "prepend"
        iv = secrets.token_bytes(_BLOCK) if prepend else self._fixed_iv()
        enc = _CryptoCipher(self._algorithm(), self._mode(iv)).encryptor()
        body = enc.update(padded) + enc.finalize()
        return iv + body if prepend else body

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt and unpad; ``ProtocolError`` (field ``data_unit``) on any failure."""
        prepend = self._options.block_mode == "cbc" and self._options.iv_mode == "prepend"
        name = self._encryption.name
        if prepend:
            if len(ciphertext) < 2 * _BLOCK:
                raise ProtocolError(
                    f"{name} ciphertext of {len(ciphertext)} bytes is shorter than IV + one block",
                    field=_FIELD_DATA,
                )
            iv, body = bytes(ciphertext[:_BLOCK]), bytes(ciphertext[_BLOCK:])
        else:
            iv, body = self._fixed_iv(), bytes(ciphertext)
        if not body or len(body) % _BLOCK:
            raise ProtocolError(
                f"{name} ciphertext body of {len(body)} bytes is not a positive multiple of 16",
                field=_FIELD_DATA,
            )
        dec = _CryptoCipher(self._algorithm(), self._mode(iv)).decryptor()
        padded = dec.update(body) + dec.finalize()
        unpadder = sym_padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise ProtocolError(
                f"{name} decryption failed: bad PKCS#7 padding (wrong key, IV or mode, or corrupted data)",
                field=_FIELD_DATA,
            ) from None


def _rsa_padding(name: RsaPadding) -> asym_padding.AsymmetricPadding:
    if name == "pkcs1v15":
        return asym_padding.PKCS1v15()
    algo: hashes.HashAlgorithm = hashes.SHA1() if name == "oaep-sha1" else hashes.SHA256()
    return asym_padding.OAEP(mgf=asym_padding.MGF1(algorithm=algo), algorithm=algo, label=None)


def _rsa_overhead(name: RsaPadding) -> int:
    if name == "pkcs1v15":
        return 11
    return 2 * (20 if name == "oaep-sha1" else 32) + 2


class RsaCipher:
    """RSA (0x02): the plaintext is cut into blocks of the padding's maximum for the key, each is
    encrypted separately, and the ciphertext is the concatenation of modulus-sized blocks (an
    empty plaintext still gives one block). ``encrypt`` needs the peer's public key,
    ``decrypt`` our private key; a cipher may hold either or both.

    PKCS#1 v1.5 decryption with a wrong key may not be detected: OpenSSL's implicit rejection
    returns pseudo-random bytes instead of failing. OAEP always detects it.
    """

    def __init__(
        self,
        public_key: rsa.RSAPublicKey | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
        options: CipherOptions | None = None,
    ) -> None:
        if public_key is None and private_key is None:
            raise ProtocolError("RSA cipher needs a public or a private key", field="key")
        self._public = public_key
        self._private = private_key
        self._options = options or CipherOptions()
        key_size = public_key.key_size if public_key is not None else private_key.key_size  # type: ignore[union-attr]
        self._block = (key_size + 7) // 8
        self._chunk = self._block - _rsa_overhead(self._options.rsa_padding)
        if self._chunk < 1:
            raise ProtocolError("RSA key too small for the configured padding", field="key")

    @property
    def encryption(self) -> Encryption:
        """``Encryption.RSA``."""
        return Encryption.RSA

    def __repr__(self) -> str:
        return f"RsaCipher({self._block * 8}-bit, padding={self._options.rsa_padding!r})"

    def ciphertext_length(self, plaintext_length: int) -> int:
        """L for a data unit of ``plaintext_length`` bytes."""
        return max(1, -(-plaintext_length // self._chunk)) * self._block

    def encrypt(self, plaintext: bytes) -> bytes:
        """Encrypt block by block to the public key."""
        if self._public is None:
            raise ProtocolError("RSA cipher has no public key to encrypt to", field="key")
        pad = _rsa_padding(self._options.rsa_padding)
        chunks = [plaintext[i : i + self._chunk] for i in range(0, len(plaintext), self._chunk)] or [b""]
        return b"".join(self._public.encrypt(bytes(c), pad) for c in chunks)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt block by block with the private key; ``ProtocolError`` on any failure."""
        if self._private is None:
            raise ProtocolError("RSA cipher has no private key to decrypt with", field="key")
        if not ciphertext or len(ciphertext) % self._block:
            raise ProtocolError(
                f"RSA ciphertext of {len(ciphertext)} bytes is not a positive multiple of "
                f"the {self._block}-byte block",
                field=_FIELD_DATA,
            )
        pad = _rsa_padding(self._options.rsa_padding)
        out = bytearray()
        for i in range(0, len(ciphertext), self._block):
            try:
                out += self._private.decrypt(bytes(ciphertext[i : i + self._block]), pad)
            except ValueError:
                raise ProtocolError(
                    f"RSA decryption failed at block {i // self._block} "
                    "(wrong key, padding or corrupted data)",
                    field=_FIELD_DATA,
                ) from None
        return bytes(out)


class Sm2Cipher:
    """SM2 public-key encryption (0x04), GB/T 32918.4: C1 = k·G, C3 = SM3(x2||M||y2),
    C2 = M xor KDF(x2||y2). Order C1C3C2 (default) or C1C2C3; C1 as 04||x||y (default) or x||y.
    ``encrypt`` needs the peer's public key, ``decrypt`` our private key.
    """

    def __init__(
        self,
        public_key: Sm2PublicKey | None = None,
        private_key: Sm2PrivateKey | None = None,
        options: CipherOptions | None = None,
    ) -> None:
        if public_key is None and private_key is None:
            raise ProtocolError("SM2 cipher needs a public or a private key", field="key")
        self._public = public_key
        self._private = private_key
        self._options = options or CipherOptions()

    @property
    def encryption(self) -> Encryption:
        """``Encryption.SM2``."""
        return Encryption.SM2

    def __repr__(self) -> str:
        return f"Sm2Cipher(order={self._options.sm2_order!r}, c1={self._options.sm2_c1!r})"

    @property
    def _c1_len(self) -> int:
        return 65 if self._options.sm2_c1 == "uncompressed" else 64

    def ciphertext_length(self, plaintext_length: int) -> int:
        """L for a data unit of ``plaintext_length`` bytes (C1 + 32 + plaintext)."""
        return self._c1_len + 32 + plaintext_length

    def encrypt(self, plaintext: bytes, *, _k: int | None = None) -> bytes:
        """Encrypt to the public key (``_k`` fixes the nonce, for known-answer tests only)."""
        if self._public is None:
            raise ProtocolError("SM2 cipher has no public key to encrypt to", field="key")
        peer = (self._public.x, self._public.y)
        msg = bytes(plaintext)
        while True:
            k = secrets.randbelow(_N - 1) + 1 if _k is None else _k
            c1 = _mul(k, (_GX, _GY))
            shared = _mul(k, peer)
            assert c1 is not None and shared is not None  # 1 <= k < n, prime order, cofactor 1
            x2, y2 = (v.to_bytes(32, "big") for v in shared)
            t = _sm2_kdf(x2 + y2, len(msg))
            if msg and not any(t):
                if _k is not None:
                    raise ValueError("the given nonce gives an all-zero KDF output")
                continue
            break
        c1_bytes = Sm2PublicKey(*c1).to_bytes(self._options.sm2_c1)
        c2 = _xor(msg, t)
        c3 = sm3(x2 + msg + y2)
        return c1_bytes + (c3 + c2 if self._options.sm2_order == "c1c3c2" else c2 + c3)

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt with the private key, checking C1 on the curve and C3; ``ProtocolError`` else."""
        if self._private is None:
            raise ProtocolError("SM2 cipher has no private key to decrypt with", field="key")
        data = bytes(ciphertext)
        c1_len = self._c1_len
        if len(data) < c1_len + 32:
            raise ProtocolError(
                f"SM2 ciphertext of {len(data)} bytes is shorter than C1 + C3 ({c1_len + 32})",
                field=_FIELD_DATA,
            )
        if c1_len == 65 and data[0] != 0x04:
            raise ProtocolError("SM2 C1 does not start with 0x04 (uncompressed point)", field=_FIELD_DATA)
        c1 = _decode_point(data[:c1_len], _FIELD_DATA)
        rest = data[c1_len:]
        if self._options.sm2_order == "c1c3c2":
            c3, c2 = rest[:32], rest[32:]
        else:
            c2, c3 = rest[:-32], rest[-32:]
        shared = _mul(self._private._d, c1)
        if shared is None:  # cannot happen for a validated point on a prime-order curve
            raise ProtocolError("SM2 C1 gives the point at infinity", field=_FIELD_DATA)
        x2, y2 = (v.to_bytes(32, "big") for v in shared)
        t = _sm2_kdf(x2 + y2, len(c2))
        if c2 and not any(t):
            raise ProtocolError("SM2 KDF output is all zero", field=_FIELD_DATA)
        msg = _xor(c2, t)
        if not hmac.compare_digest(sm3(x2 + msg + y2), c3):
            raise ProtocolError(
                "SM2 decryption failed: C3 hash mismatch (wrong key, ciphertext order or corrupted data)",
                field=_FIELD_DATA,
            )
        return msg


# =========================================================================== signatures


def _int_field(value: bytes, width: int, field: str) -> int:
    """Big-endian integer of at most ``width`` bytes (one extra leading 0x00 tolerated)."""
    if len(value) == width + 1 and value[0] == 0:
        value = value[1:]
    if not 1 <= len(value) <= width:
        raise ProtocolError(f"must be 1..{width} bytes, not {len(value)}", field=field)
    return int.from_bytes(value, "big")


def _check_type(signature: Signature, expected: SignatureType) -> None:
    if signature.sig_type != expected:
        got = signature.sig_type
        raise ProtocolError(
            f"signature type 0x{int(got):02X} does not match the verifier's "
            f"{expected.name} (0x{int(expected):02X})",
            field="signature.type",
        )


class Sm2Signer:
    """SM2 signature: e = SM3(Z_A || M), R = r and S = s as 32-byte big-endian integers."""

    def __init__(self, private_key: Sm2PrivateKey, user_id: bytes = DEFAULT_SM2_USER_ID) -> None:
        self._key = private_key
        self._user_id = bytes(user_id)
        self._z = sm2_z(private_key.public_key(), self._user_id)

    def __repr__(self) -> str:
        return "Sm2Signer(key=<redacted>)"

    def sign(self, data: bytes) -> Signature:
        """Sign ``data`` (the codec's signed range)."""
        e = int.from_bytes(sm3(self._z + bytes(data)), "big")
        r, s = _sm2_sign_digest(self._key._d, e)
        return Signature(SignatureType.SM2, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


class Sm2Verifier:
    """Checks SM2 signatures (R, S: 32 bytes each; shorter or 0x00-prefixed 33 tolerated)."""

    def __init__(self, public_key: Sm2PublicKey, user_id: bytes = DEFAULT_SM2_USER_ID) -> None:
        self._key = public_key
        self._z = sm2_z(public_key, bytes(user_id))

    def verify(self, data: bytes, signature: Signature) -> bool:
        """True if valid, False if not; ``ProtocolError`` if malformed."""
        _check_type(signature, SignatureType.SM2)
        r = _int_field(signature.r, 32, "signature.r")
        s = _int_field(signature.s, 32, "signature.s")
        e = int.from_bytes(sm3(self._z + bytes(data)), "big")
        return _sm2_verify_digest(self._key, e, r, s)


class RsaSigner:
    """RSA PKCS#1 v1.5 signature (SHA-256 by default); the whole signature in R, S empty."""

    def __init__(self, private_key: rsa.RSAPrivateKey, hash_name: HashName = "sha256") -> None:
        _check_choice("hash_name", hash_name, HashName)
        self._key = private_key
        self._hash = hash_name

    def __repr__(self) -> str:
        return f"RsaSigner({self._key.key_size}-bit, {self._hash}, key=<redacted>)"

    def sign(self, data: bytes) -> Signature:
        """Sign ``data``."""
        sig = self._key.sign(bytes(data), asym_padding.PKCS1v15(), _hash(self._hash))
        return Signature(SignatureType.RSA, sig, b"")


class RsaVerifier:
    """Checks RSA PKCS#1 v1.5 signatures: R = modulus-sized signature, S must be empty."""

    def __init__(self, public_key: rsa.RSAPublicKey, hash_name: HashName = "sha256") -> None:
        _check_choice("hash_name", hash_name, HashName)
        self._key = public_key
        self._hash = hash_name
        self._size = (public_key.key_size + 7) // 8

    def verify(self, data: bytes, signature: Signature) -> bool:
        """True if valid, False if not; ``ProtocolError`` if malformed."""
        _check_type(signature, SignatureType.RSA)
        if len(signature.r) != self._size:
            raise ProtocolError(
                f"RSA signature must be {self._size} bytes, not {len(signature.r)}", field="signature.r"
            )
        if signature.s:
            raise ProtocolError(f"must be empty for RSA, not {len(signature.s)} bytes", field="signature.s")
        try:
            self._key.verify(bytes(signature.r), bytes(data), asym_padding.PKCS1v15(), _hash(self._hash))
        except InvalidSignature:
            return False
        return True


def _ec_width(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


class EcdsaSigner:
    """ECDSA (ECC, 0x03; P-256 + SHA-256 by default): R, S fixed-width raw, or DER in R."""

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        hash_name: HashName = "sha256",
        encoding: EcdsaEncoding = "raw",
    ) -> None:
        _check_choice("hash_name", hash_name, HashName)
        _check_choice("encoding", encoding, EcdsaEncoding)
        self._key = private_key
        self._hash = hash_name
        self._encoding = encoding
        self._width = _ec_width(private_key.curve)

    def __repr__(self) -> str:
        return f"EcdsaSigner({self._key.curve.name}, {self._hash}, {self._encoding}, key=<redacted>)"

    def sign(self, data: bytes) -> Signature:
        """Sign ``data``."""
        der = self._key.sign(bytes(data), ec.ECDSA(_hash(self._hash)))
        if self._encoding == "der":
            return Signature(SignatureType.ECC, der, b"")
        r, s = decode_dss_signature(der)
        return Signature(SignatureType.ECC, r.to_bytes(self._width, "big"), s.to_bytes(self._width, "big"))


class EcdsaVerifier:
    """Checks ECDSA signatures in the configured encoding (raw R/S or DER in R with S empty)."""

    def __init__(
        self,
        public_key: ec.EllipticCurvePublicKey,
        hash_name: HashName = "sha256",
        encoding: EcdsaEncoding = "raw",
    ) -> None:
        _check_choice("hash_name", hash_name, HashName)
        _check_choice("encoding", encoding, EcdsaEncoding)
        self._key = public_key
        self._hash = hash_name
        self._encoding = encoding
        self._width = _ec_width(public_key.curve)

    def verify(self, data: bytes, signature: Signature) -> bool:
        """True if valid, False if not; ``ProtocolError`` if malformed."""
        _check_type(signature, SignatureType.ECC)
        if self._encoding == "der":
            if signature.s:
                raise ProtocolError("must be empty with DER-encoded ECDSA", field="signature.s")
            try:
                r, s = decode_dss_signature(bytes(signature.r))
            except ValueError:
                raise ProtocolError("not a DER ECDSA signature", field="signature.r") from None
        else:
            r = _int_field(signature.r, self._width, "signature.r")
            s = _int_field(signature.s, self._width, "signature.s")
        try:
            self._key.verify(encode_dss_signature(r, s), bytes(data), ec.ECDSA(_hash(self._hash)))
        except InvalidSignature:
            return False
        return True


# =========================================================================== keys: load, encode


def _family(algorithm: SignatureType | Encryption | int | None) -> SignatureType | None:
    """Key family from a signature type or an encryption byte (RSA/SM2)."""
    if algorithm is None:
        return None
    if isinstance(algorithm, Encryption):
        mapping = {Encryption.RSA: SignatureType.RSA, Encryption.SM2: SignatureType.SM2}
        if algorithm not in mapping:
            raise ProtocolError(f"{algorithm.name} has no key pair", field="key")
        return mapping[algorithm]
    try:
        return SignatureType(algorithm)
    except ValueError:
        raise ProtocolError(f"unknown key algorithm 0x{int(algorithm):02X}", field="key") from None


def _key_family(key: PrivateKey | PublicKey) -> SignatureType:
    if isinstance(key, Sm2PrivateKey | Sm2PublicKey):
        return SignatureType.SM2
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return SignatureType.RSA
    return SignatureType.ECC


def _expect_family(key: PrivateKey | PublicKey, family: SignatureType | None) -> None:
    if family is not None and _key_family(key) != family:
        raise ProtocolError(f"key is {_key_family(key).name}, expected {family.name}", field="key")


def _der_read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER TLV at ``pos``: (tag, value, next position). Raises ValueError if truncated."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 3 or pos + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos : pos + length], pos + length


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    items, pos = [], 0
    while pos < len(data):
        tag, value, pos = _der_read(data, pos)
        items.append((tag, value))
    return items


def _der(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + value


def _sm2_private_from_der(der: bytes) -> Sm2PrivateKey:
    """SM2 key from PKCS#8 PrivateKeyInfo or SEC1 ECPrivateKey DER (as OpenSSL writes them)."""
    tag, body, _ = _der_read(der, 0)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    items = _der_items(body)
    if len(items) >= 3 and items[1][0] == 0x30 and items[2][0] == 0x04:  # PKCS#8
        tag, body, _ = _der_read(items[2][1], 0)
        if tag != 0x30:
            raise ValueError("PKCS#8 payload is not an ECPrivateKey")
        items = _der_items(body)
    if len(items) < 2 or items[0] != (0x02, b"\x01") or items[1][0] != 0x04:
        raise ValueError("not an ECPrivateKey")
    return Sm2PrivateKey(int.from_bytes(items[1][1], "big"))


def _sm2_private_to_der(key: Sm2PrivateKey) -> bytes:
    """PKCS#8 PrivateKeyInfo holding a SEC1 ECPrivateKey, as OpenSSL writes SM2 keys."""
    public = _der(0xA1, _der(0x03, b"\x00" + key.public_key().to_bytes("uncompressed")))
    ec_key = _der(0x30, _der(0x02, b"\x01") + _der(0x04, key.private_bytes()) + public)
    algo = _der(0x30, _OID_EC_PUBLIC_KEY + _OID_SM2_CURVE)
    return _der(0x30, _der(0x02, b"\x00") + algo + _der(0x04, ec_key))


def _pem_body(data: bytes, label: bytes) -> bytes:
    """DER of the first PEM block whose label contains ``label``; ValueError if none or bad."""
    inside, body = False, list[bytes]()
    for line in (ln.strip() for ln in data.splitlines()):
        if line.startswith(b"-----BEGIN"):
            inside = label in line
        elif line.startswith(b"-----END"):
            if inside:
                return base64.b64decode(b"".join(body), validate=True)
        elif inside and line and b":" not in line:
            body.append(line)
    raise ValueError("no PEM block")


def _as_bytes(data: bytes | str) -> tuple[bytes, bool]:
    """Key text or bytes → (bytes, is_pem). Hex text (with optional 0x, whitespace) is decoded."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    stripped = raw.strip()
    if stripped.startswith(b"-----BEGIN"):
        return stripped, True
    text = b"".join(stripped.split())
    if text[:2].lower() == b"0x":
        text = text[2:]
    if text and len(text) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in text):
        return binascii.unhexlify(text), False
    if isinstance(data, str):
        raise ProtocolError("key text is neither PEM nor hex", field="key")
    return raw, False


def load_private_key(
    data: bytes | str,
    algorithm: SignatureType | Encryption | None = None,
    *,
    password: bytes | None = None,
    curve: ec.EllipticCurve | None = None,
) -> PrivateKey:
    """Load a private key from PEM, DER (PKCS#8/SEC1/PKCS#1) or a raw scalar (bytes or hex).

    A raw 32-byte scalar needs ``algorithm`` (SM2, or ECC on ``curve``, default P-256). SM2 PEM/DER
    (curve OID 1.2.156.10197.1.301) loads as ``Sm2PrivateKey``. Errors name field ``key`` and
    never echo the key.
    """
    family = _family(algorithm)
    raw, is_pem = _as_bytes(data)
    try:
        if is_pem or (raw[:1] == b"\x30" and len(raw) > 40):
            try:
                der = _pem_body(raw, b"PRIVATE KEY") if is_pem else raw
            except (ValueError, binascii.Error):
                der = b""
            if _OID_SM2_CURVE in der:
                key: PrivateKey = _sm2_private_from_der(der)
            else:
                loaded = (
                    serialization.load_pem_private_key(raw, password)
                    if is_pem
                    else serialization.load_der_private_key(raw, password)
                )
                if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
                    raise ProtocolError(f"unsupported key type {type(loaded).__name__}", field="key")
                key = loaded
        elif family == SignatureType.SM2:
            key = Sm2PrivateKey.from_bytes(raw)
        elif family == SignatureType.ECC:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), curve or ec.SECP256R1())
        else:
            raise ProtocolError("a raw private key needs algorithm SM2 or ECC", field="key")
    except ProtocolError:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error) as exc:
        raise ProtocolError(f"cannot load private key ({type(exc).__name__})", field="key") from None
    _expect_family(key, family)
    return key


def load_public_key(
    data: bytes | str,
    algorithm: SignatureType | Encryption | None = None,
    *,
    curve: ec.EllipticCurve | None = None,
) -> PublicKey:
    """Load a public key from PEM, DER (SubjectPublicKeyInfo) or any wire form
    ``decode_public_key`` accepts (bytes or hex; then ``algorithm`` is required)."""
    family = _family(algorithm)
    raw, is_pem = _as_bytes(data)
    if is_pem:
        try:
            raw = _pem_body(raw, b"PUBLIC KEY")
        except (ValueError, binascii.Error):
            raise ProtocolError("cannot load public key (bad PEM)", field="public_key") from None
    if family is None:
        if raw.startswith(_SM2_SPKI_PREFIX):
            family = SignatureType.SM2
        else:
            try:
                loaded = serialization.load_der_public_key(raw)
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise ProtocolError(
                    f"cannot load public key ({type(exc).__name__}); give the algorithm for raw keys",
                    field="public_key",
                ) from None
            if not isinstance(loaded, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
                raise ProtocolError(f"unsupported key type {type(loaded).__name__}", field="public_key")
            return loaded
    return decode_public_key(raw, family, curve=curve)


def encode_public_key(key: PublicKey | PrivateKey, options: KeyFormatOptions | None = None) -> bytes:
    """Public key bytes for the activation (0x09) / key exchange (0x0B) ``key`` field."""
    opts = options or KeyFormatOptions()
    pub = _public_of(key)
    if isinstance(pub, Sm2PublicKey):
        return pub.to_bytes(opts.ec)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if isinstance(pub, rsa.RSAPublicKey):
        if opts.rsa == "der":
            return pub.public_bytes(serialization.Encoding.DER, spki)
        nums = pub.public_numbers()
        e_len = (nums.e.bit_length() + 7) // 8
        return nums.n.to_bytes((pub.key_size + 7) // 8, "big") + nums.e.to_bytes(e_len, "big")
    if opts.ec == "der":
        return pub.public_bytes(serialization.Encoding.DER, spki)
    if opts.ec == "compressed":
        return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return point[1:] if opts.ec == "raw" else point


def decode_public_key(
    data: bytes,
    algorithm: SignatureType | Encryption | int,
    *,
    curve: ec.EllipticCurve | None = None,
    field: str = "public_key",
) -> PublicKey:
    """Parse a public key received on the wire (0x09 / 0x0B), whatever ``KeyFormatOptions`` form.

    RSA: SubjectPublicKeyInfo DER, or modulus || exponent where the modulus is a multiple of
    16 bytes and the exponent the 1..15 bytes left over. SM2/ECC: 04||x||y, x||y, compressed
    or DER (ECC on ``curve``, default P-256).
    """
    family = _family(algorithm)
    raw = bytes(data)
    if family == SignatureType.SM2:
        return Sm2PublicKey(*_decode_point(_strip_sm2_spki(raw), field))
    if family == SignatureType.RSA:
        if raw[:1] == b"\x30":
            try:
                loaded = serialization.load_der_public_key(raw)
                if isinstance(loaded, rsa.RSAPublicKey):
                    return loaded
            except (ValueError, UnsupportedAlgorithm):
                pass
        e_len = len(raw) % 16
        if e_len == 0 or len(raw) < 64 + e_len:
            raise ProtocolError(
                f"RSA public key of {len(raw)} bytes is not modulus (multiple of 16) + exponent (1..15)",
                field=field,
            )
        n = int.from_bytes(raw[:-e_len], "big")
        e = int.from_bytes(raw[-e_len:], "big")
        try:
            return rsa.RSAPublicNumbers(e, n).public_key()
        except ValueError:
            raise ProtocolError("invalid RSA modulus or exponent", field=field) from None
    crv = curve or ec.SECP256R1()
    width = _ec_width(crv)
    try:
        if raw[:1] == b"\x30":
            loaded = serialization.load_der_public_key(raw)
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise ProtocolError("DER key is not an EC key", field=field)
            return loaded
        if len(raw) == 2 * width:
            raw = b"\x04" + raw
        return ec.EllipticCurvePublicKey.from_encoded_point(crv, raw)
    except (ValueError, UnsupportedAlgorithm):
        raise ProtocolError(f"not a valid {crv.name} point ({len(raw)} bytes)", field=field) from None


def _strip_sm2_spki(raw: bytes) -> bytes:
    if len(raw) == len(_SM2_SPKI_PREFIX) + 65 and raw.startswith(_SM2_SPKI_PREFIX):
        return raw[len(_SM2_SPKI_PREFIX) :]
    return raw


def _public_of(key: PublicKey | PrivateKey) -> PublicKey:
    if isinstance(key, Sm2PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key.public_key()
    return key


def public_key_to_pem(key: PublicKey | PrivateKey) -> bytes:
    """SubjectPublicKeyInfo PEM (SM2 with the sm2p256v1 curve OID, as OpenSSL writes it)."""
    pub = _public_of(key)
    if isinstance(pub, Sm2PublicKey):
        return _pem(b"PUBLIC KEY", pub.to_bytes("der"))
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (for tests and simulator fleets; protect the file)."""
    if isinstance(key, Sm2PrivateKey):
        return _pem(b"PRIVATE KEY", _sm2_private_to_der(key))
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(label: bytes, der: bytes) -> bytes:
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN " + label + b"-----\n" + b"\n".join(lines) + b"\n-----END " + label + b"-----\n"


def generate_keypair(
    sig_type: SignatureType | Encryption,
    *,
    rsa_bits: int = 2048,
    curve: ec.EllipticCurve | None = None,
) -> tuple[PrivateKey, PublicKey]:
    """A fresh (private, public) pair: SM2, RSA (``rsa_bits``, e = 65537) or ECC (P-256)."""
    family = _family(sig_type)
    if family == SignatureType.SM2:
        sm2_key = Sm2PrivateKey.generate()
        return sm2_key, sm2_key.public_key()
    if family == SignatureType.RSA:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        return rsa_key, rsa_key.public_key()
    ec_key = ec.generate_private_key(curve or ec.SECP256R1())
    return ec_key, ec_key.public_key()


# =========================================================================== factories


def cipher_for(
    encryption: Encryption | int,
    *,
    key: bytes | None = None,
    public_key: PublicKey | None = None,
    private_key: PrivateKey | None = None,
    options: CipherOptions | None = None,
) -> Cipher:
    """The cipher for an encryption byte.

    AES/SM4 take the symmetric ``key``; RSA/SM2 take the peer's ``public_key`` (to encrypt)
    and/or our ``private_key`` (to decrypt). NONE gives a pass-through cipher.
    """
    try:
        enc = Encryption(encryption)
    except ValueError:
        raise ProtocolError(f"reserved encryption byte 0x{int(encryption):02X}", field="encryption") from None
    if enc == Encryption.NONE:
        return NullCipher()
    if enc in (Encryption.AES, Encryption.SM4):
        if key is None:
            raise ProtocolError(f"{enc.name} needs a symmetric key", field="key")
        return BlockCipher(enc, key, options)
    if enc == Encryption.RSA:
        if public_key is not None and not isinstance(public_key, rsa.RSAPublicKey):
            raise ProtocolError("RSA encryption needs an RSA public key", field="key")
        if private_key is not None and not isinstance(private_key, rsa.RSAPrivateKey):
            raise ProtocolError("RSA encryption needs an RSA private key", field="key")
        return RsaCipher(public_key, private_key, options)
    if enc == Encryption.SM2:
        if public_key is not None and not isinstance(public_key, Sm2PublicKey):
            raise ProtocolError("SM2 encryption needs an SM2 public key", field="key")
        if private_key is not None and not isinstance(private_key, Sm2PrivateKey):
            raise ProtocolError("SM2 encryption needs an SM2 private key", field="key")
        return Sm2Cipher(public_key, private_key, options)
    raise ProtocolError(f"encryption {enc.name} (0x{enc:02X}) has no cipher", field="encryption")


def cipher_from_key_exchange(
    key_type: Encryption | int,
    key: bytes,
    *,
    private_key: PrivateKey | None = None,
    options: CipherOptions | None = None,
    curve: ec.EllipticCurve | None = None,
) -> Cipher:
    """Turn a received key exchange (0x0B: key type + key) into a cipher.

    AES (16/24/32 bytes) and SM4 (16) keys are used directly. For RSA and SM2 the key is the
    peer's public key (any ``decode_public_key`` form) to encrypt to; pass ``private_key`` to
    decrypt what the peer sends back. Errors name ``key_exchange.key_type`` / ``key_exchange.key``.
    """
    try:
        enc = Encryption(key_type)
    except ValueError:
        enc = None
    if enc not in (Encryption.RSA, Encryption.AES, Encryption.SM2, Encryption.SM4):
        raise ProtocolError(
            f"key type 0x{int(key_type):02X} is not RSA, AES, SM2 or SM4", field="key_exchange.key_type"
        )
    logger.debug("key exchange: %s key of %d bytes", enc.name, len(key))
    try:
        if enc in (Encryption.AES, Encryption.SM4):
            return BlockCipher(enc, bytes(key), options)
        public = decode_public_key(bytes(key), enc, curve=curve, field="key_exchange.key")
        return cipher_for(enc, public_key=public, private_key=private_key, options=options)
    except ProtocolError as exc:
        if exc.field == "key":
            raise ProtocolError(exc.reason, field="key_exchange.key") from None
        raise


def signer_for(
    sig_type: SignatureType | int, private_key: PrivateKey, options: SignatureOptions | None = None
) -> Signer:
    """The signer for a 2025 signature type and a private key of that family."""
    opts = options or SignatureOptions()
    family = _family(sig_type)
    _expect_family(private_key, family)
    if isinstance(private_key, Sm2PrivateKey):
        return Sm2Signer(private_key, opts.sm2_user_id)
    if isinstance(private_key, rsa.RSAPrivateKey):
        return RsaSigner(private_key, opts.rsa_hash)
    return EcdsaSigner(private_key, opts.ecc_hash, opts.ecc_encoding)


def verifier_for(
    sig_type: SignatureType | int, public_key: PublicKey, options: SignatureOptions | None = None
) -> Verifier:
    """The verifier for a 2025 signature type and a public key of that family."""
    opts = options or SignatureOptions()
    family = _family(sig_type)
    _expect_family(public_key, family)
    if isinstance(public_key, Sm2PublicKey):
        return Sm2Verifier(public_key, opts.sm2_user_id)
    if isinstance(public_key, rsa.RSAPublicKey):
        return RsaVerifier(public_key, opts.rsa_hash)
    return EcdsaVerifier(public_key, opts.ecc_hash, opts.ecc_encoding)
