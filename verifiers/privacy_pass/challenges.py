"""Stateless TokenChallenges: every worker issues and recognises the same ones without a store.

A redeemed Token carries only ``challenge_digest = SHA-256(TokenChallenge)``,
never the challenge, so the origin must be able to *recompute* every
challenge it would still accept.  The redemption context is therefore a PRF
of something the origin knows again at redemption time:

- API clients (``Authorization: PrivateToken``): ``HMAC(k, "api" || window)``
  for the current 5-minute window; the current and the previous windows are
  accepted, so a challenge lives 5 to 10 minutes.
- Browser flow: ``HMAC(k, "browser" || nonce)`` where ``nonce`` is the
  gateway's challenge-cookie nonce, so the token is bound to the visitor's
  own cookie (CSRF and token-injection defence, as ``nonce`` is for age tokens).

``k`` is derived from the gateway secret with the verifier's name and issuer,
so two verifiers never accept each other's challenges.  The contexts are the
same for every client in a window: they carry no identifier, so they cannot
link a client's issuance to its redemption (RFC 9576 §3.4 asks for exactly
that).  Double spending is stopped by the token nonce in the replay store.
"""

from __future__ import annotations

import hashlib
import hmac

from verifiers.privacy_pass.structs import TOKEN_TYPE_BLIND_RSA, TokenChallenge

__all__ = ["WINDOW", "ChallengeMaker"]

WINDOW = 300  # seconds per API redemption-context window


class ChallengeMaker:
    """Builds and recognises the TokenChallenges of one verifier."""

    def __init__(
        self,
        secret: bytes,
        *,
        label: str,
        issuer_name: str,
        origin_info: tuple[str, ...],
        per_challenge: bool,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the gateway secret must have at least 32 bytes")
        self._key = hmac.new(
            secret, b"agegate privacy-pass context\0" + label.encode(), hashlib.sha256
        ).digest()
        self.issuer_name = issuer_name
        self.origin_info = origin_info
        self.per_challenge = per_challenge

    def _context(self, purpose: bytes, value: bytes) -> bytes:
        if not self.per_challenge:
            return b""
        return hmac.new(self._key, purpose + b"\0" + value, hashlib.sha256).digest()[:32]

    def _challenge(self, context: bytes) -> TokenChallenge:
        return TokenChallenge(TOKEN_TYPE_BLIND_RSA, self.issuer_name, context, self.origin_info)

    def for_api(self, now: float) -> TokenChallenge:
        """The challenge sent in a 401 at time ``now``."""
        return self._challenge(self._context(b"api", str(int(now // WINDOW)).encode()))

    def for_browser(self, nonce: str) -> TokenChallenge:
        """The challenge bound to one browser challenge cookie's nonce."""
        return self._challenge(self._context(b"browser", nonce.encode("utf-8", "replace")))

    def accepted_digests(self, now: float, nonce: str | None) -> list[bytes]:
        """The ``challenge_digest`` values a token may carry right now."""
        if nonce is not None:
            return [self.for_browser(nonce).digest()]
        window = int(now // WINDOW)
        return [
            self._challenge(self._context(b"api", str(w).encode())).digest()
            for w in (window, window - 1)
        ]
