"""Whose bucket a rate-limited request counts in, behind a trusted proxy and without one.

Behind a proxy every client arrives from the proxy's address: keyed by the TCP
peer, one client would exhaust the limit for everyone behind the same proxy or
load balancer.  From a peer in ``trusted_proxies`` the bucket is the right-most
address in ``X-Forwarded-For`` (or ``Forwarded: for=``) that is not itself
trusted; from anyone else it is the peer, whatever the client claims.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.support import HTML, get
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import HeaderPair, RawResponse, request
from tests.support.upstream import UpstreamServer

LIMIT = 2
VERIFY = "/.agegate/verify?return=/echo/wine/red"
CLIENT_A = "198.51.100.7"
CLIENT_B = "203.0.113.9"


def _gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory, trusted: list[str]
) -> GatewayProcess:
    settings = {"rate_limit": LIMIT, "trusted_proxies": trusted}
    return GatewayProcess(
        tmp_path_factory.mktemp("keyed-gw"), upstream=upstream.url, settings=settings
    )


@pytest.fixture
def behind_proxy(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with _gateway(upstream, tmp_path_factory, ["127.0.0.1/32"]) as gw:
        yield gw


@pytest.fixture
def direct(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    # Trusts a proxy network, but the test client (127.0.0.1) is not in it.
    with _gateway(upstream, tmp_path_factory, ["10.0.0.0/8"]) as gw:
        yield gw


def _verify(gw: GatewayProcess, *headers: HeaderPair) -> int:
    return get(gw, VERIFY, [HTML, *headers]).status


def _xff(value: str) -> HeaderPair:
    return (b"X-Forwarded-For", value.encode())


def _exhaust(gw: GatewayProcess, *headers: HeaderPair) -> None:
    for _ in range(LIMIT):
        assert _verify(gw, *headers) == 200
    assert _verify(gw, *headers) == 429


def test_clients_behind_a_trusted_proxy_are_limited_separately(
    behind_proxy: GatewayProcess,
) -> None:
    _exhaust(behind_proxy, _xff(CLIENT_A))
    assert _verify(behind_proxy, _xff(CLIENT_B)) == 200
    assert _verify(behind_proxy, (b"Forwarded", b'for="[2001:db8:cafe::17]:4711"')) == 200
    assert _verify(behind_proxy, _xff(CLIENT_A)) == 429


def test_api_token_attempts_behind_a_trusted_proxy_are_limited_per_client(
    behind_proxy: GatewayProcess,
) -> None:
    def attempt(client: str) -> int:
        bad = (b"Authorization", b"AgeToken x.y.z")
        return get(behind_proxy, "/echo/wine/red", [bad, _xff(client)]).status

    assert [attempt(CLIENT_A) for _ in range(LIMIT + 1)] == [401] * LIMIT + [429]
    assert attempt(CLIENT_B) == 401


def test_untrusted_peer_cannot_choose_its_bucket_with_forwarding_headers(
    direct: GatewayProcess,
) -> None:
    _exhaust(direct)
    assert _verify(direct, _xff(CLIENT_B)) == 429
    assert _verify(direct, (b"Forwarded", f"for={CLIENT_B}".encode())) == 429
    assert _verify(direct, (b"X-Real-IP", CLIENT_B.encode())) == 429


def test_spoofed_left_most_forwarded_entries_do_not_change_the_bucket(
    behind_proxy: GatewayProcess,
) -> None:
    _exhaust(behind_proxy, _xff(f"192.0.2.1, {CLIENT_A}"))
    spoofs: list[list[HeaderPair]] = [
        [_xff(f"{CLIENT_B}, {CLIENT_A}")],
        [_xff(f"{CLIENT_B},{CLIENT_A}, 127.0.0.1")],  # a trusted hop is looked through
        [_xff(CLIENT_B), _xff(CLIENT_A)],  # two header lines are one list
        [_xff("not-an-address, " + CLIENT_A)],
        [(b"Forwarded", f"for={CLIENT_B}".encode()), _xff(CLIENT_A)],  # XFF wins
        [(b"X-Real-IP", CLIENT_B.encode()), _xff(CLIENT_A)],
        [_xff(f"{CLIENT_A[:-1]}9")],  # same /24: one bucket
    ]
    for headers in spoofs:
        assert _verify(behind_proxy, *headers) == 429, headers


def _authz(gw: GatewayProcess, *headers: HeaderPair) -> RawResponse:
    question: list[HeaderPair] = [
        (b"X-Forwarded-Method", b"GET"),
        (b"X-Forwarded-Uri", b"/echo/wine/red"),
        (b"X-Forwarded-Host", b"localhost"),
        (b"Authorization", b"AgeToken x.y.z"),
        *headers,
    ]
    return request(gw.admin_port, "GET", "/.agegate/authz", question, host="127.0.0.1")


def test_forward_auth_buckets_by_the_right_most_untrusted_hop_not_x_real_ip(
    behind_proxy: GatewayProcess,
) -> None:
    statuses = [_authz(behind_proxy, _xff(CLIENT_A)).status for _ in range(LIMIT + 1)]
    assert statuses == [401] * LIMIT + [429]
    # X-Real-IP passes through a proxy that does not set it: it never picks the bucket.
    assert _authz(behind_proxy, _xff(CLIENT_A), (b"X-Real-IP", CLIENT_B.encode())).status == 429
    assert _authz(behind_proxy, _xff(f"{CLIENT_A}, {CLIENT_B}")).status == 401
