"""Policy engine: model, loader, matcher and the pure ``decide()`` function (SPEC §7).

Import the public names from here::

    from gateway.policy import Decision, Outcome, Policy, decide, load_policy

Nothing in this package does I/O on the request path or imports a web
framework, an HTTP client or a store client: a test enforces it.
"""

from gateway.policy.decide import NO_MATCH, REASONS, Decision, decide, decide_for_rule
from gateway.policy.facts import RequestFacts, SessionClaims
from gateway.policy.loader import load_policy, parse_policy, parse_policy_text
from gateway.policy.matcher import PathPattern
from gateway.policy.model import (
    Action,
    Defaults,
    Mode,
    Outcome,
    Policy,
    PolicyTest,
    Requirement,
    Rule,
)

__all__ = [
    "NO_MATCH",
    "REASONS",
    "Action",
    "Decision",
    "Defaults",
    "Mode",
    "Outcome",
    "PathPattern",
    "Policy",
    "PolicyTest",
    "RequestFacts",
    "Requirement",
    "Rule",
    "SessionClaims",
    "decide",
    "decide_for_rule",
    "load_policy",
    "parse_policy",
    "parse_policy_text",
]
