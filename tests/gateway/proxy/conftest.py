"""Fixtures: one real gateway per upstream client, on the test upstream (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.gateway.proxy.harness import GatewayThread, gateway_app, make_proxy
from tests.support.upstream import UpstreamServer

CLIENTS = ["aiohttp", "pool"]


@pytest.fixture(scope="module", params=CLIENTS)
def gateway(request: pytest.FixtureRequest, upstream: UpstreamServer) -> Iterator[GatewayThread]:
    """A gateway process-in-a-thread using the upstream client named by the parameter."""
    with GatewayThread(gateway_app(make_proxy(upstream.url, request.param))) as gw:
        yield gw


@pytest.fixture(scope="module")
def gateways(upstream: UpstreamServer) -> Iterator[dict[str, GatewayThread]]:
    """Both gateways at once, for differential tests."""
    with (
        GatewayThread(gateway_app(make_proxy(upstream.url, "aiohttp"))) as a,
        GatewayThread(gateway_app(make_proxy(upstream.url, "pool"))) as p,
    ):
        yield {"aiohttp": a, "pool": p}
