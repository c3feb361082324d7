"""Responder built by hand: challenges, denials and refusals as ASGI messages.

Decisions come from the Evaluator of tests/gateway/decision/harness.py, so each
response is the one the gateway would send for that request.
"""

from __future__ import annotations

import re
import time

from gateway.decision.evaluate import Evaluation, Refusal
from gateway.policy import Decision
from gateway.policy.facts import RequestFacts
from tests.gateway.decision.harness import NOW, ORIGIN, DownStore, Parts, Sent, build, token

HTML = b"text/html,application/xhtml+xml"
JSON = b"application/json"
AGE_TOKEN = re.compile(
    r'^AgeToken realm="(?P<realm>[^"]+)", nonce="(?P<nonce>[^"]+)", min_age="(?P<age>\d+)"'
    r'(?:, error="(?P<error>[^"]+)")?$'
)


async def decide(
    parts: Parts, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> Evaluation:
    facts = RequestFacts("GET", "shop.example", path, None)
    return await parts.evaluator.evaluate(facts, headers or [], "192.0.2.7", NOW)


async def challenge(
    parts: Parts,
    decision: Decision,
    *,
    method: str = "GET",
    accept: bytes | None = JSON,
    path: str = "/wine/red",
    query: bytes = b"",
    redirect_browsers: bool = True,
) -> Sent:
    sent = Sent()
    status = await parts.responder.challenge(
        sent,
        decision,
        method=method,
        accept=accept,
        path=path,
        query=query,
        redirect_browsers=redirect_browsers,
    )
    assert status == sent.status
    return sent


async def test_browser_navigation_is_sent_to_the_verify_page() -> None:
    parts = build()
    decision = (await decide(parts, "/wine/red")).decision
    sent = await challenge(parts, decision, accept=HTML, query=b"year=2019&x=1")
    assert sent.status == 303
    assert sent.header(b"location") == b"/.agegate/verify?return=/wine/red%3Fyear%3D2019%26x%3D1"
    assert sent.headers(b"www-authenticate") == []


async def test_head_navigation_is_redirected_without_a_body() -> None:
    parts = build()
    decision = (await decide(parts, "/wine/red")).decision
    sent = await challenge(parts, decision, method="HEAD", accept=HTML)
    assert sent.status == 303
    assert sent.body == b""


async def test_api_client_gets_401_with_a_fresh_nonce_of_ours() -> None:
    parts = build()
    decision = (await decide(parts, "/wine/red")).decision
    sent = await challenge(parts, decision, accept=JSON)
    assert sent.status == 401
    match = AGE_TOKEN.match(sent.header(b"www-authenticate").decode())
    assert match is not None
    assert match["realm"] == ORIGIN and match["age"] == "18" and match["error"] is None
    assert parts.nonces.check(match["nonce"], time.time())
    problem = sent.problem()
    assert problem["reason"] == "no_session"
    assert problem["min_age"] == 18
    assert problem["assurance"] == "standard"
    assert problem["verify_url"] == ORIGIN + "/.agegate/verify?return=/wine/red"


async def test_each_challenge_carries_a_new_nonce() -> None:
    parts = build()
    decision = (await decide(parts, "/wine/red")).decision
    first = await challenge(parts, decision)
    second = await challenge(parts, decision)
    assert first.header(b"www-authenticate") != second.header(b"www-authenticate")


async def test_post_from_a_browser_is_not_redirected() -> None:
    parts = build()
    decision = (await decide(parts, "/wine/red")).decision
    sent = await challenge(parts, decision, method="POST", accept=HTML)
    assert sent.status == 401
    assert sent.headers(b"location") == []


async def test_forward_auth_style_challenge_never_redirects() -> None:
    parts = build()
    decision = (await decide(parts, "/wine/red")).decision
    sent = await challenge(parts, decision, accept=HTML, redirect_browsers=False)
    assert sent.status == 401


async def test_token_below_the_threshold_gets_401_with_its_reason() -> None:
    parts = build()
    credential = token(nonce=parts.nonces.issue(NOW), age_over=[16])
    evaluation = await decide(
        parts, "/wine/red", [(b"authorization", f"AgeToken {credential}".encode())]
    )
    sent = await challenge(parts, evaluation.decision)
    assert sent.status == 401
    assert sent.problem()["reason"] == "age_not_proven"
    assert AGE_TOKEN.match(sent.header(b"www-authenticate").decode())


async def test_under_age_gets_403_page_in_a_browser_and_a_problem_otherwise() -> None:
    parts = build()
    credential = token(nonce=parts.nonces.issue(NOW), age_under=[18])
    evaluation = await decide(
        parts, "/wine/red", [(b"authorization", f"AgeToken {credential}".encode())]
    )
    page = Sent()
    assert await parts.responder.deny(page, evaluation.decision, method="GET", accept=HTML) == 403
    assert page.status == 403
    assert page.header(b"content-type").startswith(b"text/html")
    assert b"18" in page.body
    api = Sent()
    await parts.responder.deny(api, evaluation.decision, method="GET", accept=JSON)
    assert api.status == 403
    assert api.problem()["reason"] == "proven_under"


async def test_no_matching_rule_gets_403_denied() -> None:
    parts = build()
    decision = (await decide(parts, "/elsewhere")).decision
    sent = Sent()
    await parts.responder.deny(sent, decision, method="GET", accept=JSON)
    assert sent.status == 403
    assert sent.problem()["reason"] == "no_matching_rule"


async def test_wrong_nonce_gets_401_invalid_token_and_a_new_nonce() -> None:
    parts, other = build(), build()
    credential = token(nonce=other.nonces.issue(NOW), age_over=[18])
    evaluation = await decide(
        parts, "/wine/red", [(b"authorization", f"AgeToken {credential}".encode())]
    )
    assert evaluation.refusal is not None
    sent = Sent()
    status = await parts.responder.refusal(
        sent, evaluation.refusal, evaluation.decision, method="GET", accept=JSON
    )
    assert status == sent.status == 401
    assert sent.problem()["reason"] == "wrong_nonce"
    match = AGE_TOKEN.match(sent.header(b"www-authenticate").decode())
    assert match is not None and match["error"] == "invalid_token"
    assert parts.nonces.check(match["nonce"], time.time())
    assert sent.headers(b"set-cookie") == []


async def test_store_down_gets_503_with_retry_after() -> None:
    parts = build(DownStore(b"k" * 32))
    credential = token(nonce=parts.nonces.issue(NOW), age_over=[18])
    evaluation = await decide(
        parts, "/wine/red", [(b"authorization", f"AgeToken {credential}".encode())]
    )
    assert evaluation.refusal is not None
    sent = Sent()
    await parts.responder.refusal(
        sent, evaluation.refusal, evaluation.decision, method="GET", accept=JSON
    )
    assert sent.status == 503
    assert sent.header(b"retry-after") == b"5"
    assert sent.problem()["reason"] == "store_unavailable"
    assert sent.headers(b"www-authenticate") == []


async def test_rate_limited_refusal_has_retry_after() -> None:
    parts = build()
    sent = Sent()
    refusal = Refusal(429, "rate_limited", "too many verification attempts", 7)
    await parts.responder.refusal(sent, refusal, None, method="HEAD", accept=JSON)
    assert sent.status == 429
    assert sent.header(b"retry-after") == b"7"
    assert sent.body == b""
