"""Fixtures for the security tests: one test upstream and live gateway processes.

The shared ``gateway`` runs the default test policy (``/echo/wine/**`` needs 18,
``/echo/spirits/**`` needs 21 at standard assurance, ``/echo/closed/**`` is
denied, everything else allowed) with rate limiting off, so attack corpora of
hundreds of requests are not throttled; rate limits have their own gateways.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer


# Session-scoped here (tests/conftest.py's is per module): the shared gateway below
# lives for the whole run, so its upstream must too.
@pytest.fixture(scope="session")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


# Every test on the shared gateway runs against both request paths: the fast path
# (gateway/proxy/fast.py, bodyless GET/HEAD it can allow at once) and the ASGI one.
@pytest.fixture(scope="session", params=[True, False], ids=["fast_path", "asgi_path"])
def gateway(
    request: pytest.FixtureRequest,
    upstream: UpstreamServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("security-gw")
    settings = {"rate_limit": 0, "fast_path": request.param}
    with GatewayProcess(directory, upstream=upstream.url, settings=settings) as gw:
        yield gw
