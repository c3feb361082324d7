"""Redis crashes or hangs under a gateway: sessions pass, verifications get 503, recovery."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.operations.support import api_session, verify, wait_for, with_session
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer


def ready(gw: GatewayProcess) -> int:
    return httpx.get(gw.admin_url + "/readyz", timeout=10).status_code


def test_redis_killed_then_restarted(
    tmp_path: Path, upstream: UpstreamServer, own_redis_server: RedisServer
) -> None:
    with GatewayProcess(
        tmp_path, upstream=upstream.url, settings={"store": own_redis_server.url}
    ) as gw:
        cookie = api_session(gw)
        assert ready(gw) == 200
        own_redis_server.kill()
        assert with_session(gw, cookie) == 200  # Redis is never on a valid session's path
        started = time.monotonic()
        refused = verify(gw)
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["reason"] == "store_unavailable"
        assert time.monotonic() - started < 5
        assert ready(gw) == 503
        assert httpx.get(gw.admin_url + "/healthz").status_code == 200  # alive all the same
        assert httpx.get(gw.url + "/echo/public/x").status_code == 200
        own_redis_server.start()
        wait_for(lambda: verify(gw).status_code == 200, timeout=10)
        assert ready(gw) == 200
        assert with_session(gw, cookie) == 200


def test_redis_hung_then_resumed(
    tmp_path: Path, upstream: UpstreamServer, own_redis_server: RedisServer
) -> None:
    with GatewayProcess(
        tmp_path, upstream=upstream.url, settings={"store": own_redis_server.url}
    ) as gw:
        cookie = api_session(gw)
        process = own_redis_server._process
        assert process is not None
        process.send_signal(signal.SIGSTOP)  # accepts nothing, answers nothing
        try:
            assert with_session(gw, cookie) == 200
            started = time.monotonic()
            refused = verify(gw)
            elapsed = time.monotonic() - started
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert elapsed < 5, f"a hung Redis held the request for {elapsed:.1f} s"
            assert ready(gw) == 503
        finally:
            process.send_signal(signal.SIGCONT)
        wait_for(lambda: verify(gw).status_code == 200, timeout=10)
        assert ready(gw) == 200
