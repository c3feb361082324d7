"""gateway.http.server against a real uvicorn on a loopback port, spoken to in raw bytes.

The server is ``tests/support/echo_server.py`` in a subprocess: an echo app that
answers every request with what it saw in the ASGI scope as JSON.  The protocol's
HTTP/1.1 as such (keep-alive, framing, timeouts, shutdown) is in test_http1.py;
here are the gateway's additions: the raw target, head limits, refusals, config.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import gateway.http.server
from gateway.http.server import (
    MAX_HEADER_BYTES,
    MAX_HEADER_COUNT,
    MAX_TARGET_BYTES,
    GatewayHttpProtocol,
    serve_config,
)
from tests.support.echo_server import EchoServer, echo_app

# --- the server and raw-socket helpers -------------------------------------------


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with EchoServer(tmp_path_factory.mktemp("echo")) as server:
        yield server.port


def exchange(
    port: int, *chunks: bytes, expect: int = 1, pause: float = 0.0, timeout: float = 5.0
) -> bytes:
    """Send ``chunks`` on one connection; read until ``expect`` responses, close or timeout."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for chunk in chunks:
            sock.sendall(chunk)
            if pause:
                time.sleep(pause)
        received = b""
        while len(_complete(received)[0]) < expect:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    return received


def _complete(raw: bytes) -> tuple[list[tuple[int, dict[bytes, bytes], bytes]], bytes]:
    """The responses fully contained in ``raw`` (each with a Content-Length), and the rest."""
    out = []
    while b"\r\n\r\n" in raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        length = int(headers[b"content-length"])
        if len(rest) < length:
            break
        out.append((status, headers, rest[:length]))
        raw = rest[length:]
    return out, raw


def responses(raw: bytes) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Split a byte stream of Content-Length responses into (status, headers, body)."""
    out, rest = _complete(raw)
    assert rest == b"", f"unparsed bytes after the responses: {rest[:80]!r}"
    return out


def echo(port: int, *chunks: bytes, **kw: Any) -> dict[str, Any]:
    [(status, _, body)] = responses(exchange(port, *chunks, **kw))
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result


# --- tests --------------------------------------------------------------------


def test_public_names_import() -> None:
    for name in gateway.http.server.__all__:
        assert getattr(gateway.http.server, name) is not None


def test_absolute_form_target_is_visible_in_scope(port: int) -> None:
    seen = echo(port, b"GET http://Evil.Example:81/wine?x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n")
    # raw_path is only the path: the authority is in the agegate extension alone.
    assert seen["raw_path"] == "/wine"
    assert seen["query"] == "x=1"
    assert seen["agegate"] == {
        "target_host": "evil.example",
        "raw_target": "http://Evil.Example:81/wine?x=1",
        "target_error": None,
    }


def test_origin_form_target_has_no_host(port: int) -> None:
    seen = echo(port, b"GET /wine/%2e%2e/x?q HTTP/1.1\r\nHost: shop.example\r\n\r\n")
    assert seen["agegate"] == {
        "target_host": None,
        "raw_target": "/wine/%2e%2e/x?q",
        "target_error": None,
    }


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (b"http://user@evil.example/", "bad_authority"),
        (b"*", "not_origin_form"),
        # raw_path has no fragment; only target_error tells the app.
        (b"/wine#red", "fragment"),
    ],
)
def test_malformed_target_is_reported_not_hidden(port: int, target: bytes, reason: str) -> None:
    seen = echo(port, b"OPTIONS " + target + b" HTTP/1.1\r\nHost: shop.example\r\n\r\n")
    assert seen["agegate"]["target_error"] == reason
    assert seen["agegate"]["target_host"] is None


def test_target_split_across_packets_is_reassembled(port: int) -> None:
    request = b"GET http://evil.example/wine/red?a=b HTTP/1.1\r\nHost: shop.example\r\n\r\n"
    chunks = [request[i : i + 5] for i in range(0, len(request), 5)]
    seen = echo(port, *chunks, pause=0.005)
    assert seen["agegate"]["raw_target"] == "http://evil.example/wine/red?a=b"
    assert seen["agegate"]["target_host"] == "evil.example"


def test_pipelined_requests_each_get_their_own_target(port: int) -> None:
    raw = exchange(
        port,
        b"GET http://evil.example/one HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n",
        expect=2,
    )
    first, second = (json.loads(body) for _, _, body in responses(raw))
    assert first["agegate"]["target_host"] == "evil.example"
    assert first["raw_path"] == "/one"
    assert second["agegate"] == {"target_host": None, "raw_target": "/two", "target_error": None}


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    ],
)
def test_transfer_encoding_with_content_length_is_refused(port: int, framing: bytes) -> None:
    # What happens (httptools/llhttp, strict): the whole connection gets a 400 and
    # is closed; the app never sees the POST nor the smuggled GET behind it.
    raw = exchange(
        port,
        b"POST /public HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n0\r\n\r\n"
        b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        expect=2,  # read until the server closes: a second response would be the smuggled one
    )
    [(status, headers, body)] = responses(raw)
    assert status == 400
    assert headers[b"connection"] == b"close"
    assert b"smuggled" not in body


def test_duplicate_content_length_is_refused(port: int) -> None:
    raw = exchange(
        port, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"
    )
    assert [status for status, _, _ in responses(raw)] == [400]


def test_obsolete_line_folding_is_refused(port: int) -> None:
    raw = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n folded\r\n\r\n")
    assert [status for status, _, _ in responses(raw)] == [400]


def test_oversized_header_is_refused_with_431(port: int) -> None:
    big = b"X-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n"
    raw = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + big + b"\r\n")
    [(status, headers, _)] = responses(raw)
    assert status == 431
    assert headers[b"connection"] == b"close"


def test_too_many_headers_are_refused_with_431(port: int) -> None:
    many = b"".join(b"X-%d: y\r\n" % i for i in range(MAX_HEADER_COUNT + 1))
    raw = exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + many + b"\r\n")
    assert [status for status, _, _ in responses(raw)] == [431]


def test_headers_just_under_the_limits_are_served(port: int) -> None:
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(MAX_HEADER_COUNT - 1))
    seen = echo(port, b"GET /ok HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
    assert seen["raw_path"] == "/ok"


def test_overlong_target_is_refused_with_414(port: int) -> None:
    raw = exchange(port, b"GET /" + b"a" * MAX_TARGET_BYTES + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [status for status, _, _ in responses(raw)] == [414]


def test_a_refused_head_does_not_poison_the_next_connection(port: int) -> None:
    exchange(port, b"GET /" + b"a" * MAX_TARGET_BYTES + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    assert echo(port, b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")["raw_path"] == "/after"


def test_forwarded_headers_do_not_rewrite_the_client(port: int) -> None:
    seen = echo(
        port,
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\n"
        b"X-Forwarded-Proto: https\r\nForwarded: for=203.0.113.9\r\n\r\n",
    )
    assert seen["client"] == "127.0.0.1"


def test_the_listener_adds_neither_date_nor_server(port: int) -> None:
    # Proxied responses keep the upstream's Date; a second one from the listener would be wrong.
    # The gateway's own responses carry a Date (gateway/core/problem.py).
    [(_, headers, _)] = responses(exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
    assert b"date" not in headers
    assert b"server" not in headers


def test_request_body_still_reaches_the_app(port: int) -> None:
    seen = echo(port, b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
    assert seen["body"] == "hello"
    chunked = (
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert echo(port, chunked)["body"] == "abc"


def test_serve_config_settings() -> None:
    config = serve_config(echo_app, host="127.0.0.1", port=1, lifespan="off", timeout_keep_alive=7)
    assert config.http is GatewayHttpProtocol
    assert config.loop == "uvloop"
    assert config.lifespan == "off"
    assert config.proxy_headers is False
    assert config.access_log is False
    assert config.server_header is False
    assert config.date_header is False
    assert config.ws == "websockets-sansio"
    assert config.timeout_keep_alive == 7


@pytest.mark.parametrize("key", ["http", "proxy_headers", "forwarded_allow_ips"])
def test_serve_config_refuses_unsafe_overrides(key: str) -> None:
    unsafe: dict[str, Any] = {key: True}
    with pytest.raises(ValueError, match=key):
        serve_config(echo_app, host="127.0.0.1", port=1, **unsafe)
