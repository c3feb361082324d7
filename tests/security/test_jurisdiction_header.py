"""The jurisdiction header is believed only from a trusted proxy, in every way a request is decided.

Proxy mode, the fast path (an allowed session) and forward-auth each ask the
policy; a visitor who could set ``X-Country`` themselves would pick the
weakest rule, so from any other peer the header is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.security.support import api_session, get
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse, request
from tests.support.upstream import UpstreamServer

pytestmark = [pytest.mark.slow]
POLICY = """
version: 1
defaults:
  verifiers: [test-token]
  session_ttl: 1h
routes:
  - name: wine
    path: /echo/wine/**
    min_age: 18
    jurisdictions:
      US: {min_age: 21}
  - name: everything-else
    path: /**
    action: allow
"""
US = (b"X-Country", b"US")
_MIN_AGE = re.compile(r'AgeToken [^\n]*min_age="(\d+)"')


def _gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory, trusted: str
) -> GatewayProcess:
    settings = {"jurisdiction_header": "X-Country", "trusted_proxies": [trusted], "rate_limit": 0}
    return GatewayProcess(
        tmp_path_factory.mktemp("jurisdiction"),
        upstream=upstream.url,
        policy=POLICY,
        settings=settings,
    )


@pytest.fixture(scope="module")
def behind_proxy(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with _gateway(upstream, tmp_path_factory, "127.0.0.1/32") as gw:
        yield gw


@pytest.fixture(scope="module")
def direct(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with _gateway(upstream, tmp_path_factory, "10.0.0.0/8") as gw:  # the test client is not in it
        yield gw


def min_age_asked(response: RawResponse) -> int:
    assert response.status == 401, response
    match = _MIN_AGE.search(response.header("www-authenticate") or "")
    assert match, response.headers
    return int(match.group(1))


def authz(gw: GatewayProcess, *extra: tuple[bytes, bytes]) -> RawResponse:
    headers = [
        (b"X-Forwarded-Method", b"GET"),
        (b"X-Forwarded-Host", b"localhost"),
        (b"X-Forwarded-Uri", b"/echo/wine/red"),
        *extra,
    ]
    return request(gw.admin_port, "GET", "/.agegate/authz", headers, host=b"127.0.0.1")


def test_jurisdiction_from_a_trusted_proxy_sets_the_rule_in_proxy_and_forward_auth(
    behind_proxy: GatewayProcess,
) -> None:
    assert min_age_asked(get(behind_proxy, "/echo/wine/red")) == 18
    assert min_age_asked(get(behind_proxy, "/echo/wine/red", [US])) == 21
    assert min_age_asked(authz(behind_proxy)) == 18
    assert min_age_asked(authz(behind_proxy, US)) == 21


def test_an_over_18_session_is_not_let_through_for_a_us_visitor_on_the_fast_path(
    behind_proxy: GatewayProcess,
) -> None:
    response, cookie = api_session(behind_proxy, age_over={18: True})
    assert response.status == 200 and cookie is not None
    with_session = (b"Cookie", f"__Host-agegate={cookie}".encode())
    for _ in range(3):  # the session is cached after the first: later ones are fast-path candidates
        assert get(behind_proxy, "/echo/wine/red", [with_session]).status == 200
        assert min_age_asked(get(behind_proxy, "/echo/wine/red", [with_session, US])) == 21


def _age_headers_seen(response: RawResponse) -> tuple[list[str], list[str]]:
    """The ``X-Agegate-Age-Over`` and ``-Assurance`` values the echo upstream received."""
    assert response.status == 200, response
    seen = response.json()["headers"]
    return (
        [v for k, v in seen if k.lower() == "x-agegate-age-over"],
        [v for k, v in seen if k.lower() == "x-agegate-assurance"],
    )


def test_the_upstream_is_told_the_age_the_visitors_jurisdiction_required(
    behind_proxy: GatewayProcess,
) -> None:
    # The fast path keeps the rule's own age headers with the route; a jurisdiction's
    # requirement must still send its own (over 21 for US), on every repeat.
    response, cookie = api_session(behind_proxy, age_over={18: True, 21: True})
    assert response.status == 200 and cookie is not None
    with_session = (b"Cookie", f"__Host-agegate={cookie}".encode())
    for _ in range(3):
        assert _age_headers_seen(get(behind_proxy, "/echo/wine/red", [with_session, US])) == (
            ["21"],
            ["basic"],
        )
        assert _age_headers_seen(get(behind_proxy, "/echo/wine/red", [with_session])) == (
            ["18"],
            ["basic"],
        )


def test_jurisdiction_header_from_an_untrusted_peer_is_ignored(direct: GatewayProcess) -> None:
    assert min_age_asked(get(direct, "/echo/wine/red", [US])) == 18
    response, cookie = api_session(direct, age_over={18: True})
    assert response.status == 200 and cookie is not None
    with_session = (b"Cookie", f"__Host-agegate={cookie}".encode())
    assert get(direct, "/echo/wine/red", [with_session, US]).status == 200
