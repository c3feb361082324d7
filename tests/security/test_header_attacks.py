"""Attacks with request headers: spoofed agegate and proxy headers, hop-by-hop abuse,
request smuggling and oversized heads, against a live gateway over raw sockets."""

from __future__ import annotations

import time

import pytest

from tests.security.support import (
    api_session,
    assert_refused,
    get,
    new_upstream_requests,
)
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import build_request, exchange
from tests.support.upstream import UpstreamServer

AGEGATE_HEADERS = ["X-Agegate-Age-Over", "X-Agegate-Assurance", "X-Agegate-Verified"]
FORWARDED_HEADERS = [
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Real-IP",
    "Forwarded",
]


def _spellings(name: str) -> list[str]:
    """Odd spellings a framework might still read as ``name`` (CVE-2025-64484 class)."""
    return sorted(
        {
            name,
            name.upper(),
            name.lower(),
            name.swapcase(),
            name.replace("-", "_"),
            name.replace("-", "_").upper(),
            name.replace("-", "_").lower(),
            name.replace("-", "_", 1),
        }
    )


def _echoed(response: object) -> dict[str, list[str]]:
    doc = response.json()  # type: ignore[attr-defined]
    headers: dict[str, list[str]] = {}
    for key, value in doc["headers"]:
        headers.setdefault(key.lower(), []).append(value)
    return headers


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-")


def test_underscore_header_spoofing_cve_2025_64484(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    spoof = [(b"X_Agegate_Age_Over", b"18"), (b"X_Agegate_Assurance", b"strict")]
    # Protected route: the spoofed header grants nothing and the upstream is never asked.
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/wine/red", spoof))
    assert not new_upstream_requests(upstream, before)
    # Public route: the spoofed header does not reach the upstream in any spelling.
    response = get(gateway, "/echo/public/x", spoof)
    assert response.status == 200
    assert not [k for k in _echoed(response) if _normalized(k).startswith("x-agegate-")]


@pytest.mark.parametrize(
    "name", sorted({s for n in AGEGATE_HEADERS for s in _spellings(n)}), ids=str
)
def test_agegate_header_spellings_are_stripped_and_grant_nothing(
    gateway: GatewayProcess, upstream: UpstreamServer, name: str
) -> None:
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/wine/red", [(name, "18")]))
    assert not new_upstream_requests(upstream, before)
    response = get(gateway, "/echo/public/x", [(name, "18")])
    assert response.status == 200
    assert not [k for k in _echoed(response) if _normalized(k).startswith("x-agegate-")]


@pytest.mark.parametrize(
    "name", sorted({s for n in FORWARDED_HEADERS for s in _spellings(n)}), ids=str
)
def test_forwarded_header_spellings_from_untrusted_peer_are_rebuilt(
    gateway: GatewayProcess, name: str
) -> None:
    value = "for=6.6.6.6;host=evil.example;proto=https" if name.lower() == "forwarded" else None
    response = get(gateway, "/echo/public/x", [(name, value or "6.6.6.6, evil.example")])
    assert response.status == 200
    echoed = _echoed(response)
    for key, values in echoed.items():
        for item in values:
            assert "6.6.6.6" not in item and "evil.example" not in item, (key, item)
    assert echoed["x-forwarded-for"] == ["127.0.0.1"]
    assert echoed["x-forwarded-host"] == ["localhost"]
    assert echoed["x-forwarded-proto"] == ["http"]
    assert echoed["forwarded"] == ["for=127.0.0.1;host=localhost;proto=http"]
    assert "x-real-ip" not in echoed


def test_verified_upstream_gets_only_the_gateways_age_header(
    gateway: GatewayProcess,
) -> None:
    response, cookie = api_session(gateway)
    assert response.status == 200 and cookie
    jar = (b"Cookie", f"__Host-agegate={cookie}".encode())
    spoof = [jar, (b"X-Agegate-Age-Over", b"99"), (b"x_agegate_assurance", b"strict")]
    echoed = _echoed(get(gateway, "/echo/wine/white", spoof))
    assert echoed["x-agegate-age-over"] == ["18"]
    assert echoed["x-agegate-assurance"] == ["basic"]
    assert not [k for k in echoed if "_" in k]


CONNECTION_ABUSE = {
    "age_header": "close, X-Agegate-Age-Over",
    "age_header_keepalive": "keep-alive, X-Agegate-Age-Over, X-Agegate-Assurance",
    "age_header_upper": "X-AGEGATE-AGE-OVER",
    "forwarding": "close, X-Forwarded-For, Forwarded, X-Forwarded-Host",
    "host": "close, Host",
}


@pytest.mark.parametrize("value", CONNECTION_ABUSE.values(), ids=CONNECTION_ABUSE.keys())
def test_connection_header_cannot_drop_gateway_headers(
    gateway: GatewayProcess, upstream: UpstreamServer, value: str
) -> None:
    response, cookie = api_session(gateway)
    assert response.status == 200 and cookie
    jar = (b"Cookie", f"__Host-agegate={cookie}".encode())
    spoof = [(b"Connection", value.encode()), (b"X-Agegate-Age-Over", b"99")]
    echoed = _echoed(get(gateway, "/echo/wine/red", [jar, *spoof]))
    # The gateway's own headers survive; the client's own never cross.
    assert echoed["x-agegate-age-over"] == ["18"]
    assert echoed["x-agegate-assurance"] == ["basic"]
    assert echoed["x-forwarded-for"] == ["127.0.0.1"]
    assert echoed["host"] == ["localhost"]
    assert "connection" not in echoed or "agegate" not in str(echoed["connection"]).lower()
    # Without a session the hop-by-hop trick grants nothing either.
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/wine/red", spoof))
    assert not new_upstream_requests(upstream, before)


def test_connection_header_dropping_cookie_does_not_leak_session(
    gateway: GatewayProcess,
) -> None:
    _, cookie = api_session(gateway)
    assert cookie
    jar = (b"Cookie", f"__Host-agegate={cookie}; site=1".encode())
    echoed = _echoed(get(gateway, "/echo/wine/red", [jar, (b"Connection", b"close, Cookie")]))
    assert cookie not in str(echoed)


# -- request smuggling -------------------------------------------------------------------

_SMUGGLED = b"GET /echo/wine/red HTTP/1.1\r\nHost: localhost\r\n\r\n"

SMUGGLING = {
    "te_cl": [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"4")],
    "cl_te": [(b"Content-Length", b"4"), (b"Transfer-Encoding", b"chunked")],
    "te_obfuscated_case": [(b"Transfer-Encoding", b"ChUnKeD"), (b"Content-Length", b"4")],
    "te_list": [(b"Transfer-Encoding", b"gzip, chunked"), (b"Content-Length", b"4")],
    "te_identity_then_chunked": [
        (b"Transfer-Encoding", b"identity"),
        (b"Transfer-Encoding", b"chunked"),
    ],
    "te_xchunked": [(b"Transfer-Encoding", b"xchunked"), (b"Content-Length", b"4")],
    "te_space_before_colon": [(b"Transfer-Encoding ", b"chunked"), (b"Content-Length", b"4")],
    "te_tab_value": [(b"Transfer-Encoding", b"\tchunked"), (b"Content-Length", b"4")],
    "te_vertical_tab": [(b"Transfer-Encoding", b"\x0bchunked"), (b"Content-Length", b"4")],
    "double_cl": [(b"Content-Length", b"4"), (b"Content-Length", b"60")],
    "cl_plus": [(b"Content-Length", b"+4")],
    "cl_list": [(b"Content-Length", b"4, 60")],
    "te_underscore": [(b"Transfer_Encoding", b"chunked"), (b"Content-Length", b"4")],
    "te_obs_fold": [(b"Transfer-Encoding", b"x\r\n chunked"), (b"Content-Length", b"4")],
}


@pytest.mark.parametrize("headers", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_request_smuggling_never_reaches_the_upstream(
    gateway: GatewayProcess, upstream: UpstreamServer, headers: list[tuple[bytes, bytes]]
) -> None:
    body = b"0\r\n\r\n" + _SMUGGLED
    data = build_request(
        "POST", "/echo/public/smuggle", headers, body, close=False, content_length=False
    )
    before = len(upstream.requests)
    responses = exchange(gateway.port, data, expect=2, timeout=2)
    time.sleep(0.1)  # anything the upstream gets is recorded by now
    for response in responses:
        assert response.status < 500, response
        if response.status == 200:
            # The first request, public; its body is whatever the gateway framed.
            assert response.json()["path"] == "/echo/public/smuggle"
    seen = new_upstream_requests(upstream, before)
    assert all(target == "/echo/public/smuggle" for _, target in seen), seen
    assert len(seen) <= 1, seen


def test_pipelined_protected_request_is_decided_on_its_own(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # Two requests on one connection: the second is not carried on the first's decision.
    first = build_request("GET", "/echo/public/a", close=False)
    second = build_request("GET", "/echo/wine/red", close=True)
    before = len(upstream.requests)
    responses = exchange(gateway.port, first + second, expect=2)
    assert [r.status for r in responses] == [200, 401]
    assert new_upstream_requests(upstream, before) == [("GET", "/echo/public/a")]


# -- oversized heads ---------------------------------------------------------------------

OVERSIZED = {
    "huge_header_value": [(b"X-Big", b"a" * 40_000)],
    "many_headers": [(f"X-H{i}".encode(), b"v") for i in range(150)],
    "huge_cookie": [(b"Cookie", b"__Host-agegate=" + b"A" * 40_000)],
    "huge_header_name": [(b"X" * 40_000, b"v")],
}


@pytest.mark.parametrize("headers", OVERSIZED.values(), ids=OVERSIZED.keys())
def test_oversized_heads_are_refused(
    gateway: GatewayProcess, upstream: UpstreamServer, headers: list[tuple[bytes, bytes]]
) -> None:
    before = len(upstream.requests)
    for target in ("/echo/public/x", "/echo/wine/red"):
        assert_refused(get(gateway, target, headers), {400, 431})
    assert not new_upstream_requests(upstream, before)


def test_oversized_target_is_refused(gateway: GatewayProcess, upstream: UpstreamServer) -> None:
    before = len(upstream.requests)
    assert_refused(get(gateway, "/echo/public/" + "a" * 10_000), {400, 414})
    assert_refused(get(gateway, "/echo/public/x?" + "q" * 10_000), {400, 414})
    assert not new_upstream_requests(upstream, before)


def test_oversized_cookie_within_limits_is_ignored_not_500(gateway: GatewayProcess) -> None:
    # Under the head limit but far over any cookie we would set: ignored, challenged.
    response = get(gateway, "/echo/wine/red", [(b"Cookie", b"__Host-agegate=" + b"A" * 20_000)])
    assert_refused(response, {401})


def test_authorization_garbage_never_500(gateway: GatewayProcess) -> None:
    for value in (
        b"AgeToken ",
        b"AgeToken \xff\xfe",
        b"AgeToken a.b.c",
        b"AgeToken " + b"A" * 20_000,
        b"agetoken eyJhbGciOiJub25lIn0.e30.",
        b"AgeToken eyJ0eXAiOiJhZ2UtdG9rZW4rand0IiwiYWxnIjoibm9uZSJ9.eyJub25jZSI6IngifQ.",
    ):
        assert_refused(get(gateway, "/echo/wine/red", [(b"Authorization", value)]), {400, 401})
