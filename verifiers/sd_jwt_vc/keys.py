"""Which key signed an issuer JWT: an ``x5c`` chain to a trust anchor, or a JWKS ``kid``.

``x5c`` (RFC 7515 §4.1.6, standard base64 DER, leaf first) is checked with
cryptography's X.509 path validation against the operator's
``trust_anchors`` at the presentation's time; the leaf's extended key
usage is not constrained (issuer certificates are not TLS certificates),
CA certificates keep the WebPKI rules (basicConstraints, keyUsage).  A
chain that does not reach an anchor, or any certificate expired or not yet
valid, is ``untrusted_chain``.  A ``kid`` is looked up in the verifier's
JWKS (:class:`verifiers.jwks.JwksCache`) as for age tokens.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import verification
from jwt.algorithms import Algorithm
from jwt.exceptions import InvalidKeyError, PyJWKError

from verifiers.base import VerificationError
from verifiers.jwks import KEY_TYPE_FOR_ALG, JwksCache

__all__ = ["MAX_CHAIN", "IssuerKeys", "load_trust_anchors", "public_key_of_jwk", "verify_with"]

MAX_CHAIN = 5
_MAX_CERT_B64 = 8192
_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

PublicKey = Any  # a cryptography public key object


def load_trust_anchors(path: Path) -> tuple[x509.Certificate, ...]:
    """The PEM certificates in ``path``; ``ValueError`` naming ``trust_anchors`` otherwise."""
    try:
        anchors = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as error:
        raise ValueError(
            f"trust_anchors: cannot read PEM certificates from {str(path)!r}"
        ) from error
    if not anchors:
        raise ValueError(f"trust_anchors: no certificate in {str(path)!r}")
    return tuple(anchors)


def _key_matches(key: PublicKey, alg: str) -> bool:
    kty, curves = KEY_TYPE_FOR_ALG.get(alg, ("", None))
    if isinstance(key, ec.EllipticCurvePublicKey):
        return kty == "EC" and curves is not None and _CURVES.get(key.curve.name) in curves
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return kty == "OKP"
    if isinstance(key, rsa.RSAPublicKey):
        return kty == "RSA" and key.key_size >= 2048
    return False


def verify_with(
    key: PublicKey, alg: str, algorithms: Mapping[str, Algorithm], signing_input: bytes, sig: bytes
) -> bool:
    """True when ``sig`` over ``signing_input`` verifies with ``key`` under allowed ``alg``."""
    algorithm = algorithms.get(alg)
    if algorithm is None or not _key_matches(key, alg):
        return False
    try:
        return bool(algorithm.verify(signing_input, key, sig))
    except (InvalidSignature, ValueError, TypeError):
        return False


def public_key_of_jwk(value: object) -> PublicKey:
    """The public key of a ``cnf.jwk``; ``malformed`` for a private, symmetric or broken key."""
    if not isinstance(value, Mapping) or value.get("kty") not in ("EC", "OKP", "RSA"):
        raise VerificationError("malformed", "cnf.jwk is not a public EC, OKP or RSA key")
    if {"d", "p", "q", "k"} & set(value):
        raise VerificationError("malformed", "cnf.jwk carries private key material")
    try:
        return jwt.PyJWK(dict(value)).key
    except (PyJWKError, InvalidKeyError, ValueError, TypeError) as error:
        raise VerificationError("malformed", "cnf.jwk is not a usable key") from error


class IssuerKeys:
    """Resolves the issuer JWT's key from its header, under the verifier's trust settings."""

    def __init__(self, anchors: Sequence[x509.Certificate], jwks: JwksCache | None) -> None:
        self._store = verification.Store(list(anchors)) if anchors else None
        self._jwks = jwks

    async def key_for(self, header: Mapping[str, Any], now: float) -> PublicKey:
        """The public key to check the signature with, or a refusal."""
        x5c = header.get("x5c")
        if x5c is not None:
            if self._store is None:
                raise VerificationError("untrusted_chain", "x5c sent but no trust_anchors set")
            return self._chain_key(x5c, now)
        kid = header.get("kid")
        if self._jwks is None:
            raise VerificationError("untrusted_chain", "no x5c chain to a trust anchor")
        if not isinstance(kid, str) or not kid:
            raise VerificationError("unknown_kid", "header kid is required")
        return (await self._jwks.get(kid, now)).jwk.key

    def _chain_key(self, x5c: object, now: float) -> PublicKey:
        if (
            not isinstance(x5c, list)
            or not 0 < len(x5c) <= MAX_CHAIN
            or not all(isinstance(c, str) and len(c) <= _MAX_CERT_B64 for c in x5c)
        ):
            raise VerificationError("malformed", "x5c is not a short list of certificates")
        try:
            chain = [
                x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c
            ]
        except (ValueError, binascii.Error) as error:
            raise VerificationError("malformed", "x5c holds something not a certificate") from error
        builder = (
            verification.PolicyBuilder()
            .store(self._store)  # type: ignore[arg-type]
            .time(datetime.fromtimestamp(now, UTC))
            .max_chain_depth(MAX_CHAIN)
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
        )
        try:
            builder.build_client_verifier().verify(chain[0], chain[1:])
        except verification.VerificationError as error:
            raise VerificationError(
                "untrusted_chain", "x5c does not chain to a trust anchor"
            ) from error
        return chain[0].public_key()

    async def warm(self) -> None:
        """Fetch the JWKS now, if there is one."""
        if self._jwks is not None:
            await self._jwks.refresh()

    async def aclose(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()
