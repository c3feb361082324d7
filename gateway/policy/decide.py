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

from gateway.policy.facts import RequestFacts, SessionClaims
from gateway.policy.model import Action, Decision, Outcome, Policy, Requirement, Rule

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


#: The decision when no rule matches: deny, always enforced (fail closed).
NO_MATCH = Decision(Outcome.DENY, True, None, "no_matching_rule", None)


_ALLOW_ACTION, _DENY_ACTION = Action.ALLOW, Action.DENY


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
    """The decision of an already matched ``rule`` (for callers that matched first).

    Every decision a rule can make was built with the rule (:class:`RuleVerdicts`):
    this only picks one.
    """
    action = rule.action
    if action is _ALLOW_ACTION:
        return rule.verdicts.public
    check = rule.check_for(jurisdiction)
    if action is _DENY_ACTION or check is None:
        # A REQUIRE rule always has a requirement (the loader ensures it); if it
        # somehow had none, denying is the only safe reading.
        return rule.verdicts.denied
    return check.decide(session, now)
