"""base64url (RFC 4648 §5) in one place, for the gateway and the verifiers alike.

Decoding is strict by default: the URL-safe alphabet only (``base64``'s own
decoder silently drops anything else), no ``=`` padding, and one canonical
spelling per byte string (no stray low bits in the last character), so a
token or nonce cannot be respelled to slip past a single-use check.  Callers
whose spec tolerates padding (session keys, SPEC §4; Privacy Pass, RFC 9577)
or that never compare spellings say so with the keyword arguments.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["b64url_decode", "b64url_encode"]

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes, *, pad: bool = False) -> str:
    """``data`` in base64url, without ``=`` padding unless ``pad``."""
    text = base64.urlsafe_b64encode(data)
    return (text if pad else text.rstrip(b"=")).decode("ascii")


def b64url_decode(
    text: str, *, padding: bool = False, canonical: bool = True, limit: int | None = None
) -> bytes:
    """The bytes ``text`` spells in base64url; ``ValueError`` for anything else.

    ``padding`` tolerates up to two trailing ``=`` (their count is not
    checked); ``canonical`` refuses a spelling that is not the one
    :func:`b64url_encode` would give; ``limit`` bounds ``len(text)``.
    """
    if limit is not None and len(text) > limit:
        raise ValueError("base64url text too long")
    body = text.rstrip("=") if padding else text
    if len(text) - len(body) > 2 or not _ALPHABET.fullmatch(body):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error:
        raise ValueError("not base64url") from None
    if canonical and b64url_encode(raw) != body:
        raise ValueError("not canonical base64url")
    return raw
