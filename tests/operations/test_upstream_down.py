"""The site behind the gateway crashes, hangs or is slow: 502/504 problems, gateway stays up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.operations.support import UpstreamProcess, wait_for
from tests.support.gateway import GatewayProcess


@pytest.fixture
def site() -> Iterator[UpstreamProcess]:
    with UpstreamProcess() as process:
        assert isinstance(process, UpstreamProcess)
        yield process


def test_upstream_killed_is_502_and_recovers_on_restart(
    tmp_path: Path, site: UpstreamProcess
) -> None:
    with GatewayProcess(tmp_path, upstream=site.url) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as client:
            assert client.get("/echo/public/x").status_code == 200  # a pooled connection
            site.kill()
            for _ in range(3):
                down = client.get("/echo/public/x")
                assert down.status_code == 502
                assert down.headers["content-type"] == "application/problem+json"
                assert down.json()["reason"] == "upstream_unavailable"
            health = httpx.get(gw.admin_url + "/healthz")
            assert health.status_code == 200
            # Not a readiness failure: another node would have the same upstream.
            assert httpx.get(gw.admin_url + "/readyz").status_code == 200
            site.start()
            wait_for(lambda: client.get("/echo/public/x").status_code == 200)
        assert gw.process is not None and gw.process.poll() is None


def test_slow_upstream_is_504_after_the_configured_timeout(
    tmp_path: Path, site: UpstreamProcess
) -> None:
    settings = {"upstream_read_timeout": "1s"}
    with GatewayProcess(tmp_path, upstream=site.url, settings=settings) as gw:
        started = time.monotonic()
        slow = httpx.get(gw.url + "/slow?delay=5", timeout=10)
        elapsed = time.monotonic() - started
        assert slow.status_code == 504
        assert slow.json()["reason"] == "upstream_timeout"
        assert 0.9 <= elapsed < 3, elapsed
        # Under the timeout it is served; the gateway was never stuck.
        assert httpx.get(gw.url + "/slow?delay=0.3", timeout=10).status_code == 200


def test_hung_upstream_is_504_and_recovers(tmp_path: Path, site: UpstreamProcess) -> None:
    settings = {"upstream_read_timeout": "1s", "upstream_connect_timeout": "1s"}
    with GatewayProcess(tmp_path, upstream=site.url, settings=settings) as gw:
        assert httpx.get(gw.url + "/echo/public/x").status_code == 200
        site.pause()
        try:
            started = time.monotonic()
            hung = httpx.get(gw.url + "/echo/public/x", timeout=10)
            assert hung.status_code == 504 and time.monotonic() - started < 3
            assert httpx.get(gw.admin_url + "/healthz").status_code == 200
        finally:
            site.resume()
        wait_for(lambda: httpx.get(gw.url + "/echo/public/x").status_code == 200)
