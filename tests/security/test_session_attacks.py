"""Attacks on sessions and the verification flow: cookie tampering, session fixation,
CSRF on the callback and on logout, and token replay — against a live gateway."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.security.support import (
    HTML,
    api_nonce,
    api_session,
    assert_refused,
    browser_challenge,
    callback,
    get,
    new_upstream_requests,
)
from tests.support.gateway import GatewayProcess, cookie_value, session_cookie
from tests.support.rawhttp import RawResponse, request
from tests.support.upstream import UpstreamServer

SESSION = "__Host-agegate"
CHALLENGE = "__Host-agegate-challenge"


def _jar(value: str, name: str = SESSION) -> tuple[bytes, bytes]:
    return (b"Cookie", f"{name}={value}".encode())


def _invalid_cookie_count(gw: GatewayProcess) -> float:
    metrics = request(gw.admin_port, "GET", "/metrics", host="127.0.0.1").text
    total = 0.0
    for match in re.finditer(
        r"^agegate_invalid_cookies_total\{[^}]*\} ([0-9.e+]+)$", metrics, re.M
    ):
        total += float(match.group(1))
    return total


def _no_session_set(response: RawResponse) -> None:
    assert session_cookie(response.header_list("set-cookie")) in (None, ""), response.headers
    assert not [c for c in response.header_list("set-cookie") if c.startswith(f"{SESSION}=v1")]


def _form(**fields: str) -> bytes:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items()).encode()


# -- cookie tampering ------------------------------------------------------------------


def _flip(value: str, index: int) -> str:
    char = value[index]
    replacement = "A" if char != "A" else "B"
    return value[:index] + replacement + value[index + 1 :]


@pytest.fixture
def valid_cookie(gateway: GatewayProcess) -> str:
    response, cookie = api_session(gateway)
    assert response.status == 200 and cookie
    return cookie


def test_valid_cookie_is_accepted(gateway: GatewayProcess, valid_cookie: str) -> None:
    assert get(gateway, "/echo/wine/red", [_jar(valid_cookie)]).status == 200


@pytest.mark.parametrize("where", ["version", "kid", "nonce", "ciphertext", "tag"])
def test_flipped_byte_in_session_cookie_is_challenged_and_counted(
    gateway: GatewayProcess, upstream: UpstreamServer, valid_cookie: str, where: str
) -> None:
    body_start = valid_cookie.rindex(".") + 1
    index = {
        "version": 0,
        "kid": 4,
        "nonce": body_start + 2,
        "ciphertext": body_start + 30,
        "tag": len(valid_cookie) - 3,
    }[where]
    tampered = _flip(valid_cookie, index)
    assert tampered != valid_cookie
    counted = _invalid_cookie_count(gateway)
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/wine/red", [_jar(tampered)]), {401})
    assert_refused(get(gateway, "/echo/wine/red", [_jar(tampered), HTML]), {303})
    assert not new_upstream_requests(upstream, before)
    assert _invalid_cookie_count(gateway) >= counted + 2


TAMPERED = {
    "truncated": lambda c: c[:-4],
    "extended": lambda c: c + "AAAA",
    "other_version": lambda c: "v2" + c[2:],
    "no_dots": lambda c: c.replace(".", ""),
    "extra_segment": lambda c: c + ".x",
    "empty": lambda c: "",
    "quoted": lambda c: f'"{c[:-1]}"',
    "swapped_halves": lambda c: c[: c.rindex(".") + 1] + c[-20:] + c[c.rindex(".") + 1 : -20],
}


@pytest.mark.parametrize("mangle", TAMPERED.values(), ids=TAMPERED.keys())
def test_mangled_session_cookies_never_grant_access(
    gateway: GatewayProcess, upstream: UpstreamServer, valid_cookie: str, mangle: object
) -> None:
    value = mangle(valid_cookie)  # type: ignore[operator]
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/wine/red", [_jar(value)]), {401})
    assert not new_upstream_requests(upstream, before)


def test_challenge_cookie_does_not_open_as_session(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    challenge = browser_challenge(gateway)
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/wine/red", [_jar(challenge.cookie)]), {401})
    assert not new_upstream_requests(upstream, before)


def test_shadowing_cookie_does_not_confuse_the_gateway(
    gateway: GatewayProcess, valid_cookie: str
) -> None:
    # The first occurrence wins (RFC 6265 order); an attacker-planted garbage cookie
    # listed first (e.g. set by a sibling host without __Host-) only logs the visitor out.
    header = f"{SESSION}=garbage; {SESSION}={valid_cookie}".encode()
    assert_refused(get(gateway, "/echo/wine/red", [(b"Cookie", header)]), {401})
    header = f"{SESSION}={valid_cookie}; {SESSION}=garbage".encode()
    response = get(gateway, "/echo/wine/red", [(b"Cookie", header)])
    assert response.status == 200
    assert "garbage" not in response.text and valid_cookie not in response.text


def test_session_is_bound_to_threshold_not_route(
    gateway: GatewayProcess, upstream: UpstreamServer, valid_cookie: str
) -> None:
    # An 18 session must not open the 21 route.
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/spirits/rum", [_jar(valid_cookie)]), {401})
    assert not new_upstream_requests(upstream, before)


# -- session fixation ------------------------------------------------------------------


def test_api_token_with_a_fixed_garbage_cookie_gets_a_fresh_session(
    gateway: GatewayProcess,
) -> None:
    planted = "v1.deadbeef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    token = gateway.mint(api_nonce(gateway))
    response = get(
        gateway,
        "/echo/wine/red",
        [(b"Authorization", f"AgeToken {token}".encode()), _jar(planted)],
    )
    assert response.status == 200
    fresh = session_cookie(response.header_list("set-cookie"))
    assert fresh and fresh.startswith("v1.") and fresh != planted
    # The planted value is still worthless.
    assert_refused(get(gateway, "/echo/wine/red", [_jar(planted)]), {401})


def test_api_token_with_a_challenge_cookie_as_session_is_not_upgraded(
    gateway: GatewayProcess,
) -> None:
    planted = browser_challenge(gateway).cookie
    token = gateway.mint(api_nonce(gateway))
    response = get(
        gateway,
        "/echo/wine/red",
        [(b"Authorization", f"AgeToken {token}".encode()), _jar(planted)],
    )
    assert response.status == 200
    fresh = session_cookie(response.header_list("set-cookie"))
    assert fresh and fresh != planted
    assert_refused(get(gateway, "/echo/wine/red", [_jar(planted)]), {401})


def test_callback_with_planted_session_cookie_gets_a_fresh_session(
    gateway: GatewayProcess,
) -> None:
    challenge = browser_challenge(gateway)
    planted = "attacker-chosen-session-value"
    token = gateway.mint(challenge.nonce)
    cookie = f"{CHALLENGE}={challenge.cookie}; {SESSION}={planted}".encode()
    response = get(
        gateway,
        "/.agegate/callback/test-token",
        [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Cookie", cookie)],
        method="POST",
        body=_form(age_token=token, state=challenge.state),
    )
    assert response.status == 303, response.text
    fresh = session_cookie(response.header_list("set-cookie"))
    assert fresh and fresh.startswith("v1.") and planted not in fresh
    assert fresh != challenge.cookie


def test_each_verification_seals_a_different_cookie(gateway: GatewayProcess) -> None:
    first = api_session(gateway)[1]
    second = api_session(gateway)[1]
    assert first and second and first != second


# -- CSRF on the callback --------------------------------------------------------------


def test_callback_without_state_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    response = callback(gateway, _form(age_token=token), challenge.cookie)
    assert response.status == 400
    assert response.json()["reason"] == "state_mismatch"
    _no_session_set(response)


def test_callback_with_forged_state_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    for forged in ("forged", challenge.state + "x", challenge.state[:-1], "", challenge.nonce):
        response = callback(gateway, _form(age_token=token, state=forged), challenge.cookie)
        assert response.status == 400, forged
        _no_session_set(response)
    # The genuine answer still works afterwards: failures consumed nothing.
    ok = callback(gateway, _form(age_token=token, state=challenge.state), challenge.cookie)
    assert ok.status == 303


def test_callback_without_challenge_cookie_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    response = callback(gateway, _form(age_token=token, state=challenge.state), None)
    assert response.status == 400
    assert response.json()["reason"] == "challenge_missing"
    _no_session_set(response)


def test_callback_with_another_visitors_challenge_cookie_is_refused(
    gateway: GatewayProcess,
) -> None:
    # The attacker completes a verification and sends the answer to the victim's browser
    # (login CSRF): the victim's challenge cookie does not match the attacker's state.
    attacker = browser_challenge(gateway)
    victim = browser_challenge(gateway)
    token = gateway.mint(attacker.nonce)
    response = callback(gateway, _form(age_token=token, state=attacker.state), victim.cookie)
    assert response.status == 400
    _no_session_set(response)
    # Nor with the victim's state but the attacker's token (nonce bound to another challenge).
    response = callback(gateway, _form(age_token=token, state=victim.state), victim.cookie)
    assert response.status == 400
    assert response.json()["reason"] in {"wrong_nonce", "nonce_mismatch"}
    _no_session_set(response)


def test_callback_with_session_cookie_as_challenge_is_refused(
    gateway: GatewayProcess, valid_cookie: str
) -> None:
    response = callback(gateway, _form(age_token="x", state="y"), valid_cookie)
    assert response.status == 400
    assert response.json()["reason"] == "challenge_missing"


def test_callback_with_tampered_challenge_cookie_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    tampered = _flip(challenge.cookie, len(challenge.cookie) - 5)
    response = callback(gateway, _form(age_token=token, state=challenge.state), tampered)
    assert response.status == 400
    assert response.json()["reason"] == "challenge_missing"
    _no_session_set(response)


def test_callback_provider_error_and_html_refusal_change_no_session(
    gateway: GatewayProcess,
) -> None:
    challenge = browser_challenge(gateway)
    response = callback(
        gateway,
        _form(error="<script>alert(1)</script>", state=challenge.state),
        challenge.cookie,
        [HTML],
    )
    assert response.status == 400
    assert "<script>" not in response.text
    _no_session_set(response)


def test_callback_for_unknown_or_unoffered_verifier_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    fields = _form(age_token=token, state=challenge.state)
    for name in ("nope", "..%2ftest-token", "test-token%00"):
        response = callback(gateway, fields, challenge.cookie, verifier=name)
        assert_refused(response, {400, 404})
        _no_session_set(response)


# -- CSRF on logout --------------------------------------------------------------------

CROSS_ORIGIN = {
    "evil_origin": [(b"Origin", b"https://evil.example")],
    "null_origin": [(b"Origin", b"null")],
    "no_proof": [],
    "cross_site_fetch": [(b"Sec-Fetch-Site", b"cross-site")],
    "same_site_fetch": [(b"Sec-Fetch-Site", b"same-site")],
    "lookalike_origin": [(b"Origin", b"http://localhost.evil.example")],
    "referer_only": [(b"Referer", b"http://localhost/")],
}


@pytest.mark.parametrize("headers", CROSS_ORIGIN.values(), ids=CROSS_ORIGIN.keys())
def test_cross_origin_logout_is_refused_and_session_untouched(
    gateway: GatewayProcess, valid_cookie: str, headers: list[tuple[bytes, bytes]]
) -> None:
    response = get(gateway, "/.agegate/logout", [_jar(valid_cookie), *headers], method="POST")
    assert response.status == 403
    assert not response.header_list("set-cookie")
    assert get(gateway, "/echo/wine/red", [_jar(valid_cookie)]).status == 200


def test_lookalike_port_origin_logout_is_refused(
    gateway: GatewayProcess, valid_cookie: str
) -> None:
    origin = f"{gateway.public_origin}.evil.example".encode()
    response = get(
        gateway, "/.agegate/logout", [_jar(valid_cookie), (b"Origin", origin)], method="POST"
    )
    assert response.status == 403


def test_logout_by_get_is_not_allowed(gateway: GatewayProcess, valid_cookie: str) -> None:
    response = get(gateway, "/.agegate/logout", [_jar(valid_cookie), HTML])
    assert response.status in {403, 405}
    assert not response.header_list("set-cookie")


def test_same_origin_logout_clears_the_cookie(gateway: GatewayProcess, valid_cookie: str) -> None:
    origin = (b"Origin", gateway.public_origin.encode())
    response = get(gateway, "/.agegate/logout", [_jar(valid_cookie), origin], method="POST")
    assert response.status == 204
    assert cookie_value(response.header_list("set-cookie"), SESSION) == ""
    fetch = (b"Sec-Fetch-Site", b"same-origin")
    response = get(gateway, "/.agegate/logout", [_jar(valid_cookie), fetch, HTML], method="POST")
    assert response.status == 303
    # Browsers land on a page that says they are logged out (README design notes).
    assert response.header("location") == "/.agegate/status?logged_out=1"


# -- token replay ----------------------------------------------------------------------


def test_same_token_twice_via_api_is_refused(gateway: GatewayProcess) -> None:
    token = gateway.mint(api_nonce(gateway))
    auth = (b"Authorization", f"AgeToken {token}".encode())
    assert get(gateway, "/echo/wine/red", [auth]).status == 200
    second = get(gateway, "/echo/wine/red", [auth])
    assert second.status == 401
    assert second.json()["reason"] in {"replayed", "replayed_nonce"}
    assert not second.header_list("set-cookie")


def test_second_token_with_the_same_nonce_is_refused(gateway: GatewayProcess) -> None:
    nonce = api_nonce(gateway)
    first = get(
        gateway, "/echo/wine/red", [(b"Authorization", b"AgeToken " + gateway.mint(nonce).encode())]
    )
    assert first.status == 200
    second = get(
        gateway, "/echo/wine/red", [(b"Authorization", b"AgeToken " + gateway.mint(nonce).encode())]
    )
    assert second.status == 401
    assert second.json()["reason"] == "replayed_nonce"


def test_same_token_twice_via_callback_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    fields = _form(age_token=token, state=challenge.state)
    assert callback(gateway, fields, challenge.cookie).status == 303
    again = callback(gateway, fields, challenge.cookie)
    assert again.status == 400
    assert again.json()["reason"] in {"replayed", "replayed_nonce"}
    _no_session_set(again)
    # A new token on the same (already used) challenge is refused too: the nonce is spent.
    fresh = _form(age_token=gateway.mint(challenge.nonce), state=challenge.state)
    again = callback(gateway, fresh, challenge.cookie)
    assert again.status == 400
    _no_session_set(again)


def test_token_used_in_callback_cannot_be_replayed_via_api(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    token = gateway.mint(challenge.nonce)
    assert (
        callback(gateway, _form(age_token=token, state=challenge.state), challenge.cookie).status
        == 303
    )
    replay = get(gateway, "/echo/wine/red", [(b"Authorization", f"AgeToken {token}".encode())])
    assert_refused(replay, {401})


def test_token_for_another_audience_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    token = gateway.mint(api_nonce(gateway), audience="https://other.example")
    before = len(upstream.requests)
    response = get(gateway, "/echo/wine/red", [(b"Authorization", f"AgeToken {token}".encode())])
    assert_refused(response, {401})
    assert response.json()["reason"] == "wrong_audience"
    assert not new_upstream_requests(upstream, before)


def test_token_signed_by_an_unknown_key_is_refused(gateway: GatewayProcess) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.gateway import ISSUER
    from verifiers import sdk

    forged = sdk.issue_age_token(
        ec.generate_private_key(ec.SECP256R1()),
        issuer=ISSUER,
        audience=gateway.public_origin,
        nonce=api_nonce(gateway),
        age_over={18: True},
    )
    response = get(gateway, "/echo/wine/red", [(b"Authorization", f"AgeToken {forged}".encode())])
    assert_refused(response, {401})
