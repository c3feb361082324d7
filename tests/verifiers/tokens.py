"""Keys, claims, token minting and a replay-store fake shared by the verifier tests.

Also used by tests/interop (jose-minted tokens) so both suites speak the same
profile: one issuer, one audience, one nonce, one fixed clock.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from verifiers.age_token import AgeTokenVerifier
from verifiers.base import Presentation, VerifierServices, VerifyContext

__all__ = [
    "AUDIENCE",
    "DROP",
    "ISSUER",
    "NONCE",
    "NOW",
    "MemoryReplay",
    "Signer",
    "context",
    "good_claims",
    "make_signer",
    "make_verifier",
    "presentation",
    "pyjwt_token",
    "write_jwks",
]

ISSUER = "https://age.example"
AUDIENCE = "https://shop.example"
NONCE = "n-0123456789abcdef"
NOW = 1_750_000_000.0
DROP = object()  # a claim value meaning "leave this claim out"


@dataclass
class MemoryReplay:
    """The ReplayGuard contract in memory: False on the second sight of a value."""

    seen: set[tuple[str, str]] = field(default_factory=set)
    calls: list[tuple[str, float]] = field(default_factory=list)

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        self.calls.append((namespace, expires_at))
        if (namespace, value) in self.seen:
            return False
        self.seen.add((namespace, value))
        return True


@dataclass(frozen=True)
class Signer:
    """A provider signing key: private key object, alg, kid and both JWK forms."""

    alg: str
    kid: str
    key: Any
    public_jwk: dict[str, Any]
    private_jwk: dict[str, Any]


def make_signer(alg: str = "ES256", kid: str | None = None) -> Signer:
    """A fresh key pair for ``alg`` (ES256, ES384, EdDSA or PS256/RS256)."""
    key: Any
    if alg == "ES256":
        key, codec = ec.generate_private_key(ec.SECP256R1()), ECAlgorithm
    elif alg == "ES384":
        key, codec = ec.generate_private_key(ec.SECP384R1()), ECAlgorithm
    elif alg == "EdDSA":
        key, codec = ed25519.Ed25519PrivateKey.generate(), OKPAlgorithm
    else:
        key, codec = rsa.generate_private_key(public_exponent=65537, key_size=2048), RSAAlgorithm
    kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
    public = json.loads(codec.to_jwk(key.public_key()))
    private = json.loads(codec.to_jwk(key))
    for jwk_dict in (public, private):
        jwk_dict.update(kid=kid, use="sig")
    return Signer(alg, kid, key, public, private)


def good_claims(now: float = NOW, **overrides: Any) -> dict[str, Any]:
    """A conforming payload; ``claim=DROP`` removes a claim."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(now) - 5,
        "exp": int(now) + 120,
        "jti": uuid.uuid4().hex,
        "nonce": NONCE,
        "age_over_18": True,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not DROP}


def pyjwt_token(
    signer: Signer, claims: Mapping[str, Any], *, alg: str | None = None, **header: Any
) -> str:
    """Sign ``claims`` with PyJWT's JWS layer, which signs any JSON as given (no claim checks).

    ``header`` overrides ``typ`` / ``kid``; a value of None drops the member.
    """
    headers: dict[str, Any] = {"typ": "age-token+jwt", "kid": signer.kid, **header}
    headers = {k: v for k, v in headers.items() if v is not None}
    payload = json.dumps(dict(claims)).encode()
    return jwt.api_jws.encode(payload, signer.key, algorithm=alg or signer.alg, headers=headers)


def write_jwks(path: Path, signers: Iterable[Signer]) -> Path:
    path.write_text(json.dumps({"keys": [s.public_jwk for s in signers]}))
    return path


def make_verifier(jwks_file: Path, name: str = "test-token", **config: Any) -> AgeTokenVerifier:
    settings = {"kind": "age-token", "issuer": ISSUER, "jwks_file": str(jwks_file), **config}
    return AgeTokenVerifier(name, settings, VerifierServices(base_dir=str(jwks_file.parent)))


def context(
    replay: MemoryReplay | None = None, *, now: float = NOW, nonce: str | None = NONCE
) -> VerifyContext:
    return VerifyContext(
        audience=AUDIENCE, expected_nonce=nonce, now=now, replay=replay or MemoryReplay()
    )


def presentation(token: str) -> Presentation:
    return Presentation(credential=token, channel="authorization")
