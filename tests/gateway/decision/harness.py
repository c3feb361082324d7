"""The decision layer built by hand: no runtime, no gateway process, no network.

``Parts`` holds an :class:`Evaluator` and a :class:`Responder` made from a memory
store, a policy parsed from text, a session codec with a fresh key and a fake
verifier; ``Sent`` collects the ASGI messages a response sends.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gateway.decision.evaluate import Evaluator
from gateway.decision.responses import Responder
from gateway.errors import StoreUnavailable
from gateway.observability import Metrics
from gateway.policy import parse_policy_text
from gateway.runtime import PolicyHolder, RateLimiter
from gateway.session.codec import SESSION_COOKIE, SessionCodec
from gateway.session.nonces import NonceIssuer
from gateway.session.revocation import SessionRevocation
from gateway.stores.base import RateDecision, Store
from gateway.stores.memory import MemoryStore
from gateway.types import Message
from verifiers.b64url import b64url_encode
from verifiers.base import (
    AgeAssertion,
    AssuranceLevel,
    Presentation,
    VerificationError,
    Verifier,
    VerifyContext,
)
from verifiers.token_profile import unverified_claims

NOW = 1_700_000_000.0
ORIGIN = "https://shop.example"

POLICY = """\
version: 1
defaults:
  verifiers: [fake]
routes:
  - name: static
    path: /static/**
    action: allow
  - name: admin
    path: /admin/**
    action: deny
  - name: wine
    path: /wine/**
    min_age: 18
    assurance: standard
"""


class FakeVerifier(Verifier):
    """Accepts ``AgeToken`` JWS-shaped tokens whose payload says what was proven.

    The payload's ``age_over``, ``age_under`` and ``assurance`` become the assertion;
    a ``nonce`` must equal the one the gateway expects; each ``jti`` is single-use.
    The signature part is not checked: this stands in for a real verifier.
    """

    kind = "fake"
    auth_scheme = "AgeToken"

    def __init__(self, name: str = "fake") -> None:
        super().__init__(name)
        self.calls = 0

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        self.calls += 1
        claims = unverified_claims(presentation.credential)
        if claims is None:
            raise VerificationError("malformed")
        if claims.get("nonce") != ctx.expected_nonce:
            raise VerificationError("wrong_nonce")
        if not await ctx.replay.consume("jti", str(claims["jti"]), ctx.now + 300):
            raise VerificationError("replayed")
        return AgeAssertion(
            age_over=frozenset(claims.get("age_over", [])),
            age_under=frozenset(claims.get("age_under", [])),
            assurance=AssuranceLevel.parse(claims.get("assurance", "standard")),
            method=None,
            verifier=self.name,
            expires_at=datetime.fromtimestamp(ctx.now + 3600, UTC),
        )


def token(**claims: object) -> str:
    """A compact JWS-shaped token carrying ``claims`` (and a fresh ``jti``)."""
    payload = {"jti": secrets.token_hex(8), **claims}
    header = b64url_encode(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64url_encode(json.dumps(payload).encode())}.c2ln"


class DownStore(MemoryStore):
    """A store that cannot be reached: every call raises StoreUnavailable."""

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        raise StoreUnavailable()

    async def rate_limit(self, bucket: str, limit: int, window: float) -> RateDecision:
        raise StoreUnavailable()

    async def is_revoked(self, digest: str) -> bool:
        raise StoreUnavailable()


@dataclass
class Parts:
    """One decision layer and what it was built from."""

    evaluator: Evaluator
    responder: Responder
    sessions: SessionCodec
    nonces: NonceIssuer
    verifier: FakeVerifier
    metrics: Metrics


def build(store: Store | None = None, *, rate_limit: int = 0) -> Parts:
    key = secrets.token_bytes(32)
    store = store if store is not None else MemoryStore(secrets.token_bytes(32))
    metrics = Metrics.create()
    policy = parse_policy_text(POLICY, source="policy.yaml", known_verifiers={"fake"})
    policies = PolicyHolder(Path("policy.yaml"), {"fake"}, metrics, policy)
    sessions = SessionCodec([key], ORIGIN)
    nonces = NonceIssuer(secrets.token_bytes(32))
    verifier = FakeVerifier()
    verifiers: dict[str, Verifier] = {verifier.name: verifier}
    evaluator = Evaluator(
        policies=policies,
        sessions=sessions,
        revocation=SessionRevocation(sessions, store, secrets.token_bytes(32), enabled=True),
        verifiers=verifiers,
        nonces=nonces,
        limiter=RateLimiter(store, rate_limit, (), secrets.token_bytes(32)),
        replay=store,
        metrics=metrics,
        audience=ORIGIN,
    )
    responder = Responder(public_origin=ORIGIN, nonces=nonces, verifiers=verifiers)
    return Parts(evaluator, responder, sessions, nonces, verifier, metrics)


def session_cookie(value: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"{SESSION_COOKIE}={value}".encode())


@dataclass
class Sent:
    """A fake ASGI ``send``: keeps every message."""

    messages: list[Message] = field(default_factory=list)

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    def headers(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.messages[0]["headers"] if k.lower() == name]

    def header(self, name: bytes) -> bytes:
        values = self.headers(name)
        assert len(values) == 1, (name, values)
        return values[0]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    def problem(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data
