"""The Redis store against a real redis-server (gateway/stores/redis.py)."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.errors import StoreUnavailable
from gateway.stores.base import RETENTION_MARGIN
from gateway.stores.redis import RedisStore
from tests.gateway.stores.conftest import HMAC_KEY, FakeClock
from tests.support.redis import RedisServer

Factory = Callable[..., RedisStore]
FAST = 2.0  # seconds within which a dead Redis must be reported


async def test_replay_refused_across_workers(redis_stores: Factory) -> None:
    worker_a, worker_b = redis_stores(), redis_stores()
    assert await worker_a.consume("jti:https://issuer.example", "tok-1", time.time() + 300)
    assert not await worker_b.consume("jti:https://issuer.example", "tok-1", time.time() + 300)
    assert await worker_b.consume("nonce", "n-1", time.time() + 300)
    assert not await worker_a.consume("nonce", "n-1", time.time() + 300)


async def test_race_between_workers_has_one_winner(redis_stores: Factory) -> None:
    workers = [redis_stores() for _ in range(4)]
    attempts = [w.consume("nonce", "contested", time.time() + 60) for w in workers * 10]
    results = await asyncio.gather(*attempts)
    assert results.count(True) == 1


async def test_workers_with_another_key_do_not_share_records(redis_stores: Factory) -> None:
    # All workers must derive the store key from the same session key.
    ours, foreign = redis_stores(), redis_stores(key=b"\x07" * 32)
    assert await ours.consume("jti", "t", time.time() + 60)
    assert await foreign.consume("jti", "t", time.time() + 60)


async def test_rate_limit_is_shared(redis_stores: Factory) -> None:
    worker_a, worker_b = redis_stores(), redis_stores()
    assert (await worker_a.rate_limit("client", 2, 60)).allowed
    assert (await worker_b.rate_limit("client", 2, 60)).allowed
    refused = await worker_a.rate_limit("client", 2, 60)
    assert not refused.allowed and 59 < refused.retry_after <= 60


async def test_rate_window_expires(redis_stores: Factory) -> None:
    store = redis_stores()
    assert (await store.rate_limit("short", 1, 0.2)).allowed
    assert not (await store.rate_limit("short", 1, 0.2)).allowed
    await asyncio.sleep(0.3)
    assert (await store.rate_limit("short", 1, 0.2)).allowed


async def test_redis_holds_only_hmacs(redis_server: RedisServer, redis_stores: Factory) -> None:
    store = redis_stores()
    secrets_given = {
        "jti-7f3a9c-secret",
        "nonce-QmFzZTY0Tm9uY2U",
        "203.0.113.77",
        "https://issuer.example",
    }
    await store.consume("jti:https://issuer.example", "jti-7f3a9c-secret", time.time() + 300)
    await store.consume("nonce", "nonce-QmFzZTY0Tm9uY2U", time.time() + 300)
    await store.rate_limit("203.0.113.77", 10, 60)
    dump = redis_server.dump()
    assert len(dump) == 3
    for key, (value, _) in dump.items():
        assert re.fullmatch(rb"agegate:(used|rate):[0-9a-f]{64}", key), key
        assert value in {b"1"}, value
        for secret in secrets_given:
            assert secret.encode() not in key and secret.encode() not in value


async def test_ttls_are_set(redis_server: RedisServer, redis_stores: Factory) -> None:
    clock = FakeClock(time.time())
    store = redis_stores(clock=clock)
    await store.consume("jti", "in-five-minutes", clock.now + 300)
    await store.consume("jti", "already-expired", clock.now - 100)
    await store.rate_limit("client", 10, 60)
    ttls = sorted(pttl for _, pttl in redis_server.dump().values())
    expected_used = sorted([(300 + RETENTION_MARGIN) * 1000, RETENTION_MARGIN * 1000])
    assert len(ttls) == 3 and all(t > 0 for t in ttls)
    rate_ttl, *used_ttls = ttls
    assert 55_000 < rate_ttl <= 60_000
    for got, want in zip(sorted(used_ttls), expected_used, strict=True):
        assert want - 5_000 < got <= want


async def test_ping(redis_stores: Factory) -> None:
    assert await redis_stores().ping()


async def _timed(awaitable: object) -> float:
    start = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await awaitable  # type: ignore[misc]
    return time.monotonic() - start


async def test_killed_server_fails_fast_then_recovers_on_restart(
    own_redis_server: RedisServer,
) -> None:
    server = own_redis_server
    store = RedisStore(server.url, HMAC_KEY)
    try:
        assert await store.consume("jti", "before", time.time() + 300)
        server.kill()
        assert await _timed(store.consume("jti", "during", time.time() + 300)) < FAST
        assert await _timed(store.rate_limit("client", 5, 60)) < FAST
        assert await _timed(store.is_revoked("c" * 64)) < FAST
        assert await _timed(store.revoke("c" * 64, time.time() + 60)) < FAST
        start = time.monotonic()
        assert not await store.ping()
        assert time.monotonic() - start < FAST
        server.start()
        # Same port, same store object: the pool reconnects by itself; the
        # Lua script is re-loaded into the fresh server.
        assert await store.consume("jti", "after", time.time() + 300)
        assert not await store.consume("jti", "after", time.time() + 300)
        assert (await store.rate_limit("client", 5, 60)).allowed
        assert await store.ping()
    finally:
        await store.close()


async def test_graceful_stop_and_restart(own_redis_server: RedisServer) -> None:
    server = own_redis_server
    store = RedisStore(server.url, HMAC_KEY)
    try:
        assert (await store.rate_limit("c", 5, 60)).allowed
        server.stop()
        assert await _timed(store.rate_limit("c", 5, 60)) < FAST
        server.start()
        assert (await store.rate_limit("c", 5, 60)).allowed
    finally:
        await store.close()


async def test_nothing_listening_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        store = RedisStore(f"redis://127.0.0.1:{port}/0", HMAC_KEY)
        try:
            assert await _timed(store.consume("jti", "x", time.time() + 60)) < FAST
            assert not await store.ping()
        finally:
            await store.close()


@pytest.fixture
async def black_hole() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_hung_server_fails_within_deadline(black_hole: int) -> None:
    store = RedisStore(f"redis://127.0.0.1:{black_hole}/0", HMAC_KEY)
    try:
        assert await _timed(store.consume("jti", "x", time.time() + 60)) < FAST
        assert await _timed(store.rate_limit("c", 1, 60)) < FAST
    finally:
        await store.close()


async def test_errors_do_not_leak_the_url() -> None:
    store = RedisStore("redis://:hunter2@127.0.0.1:1/0", HMAC_KEY)
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.consume("jti", "x", time.time() + 60)
        assert "hunter2" not in str(info.value)
        assert info.value.reason == "store_unavailable"
        assert info.value.__cause__ is None and info.value.__suppress_context__
    finally:
        await store.close()


async def test_bad_arguments_are_programming_errors(redis_stores: Factory) -> None:
    store = redis_stores()
    with pytest.raises(ValueError):
        await store.consume("jti", "x", float("nan"))
    with pytest.raises(ValueError):
        await store.rate_limit("b", 0, 60)


def test_redis_server_helper_lifecycle() -> None:
    with RedisServer() as server:
        assert server.running and server.url == f"redis://127.0.0.1:{server.port}/0"
        server.command("SET", "k", "v")
        assert server.dump() == {b"k": (b"v", -1)}
        server.flush()
        assert server.dump() == {}
        server.kill()
        assert not server.running
        server.start()
        assert server.running and server.command("PING") is True
        data_dir = server.log_path.parent
    assert not server.running
    assert not data_dir.exists()
