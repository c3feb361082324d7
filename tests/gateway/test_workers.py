"""Several workers: one replay store in Redis, and a store outage that fails closed.

Two gateway processes with the same session key and issuer act as two
workers of one site; a token accepted by one must be refused by the other.
``agegate run --workers 2`` is exercised as a real forked server too.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.session.keys import generate_key_line
from tests.support.gateway import GatewayProcess, session_cookie
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer


def nonce_from(response: httpx.Response) -> str:
    match = re.search(r'nonce="([^"]+)"', response.headers["www-authenticate"])
    assert match
    return match.group(1)


def test_replay_is_refused_across_workers_sharing_redis(
    tmp_path: Path, upstream: UpstreamServer, redis_server: RedisServer
) -> None:
    key, signer = generate_key_line(), ec.generate_private_key(ec.SECP256R1())
    settings = {"store": redis_server.url, "hosts": ["localhost", "127.0.0.1"]}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = GatewayProcess(
        tmp_path / "a",
        upstream=upstream.url,
        settings=settings,
        session_key=key,
        signing_key=signer,
    )
    # The second worker claims the same public origin as the first: one site, two processes.
    second = GatewayProcess(
        tmp_path / "b",
        upstream=upstream.url,
        settings={**settings, "public_origin": first.public_origin},
        session_key=key,
        signing_key=signer,
    )
    with first, second:
        token = first.mint(nonce_from(httpx.get(first.url + "/echo/wine/red")))
        auth = {"authorization": f"AgeToken {token}"}
        assert httpx.get(first.url + "/echo/wine/red", headers=auth).status_code == 200
        replayed = httpx.get(second.url + "/echo/wine/red", headers=auth)
        assert replayed.status_code == 401
        assert replayed.json()["reason"] in {"replayed", "replayed_nonce"}


def test_redis_down_keeps_sessions_and_refuses_new_verifications(
    tmp_path: Path, upstream: UpstreamServer, own_redis_server: RedisServer
) -> None:
    with GatewayProcess(
        tmp_path, upstream=upstream.url, settings={"store": own_redis_server.url}
    ) as gw:
        challenge = httpx.get(gw.url + "/echo/wine/red")
        token = gw.mint(nonce_from(challenge))
        first = httpx.get(gw.url + "/echo/wine/red", headers={"authorization": f"AgeToken {token}"})
        cookie = session_cookie(first.headers.get_list("set-cookie"))
        assert first.status_code == 200 and cookie
        own_redis_server.kill()
        started = time.monotonic()
        with_session = httpx.get(
            gw.url + "/echo/wine/red", headers={"cookie": f"__Host-agegate={cookie}"}
        )
        assert with_session.status_code == 200  # Redis is never on a valid session's path
        fresh = gw.mint(nonce_from(httpx.get(gw.url + "/echo/wine/red")))
        refused = httpx.get(
            gw.url + "/echo/wine/red", headers={"authorization": f"AgeToken {fresh}"}
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert refused.json()["reason"] == "store_unavailable"
        assert time.monotonic() - started < 5  # fails fast, not after a long timeout
        with httpx.Client(base_url=gw.admin_url) as admin:
            assert admin.get("/readyz").status_code == 503
        own_redis_server.start()
        recovered = httpx.get(
            gw.url + "/echo/wine/red", headers={"authorization": f"AgeToken {fresh}"}
        )
        assert recovered.status_code == 200, recovered.text
        with httpx.Client(base_url=gw.admin_url) as admin:
            assert admin.get("/readyz").status_code == 200


def test_forked_workers_serve_and_share_the_replay_store(
    tmp_path: Path, upstream: UpstreamServer, redis_server: RedisServer
) -> None:
    settings = {"store": redis_server.url, "workers": 2}
    with GatewayProcess(tmp_path, upstream=upstream.url, settings=settings) as gw:
        statuses = {httpx.get(gw.url + "/echo/public/x").status_code for _ in range(20)}
        assert statuses == {200}
        token = gw.mint(nonce_from(httpx.get(gw.url + "/echo/wine/red")))
        auth = {"authorization": f"AgeToken {token}"}
        # new connection each time: the kernel spreads them over both workers
        results = [httpx.get(gw.url + "/echo/wine/red", headers=auth).status_code for _ in range(6)]
        assert results.count(200) == 1
        assert results.count(401) == 5
        # A SIGTERM is a normal stop: every worker finishes and the supervisor exits 0.
        assert gw.process is not None
        gw.process.terminate()
        assert gw.process.wait(timeout=20) == 0


def test_two_workers_need_a_shared_store(tmp_path: Path, upstream: UpstreamServer) -> None:
    gw = GatewayProcess(tmp_path, upstream=upstream.url, settings={"workers": 2})
    with pytest.raises(RuntimeError) as info:
        gw.start()
    assert "redis://" in str(info.value)


def test_forked_workers_announce_each_listener_once_and_log_while_running(
    tmp_path: Path, upstream: UpstreamServer, redis_server: RedisServer
) -> None:
    settings = {"store": redis_server.url, "workers": 2}
    with GatewayProcess(tmp_path, upstream=upstream.url, settings=settings) as gw:
        assert httpx.get(gw.url + "/echo/public/x").status_code == 200
        # Read while the workers run: their lines must not wait for the process to end.
        lines = gw.log_lines()
        listening = sorted(
            (line["listener"], line["url"]) for line in lines if line["event"] == "listening"
        )
        assert listening == [("admin", gw.admin_url), ("public", gw.url)]
        assert any(line["event"] == "request" for line in lines)
