"""The httptools pool's connection handling, against the real test upstream."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gateway.proxy.forward
import gateway.upstream.base
import gateway.upstream.pool
from gateway.core.headers import HeaderBlock
from gateway.errors import UpstreamError
from gateway.upstream.pool import PoolClient
from tests.support.net import free_port
from tests.support.upstream import UpstreamServer

HOST = [(b"host", b"shop.example")]


async def read_all(resp) -> bytes:
    data = b""
    more = True
    while more:
        chunk, more = await resp.read()
        data += chunk
    return data


@pytest.fixture
def server():
    with UpstreamServer() as up:
        yield up


@pytest.fixture
async def pool(server):
    client = PoolClient(server.url, connect_timeout=1.0, read_timeout=1.0, max_connections=2)
    await client.start()
    yield client
    await client.close()


def test_public_names_import():
    for module in (gateway.proxy.forward, gateway.upstream.base, gateway.upstream.pool):
        for name in module.__all__:
            assert getattr(module, name) is not None


async def test_keepalive_connection_is_reused(pool, server):
    for _ in range(5):
        resp = await pool.request("GET", b"/echo", HOST, b"")
        assert resp.status == 200 and b'"path": "/echo"' in await read_all(resp)
    assert server.connections == 1 and pool.idle_connections == 1


async def test_head_204_304_end_at_head_and_keep_the_connection(pool, server):
    for method, target in (("HEAD", b"/stream/9000?cl=1"), ("GET", b"/status/204"),
                           ("GET", b"/status/304"), ("GET", b"/echo")):  # fmt: skip
        resp = await pool.request(method, target, HOST, b"")
        assert await read_all(resp) in (b"",) or target == b"/echo"
    assert server.connections == 1


async def test_partly_read_body_is_never_reused(pool, server):
    resp = await pool.request("GET", b"/stream/2000000", HOST, b"")
    await resp.read()
    resp.release()
    resp = await pool.request("GET", b"/echo", HOST, b"")
    await read_all(resp)
    assert server.connections == 2


async def test_read_timeout_is_504_and_drops_the_connection(pool, server):
    with pytest.raises(UpstreamError) as info:
        await pool.request("GET", b"/slow?delay=2", HOST, b"")
    assert info.value.status == 504 and info.value.reason == "upstream_timeout"
    assert pool.open_connections == 0


async def test_read_timeout_holds_on_a_reused_connection(pool, server):
    # The connection's one timer was set during an earlier exchange; a later wait
    # must still time out on its own deadline.
    resp = await pool.request("GET", b"/echo", HOST, b"")
    await read_all(resp)
    await asyncio.sleep(0.3)
    with pytest.raises(UpstreamError) as info:
        await pool.request("GET", b"/slow?delay=2", HOST, b"")
    assert info.value.reason == "upstream_timeout"
    assert pool.open_connections == 0


async def test_slow_but_in_time_answers_on_a_reused_connection_do_not_time_out(pool, server):
    for _ in range(3):
        resp = await pool.request("GET", b"/slow?delay=0.6", HOST, b"")
        await read_all(resp)
    assert server.connections == 1


async def test_cancelled_exchange_is_not_reused(pool, server):
    task = asyncio.ensure_future(pool.request("GET", b"/slow?delay=0.5", HOST, b""))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.open_connections == 0 and pool.idle_connections == 0


async def test_refused_connection_is_502():
    client = PoolClient(f"http://127.0.0.1:{free_port()}", connect_timeout=1, read_timeout=1)
    with pytest.raises(UpstreamError) as info:
        await client.request("GET", b"/", HOST, b"")
    assert info.value.status == 502 and client.open_connections == 0


async def test_pool_limit_queues_then_refuses(server):
    client = PoolClient(server.url, connect_timeout=0.5, read_timeout=2, max_connections=1)
    first = await client.request("GET", b"/slow-body?delay=0.8", HOST, b"")
    with pytest.raises(UpstreamError) as info:
        await client.request("GET", b"/echo", HOST, b"")
    assert info.value.status == 503 and info.value.reason == "upstream_busy"
    waiting = asyncio.ensure_future(client.request("GET", b"/echo", HOST, b""))
    assert await read_all(first) == b"0123456789"
    assert (await waiting).status == 200
    assert client.open_connections == 1
    await client.close()


async def test_idle_connections_are_evicted(server):
    client = PoolClient(server.url, connect_timeout=1, read_timeout=1, idle_timeout=0.2)
    await read_all(await client.request("GET", b"/echo", HOST, b""))
    await asyncio.sleep(0.3)
    await read_all(await client.request("GET", b"/echo", HOST, b""))
    assert server.connections == 2 and client.open_connections == 1
    await client.close()


async def test_stale_retry_only_for_idempotent_replayable(pool, server):
    await read_all(await pool.request("GET", b"/drop-next", HOST, b""))
    resp = await pool.request("PUT", b"/echo", HOST, b"again")
    assert b'"body": "again"' in await read_all(resp)

    async def stream():
        yield b"once"

    await read_all(await pool.request("GET", b"/drop-next", HOST, b""))
    with pytest.raises(UpstreamError):
        await pool.request("PUT", b"/echo", HOST, stream())
    requests_seen = [m for m, _ in server.requests]
    assert requests_seen.count("PUT") == 1


def _echo_header(body: bytes, name: str) -> list[str]:
    doc = json.loads(body)
    return [v for k, v in doc["headers"] if k == name]


async def test_bytes_body_is_framed_by_its_own_length_not_a_given_header(pool, server):
    # A Content-Length the bytes do not fill would make the upstream read the
    # next request on this connection as the rest of the body.
    headers = [*HOST, (b"content-length", b"80"), (b"transfer-encoding", b"chunked")]
    body = await read_all(await pool.request("POST", b"/echo", headers, b"abc"))
    assert _echo_header(body, "content-length") == ["3"]
    assert _echo_header(body, "transfer-encoding") == []
    assert json.loads(body)["body"] == "abc"


async def test_streamed_body_shorter_than_its_length_is_aborted_and_not_reused(pool, server):
    async def short():
        yield b"abc"

    with pytest.raises(gateway.upstream.base.BodyAborted):
        await pool.request("POST", b"/echo", [*HOST, (b"content-length", b"10")], short())
    assert pool.idle_connections == 0 and pool.open_connections == 0


async def test_streamed_body_longer_than_its_length_is_aborted_and_not_reused(pool, server):
    async def long():
        yield b"abc"
        yield b"defgh"

    with pytest.raises(gateway.upstream.base.BodyAborted):
        await pool.request("POST", b"/echo", [*HOST, (b"content-length", b"4")], long())
    assert pool.idle_connections == 0 and pool.open_connections == 0
    resp = await pool.request("GET", b"/echo", HOST, b"")
    assert resp.status == 200
    await read_all(resp)


async def test_streamed_body_of_its_exact_length_is_sent_with_it(pool, server):
    async def exact():
        yield b"ab"
        yield b"cd"

    body = await read_all(
        await pool.request("POST", b"/echo", [*HOST, (b"content-length", b"4")], exact())
    )
    assert _echo_header(body, "content-length") == ["4"]
    assert json.loads(body)["body"] == "abcd"


async def test_a_second_response_in_the_same_bytes_never_reaches_the_first_or_the_next(
    pool, server
):
    # Response smuggling from the upstream side: what follows the first response in
    # the same read must neither change its status or headers nor wait in a kept
    # parser for the next exchange; the connection is dropped.
    resp = await pool.request("GET", b"/twice", HOST, b"")
    assert resp.status == 200
    assert (b"x-smuggled", b"1") not in resp.headers
    assert await read_all(resp) == b"first"
    resp.release()
    resp = await pool.request("GET", b"/echo", HOST, b"")
    assert resp.status == 200 and b'"path": "/echo"' in await read_all(resp)
    resp.release()
    assert server.connections == 2


_FIELD_NAMES = st.sampled_from(
    [b"host", b"accept", b"content-length", b"transfer-encoding", b"x-forwarded-for", b"x-a"]
)
_FIELDS = st.lists(st.tuples(_FIELD_NAMES, st.sampled_from([b"1", b"a.example", b""])), max_size=6)
_OWN_FIELDS = st.lists(
    st.tuples(
        st.sampled_from([b"forwarded", b"x-forwarded-proto", b"x-agegate-age-over"]),
        st.sampled_from([b"18", b"https", b"for=203.0.113.7"]),
    ),
    max_size=4,
)


@given(st.sampled_from(["GET", "HEAD"]), _FIELDS, _OWN_FIELDS, _OWN_FIELDS)
def test_fields_given_in_wire_form_make_the_head_they_would_as_fields(
    method: str,
    fields: list[tuple[bytes, bytes]],
    own: list[tuple[bytes, bytes]],
    add: list[tuple[bytes, bytes]],
) -> None:
    # The fast path hands the gateway's own fields over as HeaderBlock.wire; the
    # upstream must get the bytes the ordinary path's one list makes, Host included.
    pool = PoolClient("http://127.0.0.1:1", connect_timeout=1.0, read_timeout=1.0)
    as_fields = pool.request_head(method, b"/a?b", [*fields, *own, *add])
    as_wire = pool.request_head(
        method, b"/a?b", fields, HeaderBlock(own).wire, HeaderBlock(add).wire
    )
    assert as_wire == as_fields
