"""Server-side logout: a copied session cookie dies with the logout, everywhere.

Two gateway processes share a session key, an issuer and one real Redis, as
two workers of one site.  A session cookie is copied; one copy logs out on
one worker; the other copy must be refused on the very next request, on the
other worker, in proxy mode and in forward-auth.  Redis holds only an HMAC of
the session id, for no longer than the session could still be presented.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.keys import generate_key_line, parse_key_lines
from gateway.policy.facts import SessionClaims
from gateway.session import SessionCodec
from gateway.stores import RETENTION_MARGIN
from tests.security.support import (
    api_session,
    assert_not_upstream_content,
    assert_refused,
    get,
)
from tests.support.gateway import GatewayProcess, cookie_value
from tests.support.rawhttp import HeaderPair, RawResponse, request
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer
from verifiers.base import AssuranceLevel

SESSION = "__Host-agegate"
PROTECTED = "/echo/wine/red"


class Site:
    """Two workers of one site sharing Redis, and the key that seals their cookies."""

    def __init__(self, first: GatewayProcess, second: GatewayProcess, key: str) -> None:
        self.first, self.second, self.key = first, second, key
        self.codec = SessionCodec(parse_key_lines(key), first.public_origin)


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    key, signer = generate_key_line(), ec.generate_private_key(ec.SECP256R1())
    settings = {"store": shared_redis.url, "rate_limit": 0, "trusted_proxies": ["127.0.0.1/32"]}
    first = GatewayProcess(
        tmp_path_factory.mktemp("revoke-a"),
        upstream=upstream.url,
        settings=settings,
        session_key=key,
        signing_key=signer,
    )
    second = GatewayProcess(
        tmp_path_factory.mktemp("revoke-b"),
        upstream=upstream.url,
        settings={**settings, "public_origin": first.public_origin},
        session_key=key,
        signing_key=signer,
    )
    with first, second:
        yield Site(first, second, key)


def _jar(value: str) -> HeaderPair:
    return (b"Cookie", f"{SESSION}={value}".encode())


def _logout(gw: GatewayProcess, cookie: str) -> RawResponse:
    # Same-origin proof as a browser sends it; both workers serve the first one's origin.
    proof = (b"Sec-Fetch-Site", b"same-origin")
    return get(gw, "/.agegate/logout", [_jar(cookie), proof], method="POST")


def _authz(gw: GatewayProcess, cookie: str) -> RawResponse:
    headers: list[HeaderPair] = [
        (b"X-Forwarded-Method", b"GET"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"localhost"),
        (b"X-Forwarded-Uri", PROTECTED.encode()),
        _jar(cookie),
    ]
    return request(gw.admin_port, "GET", "/.agegate/authz", headers, host=b"127.0.0.1")


def _session(gw: GatewayProcess) -> str:
    response, cookie = api_session(gw)
    assert response.status == 200 and cookie, response
    return cookie


def _assert_logged_out(response: RawResponse) -> None:
    assert response.status == 204, response
    assert cookie_value(response.header_list("set-cookie"), SESSION) == ""


def test_copied_cookie_is_refused_after_logout_on_another_worker(site: Site) -> None:
    cookie = _session(site.first)
    copy = str(cookie)
    assert get(site.second, PROTECTED, [_jar(copy)]).status == 200  # the copy works...
    _assert_logged_out(_logout(site.first, cookie))
    # ...until the very next request after the logout, on either worker.
    for gw in (site.second, site.first):
        refused = get(gw, PROTECTED, [_jar(copy)])
        assert_refused(refused, {401})
        assert json.loads(refused.body)["reason"] == "no_session"
    status = get(site.second, "/.agegate/status", [_jar(copy)])
    assert json.loads(status.body)["verified"] is False
    metrics = request(site.second.admin_port, "GET", "/metrics", host="127.0.0.1").text
    assert 'agegate_invalid_cookies_total{cookie="__Host-agegate",reason="revoked"}' in metrics


def test_copied_cookie_is_refused_by_forward_auth_after_logout(site: Site) -> None:
    cookie = _session(site.first)
    assert _authz(site.second, cookie).status == 200
    _assert_logged_out(_logout(site.first, cookie))
    refused = _authz(site.second, cookie)
    assert refused.status == 401, refused
    assert refused.header("x-agegate-age-over") is None


def test_other_sessions_survive_a_logout(site: Site) -> None:
    mine, other = _session(site.first), _session(site.first)
    _assert_logged_out(_logout(site.second, mine))
    assert get(site.second, PROTECTED, [_jar(other)]).status == 200
    assert get(site.first, PROTECTED, [_jar(mine)]).status == 401


def test_revocation_record_lives_no_longer_than_the_session(
    site: Site, shared_redis: RedisServer
) -> None:
    cookie = _session(site.first)
    claims = site.codec.open(cookie, time.time())
    assert claims is not None
    before = set(shared_redis.dump())
    started = time.time()
    _assert_logged_out(_logout(site.second, cookie))
    finished = time.time()
    added = {k: v for k, v in shared_redis.dump().items() if k not in before}
    assert len(added) == 1, added
    [(_, pttl)] = added.values()
    # The session's remaining life, plus the margin every store record keeps for
    # workers whose clocks differ a little (gateway.stores.RETENTION_MARGIN).
    assert pttl <= (claims.expires_at - started + RETENTION_MARGIN) * 1000
    assert pttl >= (claims.expires_at - finished + RETENTION_MARGIN - 5) * 1000


def _spellings(secret: bytes) -> set[bytes]:
    return {
        secret,
        secret.hex().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    }


def test_redis_holds_no_session_id_or_cookie(site: Site, shared_redis: RedisServer) -> None:
    cookie = _session(site.first)
    claims = site.codec.open(cookie, time.time())
    assert claims is not None and claims.session_id
    _assert_logged_out(_logout(site.first, cookie))
    raw_id = base64.urlsafe_b64decode(claims.session_id + "==")
    secrets = {cookie.encode(), claims.session_id.encode(), *_spellings(raw_id)}
    secrets |= {part.encode() for part in cookie.split(".") if len(part) > 8}
    for key, (value, _) in shared_redis.dump().items():
        for secret in secrets:
            assert secret not in key and secret not in value, (key, value)


def test_cookie_without_session_id_is_accepted_and_revocable(site: Site) -> None:
    # A cookie sealed before session ids existed: still honoured, and still revocable.
    now = time.time()
    legacy = site.codec.seal(
        SessionClaims(
            frozenset({18}), frozenset(), AssuranceLevel.BASIC, "test-token", now, now + 600
        )
    )
    opened = site.codec.open(legacy, now)
    assert opened is not None and opened.session_id is None
    assert get(site.second, PROTECTED, [_jar(legacy)]).status == 200
    _assert_logged_out(_logout(site.first, legacy))
    assert get(site.second, PROTECTED, [_jar(legacy)]).status == 401


def test_logout_revokes_within_the_process_with_the_memory_store(
    gateway: GatewayProcess,
) -> None:
    cookie = _session(gateway)
    _assert_logged_out(_logout(gateway, cookie))
    assert get(gateway, PROTECTED, [_jar(cookie)]).status == 401


def test_session_is_refused_while_revocation_cannot_be_checked(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    with (
        RedisServer() as redis,
        GatewayProcess(
            tmp_path,
            upstream=upstream.url,
            settings={"store": redis.url, "rate_limit": 0, "trusted_proxies": ["127.0.0.1/32"]},
        ) as gw,
    ):
        cookie = _session(gw)
        redis.kill()
        started = time.monotonic()
        refused = get(gw, PROTECTED, [_jar(cookie)])
        assert refused.status == 503, refused
        assert_not_upstream_content(refused)
        assert json.loads(refused.body)["reason"] == "store_unavailable"
        assert refused.header("retry-after")
        assert time.monotonic() - started < 5  # fails fast
        asked = _authz(gw, cookie)  # forward-auth refuses alike
        assert asked.status == 503 and asked.header("x-agegate-age-over") is None
        # A logout still clears the cookie, but says the server could not record it.
        logout = _logout(gw, cookie)
        assert logout.status == 503
        assert cookie_value(logout.header_list("set-cookie"), SESSION) == ""
        # Public routes never look at the session, so they never need Redis.
        assert get(gw, "/echo/public/x", [_jar(cookie)]).status == 200
        redis.start()
        assert get(gw, PROTECTED, [_jar(cookie)]).status == 200
