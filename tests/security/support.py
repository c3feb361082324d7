"""Shared helpers for the security tests: raw requests against a live gateway.

Every helper talks to a real ``agegate run`` process over raw sockets
(:mod:`tests.support.rawhttp`), so what is sent is exactly what is written.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

from tests.support.gateway import GatewayProcess, cookie_value, session_cookie
from tests.support.rawhttp import HeaderPair, RawResponse, request
from tests.support.upstream import UpstreamServer

__all__ = [
    "HTML",
    "PROPAGATION",
    "REFUSALS",
    "Challenge",
    "api_nonce",
    "api_session",
    "assert_not_upstream_content",
    "assert_refused",
    "browser_challenge",
    "callback",
    "eventually",
    "get",
    "new_upstream_requests",
]

HTML = (b"Accept", b"text/html,application/xhtml+xml")
# What a request to a protected route without proof may get from the gateway.
REFUSALS = frozenset({303, 400, 401, 403, 421})
PROPAGATION = 2.0  # seconds within which another worker or node must refuse a logged-out copy
_ECHO_SIGNATURE = b'{"method": '
_NONCE = re.compile(r'AgeToken realm="[^"]+", nonce="([^"]+)", min_age="(\d+)"')
_LINK = re.compile(r"href='([^']+)' data-verifier='([^']+)'")


def get(
    gw: GatewayProcess,
    target: bytes | str,
    headers: Iterable[HeaderPair] = (),
    *,
    method: str = "GET",
    host: bytes | str | None = b"localhost",
    body: bytes = b"",
) -> RawResponse:
    """One raw request to the gateway's public listener."""
    return request(gw.port, method, target, headers, body, host=host)


def assert_not_upstream_content(response: RawResponse) -> None:
    """The response was made by the gateway, not relayed from the upstream's /echo."""
    assert response.header("server") != "test-upstream", response
    assert not response.body.startswith(_ECHO_SIGNATURE), response.body[:200]


def assert_refused(response: RawResponse, allowed: Iterable[int] = REFUSALS) -> None:
    """A refusal or challenge from the gateway itself; never upstream content, never 5xx."""
    allowed = set(allowed)
    assert response.status in allowed, (response.status, response.body[:300])
    assert response.status < 500
    assert_not_upstream_content(response)


def new_upstream_requests(upstream: UpstreamServer, since: int) -> list[tuple[str, str]]:
    """What the upstream was asked for after it had seen ``since`` requests."""
    return list(upstream.requests[since:])


def api_nonce(gw: GatewayProcess, path: str = "/echo/wine/red") -> str:
    """A fresh API challenge nonce from the ``WWW-Authenticate`` of a 401."""
    response = get(gw, path)
    assert response.status == 401, response
    match = _NONCE.search(response.header("www-authenticate") or "")
    assert match, response.headers
    return match.group(1)


def api_session(
    gw: GatewayProcess,
    path: str = "/echo/wine/red",
    age_over: dict[int, bool] | None = None,
    **mint: object,
) -> tuple[RawResponse, str | None]:
    """Answer a 401 with ``Authorization: AgeToken``; the response and the session cookie."""
    token = gw.mint(api_nonce(gw, path), age_over=age_over, **mint)  # type: ignore[arg-type]
    response = get(gw, path, [(b"Authorization", b"AgeToken " + token.encode())])
    return response, session_cookie(response.header_list("set-cookie"))


@dataclass(frozen=True)
class Challenge:
    """What the verify page gave a browser: its challenge cookie and the verifier link."""

    page: RawResponse
    cookie: str
    nonce: str
    state: str
    link: str


def browser_challenge(
    gw: GatewayProcess, return_path: str = "/echo/wine/red", headers: Iterable[HeaderPair] = ()
) -> Challenge:
    """GET the verify page like a browser and read nonce and state from the verifier link."""
    from urllib.parse import quote

    page = get(gw, f"/.agegate/verify?return={quote(return_path, safe='/')}", [HTML, *headers])
    assert page.status == 200, (page.status, page.body[:300])
    cookie = cookie_value(page.header_list("set-cookie"), "__Host-agegate-challenge")
    assert cookie, page.headers
    match = _LINK.search(page.text)
    assert match, page.text
    link = unescape(match.group(1))
    params = {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}
    return Challenge(page, cookie, params["nonce"], params["state"], link)


def callback(
    gw: GatewayProcess,
    fields: bytes,
    cookie: str | None,
    headers: Iterable[HeaderPair] = (),
    verifier: str = "test-token",
) -> RawResponse:
    """POST a form to ``/.agegate/callback/<verifier>`` with the given challenge cookie."""
    jar = [(b"Cookie", f"__Host-agegate-challenge={cookie}".encode())] if cookie else []
    return get(
        gw,
        f"/.agegate/callback/{verifier}",
        [(b"Content-Type", b"application/x-www-form-urlencoded"), *jar, *headers],
        method="POST",
        body=fields,
    )


def eventually(check: Callable[[], RawResponse], status: int) -> RawResponse:
    """Poll ``check`` until the answer has ``status``; fail after :data:`PROPAGATION` seconds."""
    deadline = time.monotonic() + PROPAGATION
    while True:
        response = check()
        if response.status == status or time.monotonic() > deadline:
            assert response.status == status, response
            return response
        time.sleep(0.02)
