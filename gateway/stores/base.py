"""Single-use records and rate-limit buckets: in memory (one process) or in Redis (shared).

Both stores keep only HMACs of what they are given (:func:`record_digest`),
never a raw token id, nonce or client address, so a dump of Redis or of
process memory discloses nothing linkable (SPEC §8).  :meth:`Store.put` and
:meth:`Store.take` hand a short-lived value from one request to another (the
OpenID4VP outcome a wallet's ``direct_post`` leaves for the browser); the
key is HMAC'd like every record, and the value is what the caller chose to
keep (no credential, no identity).

Session keys rotate (docs/operations.md), and with them the HMAC key.  A
store writes under its first (current) key only, but also looks for a
record under the *previous* keys, derived from the other keys of the ring
(:meth:`Store.use_previous_keys`): during a rolling restart, nodes whose
first key differs then still see each other's records.
A store that cannot answer raises :class:`~gateway.errors.StoreUnavailable`:
callers fail closed.  Redis is consulted while verifying a presentation,
rate-limiting ``/.agegate/`` endpoints and recording a logout, never for a
request that already carries a valid session: revoked sessions reach every
process through :meth:`Store.follow_revocations` and are checked in a local
set (:mod:`gateway.session.revocation`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "RETENTION_MARGIN",
    "RateDecision",
    "RevocationSink",
    "Store",
    "record_digest",
]

# Records outlive their ``expires_at`` by this much: verifiers accept tokens up
# to 30 s past ``exp`` (clock skew, SPEC §5), and gateway workers' clocks may
# differ a little, so a record must still exist while any worker could accept.
RETENTION_MARGIN = 60.0


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether one more request fits in its bucket, and if not, when to retry (seconds)."""

    allowed: bool
    retry_after: float


@dataclass(frozen=True, slots=True)
class RevocationSink:
    """Where :meth:`Store.follow_revocations` delivers, and whom it tells about its state.

    ``revoked(digest, forget_after)`` for each revocation (``forget_after`` in
    this process's epoch seconds); ``subscribed()`` once per (re)subscription,
    before the catch-up, to record what could not be recorded meanwhile;
    ``attempted(ok)`` after each catch-up attempt, successful or not.
    """

    revoked: Callable[[str, float], None]
    subscribed: Callable[[], Awaitable[None]]
    attempted: Callable[[bool], None]


class Store(Protocol):
    """What the gateway needs from a store; also satisfies :class:`verifiers.base.ReplayGuard`."""

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        """Record ``value`` until ``expires_at`` (plus a margin); False if already recorded
        (under the current key or any previous one)."""
        ...

    def use_previous_keys(self, keys: Sequence[bytes]) -> None:
        """From now on, also find records written under ``keys`` (derived from the session
        keys after the first); nothing is ever written under them."""
        ...

    async def revoke(self, digest: str, expires_at: float) -> None:
        """Record a revoked session's digest until ``expires_at`` (plus a margin) and tell
        every process following revocations; idempotent."""
        ...

    async def is_revoked(self, digest: str) -> bool:
        """True while ``digest`` is recorded by :meth:`revoke` (one lookup, nothing written)."""
        ...

    async def follow_revocations(self, sink: RevocationSink) -> None:
        """Until cancelled, hand ``sink`` every revocation any process records, past ones
        first; returns at once for a store that is not shared.  Never raises for an outage."""
        ...

    async def rate_limit(self, bucket: str, limit: int, window: float) -> RateDecision:
        """Count one request in ``bucket``; at most ``limit`` per fixed ``window`` seconds."""
        ...

    async def put(self, namespace: str, key: str, value: bytes, expires_at: float) -> bool:
        """Keep ``value`` under ``key`` until ``expires_at`` (no margin); False, and nothing
        changed, when ``key`` already holds a live value.  Only an HMAC of ``key`` is stored;
        ``value`` is stored as given, so it must hold nothing identifying."""
        ...

    async def take(self, namespace: str, key: str) -> bytes | None:
        """The live value under ``key``, removed in the same step (at most one caller gets
        it); None when there is none."""
        ...

    async def ping(self) -> bool:
        """True when the store answers (for ``/readyz``); never raises."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    @property
    def shared(self) -> bool:
        """True when several processes see the same records (safe with many workers)."""
        ...


def record_digest(key: bytes, namespace: str, value: str) -> str:
    """Hex ``HMAC-SHA256(key, len(namespace) || namespace || value)``: how a value is stored.

    The namespace (``"nonce"``, ``"jti:<issuer>"``, …) is inside the MAC, so
    a nonce and a token id with the same text are different records, and it
    is length-prefixed so no (namespace, value) pair can collide with another.
    It is not written in clear anywhere.
    """
    ns = namespace.encode("utf-8", "surrogatepass")
    message = len(ns).to_bytes(4, "big") + ns + value.encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()
