"""Behaviour every store shares (gateway/stores/__init__.py contract), on memory and Redis."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import ConfigError, StoreUnavailable
from gateway.session.nonces import derive_key
from gateway.stores import open_store
from gateway.stores.base import RETENTION_MARGIN, RateDecision, Store, record_digest
from gateway.stores.memory import MemoryStore
from gateway.stores.redis import RedisStore
from tests.gateway.stores.conftest import HMAC_KEY, FakeClock
from tests.support.redis import RedisServer
from verifiers.base import ReplayGuard

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    "module", ["gateway.stores", "gateway.stores.memory", "gateway.stores.redis"]
)
def test_public_names_import(module: str) -> None:
    loaded = importlib.import_module(module)
    for name in loaded.__all__:
        assert getattr(loaded, name) is not None


def test_both_stores_satisfy_the_protocols() -> None:
    # Static check (mypy) and runtime shape: both are Stores and ReplayGuards.
    stores: list[Store] = [MemoryStore(HMAC_KEY), RedisStore("redis://127.0.0.1:1/0", HMAC_KEY)]
    guards: list[ReplayGuard] = list(stores)
    assert [s.shared for s in stores] == [False, True]
    assert len(guards) == 2


async def test_consume_once(store: Store) -> None:
    assert await store.consume("jti:https://issuer.example", "token-1", NOW + 300)
    assert not await store.consume("jti:https://issuer.example", "token-1", NOW + 300)
    assert await store.consume("jti:https://issuer.example", "token-2", NOW + 300)


async def test_namespaces_are_separate(store: Store) -> None:
    assert await store.consume("nonce", "same-text", NOW + 300)
    assert await store.consume("jti:https://issuer.example", "same-text", NOW + 300)
    assert not await store.consume("nonce", "same-text", NOW + 300)


async def test_already_expired_value_is_still_recorded(store: Store) -> None:
    # Verifiers accept tokens up to 30 s past exp: a record must outlive exp.
    assert await store.consume("jti:x", "late", NOW - 10)
    assert not await store.consume("jti:x", "late", NOW - 10)


async def test_concurrent_consumers_one_winner(store: Store) -> None:
    results = await asyncio.gather(*(store.consume("nonce", "n-race", NOW + 60) for _ in range(50)))
    assert results.count(True) == 1


async def test_rate_limit_fixed_window(store: Store, clock: FakeClock) -> None:
    decisions = [await store.rate_limit("bucket-a", 3, 60.0) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[0] == RateDecision(allowed=True, retry_after=0.0)
    assert 0 < decisions[-1].retry_after <= 60.0
    assert (await store.rate_limit("bucket-b", 3, 60.0)).allowed


async def test_ping(store: Store) -> None:
    assert await store.ping()


def test_record_digest_is_keyed_and_unambiguous() -> None:
    digest = record_digest(HMAC_KEY, "nonce", "abc")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest != record_digest(b"\x02" * 32, "nonce", "abc")
    assert digest != record_digest(HMAC_KEY, "jti", "abc")
    # Length prefix: moving characters between namespace and value changes the digest.
    assert record_digest(HMAC_KEY, "ab", "c") != record_digest(HMAC_KEY, "a", "bc")
    assert record_digest(HMAC_KEY, "a\x00", "b") != record_digest(HMAC_KEY, "a", "\x00b")


def test_retention_margin_covers_token_skew() -> None:
    assert RETENTION_MARGIN >= 30


class TestOpenStore:
    def test_memory(self) -> None:
        store = open_store("memory://", HMAC_KEY)
        assert isinstance(store, MemoryStore) and not store.shared

    @pytest.mark.parametrize(
        "url",
        [
            "redis://127.0.0.1:6379/0",
            "redis://localhost",
            "redis://:secret@127.0.0.1:6380/2",
            "rediss://redis.internal:6380/0",
        ],
    )
    def test_redis(self, url: str) -> None:
        store = open_store(url, HMAC_KEY)
        assert isinstance(store, RedisStore) and store.shared

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "memcached://127.0.0.1",
            "memory://somewhere",
            "memory:///path",
            "memory://?size=3",
            "redis://",
            "redis:///0",
            "redis://127.0.0.1:6379/zero",
            "redis://127.0.0.1:notaport/0",
            "redis://127.0.0.1:99999/0",
            "redis://127.0.0.1:6379/0#frag",
        ],
    )
    def test_bad_urls(self, url: str) -> None:
        with pytest.raises(ConfigError):
            open_store(url, HMAC_KEY)

    def test_password_is_not_echoed(self) -> None:
        with pytest.raises(ConfigError) as info:
            open_store("redis://:hunter2@127.0.0.1:6379/x", HMAC_KEY)
        assert "hunter2" not in str(info.value)

    def test_short_hmac_key(self) -> None:
        with pytest.raises(ConfigError, match="16 bytes"):
            open_store("memory://", b"short")


DIGEST_A, DIGEST_B = "a" * 64, "b" * 64


async def test_revoked_digests_are_seen_and_kept_apart_from_replay_records(store: Store) -> None:
    assert not await store.is_revoked(DIGEST_A)
    await store.revoke(DIGEST_A, NOW + 300)
    await store.revoke(DIGEST_A, NOW + 300)  # a second logout of the same session is fine
    assert await store.is_revoked(DIGEST_A)
    assert not await store.is_revoked(DIGEST_B)
    # Revocations have their own namespace: a replay record never reads as one.
    assert await store.consume("session-revoked", DIGEST_B, NOW + 300)
    assert not await store.is_revoked(DIGEST_B)


async def test_revocation_is_forgotten_after_retention(clock: FakeClock) -> None:
    # Redis expires by its own clock; its TTLs are checked in test_redis.py.
    store = MemoryStore(HMAC_KEY, clock=clock)
    await store.revoke(DIGEST_A, clock.now + 10)
    clock.advance(10 + RETENTION_MARGIN - 1)
    assert await store.is_revoked(DIGEST_A)
    clock.advance(1)
    assert not await store.is_revoked(DIGEST_A)


async def test_full_memory_store_refuses_a_revocation() -> None:
    store = MemoryStore(HMAC_KEY, max_records=1)
    await store.revoke(DIGEST_A, time.time() + 60)
    with pytest.raises(StoreUnavailable):
        await store.revoke(DIGEST_B, time.time() + 60)
    assert await store.is_revoked(DIGEST_A)


async def test_revocation_on_a_closed_memory_store_is_unavailable() -> None:
    store = MemoryStore(HMAC_KEY)
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.is_revoked(DIGEST_A)
    with pytest.raises(StoreUnavailable):
        await store.revoke(DIGEST_A, NOW)


async def test_put_then_take_hands_the_value_over_once(store: Store) -> None:
    assert await store.put("wallet-outcome", "code-1", b"outcome", time.time() + 300)
    assert await store.take("wallet-outcome", "code-1") == b"outcome"
    assert await store.take("wallet-outcome", "code-1") is None


async def test_put_does_not_overwrite_a_live_value(store: Store) -> None:
    assert await store.put("wallet-outcome", "code-2", b"first", time.time() + 300)
    assert not await store.put("wallet-outcome", "code-2", b"second", time.time() + 300)
    assert await store.take("wallet-outcome", "code-2") == b"first"


async def test_take_is_scoped_by_namespace(store: Store) -> None:
    assert await store.put("a", "same-key", b"in a", time.time() + 300)
    assert await store.take("b", "same-key") is None
    assert await store.take("a", "same-key") == b"in a"


async def test_concurrent_takes_give_the_value_to_one_caller(store: Store) -> None:
    assert await store.put("wallet-outcome", "code-3", b"once", time.time() + 300)
    results = await asyncio.gather(*(store.take("wallet-outcome", "code-3") for _ in range(8)))
    assert [r for r in results if r is not None] == [b"once"]


async def test_put_stores_the_key_only_as_an_hmac(redis_stores: Any) -> None:
    store = redis_stores()
    assert await store.put("wallet-outcome", "raw-response-code", b"v", time.time() + 60)
    keys = [k async for k in store._client.scan_iter(match=b"agegate:value:*")]
    assert keys and all(b"raw-response-code" not in k for k in keys)
    assert await store.take("wallet-outcome", "raw-response-code") == b"v"


async def test_memory_take_after_expiry_is_none() -> None:
    clock = FakeClock()
    memory = MemoryStore(HMAC_KEY, clock=clock)
    assert await memory.put("n", "k", b"v", clock.now + 10)
    clock.advance(11)
    assert await memory.take("n", "k") is None
    assert await memory.put("n", "k", b"again", clock.now + 10)


# Session-key rotation (docs/operations.md): nodes whose first key differs share one
# Redis; each writes under its first key and looks under the others.
OLD_KEY, NEW_KEY = HMAC_KEY, derive_key(b"\x02" * 32, "store-hmac")


@pytest.fixture(params=["memory", "redis"])
async def rotated(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[tuple[Store, Store]]:
    """A store on the old first key and one on the new first key (old below it), sharing
    records: two nodes mid-rotation.  Two memory stores share nothing in real life (one
    process never changes its first key), so here they share their tables, to test the
    lookups themselves."""
    if request.param == "memory":
        old = MemoryStore(OLD_KEY, previous_keys=[NEW_KEY], clock=clock)
        new = MemoryStore(NEW_KEY, previous_keys=[OLD_KEY], clock=clock)
        new._records, new._expiry_heap, new._values = old._records, old._expiry_heap, old._values
        yield old, new
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    old_redis = RedisStore(server.url, OLD_KEY, previous_keys=[NEW_KEY], clock=clock)
    new_redis = RedisStore(server.url, NEW_KEY, previous_keys=[OLD_KEY], clock=clock)
    yield old_redis, new_redis
    await old_redis.close()
    await new_redis.close()


async def test_consume_refuses_a_value_recorded_under_a_previous_key(
    rotated: tuple[Store, Store],
) -> None:
    old, new = rotated
    assert await old.consume("jti:x", "t-1", NOW + 300)
    assert not await new.consume("jti:x", "t-1", NOW + 300)
    assert await new.consume("jti:x", "t-2", NOW + 300)
    assert not await old.consume("jti:x", "t-2", NOW + 300)
    assert not await new.consume("jti:x", "t-2", NOW + 300)


async def test_take_finds_a_value_put_under_a_previous_key(rotated: tuple[Store, Store]) -> None:
    old, new = rotated
    assert await old.put("wallet-outcome", "code-r", b"from old", time.time() + 300)
    assert await new.take("wallet-outcome", "code-r") == b"from old"
    assert await old.take("wallet-outcome", "code-r") is None
    assert await new.take("wallet-outcome", "code-r") is None
    assert await new.put("wallet-outcome", "code-s", b"from new", time.time() + 300)
    assert await old.take("wallet-outcome", "code-s") == b"from new"


async def test_previous_keys_are_replaced_at_reload(redis_stores: Any) -> None:
    writer = redis_stores(key=OLD_KEY)
    reader = redis_stores(key=NEW_KEY)
    assert await writer.consume("nonce", "n-1", time.time() + 60)
    assert await reader.consume("nonce", "n-1", time.time() + 60)  # the hole, before
    reader.use_previous_keys([OLD_KEY])
    assert await writer.consume("nonce", "n-2", time.time() + 60)
    assert not await reader.consume("nonce", "n-2", time.time() + 60)
    reader.use_previous_keys([])
    assert await writer.put("v", "k", b"x", time.time() + 60)
    assert await reader.take("v", "k") is None


async def test_two_first_keys_never_both_accept_a_value(redis_stores: Any) -> None:
    # SET NX under one's own key, then EXISTS under the other's: of two racing nodes,
    # whichever looks second sees the other's write.  Both may refuse (fail closed).
    x = redis_stores(key=OLD_KEY, previous_keys=[NEW_KEY])
    y = redis_stores(key=NEW_KEY, previous_keys=[OLD_KEY])
    for round_ in range(40):
        value = f"race-{round_}"
        racers = [(x if i % 2 else y).consume("nonce", value, time.time() + 60) for i in range(20)]
        results = await asyncio.gather(*racers)
        assert results.count(True) <= 1, round_


ROTATION_KEYS = [derive_key(bytes([n]) * 32, "store-hmac") for n in (7, 8, 9)]
# Rings nodes may hold at once: every order of one key set.  A ring missing another
# node's first key is not among them: that is the one condition a rotation must keep
# (the old line goes only once no record under it can still matter; docs/operations.md).
RINGS = list(itertools.permutations(range(len(ROTATION_KEYS))))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, len(RINGS) - 1), st.integers(0, 3)), min_size=1, max_size=6
        ),
        min_size=1,
        max_size=6,
    )
)
def test_rotated_rings_never_accept_a_value_twice(
    redis_server: RedisServer, batches: list[list[tuple[int, int]]]
) -> None:
    """Batches of consumes (concurrent within, sequential across) by nodes on rotated
    rings of one key set: no value is ever accepted twice, and a value nobody has
    consumed before, consumed alone, is accepted."""
    prefix = f"agegate:prop-{uuid.uuid4().hex}:"

    async def run() -> None:
        nodes = [
            RedisStore(
                redis_server.url,
                ROTATION_KEYS[ring[0]],
                previous_keys=[ROTATION_KEYS[i] for i in ring[1:]],
                prefix=prefix,
            )
            for ring in RINGS
        ]
        accepted: set[int] = set()
        seen: set[int] = set()
        try:
            for batch in batches:
                results = await asyncio.gather(
                    *(
                        nodes[node].consume("nonce", f"v{value}", time.time() + 60)
                        for node, value in batch
                    )
                )
                for (_, value), ok in zip(batch, results, strict=True):
                    if ok:
                        assert value not in accepted, (value, batches)
                        accepted.add(value)
                if len(batch) == 1 and batch[0][1] not in seen:
                    assert results == [True], batches
                seen.update(value for _, value in batch)
        finally:
            for node in nodes:
                await node.close()

    asyncio.run(run())
