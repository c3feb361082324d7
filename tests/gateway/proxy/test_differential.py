"""Differential tests: the httptools pool and aiohttp must give the client the same bytes.

The same request goes through two real gateways (one per upstream client) to
the same upstream; status, headers (modulo Date/Server) and body must match.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.proxy.harness import RawResponse, raw_request
from tests.support.upstream import pattern_bytes

IGNORED = {b"date", b"server"}

CASES = [
    ("GET", "/echo/plain?q=1", [], b"", False),
    ("HEAD", "/echo", [], b"", False),
    ("POST", "/echo", [("Content-Type", "text/plain")], b"hello", False),
    ("POST", "/echo", [], b"", False),
    ("PUT", "/echo", [], pattern_bytes(200_000), False),
    ("PATCH", "/echo", [], [b"ab", b"cd", b"ef"], True),
    ("DELETE", "/echo", [], b"", False),
    ("OPTIONS", "/echo", [], b"", False),
    ("GET", "/stream/10", [], b"", False),
    ("GET", "/stream/5000000", [], b"", False),
    ("GET", "/stream/700000?cl=1", [], b"", False),
    ("GET", "/stream/700000?close=1", [], b"", False),
    ("HEAD", "/stream/700000?cl=1", [], b"", False),
    ("GET", "/stream/100000?delay=0.05", [], b"", False),
    ("GET", "/status/204", [], b"", False),
    ("GET", "/status/304", [("If-None-Match", '"v1"')], b"", False),
    ("GET", "/status/404", [], b"", False),
    ("GET", "/status/503", [], b"", False),
    ("GET", "/headers", [], b"", False),
    ("GET", "/interim", [], b"", False),
    ("GET", "/slow?delay=0.3", [], b"", False),
    ("GET", "/slow?delay=3", [], b"", False),
    ("GET", "/slow-body?delay=0.2", [], b"", False),
    ("GET", "/die-mid-body", [], b"", False),
    ("GET", "/die-before-head", [], b"", False),
    ("POST", "/echo", [("Expect", "100-continue")], b"continue me", False),
    ("POST", "/reject-expect", [("Expect", "100-continue")], b"nope", False),
    ("GET", "/echo", [("Connection", "keep-alive, X-Drop"), ("X-Drop", "1")], b"", False),
]


def comparable(resp: RawResponse) -> tuple[object, ...]:
    headers = [(k, v) for k, v in resp.headers if k not in IGNORED]
    return resp.status, headers, resp.body, resp.complete


def both(gateways, method, target, headers=(), body=b"", chunked=False):
    return [
        comparable(raw_request(gw.port, method, target, headers, body, chunked=chunked))
        for gw in (gateways["aiohttp"], gateways["pool"])
    ]


@pytest.mark.parametrize(("method", "target", "headers", "body", "chunked"), CASES)
def test_pool_matches_aiohttp(gateways, method, target, headers, body, chunked):
    via_aiohttp, via_pool = both(gateways, method, target, headers, body, chunked)
    assert via_pool == via_aiohttp


def test_upstream_closing_keepalive_between_requests(gateways):
    # /drop-next makes the upstream close that connection when the next request
    # arrives on it: GET is retried once on a new connection, POST is not.
    for method, body, expected in (("GET", b"", 200), ("POST", b"x", 502)):
        results = []
        for name in ("aiohttp", "pool"):
            port = gateways[name].port
            assert raw_request(port, "GET", "/drop-next").status == 200
            results.append(comparable(raw_request(port, method, "/echo", body=body)))
        assert results[0] == results[1]
        assert results[0][0] == expected


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    headers=st.lists(st.tuples(_token.map(lambda t: "x-" + t), _value.map(str.strip)), max_size=8),
    body=st.binary(max_size=3000),
    chunked=st.booleans(),
    query=st.text(alphabet="abc=&%20xyz", max_size=20),
)
def test_random_headers_and_bodies_match(gateways, method, headers, body, chunked, query):
    target = "/echo/h" + ("?" + query if query else "")
    pieces = [body[i : i + 700] for i in range(0, len(body), 700)] or [b""]
    via_aiohttp, via_pool = both(gateways, method, target, headers, pieces, chunked)
    assert via_pool == via_aiohttp
    assert via_pool[0] == 200
