"""decide(): the decision table, report-only, jurisdictions, hosts and methods, purity."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy import (
    NO_MATCH,
    REASONS,
    Decision,
    Outcome,
    Policy,
    RequestFacts,
    SessionClaims,
    decide,
)
from gateway.policy.model import _DECIDED_BOUND, Action, Mode, SessionCheck
from verifiers.base import AssuranceLevel

NOW = 1_700_000_000.0

ROUTES = """
- name: static
  path: /static/**
  action: allow
- name: admin
  path: /admin/**
  action: deny
- name: wine
  methods: [GET, HEAD, POST]
  path: /wine/**
  min_age: 18
  assurance: standard
  verifiers: [ref, pp]
  session_ttl: 30m
  jurisdictions:
    US: {min_age: 21}
    GB: {assurance: enhanced}
- name: shop-beer
  hosts: [shop.example]
  path: /beer/*
  min_age: 16
- name: audit
  path: /audit/**
  min_age: 18
  mode: report-only
- name: audit-deny
  path: /old/**
  action: deny
  mode: report-only
- name: rest
  path: /**
  methods: [GET, HEAD]
  action: allow
"""


@pytest.fixture
def policy(make_policy) -> Policy:
    return make_policy(ROUTES)


def claims(
    over: set[int] = frozenset({18}),  # type: ignore[assignment]
    under: set[int] = frozenset(),  # type: ignore[assignment]
    assurance: AssuranceLevel = AssuranceLevel.STANDARD,
    verifier: str = "ref",
    expires_at: float = NOW + 600,
) -> SessionClaims:
    return SessionClaims(
        frozenset(over), frozenset(under), assurance, verifier, NOW - 60, expires_at
    )


def facts(path: str, method: str = "GET", host: str = "localhost", where: str | None = None):
    return RequestFacts(method, host, path, where)


@pytest.mark.parametrize(
    ("session", "outcome", "reason"),
    [
        (None, Outcome.CHALLENGE, "no_session"),
        (claims(expires_at=NOW), Outcome.CHALLENGE, "session_expired"),
        (claims(expires_at=NOW - 1), Outcome.CHALLENGE, "session_expired"),
        (claims(verifier="other"), Outcome.CHALLENGE, "verifier_not_accepted"),
        (claims(verifier="other", under={16}), Outcome.CHALLENGE, "verifier_not_accepted"),
        (claims(over=set(), under={18}), Outcome.DENY, "proven_under"),
        (claims(over=set(), under={16}), Outcome.DENY, "proven_under"),  # under 16 => under 18
        (claims(over=set(), under={21}), Outcome.CHALLENGE, "age_not_proven"),  # under 21: unknown
        (claims(over={16}), Outcome.CHALLENGE, "age_not_proven"),
        (claims(over=set()), Outcome.CHALLENGE, "age_not_proven"),
        (claims(over={18}, assurance=AssuranceLevel.BASIC), Outcome.CHALLENGE, "assurance_too_low"),
        (claims(over={18}), Outcome.ALLOW, "session_ok"),
        (claims(over={21}), Outcome.ALLOW, "session_ok"),  # over 21 => over 18
        (claims(over={13, 16, 18}, under={21}), Outcome.ALLOW, "session_ok"),
        (claims(over={18}, assurance=AssuranceLevel.STRICT), Outcome.ALLOW, "session_ok"),
        (claims(verifier="pp"), Outcome.ALLOW, "session_ok"),
    ],
)
def test_protected_rule_decision_table(
    policy: Policy, session: SessionClaims | None, outcome: Outcome, reason: str
) -> None:
    decision = decide(facts("/wine/red"), session, policy, NOW)
    assert (decision.outcome, decision.reason) == (outcome, reason)
    assert decision.rule == "wine"
    assert decision.enforced
    assert decision.effective is outcome
    requirement = decision.requirement
    assert requirement is not None
    assert (requirement.min_age, requirement.assurance) == (18, AssuranceLevel.STANDARD)
    assert requirement.verifiers == ("ref", "pp")
    assert requirement.session_ttl == 1800.0


def test_allow_and_deny_rules(policy: Policy) -> None:
    allow = decide(facts("/static/app.css"), None, policy, NOW)
    assert allow == Decision(Outcome.ALLOW, True, "static", "public", None)
    deny = decide(facts("/admin/users"), claims(over={99}), policy, NOW)
    assert deny == Decision(Outcome.DENY, True, "admin", "denied_by_rule", None)


def test_no_matching_rule_denies_fail_closed(policy: Policy) -> None:
    decision = decide(facts("/anything", method="DELETE"), None, policy, NOW)
    assert decision == NO_MATCH
    assert (decision.outcome, decision.reason, decision.rule) == (
        Outcome.DENY,
        "no_matching_rule",
        None,
    )
    assert decision.enforced and decision.effective is Outcome.DENY


def test_methods_restrict_a_rule(policy: Policy) -> None:
    assert decide(facts("/wine/red", "POST"), None, policy, NOW).rule == "wine"
    assert decide(facts("/wine/red", "head"), None, policy, NOW).rule == "wine"
    # PUT is not in wine's methods and not in rest's: nothing matches.
    assert decide(facts("/wine/red", "PUT"), None, policy, NOW).reason == "no_matching_rule"


def test_hosts_restrict_a_rule_ignoring_case_and_port(policy: Policy) -> None:
    on_shop = decide(facts("/beer/pils", host="shop.example"), None, policy, NOW)
    assert (on_shop.rule, on_shop.outcome) == ("shop-beer", Outcome.CHALLENGE)
    for host in ("SHOP.Example", "shop.example:8443", "shop.example."):
        assert policy.match("GET", host, "/beer/pils").name == "shop-beer"
    elsewhere = decide(facts("/beer/pils", host="other.example"), None, policy, NOW)
    assert (elsewhere.rule, elsewhere.outcome) == ("rest", Outcome.ALLOW)
    assert policy.match("GET", None, "/beer/pils").name == "rest"


def test_jurisdiction_overrides_min_age_and_assurance(policy: Policy) -> None:
    adult = claims(over={18})
    assert decide(facts("/wine/x"), adult, policy, NOW).outcome is Outcome.ALLOW
    us = decide(facts("/wine/x", where="US"), adult, policy, NOW)
    assert (us.outcome, us.reason, us.requirement.min_age) == (
        Outcome.CHALLENGE,
        "age_not_proven",
        21,
    )
    assert decide(facts("/wine/x", where="US"), claims(over={21}), policy, NOW).outcome == "allow"
    assert decide(facts("/wine/x", where="US-UT"), adult, policy, NOW).requirement.min_age == 21
    gb = decide(facts("/wine/x", where="GB"), adult, policy, NOW)
    assert (gb.reason, gb.requirement.min_age) == ("assurance_too_low", 18)
    assert gb.requirement.assurance is AssuranceLevel.ENHANCED
    assert decide(facts("/wine/x", where="FR"), adult, policy, NOW).outcome is Outcome.ALLOW


def test_report_only_computes_the_outcome_but_does_not_enforce(policy: Policy) -> None:
    decision = decide(facts("/audit/page"), None, policy, NOW)
    assert (decision.outcome, decision.reason, decision.rule) == (
        Outcome.CHALLENGE,
        "no_session",
        "audit",
    )
    assert not decision.enforced
    assert decision.effective is Outcome.ALLOW
    under = decide(facts("/audit/page"), claims(over=set(), under={18}), policy, NOW)
    assert (under.outcome, under.effective) == (Outcome.DENY, Outcome.ALLOW)
    denied = decide(facts("/old/x"), None, policy, NOW)
    assert (denied.outcome, denied.enforced, denied.effective) == (
        Outcome.DENY,
        False,
        Outcome.ALLOW,
    )


def test_defaults_mode_report_only_applies_to_rules_but_not_to_no_match(make_policy) -> None:
    policy = make_policy(
        "- {name: a, path: /a, min_age: 18}",
        header="version: 1\ndefaults: {verifiers: [ref], mode: report-only}\n",
    )
    assert not decide(facts("/a"), None, policy, NOW).enforced
    assert decide(facts("/b"), None, policy, NOW).effective is Outcome.DENY


def test_case_insensitive_policy_matches_any_case(make_policy) -> None:
    policy = make_policy(
        "- {name: wine, path: /wine/**, min_age: 18}\n- {name: rest, path: /**, action: allow}",
        header="version: 1\ndefaults: {verifiers: [ref], case_insensitive: true}\n",
    )
    assert decide(facts("/WiNe/red"), None, policy, NOW).rule == "wine"
    sensitive = make_policy(
        "- {name: wine, path: /wine/**, min_age: 18}\n- {name: rest, path: /**, action: allow}"
    )
    # Case-sensitive is the default: the operator must opt in for case-blind upstreams.
    assert decide(facts("/WiNe/red"), None, sensitive, NOW).rule == "rest"


def test_first_match_wins(make_policy) -> None:
    policy = make_policy(
        "- {name: red, path: /wine/red, action: allow}\n- {name: wine, path: /wine/**, min_age: 18}"
    )
    assert decide(facts("/wine/red"), None, policy, NOW).rule == "red"
    assert decide(facts("/wine/rose"), None, policy, NOW).rule == "wine"


@settings(max_examples=300, deadline=None)
@given(
    over=st.frozensets(st.integers(1, 99), max_size=4),
    under=st.frozensets(st.integers(1, 99), max_size=4),
    level=st.sampled_from(list(AssuranceLevel)),
    min_age=st.integers(1, 99),
    required=st.sampled_from(list(AssuranceLevel)),
)
def test_allow_only_when_every_condition_holds(
    make_policy, over, under, level, min_age, required
) -> None:
    policy = make_policy(
        f"- {{name: r, path: /**, min_age: {min_age}, assurance: {required.label}}}"
    )
    session = SessionClaims(over, under, level, "ref", NOW - 1, NOW + 1)
    decision = decide(facts("/x"), session, policy, NOW)
    assert decision.reason in REASONS
    proven = any(t >= min_age for t in over)
    refuted = any(t <= min_age for t in under)
    expected_allow = proven and not refuted and level >= required
    assert (decision.outcome is Outcome.ALLOW) is expected_allow
    assert (decision.outcome is Outcome.DENY) is refuted


def test_decide_is_pure_and_repeatable(policy: Policy) -> None:
    session = claims()
    first = decide(facts("/wine/x"), session, policy, NOW)
    assert all(decide(facts("/wine/x"), session, policy, NOW) == first for _ in range(3))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(["/static/a", "/admin/x", "/wine/red", "/audit/y", "/old/z", "/else"]),
    jurisdiction=st.sampled_from([None, "US", "US-UT", "GB", "FR", "GB-SCT"]),
    over=st.frozensets(st.sampled_from([13, 16, 18, 21]), max_size=2),
    under=st.frozensets(st.sampled_from([16, 18, 21, 25]), max_size=1),
    level=st.sampled_from(list(AssuranceLevel)),
    verifier=st.sampled_from(["ref", "pp", "other"]),
    expires=st.sampled_from([NOW - 1, NOW, NOW + 1]),
    no_session=st.booleans(),
)
def test_prebuilt_decisions_carry_the_rule_mode_and_requirement_in_force(
    policy: Policy,
    path: str,
    jurisdiction: str | None,
    over: frozenset[int],
    under: frozenset[int],
    level: AssuranceLevel,
    verifier: str,
    expires: float,
    no_session: bool,
) -> None:
    # Every decision is built with its rule (RuleVerdicts); it must still say exactly
    # what a decision made on the spot would: rule, enforcement and requirement.
    session = None if no_session else SessionClaims(over, under, level, verifier, NOW - 5, expires)
    decision = decide(RequestFacts("GET", "localhost", path, jurisdiction), session, policy, NOW)
    rule = policy.match("GET", "localhost", path)
    assert rule is not None
    assert decision.rule == rule.name
    assert decision.enforced is (rule.mode is Mode.ENFORCE)
    expected = rule.requirement_for(jurisdiction) if rule.action is Action.REQUIRE else None
    assert decision.requirement == expected
    if expected is not None and decision.outcome is Outcome.ALLOW:
        assert session is not None and max(session.age_over) >= expected.min_age
        assert session.assurance >= expected.assurance and expires > NOW


def test_a_check_judges_claims_once_and_still_checks_expiry_every_time(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    judged: list[str] = []
    judge = SessionCheck._judge

    def counting(check: SessionCheck, session: SessionClaims) -> Decision:
        judged.append(check.allow.rule)
        return judge(check, session)

    monkeypatch.setattr(SessionCheck, "_judge", counting)
    wine, beer = policy.rules[2].verdicts.default, policy.rules[3].verdicts.default
    assert wine is not None and beer is not None
    session = claims(over={18}, expires_at=NOW + 10)
    for _ in range(3):
        assert wine.decide(session, NOW) is wine.allow
    assert judged == ["wine"]
    assert session.decided == {wine: wine.allow}
    # Past the expiry the kept allow is never the answer.
    assert wine.decide(session, NOW + 10) is wine.session_expired
    assert wine.decide(session, NOW + 11) is wine.session_expired
    # Another check judges for itself.
    assert beer.decide(session, NOW) is beer.allow
    assert judged == ["wine", "shop-beer"]
    # The memo is no claim: equality and hashing ignore it.
    fresh = claims(over={18}, expires_at=NOW + 10)
    assert fresh == session and hash(fresh) == hash(session) and fresh.decided == {}


def test_a_new_policy_check_never_reuses_the_old_ones_answer(make_policy) -> None:
    session = claims(over={18})
    old = make_policy("- {name: r, path: /**, min_age: 18}").rules[0].verdicts.default
    new = make_policy("- {name: r, path: /**, min_age: 21}").rules[0].verdicts.default
    assert old.decide(session, NOW).outcome is Outcome.ALLOW
    # Equal rule names and shapes, but a check is only ever equal to itself.
    assert new.decide(session, NOW) is new.age_not_proven


def test_the_answers_one_session_keeps_are_bounded(make_policy) -> None:
    session = claims(over={18})
    checks = [
        make_policy(f"- {{name: r{i}, path: /**, min_age: 18}}").rules[0].verdicts.default
        for i in range(_DECIDED_BOUND + 5)
    ]
    for check in checks:
        assert check.decide(session, NOW) is check.allow
        assert 1 <= len(session.decided) <= _DECIDED_BOUND
    assert session.decided[checks[-1]] is checks[-1].allow


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    over=st.frozensets(st.sampled_from([13, 16, 18, 21]), max_size=2),
    under=st.frozensets(st.sampled_from([16, 18, 21, 25]), max_size=1),
    level=st.sampled_from(list(AssuranceLevel)),
    verifier=st.sampled_from(["ref", "pp", "other"]),
    times=st.lists(st.sampled_from([NOW - 1, NOW, NOW + 1, NOW + 2]), min_size=1, max_size=6),
    rules=st.lists(st.sampled_from([2, 3, 4]), min_size=1, max_size=6),
)
def test_kept_answers_are_the_answers_a_fresh_session_gets(
    policy: Policy,
    over: frozenset[int],
    under: frozenset[int],
    level: AssuranceLevel,
    verifier: str,
    times: list[float],
    rules: list[int],
) -> None:
    # One session asked again and again, in any order of rules and times around its
    # expiry (NOW + 1), answers exactly as a never-asked copy of it does each time.
    session = SessionClaims(over, under, level, verifier, NOW - 5, NOW + 1)
    for index, now in zip(rules, times, strict=False):
        check = policy.rules[index].verdicts.default
        assert check is not None
        fresh = SessionClaims(over, under, level, verifier, NOW - 5, NOW + 1)
        assert check.decide(session, now) is check.decide(fresh, now)
