"""Server-side logout: a copied session cookie dies with the logout, everywhere.

Two gateway processes share a session key, an issuer and one real Redis, as
two workers of one site.  A session cookie is copied; one copy logs out on
one worker.  That worker refuses the other copy on the very next request;
the other worker hears of it by Redis pub/sub and refuses it within
:data:`tests.security.support.PROPAGATION` seconds, in proxy mode and in forward-auth; a worker
started later loads it from Redis.  Redis holds, and publishes, only an HMAC
of the session id, for no longer than the session could still be presented;
it is never asked while a session is checked, so sessions pass while it is
down.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.policy.facts import SessionClaims
from gateway.session.codec import SessionCodec
from gateway.session.keys import generate_key_line, parse_key_lines
from gateway.stores.base import RETENTION_MARGIN
from tests.security.support import (
    api_session,
    assert_not_upstream_content,
    assert_refused,
    eventually,
    get,
)
from tests.support.gateway import GatewayProcess, cookie_value
from tests.support.rawhttp import HeaderPair, RawResponse, request
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer
from verifiers.base import AssuranceLevel

SESSION = "__Host-agegate"
PROTECTED = "/echo/wine/red"
SITE_SETTINGS = {"rate_limit": 0, "trusted_proxies": ["127.0.0.1/32"]}


class Site:
    """Two workers of one site sharing Redis, and the key that seals their cookies."""

    def __init__(
        self,
        first: GatewayProcess,
        second: GatewayProcess,
        key: str,
        signer: ec.EllipticCurvePrivateKey,
        upstream: str,
    ) -> None:
        self.first, self.second, self.key, self.signer = first, second, key, signer
        self.upstream = upstream
        self.codec = SessionCodec(parse_key_lines(key), first.public_origin)

    def worker(self, directory: Path, store: str) -> GatewayProcess:
        """One more worker of this site (not started)."""
        return _worker(
            directory, self.first.public_origin, store, self.key, self.signer, self.upstream
        )


def _worker(
    directory: Path,
    origin: str | None,
    store: str,
    key: str,
    signer: ec.EllipticCurvePrivateKey,
    upstream: str,
) -> GatewayProcess:
    """A gateway sealing with ``key`` and trusting ``signer``: a worker of one site."""
    settings: dict[str, object] = {**SITE_SETTINGS, "store": store}
    if origin is not None:
        settings["public_origin"] = origin
    directory.mkdir(parents=True, exist_ok=True)
    return GatewayProcess(
        directory,
        upstream=upstream,
        settings=settings,
        session_key=key,
        signing_key=signer,
    )


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    key, signer = generate_key_line(), ec.generate_private_key(ec.SECP256R1())
    first = _worker(
        tmp_path_factory.mktemp("revoke-a"), None, shared_redis.url, key, signer, upstream.url
    )
    second = _worker(
        tmp_path_factory.mktemp("revoke-b"),
        first.public_origin,
        shared_redis.url,
        key,
        signer,
        upstream.url,
    )
    with first, second:
        yield Site(first, second, key, signer, upstream.url)


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
    # ...until the very next request on the worker that logged out...
    refused = get(site.first, PROTECTED, [_jar(copy)])
    assert_refused(refused, {401})
    assert json.loads(refused.body)["reason"] == "no_session"
    # ...and within the propagation bound on the other one.
    refused = eventually(lambda: get(site.second, PROTECTED, [_jar(copy)]), 401)
    assert_not_upstream_content(refused)
    assert json.loads(refused.body)["reason"] == "no_session"
    status = get(site.second, "/.agegate/status", [_jar(copy)])
    assert json.loads(status.body)["verified"] is False
    metrics = request(site.second.admin_port, "GET", "/metrics", host="127.0.0.1").text
    assert 'agegate_invalid_cookies_total{cookie="__Host-agegate",reason="revoked"}' in metrics


def test_copied_cookie_is_refused_by_forward_auth_after_logout(site: Site) -> None:
    cookie = _session(site.first)
    assert _authz(site.second, cookie).status == 200
    _assert_logged_out(_logout(site.first, cookie))
    assert _authz(site.first, cookie).status == 401
    refused = eventually(lambda: _authz(site.second, cookie), 401)
    assert refused.header("x-agegate-age-over") is None


def test_worker_started_after_the_logout_refuses_the_copy(
    site: Site, shared_redis: RedisServer, tmp_path: Path
) -> None:
    cookie = _session(site.first)
    _assert_logged_out(_logout(site.first, cookie))
    with site.worker(tmp_path, shared_redis.url) as late:
        # Loaded from Redis before it serves: refused on its very first request.
        assert get(late, PROTECTED, [_jar(cookie)]).status == 401
        assert _authz(late, cookie).status == 401
        assert get(late, PROTECTED, [_jar(_session(site.first))]).status == 200


def test_other_sessions_survive_a_logout(site: Site) -> None:
    mine, other = _session(site.first), _session(site.first)
    _assert_logged_out(_logout(site.second, mine))
    assert get(site.second, PROTECTED, [_jar(mine)]).status == 401
    eventually(lambda: get(site.first, PROTECTED, [_jar(mine)]), 401)
    assert get(site.second, PROTECTED, [_jar(other)]).status == 200
    assert get(site.first, PROTECTED, [_jar(other)]).status == 200


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


def test_redis_holds_and_publishes_no_session_id_or_cookie(
    site: Site, shared_redis: RedisServer
) -> None:
    cookie = _session(site.first)
    claims = site.codec.open(cookie, time.time())
    assert claims is not None and claims.session_id
    heard: list[bytes] = []
    listening = threading.Event()
    listener = threading.Thread(target=_listen, args=(shared_redis, heard, listening), daemon=True)
    listener.start()
    assert listening.wait(5)
    _assert_logged_out(_logout(site.first, cookie))
    listener.join(5)
    assert len(heard) == 1, heard
    raw_id = base64.urlsafe_b64decode(claims.session_id + "==")
    secrets = {cookie.encode(), claims.session_id.encode(), *_spellings(raw_id)}
    secrets |= {part.encode() for part in cookie.split(".") if len(part) > 8}
    stored = [part for key, (value, _) in shared_redis.dump().items() for part in (key, value)]
    for blob in [*stored, *heard]:
        for secret in secrets:
            assert secret not in blob, blob
    digest, ttl_ms = heard[0].split(b" ")
    assert b"agegate:revoked:" + digest in shared_redis.dump()
    assert int(ttl_ms) <= (claims.expires_at - time.time() + RETENTION_MARGIN + 5) * 1000


def _session_id(key: str, origin: str, cookie: str) -> str:
    claims = SessionCodec(parse_key_lines(key), origin).open(cookie, time.time())
    assert claims is not None and claims.session_id
    return claims.session_id


def _listen(server: RedisServer, heard: list[bytes], listening: threading.Event) -> None:
    import redis

    client = redis.Redis(host=server.host, port=server.port, socket_timeout=5.0)
    pubsub = client.pubsub()
    try:
        pubsub.subscribe("agegate:revocations:0")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            if message["type"] == "subscribe":
                listening.set()
            elif message["type"] == "message":
                heard.append(message["data"])
                return
    finally:
        pubsub.close()
        client.close()


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
    assert get(site.first, PROTECTED, [_jar(legacy)]).status == 401
    eventually(lambda: get(site.second, PROTECTED, [_jar(legacy)]), 401)


def test_logout_revokes_within_the_process_with_the_memory_store(
    gateway: GatewayProcess,
) -> None:
    cookie = _session(gateway)
    _assert_logged_out(_logout(gateway, cookie))
    assert get(gateway, PROTECTED, [_jar(cookie)]).status == 401


def test_redis_down_sessions_pass_and_earlier_logouts_hold(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    key, signer = generate_key_line(), ec.generate_private_key(ec.SECP256R1())
    with RedisServer() as redis:
        first = _worker(tmp_path / "a", None, redis.url, key, signer, upstream.url)
        second = _worker(tmp_path / "b", first.public_origin, redis.url, key, signer, upstream.url)
        with first, second:
            kept, revoked, during = _session(first), _session(first), _session(first)
            _assert_logged_out(_logout(first, revoked))
            eventually(lambda: get(second, PROTECTED, [_jar(revoked)]), 401)
            redis.kill()
            started = time.monotonic()
            # Redis is never on a session's path: sessions keep passing, fast...
            for gw in (first, second):
                assert get(gw, PROTECTED, [_jar(kept)]).status == 200
                assert _authz(gw, kept).status == 200
            assert time.monotonic() - started < 5
            # ...and a logout made before the outage still holds everywhere.
            for gw in (first, second):
                assert get(gw, PROTECTED, [_jar(revoked)]).status == 401
                assert _authz(gw, revoked).status == 401
            # A logout during the outage: the cookie is cleared and this worker
            # refuses the copy at once; it cannot reach the other one yet.
            _assert_logged_out(_logout(second, during))
            assert get(second, PROTECTED, [_jar(during)]).status == 401
            # New verifications need Redis: 503 with Retry-After (fail closed).
            refused, no_cookie = api_session(first)
            assert refused.status == 503 and refused.header("retry-after") and not no_cookie
            redis.start()
            # Back: the pending logout is recorded and published on resubscription.
            deadline = time.monotonic() + 10  # includes the follower's reconnect backoff
            while get(first, PROTECTED, [_jar(during)]).status != 401:
                assert time.monotonic() < deadline, "pending logout never propagated"
                time.sleep(0.05)
            assert get(first, PROTECTED, [_jar(kept)]).status == 200
            events = {line["event"] for gw in (first, second) for line in gw.log_lines()}
            assert {"session_revocation_pending", "revocations_not_followed"} <= events
            logs = first.log_path.read_text() + second.log_path.read_text()
            sid = _session_id(key, first.public_origin, during)
            assert during not in logs and sid not in logs
            # A worker started now loads it from the restarted Redis.
            with _worker(
                tmp_path / "c", first.public_origin, redis.url, key, signer, upstream.url
            ) as late:
                assert get(late, PROTECTED, [_jar(during)]).status == 401
                assert get(late, PROTECTED, [_jar(kept)]).status == 200
