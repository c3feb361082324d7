"""The in-process store: expiry, bounds and closing (gateway/stores/memory.py)."""

from __future__ import annotations

import pytest

from gateway.errors import StoreUnavailable
from gateway.stores.base import RETENTION_MARGIN
from gateway.stores.memory import MemoryStore
from tests.gateway.stores.conftest import HMAC_KEY, FakeClock


async def test_record_is_forgotten_after_expiry_plus_margin(clock: FakeClock) -> None:
    store = MemoryStore(HMAC_KEY, clock=clock)
    expires = clock.now + 300
    assert await store.consume("jti", "t", expires)
    clock.advance(300 + RETENTION_MARGIN - 0.5)
    assert not await store.consume("jti", "t", expires)
    clock.advance(1)
    assert await store.consume("jti", "t", clock.now + 300)


async def test_expired_records_are_evicted_lazily(clock: FakeClock) -> None:
    store = MemoryStore(HMAC_KEY, clock=clock)
    for index in range(100):
        await store.consume("nonce", f"n{index}", clock.now + 10)
    assert len(store) == 100
    clock.advance(10 + RETENTION_MARGIN + 1)
    await store.consume("nonce", "fresh", clock.now + 10)
    assert len(store) == 1


async def test_full_of_live_records_fails_closed(clock: FakeClock) -> None:
    # Forgetting a live record would re-open a replay; refuse instead.
    store = MemoryStore(HMAC_KEY, max_records=3, clock=clock)
    for value in ("a", "b", "c"):
        assert await store.consume("jti", value, clock.now + 300)
    with pytest.raises(StoreUnavailable):
        await store.consume("jti", "d", clock.now + 300)
    # A replay is still recognised while full.
    assert not await store.consume("jti", "a", clock.now + 300)


async def test_full_table_frees_up_as_records_expire(clock: FakeClock) -> None:
    store = MemoryStore(HMAC_KEY, max_records=2, clock=clock)
    await store.consume("jti", "a", clock.now + 1)
    await store.consume("jti", "b", clock.now + 1000)
    clock.advance(1 + RETENTION_MARGIN)
    assert await store.consume("jti", "c", clock.now + 1)
    assert len(store) == 2


async def test_values_are_kept_only_as_hmacs(clock: FakeClock) -> None:
    store = MemoryStore(HMAC_KEY, clock=clock)
    await store.consume("jti", "raw-token-id-123", clock.now + 60)
    await store.rate_limit("198.51.100.7", 5, 60)
    held = repr(vars(store))
    assert "raw-token-id-123" not in held
    assert "198.51.100.7" not in held


async def test_rate_window_resets(clock: FakeClock) -> None:
    store = MemoryStore(HMAC_KEY, clock=clock)
    assert (await store.rate_limit("b", 1, 10)).allowed
    refused = await store.rate_limit("b", 1, 10)
    assert not refused.allowed and refused.retry_after == pytest.approx(10)
    clock.advance(4)
    assert (await store.rate_limit("b", 1, 10)).retry_after == pytest.approx(6)
    clock.advance(6)
    assert (await store.rate_limit("b", 1, 10)).allowed


async def test_rate_buckets_are_bounded(clock: FakeClock) -> None:
    store = MemoryStore(HMAC_KEY, max_buckets=10, clock=clock)
    for index in range(100):
        await store.rate_limit(f"client-{index}", 1, 60)
    assert len(store._buckets) == 10
    # The most recent buckets survive; the oldest were evicted (and start over).
    assert not (await store.rate_limit("client-99", 1, 60)).allowed
    assert (await store.rate_limit("client-0", 1, 60)).allowed


@pytest.mark.parametrize(("limit", "window"), [(0, 60.0), (1, 0.0), (1, float("nan"))])
async def test_bad_rate_arguments(limit: int, window: float) -> None:
    with pytest.raises(ValueError):
        await MemoryStore(HMAC_KEY).rate_limit("b", limit, window)


async def test_non_finite_expiry_refused() -> None:
    with pytest.raises(ValueError):
        await MemoryStore(HMAC_KEY).consume("jti", "x", float("inf"))


def test_bad_limits_refused() -> None:
    with pytest.raises(ValueError):
        MemoryStore(HMAC_KEY, max_records=0)


async def test_closed_store_fails_closed() -> None:
    store = MemoryStore(HMAC_KEY)
    await store.consume("jti", "a", 2e9)
    await store.close()
    assert not await store.ping()
    with pytest.raises(StoreUnavailable):
        await store.consume("jti", "b", 2e9)
    with pytest.raises(StoreUnavailable):
        await store.rate_limit("b", 1, 1)
