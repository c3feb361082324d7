"""The local revoked set and SessionRevocation (gateway/session/revocation.py), without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import StoreUnavailable
from gateway.policy.facts import SessionClaims
from gateway.session.codec import SESSION_COOKIE, SessionCodec, new_session_id
from gateway.session.nonces import derive_key
from gateway.session.revocation import REVOKED_NAMESPACE, RevokedSet, SessionRevocation
from gateway.stores.base import RETENTION_MARGIN, RevocationSink, record_digest
from gateway.stores.memory import MemoryStore
from verifiers.base import AssuranceLevel

SESSION_KEY = b"\x02" * 32
STORE_KEY = derive_key(SESSION_KEY, "store-hmac")
AUDIENCE = "http://localhost:8080"
NOW = 1_750_000_000.0


def _claims(ttl: float = 600) -> SessionClaims:
    return SessionClaims(
        frozenset({18}), frozenset(), AssuranceLevel.BASIC, "t", NOW, NOW + ttl, new_session_id()
    )


class FlakyStore(MemoryStore):
    """A memory store whose revoke() fails while ``down``; counts is_revoked() calls."""

    def __init__(self) -> None:
        super().__init__(STORE_KEY, clock=lambda: NOW)
        self.down = False
        self.asked = 0

    async def revoke(self, digest: str, expires_at: float) -> None:
        if self.down:
            raise StoreUnavailable("down")
        await super().revoke(digest, expires_at)

    async def is_revoked(self, digest: str) -> bool:
        self.asked += 1
        if self.down:
            raise StoreUnavailable("down")
        return await super().is_revoked(digest)


def _revocation(store: MemoryStore, **kwargs: object) -> tuple[SessionRevocation, SessionCodec]:
    codec = SessionCodec((SESSION_KEY,), AUDIENCE)
    revocation = SessionRevocation(
        codec,
        store,
        STORE_KEY,
        enabled=True,
        clock=lambda: NOW,
        **kwargs,  # type: ignore[arg-type]
    )
    return revocation, codec


def test_digest_is_the_store_record_digest_of_the_session_id() -> None:
    revocation, codec = _revocation(MemoryStore(STORE_KEY))
    claims = _claims()
    cookie = codec.seal(claims)
    assert claims.session_id is not None
    expected = record_digest(STORE_KEY, REVOKED_NAMESPACE, claims.session_id)
    assert revocation.digest(claims, cookie) == expected
    assert revocation.digest(claims, cookie) == expected  # cached, same answer
    assert claims.session_id not in expected


async def test_logout_refuses_the_cookie_in_this_process_and_records_it() -> None:
    store = FlakyStore()
    revocation, codec = _revocation(store)
    claims = _claims()
    cookie = codec.seal(claims)
    assert await revocation.open(cookie, NOW) == claims
    assert await revocation.revoke(cookie, NOW) == "recorded"
    assert await revocation.open(cookie, NOW) is None
    assert await store.is_revoked(revocation.digest(claims, cookie))
    assert store.asked == 1  # only that check above: opening never asked the store


async def test_nothing_to_revoke_without_a_valid_cookie() -> None:
    revocation, _ = _revocation(MemoryStore(STORE_KEY))
    assert await revocation.revoke(None, NOW) is None
    assert await revocation.revoke("v1.junk", NOW) is None
    assert not revocation.revoked


async def test_a_logout_during_an_outage_is_recorded_on_the_next_subscription() -> None:
    store = FlakyStore()
    revocation, codec = _revocation(store)
    claims = _claims()
    cookie = codec.seal(claims)
    store.down = True
    assert await revocation.revoke(cookie, NOW) == "pending"
    assert await revocation.open(cookie, NOW) is None  # refused here at once
    store.down = False
    sink: list[RevocationSink] = []

    async def follow(given_sink: RevocationSink) -> None:
        sink.append(given_sink)

    store.follow_revocations = follow  # type: ignore[method-assign]
    await revocation.follow()
    await sink[0].subscribed()
    assert await store.is_revoked(revocation.digest(claims, cookie))


def test_revoked_set_forgets_at_expiry() -> None:
    revoked = RevokedSet()
    revoked.add("d1", NOW + 10, NOW)
    revoked.add("d0", NOW - 1, NOW)  # already past: not kept
    assert revoked.holds("d1", NOW + 9.9) and not revoked.holds("d1", NOW + 10)
    assert not revoked.holds("d0", NOW)
    revoked.add("d2", NOW + 20, NOW + 15)  # adding trims what expired
    assert len(revoked) == 1


async def test_past_the_bound_the_soonest_expiring_entry_is_asked_of_the_store() -> None:
    store = FlakyStore()
    revocation, codec = _revocation(store, max_entries=2)
    cookies = [codec.seal(_claims(ttl)) for ttl in (100, 200, 300)]
    for cookie in cookies:
        assert await revocation.revoke(cookie, NOW) == "recorded"
    assert len(revocation.revoked) == 2
    assert revocation.revoked.lossy(NOW)
    asked = store.asked
    # The dropped one (soonest expiry) is still refused: the store is asked.
    assert all([await revocation.open(cookie, NOW) is None for cookie in cookies])
    assert store.asked == asked + 1
    # Store down while the set is lossy: an unknown session cannot be cleared.
    store.down = True
    with pytest.raises(StoreUnavailable):
        await revocation.open(codec.seal(_claims()), NOW)
    # Once the dropped entry would have expired, the set is exact again.
    later = NOW + 100 + RETENTION_MARGIN
    assert not revocation.revoked.lossy(later)


@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.floats(0, 100)), min_size=1, max_size=40),
    st.integers(1, 5),
)
def test_revoked_set_never_forgets_silently(entries: list[tuple[str, float]], bound: int) -> None:
    """Bounded, and anything added and still live is held, or the set says it is lossy."""
    revoked = RevokedSet(bound)
    latest: dict[str, float] = {}
    for digest, ttl in entries:
        forget_after = NOW + ttl
        revoked.add(digest, forget_after, NOW)
        if forget_after > NOW:
            latest[digest] = max(latest.get(digest, 0.0), forget_after)
        assert len(revoked) <= bound
    for digest, forget_after in latest.items():
        for now in (NOW, forget_after - 0.001):
            if now < forget_after:
                assert revoked.holds(digest, now) or revoked.lossy(now)


def test_revoked_set_refuses_a_zero_bound() -> None:
    with pytest.raises(ValueError):
        RevokedSet(0)


async def test_disabled_revocation_neither_checks_nor_records() -> None:
    store = FlakyStore()
    codec = SessionCodec((SESSION_KEY,), AUDIENCE)
    revocation = SessionRevocation(codec, store, STORE_KEY, enabled=False)
    cookie = codec.seal(_claims())
    assert await revocation.revoke(cookie, NOW) is None
    assert await revocation.open(cookie, NOW) is not None
    assert store.asked == 0 and len(store) == 0


OLD_STORE_KEY = derive_key(b"\x03" * 32, "store-hmac")


async def test_a_session_revoked_under_a_previous_key_is_refused() -> None:
    # A node whose first key was the old one recorded the logout under its derived key.
    revocation, codec = _revocation(MemoryStore(STORE_KEY), previous_keys=[OLD_STORE_KEY])
    claims, other = _claims(), _claims()
    cookie, other_cookie = codec.seal(claims), codec.seal(other)
    assert claims.session_id is not None
    assert revocation.digests(claims, cookie) == (
        record_digest(STORE_KEY, REVOKED_NAMESPACE, claims.session_id),
        record_digest(OLD_STORE_KEY, REVOKED_NAMESPACE, claims.session_id),
    )
    heard = record_digest(OLD_STORE_KEY, REVOKED_NAMESPACE, claims.session_id)
    revocation._received(heard, NOW + 600)  # as the follower hands it over
    assert await revocation.open(cookie, NOW) is None
    assert await revocation.open(other_cookie, NOW) == other
    # A logout here is still recorded under the first key only.
    assert revocation.digest(other, other_cookie) == revocation.digests(other, other_cookie)[0]


async def test_previous_keys_are_asked_of_the_store_while_the_set_is_lossy() -> None:
    store = FlakyStore()
    revocation, codec = _revocation(store, max_entries=1, previous_keys=[OLD_STORE_KEY])
    claims = _claims(100)
    cookie = codec.seal(claims)
    assert claims.session_id is not None
    await store.revoke(
        record_digest(OLD_STORE_KEY, REVOKED_NAMESPACE, claims.session_id), NOW + 100
    )
    for ttl in (200, 300):  # two logouts overflow the set of one: it becomes lossy
        assert await revocation.revoke(codec.seal(_claims(ttl)), NOW) == "recorded"
    assert revocation.revoked.lossy(NOW)
    asked = store.asked
    assert await revocation.open(cookie, NOW) is None
    assert store.asked == asked + 2  # the first key's digest, then the previous one's


async def test_use_previous_keys_applies_to_sessions_already_seen() -> None:
    revocation, codec = _revocation(MemoryStore(STORE_KEY))
    claims = _claims()
    cookie = codec.seal(claims)
    assert claims.session_id is not None
    revocation._received(
        record_digest(OLD_STORE_KEY, REVOKED_NAMESPACE, claims.session_id), NOW + 600
    )
    assert await revocation.open(cookie, NOW) == claims  # digest cached under one key
    revocation.use_previous_keys([OLD_STORE_KEY])
    assert await revocation.open(cookie, NOW) is None


async def test_an_id_less_cookie_is_not_kept_by_its_digest_cache() -> None:
    # Cookie text outlives its request only in the codec's own cache (issue 15).
    store = MemoryStore(STORE_KEY)
    revocation, codec = _revocation(store)
    legacy = SessionClaims(frozenset({18}), frozenset(), AssuranceLevel.BASIC, "t", NOW, NOW + 600)
    cookie = codec.seal(legacy)
    first = revocation.digest(legacy, cookie)
    assert revocation.digest(legacy, cookie) == first  # same name, computed again
    assert cookie not in revocation._digests
    assert await revocation.revoke(cookie, NOW) == "recorded"
    assert await revocation.open(cookie, NOW) is None
    assert cookie not in revocation._digests


async def test_peek_refuses_a_session_revoked_under_a_previous_key() -> None:
    # The fast path decides from peek(): a logout heard under the old key must stop it too.
    revocation, codec = _revocation(MemoryStore(STORE_KEY), previous_keys=[OLD_STORE_KEY])
    claims = _claims()
    cookie = codec.seal(claims)
    assert claims.session_id is not None
    assert await revocation.open(cookie, NOW) == claims  # opened, so peek() can see it
    assert revocation.peek(cookie, NOW) == claims
    revocation._received(
        record_digest(OLD_STORE_KEY, REVOKED_NAMESPACE, claims.session_id), NOW + 600
    )
    assert revocation.peek(cookie, NOW) is None
    assert await revocation.open(cookie, NOW) is None


async def test_peek_header_forgets_kept_headers_with_a_key_change_and_at_expiry() -> None:
    # Revocation reads the codec's kept headers itself: a new key ring must empty what
    # it reads (as it empties the codec's cache), and expiry is tested on each hit.
    revocation, codec = _revocation(MemoryStore(STORE_KEY))
    claims = _claims(ttl=10)
    cookie = codec.seal(claims)
    header = f"{SESSION_COOKIE}={cookie}".encode()
    assert await revocation.open(cookie, NOW) == claims
    assert revocation.peek_header(header, NOW) == claims  # kept from here on
    assert revocation.peek_header(header, NOW + 9.5) == claims
    assert revocation.peek_header(header, NOW + 10) is None
    codec.use_keys((b"\x03" * 32, SESSION_KEY))
    assert header not in codec.alone_claims
    assert revocation.peek_header(header, NOW) is None  # until the cookie is opened again


async def test_peek_header_refuses_a_revoked_session_as_peek_does() -> None:
    # The fast path's whole-header lookup must not outlive a logout either.
    revocation, codec = _revocation(MemoryStore(STORE_KEY), previous_keys=[OLD_STORE_KEY])
    claims = _claims()
    cookie = codec.seal(claims)
    header = f"{SESSION_COOKIE}={cookie}".encode()
    assert claims.session_id is not None
    assert await revocation.open(cookie, NOW) == claims
    assert revocation.peek_header(header, NOW) == claims
    revocation._received(
        record_digest(OLD_STORE_KEY, REVOKED_NAMESPACE, claims.session_id), NOW + 600
    )
    assert revocation.peek_header(header, NOW) is None
    assert revocation.peek(cookie, NOW) is None
