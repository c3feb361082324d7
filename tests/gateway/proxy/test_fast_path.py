"""The fast path (gateway/proxy/fast.py) against the ordinary ASGI path, over real sockets.

Two ``agegate run`` processes, ``fast_path: true`` and ``false``, same keys,
same origin, same upstream.  Every case goes to both; the client must get the
same bytes, and the upstream the same request (its ``/echo`` answer is the
request it received: method, target, every header in order, body).  The fast
gateway's ``agegate_fast_path_requests_total`` shows the fast path really
took the requests it may take.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy.facts import SessionClaims
from gateway.session.codec import SESSION_COOKIE, SessionCodec, new_session_id
from gateway.session.keys import generate_key_line, parse_key_lines
from tests.gateway.proxy.harness import raw_request
from tests.gateway.proxy.test_differential import CASES as PROXY_CASES
from tests.gateway.proxy.test_differential import comparable
from tests.support import rawhttp
from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer
from verifiers.base import AssuranceLevel

ORIGIN = "http://localhost:8080"
KEY_LINE = generate_key_line()


def _cookie(*, over: frozenset[int] = frozenset({18, 21}), ttl: float = 3600) -> str:
    now = time.time()
    claims = SessionClaims(
        over, frozenset(), AssuranceLevel.STANDARD, "test-token", now, now + ttl, new_session_id()
    )
    return SessionCodec(parse_key_lines(KEY_LINE), ORIGIN).seal(claims)


SESSION = _cookie()
LOW = _cookie(over=frozenset({16}))


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer() as server:
        yield server


@contextmanager
def gateway_pair(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory, **settings: object
) -> Iterator[dict[bool, GatewayProcess]]:
    """Two gateways alike but for ``fast_path``: {True: fast, False: ordinary}."""
    common = {"public_origin": ORIGIN, "rate_limit": 0, "upstream_read_timeout": "1s", **settings}
    with (
        GatewayProcess(
            tmp_path_factory.mktemp("fast"),
            upstream=upstream.url,
            settings={**common, "fast_path": True},
            session_key=KEY_LINE,
        ) as fast,
        GatewayProcess(
            tmp_path_factory.mktemp("slow"),
            upstream=upstream.url,
            settings={**common, "fast_path": False},
            session_key=KEY_LINE,
        ) as slow,
    ):
        yield {True: fast, False: slow}


@pytest.fixture(scope="module")
def gateways(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[bool, GatewayProcess]]:
    with gateway_pair(upstream, tmp_path_factory) as pair:
        yield pair


def fast_count(gw: GatewayProcess) -> int:
    with urllib.request.urlopen(gw.admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r"^agegate_fast_path_requests_total (\S+)$", text, re.M)
    assert found is not None
    return int(float(found.group(1)))


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Every byte the gateway sends back until it closes (requests say Connection: close)."""
    out = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    # The gateway's own answers carry a Date (one second may pass between the two),
    # and a challenge a fresh nonce of the same length.
    return _NONCE.sub(b'nonce="<nonce>"', _DATE.sub(b"date: <now>\r\n", bytes(out)))


_DATE = re.compile(rb"(?im)^date: [^\r\n]*\r\n")
_NONCE = re.compile(rb'nonce="[A-Za-z0-9_-]+"')


def warm(gw: GatewayProcess) -> None:
    # An idle upstream connection in the pool: the fast path never opens one.
    assert rawhttp.request(gw.port, "GET", "/echo/warm").status == 200


def both(gateways: dict[bool, GatewayProcess], data: bytes) -> tuple[bytes, bytes, int]:
    """The raw answers of the fast and the ordinary gateway, and how many the fast path took."""
    answers = {}
    taken = 0
    for fast, gw in gateways.items():
        warm(gw)
        before = fast_count(gw)
        answers[fast] = raw(gw.port, data)
        taken = fast_count(gw) - before if fast else taken
        assert fast or fast_count(gw) == 0
    return answers[True], answers[False], taken


def request(method: str, target: str, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: localhost", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# (request bytes, whether the fast path may take it)
CASES = [
    (request("GET", "/echo/plain?q=1&x=%20y"), True),
    (request("HEAD", "/echo/plain"), True),
    (request("GET", "/echo/a/../b//c"), True),
    (request("GET", "/stream/10"), True),
    (request("GET", "/stream/700000?cl=1"), True),
    (request("HEAD", "/stream/700000?cl=1"), True),
    (request("GET", "/stream/3000?close=1"), True),
    (request("GET", "/status/204"), True),
    (request("GET", "/status/304", 'If-None-Match: "v1"'), True),
    (request("GET", "/status/404"), True),
    (request("GET", "/status/503"), True),
    (request("GET", "/headers"), True),
    (request("GET", "/interim"), True),
    (request("GET", "/slow?delay=0.2"), True),
    (request("GET", "/slow?delay=3"), True),  # read timeout: 504
    (request("GET", "/die-mid-body"), True),
    (request("GET", "/die-before-head"), True),
    (request("GET", "/echo", "Connection: keep-alive, X-Drop", "X-Drop: 1"), True),
    (request("GET", "/echo/h", "X-Agegate-Age-Over: 99", "X_Forwarded_For: 1.2.3.4"), True),
    (request("GET", "/echo/h", "Authorization: AgeToken abc", "Accept: text/html"), True),
    (request("GET", "/echo/old", version="1.0"), True),
    (request("GET", "/echo/wine/red", f"Cookie: a=1; {SESSION_COOKIE}={SESSION}; b=2"), True),
    (request("HEAD", "/echo/spirits/x", f"Cookie: {SESSION_COOKIE}={SESSION}"), True),
    # Two Cookie headers: the first holding ours decides (it is looked up whole there).
    (
        request(
            "GET",
            "/echo/spirits/x",
            f"Cookie: {SESSION_COOKIE}={SESSION}",
            f"Cookie: {SESSION_COOKIE}={LOW}",
        ),
        True,
    ),
    (request("GET", "/echo/wine/red", f'Cookie: {SESSION_COOKIE}="{SESSION}"'), True),
    # Everything below takes the ordinary path on both gateways.
    (request("GET", "/echo/wine/red"), False),  # no session: a challenge
    (request("GET", "/echo/wine/red", "Accept: text/html"), False),
    (request("GET", "/echo/spirits/x", f"Cookie: {SESSION_COOKIE}={LOW}"), False),
    (
        request(
            "GET",
            "/echo/spirits/x",
            f"Cookie: {SESSION_COOKIE}={LOW}",
            f"Cookie: {SESSION_COOKIE}={SESSION}",
        ),
        False,
    ),
    (request("GET", "/echo/closed/x"), False),  # denied
    (request("GET", "/.agegate/status"), False),
    (request("GET", "/echo/%2Fx"), False),  # refused before matching
    (request("GET", "http://evil.example/echo"), False),
    (request("GET", "/echo", "Host: other"), False),
    (request("GET", "/echo", "Expect: 100-continue"), False),
    (request("GET", "/echo", "Content-Length: 3") + b"abc", False),
    (request("POST", "/echo", "Content-Length: 2") + b"hi", False),
    (request("GET", "/echo", "Upgrade: h2c", "Connection: Upgrade"), False),
]


@pytest.mark.parametrize(("data", "fast"), CASES, ids=[c[0][:40].decode() for c in CASES])
def test_both_paths_give_the_same_bytes(
    gateways: dict[bool, GatewayProcess], data: bytes, fast: bool
) -> None:
    # The session cookie opens once on the ordinary path; after that it is cached.
    for gw in gateways.values():
        raw(gw.port, request("GET", "/echo/wine/x", f"Cookie: {SESSION_COOKIE}={SESSION}"))
        raw(gw.port, request("GET", "/echo/wine/x", f"Cookie: {SESSION_COOKIE}={LOW}"))
    via_fast, via_asgi, taken = both(gateways, data)
    assert via_fast == via_asgi
    assert via_fast.startswith(b"HTTP/1.")
    assert taken == (1 if fast else 0)


def test_a_stale_keep_alive_connection_is_retried_on_both_paths(
    gateways: dict[bool, GatewayProcess], upstream: UpstreamServer
) -> None:
    # /drop-next makes the upstream close that connection when the next request comes.
    answers = []
    for gw in gateways.values():
        warm(gw)
        assert rawhttp.request(gw.port, "GET", "/drop-next").status == 200
        answers.append(raw(gw.port, request("GET", "/echo/after-drop")))
    assert answers[0] == answers[1]
    assert answers[0].startswith(b"HTTP/1.1 200 ")


def test_a_second_upstream_response_in_the_same_bytes_is_dropped_on_both_paths(
    gateways: dict[bool, GatewayProcess],
) -> None:
    # /twice answers once more in the same write; then a keep-alive request follows on
    # the same client connection, which must get its own answer, not the extra one.
    data = b"GET /twice HTTP/1.1\r\nHost: localhost\r\n\r\n" + request("GET", "/echo/after-twice")
    via_fast, via_asgi, taken = both(gateways, data)
    assert via_fast == via_asgi
    assert taken == 1  # the second finds no idle upstream connection: the extra one's went
    first, _, rest = via_fast.partition(b"\r\n\r\nfirst")
    assert first.startswith(b"HTTP/1.1 200 ") and b"x-smuggled" not in first
    assert rest.startswith(b"HTTP/1.1 200 ") and b'"path": "/echo/after-twice"' in rest
    assert b"second" not in via_fast


def test_pipelined_requests_are_answered_in_order(gateways: dict[bool, GatewayProcess]) -> None:
    data = b"".join(
        [
            request("GET", "/echo/1").replace(b"Connection: close\r\n", b""),
            request("HEAD", "/echo/2").replace(b"Connection: close\r\n", b""),
            request("GET", "/echo/wine/3").replace(b"Connection: close\r\n", b""),
            request("GET", "/stream/100"),
        ]
    )
    via_fast, via_asgi, taken = both(gateways, data)
    assert via_fast == via_asgi
    assert via_fast.count(b"HTTP/1.1 ") == 4
    assert taken >= 1


def test_a_client_leaving_mid_body_frees_the_upstream_connection(
    gateways: dict[bool, GatewayProcess],
) -> None:
    gw = gateways[True]
    warm(gw)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(request("GET", "/stream/5000000"))
        assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
    for _ in range(3):  # the pool still serves, on the fast path
        before = fast_count(gw)
        assert rawhttp.request(gw.port, "GET", "/echo/next").status == 200
    assert fast_count(gw) == before + 1


def test_a_slow_reader_gets_every_byte(gateways: dict[bool, GatewayProcess]) -> None:
    gw = gateways[True]
    warm(gw)
    size = 3_000_000
    body = bytearray()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.sendall(request("GET", f"/stream/{size}?cl=1"))
        data = bytearray()
        while True:
            chunk = sock.recv(16384)
            if not chunk:
                break
            data += chunk
            if len(data) < 400_000:
                time.sleep(0.002)  # slow at first: the upstream must wait for us
        head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) == size


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
_path = st.sampled_from(["/echo/a", "/echo/wine/b", "/echo/spirits/c", "/headers", "/stream/50"])
_cookie_header = st.sampled_from(
    [
        "",
        f"{SESSION_COOKIE}={SESSION}",
        f"x=1; {SESSION_COOKIE}={LOW}",
        f"{SESSION_COOKIE}={LOW}",
        f'{SESSION_COOKIE}="{SESSION}"; x=1',
        f"{SESSION_COOKIE}={SESSION}; {SESSION_COOKIE}={LOW}",
        "x=1",
        f"{SESSION_COOKIE}=junk",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "HEAD"]),
    path=_path,
    query=st.text(alphabet="abc=&%20xyz", max_size=12),
    headers=st.lists(st.tuples(_token.map(lambda t: "x-" + t), _value), max_size=6),
    cookie=_cookie_header,
    accept=st.sampled_from(["", "text/html", "application/json"]),
)
def test_random_bodyless_requests_give_the_same_bytes(
    gateways: dict[bool, GatewayProcess],
    method: str,
    path: str,
    query: str,
    headers: list[tuple[str, str]],
    cookie: str,
    accept: str,
) -> None:
    lines = [f"{name}: {value}" for name, value in headers]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if accept:
        lines.append(f"Accept: {accept}")
    target = path + ("?" + query if query else "")
    data = request(method, target, *lines)
    via_fast, via_asgi, _ = both(gateways, data)
    assert via_fast == via_asgi


def test_the_setting_is_validated(tmp_path: Path) -> None:
    from gateway.errors import ConfigError
    from gateway.settings import load_settings

    config = tmp_path / "agegate.yaml"
    config.write_text("fast_path: maybe\nsession_keys: [" + KEY_LINE + "]\n")
    with pytest.raises(ConfigError, match="fast_path"):
        load_settings(config, environ={})
    assert load_settings(None, environ={"AGEGATE_SESSION_KEYS": KEY_LINE}).fast_path
    off = load_settings(None, environ={"AGEGATE_SESSION_KEYS": KEY_LINE, "AGEGATE_FAST_PATH": "no"})
    assert not off.fast_path


@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "chunked"),
    PROXY_CASES,
    ids=[f"{c[0]} {c[1]}" for c in PROXY_CASES],
)
def test_the_proxy_differential_cases_match_on_both_paths(
    gateways: dict[bool, GatewayProcess],
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes | list[bytes],
    chunked: bool,
) -> None:
    # tests/gateway/proxy/test_differential.py's cases (there: pool against aiohttp,
    # under a bare proxy app), here through the whole gateway with the fast path on and off.
    answers = []
    for gw in gateways.values():
        warm(gw)
        answer = raw_request(
            gw.port, method, target, headers, body, chunked=chunked, host="localhost"
        )
        answers.append(comparable(answer))
    assert answers[0] == answers[1]


def _requests_metric(gw: GatewayProcess) -> dict[str, float]:
    with urllib.request.urlopen(gw.admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.findall(r"^(agegate_requests_total\{[^}]*\}) (\S+)$", text, re.M)
    return {labels: float(value) for labels, value in found}


def _access_lines(gw: GatewayProcess, marker: str) -> list[tuple[object, ...]]:
    keys = ("method", "path", "status", "rule", "decision", "reason", "mode", "verifier")
    return [
        tuple(line.get(k) for k in keys)
        for line in gw.log_lines()
        if line.get("event") == "request" and marker in str(line.get("path"))
    ]


def test_access_lines_and_request_metrics_are_the_same_on_both_paths(
    gateways: dict[bool, GatewayProcess],
) -> None:
    marker = f"/echo/log-{time.monotonic_ns()}"
    sequence = [
        request("GET", marker + "/a"),
        request("HEAD", marker + "/b?x=1"),
        request("GET", "/echo/wine" + marker, f"Cookie: {SESSION_COOKIE}={SESSION}"),
        request("GET", "/echo/wine" + marker),
        request("GET", "/echo/closed" + marker),
    ]
    deltas = []
    for gw in gateways.values():
        warm(gw)
        before = _requests_metric(gw)
        for data in sequence:
            raw(gw.port, data)
        after = _requests_metric(gw)
        deltas.append({k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k)})
    assert deltas[0] == deltas[1]
    assert sum(deltas[0].values()) == len(sequence)
    fast_lines, asgi_lines = (_access_lines(gw, marker) for gw in gateways.values())
    assert fast_lines == asgi_lines
    assert len(fast_lines) == len(sequence)
    assert [line[2] for line in fast_lines] == [200, 200, 200, 401, 403]


@pytest.fixture(scope="module")
def behind_proxy(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[bool, GatewayProcess]]:
    """The pair again, with this test's loopback address a trusted proxy."""
    with gateway_pair(upstream, tmp_path_factory, trusted_proxies=["127.0.0.0/8"]) as pair:
        yield pair


@pytest.mark.parametrize(
    "headers",
    [
        (),  # a trusted peer that sent no chain: our own headers, from the cache
        ("X-Forwarded-For: 198.51.100.7", "X-Forwarded-Proto: https"),
        ('Forwarded: for="[2001:db8::1]";proto=https', "X-Forwarded-Host: shop.example"),
        ("X-Forwarded-For: 198.51.100.7, 203.0.113.9", "X-Real-IP: 198.51.100.7"),
        ("X-Forwarded-Host: not a host",),
    ],
)
def test_a_trusted_proxys_chain_is_continued_alike_on_both_paths(
    behind_proxy: dict[bool, GatewayProcess], headers: tuple[str, ...]
) -> None:
    # The chain is continued per request (never cached); the fast path copies it in
    # wire form, so the upstream must still see the very fields the ordinary path sends.
    for path in ("/echo/chain", "/echo/wine/chain"):
        extra = (*headers, f"Cookie: {SESSION_COOKIE}={SESSION}") if "wine" in path else headers
        for gw in behind_proxy.values():  # the session opens once, on the ordinary path
            raw(gw.port, request("GET", path, *extra))
        via_fast, via_asgi, taken = both(behind_proxy, request("GET", path, *extra))
        assert via_fast == via_asgi
        assert taken == 1
        assert b"x-forwarded-for" in via_fast  # the echo of what the upstream received
        if headers and headers[0].startswith("X-Forwarded-For"):
            chain = headers[0].partition(": ")[2].encode()
            assert b'["x-forwarded-for", "' + chain + b', 127.0.0.1"]' in via_fast
