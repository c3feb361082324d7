"""Fixtures for the store tests: stores on the shared redis-server (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from gateway.session.nonces import derive_key
from gateway.stores.memory import MemoryStore
from gateway.stores.redis import RedisStore
from tests.support.redis import RedisServer

HMAC_KEY = derive_key(b"\x01" * 32, "store-hmac")


class FakeClock:
    """A settable wall clock for expiry tests."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def redis_stores(
    redis_server: RedisServer,
) -> AsyncIterator[Callable[..., RedisStore]]:
    """A factory of RedisStore instances on the shared server, all closed afterwards."""
    made: list[RedisStore] = []

    def make(**kwargs: object) -> RedisStore:
        store = RedisStore(redis_server.url, kwargs.pop("key", HMAC_KEY), **kwargs)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[MemoryStore | RedisStore]:
    """Each store kind in turn, for the behaviour both must share."""
    if request.param == "memory":
        memory = MemoryStore(HMAC_KEY, clock=clock)
        yield memory
        await memory.close()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis_store = RedisStore(server.url, HMAC_KEY, clock=clock)
    yield redis_store
    await redis_store.close()
