"""Revocations through Redis: SET + PUBLISH, the catch-up SCAN and the reconnecting feed."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st

from gateway.stores.base import RETENTION_MARGIN, RevocationSink
from gateway.stores.redis import RedisStore, parse_revocation_message
from tests.gateway.stores.conftest import HMAC_KEY
from tests.support.redis import RedisServer

Factory = Callable[..., RedisStore]
DIGEST_A, DIGEST_B, DIGEST_C = "a" * 64, "b" * 64, "c" * 64


class Collecting:
    """A sink that remembers what the feed told it."""

    def __init__(self) -> None:
        self.revoked: dict[str, float] = {}
        self.events: list[str] = []
        self.sink = RevocationSink(self._revoked, self._subscribed, self._attempted)

    def _revoked(self, digest: str, forget_after: float) -> None:
        self.revoked[digest] = forget_after

    async def _subscribed(self) -> None:
        self.events.append("subscribed")

    def _attempted(self, ok: bool) -> None:
        self.events.append("ok" if ok else "failed")

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, (self.revoked, self.events)
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def following(store: RedisStore, collecting: Collecting) -> AsyncIterator[None]:
    task = asyncio.create_task(store.follow_revocations(collecting.sink))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_revocation_reaches_another_process_by_publish(redis_stores: Factory) -> None:
    here, there = redis_stores(), redis_stores()
    heard = Collecting()
    async with following(there, heard):
        await heard.wait_for(lambda: heard.events == ["subscribed", "ok"])
        before = time.time()
        await here.revoke(DIGEST_A, before + 300)
        await heard.wait_for(lambda: DIGEST_A in heard.revoked, timeout=2.0)
    # Relative TTL on the wire: the receiver's expiry is its own clock plus the TTL.
    assert before + 300 + RETENTION_MARGIN - 1 < heard.revoked[DIGEST_A]
    assert heard.revoked[DIGEST_A] < time.time() + 300 + RETENTION_MARGIN + 1


async def test_past_revocations_are_loaded_on_subscribe(redis_stores: Factory) -> None:
    store = redis_stores()
    await store.revoke(DIGEST_A, time.time() + 300)
    await store.revoke(DIGEST_B, time.time() + 10)
    await store.consume("session-revoked", "not-a-revocation", time.time() + 300)
    heard = Collecting()
    async with following(redis_stores(), heard):
        await heard.wait_for(lambda: "ok" in heard.events)
    assert set(heard.revoked) == {DIGEST_A, DIGEST_B}  # the replay record is not scanned
    assert heard.revoked[DIGEST_B] < heard.revoked[DIGEST_A]


async def test_records_and_messages_carry_only_the_digest_and_a_ttl(
    redis_server: RedisServer, redis_stores: Factory
) -> None:
    store = redis_stores()
    client = redis.asyncio.Redis.from_url(redis_server.url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(store.revocation_channel)
        assert store.revocation_channel == "agegate:revocations:0"
        await store.revoke(DIGEST_C, time.time() + 300)
        message = None
        while message is None or message["type"] != "message":
            message = await pubsub.get_message(timeout=2.0)
        assert re.fullmatch(rb"c{64} [0-9]+", message["data"]), message
        assert parse_revocation_message(message["data"]) is not None
    finally:
        await pubsub.aclose()
        await client.aclose()
    [(key, (value, pttl))] = redis_server.dump().items()
    assert key == b"agegate:revoked:" + DIGEST_C.encode() and value == b"1"
    assert (300 + RETENTION_MARGIN - 5) * 1000 < pttl <= (300 + RETENTION_MARGIN) * 1000


async def test_feed_survives_an_outage_and_catches_up(own_redis_server: RedisServer) -> None:
    server = own_redis_server
    follower, writer = RedisStore(server.url, HMAC_KEY), RedisStore(server.url, HMAC_KEY)
    heard = Collecting()
    try:
        async with following(follower, heard):
            await heard.wait_for(lambda: heard.events == ["subscribed", "ok"])
            server.kill()
            await heard.wait_for(lambda: "failed" in heard.events)
            server.start()
            # Made while the feed may still be backing off: found by the catch-up scan
            # or heard as a message, whichever comes first.
            await writer.revoke(DIGEST_B, time.time() + 300)
            await heard.wait_for(lambda: DIGEST_B in heard.revoked, timeout=10.0)
            await heard.wait_for(lambda: heard.events[-1] == "ok")
            assert heard.events.count("subscribed") >= 2
            await writer.revoke(DIGEST_C, time.time() + 300)
            await heard.wait_for(lambda: DIGEST_C in heard.revoked, timeout=2.0)
    finally:
        await follower.close()
        await writer.close()


async def test_garbage_on_the_channel_is_ignored(
    redis_server: RedisServer, redis_stores: Factory
) -> None:
    store = redis_stores()
    heard = Collecting()
    async with following(store, heard):
        await heard.wait_for(lambda: "ok" in heard.events)
        for junk in ("hello", "A" * 64 + " 5", "a" * 64 + " -5", "a" * 64 + " 0"):
            redis_server.command("PUBLISH", store.revocation_channel, junk)
        await store.revoke(DIGEST_B, time.time() + 60)
        await heard.wait_for(lambda: DIGEST_B in heard.revoked)
    assert set(heard.revoked) == {DIGEST_B}


@given(st.binary(max_size=100))
def test_message_parser_never_raises(data: bytes) -> None:
    parsed = parse_revocation_message(data)
    if parsed is not None:
        digest, ttl = parsed
        assert re.fullmatch(r"[0-9a-f]{64}", digest) and ttl > 0


@given(st.text("0123456789abcdef", min_size=64, max_size=64), st.integers(1, 10**11))
def test_message_parser_round_trip(digest: str, ttl_ms: int) -> None:
    assert parse_revocation_message(f"{digest} {ttl_ms}".encode()) == (digest, ttl_ms / 1000)


def test_message_parser_refuses_non_bytes() -> None:
    assert parse_revocation_message("a" * 64 + " 5") is None
    assert parse_revocation_message(None) is None


@pytest.mark.parametrize("bad", ["A" * 64, "a" * 63, "../x"])
async def test_revoke_takes_only_a_digest(redis_stores: Factory, bad: str) -> None:
    with pytest.raises(ValueError):
        await redis_stores().revoke(bad, time.time() + 60)
