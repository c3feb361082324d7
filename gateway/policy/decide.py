"""``decide()``: request facts + session claims + policy + now -> Decision.

Pure: no I/O, no clock (``now`` is an argument), no logging.  The checks of a
protected rule run in a fixed order so the reason is always the first thing
the visitor is missing:

1. no session                                   -> challenge ``no_session``
2. session expired (``now >= expires_at``)      -> challenge ``session_expired``
3. session from a verifier the rule does not
   accept                                       -> challenge ``verifier_not_accepted``
4. proven under some threshold <= min_age       -> deny ``proven_under``
5. no proven threshold >= min_age               -> challenge ``age_not_proven``
6. assurance below the required level           -> challenge ``assurance_too_low``
7. otherwise                                    -> allow ``session_ok``

Proving "over 21" proves "over 18"; proving "under 16" proves "under 18".
No matching rule denies (``no_matching_rule``) and is always enforced, even
when rules are in report-only mode: fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.policy.facts import RequestFacts, SessionClaims
from gateway.policy.model import Action, Mode, Outcome, Policy, Requirement, Rule

__all__ = ["NO_MATCH", "REASONS", "Decision", "Outcome", "Requirement", "decide", "decide_for_rule"]

#: Every reason code :func:`decide` can return.
REASONS = frozenset(
    {
        "public",
        "session_ok",
        "no_session",
        "session_expired",
        "verifier_not_accepted",
        "age_not_proven",
        "assurance_too_low",
        "proven_under",
        "denied_by_rule",
        "no_matching_rule",
    }
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one request, with the rule and the reason behind it."""

    outcome: Outcome  # what the rule says, even in report-only mode
    enforced: bool  # False for mode: report-only (the gateway lets it through and logs)
    rule: str | None  # name of the matched rule; None when nothing matched
    reason: str  # one of REASONS
    requirement: Requirement | None  # set when the rule requires an age

    @property
    def effective(self) -> Outcome:
        """What the gateway does: the outcome when enforced, else allow."""
        return self.outcome if self.enforced else Outcome.ALLOW


#: The decision when no rule matches: deny, always enforced (fail closed).
NO_MATCH = Decision(Outcome.DENY, True, None, "no_matching_rule", None)


# Enum member lookups cost a descriptor call each on 3.11; these run per request.
_ALLOW, _CHALLENGE, _DENY = Outcome.ALLOW, Outcome.CHALLENGE, Outcome.DENY
_ENFORCE, _ALLOW_ACTION, _DENY_ACTION = Mode.ENFORCE, Action.ALLOW, Action.DENY
_NO_AGE = 1000  # above every threshold (1-99)


def decide(
    facts: RequestFacts, session: SessionClaims | None, policy: Policy, now: float
) -> Decision:
    """Decide one request; see the module docstring for the order of checks."""
    rule = policy.match(facts.method, facts.host, facts.path)
    if rule is None:
        return NO_MATCH
    return decide_for_rule(rule, facts.jurisdiction, session, now)


def decide_for_rule(
    rule: Rule, jurisdiction: str | None, session: SessionClaims | None, now: float
) -> Decision:
    """The decision of an already matched ``rule`` (for callers that matched first)."""
    enforced = rule.mode is _ENFORCE
    action = rule.action
    if action is _ALLOW_ACTION:
        return Decision(_ALLOW, enforced, rule.name, "public", None)
    requirement = rule.requirement_for(jurisdiction)
    if action is _DENY_ACTION or requirement is None:
        # A REQUIRE rule always has a requirement (the loader ensures it); if it
        # somehow had none, denying is the only safe reading.
        return Decision(_DENY, enforced, rule.name, "denied_by_rule", None)
    outcome, reason = _check_session(requirement, session, now)
    return Decision(outcome, enforced, rule.name, reason, requirement)


def _check_session(
    requirement: Requirement, session: SessionClaims | None, now: float
) -> tuple[Outcome, str]:
    if session is None:
        return _CHALLENGE, "no_session"
    if now >= session.expires_at:
        return _CHALLENGE, "session_expired"
    if session.verifier not in requirement.verifiers:
        # Its claims, "under" included, carry no weight on this route.
        return _CHALLENGE, "verifier_not_accepted"
    min_age = requirement.min_age
    # min/max run in C: this is the hot path of every protected request.
    if min(session.age_under, default=_NO_AGE) <= min_age:
        return _DENY, "proven_under"
    if max(session.age_over, default=0) < min_age:
        return _CHALLENGE, "age_not_proven"
    if session.assurance < requirement.assurance:
        return _CHALLENGE, "assurance_too_low"
    return _ALLOW, "session_ok"
