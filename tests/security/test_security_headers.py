"""Security headers on every response the gateway makes, and the rules for its cookies."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from tests.security.support import (
    HTML,
    api_nonce,
    api_session,
    browser_challenge,
    callback,
    get,
)
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse, build_request, exchange

Make = Callable[[GatewayProcess], RawResponse]


def _session(gw: GatewayProcess) -> tuple[bytes, bytes]:
    cookie = api_session(gw)[1]
    assert cookie
    return (b"Cookie", f"__Host-agegate={cookie}".encode())


def _good_callback(gw: GatewayProcess) -> RawResponse:
    challenge = browser_challenge(gw)
    token = gw.mint(challenge.nonce)
    fields = f"age_token={token}&state={quote(challenge.state)}".encode()
    return callback(gw, fields, challenge.cookie)


def _bad_callback(accept: tuple[bytes, bytes] | None) -> Make:
    def make(gw: GatewayProcess) -> RawResponse:
        challenge = browser_challenge(gw)
        extra = [accept] if accept else []
        return callback(gw, b"age_token=x&state=forged", challenge.cookie, extra)

    return make


def _logout(headers: list[tuple[bytes, bytes]]) -> Make:
    def make(gw: GatewayProcess) -> RawResponse:
        return get(gw, "/.agegate/logout", [_session(gw), *headers], method="POST")

    return make


GATEWAY_RESPONSES: dict[str, tuple[Make, int]] = {
    "challenge_303": (lambda gw: get(gw, "/echo/wine/red", [HTML]), 303),
    "challenge_401": (lambda gw: get(gw, "/echo/wine/red"), 401),
    "challenge_head": (lambda gw: get(gw, "/echo/wine/red", method="HEAD"), 401),
    "deny_403": (lambda gw: get(gw, "/echo/closed/x"), 403),
    "deny_403_html": (lambda gw: get(gw, "/echo/closed/x", [HTML]), 403),
    "bad_path_400": (lambda gw: get(gw, "/echo%2Fwine"), 400),
    "bad_path_400_html": (lambda gw: get(gw, "/echo/%00", [HTML]), 400),
    "absolute_foreign_421": (lambda gw: get(gw, "http://evil.example/echo/public/x"), 421),
    "host_421": (lambda gw: get(gw, "/echo/public/x", host=b"evil.example"), 421),
    "token_refused_401": (
        lambda gw: get(gw, "/echo/wine/red", [(b"Authorization", b"AgeToken x.y.z")]),
        401,
    ),
    "proven_under_403": (lambda gw: api_session(gw, age_over={18: False})[0], 403),
    "verify_page_200": (lambda gw: browser_challenge(gw).page, 200),
    "verify_satisfied_303": (
        lambda gw: get(gw, "/.agegate/verify?return=/echo/wine/red", [_session(gw), HTML]),
        303,
    ),
    "verify_denied_403": (lambda gw: get(gw, "/.agegate/verify?return=/echo/closed/x"), 403),
    "callback_error_400_json": (_bad_callback(None), 400),
    "callback_error_400_html": (_bad_callback(HTML), 400),
    "callback_missing_challenge_400": (
        lambda gw: callback(gw, b"age_token=x&state=y", None, [HTML]),
        400,
    ),
    "callback_ok_303": (_good_callback, 303),
    "callback_unknown_verifier_404": (lambda gw: callback(gw, b"", None, verifier="nope"), 404),
    "callback_wrong_method_405": (
        lambda gw: get(gw, "/.agegate/callback/test-token", [HTML]),
        405,
    ),
    "status_200": (lambda gw: get(gw, "/.agegate/status"), 200),
    "status_verified_200": (lambda gw: get(gw, "/.agegate/status", [_session(gw)]), 200),
    "logout_403": (_logout([(b"Origin", b"https://evil.example")]), 403),
    "logout_204": (lambda gw: _logout([(b"Origin", gw.public_origin.encode())])(gw), 204),
    "logout_303": (_logout([(b"Sec-Fetch-Site", b"same-origin"), HTML]), 303),
    "agegate_404": (lambda gw: get(gw, "/.agegate/nope"), 404),
    "agegate_root_404": (lambda gw: get(gw, "/.agegate"), 404),
}


def assert_security_headers(response: RawResponse) -> None:
    assert response.header("cache-control") == "no-store", response.headers
    csp = response.header("content-security-policy") or ""
    assert "frame-ancestors 'none'" in csp, csp
    assert response.header("referrer-policy") == "no-referrer"
    assert response.header("x-content-type-options") == "nosniff"


def assert_cookie_rules(response: RawResponse) -> None:
    for header in response.header_list("set-cookie"):
        pair, *attributes = [part.strip() for part in header.split(";")]
        name = pair.split("=", 1)[0]
        lowered = [a.lower() for a in attributes]
        assert name.startswith("__Host-"), header
        assert "secure" in lowered, header
        assert "httponly" in lowered, header
        assert "path=/" in lowered, header
        assert not [a for a in lowered if a.startswith("domain")], header
        expected = "samesite=none" if name == "__Host-agegate-challenge" else "samesite=lax"
        assert expected in lowered, header
        assert sum(a.startswith("samesite") for a in lowered) == 1, header


@pytest.mark.parametrize(("make", "status"), GATEWAY_RESPONSES.values(), ids=GATEWAY_RESPONSES)
def test_gateway_responses_carry_security_headers(
    gateway: GatewayProcess, make: Make, status: int
) -> None:
    response = make(gateway)
    assert response.status == status, (response.status, response.body[:300])
    assert_security_headers(response)
    assert_cookie_rules(response)


def test_session_and_challenge_cookies_follow_the_rules(gateway: GatewayProcess) -> None:
    seen = set()
    for response in (
        api_session(gateway)[0],
        browser_challenge(gateway).page,
        _good_callback(gateway),
        _logout([(b"Origin", gateway.public_origin.encode())])(gateway),
    ):
        assert response.header_list("set-cookie"), response.headers
        assert_cookie_rules(response)
        seen.update(h.split("=", 1)[0] for h in response.header_list("set-cookie"))
    assert seen == {"__Host-agegate", "__Host-agegate-challenge"}


def test_challenge_cookie_lives_ten_minutes(gateway: GatewayProcess) -> None:
    header = browser_challenge(gateway).page.header("set-cookie") or ""
    assert "Max-Age=600" in header


def test_api_answer_session_cookie_follows_the_rules(gateway: GatewayProcess) -> None:
    # The upstream's own 200 carries our Set-Cookie: the same rules apply to it.
    token = gateway.mint(api_nonce(gateway))
    response = get(gateway, "/echo/wine/red", [(b"Authorization", f"AgeToken {token}".encode())])
    assert response.status == 200
    assert_cookie_rules(response)


PROTOCOL_REFUSALS = {
    "oversized_header_431": [(b"X-Big", b"a" * 40_000)],
    "unparsable_400": [(b"Bad Header", b"x")],
}


@pytest.mark.parametrize("headers", PROTOCOL_REFUSALS.values(), ids=PROTOCOL_REFUSALS)
def test_protocol_level_refusals_carry_security_headers(
    gateway: GatewayProcess, headers: list[tuple[bytes, bytes]]
) -> None:
    data = build_request("GET", "/echo/public/x", headers)
    (response,) = exchange(gateway.port, data, expect=1)
    assert response.status in {400, 414, 431}
    assert_security_headers(response)
