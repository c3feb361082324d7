"""Single-use records and rate-limit buckets: :func:`open_store` opens the store a
settings URL names, in memory (one process) or in Redis (shared).  What every
store offers, and why it keeps only HMACs, is in :mod:`gateway.stores.base`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.stores.base import Store

__all__ = ["open_store"]


def open_store(url: str, hmac_key: bytes) -> Store:
    """The store named by ``url``: ``memory://`` or ``redis://host:port/db`` (``rediss://``).

    ``hmac_key`` keys the record HMACs; derive it, e.g.
    ``derive_key(session_key, "store-hmac")``.  Every worker sharing a Redis
    must use the same key, or they would not see each other's records.
    Raises :class:`~gateway.errors.ConfigError` for a URL it cannot use; no
    connection is made here.
    """
    if len(hmac_key) < 16:
        raise ConfigError("the store HMAC key must be at least 16 bytes", key="store")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(
            "not a store URL (expected memory:// or redis://host:port/db)", key="store"
        ) from None
    if parts.scheme == "memory":
        if parts.netloc or parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise ConfigError(
                "the memory store takes no host, path or options: use memory://", key="store"
            )
        # Imported here: a memory-only gateway need not load redis-py.
        from gateway.stores.memory import MemoryStore

        return MemoryStore(hmac_key)
    if parts.scheme in {"redis", "rediss"}:
        # Name the problem without echoing the URL: it may carry a password.
        if not parts.hostname:
            raise ConfigError(
                "a redis:// store URL needs a host, e.g. redis://127.0.0.1:6379/0", key="store"
            )
        db = parts.path.strip("/") or "0"
        if not db.isdigit() or port == 0:
            raise ConfigError("a redis:// store URL is redis://host:port/<db number>", key="store")
        if parts.fragment:
            raise ConfigError("a redis:// store URL has no #fragment", key="store")
        from gateway.stores.redis import RedisStore

        return RedisStore(url, hmac_key)
    raise ConfigError(
        "unknown store scheme (expected memory:// or redis://host:port/db)", key="store"
    )
