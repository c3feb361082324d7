"""The verifier plug-in interface and the ``AgeAssertion`` it returns.

A verifier turns a *presentation* (a signed age token, a Privacy Pass token, a
wallet response, …) into an :class:`AgeAssertion`, or raises
:class:`VerificationError` with a reason code.  It never returns partial
success, and nothing it returns can carry identity: ``AgeAssertion`` has no
field for it.

Verifiers never import :mod:`gateway`.  The gateway discovers verifier kinds
through the entry-point group ``agegate.verifiers``; the built-in kinds are
registered there the same way as third-party ones (see ``pyproject.toml``).
A kind is a class (or factory) called as ``factory(name, config, services)``
returning an object that satisfies :class:`Verifier`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AgeAssertion",
    "AgegateError",
    "AssuranceLevel",
    "Challenge",
    "ChallengeContext",
    "Presentation",
    "ReplayGuard",
    "VerificationError",
    "Verifier",
    "VerifierFactory",
    "VerifierServices",
    "VerifyContext",
]


class AgegateError(Exception):
    """Root of every error agegate raises; ``reason`` is a machine-readable code.

    It lives here, not in :mod:`gateway.errors`, because verifiers may not
    import the gateway; :mod:`gateway.errors` re-exports it.
    """

    def __init__(self, message: str, *, reason: str = "error"):
        super().__init__(message)
        self.reason = reason


class VerificationError(AgegateError):
    """A presentation was refused.  ``reason`` is one stable code per failure.

    Codes in use: ``malformed``, ``bad_type``, ``alg_not_allowed``,
    ``unknown_kid``, ``bad_signature``, ``wrong_issuer``, ``wrong_audience``,
    ``expired``, ``not_yet_valid``, ``issued_in_future``, ``lifetime_too_long``,
    ``missing_claim``, ``missing_jti``, ``missing_nonce``, ``wrong_nonce``,
    ``replayed``, ``replayed_nonce``, ``undisclosed_claim``, ``identity_claim``,
    ``no_age_claim``, ``bad_claim``, ``jwks_unavailable``, ``store_unavailable``,
    ``provider_error``; Privacy Pass adds ``unknown_key`` (no configured issuer key
    has that id) and ``wrong_challenge`` (not a challenge this gateway issued).
    """

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(detail or reason.replace("_", " "), reason=reason)


@enum.unique
class AssuranceLevel(enum.IntEnum):
    """IEEE 2089.1 assurance ladder (ISO/IEC 27566-1 describes the same), ordered."""

    ASSERTED = 0
    BASIC = 1
    STANDARD = 2
    ENHANCED = 3
    STRICT = 4

    @property
    def label(self) -> str:
        """The lower-case name used in configs, tokens and headers."""
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> AssuranceLevel:
        """Parse a level name; raises ``ValueError`` naming the allowed values."""
        try:
            return cls[value.strip().upper()]
        except (KeyError, AttributeError):
            allowed = ", ".join(level.label for level in cls)
            raise ValueError(f"unknown assurance level {value!r} (allowed: {allowed})") from None


@dataclass(frozen=True, slots=True)
class AgeAssertion:
    """What a verifier proved about a visitor's age, and nothing else."""

    age_over: frozenset[int]
    age_under: frozenset[int]
    assurance: AssuranceLevel
    method: str | None
    verifier: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ChallengeContext:
    """What a verifier needs to start a challenge for one visitor."""

    public_origin: str
    redirect_uri: str
    nonce: str
    state: str
    min_age: int
    assurance: AssuranceLevel


@dataclass(frozen=True, slots=True)
class Challenge:
    """How a visitor begins with a verifier.

    ``redirect_url`` for browser flows; ``www_authenticate`` is one challenge
    (scheme plus parameters) for API clients; either may be absent.
    """

    redirect_url: str | None = None
    www_authenticate: str | None = None


@dataclass(frozen=True, slots=True)
class Presentation:
    """A presentation as received: the raw credential string and where it came from."""

    credential: str
    channel: str  # "callback" (browser form_post/query) or "authorization" (API header)
    extra: Mapping[str, str] = field(default_factory=dict)


class ReplayGuard(Protocol):
    """Single-use records (``jti``, nonces, spent tokens), provided by the gateway's store."""

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        """Record ``value``; False if it was already recorded (a replay).

        Implementations store only an HMAC of ``value``.  Raises
        :class:`AgegateError` with reason ``store_unavailable`` when the
        store cannot be reached.
        """
        ...


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """What the gateway tells a verifier when it checks one presentation."""

    audience: str
    expected_nonce: str | None
    now: float
    replay: ReplayGuard


@dataclass(frozen=True, slots=True)
class VerifierServices:
    """Long-lived resources a verifier may use, created in the gateway's lifespan."""

    http: Any = None  # an aiohttp.ClientSession for JWKS and status-list fetches
    base_dir: str = "."  # relative file paths in the verifier's config resolve here
    audience: str = ""  # the gateway's public origin (what tokens must be bound to)
    # A 32-byte secret of this gateway, the same in every worker, for stateless
    # challenges (e.g. Privacy Pass redemption contexts).  Derive per-purpose keys
    # from it with HMAC; never use it directly and never log it.
    secret: bytes = b""


@runtime_checkable
class Verifier(Protocol):
    """One configured verifier instance."""

    name: str
    kind: str
    max_session_ttl: float | None

    def start(self, ctx: ChallengeContext) -> Challenge:
        """Describe how a visitor begins (a redirect URL and/or an API challenge)."""
        ...

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Check a presentation; raise :class:`VerificationError` on any failure."""
        ...


class VerifierFactory(Protocol):
    """What the ``agegate.verifiers`` entry point resolves to."""

    def __call__(
        self, name: str, config: Mapping[str, Any], services: VerifierServices
    ) -> Verifier: ...
