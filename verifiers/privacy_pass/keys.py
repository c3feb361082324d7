"""Issuer public keys for token type 2: the RFC 9578 §6.5 SPKI encoding and ``token_key_id``.

RFC 9578 fixes how a type 2 key is written: a DER SubjectPublicKeyInfo whose
algorithm is ``id-RSASSA-PSS`` with explicit parameters (SHA-384, MGF1 with
SHA-384, salt length 48), and ``token_key_id = SHA-256(that DER)``.  Tools
usually export the plain ``rsaEncryption`` SPKI instead, so we accept either
and always re-encode to the RFC form: two encodings of one key then have one
key id, and an ``id-RSASSA-PSS`` SPKI with other parameters is refused.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from verifiers.privacy_pass.structs import NK, StructError

__all__ = [
    "PSS_ALGORITHM_IDENTIFIER",
    "IssuerPublicKey",
    "encode_spki",
    "load_public_key",
    "parse_spki",
    "spki_pem",
]

# AlgorithmIdentifier { id-RSASSA-PSS, RSASSA-PSS-params { sha384, mgf1(sha384), 48 } }
# exactly as in RFC 9578 §6.5 (the `openssl asn1parse` listing there).
PSS_ALGORITHM_IDENTIFIER = bytes.fromhex(
    "303d06092a864886f70d01010a3030a00d300b0609608648016503040202a11a30180609"
    "2a864886f70d010108300b0609608648016503040202a203020130"
)
_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")
_PSS_OID = bytes.fromhex("06092a864886f70d01010a")


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _der_integer(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive
    return _der(0x02, raw)


def encode_spki(n: int, e: int) -> bytes:
    """The RFC 9578 §6.5 SPKI of the RSA public key ``(n, e)``."""
    rsa_public_key = _der(0x30, _der_integer(n) + _der_integer(e))
    bit_string = _der(0x03, b"\x00" + rsa_public_key)
    return _der(0x30, PSS_ALGORITHM_IDENTIFIER + bit_string)


def parse_spki(der: bytes) -> tuple[int, int]:
    """``(n, e)`` from an ``id-RSASSA-PSS`` (RFC 9578 parameters) or ``rsaEncryption`` SPKI."""
    if _PSS_OID in der[:32] and not der[4:].startswith(PSS_ALGORITHM_IDENTIFIER):
        raise StructError("RSASSA-PSS key with parameters other than SHA-384/MGF1-SHA-384/48")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError, IndexError):
        raise StructError("not a DER SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise StructError("not an RSA public key")
    numbers = key.public_numbers()
    return numbers.n, numbers.e


def spki_pem(spki: bytes) -> bytes:
    """PEM ``PUBLIC KEY`` armour around a DER SPKI."""
    body = base64.encodebytes(spki).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"
    ).encode()


@dataclass(frozen=True, slots=True)
class IssuerPublicKey:
    """One issuer key: its modulus and exponent, RFC 9578 SPKI and key id."""

    n: int
    e: int
    spki: bytes
    token_key_id: bytes
    # Built once per key: rebuilding it from (n, e) costs about as much as the
    # RSA-PSS check itself, on every token.
    public_key: rsa.RSAPublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_key", rsa.RSAPublicNumbers(self.e, self.n).public_key())

    @classmethod
    def from_numbers(cls, n: int, e: int) -> IssuerPublicKey:
        if (n.bit_length() + 7) // 8 != NK:
            raise StructError("token type 2 needs a 2048-bit RSA key")
        spki = encode_spki(n, e)
        return cls(n, e, spki, hashlib.sha256(spki).digest())

    @classmethod
    def from_spki(cls, der: bytes) -> IssuerPublicKey:
        return cls.from_numbers(*parse_spki(der))

    @property
    def truncated_id(self) -> int:
        """The last byte of ``token_key_id`` (what a TokenRequest carries)."""
        return self.token_key_id[-1]

    def cryptography_key(self) -> rsa.RSAPublicKey:
        return self.public_key


def load_public_key(path: Path) -> IssuerPublicKey:
    """An issuer key from a PEM or DER SPKI file; ``ValueError`` says what is wrong."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----BEGIN"):
        text = data.decode("ascii", "replace")
        if "BEGIN PUBLIC KEY" not in text:
            raise ValueError(f"{path}: expected a PEM 'PUBLIC KEY' (SPKI)")
        body = text.split("-----BEGIN PUBLIC KEY-----", 1)[1].split("-----END", 1)[0]
        try:
            data = base64.b64decode("".join(body.split()), validate=True)
        except ValueError:
            raise ValueError(f"{path}: the PEM body is not base64") from None
    try:
        return IssuerPublicKey.from_spki(data)
    except StructError as exc:
        raise ValueError(f"{path}: {exc}") from None
