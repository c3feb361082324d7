"""Evaluator built by hand: policy rules, sessions and inline ``AgeToken`` credentials.

No runtime and no gateway process: the parts come from tests/gateway/decision/harness.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.decision.evaluate import Evaluation, jurisdiction_of
from gateway.policy import Outcome
from gateway.policy.facts import RequestFacts, SessionClaims
from gateway.session.codec import SESSION_COOKIE, new_session_id
from gateway.stores.memory import MemoryStore
from tests.gateway.decision.harness import NOW, DownStore, Parts, build, session_cookie, token
from verifiers.base import AssuranceLevel

HOST = "shop.example"


def facts(path: str, method: str = "GET") -> RequestFacts:
    return RequestFacts(method, HOST, path, None)


def claims(
    *, over: Iterable[int] = (18,), under: Iterable[int] = (), level: str = "standard"
) -> SessionClaims:
    return SessionClaims(
        age_over=frozenset(over),
        age_under=frozenset(under),
        assurance=AssuranceLevel.parse(level),
        verifier="fake",
        issued_at=NOW - 60,
        expires_at=NOW + 600,
        session_id=new_session_id(),
    )


async def with_token(parts: Parts, credential: str, path: str = "/wine/red") -> Evaluation:
    headers = [(b"authorization", f"AgeToken {credential}".encode())]
    return await parts.evaluator.evaluate(facts(path), headers, "192.0.2.7", NOW)


async def test_allow_rule_allows_without_a_session() -> None:
    parts = build()
    evaluation = await parts.evaluator.evaluate(facts("/static/app.css"), [], None, NOW)
    assert evaluation.decision.outcome is Outcome.ALLOW
    assert evaluation.decision.reason == "public"
    assert evaluation.decision.rule == "static"
    assert evaluation.refusal is None and evaluation.set_cookies == []


async def test_allow_decision_is_the_same_object_for_the_same_rule() -> None:
    parts = build()
    first = await parts.evaluator.evaluate(facts("/static/a"), [], None, NOW)
    second = await parts.evaluator.evaluate(facts("/static/b"), [], None, NOW)
    assert first.decision is second.decision


async def test_no_matching_rule_denies() -> None:
    parts = build()
    evaluation = await parts.evaluator.evaluate(facts("/elsewhere"), [], None, NOW)
    assert evaluation.decision.outcome is Outcome.DENY
    assert evaluation.decision.reason == "no_matching_rule"
    assert evaluation.decision.enforced


async def test_deny_rule_denies_even_with_a_session() -> None:
    parts = build()
    cookie = session_cookie(parts.sessions.seal(claims()))
    evaluation = await parts.evaluator.evaluate(facts("/admin/users"), [cookie], None, NOW)
    assert evaluation.decision.outcome is Outcome.DENY
    assert evaluation.decision.reason == "denied_by_rule"


async def test_protected_route_without_session_is_a_challenge() -> None:
    parts = build()
    evaluation = await parts.evaluator.evaluate(facts("/wine/red"), [], None, NOW)
    assert evaluation.decision.outcome is Outcome.CHALLENGE
    assert evaluation.decision.reason == "no_session"
    requirement = evaluation.decision.requirement
    assert requirement is not None and requirement.min_age == 18
    assert evaluation.refusal is None


async def test_valid_session_allows() -> None:
    parts = build()
    cookie = session_cookie(parts.sessions.seal(claims()))
    evaluation = await parts.evaluator.evaluate(facts("/wine/red"), [cookie], None, NOW)
    assert evaluation.decision.outcome is Outcome.ALLOW
    assert evaluation.decision.reason == "session_ok"
    assert evaluation.set_cookies == []


async def test_session_sealed_with_another_key_is_a_challenge() -> None:
    parts, other = build(), build()
    cookie = session_cookie(other.sessions.seal(claims()))
    evaluation = await parts.evaluator.evaluate(facts("/wine/red"), [cookie], None, NOW)
    assert evaluation.decision.outcome is Outcome.CHALLENGE


async def test_session_with_too_low_assurance_is_a_challenge_with_its_reason() -> None:
    parts = build()
    cookie = session_cookie(parts.sessions.seal(claims(level="basic")))
    evaluation = await parts.evaluator.evaluate(facts("/wine/red"), [cookie], None, NOW)
    assert evaluation.decision.outcome is Outcome.CHALLENGE
    assert evaluation.decision.reason == "assurance_too_low"


async def test_session_proven_under_age_is_denied() -> None:
    parts = build()
    cookie = session_cookie(parts.sessions.seal(claims(over=set(), under={18})))
    evaluation = await parts.evaluator.evaluate(facts("/wine/red"), [cookie], None, NOW)
    assert evaluation.decision.outcome is Outcome.DENY
    assert evaluation.decision.reason == "proven_under"


async def test_inline_token_with_our_nonce_allows_and_sets_a_session() -> None:
    parts = build()
    nonce = parts.nonces.issue(NOW)
    evaluation = await with_token(parts, token(nonce=nonce, age_over=[18]))
    assert evaluation.refusal is None
    assert evaluation.decision.outcome is Outcome.ALLOW
    assert evaluation.verifier == "fake"
    [cookie] = evaluation.set_cookies
    name, _, rest = cookie.decode().partition("=")
    assert name == SESSION_COOKIE
    opened = parts.sessions.open(rest.split(";")[0], NOW)
    assert opened is not None and opened.age_over == frozenset({18})
    assert parts.metrics.verifications.labels("fake", "ok")._value.get() == 1


async def test_inline_token_below_the_threshold_is_a_challenge_with_its_reason() -> None:
    parts = build()
    evaluation = await with_token(parts, token(nonce=parts.nonces.issue(NOW), age_over=[16]))
    assert evaluation.refusal is None
    assert evaluation.decision.outcome is Outcome.CHALLENGE
    assert evaluation.decision.reason == "age_not_proven"


async def test_inline_token_proving_under_age_is_denied() -> None:
    parts = build()
    evaluation = await with_token(parts, token(nonce=parts.nonces.issue(NOW), age_under=[18]))
    assert evaluation.decision.outcome is Outcome.DENY
    assert evaluation.decision.reason == "proven_under"


async def test_inline_token_with_a_nonce_we_did_not_issue_is_refused() -> None:
    parts, other = build(), build()
    evaluation = await with_token(parts, token(nonce=other.nonces.issue(NOW), age_over=[18]))
    assert evaluation.refusal is not None
    assert (evaluation.refusal.status, evaluation.refusal.reason) == (401, "wrong_nonce")
    assert evaluation.decision.outcome is Outcome.CHALLENGE
    assert evaluation.set_cookies == []
    assert parts.verifier.calls == 0


async def test_inline_token_with_a_stale_nonce_is_refused() -> None:
    parts = build()
    nonce = parts.nonces.issue(NOW - 3600)
    evaluation = await with_token(parts, token(nonce=nonce, age_over=[18]))
    assert evaluation.refusal is not None and evaluation.refusal.reason == "wrong_nonce"


async def test_inline_token_without_a_nonce_is_refused() -> None:
    parts = build()
    evaluation = await with_token(parts, token(age_over=[18]))
    assert evaluation.refusal is not None
    assert (evaluation.refusal.status, evaluation.refusal.reason) == (401, "missing_nonce")


async def test_inline_token_that_is_not_a_jws_is_refused_as_malformed() -> None:
    parts = build()
    evaluation = await with_token(parts, "not-a-token")
    assert evaluation.refusal is not None
    assert (evaluation.refusal.status, evaluation.refusal.reason) == (401, "malformed")


async def test_inline_token_replayed_is_refused() -> None:
    parts = build()
    credential = token(nonce=parts.nonces.issue(NOW), age_over=[18])
    assert (await with_token(parts, credential)).refusal is None
    again = await with_token(parts, credential)
    assert again.refusal is not None and again.refusal.reason == "replayed"


async def test_other_authorization_scheme_is_an_ordinary_challenge() -> None:
    parts = build()
    headers = [(b"authorization", b"Bearer abc.def.ghi")]
    evaluation = await parts.evaluator.evaluate(facts("/wine/red"), headers, None, NOW)
    assert evaluation.decision.reason == "no_session"
    assert evaluation.refusal is None
    assert parts.verifier.calls == 0


async def test_token_on_a_public_route_is_not_verified() -> None:
    parts = build()
    evaluation = await with_token(parts, token(nonce=parts.nonces.issue(NOW)), "/static/a")
    assert evaluation.decision.outcome is Outcome.ALLOW
    assert parts.verifier.calls == 0


async def test_store_down_refuses_inline_token_with_503_and_retry_after() -> None:
    parts = build(DownStore(b"k" * 32))
    evaluation = await with_token(parts, token(nonce=parts.nonces.issue(NOW), age_over=[18]))
    refusal = evaluation.refusal
    assert refusal is not None
    assert (refusal.status, refusal.reason, refusal.retry_after) == (503, "store_unavailable", 5)
    assert evaluation.set_cookies == []
    assert parts.metrics.store_errors._value.get() == 1


async def test_store_down_for_rate_limits_refuses_with_503() -> None:
    parts = build(DownStore(b"k" * 32), rate_limit=5)
    evaluation = await with_token(parts, token(nonce=parts.nonces.issue(NOW), age_over=[18]))
    assert evaluation.refusal is not None and evaluation.refusal.status == 503
    assert parts.verifier.calls == 0


async def test_too_many_attempts_are_rate_limited() -> None:
    parts = build(MemoryStore(b"k" * 32, clock=lambda: NOW), rate_limit=1)
    first = await with_token(parts, token(nonce=parts.nonces.issue(NOW), age_over=[18]))
    assert first.refusal is None
    second = await with_token(parts, token(nonce=parts.nonces.issue(NOW), age_over=[18]))
    assert second.refusal is not None
    assert (second.refusal.status, second.refusal.reason) == (429, "rate_limited")
    assert second.refusal.retry_after is not None and second.refusal.retry_after >= 1
    assert parts.verifier.calls == 1


def test_jurisdiction_comes_only_from_a_trusted_proxy() -> None:
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    headers = [(b"x-country", b"us")]
    assert jurisdiction_of("x-country", trusted, "10.1.2.3", headers) == "US"
    assert jurisdiction_of("x-country", trusted, "192.0.2.1", headers) is None
    assert jurisdiction_of(None, trusted, "10.1.2.3", headers) is None
    assert jurisdiction_of("x-country", trusted, "10.1.2.3", [(b"x-country", b"u s")]) is None


async def test_a_second_protected_request_with_the_same_session_opens_no_cookie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts = build()
    cookie = session_cookie(parts.sessions.seal(claims()))
    first = await parts.evaluator.evaluate(facts("/wine/red"), [cookie], None, NOW)
    assert first.decision.reason == "session_ok"

    def no_open(*args: object) -> bytes:
        raise AssertionError("the session cookie was decrypted again")

    monkeypatch.setattr(AESGCM, "decrypt", no_open)
    second = await parts.evaluator.evaluate(facts("/wine/white"), [cookie], None, NOW + 1)
    assert second.decision is first.decision  # built with the policy, not per request
    expired = await parts.evaluator.evaluate(facts("/wine/red"), [cookie], None, NOW + 600)
    assert expired.decision.outcome is Outcome.CHALLENGE  # expiry checked on a cache hit
    assert expired.decision.reason == "no_session"


async def test_every_protected_decision_is_made_once_per_rule() -> None:
    parts = build()
    low = session_cookie(parts.sessions.seal(claims(level="basic")))
    seen = [
        (await parts.evaluator.evaluate(facts(path), headers, None, NOW)).decision
        for path, headers in (
            ("/wine/a", []),
            ("/wine/b", []),
            ("/wine/a", [low]),
            ("/wine/b", [low]),
        )
    ]
    assert seen[0] is seen[1] and seen[2] is seen[3]
    assert [d.reason for d in seen[::2]] == ["no_session", "assurance_too_low"]


async def test_decide_now_stops_allowing_a_kept_cookie_header_at_its_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fast path finds the usual Cookie header whole among the kept ones and takes
    # what its check decided before: the expiry must still be tested on every request.
    parts = build()
    name, value = session_cookie(parts.sessions.seal(claims()))
    await parts.evaluator.evaluate(facts("/wine/red"), [(name, value)], None, NOW)
    rule = parts.evaluator.policies.policy.match("GET", HOST, "/wine/red")
    assert rule is not None
    clock = [NOW + 599.0]
    monkeypatch.setattr("gateway.decision.evaluate.time.time", lambda: clock[0])
    ahead = parts.evaluator.decide_now(rule, None, [(name, value)], value)
    assert ahead is not None and ahead.reason == "session_ok"
    assert value in parts.sessions.alone_claims  # the header itself is now kept
    for at in (NOW + 600.0, NOW + 601.0):
        clock[0] = at
        assert parts.evaluator.decide_now(rule, None, [(name, value)], value) is None
