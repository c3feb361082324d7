"""Host header attacks: strict RFC 3986 authority parsing, over real sockets.

A ``Host`` the gateway reads one way and the site (or a cache, or a log
pipeline) reads another is how a request accepted for ``localhost`` ends up
served, cached or linked as ``evil.example``.  Every ``Host`` (and forwarded
host) is parsed once, strictly: a malformed one is refused with ``400
bad_host``, a well-formed unknown one with ``421``, and an accepted one goes
upstream only in its normalised spelling, as ``Host`` and ``X-Forwarded-Host``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.support import assert_not_upstream_content, get, new_upstream_requests
from tests.security.test_forward_auth_attacks import AUTHZ, CONVENTIONS, ask
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse, request
from tests.support.upstream import UpstreamServer

# Each of these must be refused before any matching: 400, reason bad_host.
MALFORMED_HOSTS = {
    "bracketed_suffix": b"[localhost]evil.example",
    "bracketed_userinfo": b"[localhost]@evil.example",
    "bracketed_space": b"[localhost] evil.example",
    "bracketed_reg_name": b"[localhost]",
    "userinfo": b"user@localhost",
    "userinfo_with_port": b"localhost:80@evil.example",
    "two_ports": b"localhost:80:80",
    "port_letters": b"localhost:abc",
    "port_too_big": b"localhost:65536",
    "ipv6_unclosed": b"[::1",
    "ipv6_suffix": b"[::1]x",
    "ipv6_zone": b"[::1%25lo]",
    "ipv6_invalid": b"[::g]",
    "ipvfuture": b"[v1.fe80::a+en1]",
    "tab_inside": b"localhost\tevil.example",
    "space_inside": b"local host",
    "empty": b"",
    "percent_encoded": b"local%68ost",
    "comma_list": b"localhost,evil.example",
    "slash": b"localhost/evil.example",
    "backslash": b"localhost\\evil.example",
    "sub_delims": b"localhost!evil.example",
    "underscore": b"local_host",
    "two_trailing_dots": b"localhost..",
    "leading_dot": b".localhost",
    "non_ascii": "l\u00f6calhost".encode(),
}

# Well-formed, not served: 421 as before.
UNKNOWN_HOSTS = {
    "foreign": b"evil.example",
    "suffix_trick": b"localhost.evil.example",
    "foreign_with_our_port": b"evil.example:8080",
    "ipv6_not_configured": b"[::2]",
}


def _upstream_saw(
    gw: GatewayProcess, upstream: UpstreamServer, host: bytes, target: str = "/echo/public/x"
) -> tuple[list[str], list[str]]:
    """Host and X-Forwarded-Host values the upstream got for a request with ``host``."""
    response = get(gw, target, host=host)
    assert response.status == 200, (host, response.status, response.body[:300])
    headers = response.json()["headers"]
    hosts = [value for name, value in headers if name == "host"]
    forwarded_hosts = [value for name, value in headers if name == "x-forwarded-host"]
    return hosts, forwarded_hosts


def _reason(response: RawResponse) -> str | None:
    if response.header("content-type") != "application/problem+json":
        return None
    reason = response.json().get("reason")
    return str(reason) if reason is not None else None


def _refused(
    gw: GatewayProcess, upstream: UpstreamServer, host: bytes, target: str = "/echo/public/x"
) -> RawResponse:
    before = len(upstream.requests)
    response = get(gw, target, host=host)
    assert_not_upstream_content(response)
    assert not new_upstream_requests(upstream, before), "the upstream was asked"
    return response


@pytest.mark.parametrize("host", MALFORMED_HOSTS.values(), ids=MALFORMED_HOSTS.keys())
def test_malformed_host_is_refused_with_400(
    gateway: GatewayProcess, upstream: UpstreamServer, host: bytes
) -> None:
    for target in ("/echo/public/x", "/echo/wine/red"):
        response = _refused(gateway, upstream, host, target)
        assert (response.status, _reason(response)) == (400, "bad_host"), host


def test_bracketed_host_with_suffix_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    response = _refused(gateway, upstream, b"[localhost]evil.example")
    assert (response.status, _reason(response)) == (400, "bad_host")


def test_bracketed_host_with_userinfo_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    response = _refused(gateway, upstream, b"[localhost]@evil.example")
    assert (response.status, _reason(response)) == (400, "bad_host")


def test_bracketed_host_with_space_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    response = _refused(gateway, upstream, b"[localhost] evil.example")
    assert (response.status, _reason(response)) == (400, "bad_host")


@pytest.mark.parametrize("host", UNKNOWN_HOSTS.values(), ids=UNKNOWN_HOSTS.keys())
def test_well_formed_unknown_host_still_gets_421(
    gateway: GatewayProcess, upstream: UpstreamServer, host: bytes
) -> None:
    response = _refused(gateway, upstream, host)
    assert (response.status, _reason(response)) == (421, "unknown_host")


def test_missing_host_still_gets_421(gateway: GatewayProcess, upstream: UpstreamServer) -> None:
    before = len(upstream.requests)
    response = get(gateway, "/echo/public/x", host=None)
    assert (response.status, _reason(response)) == (421, "unknown_host")
    assert not new_upstream_requests(upstream, before)


def test_trailing_dot_host_is_accepted_and_forwarded_without_it(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    assert _upstream_saw(gateway, upstream, b"LOCALHOST.") == (["localhost"], ["localhost"])


def test_upper_case_host_with_port_is_forwarded_lower_case_with_its_port(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    port = str(gateway.port).encode()
    expected = f"localhost:{gateway.port}"
    hosts = _upstream_saw(gateway, upstream, b"LocalHost.:" + port)
    assert hosts == ([expected], [expected])


def test_host_port_is_normalised(gateway: GatewayProcess, upstream: UpstreamServer) -> None:
    # An empty port means the default one; leading zeros are the same number.
    assert _upstream_saw(gateway, upstream, b"localhost:") == (["localhost"], ["localhost"])
    assert _upstream_saw(gateway, upstream, b"localhost:0080") == (
        ["localhost:80"],
        ["localhost:80"],
    )


def test_host_surrounded_by_whitespace_is_read_without_it(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # RFC 9112 §5.1: whitespace around a field value is not part of it.
    assert _upstream_saw(gateway, upstream, b"localhost\t") == (["localhost"], ["localhost"])
    assert _upstream_saw(gateway, upstream, b" localhost ") == (["localhost"], ["localhost"])


def test_client_host_is_replaced_upstream_not_duplicated(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # The client's spelling never reaches the upstream next to ours.
    hosts, forwarded = _upstream_saw(gateway, upstream, b"LocalHost.")
    assert hosts == ["localhost"]
    assert forwarded == ["localhost"]


def test_absolute_form_with_trailing_dot_host_is_accepted(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    response = get(gateway, "http://LOCALHOST./echo/public/x", host=b"localhost.")
    assert response.status == 200, response.body[:300]
    headers = response.json()["headers"]
    assert [v for k, v in headers if k == "host"] == ["localhost"]


def test_absolute_form_with_bracketed_host_is_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    before = len(upstream.requests)
    response = get(gateway, "http://[localhost]evil.example/echo/public/x")
    assert response.status == 400, response.body[:300]
    assert not new_upstream_requests(upstream, before)


@pytest.fixture(scope="module")
def ipv6_gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    settings = {"hosts": ["localhost", "[::1]"], "rate_limit": 0}
    with GatewayProcess(
        tmp_path_factory.mktemp("ipv6-host-gw"), upstream=upstream.url, settings=settings
    ) as gw:
        yield gw


def test_configured_ipv6_literal_is_accepted_and_normalised(
    ipv6_gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    port = ipv6_gateway.port
    expected = f"[::1]:{port}"
    spelled = f"[0:0:0:0:0:0:0:1]:{port}".encode()
    assert _upstream_saw(ipv6_gateway, upstream, spelled) == ([expected], [expected])
    assert _upstream_saw(ipv6_gateway, upstream, b"[::1]") == (["[::1]"], ["[::1]"])


def test_ipv6_literal_with_garbage_is_refused_where_configured(
    ipv6_gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    for host in (b"[::1]evil.example", b"[::1]@evil.example", b"[::1] x", b"::1", b"[::1"):
        response = _refused(ipv6_gateway, upstream, host)
        assert (response.status, _reason(response)) == (400, "bad_host"), host


# -- forward-auth: the same parser for X-Forwarded-Host and Host ------------------------


@pytest.fixture(scope="module")
def authz_gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    settings = {"trusted_proxies": ["127.0.0.1/32"], "rate_limit": 0}
    with GatewayProcess(
        tmp_path_factory.mktemp("authz-host-gw"), upstream=upstream.url, settings=settings
    ) as gw:
        yield gw


def _authz_reason(response: RawResponse) -> str | None:
    return response.header("x-agegate-reason") or _reason(response)


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("host", MALFORMED_HOSTS.values(), ids=MALFORMED_HOSTS.keys())
def test_malformed_forwarded_host_is_refused(
    authz_gateway: GatewayProcess, convention: str, host: bytes
) -> None:
    response = ask(authz_gateway, convention, b"/echo/public/x", host=host)
    status = response.header("x-agegate-status") or str(response.status)
    assert (status, _authz_reason(response)) == ("400", "bad_host"), host


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_forwarded_host_with_trailing_dot_is_decided_as_ours(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    response = ask(authz_gateway, convention, b"/echo/public/x", host=b"LOCALHOST.")
    assert response.status == 200, response.headers
    assert response.header("x-agegate-path") == "/echo/public/x"


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_forwarded_unknown_host_still_gets_421(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    response = ask(authz_gateway, convention, b"/echo/public/x", host=b"localhost.evil.example")
    status = response.header("x-agegate-status") or str(response.status)
    assert (status, _authz_reason(response)) == ("421", "unknown_host")


def test_envoy_style_question_with_bracketed_host_is_refused(
    authz_gateway: GatewayProcess,
) -> None:
    response = request(
        authz_gateway.admin_port, "GET", AUTHZ + "/echo/public/x", host=b"[localhost]evil.example"
    )
    assert (response.status, _reason(response)) == (400, "bad_host")


def test_proxy_mode_with_trusted_peer_forwards_normalised_x_forwarded_host(
    authz_gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # From a trusted peer the gateway continues its chain: a forwarded host it cannot
    # parse is not passed on verbatim; the normalised one is.
    response = get(
        authz_gateway, "/echo/public/x", [(b"X-Forwarded-Host", b"[localhost]evil.example")]
    )
    assert response.status == 200, response.body[:300]
    headers = response.json()["headers"]
    assert [v for k, v in headers if k == "x-forwarded-host"] == ["localhost"]
    response = get(authz_gateway, "/echo/public/x", [(b"X-Forwarded-Host", b"WWW.Shop.Example.")])
    headers = response.json()["headers"]
    assert [v for k, v in headers if k == "x-forwarded-host"] == ["www.shop.example"]
