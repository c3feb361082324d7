"""The Redis store: single-use records and rate buckets shared by every worker and node.

Keys are ``agegate:used:<hmac>`` (replay records), ``agegate:revoked:<hmac>``
(logged-out sessions, their own prefix so a catch-up ``SCAN`` reads only
them) and ``agegate:rate:<hmac>``; the value of a record is ``1``.
``agegate:value:<hmac>`` holds what :meth:`RedisStore.put` was given
(``SET NX PX``), read and deleted at once by :meth:`RedisStore.take` (``GETDEL``).  A logout
is also published on the channel ``agegate:revocations:<db>`` (channels are
server-wide, not per database) as ``<hmac> <ttl ms>``.  Nothing else is
written, so neither a ``SCAN`` nor a subscriber sees a token id, nonce,
session id or client address.

Following revocations (:meth:`RedisStore.follow_revocations`) holds one
subscribed connection per process: subscribe, then read every
``revoked:`` key with its ``PTTL`` (subscribing first, so a revocation
published during the scan is not missed), then apply each message as it
comes.  Any failure drops the connection and starts over after a backoff
(0.1 s doubling to 5 s); the TTLs are relative, so the processes' clocks
need not agree.  Idle, it sends no command at all: TCP keepalive, not
``PING``, notices a silently dead peer.

Failure is fast and explicit: short socket timeouts, one immediate retry
(which is what turns a connection broken by a Redis restart into a fresh
one), an overall deadline per call, and every redis-py or socket error
mapped to :class:`~gateway.errors.StoreUnavailable` here, at the boundary.
The connection pool reconnects by itself once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.errors import StoreUnavailable
from gateway.observability import log_event
from gateway.stores.base import RETENTION_MARGIN, RateDecision, RevocationSink, record_digest
from gateway.stores.redis_urls import RedisOptions, connect, parse_redis_url

__all__ = ["RedisStore", "parse_revocation_message"]

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

_DIGEST_RE = re.compile(rb"[0-9a-f]{64}")
_MESSAGE_RE = re.compile(rb"([0-9a-f]{64}) ([1-9][0-9]{0,11})")
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0
_SCAN_BATCH = 1000


def _keepalive() -> dict[int, int | bytes]:
    # Probe an idle subscriber's socket after 10 s, every 5 s, give up after 3: a peer
    # gone without a FIN is noticed in ~25 s, with no command sent to Redis.
    names = ("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)
    return {getattr(socket, name): value for name, value in names if hasattr(socket, name)}


def parse_revocation_message(data: object) -> tuple[str, float] | None:
    """``(digest, ttl seconds)`` from a published ``b"<hmac> <ttl ms>"``; None otherwise."""
    if not isinstance(data, bytes):
        return None
    match = _MESSAGE_RE.fullmatch(data)
    if match is None:
        return None
    return match.group(1).decode("ascii"), int(match.group(2)) / 1000.0


class RedisStore:
    """A :class:`~gateway.stores.Store` on Redis: one server, Sentinel or Cluster.

    The URL forms are :func:`~gateway.stores.redis_urls.parse_redis_url`'s;
    ``options`` size the pool and bound each socket operation.
    """

    def __init__(
        self,
        url: str,
        hmac_key: bytes,
        *,
        previous_keys: Sequence[bytes] = (),
        prefix: str = "agegate:",
        options: RedisOptions | None = None,
        deadline: float = 1.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        target = parse_redis_url(url)
        options = options or RedisOptions()
        self._key = bytes(hmac_key)
        self._previous = tuple(bytes(key) for key in previous_keys)
        self._prefix = prefix
        self._deadline = deadline
        self._clock = clock
        self._client = connect(target, options, retry=Retry(NoBackoff(), 1))
        self._rate_script = self._client.register_script(_RATE_SCRIPT)
        # Its own client: no silent retry, since a reconnect must be followed by a
        # catch-up scan, which only follow_revocations knows to do.  None on a Cluster:
        # its keys and channels are spread over the primaries (see follow_revocations).
        self._feed: redis.asyncio.Redis | RedisCluster | None = None
        if target.kind != "cluster":
            self._feed = connect(
                target,
                # Not waiting for the pool: its calls run without the per-call deadline,
                # and a failure here is retried by follow_revocations anyway.
                RedisOptions(4, options.connect_timeout, options.socket_timeout),
                wait_for_pool=False,
                socket_keepalive=True,
                socket_keepalive_options=_keepalive(),
                retry=Retry(NoBackoff(), 0),
            )
        self._channel = f"{prefix}revocations:{target.db}"

    @property
    def shared(self) -> bool:
        """True: every worker connected to the same Redis sees the same records."""
        return True

    def use_previous_keys(self, keys: Sequence[bytes]) -> None:
        """Also find records under ``keys`` (the other session keys' derived keys)."""
        self._previous = tuple(bytes(key) for key in keys)

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        """``SET <hmac key> 1 NX PX <ttl>``, then ``EXISTS`` under the previous keys;
        False when the first key's record already existed or any other one exists.

        The TTL is relative (``PX``), computed from this gateway's clock, which
        is the clock that judged the token's expiry; an absolute ``PXAT``
        would depend on Redis's clock agreeing with ours.

        The order (our write completes, then we look for the others) is what
        makes two nodes with different first keys unable to both accept a
        value: say X writes ``x`` then reads ``y``, and Y writes ``y`` then
        reads ``x``.  For both to accept, X's read must precede Y's write and
        Y's read precede X's write; with each node's write before its own read
        that is a cycle, so whichever reads second sees the other's record.
        Reading first and writing after would leave exactly that window.
        """
        if not math.isfinite(expires_at):
            raise ValueError("expires_at must be a finite time")
        key = f"{self._prefix}used:{record_digest(self._key, namespace, value)}"
        remaining = max(expires_at - self._clock(), 0.0) + RETENTION_MARGIN
        ttl_ms = math.ceil(remaining * 1000)
        created = await self._call(lambda: self._client.set(key, b"1", nx=True, px=ttl_ms))
        previous = self._previous
        if not created or not previous:
            return bool(created)
        others = [f"{self._prefix}used:{record_digest(k, namespace, value)}" for k in previous]
        # Awaited after the SET's reply (not pipelined): on a Cluster a pipeline may run
        # the two on different primaries in either order, which would void the argument.
        found = await self._call(lambda: self._client.exists(*others))
        return not found

    @property
    def revocation_channel(self) -> str:
        """The pub/sub channel logouts are published on."""
        return self._channel

    async def revoke(self, digest: str, expires_at: float) -> None:
        """``SET revoked:<digest> 1 PX <ttl>`` and ``PUBLISH``, in one round trip."""
        if not math.isfinite(expires_at) or _DIGEST_RE.fullmatch(digest.encode()) is None:
            raise ValueError("revoke() takes a record digest and a finite expiry")
        remaining = max(expires_at - self._clock(), 0.0) + RETENTION_MARGIN
        ttl_ms = math.ceil(remaining * 1000)
        key = f"{self._prefix}revoked:{digest}"

        async def record() -> Any:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(key, b"1", px=ttl_ms)
                pipe.publish(self._channel, f"{digest} {ttl_ms}".encode("ascii"))
                return await pipe.execute()

        await self._call(record)

    async def is_revoked(self, digest: str) -> bool:
        """``EXISTS revoked:<digest>``: one round trip, nothing written."""
        key = f"{self._prefix}revoked:{digest}"
        return bool(await self._call(lambda: self._client.exists(key)))

    async def follow_revocations(self, sink: RevocationSink) -> None:
        """Subscribe, catch up by ``SCAN``, apply messages; reconnect with backoff forever.

        Not on a Cluster (raises StoreUnavailable): a ``SCAN`` there reads one
        primary, and settings refuse ``session_revocation`` with a cluster URL.
        """
        if self._feed is None:
            raise StoreUnavailable("revocations cannot be followed on a Redis Cluster")
        delay = _BACKOFF_FIRST
        while True:
            pubsub = self._feed.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await sink.subscribed()
                loaded = await self._catch_up(sink)
                sink.attempted(True)
                log_event("revocations_followed", count=loaded)
                delay = _BACKOFF_FIRST
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    parsed = parse_revocation_message(message.get("data"))
                    if parsed is None:
                        log_event("revocation_message_ignored", level=logging.WARNING)
                        continue
                    sink.revoked(parsed[0], self._clock() + parsed[1])
            except (RedisError, OSError, StoreUnavailable) as exc:
                sink.attempted(False)
                log_event(
                    "revocations_not_followed", level=logging.WARNING, error=type(exc).__name__
                )
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def _catch_up(self, sink: RevocationSink) -> int:
        """Hand every live ``revoked:`` key to the sink, with its remaining TTL; how many."""
        prefix = f"{self._prefix}revoked:".encode()
        assert self._feed is not None  # follow_revocations checked
        loaded, cursor = 0, 0
        while True:
            cursor, keys = await self._feed.scan(cursor, match=prefix + b"*", count=_SCAN_BATCH)
            digests = [
                key[len(prefix) :]
                for key in keys
                if isinstance(key, bytes)
                and key.startswith(prefix)
                and _DIGEST_RE.fullmatch(key, len(prefix))
            ]
            if digests:
                async with self._feed.pipeline(transaction=False) as pipe:
                    for digest in digests:
                        pipe.pttl(prefix + digest)
                    ttls = await pipe.execute()
                now = self._clock()
                for digest, ttl_ms in zip(digests, ttls, strict=True):
                    if isinstance(ttl_ms, int) and ttl_ms > 0:
                        sink.revoked(digest.decode("ascii"), now + ttl_ms / 1000.0)
                        loaded += 1
            if not cursor:
                return loaded

    async def rate_limit(self, bucket: str, limit: int, window: float) -> RateDecision:
        """A fixed window per bucket, counted and expired atomically by a Lua script.

        Under the first key only: after a rotation a client's count starts
        again at zero, once, which costs at most one extra window of attempts.
        """
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

    async def put(self, namespace: str, key: str, value: bytes, expires_at: float) -> bool:
        """``SET value:<hmac> <value> NX PX <ttl>``; False when the key already exists."""
        if not math.isfinite(expires_at):
            raise ValueError("expires_at must be a finite time")
        digest = record_digest(self._key, f"value:{namespace}", key)
        ttl_ms = max(math.ceil((expires_at - self._clock()) * 1000), 1)
        name = f"{self._prefix}value:{digest}"
        created = await self._call(lambda: self._client.set(name, value, nx=True, px=ttl_ms))
        return bool(created)

    async def take(self, namespace: str, key: str) -> bytes | None:
        """``GETDEL value:<hmac>``, so two callers never both get the value; under the
        first key, then each previous one (a node on the old first key may have put it)."""
        for hmac_key in (self._key, *self._previous):
            name = f"{self._prefix}value:{record_digest(hmac_key, f'value:{namespace}', key)}"
            reply = await self._call(functools.partial(self._client.getdel, name))
            if isinstance(reply, bytes):
                return reply
        return None

    async def ping(self) -> bool:
        """True when Redis answers ``PING`` within the deadline; never raises."""
        try:
            return bool(await self._call(self._client.ping))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        """Close the connection pool."""
        try:
            if self._feed is not None:
                await self._feed.aclose()
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
