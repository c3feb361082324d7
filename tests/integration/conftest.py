"""Fixtures for forward-auth integration tests: a real agegate, a test upstream, nginx, Caddy.

One gateway per module trusts ``127.0.0.1/32`` (the proxies' address), so the
same process answers in proxy mode (its public port) and as a forward-auth
decision service (``/.agegate/authz`` on its admin port).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.policy.facts import SessionClaims
from gateway.session.codec import SESSION_COOKIE, SessionCodec
from gateway.settings import load_settings
from tests.integration.proxies import CaddyProcess, NginxProcess
from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer
from verifiers.base import AssuranceLevel

TRUSTED = {"trusted_proxies": ["127.0.0.1/32"]}


@dataclass
class Stack:
    """A front proxy in front of the upstream, asking ``gw`` for decisions."""

    kind: str  # "nginx" | "caddy"
    gw: GatewayProcess
    proxy: NginxProcess | CaddyProcess
    upstream: UpstreamServer

    @property
    def port(self) -> int:
        return self.proxy.port


def seal_session(
    gw: GatewayProcess,
    age_over: frozenset[int] = frozenset({18}),
    age_under: frozenset[int] = frozenset(),
    assurance: AssuranceLevel = AssuranceLevel.BASIC,
) -> str:
    """A ``Cookie`` header value with a session sealed with the gateway's own key."""
    settings = load_settings(gw.config_path)
    now = time.time()
    claims = SessionClaims(age_over, age_under, assurance, "test-token", now, now + 3600)
    return f"{SESSION_COOKIE}={SessionCodec(settings.session_keys, settings.audience).seal(claims)}"


def nonce_of(www_authenticate: str | None) -> str:
    match = re.search(r'AgeToken realm="[^"]+", nonce="([^"]+)"', www_authenticate or "")
    assert match, www_authenticate
    return match.group(1)


@pytest.fixture(scope="module")
def gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with GatewayProcess(
        tmp_path_factory.mktemp("gw"), upstream=upstream.url, settings=TRUSTED
    ) as gw:
        yield gw


def _start_stack(
    kind: str, gw: GatewayProcess, upstream: UpstreamServer, directory: Path
) -> NginxProcess | CaddyProcess:
    if shutil.which(kind) is None:
        pytest.fail(f"{kind} is not installed (make system-deps)")
    cls = NginxProcess if kind == "nginx" else CaddyProcess
    return cls(directory, site=upstream.port, public=gw.port, authz=gw.admin_port)


@pytest.fixture(scope="module", params=["nginx", "caddy"])
def stack(
    request: pytest.FixtureRequest,
    gateway: GatewayProcess,
    upstream: UpstreamServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    kind = str(request.param)
    proxy = _start_stack(kind, gateway, upstream, tmp_path_factory.mktemp(kind))
    with proxy:
        yield Stack(kind, gateway, proxy, upstream)
