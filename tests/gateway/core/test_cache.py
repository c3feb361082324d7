"""The bounded per-instance cache (gateway/core/cache.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.cache import BoundedCache


def test_hit_returns_what_was_put() -> None:
    cache: BoundedCache[bytes, str] = BoundedCache(2)
    assert cache.put(b"/a", "A") == "A"
    assert cache.get(b"/a") == "A"
    assert cache.get(b"/b") is None


def test_oldest_goes_when_full() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert cache.entries == {"b": 2, "c": 3}


def test_replacing_a_key_evicts_nothing() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)
    assert cache.entries == {"a": 3, "b": 2}


def test_long_keys_are_not_kept() -> None:
    cache: BoundedCache[bytes, int] = BoundedCache(8, max_key_size=4)
    assert cache.put(b"12345", 1) == 1
    assert cache.get(b"12345") is None
    cache.put(b"1234", 2)
    assert cache.get(b"1234") == 2


def test_other_keys_are_not_measured() -> None:
    cache: BoundedCache[tuple[str, str], int] = BoundedCache(8, max_key_size=1)
    cache.put(("long", "key"), 1)
    assert cache.get(("long", "key")) == 1


def test_empty_bound_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        BoundedCache(0)


@given(
    st.integers(min_value=1, max_value=8),
    st.lists(st.tuples(st.binary(max_size=6), st.integers()), max_size=60),
)
def test_never_over_bound_and_newest_kept(entries: int, puts: list[tuple[bytes, int]]) -> None:
    cache: BoundedCache[bytes, int] = BoundedCache(entries, max_key_size=4)
    for key, value in puts:
        cache.put(key, value)
        assert len(cache) <= entries
        assert all(len(k) <= 4 for k in cache.entries)
        if len(key) <= 4:
            assert cache.get(key) == value


def test_clear_forgets() -> None:
    cache: BoundedCache[int, int] = BoundedCache(2)
    cache.put(1, 1)
    cache.clear()
    assert len(cache) == 0
    assert cache.get(1) is None
