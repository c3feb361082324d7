"""Issuer SDK: what an age-verification provider needs to mint ``age-token+jwt`` tokens.

A provider checks a visitor's age its own way, then calls
:func:`issue_age_token` with the thresholds it proved and the ``nonce`` and
audience the gateway sent, and publishes :func:`jwks` of its keys.  The claims
follow docs/token-profile.md (SPEC §5) exactly; nothing here can add an
identity claim, because the function has no parameter for one.

The signing algorithm follows from the key type, so a key can never be used
with two algorithms: ES256 (P-256), ES384 (P-384), EdDSA (Ed25519), PS256
(RSA, at least 2048 bits).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from verifiers.b64url import b64url_encode
from verifiers.base import AssuranceLevel

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_LIFETIME",
    "TOKEN_TYPE",
    "PrivateKey",
    "PublicKey",
    "algorithm_for",
    "generate_signing_key",
    "issue_age_token",
    "jwk_thumbprint",
    "jwks",
    "load_signing_key",
    "public_jwk",
    "signing_key_pem",
]

TOKEN_TYPE = "age-token+jwt"  # noqa: S105 (a media type, not a secret)
DEFAULT_MAX_LIFETIME = 300.0
ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256")
MIN_RSA_BITS = 2048
MAX_ID_LENGTH = 512  # jti and nonce: gateways refuse longer ones rather than store them
MAX_METHOD_LENGTH = 64
# What gateways accept (verifiers.token_profile): ids are visible ASCII, age_method printable ASCII.
_ID = re.compile(r"[\x21-\x7e]+")
_METHOD = re.compile(r"[\x20-\x7e]+")

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

_CURVE_ALG = {"secp256r1": ("P-256", "ES256"), "secp384r1": ("P-384", "ES384")}
# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


def _b64url(data: bytes) -> str:
    return b64url_encode(data)


def _uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(size, "big"))


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    if isinstance(key, PrivateKey):
        return key.public_key()
    if isinstance(key, PublicKey):
        return key
    raise TypeError(
        f"unsupported key type {type(key).__name__}: use EC P-256/P-384, Ed25519 or RSA"
    )


def algorithm_for(key: PrivateKey | PublicKey) -> str:
    """The one JWS ``alg`` this key signs with; ``ValueError`` for a key we refuse."""
    public = _public(key)
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in _CURVE_ALG:
            raise ValueError(f"unsupported EC curve {public.curve.name}: use P-256 or P-384")
        return _CURVE_ALG[public.curve.name][1]
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if public.key_size < MIN_RSA_BITS:
        raise ValueError(f"an RSA key needs at least {MIN_RSA_BITS} bits, got {public.key_size}")
    return "PS256"


def _bare_jwk(public: PublicKey) -> dict[str, str]:
    """The required public members only (the input of an RFC 7638 thumbprint)."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        crv = _CURVE_ALG[public.curve.name][0]
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8  # RFC 7518 §6.2.1.2: full field length
        return {"kty": "EC", "crv": crv, "x": _uint(numbers.x, size), "y": _uint(numbers.y, size)}
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    rsa_numbers = public.public_numbers()
    return {"kty": "RSA", "n": _uint(rsa_numbers.n), "e": _uint(rsa_numbers.e)}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(str(kty))
    if members is None:
        raise ValueError(f"cannot take the thumbprint of key type {kty!r}")
    missing = [name for name in members if not isinstance(jwk.get(name), str)]
    if missing:
        raise ValueError(f"a {kty} JWK needs the member(s) {', '.join(missing)}")
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk(key: PrivateKey | PublicKey, *, kid: str | None = None) -> dict[str, str]:
    """The public JWK of ``key`` with ``kid`` (default: its thumbprint), ``alg`` and ``use``."""
    alg = algorithm_for(key)
    jwk = _bare_jwk(_public(key))
    return {**jwk, "kid": kid or jwk_thumbprint(jwk), "alg": alg, "use": "sig"}


def jwks(*keys: PrivateKey | PublicKey | Mapping[str, str]) -> dict[str, list[dict[str, str]]]:
    """A JWK Set to publish at ``jwks_uri``; entries may be keys or ready JWKs (custom kid)."""
    entries = [dict(key) if isinstance(key, Mapping) else public_jwk(key) for key in keys]
    kids = [entry.get("kid") for entry in entries]
    if len(set(kids)) != len(kids):
        raise ValueError("two keys in one JWKS share a kid")
    return {"keys": entries}


def generate_signing_key(alg: str = "ES256") -> PrivateKey:
    """A new private key for ``alg`` (ES256, ES384, EdDSA or PS256)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ES384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "PS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    raise ValueError(f"unsupported algorithm {alg!r} (allowed: {', '.join(ALGORITHMS)})")


def signing_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM of a private key, unencrypted (protect the file, not the bytes)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_signing_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key and check that it is a type this profile signs with."""
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, PrivateKey):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    algorithm_for(key)  # refuses P-521, short RSA keys
    return key


def _checked_age_over(age_over: Mapping[int, bool]) -> dict[str, bool]:
    if not age_over:
        raise ValueError("age_over needs at least one threshold")
    claims: dict[str, bool] = {}
    for threshold, proven in sorted(age_over.items()):
        # bool is an int subclass; True as a threshold is a caller bug, not age 1.
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise ValueError(f"an age threshold is a whole number, got {threshold!r}")
        if not 1 <= threshold <= 99:
            raise ValueError(f"an age threshold is from 1 to 99, got {threshold}")
        if not isinstance(proven, bool):
            raise ValueError(f"age_over[{threshold}] must be true or false, got {proven!r}")
        claims[f"age_over_{threshold}"] = proven
    return claims


def _non_empty(
    name: str, value: object, max_length: int | None = None, charset: re.Pattern[str] | None = None
) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    if max_length is not None and len(value) > max_length:
        raise ValueError(f"{name} must be at most {max_length} characters")
    if charset is not None and not charset.fullmatch(value):
        raise ValueError(f"{name} must be printable ASCII (no spaces in ids)")
    return value


def issue_age_token(
    key: PrivateKey,
    *,
    issuer: str,
    audience: str,
    nonce: str,
    age_over: Mapping[int, bool],
    kid: str | None = None,
    assurance_level: str | None = None,
    age_method: str | None = None,
    lifetime: float = 120,
    now: float | None = None,
    jti: str | None = None,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
) -> str:
    """Sign an ``age-token+jwt`` (JWS compact) carrying only the profile's claims.

    ``age_over`` maps each threshold checked to whether the visitor reached it
    (``{18: True, 21: False}``).  ``lifetime`` is capped by ``max_lifetime``
    (300 s, the gateway's default ``max_token_lifetime``) so that a token we
    issue is never refused as ``lifetime_too_long`` by a default gateway.
    """
    alg = algorithm_for(key)
    claims: dict[str, Any] = {
        "iss": _non_empty("issuer", issuer),
        "aud": _non_empty("audience", audience),
    }
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        raise ValueError(f"lifetime must be a number of seconds, got {lifetime!r}")
    if not 1 <= lifetime <= max_lifetime:
        raise ValueError(f"lifetime must be from 1 to {max_lifetime:g} seconds, got {lifetime:g}")
    issued_at = math.floor(time.time() if now is None else now)
    claims["iat"] = issued_at
    # Rounded down so that exp - iat never exceeds the lifetime the caller asked for.
    claims["exp"] = issued_at + math.floor(lifetime)
    claims["jti"] = (
        _non_empty("jti", jti, MAX_ID_LENGTH, _ID)
        if jti is not None
        else _b64url(secrets.token_bytes(16))
    )
    claims["nonce"] = _non_empty("nonce", nonce, MAX_ID_LENGTH, _ID)
    claims.update(_checked_age_over(age_over))
    if assurance_level is not None:
        try:
            claims["assurance_level"] = AssuranceLevel.parse(assurance_level).label
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    if age_method is not None:
        claims["age_method"] = _non_empty("age_method", age_method, MAX_METHOD_LENGTH, _METHOD)
    header = {"typ": TOKEN_TYPE, "kid": kid or public_jwk(key)["kid"]}
    return jwt.encode(claims, key, algorithm=alg, headers=header)
