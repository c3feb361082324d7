"""Single-use records and rate-limit buckets: :func:`open_store` opens the store a
settings URL names, in memory (one process) or in Redis (shared).  What every
store offers, and why it keeps only HMACs, is in :mod:`gateway.stores.base`.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.stores.base import Store
from gateway.stores.redis_urls import REDIS_SCHEMES, RedisOptions

__all__ = ["open_store"]


def open_store(
    url: str,
    hmac_key: bytes,
    redis_options: RedisOptions | None = None,
    *,
    previous_keys: Sequence[bytes] = (),
) -> Store:
    """The store named by ``url``: ``memory://`` or a Redis URL (server, Sentinel, Cluster).

    The Redis forms are :func:`~gateway.stores.redis_urls.parse_redis_url`'s;
    ``redis_options`` size its pool and bound its socket operations.
    ``hmac_key`` keys the record HMACs; derive it, e.g.
    ``derive_key(session_key, "store-hmac")``.  Every worker sharing a Redis
    must use the same key, or they would not see each other's records.
    ``previous_keys`` (derived from the session keys after the first) are
    only looked under, never written with, so nodes whose first keys differ
    during a rotation still see each other's records.
    Raises :class:`~gateway.errors.ConfigError` for a URL it cannot use; no
    connection is made here.
    """
    if len(hmac_key) < 16 or any(len(key) < 16 for key in previous_keys):
        raise ConfigError("the store HMAC key must be at least 16 bytes", key="store")
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme == "memory":
        parts = urlsplit(url)
        if parts.netloc or parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise ConfigError(
                "the memory store takes no host, path or options: use memory://", key="store"
            )
        # Imported here: a memory-only gateway need not load redis-py.
        from gateway.stores.memory import MemoryStore

        return MemoryStore(hmac_key, previous_keys=previous_keys)
    if scheme in REDIS_SCHEMES:
        from gateway.stores.redis import RedisStore

        return RedisStore(url, hmac_key, previous_keys=previous_keys, options=redis_options)
    raise ConfigError(
        "unknown store scheme (expected memory:// or redis://host:port/db)", key="store"
    )
