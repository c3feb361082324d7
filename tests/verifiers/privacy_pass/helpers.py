"""Shared test helpers: issuer keys written to disk, a verifier over them, tokens minted locally."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from verifiers.base import VerifierServices, VerifyContext
from verifiers.privacy_pass import blindrsa
from verifiers.privacy_pass.client import authorization_value, begin_issuance, finish_issuance
from verifiers.privacy_pass.keys import spki_pem
from verifiers.privacy_pass.structs import Token, TokenChallenge, TokenResponse
from verifiers.privacy_pass.verifier import PrivacyPassVerifier
from verifiers.reference.issuer import IssuerKey

__all__ = [
    "AUDIENCE",
    "ISSUER_NAME",
    "SECRET",
    "MemoryReplay",
    "context",
    "make_verifier",
    "mint",
    "write_keys",
]

AUDIENCE = "http://localhost:8080"
ISSUER_NAME = "localhost:8081"
SECRET = bytes(range(32))


class MemoryReplay:
    """A ReplayGuard in a dict (the gateway's stores are tested elsewhere)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        if (namespace, value) in self.seen:
            return False
        self.seen[(namespace, value)] = expires_at
        return True


def write_keys(directory: Path, keys: Mapping[int, IssuerKey]) -> dict[str, str]:
    """Public halves as SPKI PEM files; returns a ``token_keys`` config mapping."""
    config = {}
    for threshold, key in keys.items():
        path = directory / f"pp-{threshold}.spki.pem"
        path.write_bytes(spki_pem(key.public.spki))
        config[str(threshold)] = str(path)
    return config


def make_verifier(
    token_keys: Mapping[str, Any], name: str = "test-pp", **config: Any
) -> PrivacyPassVerifier:
    services = VerifierServices(audience=AUDIENCE, secret=SECRET)
    return PrivacyPassVerifier(
        name, {"issuer_name": ISSUER_NAME, "token_keys": dict(token_keys), **config}, services
    )


def mint(challenge: TokenChallenge | bytes, key: IssuerKey) -> Token:
    """A token for ``challenge`` signed by ``key`` (client and issuer in one, as tests need)."""
    raw = challenge.serialize() if isinstance(challenge, TokenChallenge) else challenge
    request, pending = begin_issuance(raw, key.public)
    return finish_issuance(
        pending, TokenResponse(blindrsa.blind_sign(key.private, request.blinded_msg))
    )


def context(
    now: float, replay: MemoryReplay | None = None, nonce: str | None = None
) -> VerifyContext:
    return VerifyContext(
        audience=AUDIENCE, expected_nonce=nonce, now=now, replay=replay or MemoryReplay()
    )


def header(token: Token) -> str:
    """What the gateway hands the verifier: ``Authorization`` minus the scheme."""
    return authorization_value(token).removeprefix("PrivateToken ")
