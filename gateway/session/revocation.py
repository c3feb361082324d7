"""Server-side logout: a copied session cookie dies with the logout, in every process.

A cookie is self-contained, so clearing it in one browser leaves every copy
valid until it expires.  With ``session_revocation`` on (the default),
``POST /.agegate/logout`` revokes the session:

- at once in this process: its digest goes into a local set, so the next
  request here with a copy is refused;
- in the store: ``SET agegate:revoked:<digest>`` with the session's
  remaining life (plus the retention margin) as TTL, and a ``PUBLISH`` of
  the digest and TTL, which every other process following revocations
  (:meth:`SessionRevocation.follow`, a task of the runtime) adds to its own
  local set within milliseconds.  A process that (re)subscribes first reads
  every ``revoked:`` key, so one started later, or back from an outage,
  catches up.

Checking a session is then a dictionary lookup, and no lookup at all while
the set is empty: Redis is never on the path of a request that carries a
valid session (SPEC §2), and when Redis is down sessions keep passing.  A
logout during an outage is refused here at once and kept pending; it is
recorded and published as soon as the subscription is back (lost if this
process stops first).

The digest is the store's HMAC of the session id (never the id, never the
cookie); a cookie sealed before session ids existed is named by the HMAC of
its whole value, so an upgrade neither logs anyone out nor leaves an old
cookie unrevocable.

A logout is recorded under the store key derived from the first session key
only, but a session is refused if its digest under the key derived from
*any* key of the ring is revoked: during a rotation, a node whose first key
is new still honours logouts recorded by nodes on the old one (and the
reverse, once they hold the new key below the old; docs/operations.md).

The local set is bounded (:data:`MAX_REVOKED` entries, each gone when its
session would have expired).  Past the bound the entry closest to its expiry
is dropped from memory, never from the store, and until that entry would
have expired this process also asks the store about every session it does
not find locally: an overflow costs latency (and a 503 if the store is down
meanwhile), never a revoked session let through.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import time
from collections.abc import Callable, Sequence
from typing import Literal

from gateway.errors import StoreUnavailable
from gateway.policy.facts import SessionClaims
from gateway.session.codec import SessionCodec, session_cookie_of
from gateway.stores.base import RETENTION_MARGIN, RevocationSink, Store

__all__ = [
    "LEGACY_NAMESPACE",
    "MAX_REVOKED",
    "REVOKED_NAMESPACE",
    "RevokedSet",
    "SessionRevocation",
]

REVOKED_NAMESPACE = "session-revoked"
LEGACY_NAMESPACE = "session-cookie-revoked"
MAX_REVOKED = 100_000
_DIGEST_CACHE = 10_000

Revoked = Literal["recorded", "pending"]


class RevokedSet:
    """Digests of revoked sessions, each kept until its ``forget_after`` (epoch seconds).

    Bounded: past ``max_entries`` the entry that expires soonest is dropped,
    and :meth:`lossy` stays true until it would have expired, so the caller
    knows to ask the store about digests it does not find.
    """

    __slots__ = ("_entries", "_heap", "_lossy_until", "_max")

    def __init__(self, max_entries: int = MAX_REVOKED) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._entries: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lossy_until = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries) or self._lossy_until > 0.0

    def add(self, digest: str, forget_after: float, now: float) -> None:
        """Hold ``digest`` until ``forget_after``; a later expiry for a known digest wins."""
        if forget_after <= now or self._entries.get(digest, 0.0) >= forget_after:
            return
        self._entries[digest] = forget_after
        heapq.heappush(self._heap, (forget_after, digest))
        self._trim(now)

    def holds(self, digest: str, now: float) -> bool:
        """True while ``digest`` is held and not past its expiry."""
        forget_after = self._entries.get(digest)
        return forget_after is not None and forget_after > now

    def lossy(self, now: float) -> bool:
        """True while an entry dropped for room would still be live."""
        if self._lossy_until and now >= self._lossy_until:
            self._lossy_until = 0.0
        return self._lossy_until > 0.0

    def _trim(self, now: float) -> None:
        heap, entries = self._heap, self._entries
        while heap and (heap[0][0] <= now or len(entries) > self._max):
            forget_after, digest = heapq.heappop(heap)
            if entries.get(digest) != forget_after:
                continue  # superseded by a later expiry for the same digest
            del entries[digest]
            if forget_after > now:
                self._lossy_until = max(self._lossy_until, forget_after)
        if len(heap) > 2 * len(entries) + 1024:
            # Superseded items pile up only when digests are re-added; rebuild to bound them.
            self._heap = [(f, d) for d, f in entries.items()]
            heapq.heapify(self._heap)


class _Digester:
    """``record_digest(key, namespace, ·)`` with the namespace's HMAC state computed once."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes, namespace: str) -> None:
        ns = namespace.encode("utf-8")
        self._base = hmac.new(key, len(ns).to_bytes(4, "big") + ns, hashlib.sha256)

    def __call__(self, value: str) -> str:
        mac = self._base.copy()
        mac.update(value.encode("utf-8", "surrogatepass"))
        return mac.hexdigest()


def _digesters(key: bytes, previous: Sequence[bytes]) -> tuple[tuple[_Digester, _Digester], ...]:
    # (by session id, by whole cookie) per key, the first (writing) key first.
    return tuple(
        (_Digester(k, REVOKED_NAMESPACE), _Digester(k, LEGACY_NAMESPACE)) for k in (key, *previous)
    )


class SessionRevocation:
    """Opens session cookies, refusing revoked ones; revokes them on logout."""

    __slots__ = (
        "_alone",
        "_clock",
        "_codec",
        "_digesters",
        "_digests",
        "_enabled",
        "_key",
        "_on_revoked",
        "_pending",
        "_revoked",
        "_store",
        "followed",
    )

    def __init__(
        self,
        codec: SessionCodec,
        store: Store,
        hmac_key: bytes,
        *,
        previous_keys: Sequence[bytes] = (),
        enabled: bool,
        on_revoked: Callable[[], None] | None = None,
        max_entries: int = MAX_REVOKED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._codec = codec
        self._alone = codec.alone_claims
        self._store = store
        self._enabled = enabled
        self._on_revoked = on_revoked
        self._clock = clock
        self._key = bytes(hmac_key)
        self._digesters = _digesters(self._key, previous_keys)
        self._revoked = RevokedSet(max_entries)
        # Digests of session ids seen lately, so a request pays a dict lookup, not an
        # HMAC; bounded like the codec's own cache of opened cookies.
        self._digests: dict[str, tuple[str, ...]] = {}
        # Logouts the store could not record (outage): recorded on the next subscription.
        self._pending: dict[str, float] = {}
        self.followed: bool | None = None  # outcome of the last catch-up; None before one

    @property
    def enabled(self) -> bool:
        """True when logouts revoke sessions server-side."""
        return self._enabled

    @property
    def revoked(self) -> RevokedSet:
        """This process's set of revoked session digests."""
        return self._revoked

    def use_previous_keys(self, keys: Sequence[bytes]) -> None:
        """From now on also refuse sessions revoked under ``keys`` (derived from the session
        keys after the first); logouts are still recorded under the first key only."""
        self._digesters = _digesters(self._key, keys)
        self._digests = {}

    def digests(self, claims: SessionClaims, cookie: str) -> tuple[str, ...]:
        """The store digests naming a session, under the first key then each previous one:
        HMACs of its id, or of an id-less cookie."""
        session_id = claims.session_id
        if session_id is None:
            # Not cached: the name is the cookie itself, and cookie text is kept only
            # by the codec's own cache (old id-less cookies are rare and expiring).
            return tuple(pair[1](cookie) for pair in self._digesters)
        digests = self._digests.get(session_id)
        if digests is None:
            digests = tuple(pair[0](session_id) for pair in self._digesters)
            if len(self._digests) >= _DIGEST_CACHE:
                del self._digests[next(iter(self._digests))]
            self._digests[session_id] = digests
        return digests

    def digest(self, claims: SessionClaims, cookie: str) -> str:
        """The store digest a logout of this session is recorded under (the first key's)."""
        return self.digests(claims, cookie)[0]

    async def open(self, cookie: str | None, now: float) -> SessionClaims | None:
        """The claims of a fresh, authentic, not revoked cookie; ``None`` otherwise.

        A local lookup; only while the local set has overflowed (see the module
        docstring) may it ask the store, and then raise
        :class:`~gateway.errors.StoreUnavailable`.
        """
        claims = self._codec.open(cookie, now)
        if claims is None or not self._enabled or cookie is None or not self._revoked:
            return claims
        digests = self.digests(claims, cookie)
        revoked = self._held(digests, now)
        if not revoked and self._revoked.lossy(now):
            for digest in digests:
                if revoked := await self._store.is_revoked(digest):
                    break
        if revoked:
            if self._on_revoked is not None:
                self._on_revoked()
            return None
        return claims

    def peek(self, cookie: str | None, now: float) -> SessionClaims | None:
        """:meth:`open` for a cookie already opened, decided without a wait; else None.

        None also whenever the answer would need the store (the local set has
        overflowed) or the cookie is revoked: the ordinary path then decides,
        counts and answers as it always does.
        """
        claims = self._codec.peek(cookie, now)
        revoked = self._revoked
        # RevokedSet.__bool__ without the call: nothing held and nothing lost.
        if claims is None or not (revoked._entries or revoked._lossy_until > 0.0):
            return claims
        return self._unless_revoked(claims, cookie, now)

    def peek_header(self, header: bytes, now: float) -> SessionClaims | None:
        """:meth:`peek` for a first ``Cookie`` header holding the session cookie alone
        (:meth:`SessionCodec.peek_header`); None for any other header."""
        # SessionCodec.peek_header's steps, with the usual one (a kept header) not a call.
        claims = self._alone.get(header) or self._codec.keep_header(header)
        if claims is None or not now < claims.expires_at:
            return None
        revoked = self._revoked
        if not (revoked._entries or revoked._lossy_until > 0.0):
            return claims
        return self._unless_revoked(claims, session_cookie_of(header), now)

    def _unless_revoked(
        self, claims: SessionClaims, cookie: str | None, now: float
    ) -> SessionClaims | None:
        if not self._enabled or cookie is None:
            return claims
        if self._revoked.lossy(now) or self._held(self.digests(claims, cookie), now):
            return None
        return claims

    def _held(self, digests: tuple[str, ...], now: float) -> bool:
        """True when the local set holds the session under any ring key's digest."""
        held = self._revoked.holds
        # One lookup with one key; the previous keys' digests only during a rotation.
        return held(digests[0], now) or (
            len(digests) > 1 and any(held(d, now) for d in digests[1:])
        )

    async def revoke(self, cookie: str | None, now: float) -> Revoked | None:
        """Revoke the cookie's session; None when there is nothing to revoke.

        ``"recorded"``: in this process and in the store (hence soon everywhere).
        ``"pending"``: the store is down; refused here now, recorded in the store
        when the subscription is back.  Only a fresh, authentic cookie is
        recorded, so junk never reaches the store.
        """
        if not self._enabled or cookie is None:
            return None
        claims = self._codec.open(cookie, now)
        if claims is None:
            return None
        digest = self.digest(claims, cookie)
        self._revoked.add(digest, claims.expires_at + RETENTION_MARGIN, now)
        try:
            await self._store.revoke(digest, claims.expires_at)
        except StoreUnavailable:
            if len(self._pending) < MAX_REVOKED:
                self._pending[digest] = claims.expires_at
            return "pending"
        return "recorded"

    async def follow(self) -> None:
        """Until cancelled: add every process's revocations to the local set (shared stores)."""
        await self._store.follow_revocations(
            RevocationSink(self._received, self._record_pending, self._attempted)
        )

    def _received(self, digest: str, forget_after: float) -> None:
        self._revoked.add(digest, forget_after, self._clock())

    def _attempted(self, ok: bool) -> None:
        self.followed = ok

    async def _record_pending(self) -> None:
        # Oldest first; each removed only once recorded, so a failure keeps the rest.
        now = self._clock()
        for digest, expires_at in list(self._pending.items()):
            if expires_at + RETENTION_MARGIN > now:
                await self._store.revoke(digest, expires_at)
            del self._pending[digest]
