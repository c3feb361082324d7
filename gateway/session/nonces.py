"""Stateless API challenge nonces (SPEC §6) and per-purpose key derivation.

A nonce is ``base64url(issued_at || random || tag)`` without padding, where
``issued_at`` is 8 bytes of big-endian milliseconds since the epoch, ``random``
is 16 bytes from the OS, and ``tag`` is the first 16 bytes of
``HMAC-SHA256(key, issued_at || random)``.  Issuing needs no storage; checking
needs only the key, so every worker can check any worker's nonces.

A nonce is *single use* only through the store: the code that accepts a
token carrying it calls ``store.consume("nonce", nonce, issuer.expiry(nonce))``.
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import struct
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from verifiers.b64url import b64url_decode, b64url_encode

__all__ = ["MAX_FUTURE_SKEW", "NonceIssuer", "derive_key"]

MAX_FUTURE_SKEW = 30.0  # seconds a nonce may appear to come from the future (SPEC §5)

_TIME_BYTES = 8
_RANDOM_BYTES = 16
_TAG_BYTES = 16
_RAW_BYTES = _TIME_BYTES + _RANDOM_BYTES + _TAG_BYTES
# Unpadded only: a padded spelling of the same nonce would be a second store key.
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{54}")
_HKDF_SALT = b"agegate/hkdf/v1"


def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one ``purpose``, derived from ``master`` with HKDF-SHA256.

    One configured session key thus yields independent keys for cookies,
    nonces and store HMACs: a flaw or leak in one use cannot be replayed
    against another.
    """
    if not master:
        raise ValueError("master key must not be empty")
    if not purpose:
        raise ValueError("purpose must not be empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=purpose.encode("utf-8"))
    return hkdf.derive(master)


class NonceIssuer:
    """Issues and checks API challenge nonces under one key.

    Pass a purpose-specific key, e.g. ``derive_key(session_key, "api-nonce")``.
    """

    __slots__ = ("_key", "_lifetime")

    def __init__(self, key: bytes, *, lifetime: float = 300.0) -> None:
        if len(key) < 16:
            raise ValueError("nonce key must be at least 16 bytes")
        if not (lifetime > 0 and math.isfinite(lifetime)):
            raise ValueError("nonce lifetime must be a positive number of seconds")
        self._key = bytes(key)
        self._lifetime = float(lifetime)

    @property
    def lifetime(self) -> float:
        """Seconds a nonce stays valid after it was issued."""
        return self._lifetime

    def issue(self, now: float) -> str:
        """A fresh nonce stamped with ``now`` (seconds since the epoch)."""
        body = struct.pack(">Q", max(int(now * 1000), 0)) + secrets.token_bytes(_RANDOM_BYTES)
        raw = body + self._tag(body)
        return b64url_encode(raw)

    def check(self, nonce: str, now: float) -> bool:
        """True when ``nonce`` is ours, not older than the lifetime and not from the future.

        Never raises; anything that is not a well-formed nonce is False.
        """
        return self.expiry(nonce, now) is not None

    def expiry(self, nonce: str, now: float) -> float | None:
        """When a valid ``nonce`` stops being valid (seconds since the epoch), else None.

        This is the ``expires_at`` to record the nonce with in the replay
        store.  Never raises.
        """
        issued_at = self._authentic_issued_at(nonce)
        if issued_at is None or not math.isfinite(now):
            return None
        if issued_at - now > MAX_FUTURE_SKEW or now - issued_at > self._lifetime:
            return None
        return issued_at + self._lifetime

    def _authentic_issued_at(self, nonce: object) -> float | None:
        if not isinstance(nonce, str) or not _NONCE_RE.fullmatch(nonce):
            return None
        # Canonical only (no stray low bits in the last character): one nonce
        # must have exactly one spelling, or single use is bypassable.
        try:
            raw = b64url_decode(nonce)
        except ValueError:
            return None
        if len(raw) != _RAW_BYTES:
            return None
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(body)):
            return None
        (millis,) = struct.unpack(">Q", body[:_TIME_BYTES])
        return float(millis) / 1000.0

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, sha256).digest()[:_TAG_BYTES]
