"""One decision for one request, shared by proxy mode and forward-auth.

:meth:`Evaluator.evaluate` opens the session cookie (only for rules that
require an age), calls the pure :func:`~gateway.policy.decide`, and — when
the answer is a challenge and the client sent ``Authorization`` with a scheme
a route's verifier answers (``AgeToken``, or a plug-in's such as
``PrivateToken``) — verifies it on the spot and decides again with the new
session.  The result says what to do; :mod:`gateway.decision.responses` says it in HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.core.cookies import get_cookie, set_cookie
from gateway.core.forwarding import Network, is_trusted
from gateway.core.headers import header_value
from gateway.decision.verification import peek_claim, session_claims, verify_presentation
from gateway.errors import StoreUnavailable
from gateway.observability import Metrics
from gateway.policy import Action, Decision, Outcome, Rule, decide
from gateway.policy.decide import NO_MATCH, decide_for_rule
from gateway.policy.facts import RequestFacts
from gateway.runtime import PolicyHolder, RateLimiter
from gateway.session.codec import SESSION_COOKIE, SessionCodec
from gateway.session.nonces import NonceIssuer
from gateway.session.revocation import SessionRevocation
from verifiers.base import Presentation, ReplayGuard, VerificationError, Verifier

__all__ = [
    "AGE_TOKEN_SCHEME",
    "Evaluation",
    "Evaluator",
    "Refusal",
    "jurisdiction_of",
]

AGE_TOKEN_SCHEME = "agetoken"  # noqa: S105 - an auth scheme name, not a secret
_ALLOW_ACTION = Action.ALLOW
_REQUIRE_ACTION = Action.REQUIRE


@dataclass(frozen=True, slots=True)
class Refusal:
    """A presentation in ``Authorization`` was refused: answer this instead of deciding."""

    status: int  # 401, 429 or 503
    reason: str
    detail: str
    retry_after: int | None = None


@dataclass(slots=True)
class Evaluation:
    """What to do with a request: a decision, or a refusal of the credential it carried.

    With a refusal, ``decision`` is the one made before the credential was looked at.
    """

    decision: Decision
    refusal: Refusal | None = None
    set_cookies: list[bytes] = field(default_factory=list)
    verifier: str | None = None  # the verifier that just accepted a credential


_STORE_DOWN = Refusal(
    503, "store_unavailable", "age verification is briefly unavailable; try again shortly", 5
)


class Evaluator:
    """Decides requests against the policy in force, answering API credentials inline."""

    def __init__(
        self,
        *,
        policies: PolicyHolder,
        sessions: SessionCodec,
        revocation: SessionRevocation,
        verifiers: Mapping[str, Verifier],
        nonces: NonceIssuer,
        limiter: RateLimiter,
        replay: ReplayGuard,
        metrics: Metrics,
        audience: str,
        jurisdiction_header: str | None = None,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        """``verifiers`` may be filled after construction (the runtime loads them at start-up)."""
        self.policies = policies
        self.sessions = sessions
        self.revocation = revocation
        self.verifiers = verifiers
        self.nonces = nonces
        self.limiter = limiter
        self.replay = replay
        self.metrics = metrics
        self.audience = audience
        self._jurisdiction_header = jurisdiction_header
        self._trusted_proxies = trusted_proxies

    def facts(
        self,
        method: str,
        host: str,
        path: str,
        peer: str | None,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> RequestFacts:
        """What the policy sees of a request; the jurisdiction header only from a trusted proxy."""
        jurisdiction = jurisdiction_of(
            self._jurisdiction_header, self._trusted_proxies, peer, headers
        )
        return RequestFacts(method, host, path, jurisdiction)

    async def evaluate(
        self,
        facts: RequestFacts,
        headers: Sequence[tuple[bytes, bytes]],
        peer: str | None,
        now: float | None = None,
    ) -> Evaluation:
        now = time.time() if now is None else now
        rule = self.policies.policy.match(facts.method, facts.host, facts.path)
        if rule is None:
            return Evaluation(NO_MATCH)
        if rule.action is _ALLOW_ACTION:
            return Evaluation(rule.verdicts.public)  # made when the policy was loaded
        session = None
        unchecked = False  # revocation unknown: local set overflowed and the store is down
        if rule.requirement is not None:  # deny rules never open the cookie
            try:
                session = await self.revocation.open(get_cookie(headers, SESSION_COOKIE), now)
            except StoreUnavailable:
                self.metrics.store_errors.inc()
                unchecked = True
        decision = decide_for_rule(rule, facts.jurisdiction, session, now)
        if decision.outcome is not Outcome.CHALLENGE or not decision.enforced:
            return Evaluation(decision)
        if unchecked:
            # Not a challenge: the visitor did nothing wrong, and a new proof would need
            # the store too.  The session is not honoured meanwhile (it may be logged out).
            return Evaluation(decision, _STORE_DOWN)
        authorization = header_value(headers, b"authorization")
        if authorization is None:
            return Evaluation(decision)
        scheme, _, credential = authorization.decode("latin-1").partition(" ")
        verifiers = self._verifiers_for(decision, scheme.lower())
        if not verifiers:
            return Evaluation(decision)  # not a scheme of ours here: an ordinary challenge
        return await self._answer(
            facts, decision, scheme.lower(), credential.strip(), verifiers, headers, peer, now
        )

    def decide_now(
        self,
        rule: Rule,
        peer: str | None,
        headers: Sequence[tuple[bytes, bytes]],
        cookie_header: bytes | None,
    ) -> Decision | None:
        """The decision :meth:`evaluate` would make for a request matched to ``rule``,
        when it is an allow made without a wait.

        ``cookie_header`` is the value of the request's first ``Cookie`` header, the
        one :func:`~gateway.core.cookies.get_cookie` reads first, which the
        caller found in its own pass over ``headers``; None when there is none.
        Allow rules, and protected rules with a session already opened and
        cached; None for everything else (no session yet, a challenge, a denial,
        a revoked set to ask the store about), which :meth:`evaluate` then decides.
        The jurisdiction header and the clock are read only when a session is
        checked: public rules need neither.
        """
        action = rule.action
        if action is _ALLOW_ACTION:
            return rule.verdicts.public
        if action is not _REQUIRE_ACTION or rule.requirement is None:
            return None  # a denial: the ordinary path answers it
        if cookie_header is None:
            return None  # no session: the ordinary path challenges
        now = time.time()
        # The usual header, our cookie alone, is looked up whole; any other is read.
        session = self.revocation.peek_header(cookie_header, now) or self.revocation.peek(
            get_cookie(headers, SESSION_COOKIE), now
        )
        if session is None:
            return None
        # decide_for_rule for a REQUIRE rule, without the calls around it.
        if self._jurisdiction_header is None:
            check = rule.verdicts.default
        else:
            check = rule.check_for(
                jurisdiction_of(self._jurisdiction_header, self._trusted_proxies, peer, headers)
            )
        if check is None:
            return None
        # What the check decided of these claims before (SessionCheck.decide, whose
        # expiry test peek_header made at this ``now``); else it decides now.
        decision = session.decided.get(check) or check.decide(session, now)
        # The check's one allowing Decision (an Outcome member lookup costs ~0.1 us).
        return decision if decision is check.allow else None

    def _verifiers_for(self, decision: Decision, scheme: str) -> list[Verifier]:
        requirement = decision.requirement
        if requirement is None:
            return []
        found = []
        for name in requirement.verifiers:
            verifier = self.verifiers.get(name)
            if verifier is None or verifier.auth_scheme is None:
                continue
            if verifier.auth_scheme.lower() == scheme:
                found.append(verifier)
        return found

    async def _answer(
        self,
        facts: RequestFacts,
        decision: Decision,
        scheme: str,
        credential: str,
        verifiers: list[Verifier],
        headers: Sequence[tuple[bytes, bytes]],
        peer: str | None,
        now: float,
    ) -> Evaluation:
        try:
            limited = await self.limiter.check("api", peer, headers)
            if limited is not None and not limited.allowed:
                return Evaluation(
                    decision,
                    Refusal(
                        429,
                        "rate_limited",
                        "too many verification attempts",
                        int(limited.retry_after) + 1,
                    ),
                )
            expected_nonce = None
            if scheme == AGE_TOKEN_SCHEME:
                expected_nonce = self._our_nonce(credential, now)
            assertion = await verify_presentation(
                verifiers,
                Presentation(credential, "authorization"),
                audience=self.audience,
                replay=self.replay,
                metrics=self.metrics,
                expected_nonce=expected_nonce,
                now=now,
            )
        except VerificationError as exc:
            return Evaluation(decision, Refusal(401, exc.reason, "the age proof was refused"))
        except StoreUnavailable:
            return Evaluation(decision, _STORE_DOWN)
        verifier = self.verifiers.get(assertion.verifier)
        claims, max_age = session_claims(assertion, verifier, decision.requirement, now=now)
        cookie = set_cookie(SESSION_COOKIE, self.sessions.seal(claims), max_age=max_age)
        new_decision = decide(facts, claims, self.policies.policy, now)
        return Evaluation(new_decision, None, [cookie], assertion.verifier)

    def _our_nonce(self, token: str, now: float) -> str:
        """The token's nonce, if this gateway issued it less than 5 minutes ago."""
        nonce = peek_claim(token, "nonce")
        if not isinstance(nonce, str):
            raise VerificationError("missing_nonce")
        if not self.nonces.check(nonce, now):
            raise VerificationError(
                "wrong_nonce", "the nonce was not issued by this gateway or is too old"
            )
        return nonce


def jurisdiction_of(
    name: str | None,
    trusted_proxies: Sequence[Network],
    peer: str | None,
    headers: Sequence[tuple[bytes, bytes]],
) -> str | None:
    """The jurisdiction code in header ``name``, only from a trusted proxy."""
    if name is None or not is_trusted(peer, trusted_proxies):
        return None
    value = header_value(headers, name.encode())
    if value is None or not value.replace(b"-", b"").isalnum() or len(value) > 8:
        return None
    return value.decode("ascii").upper()
