"""WebSocket upgrades on protected routes, against real gateway processes.

A WebSocket is a GET that never gets a page: the gate must decide the upgrade like any
request to its path, and refuse it (``403`` before ``101``) without ever opening the
upstream socket.  Three gateways: ``/ws`` protected (over 18) and ``/ws`` allowed, both
in front of the test upstream's ``/ws`` echo, and one in front of a recording WebSocket
upstream to see what the handshake carries across.  The client is ``websockets``; the
exact-bytes cases go over raw sockets.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from tests.integration.conftest import seal_session
from tests.security.support import api_nonce, api_session, get
from tests.support.gateway import DEFAULT_POLICY, GatewayProcess
from tests.support.rawhttp import HeaderPair, exchange
from tests.support.upstream import UpstreamServer

_ROUTES = DEFAULT_POLICY.split("routes:\n", 1)[1]
PROTECTED_WS = DEFAULT_POLICY.split("routes:\n", 1)[0] + (
    "routes:\n  - name: live\n    path: /ws\n    min_age: 18\n" + _ROUTES
)
ALLOWED_WS = DEFAULT_POLICY.split("routes:\n", 1)[0] + (
    "routes:\n  - name: live\n    path: /ws\n    action: allow\n" + _ROUTES
)
SETTINGS = {"rate_limit": 0}


def _gateway(directory: Path, upstream: str, policy: str) -> GatewayProcess:
    return GatewayProcess(directory, upstream=upstream, policy=policy, settings=SETTINGS)


@pytest.fixture(scope="module")
def protected(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with _gateway(tmp_path_factory.mktemp("ws-protected"), upstream.url, PROTECTED_WS) as gw:
        yield gw


@pytest.fixture(scope="module")
def allowed(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with _gateway(tmp_path_factory.mktemp("ws-allowed"), upstream.url, ALLOWED_WS) as gw:
        yield gw


def _url(gw: GatewayProcess, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{gw.port}{path}"


def _echo(gw: GatewayProcess, headers: list[tuple[str, str]] | None = None) -> None:
    """Open ``/ws`` through ``gw`` and prove the upstream echo answers."""
    with connect(_url(gw), additional_headers=headers, open_timeout=5, close_timeout=2) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=5) == b"\x00\x01"


def _refused(gw: GatewayProcess, upstream: UpstreamServer, headers: list[tuple[str, str]]) -> None:
    """The upgrade is answered 403 by the gateway and the upstream never sees ``/ws``."""
    before = len(upstream.requests)
    with pytest.raises(InvalidStatus) as refused:
        connect(_url(gw), additional_headers=headers, open_timeout=5).close()
    assert refused.value.response.status_code == 403
    assert ("GET", "/ws") not in upstream.requests[before:]


def _cookie(value: str) -> list[tuple[str, str]]:
    return [("Cookie", f"__Host-agegate={value}")]


def _session(gw: GatewayProcess) -> str:
    response, cookie = api_session(gw)
    assert response.status == 200 and cookie, response
    return cookie


def test_upgrade_to_a_protected_route_without_a_session_is_refused(
    protected: GatewayProcess, upstream: UpstreamServer
) -> None:
    _refused(protected, upstream, [])


def test_upgrade_with_a_valid_session_is_relayed(protected: GatewayProcess) -> None:
    _echo(protected, _cookie(_session(protected)))


def test_upgrade_to_an_allowed_route_is_relayed(allowed: GatewayProcess) -> None:
    _echo(allowed)


def _flip(value: str, index: int) -> str:
    char = "B" if value[index] == "A" else "A"
    return value[:index] + char + value[index + 1 :]


def test_upgrade_with_a_tampered_session_is_refused(
    protected: GatewayProcess, allowed: GatewayProcess, upstream: UpstreamServer
) -> None:
    good = _session(protected)
    tampered = {
        "flipped_tag": _flip(good, len(good) - 2),
        "flipped_nonce": _flip(good, len(good.rsplit(".", 1)[0]) + 3),
        "truncated": good[:-6],
        "other_key_id": "v1.00000000." + good.rsplit(".", 1)[1],
        "another_sites_key": _session(allowed),  # sealed by a gateway with another key
        "challenge_cookie_as_session": "v1." + base64.urlsafe_b64encode(os.urandom(48)).decode(),
    }
    for name, value in tampered.items():
        assert value != good, name
        _refused(protected, upstream, _cookie(value))


def test_upgrade_with_a_session_below_the_threshold_is_refused(
    protected: GatewayProcess, upstream: UpstreamServer
) -> None:
    young = seal_session(protected, age_over=frozenset({16}))
    _refused(protected, upstream, [("Cookie", young)])
    adult = seal_session(protected)
    _echo(protected, [("Cookie", adult)])


def test_upgrade_with_spoofed_agegate_headers_is_refused(
    protected: GatewayProcess, upstream: UpstreamServer
) -> None:
    spoof = [
        ("X-Agegate-Age-Over", "18"),
        ("X_Agegate_Age_Over", "18"),
        ("X-Agegate-Assurance", "strict"),
        ("X-Forwarded-For", "127.0.0.1"),
    ]
    _refused(protected, upstream, spoof)


def test_upgrade_with_a_refused_token_is_refused(
    protected: GatewayProcess, upstream: UpstreamServer
) -> None:
    young = protected.mint(api_nonce(protected), age_over={16: True})
    _refused(protected, upstream, [("Authorization", f"AgeToken {young}")])
    _refused(protected, upstream, [("Authorization", "AgeToken not-a-token")])


def _handshake(target: bytes, extra: list[HeaderPair] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16))
    headers = [
        b"GET " + target + b" HTTP/1.1",
        b"Host: localhost",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + key,
        b"Sec-WebSocket-Version: 13",
    ]
    headers += [
        (k if isinstance(k, bytes) else k.encode())
        + b": "
        + (v if isinstance(v, bytes) else v.encode())
        for k, v in extra or []
    ]
    return b"\r\n".join(headers) + b"\r\n\r\n"


PATH_SPELLINGS = {
    "dot_segments": b"/echo/public/../../ws",
    "encoded_dot_segments": b"/echo/public/%2e%2e/%2E%2E/ws",
    "encoded_letter": b"/w%73",
    "double_slash": b"//ws",
    "trailing_dot": b"/ws/.",
    "public_query": b"/ws?/echo/public/x",
    "absolute_form": b"http://localhost/ws",
}


@pytest.mark.parametrize("target", PATH_SPELLINGS.values(), ids=PATH_SPELLINGS.keys())
def test_upgrade_by_another_spelling_of_the_path_is_refused(
    protected: GatewayProcess, upstream: UpstreamServer, target: bytes
) -> None:
    before = len(upstream.requests)
    responses = exchange(protected.port, _handshake(target), expect=1, timeout=5)
    assert responses, "no answer to the upgrade"
    assert responses[0].status == 403, responses[0]
    assert not [r for r in upstream.requests[before:] if "ws" in r[1]], upstream.requests[before:]


def test_malformed_upgrade_paths_are_refused_before_matching(
    protected: GatewayProcess, upstream: UpstreamServer
) -> None:
    before = len(upstream.requests)
    for target in (b"/echo/public/..%2f..%2fws", b"/echo/public/..;/../ws", b"/ws%00"):
        responses = exchange(protected.port, _handshake(target), expect=1, timeout=5)
        assert responses and responses[0].status in {400, 403}, (target, responses)
    assert upstream.requests[before:] == []


# -- what the handshake carries across ------------------------------------------------------


class RecordingWebSocketUpstream:
    """A ``websockets`` echo server that records each handshake's path and headers."""

    def __init__(self) -> None:
        self.handshakes: list[tuple[str, list[tuple[str, str]]]] = []
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.handshakes.append((ws.request.path, list(ws.request.headers.raw_items())))
        for message in ws:
            ws.send(message)

    def __enter__(self) -> RecordingWebSocketUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def test_the_upstream_handshake_carries_no_credential_and_no_spoofed_header(
    tmp_path: Path,
) -> None:
    with (
        RecordingWebSocketUpstream() as recorder,
        _gateway(tmp_path, f"http://127.0.0.1:{recorder.port}", PROTECTED_WS) as gw,
    ):
        token = gw.mint(api_nonce(gw))
        cookie = seal_session(gw)
        spoof = [("X-Agegate-Age-Over", "99"), ("X_Agegate_Assurance", "strict")]
        _echo(gw, [("Cookie", f"{cookie}; site_pref=1"), *spoof])
        _echo(gw, [("Authorization", f"AgeToken {token}"), *spoof])
        # The same token again is a replay: refused before any upstream socket opens.
        seen = len(recorder.handshakes)
        with pytest.raises(InvalidStatus):
            connect(
                _url(gw),
                additional_headers=[("Authorization", f"AgeToken {token}")],
                open_timeout=5,
            )
        assert len(recorder.handshakes) == seen
        assert get(gw, "/ws").status == 401  # a plain GET is challenged, not relayed
    assert len(recorder.handshakes) == 2
    secret_cookie = cookie.split("=", 1)[1]
    for path, headers in recorder.handshakes:
        assert path == "/ws"
        text = "\n".join(f"{k.lower()}: {v}" for k, v in headers)
        assert secret_cookie not in text and token not in text
        assert "__host-agegate" not in text.lower()
        assert "authorization" not in text
        # Only the gateway's own statement of what the route required crosses.
        assert [v for k, v in headers if k.lower() == "x-agegate-age-over"] == ["18"]
        assert [v for k, v in headers if k.lower() == "x-agegate-assurance"] == ["basic"]
        assert "x_agegate" not in text
    first = "\n".join(f"{k.lower()}: {v}" for k, v in recorder.handshakes[0][1])
    assert "site_pref=1" in first  # the site's own cookie does cross
