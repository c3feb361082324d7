"""Embedded policy tests: parsing them, running them, and what a failure says."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import PolicyError
from gateway.policy import Outcome, load_policy
from gateway.policy.embedded import DEFAULT_TEST_HOST, parse_request_line
from gateway.policy.fields import FieldError
from gateway.policy.testing import evaluate, policy_warnings, run_policy_tests

EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "example.yaml"

ROUTES = """
- name: static
  path: /static/**
  action: allow
- name: wine
  path: /wine/**
  methods: [GET, HEAD]
  hosts: [shop.example, localhost]
  min_age: 18
  assurance: standard
  jurisdictions: {US: {min_age: 21}}
- name: rest
  path: /**
  action: allow
"""


def test_every_example_test_passes() -> None:
    results = run_policy_tests(load_policy(EXAMPLE))
    assert results, "the example policy must carry tests"
    assert [r for r in results if not r.passed] == []
    assert [r.index for r in results] == list(range(1, len(results) + 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /wine/red", ("GET", DEFAULT_TEST_HOST, "/wine/red")),
        ("get /wine/red?x=1", ("GET", "localhost", "/wine/red")),
        ("GET https://Shop.Example:8443/wine?q", ("GET", "shop.example", "/wine")),
        ("POST http://[::1]/a", ("POST", "::1", "/a")),
        ("GET https://shop.example", ("GET", "shop.example", "/")),
        ("GET /static/%2e%2e/wine", ("GET", "localhost", "/static/%2e%2e/wine")),
    ],
)
def test_request_lines(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_request_line(text) == expected


@pytest.mark.parametrize(
    "text", ["GET", "GET /a /b", "FETCH /a", "GET ftp://x/a", "GET https://u@x/a", "GET a", 3]
)
def test_bad_request_lines(text: object) -> None:
    with pytest.raises(FieldError):
        parse_request_line(text)


def test_passing_and_failing_tests_are_reported(make_policy) -> None:
    policy = make_policy(
        ROUTES,
        tests="""
        - {request: "GET /wine/red", session: {age_over: [18]}, expect: allow}
        - {request: "GET /wine/red", expect: allow}
        - {request: "GET /wine/red", expect: {rule: static}}
        - {request: "GET /wine/../static/x", expect: {rule: static, reason: public}}
        - {request: "GET /wine%2fred", expect: bad_request}
        - {request: "GET /wine%2fred", expect: {decision: bad_request, reason: backslash}}
        - {request: "GET /wine%2fred", expect: allow}
        - {request: "GET https://other.example/wine/red", expect: {rule: rest}}
        - {request: "GET /wine/red", jurisdiction: us, session: {age_over: [18]}, expect: allow}
        - {request: "GET /static/x", expect: {enforced: false}}
        """,
    )
    results = run_policy_tests(policy)
    assert [r.passed for r in results] == [
        True,
        False,
        False,
        True,
        True,
        False,
        False,
        True,
        False,
        False,
    ]
    by_index = {r.index: r for r in results}
    assert by_index[2].message == ("expected allow, got challenge (rule wine, reason no_session)")
    assert by_index[2].request == "GET /wine/red"
    assert by_index[2].decision.outcome is Outcome.CHALLENGE
    assert by_index[3].message == "expected any decision (rule static), got challenge " + (
        "(rule wine, reason no_session)"
    )
    assert "got bad_request (encoded_slash" in by_index[6].message
    assert "got bad_request (encoded_slash" in by_index[7].message
    assert by_index[7].decision is None
    assert by_index[9].message == (
        "expected allow, got challenge (rule wine, reason age_not_proven)"
    )
    assert "expected any decision (report-only)" in by_index[10].message


def test_session_defaults_come_from_the_matched_rule(make_policy) -> None:
    policy = make_policy(ROUTES)
    result = evaluate(policy, "GET", "localhost", "/wine/x", None)
    assert result.session is None and result.decision.reason == "no_session"
    from gateway.policy.model import TestSession

    allowed = evaluate(policy, "GET", "localhost", "/wine/x", TestSession(age_over=frozenset({18})))
    assert allowed.session.assurance.label == "standard"
    assert allowed.session.verifier == "ref"
    assert allowed.decision.outcome is Outcome.ALLOW
    expired = evaluate(
        policy, "GET", "localhost", "/wine/x", TestSession(age_over=frozenset({18}), expires_in=0)
    )
    assert expired.decision.reason == "session_expired"


def test_semicolons_follow_the_gateway_setting(make_policy) -> None:
    policy = make_policy(ROUTES, tests='- {request: "GET /static/a;b", expect: {rule: static}}')
    assert not run_policy_tests(policy)[0].passed
    assert run_policy_tests(policy, allow_semicolons=True)[0].passed


@pytest.mark.parametrize(
    ("tests", "message"),
    [
        ("- {expect: allow}", "test #1: field 'request': missing"),
        ('- {request: "GET /a"}', "test #1: field 'expect': missing"),
        ('- {request: "GET /a", expect: maybe}', "test #1: field 'expect': expected one of"),
        ('- {request: "GET /a", expect: {rule: nope}}', "rule 'nope' is not a rule"),
        ('- {request: "GET /a", expect: {reason: because}}', "unknown reason 'because'"),
        ('- {request: "GET /a", expect: {}}', "field 'expect'"),
        ('- {request: "GET /a", expect: {outcome: allow}}', "unknown key 'outcome'"),
        ('- {request: "GET /a", expect: {enforced: yes}}', "enforced: expected true or false"),
        ('- {request: "BREW /a", expect: allow}', "field 'request': unknown method"),
        ('- {request: "GET /a", expect: allow, session: []}', "field 'session': expected"),
        (
            '- {request: "GET /a", expect: allow, session: {age_over: 18}}',
            "field 'session.age_over': expected a list",
        ),
        (
            '- {request: "GET /a", expect: allow, session: {age_over: [180]}}',
            "field 'session.age_over'",
        ),
        (
            '- {request: "GET /a", expect: allow, session: {assurance: high}}',
            "field 'session.assurance'",
        ),
        (
            '- {request: "GET /a", expect: allow, session: {expires_in: soon}}',
            "field 'session.expires_in'",
        ),
        ('- {request: "GET /a", expect: allow, session: {name: x}}', "unknown key 'name'"),
        ('- {request: "GET /a", expect: allow, jurisdiction: USA}', "field 'jurisdiction'"),
        ('- {request: "GET /a", expect: allow, extra: 1}', "test #1: unknown key 'extra'"),
        ('- {request: "GET /a", expect: allow}\n- 3', "test #2: expected a mapping"),
    ],
)
def test_test_errors_name_the_test_and_field(make_policy, tests: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        make_policy(ROUTES, tests=tests)
    assert message in str(info.value)
    assert str(info.value).startswith("p.yaml: ")


def test_warnings_for_missing_catch_all_and_get_without_head(make_policy) -> None:
    policy = make_policy("- {name: wine, path: /wine/**, methods: [GET], min_age: 18}")
    warnings = policy_warnings(policy)
    assert any("no catch-all rule" in w for w in warnings)
    assert any("rule 'wine' protects GET but not HEAD" in w for w in warnings)
    assert policy_warnings(load_policy(EXAMPLE)) == []


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            lambda m, t: f"{m} {t}",
            st.sampled_from(["GET", "post", "BREW", ""]),
            st.text(max_size=30),
        ),
    )
)
def test_request_line_parser_raises_only_field_error(text: str) -> None:
    try:
        method, host, path = parse_request_line(text)
    except FieldError:
        return
    assert method.isupper()
    assert path.startswith("/")
    assert "?" not in path
    assert host == host.lower()
