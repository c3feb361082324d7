"""The in-process store: one worker only, bounded, and safe under asyncio.

Every method runs to completion without awaiting, so on one event loop each
check-and-set is atomic without a lock.  It is not shared between processes:
``agegate run --workers N`` with N > 1 needs the Redis store.

Memory is bounded twice over.  Single-use records expire lazily (a heap
ordered by expiry is trimmed on every write); if the table is still full of
live records, :meth:`MemoryStore.consume` raises ``StoreUnavailable`` rather
than forget one, because forgetting a live record would re-open a replay.
Rate buckets are evicted oldest-first when full: losing one only resets a
counter, which is the lesser harm than refusing every visitor.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from gateway.errors import StoreUnavailable
from gateway.stores.base import RETENTION_MARGIN, RateDecision, RevocationSink, record_digest

__all__ = ["DEFAULT_MAX_BUCKETS", "DEFAULT_MAX_RECORDS", "MemoryStore"]

DEFAULT_MAX_RECORDS = 200_000
DEFAULT_MAX_BUCKETS = 100_000


class MemoryStore:
    """Single-use records and fixed-window rate buckets in a dict, keyed by HMAC."""

    def __init__(
        self,
        hmac_key: bytes,
        *,
        previous_keys: Sequence[bytes] = (),
        max_records: int = DEFAULT_MAX_RECORDS,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_records < 1 or max_buckets < 1:
            raise ValueError("store limits must be at least 1")
        self._key = bytes(hmac_key)
        self._previous = tuple(bytes(key) for key in previous_keys)
        self._clock = clock
        self._max_records = max_records
        self._max_buckets = max_buckets
        self._records: dict[str, float] = {}  # digest -> forget after (epoch seconds)
        self._expiry_heap: list[tuple[float, str]] = []
        # digest -> (window start, count), least recently used first (evicted first)
        self._buckets: OrderedDict[str, tuple[float, int]] = OrderedDict()
        # digest -> (value, forget after): short hand-overs between requests (put / take)
        self._values: dict[str, tuple[bytes, float]] = {}
        self._closed = False

    @property
    def shared(self) -> bool:
        """False: records live in this process only."""
        return False

    def use_previous_keys(self, keys: Sequence[bytes]) -> None:
        """Also find records under ``keys``, as the shared store does.

        Kept for parity: a process's first key cannot change while it runs, so
        here nothing is found under them unless a test planted it.
        """
        self._previous = tuple(bytes(key) for key in keys)

    def __len__(self) -> int:
        """Live and not yet purged single-use records (for tests and metrics)."""
        return len(self._records)

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        """Record ``value``; False when it is already recorded and not yet expired."""
        self._check_open()
        if not math.isfinite(expires_at):
            raise ValueError("expires_at must be a finite time")
        now = self._clock()
        digest = record_digest(self._key, namespace, value)
        # Written under the first key only; a record under a previous key counts as used.
        previous = (record_digest(key, namespace, value) for key in self._previous)
        for held in (self._records.get(d) for d in (digest, *previous)):
            if held is not None and held > now:
                return False
        self._purge(now)
        if len(self._records) >= self._max_records:
            raise StoreUnavailable("the in-memory replay store is full")
        forget_after = max(expires_at, now) + RETENTION_MARGIN
        self._records[digest] = forget_after
        heapq.heappush(self._expiry_heap, (forget_after, digest))
        return True

    async def revoke(self, digest: str, expires_at: float) -> None:
        """Record a revoked session's digest (fail closed when full, like :meth:`consume`)."""
        self._check_open()
        if not math.isfinite(expires_at):
            raise ValueError("expires_at must be a finite time")
        now = self._clock()
        self._purge(now)
        key = f"revoked:{digest}"
        if key not in self._records and len(self._records) >= self._max_records:
            raise StoreUnavailable("the in-memory store is full")
        forget_after = max(expires_at, now) + RETENTION_MARGIN
        if self._records.get(key, 0.0) < forget_after:
            self._records[key] = forget_after
            heapq.heappush(self._expiry_heap, (forget_after, key))

    async def is_revoked(self, digest: str) -> bool:
        """True while the digest is recorded and not yet past its retention."""
        self._check_open()
        forget_after = self._records.get(f"revoked:{digest}")
        return forget_after is not None and forget_after > self._clock()

    async def follow_revocations(self, sink: RevocationSink) -> None:
        """Nothing to follow: this process is the only one."""
        return

    async def rate_limit(self, bucket: str, limit: int, window: float) -> RateDecision:
        """Count one request in a fixed window that starts with the bucket's first request.

        Under the first key only, like the Redis store: a counter reset by a
        rotation costs at most one extra window of attempts.
        """
        self._check_open()
        if limit < 1 or not (window > 0 and math.isfinite(window)):
            raise ValueError("rate limit needs limit >= 1 and a positive window")
        now = self._clock()
        digest = record_digest(self._key, "rate", f"{bucket}\x00{window!r}")
        start, count = self._buckets.pop(digest, (now, 0))
        if now - start >= window:
            start, count = now, 0
        count += 1
        self._buckets[digest] = (start, count)
        while len(self._buckets) > self._max_buckets:
            self._buckets.popitem(last=False)
        if count > limit:
            return RateDecision(allowed=False, retry_after=max(start + window - now, 0.0))
        return RateDecision(allowed=True, retry_after=0.0)

    async def put(self, namespace: str, key: str, value: bytes, expires_at: float) -> bool:
        """Keep ``value`` until ``expires_at``; False when a live value is already there."""
        self._check_open()
        if not math.isfinite(expires_at):
            raise ValueError("expires_at must be a finite time")
        now = self._clock()
        digest = record_digest(self._key, f"value:{namespace}", key)
        held = self._values.get(digest)
        if held is not None and held[1] > now:
            return False
        if len(self._values) >= self._max_records:
            # Values live minutes: drop the expired ones; if all are live, fail closed.
            self._values = {d: v for d, v in self._values.items() if v[1] > now}
            if len(self._values) >= self._max_records:
                raise StoreUnavailable("the in-memory store is full")
        self._values[digest] = (bytes(value), expires_at)
        return True

    async def take(self, namespace: str, key: str) -> bytes | None:
        """The live value under ``key``, removed; None when absent or expired."""
        self._check_open()
        now = self._clock()
        for hmac_key in (self._key, *self._previous):
            held = self._values.pop(record_digest(hmac_key, f"value:{namespace}", key), None)
            if held is not None and held[1] > now:
                return held[0]
        return None

    async def ping(self) -> bool:
        """True until closed."""
        return not self._closed

    async def close(self) -> None:
        """Forget everything; further use raises ``StoreUnavailable``."""
        self._closed = True
        self._records.clear()
        self._expiry_heap.clear()
        self._buckets.clear()
        self._values.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _purge(self, now: float) -> None:
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            forget_after, digest = heapq.heappop(heap)
            # A digest re-recorded after expiry has a newer entry; keep that one.
            if self._records.get(digest) == forget_after:
                del self._records[digest]
