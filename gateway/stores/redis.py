"""The Redis store: single-use records and rate buckets shared by every worker and node.

Keys are ``agegate:used:<hmac>`` and ``agegate:rate:<hmac>``; the
value of a record is ``1``.  Nothing else is written, so a ``SCAN`` of the
database shows no token id, nonce or client address.

Failure is fast and explicit: short socket timeouts, one immediate retry
(which is what turns a connection broken by a Redis restart into a fresh
one), an overall deadline per call, and every redis-py or socket error
mapped to :class:`~gateway.errors.StoreUnavailable` here, at the boundary.
The connection pool reconnects by itself once Redis is back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.errors import StoreUnavailable
from gateway.stores import RETENTION_MARGIN, RateDecision, record_digest

__all__ = ["RedisStore"]

# INCR and set the window's expiry on the first hit, atomically: with a
# separate PEXPIRE a crash in between would leave a counter that never resets.
_RATE_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RedisStore:
    """A :class:`~gateway.stores.Store` on Redis (``redis://`` or ``rediss://`` URL)."""

    def __init__(
        self,
        url: str,
        hmac_key: bytes,
        *,
        prefix: str = "agegate:",
        connect_timeout: float = 0.5,
        op_timeout: float = 0.5,
        deadline: float = 1.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = bytes(hmac_key)
        self._prefix = prefix
        self._deadline = deadline
        self._clock = clock
        self._client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=op_timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
        )
        self._rate_script = self._client.register_script(_RATE_SCRIPT)

    @property
    def shared(self) -> bool:
        """True: every worker connected to the same Redis sees the same records."""
        return True

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        """``SET <hmac key> 1 NX PX <ttl>``; False when the key already exists.

        The TTL is relative (``PX``), computed from this gateway's clock, which
        is the clock that judged the token's expiry; an absolute ``PXAT``
        would depend on Redis's clock agreeing with ours.
        """
        if not math.isfinite(expires_at):
            raise ValueError("expires_at must be a finite time")
        digest = record_digest(self._key, namespace, value)
        key = f"{self._prefix}used:{digest}"
        remaining = max(expires_at - self._clock(), 0.0) + RETENTION_MARGIN
        ttl_ms = math.ceil(remaining * 1000)
        created = await self._call(lambda: self._client.set(key, b"1", nx=True, px=ttl_ms))
        return bool(created)

    async def recorded(self, namespace: str, value: str) -> bool:
        """``EXISTS <hmac key>``: one round trip, nothing written."""
        key = f"{self._prefix}used:{record_digest(self._key, namespace, value)}"
        return bool(await self._call(lambda: self._client.exists(key)))

    async def rate_limit(self, bucket: str, limit: int, window: float) -> RateDecision:
        """A fixed window per bucket, counted and expired atomically by a Lua script."""
        if limit < 1 or not (window > 0 and math.isfinite(window)):
            raise ValueError("rate limit needs limit >= 1 and a positive window")
        digest = record_digest(self._key, "rate", f"{bucket}\x00{window!r}")
        key = f"{self._prefix}rate:{digest}"
        window_ms = max(math.ceil(window * 1000), 1)
        reply = await self._call(lambda: self._rate_script(keys=[key], args=[window_ms]))
        try:
            count, ttl_ms = int(reply[0]), int(reply[1])
        except (TypeError, ValueError, IndexError):
            raise StoreUnavailable("unexpected reply from Redis") from None
        if count > limit:
            return RateDecision(allowed=False, retry_after=max(ttl_ms, 0) / 1000.0)
        return RateDecision(allowed=True, retry_after=0.0)

    async def ping(self) -> bool:
        """True when Redis answers ``PING`` within the deadline; never raises."""
        try:
            return bool(await self._call(self._client.ping))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        """Close the connection pool."""
        try:
            await self._client.aclose()
        except (RedisError, OSError):
            # Closing a pool whose server is gone can fail; the sockets are closed anyway.
            return

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        """Run one command under the deadline, mapping every failure to StoreUnavailable."""
        try:
            async with asyncio.timeout(self._deadline):
                return await command()
        except (RedisError, OSError) as exc:
            # The class name is enough to debug; messages may quote the URL.
            raise StoreUnavailable(f"Redis unavailable ({type(exc).__name__})") from None
