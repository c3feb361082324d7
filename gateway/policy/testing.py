"""Running a policy's embedded tests, and evaluating one request as the gateway would.

:func:`evaluate` is the one place that goes from a request line to a decision
the way the gateway does it (canonical path first, then match, then
``decide``); the test runner and ``agegate policy explain`` both use it, so
neither can drift from the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.paths import canonical_path
from gateway.errors import BadRequest
from gateway.policy.decide import NO_MATCH, Decision, decide_for_rule
from gateway.policy.facts import SessionClaims
from gateway.policy.model import Expectation, Policy, PolicyTest, Rule, TestSession
from verifiers.base import AssuranceLevel

__all__ = [
    "TEST_NOW",
    "Evaluation",
    "TestResult",
    "evaluate",
    "policy_warnings",
    "run_policy_tests",
    "session_for",
]

#: The fixed "now" of embedded tests (2024-01-01T00:00:00Z): tests must not depend on the clock.
TEST_NOW = 1_704_067_200.0


@dataclass(frozen=True, slots=True)
class TestResult:
    """The result of one embedded test; ``index`` is 1-based as in messages."""

    __test__ = False  # not a pytest test class

    index: int
    request: str
    passed: bool
    message: str  # empty when passed; otherwise what differed
    decision: Decision | None = None  # None when the request was refused (bad_request)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One request taken through canonicalization, matching and ``decide``."""

    method: str
    host: str
    path: str | None  # canonical path; None when refused
    refused: BadRequest | None  # why canonical_path refused the path
    rule: Rule | None
    session: SessionClaims | None
    decision: Decision | None  # None when refused


def session_for(
    spec: TestSession | None, rule: Rule | None, jurisdiction: str | None, now: float
) -> SessionClaims | None:
    """Session claims from a test's session spec, filling defaults from ``rule``."""
    if spec is None:
        return None
    requirement = rule.requirement_for(jurisdiction) if rule is not None else None
    assurance = spec.assurance
    if assurance is None:
        assurance = requirement.assurance if requirement else AssuranceLevel.BASIC
    verifier = spec.verifier
    if verifier is None:
        verifier = requirement.verifiers[0] if requirement and requirement.verifiers else "test"
    return SessionClaims(
        age_over=spec.age_over,
        age_under=spec.age_under,
        assurance=assurance,
        verifier=verifier,
        issued_at=now,
        expires_at=now + spec.expires_in,
    )


def evaluate(
    policy: Policy,
    method: str,
    host: str,
    raw_path: str,
    session: TestSession | None,
    jurisdiction: str | None = None,
    *,
    now: float = TEST_NOW,
    allow_semicolons: bool = False,
) -> Evaluation:
    """Decide a request as the gateway would (canonical path, match, decide)."""
    try:
        path = canonical_path(raw_path, allow_semicolons=allow_semicolons)
    except BadRequest as exc:
        return Evaluation(method, host, None, exc, None, None, None)
    rule = policy.match(method, host, path)
    claims = session_for(session, rule, jurisdiction, now)
    decision = NO_MATCH if rule is None else decide_for_rule(rule, jurisdiction, claims, now)
    return Evaluation(method, host, path, None, rule, claims, decision)


def run_policy_tests(policy: Policy, *, allow_semicolons: bool = False) -> list[TestResult]:
    """Run every embedded test of ``policy``; one result per test, in order."""
    return [_run(policy, test, allow_semicolons) for test in policy.tests]


def _run(policy: Policy, test: PolicyTest, allow_semicolons: bool) -> TestResult:
    result = evaluate(
        policy,
        test.method,
        test.host,
        test.raw_path,
        test.session,
        test.jurisdiction,
        allow_semicolons=allow_semicolons,
    )
    problem = _difference(test.expect, result)
    return TestResult(test.index, test.request, not problem, problem, result.decision)


def _difference(expect: Expectation, result: Evaluation) -> str:
    """Empty when ``result`` meets ``expect``; otherwise 'expected X, got Y'."""
    if result.decision is None:
        refused = result.refused
        reason = refused.reason if refused else "refused"
        if expect.bad_request and expect.reason in (None, reason):
            return ""
        return f"expected {expect.describe()}, got bad_request ({reason}: {refused})"
    decision = result.decision
    got = f"{decision.outcome} (rule {decision.rule or 'none'}, reason {decision.reason}"
    got += ")" if decision.enforced else ", report-only)"
    wrong = (
        expect.bad_request
        or (expect.outcome is not None and decision.outcome != expect.outcome)
        or (expect.check_rule and decision.rule != expect.rule)
        or (expect.reason is not None and decision.reason != expect.reason)
        or (expect.enforced is not None and decision.enforced != expect.enforced)
    )
    return f"expected {expect.describe()}, got {got}" if wrong else ""


def policy_warnings(policy: Policy) -> list[str]:
    """Things that are valid but probably not meant; ``policy check`` prints them."""
    warnings = []
    if not policy.has_catch_all:
        warnings.append(
            "no catch-all rule (path /** for every host and method): requests that no "
            "rule matches are denied"
        )
    for rule in policy.rules:
        methods = rule.methods
        if rule.requirement and methods is not None and "GET" in methods and "HEAD" not in methods:
            warnings.append(
                f"rule {rule.name!r} protects GET but not HEAD: HEAD requests to the "
                "same paths fall through to later rules"
            )
    return warnings
