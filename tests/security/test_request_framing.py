"""Framing attacks on the public listener: protocol-switch requests that carry a body,
CONNECT, chunked trailers posing as head fields, and agegate credentials the gateway did
not use, over raw sockets against a live gateway (security issue, points 1, 5 and 7)."""

from __future__ import annotations

import time

import pytest

from tests.security.support import api_session, get, new_upstream_requests
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import build_request, exchange
from tests.support.upstream import UpstreamServer

_SMUGGLED = b"GET /echo/wine/red HTTP/1.1\r\nHost: localhost\r\nX-Agegate-Age-Over: 18\r\n\r\n"


def _echoed_headers(response: object) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for key, value in response.json()["headers"]:  # type: ignore[attr-defined]
        headers.setdefault(key.lower(), []).append(value)
    return headers


def _upstream_saw_nothing(upstream: UpstreamServer, before: int) -> None:
    time.sleep(0.1)  # anything the upstream got is recorded by now
    assert new_upstream_requests(upstream, before) == []


@pytest.mark.parametrize("upgrade", [b"foo", b"h2c", b"websocket", b"WebSocket, foo"])
def test_upgrade_with_declared_body_and_no_body_is_refused_cl_desync(
    gateway: GatewayProcess, upstream: UpstreamServer, upgrade: bytes
) -> None:
    # The reported bypass: httptools skips the body of an upgrade request, so the
    # client's Content-Length went upstream with no bytes behind it and the next
    # request on that pooled connection was read as its body.
    data = build_request(
        "POST",
        "/echo/public/x",
        [(b"Connection", b"Upgrade"), (b"Upgrade", upgrade), (b"Content-Length", b"80")],
        close=False,
    )
    before = len(upstream.requests)
    responses = exchange(gateway.port, data, expect=1, timeout=3)
    assert [r.status for r in responses] == [400]
    _upstream_saw_nothing(upstream, before)


def test_upgrade_with_body_smuggling_a_request_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    data = build_request(
        "POST",
        "/echo/public/x",
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"foo")],
        _SMUGGLED,
        close=False,
    )
    before = len(upstream.requests)
    responses = exchange(gateway.port, data, expect=2, timeout=2)
    assert [r.status for r in responses] == [400]  # and the connection is closed
    _upstream_saw_nothing(upstream, before)


def test_upgrade_with_chunked_body_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    data = build_request(
        "POST",
        "/echo/public/x",
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"foo"), (b"Transfer-Encoding", b"chunked")],
        b"0\r\n\r\n" + _SMUGGLED,
        close=False,
    )
    before = len(upstream.requests)
    assert [r.status for r in exchange(gateway.port, data, expect=2, timeout=2)] == [400]
    _upstream_saw_nothing(upstream, before)


def test_connect_is_refused(gateway: GatewayProcess, upstream: UpstreamServer) -> None:
    before = len(upstream.requests)
    data = b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n" + _SMUGGLED
    responses = exchange(gateway.port, data, expect=2, timeout=2)
    assert [r.status for r in responses] == [400]
    _upstream_saw_nothing(upstream, before)


def test_bodyless_h2c_upgrade_is_served_as_http_without_the_upgrade(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # curl --http2 on http:// sends this; no 101 comes, so the client stays on HTTP/1.1.
    response = get(
        gateway,
        "/echo/public/h2c",
        [
            (b"Connection", b"Upgrade, HTTP2-Settings"),
            (b"Upgrade", b"h2c"),
            (b"HTTP2-Settings", b"AAMAAABkAARAAAAAAAIAAAAA"),
        ],
    )
    assert response.status == 200
    seen = _echoed_headers(response)
    assert "upgrade" not in seen and "http2-settings" not in seen


def _chunked_with_trailers(trailers: bytes, path: str = "/echo/public/trailer") -> bytes:
    return build_request(
        "POST",
        path,
        [(b"Transfer-Encoding", b"chunked"), (b"Trailer", b"X-Foo")],
        b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n",
    )


def test_trailer_fields_never_reach_the_site_as_head_fields(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    trailers = b"X-Foo: bar\r\nX-Agegate-Age-Over: 18\r\nAuthorization: Bearer t\r\n"
    response = exchange(gateway.port, _chunked_with_trailers(trailers), expect=1)[0]
    assert response.status == 200
    assert response.json()["body"] == "hello"
    seen = _echoed_headers(response)
    assert "x-foo" not in seen and "x-agegate-age-over" not in seen
    assert "authorization" not in seen


def test_trailer_host_is_not_a_second_host(gateway: GatewayProcess) -> None:
    # Merged into the head, a trailer Host made a request with two Hosts (a 400).
    response = exchange(gateway.port, _chunked_with_trailers(b"Host: evil.example\r\n"), expect=1)
    assert response[0].status == 200
    assert _echoed_headers(response[0])["host"] == ["localhost"]


def test_trailer_expect_is_not_acted_on(gateway: GatewayProcess) -> None:
    data = _chunked_with_trailers(b"Expect: 100-continue\r\n")
    responses = exchange(gateway.port, data, expect=1)
    assert [r.status for r in responses] == [200]  # no interim 100 was written first


def test_trailer_cannot_pose_as_proof_on_a_protected_route(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    before = len(upstream.requests)
    data = _chunked_with_trailers(b"X-Agegate-Age-Over: 18\r\n", path="/echo/wine/red")
    responses = exchange(gateway.port, data, expect=1)
    assert responses[0].status == 401
    _upstream_saw_nothing(upstream, before)


CREDENTIALS = {
    "agetoken": b"AgeToken eyJhbGciOiJFUzI1NiJ9.eyJhZ2Vfb3Zlcl8xOCI6dHJ1ZX0.c2ln",
    "agetoken_lower": b"agetoken abc.def.ghi",
    "agetoken_tab": b"AgeToken\tabc.def.ghi",
    "agetoken_bare": b"AGETOKEN",
    "privatetoken": b'PrivateToken token="AAIAAQ"',
}


@pytest.mark.parametrize("value", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_unused_agegate_credential_never_reaches_the_site(
    gateway: GatewayProcess, value: bytes
) -> None:
    # On an allowed route the gateway does not look at the credential; the site
    # would read every claim and could replay it for a session of its own.
    response = get(gateway, "/echo/public/api", [(b"Authorization", value)])
    assert response.status == 200
    assert "authorization" not in _echoed_headers(response)


def test_agegate_credential_beside_a_session_never_reaches_the_site(
    gateway: GatewayProcess,
) -> None:
    _, cookie = api_session(gateway)
    assert cookie
    response = get(
        gateway,
        "/echo/wine/red",
        [
            (b"Cookie", f"__Host-agegate={cookie}".encode()),
            (b"Authorization", CREDENTIALS["agetoken"]),
        ],
    )
    assert response.status == 200
    seen = _echoed_headers(response)
    assert "authorization" not in seen
    assert seen["x-agegate-age-over"] == ["18"]


def test_site_credentials_in_other_schemes_still_reach_the_site(gateway: GatewayProcess) -> None:
    response = get(
        gateway,
        "/echo/public/api",
        [(b"Authorization", b"Bearer site-token"), (b"Authorization", b"AgeToken x.y.z")],
    )
    assert response.status == 200
    assert _echoed_headers(response)["authorization"] == ["Bearer site-token"]


def test_client_content_length_is_not_what_frames_the_upstream_body(
    gateway: GatewayProcess,
) -> None:
    response = get(gateway, "/echo/public/post", method="POST", body=b"abc")
    assert response.status == 200
    assert response.json()["body"] == "abc"
    assert _echoed_headers(response)["content-length"] == ["3"]
