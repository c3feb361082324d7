"""COSE_Sign1 (RFC 9052 §4.2) with ES256, and EC2 P-256 COSE_Keys, on ``cryptography`` alone.

Written by hand rather than with pycose: the mdoc profile needs one algorithm
and one key type, the Sig_structure is four lines, and pycose 1.1 breaks on
cbor2 6 (tagged arrays decode as tuples), which would pin cbor2 below 6.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from verifiers.base import VerificationError
from verifiers.mdoc.cbor import as_bytes, as_list, as_map, decode, encode, malformed

__all__ = [
    "ALG",
    "ES256",
    "X5CHAIN",
    "CoseSign1",
    "cose_key_to_public",
    "parse_sign1",
    "public_to_cose_key",
    "sig_structure",
    "sign1",
    "verify_es256",
]

ALG = 1  # COSE header label "alg"
X5CHAIN = 33  # RFC 9360 header label
ES256 = -7
_COSE_SIGN1_TAG = 18


@dataclass(frozen=True, slots=True)
class CoseSign1:
    """A parsed COSE_Sign1: protected header bytes as received, and the rest."""

    protected_bytes: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes | None
    signature: bytes

    @property
    def alg(self) -> Any:
        """The ``alg`` header, protected first (RFC 9052 says it belongs there)."""
        return self.protected.get(ALG, self.unprotected.get(ALG))

    def header(self, label: int) -> Any:
        """A header parameter, protected bucket first."""
        if label in self.protected:
            return self.protected[label]
        return self.unprotected.get(label)


def parse_sign1(value: Any, what: str) -> CoseSign1:
    """A COSE_Sign1 array (tagged 18 or untagged) from decoded CBOR, else ``malformed``."""
    if isinstance(value, cbor2.CBORTag):
        if value.tag != _COSE_SIGN1_TAG:
            malformed(f"{what}: unexpected tag {value.tag}")
        value = value.value
    parts = as_list(value, what)
    if len(parts) != 4:
        malformed(f"{what}: COSE_Sign1 has four parts")
    protected_bytes = as_bytes(parts[0], f"{what} protected header")
    protected = (
        as_map(decode(protected_bytes), f"{what} protected header") if protected_bytes else {}
    )
    unprotected = as_map(parts[1], f"{what} unprotected header")
    payload = parts[2]
    if payload is not None:
        payload = as_bytes(payload, f"{what} payload")
    signature = as_bytes(parts[3], f"{what} signature")
    return CoseSign1(protected_bytes, protected, unprotected, payload, signature)


def sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    """The bytes a COSE_Sign1 signs: ``["Signature1", protected, external_aad=h'', payload]``."""
    return encode(["Signature1", protected_bytes, b"", payload])


def verify_es256(
    message: CoseSign1, key: ec.EllipticCurvePublicKey, payload: bytes | None = None
) -> bool:
    """True if ``message`` (its own payload, or the detached ``payload``) verifies under ``key``."""
    body = payload if payload is not None else message.payload
    if body is None or len(message.signature) != 64:
        return False
    if not isinstance(key.curve, ec.SECP256R1):
        return False
    r = int.from_bytes(message.signature[:32], "big")
    s = int.from_bytes(message.signature[32:], "big")
    try:
        key.verify(
            encode_dss_signature(r, s),
            sig_structure(message.protected_bytes, body),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        return False
    return True


def sign1(
    key: ec.EllipticCurvePrivateKey,
    payload: bytes,
    *,
    unprotected: Mapping[Any, Any] | None = None,
    detached: bool = False,
) -> list[Any]:
    """An ES256 COSE_Sign1 array (for the reference issuer and wallet)."""
    protected_bytes = encode({ALG: ES256})
    der = key.sign(sig_structure(protected_bytes, payload), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return [protected_bytes, dict(unprotected or {}), None if detached else payload, signature]


def cose_key_to_public(value: Any) -> ec.EllipticCurvePublicKey:
    """An EC2 P-256 COSE_Key (kty 2, crv 1) as a public key; anything else is ``malformed``."""
    key = as_map(value, "deviceKey")
    if key.get(1) != 2 or key.get(-1) != 1:
        raise VerificationError("alg_not_allowed", "device key is not an EC2 P-256 key")
    x = as_bytes(key.get(-2), "deviceKey x")
    y = as_bytes(key.get(-3), "deviceKey y")
    if len(x) != 32 or len(y) != 32:
        malformed("deviceKey: P-256 coordinates are 32 bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError:
        malformed("deviceKey: not a point on P-256")


def public_to_cose_key(key: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The EC2 P-256 COSE_Key of ``key``."""
    numbers = key.public_numbers()
    return {1: 2, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
