"""Rate limits on the verification endpoints (setting ``rate_limit``, per client per
minute) with the memory and the Redis store: past the limit, ``429`` + ``Retry-After``."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.security.support import HTML, api_nonce, browser_challenge, callback, get
from tests.security.test_security_headers import assert_security_headers
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer

LIMIT = 3


@pytest.fixture(params=["memory", "redis"])
def limited_gateway(
    request: pytest.FixtureRequest,
    upstream: UpstreamServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    settings: dict[str, object] = {"rate_limit": LIMIT}
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        settings["store"] = redis.url
    with GatewayProcess(
        tmp_path_factory.mktemp("limited-gw"), upstream=upstream.url, settings=settings
    ) as gw:
        yield gw


def _assert_limited(response: RawResponse) -> None:
    assert response.status == 429, (response.status, response.body[:200])
    retry_after = response.header("retry-after")
    assert retry_after is not None and retry_after.isdigit()
    assert 1 <= int(retry_after) <= 61
    assert_security_headers(response)
    assert not response.header_list("set-cookie")


def test_verify_page_is_rate_limited(limited_gateway: GatewayProcess) -> None:
    for _ in range(LIMIT):
        assert browser_challenge(limited_gateway).page.status == 200
    limited = get(limited_gateway, "/.agegate/verify?return=/echo/wine/red", [HTML])
    _assert_limited(limited)
    # A visitor who is already satisfied is never throttled: it is a plain redirect.
    assert get(limited_gateway, "/.agegate/verify?return=/echo/public/x", [HTML]).status == 303


def test_callback_is_rate_limited(limited_gateway: GatewayProcess) -> None:
    challenge = browser_challenge(limited_gateway)
    fields = f"age_token=not-a-token&state={quote(challenge.state)}".encode()
    for _ in range(LIMIT):
        assert callback(limited_gateway, fields, challenge.cookie).status == 400
    limited = callback(limited_gateway, fields, challenge.cookie)
    _assert_limited(limited)
    # Even a genuine token is refused while limited: no verification work is done.
    token = limited_gateway.mint(challenge.nonce)
    good = f"age_token={token}&state={quote(challenge.state)}".encode()
    _assert_limited(callback(limited_gateway, good, challenge.cookie))


def test_api_token_attempts_are_rate_limited(
    limited_gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    for _ in range(LIMIT):
        response = get(limited_gateway, "/echo/wine/red", [(b"Authorization", b"AgeToken x.y.z")])
        assert response.status == 401
    token = limited_gateway.mint(api_nonce(limited_gateway))
    before = len(upstream.requests)
    limited = get(
        limited_gateway, "/echo/wine/red", [(b"Authorization", f"AgeToken {token}".encode())]
    )
    _assert_limited(limited)
    assert len(upstream.requests) == before
    # Plain challenges (no token) are not what the limit counts.
    assert get(limited_gateway, "/echo/wine/red").status == 401
