"""Server-side logout: opening a session cookie also asks whether it was logged out.

A cookie is self-contained, so clearing it in one browser leaves every copy
valid until it expires.  With ``session_revocation`` on (the default),
``POST /.agegate/logout`` records the session's id in the store until the
session would have expired anyway (plus the store's retention margin), and
every check of a session — proxy mode, forward-auth, ``/.agegate/status`` and
the verify page — asks the store whether that id was revoked: one ``EXISTS``
with Redis, a dict lookup in memory.  There is no local cache of "not
revoked": a revoked copy fails on the very next request, on every worker
sharing the store.

The record's key is the store's usual HMAC of the id (never the id, never the
cookie).  A cookie sealed before session ids existed is revoked by the HMAC of
its whole value instead, so an upgrade neither logs anyone out nor leaves an
old cookie unrevocable.

When the store cannot answer, :class:`~gateway.errors.StoreUnavailable`
propagates: the caller refuses (503), because a session whose revocation
cannot be checked may be one that was logged out.  Operators who prefer
availability over revocation turn the setting off; then the store is never on
a session's path and logout only clears the browser's cookie.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.policy.facts import SessionClaims
from gateway.session import SessionCodec
from gateway.stores import Store

__all__ = ["LEGACY_NAMESPACE", "REVOKED_NAMESPACE", "SessionRevocation"]

REVOKED_NAMESPACE = "session-revoked"
LEGACY_NAMESPACE = "session-cookie-revoked"


def _record(claims: SessionClaims, cookie: str) -> tuple[str, str]:
    """What to record for a session: its id, or for an id-less cookie the cookie itself."""
    if claims.session_id is not None:
        return REVOKED_NAMESPACE, claims.session_id
    return LEGACY_NAMESPACE, cookie


class SessionRevocation:
    """Opens session cookies, refusing revoked ones; revokes them on logout."""

    __slots__ = ("_codec", "_enabled", "_on_revoked", "_store")

    def __init__(
        self,
        codec: SessionCodec,
        store: Store,
        *,
        enabled: bool,
        on_revoked: Callable[[], None] | None = None,
    ) -> None:
        self._codec = codec
        self._store = store
        self._enabled = enabled
        self._on_revoked = on_revoked

    @property
    def enabled(self) -> bool:
        """True when logouts are recorded and every session check consults the store."""
        return self._enabled

    async def open(self, cookie: str | None, now: float) -> SessionClaims | None:
        """The claims of a fresh, authentic, not revoked cookie; ``None`` otherwise.

        Raises :class:`~gateway.errors.StoreUnavailable` when revocation is on
        and the store cannot say whether this session was revoked.
        """
        claims = self._codec.open(cookie, now)
        if claims is None or not self._enabled or cookie is None:
            return claims
        if await self._store.recorded(*_record(claims, cookie)):
            if self._on_revoked is not None:
                self._on_revoked()
            return None
        return claims

    async def revoke(self, cookie: str | None, now: float) -> bool:
        """Record the cookie's session as revoked; False when there is nothing to revoke.

        Only a fresh, authentic cookie is recorded (junk never reaches the store),
        until the session's own expiry.  Raises ``StoreUnavailable``.
        """
        if not self._enabled or cookie is None:
            return False
        claims = self._codec.open(cookie, now)
        if claims is None:
            return False
        namespace, value = _record(claims, cookie)
        # consume() is "record until": False only means another logout got there first.
        await self._store.consume(namespace, value, claims.expires_at)
        return True
