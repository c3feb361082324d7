"""Turning a presentation into a session: shared by the browser callback and API mode.

The verifier proves thresholds; this module turns its :class:`AgeAssertion`
into :class:`SessionClaims` whose lifetime is the shortest of the route's
``session_ttl``, the verifier's ``max_session_ttl`` and the assertion's own
expiry.  Outcomes are counted by verifier and reason; nothing about the
token or the visitor is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gateway.errors import AgegateError, StoreUnavailable
from gateway.observability import Metrics, log_event
from gateway.policy import Requirement
from gateway.policy.facts import SessionClaims
from gateway.session.codec import new_session_id
from verifiers.base import (
    AgeAssertion,
    Presentation,
    ReplayGuard,
    VerificationError,
    Verifier,
    VerifyContext,
)
from verifiers.token_profile import unverified_claims

__all__ = ["peek_claim", "session_claims", "verify_presentation"]

# Reasons that mean "this verifier is not the token's issuer": try the next one.
_NOT_MINE = frozenset({"wrong_issuer", "unknown_kid", "unknown_key"})


def peek_claim(jws: str, claim: str) -> object:
    """An unverified claim from a compact JWS payload, to route it (never to trust it).

    Raises ``VerificationError("malformed")`` when the payload is not a JSON
    object the verifier itself would read; the parser is the verifier's own
    (:func:`verifiers.token_profile.unverified_claims`), so the two never disagree.
    """
    claims = unverified_claims(jws)
    if claims is None:
        raise VerificationError("malformed", "not a compact JWS with a JSON object payload")
    return claims.get(claim)


async def verify_presentation(
    verifiers: Sequence[Verifier],
    presentation: Presentation,
    *,
    audience: str,
    replay: ReplayGuard,
    metrics: Metrics,
    expected_nonce: str | None,
    now: float,
) -> AgeAssertion:
    """Verify with the first of ``verifiers`` that owns the presentation.

    ``replay`` is the store's single-use records; outcomes are counted in ``metrics``.

    Raises :class:`VerificationError` (the most specific refusal) or
    :class:`StoreUnavailable` when the replay store cannot be reached.
    """
    if not verifiers:
        raise VerificationError("no_verifier", "no verifier on this route accepts this token")
    ctx = VerifyContext(audience=audience, expected_nonce=expected_nonce, now=now, replay=replay)
    refusal: VerificationError | None = None
    for verifier in verifiers:
        try:
            assertion = await verifier.verify(presentation, ctx)
        except VerificationError as exc:
            metrics.verifications.labels(verifier.name, exc.reason).inc()
            if refusal is None or refusal.reason in _NOT_MINE:
                refusal = exc
            if exc.reason in _NOT_MINE:
                continue
            log_event(
                "verification_refused",
                level=logging.INFO,
                verifier=verifier.name,
                reason=exc.reason,
                kind=verifier.kind,
            )
            raise
        except StoreUnavailable:
            metrics.store_errors.inc()
            raise
        except AgegateError as exc:
            if exc.reason == "store_unavailable":
                metrics.store_errors.inc()
                raise StoreUnavailable() from None
            raise
        metrics.verifications.labels(verifier.name, "ok").inc()
        log_event("verification_ok", verifier=verifier.name, kind=verifier.kind)
        return assertion
    if refusal is None:  # pragma: no cover - the loop ran at least once
        raise VerificationError("no_verifier")
    log_event(
        "verification_refused", verifier=",".join(v.name for v in verifiers), reason=refusal.reason
    )
    raise refusal


def session_claims(
    assertion: AgeAssertion,
    verifier: Verifier | None,
    requirement: Requirement | None,
    *,
    now: float,
    default_ttl: float = 3600.0,
) -> tuple[SessionClaims, int]:
    """Session claims and the cookie ``Max-Age`` for a fresh assertion."""
    ttl = requirement.session_ttl if requirement else default_ttl
    if verifier is not None and verifier.max_session_ttl:
        ttl = min(ttl, verifier.max_session_ttl)
    ttl = min(ttl, assertion.expires_at.timestamp() - now)
    ttl = max(ttl, 0.0)
    claims = SessionClaims(
        age_over=assertion.age_over,
        age_under=assertion.age_under,
        assurance=assertion.assurance,
        verifier=assertion.verifier,
        issued_at=now,
        expires_at=now + ttl,
        session_id=new_session_id(),
    )
    return claims, int(ttl)
