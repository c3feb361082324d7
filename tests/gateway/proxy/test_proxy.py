"""The proxy through a real uvicorn gateway and a real upstream, for both upstream clients."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from gateway.proxy.forward import private_cache_headers
from tests.gateway.proxy.harness import GatewayThread, gateway_app, make_proxy, raw_request
from tests.support.net import free_port
from tests.support.upstream import pattern_bytes


def echo(resp):
    assert resp.status == 200, resp.body
    return json.loads(resp.body)


def header(doc, name):
    return [v for k, v in doc["headers"] if k == name]


def test_method_path_query_and_host_reach_the_upstream(gateway):
    doc = echo(raw_request(gateway.port, "DELETE", "/echo/a%20b/c?x=1&y=%2F", host="shop.example"))
    assert doc["method"] == "DELETE"
    assert doc["path"] == "/echo/a%20b/c"
    assert doc["query"] == "x=1&y=%2F"
    assert header(doc, "host") == ["shop.example"]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"])
def test_all_methods_pass(gateway, method):
    body = b"payload" if method in ("POST", "PUT", "PATCH") else b""
    doc = echo(raw_request(gateway.port, method, "/echo", body=body))
    assert doc["method"] == method
    assert doc["body"] == body.decode()


def test_added_headers_replace_client_sent_ones(gateway):
    doc = echo(
        raw_request(
            gateway.port,
            "GET",
            "/echo",
            [
                ("X-Agegate-Age-Over", "99"),
                ("X_Agegate_Assurance", "strict"),
                ("Cookie", "__Host-agegate=secret; theme=dark"),
            ],
        )
    )
    assert header(doc, "x-agegate-age-over") == ["18"]
    assert header(doc, "x-agegate-assurance") == ["standard"]
    assert header(doc, "x_agegate_assurance") == []
    assert header(doc, "cookie") == ["theme=dark"]
    assert header(doc, "x-forwarded-for") == ["127.0.0.1"]


def test_request_bodies_stream_both_framings(gateway):
    pieces = [pattern_bytes(70_000)[i : i + 7000] for i in range(0, 70_000, 7000)]
    for chunked in (False, True):
        doc = echo(raw_request(gateway.port, "POST", "/echo", body=pieces, chunked=chunked))
        assert doc["body_len"] == 70_000
        assert doc["body"].encode("latin-1") == pattern_bytes(70_000)


def test_too_large_body_by_content_length_is_413(gateway, upstream):
    before = len(upstream.requests)
    resp = raw_request(gateway.port, "POST", "/echo", body=b"x" * (1024 * 1024 + 1))
    assert resp.status == 413
    assert json.loads(resp.body)["reason"] == "body_too_large"
    assert len(upstream.requests) == before


def test_too_large_chunked_body_is_413(gateway):
    pieces = [b"y" * 65536] * 20
    resp = raw_request(gateway.port, "POST", "/echo", body=pieces, chunked=True)
    assert resp.status == 413


def test_repeated_set_cookie_kept_and_hop_by_hop_stripped(gateway):
    resp = raw_request(gateway.port, "GET", "/headers")
    assert resp.status == 200 and resp.body == b"hi"
    assert resp.all(b"set-cookie") == [b"a=1; Path=/", b"b=2; Path=/; HttpOnly"]
    assert resp.header(b"x-custom") == b"yes"
    for name in (b"x-hop", b"keep-alive", b"proxy-authenticate", b"upgrade"):
        assert resp.header(name) is None


@pytest.mark.parametrize("query", ["", "?cl=1", "?close=1"])
def test_streamed_response_bytes_are_exact(gateway, query):
    resp = raw_request(gateway.port, "GET", f"/stream/3000001{query}")
    assert resp.status == 200 and resp.complete
    assert resp.body == pattern_bytes(3_000_001)


def test_head_has_headers_and_no_body(gateway):
    resp = raw_request(gateway.port, "HEAD", "/stream/5000?cl=1")
    assert resp.status == 200 and resp.body == b""
    assert resp.header(b"content-length") == b"5000"


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_statuses(gateway, code):
    resp = raw_request(gateway.port, "GET", f"/status/{code}")
    assert resp.status == code and resp.body == b"" and resp.complete
    # The connection stays usable: the next request works.
    assert raw_request(gateway.port, "GET", "/status/200").body == b"status 200"


def test_interim_responses_are_dropped(gateway):
    resp = raw_request(gateway.port, "GET", "/interim")
    assert resp.status == 200 and resp.interim == []
    assert echo(resp)["path"] == "/interim"


def test_expect_100_continue_end_to_end(gateway):
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"hello")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert b'"body": "hello"' in data


def test_expect_refused_by_upstream_passes_its_status(gateway):
    resp = raw_request(gateway.port, "POST", "/reject-expect", [("Expect", "100-continue")], b"abc")
    assert resp.status == 417


def test_upstream_down_is_502(upstream):
    proxy = make_proxy(f"http://127.0.0.1:{free_port()}", "pool")
    for client in ("pool", "aiohttp"):
        proxy = make_proxy(f"http://127.0.0.1:{free_port()}", client)
        with GatewayThread(gateway_app(proxy)) as gw:
            resp = raw_request(gw.port, "GET", "/anything")
            assert resp.status == 502
            assert json.loads(resp.body)["reason"] == "upstream_unavailable"
            resp = raw_request(gw.port, "GET", "/", [("Accept", "text/html")])
            assert resp.status == 502 and resp.header(b"content-type").startswith(b"text/html")


def test_slow_upstream_is_504(gateway):
    resp = raw_request(gateway.port, "GET", "/slow?delay=3")
    assert resp.status == 504
    assert json.loads(resp.body)["reason"] == "upstream_timeout"


def test_slow_body_after_head_aborts_the_connection(gateway):
    resp = raw_request(gateway.port, "GET", "/slow-body?delay=3")
    assert resp.status == 200 and not resp.complete


def test_upstream_dying_mid_body_aborts_the_client_connection(gateway):
    resp = raw_request(gateway.port, "GET", "/die-mid-body")
    assert resp.status == 200
    assert resp.header(b"content-length") == b"1000"
    assert not resp.complete and len(resp.body) < 1000


def test_upstream_dying_before_head_is_502(gateway):
    assert raw_request(gateway.port, "GET", "/die-before-head").status == 502


def test_stale_keepalive_connection_retried_for_get_only(gateway, upstream):
    assert raw_request(gateway.port, "GET", "/drop-next").status == 200
    assert echo(raw_request(gateway.port, "GET", "/echo/after"))["path"] == "/echo/after"
    assert raw_request(gateway.port, "GET", "/drop-next").status == 200
    assert raw_request(gateway.port, "POST", "/echo", body=b"once").status == 502


async def _ws_session(port: int, messages: list[str | bytes], protocols=()):
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/ws", protocols=protocols) as ws,
    ):
        got = []
        for message in messages:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
            reply = await asyncio.wait_for(ws.receive(), 5)
            got.append(
                reply.data if reply.type != aiohttp.WSMsgType.CLOSE else ("close", reply.data)
            )
        return got, ws.protocol


async def test_websocket_echo_and_close_code(gateway):
    got, protocol = await _ws_session(
        gateway.port, ["hello", b"\x00\x01", "x" * 100_000, "close:4001"], protocols=("chat",)
    )
    assert got == ["hello", b"\x00\x01", "x" * 100_000, ("close", 4001)]
    assert protocol == "chat"


async def test_websocket_to_absent_upstream_is_refused():
    proxy = make_proxy(f"http://127.0.0.1:{free_port()}", "pool")
    with GatewayThread(gateway_app(proxy)) as gw:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await session.ws_connect(f"{gw.url}/ws")
    assert info.value.status == 502


def test_private_cache_headers_keep_protected_pages_out_of_shared_caches() -> None:
    public = [(b"content-type", b"text/html"), (b"cache-control", b"public, max-age=600")]
    assert private_cache_headers(public) == [
        (b"content-type", b"text/html"),
        (b"cache-control", b"private"),
    ]
    assert private_cache_headers([]) == [(b"cache-control", b"private")]
    for kept in (b"private, max-age=60", b"No-Store"):
        headers = [(b"cache-control", kept), (b"etag", b'"x"')]
        assert private_cache_headers(headers) == headers
    split = [(b"cache-control", b"max-age=60"), (b"cache-control", b"private")]
    assert private_cache_headers(split) == split
