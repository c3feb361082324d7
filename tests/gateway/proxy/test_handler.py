"""The proxied path in-process: Gate, Evaluator and Responder driven as one ASGI app.

No gateway subprocess: the app comes from ``build_app(load_settings(...))`` with
the memory store and the test issuer's JWKS file (the config GatewayProcess
writes, never started), its lifespan run by hand, and requests sent through
httpx's ASGI transport to the real test upstream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import GatewayApp, build_app
from gateway.core.pages import refusal_page
from gateway.settings import load_settings
from gateway.types import Message
from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer

JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}


class Lifespan:
    """Runs an app's ASGI lifespan as a task, the way a server does."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await asyncio.wait_for(self.outbox.get(), timeout=30)
        assert answer == {"type": f"lifespan.{event}.complete"}, answer

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self._step("startup")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._step("shutdown")
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=30)


@pytest.fixture
async def site(
    tmp_path: Path, upstream: UpstreamServer
) -> AsyncIterator[tuple[GatewayProcess, httpx.AsyncClient]]:
    """The files of a test gateway (``gw`` mints tokens) and a client of its app in-process."""
    gw = GatewayProcess(tmp_path, upstream=upstream.url)
    app = build_app(load_settings(gw.config_path))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with (
        Lifespan(app),
        httpx.AsyncClient(transport=transport, base_url=gw.public_origin) as client,
    ):
        yield gw, client


def _nonce(response: httpx.Response) -> str:
    match = re.search(
        r'AgeToken realm="[^"]+", nonce="([^"]+)"', response.headers["www-authenticate"]
    )
    assert match, response.headers
    return match.group(1)


def _upstream_headers(response: httpx.Response) -> dict[str, str]:
    body: dict[str, Any] = response.json()
    return {name.lower(): value for name, value in body["headers"]}


async def test_public_path_is_proxied_without_age_headers(site: Any) -> None:
    _, client = site
    response = await client.get("/echo/public/page", headers=JSON)
    assert response.status_code == 200
    seen = _upstream_headers(response)
    assert "x-agegate-age-over" not in seen
    assert "set-cookie" not in response.headers


async def test_api_request_to_protected_path_gets_401_with_a_nonce(site: Any) -> None:
    _, client = site
    response = await client.get("/echo/wine/red", headers=JSON)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert 'min_age="18"' in response.headers["www-authenticate"]
    assert _nonce(response)
    assert response.json()["min_age"] == 18


async def test_browser_navigation_is_sent_to_verify_with_its_return_path(site: Any) -> None:
    _, client = site
    response = await client.get("/echo/wine/red?year=2020", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/.agegate/verify?return=/echo/wine/red%3Fyear%3D2020"


async def test_valid_token_is_allowed_then_its_session_cookie_is_enough(site: Any) -> None:
    gw, client = site
    token = gw.mint(_nonce(await client.get("/echo/wine/red", headers=JSON)))
    allowed = await client.get(
        "/echo/wine/red", headers={**JSON, "authorization": f"AgeToken {token}"}
    )
    assert allowed.status_code == 200
    seen = _upstream_headers(allowed)
    assert seen["x-agegate-age-over"] == "18"
    assert "authorization" not in seen  # our credential never reaches the site
    assert allowed.headers["set-cookie"].startswith("__Host-agegate=")
    cookie = allowed.headers["set-cookie"].split(";", 1)[0]
    again = await client.get("/echo/wine/white", headers={**JSON, "cookie": cookie})
    assert again.status_code == 200
    assert "set-cookie" not in again.headers
    assert "__Host-agegate" not in _upstream_headers(again).get("cookie", "")


async def test_replayed_token_is_refused_with_401_invalid_token(site: Any) -> None:
    gw, client = site
    token = gw.mint(_nonce(await client.get("/echo/wine/red", headers=JSON)))
    auth = {**JSON, "authorization": f"AgeToken {token}"}
    assert (await client.get("/echo/wine/red", headers=auth)).status_code == 200
    replayed = await client.get("/echo/wine/red", headers=auth)
    assert replayed.status_code == 401
    assert replayed.json()["reason"].startswith("replayed")
    assert 'error="invalid_token"' in replayed.headers["www-authenticate"]


async def test_token_proving_under_age_gets_the_refusal_page_403(site: Any) -> None:
    gw, client = site
    token = gw.mint(_nonce(await client.get("/echo/wine/red", headers=JSON)), age_over={18: False})
    refused = await client.get(
        "/echo/wine/red", headers={**HTML, "authorization": f"AgeToken {token}"}
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert refused.content == refusal_page(18)  # the visitor's page, not a problem body
    assert "set-cookie" not in refused.headers


async def test_denied_path_and_unknown_host_never_reach_the_site(
    site: Any, upstream: UpstreamServer
) -> None:
    _, client = site
    before = len(upstream.requests)
    denied = await client.get("/echo/closed/x", headers=JSON)
    assert denied.status_code == 403
    assert denied.json()["reason"]
    other = await client.get("/echo/public/x", headers={**JSON, "host": "evil.example"})
    assert other.status_code == 421
    assert other.json()["reason"] == "unknown_host"
    assert len(upstream.requests) == before


async def test_encoded_slash_is_refused_before_any_rule(site: Any) -> None:
    _, client = site
    response = await client.get("/echo/public%2F..%2Fwine/red", headers=JSON)
    assert response.status_code == 400
    assert response.json()["reason"] == "encoded_slash"


def test_lifespan_is_not_needed_to_fail_closed(tmp_path: Path, upstream: UpstreamServer) -> None:
    # Before startup no decision can be made: every request is a 503, never a proxy.
    gw = GatewayProcess(tmp_path, upstream=upstream.url)
    app = build_app(load_settings(gw.config_path))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=gw.public_origin) as client:
            return await client.get("/echo/public/x")

    response = asyncio.run(call())
    assert response.status_code == 503
    assert response.json()["reason"] == "starting"
