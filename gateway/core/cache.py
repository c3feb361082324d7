"""One bounded cache type for the per-instance caches on the request path.

Hosts, raw paths, peer trust, forwarding headers and access-line segments
repeat from request to request, so each owner keeps what it computed once.
Requests are attacker-chosen, so every such cache is bounded in entries and,
for ``bytes``/``str`` keys, in key length: junk cannot grow memory.  When full
the oldest entry goes (insertion order), which costs a miss, never a cliff.

Reads on the hot path go straight to ``cache.entries.get(key)``: a plain
``dict``'s ``get`` is specialised by CPython, a subclass's or a wrapper's is
not (measured ~15 ns more per hit).  Writes go through
:meth:`BoundedCache.put` only.

None of these caches may hold cookie or token text: they live as long as the
process, and a visitor's secrets must not.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["BoundedCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``max_entries`` values, by keys of at most ``max_key_size``.

    A ``bytes`` or ``str`` key longer than ``max_key_size`` is not kept (the
    value is computed again next time); other keys are not measured.
    """

    __slots__ = ("entries", "max_entries", "max_key_size")

    def __init__(self, max_entries: int, *, max_key_size: int | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.entries: dict[K, V] = {}  # read freely; written only by put
        self.max_entries = max_entries
        self.max_key_size = max_key_size

    def get(self, key: K) -> V | None:
        """The value kept under ``key``, or None."""
        return self.entries.get(key)

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` if the key fits (oldest entry out when full); returns it."""
        limit = self.max_key_size
        if limit is not None and isinstance(key, bytes | str) and len(key) > limit:
            return value
        entries = self.entries
        if key not in entries and len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[key] = value
        return value

    def clear(self) -> None:
        """Forget every entry (say, when what they were computed from is replaced)."""
        self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)
