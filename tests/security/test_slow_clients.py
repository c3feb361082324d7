"""Slow clients must not exhaust the upstream connection pool (nginx's
``client_body_timeout``, ``send_timeout`` and ``proxy_request_buffering``).

The attack: as many connections as the pool holds (100) each declare a body
and send one byte of it, or ask for a large response and never read it.  The
gateway used to take an upstream connection and then wait on the client for
ever, so every other visitor got ``503 upstream_busy``.  Now small bodies are
buffered before an upstream connection is taken, a body that stops arriving
gets ``408`` after ``client_body_timeout``, one that takes longer than
``client_body_deadline`` is cut, and a client that stops reading is dropped
after ``send_timeout`` (its upstream connection discarded).

The new settings are given as ``AGEGATE_*`` environment variables: a gateway
without them ignores them, so the same attacks run against the old code.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import build_request, parse_responses, request
from tests.support.upstream import UpstreamServer, pattern_bytes

ATTACKERS = 100  # the upstream pool's default limit
BODY_TIMEOUT = 1.0
BODY_DEADLINE = 4.0
SEND_TIMEOUT = 1.0
BUFFER = 4096
SLACK = 2.0  # seconds a timeout may fire late on a loaded 2-core machine
BIG = 20_000_000  # a response far larger than every buffer between gateway and client


@pytest.fixture(scope="module", params=[True, False], ids=["fast_path", "asgi_path"])
def gateway(
    request: pytest.FixtureRequest,
    upstream: UpstreamServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    env = {
        "AGEGATE_CLIENT_BODY_TIMEOUT": f"{BODY_TIMEOUT}s",
        "AGEGATE_CLIENT_BODY_DEADLINE": f"{BODY_DEADLINE}s",
        "AGEGATE_SEND_TIMEOUT": f"{SEND_TIMEOUT}s",
        "AGEGATE_REQUEST_BUFFER_SIZE": str(BUFFER),
    }
    settings = {"rate_limit": 0, "upstream_connect_timeout": "2s", "fast_path": request.param}
    with GatewayProcess(
        tmp_path_factory.mktemp("slow-gw"), upstream=upstream.url, settings=settings, env=env
    ) as gw:
        yield gw


def _connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connecting, so the TCP window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _slow_body_head(length: int, path: str = "/echo/public/upload") -> bytes:
    head = build_request("POST", path, [(b"Content-Length", str(length).encode())], close=False)
    return head


def _read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """What the gateway sent, and whether it closed the connection within ``timeout``."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1024 * 1024)
        except TimeoutError:
            return bytes(data), False
        except OSError:  # reset: the gateway aborted the connection
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def _visitor_gets_the_site(gw: GatewayProcess) -> None:
    response = request(gw.port, "GET", "/echo/public/visitor", timeout=10)
    assert response.status == 200, (response.status, response.body[:300])
    assert response.header("server") == "test-upstream"


def test_slow_body_clients_do_not_exhaust_the_upstream_pool(gateway: GatewayProcess) -> None:
    attackers: list[socket.socket] = []
    try:
        for _ in range(ATTACKERS):
            sock = _connect(gateway.port)
            sock.sendall(_slow_body_head(100) + b"x")  # one byte of a declared 100
            attackers.append(sock)
        time.sleep(0.5)  # every attacker's request has reached the proxy
        _visitor_gets_the_site(gateway)
        started = time.monotonic()
        for sock in attackers:
            left = BODY_TIMEOUT + 2 * SLACK - (time.monotonic() - started)
            data, closed = _read_until_closed(sock, max(left, 0.1))
            assert closed, "a client that stopped sending its body was kept"
            [response] = parse_responses(data)
            assert response.status == 408, (response.status, response.body[:200])
            assert response.header("connection") == "close"
    finally:
        for sock in attackers:
            sock.close()


def test_clients_that_never_read_do_not_exhaust_the_upstream_pool(
    gateway: GatewayProcess,
) -> None:
    stalled: list[socket.socket] = []
    try:
        for _ in range(ATTACKERS):
            sock = _connect(gateway.port, rcvbuf=4096)
            sock.sendall(build_request("GET", f"/stream/{BIG}?cl=1"))
            stalled.append(sock)
        for sock in stalled:
            assert sock.recv(12).startswith(b"HTTP/1.1 200")  # then never reads again
        time.sleep(SEND_TIMEOUT + SLACK)
        _visitor_gets_the_site(gateway)
        for sock in stalled:
            data, closed = _read_until_closed(sock, 10)
            assert closed and len(data) < BIG, "a client that stopped reading was kept"
    finally:
        for sock in stalled:
            sock.close()


def test_a_slow_but_steady_body_within_the_deadline_arrives(gateway: GatewayProcess) -> None:
    body = b"0123456789"
    with contextlib.closing(_connect(gateway.port)) as sock:
        sock.sendall(_slow_body_head(len(body)))
        for byte in body:  # 2.5 s in all: longer than the idle timeout, within the deadline
            time.sleep(BODY_TIMEOUT / 4)
            sock.sendall(bytes([byte]))
        data, _ = _read_until_closed(sock, 5)
    [response] = parse_responses(data, eof=False) or parse_responses(data)
    assert response.status == 200, (response.status, response.body[:200])
    assert response.json()["body"] == body.decode()


def test_a_streamed_body_larger_than_the_buffer_arrives(gateway: GatewayProcess) -> None:
    body = pattern_bytes(BUFFER * 5)
    pieces = [body[i : i + BUFFER] for i in range(0, len(body), BUFFER)]
    with contextlib.closing(_connect(gateway.port)) as sock:
        sock.sendall(_slow_body_head(len(body)) + pieces[0])
        for piece in pieces[1:]:
            time.sleep(BODY_TIMEOUT / 4)
            sock.sendall(piece)
        data, _ = _read_until_closed(sock, 5)
    [response] = parse_responses(data, eof=False) or parse_responses(data)
    assert response.status == 200, (response.status, response.body[:200])
    assert response.json()["body_len"] == len(body)


def test_a_body_trickled_past_the_deadline_is_cut(gateway: GatewayProcess) -> None:
    started = time.monotonic()
    with contextlib.closing(_connect(gateway.port)) as sock:
        sock.sendall(_slow_body_head(100))
        closed = False
        while time.monotonic() - started < BODY_DEADLINE + 2 * SLACK:
            try:
                sock.sendall(b"x")  # within the idle timeout each time
            except OSError:
                closed = True
                break
            _, closed = _read_until_closed(sock, BODY_TIMEOUT / 2)
            if closed:
                break
        elapsed = time.monotonic() - started
    assert closed, "a body trickled for ever was kept"
    assert BODY_DEADLINE - 0.5 <= elapsed <= BODY_DEADLINE + 2 * SLACK, elapsed


def test_a_slow_chunked_body_gets_408(gateway: GatewayProcess) -> None:
    head = build_request(
        "POST", "/echo/public/chunked", [(b"Transfer-Encoding", b"chunked")], close=False
    )
    with contextlib.closing(_connect(gateway.port)) as sock:
        sock.sendall(head + b"1\r\nx\r\n")
        started = time.monotonic()
        data, closed = _read_until_closed(sock, BODY_TIMEOUT + 2 * SLACK)
        elapsed = time.monotonic() - started
    assert closed
    [response] = parse_responses(data)
    assert response.status == 408
    assert elapsed >= BODY_TIMEOUT - 0.2, elapsed
