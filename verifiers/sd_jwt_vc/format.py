"""The SD-JWT serialization (RFC 9901, formerly draft-ietf-oauth-selective-disclosure-jwt).

A presentation is ``<issuer JWT>~<disclosure>~…~<KB-JWT>``.  This module
splits it, decodes each disclosure, and resolves the disclosures against the
``_sd`` digests of the signed payload, all without trusting anything: the
caller checks the issuer signature first and only then uses
:func:`resolve_disclosures`.  Pure functions; property-tested.

The rules that make a presentation refused here (reason codes):

- not three-or-more ``~``-separated parts of bounded size, a disclosure that
  is not base64url JSON ``[salt, name, value]`` or ``[salt, value]``, a salt
  that is not a string: ``malformed``;
- a disclosure whose digest is not in the payload, or a digest disclosed
  twice: ``digest_mismatch`` (a tampered or foreign disclosure);
- a disclosed name that is ``_sd`` / ``...`` or that the payload already
  holds in clear: ``malformed`` (RFC 9901 §7.1 step 3).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verifiers.b64url import b64url_decode, b64url_encode
from verifiers.base import VerificationError
from verifiers.token_profile import STRICT_JSON

__all__ = [
    "MAX_DISCLOSURES",
    "MAX_PRESENTATION_LENGTH",
    "Disclosure",
    "SdJwt",
    "digest",
    "parse_presentation",
    "resolve_disclosures",
    "sd_hash",
]

MAX_PRESENTATION_LENGTH = 32 * 1024  # an issuer JWT with an x5c chain, a few disclosures, a KB-JWT
MAX_DISCLOSURES = 16  # an age presentation needs one or two
_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One disclosure as sent (``encoded``) and as read; ``name`` None for an array element."""

    encoded: str
    name: str | None
    value: Any


@dataclass(frozen=True, slots=True)
class SdJwt:
    """A presentation split into its parts (nothing verified yet)."""

    issuer_jwt: str
    disclosures: tuple[Disclosure, ...]
    kb_jwt: str | None  # None: the presentation ends with "~" (no key binding)
    signed_part: str  # everything up to and including the last "~": what sd_hash covers


def digest(encoded: str) -> str:
    """``base64url(SHA-256(ASCII(encoded)))``: the digest of a disclosure (``_sd_alg: sha-256``)."""
    return b64url_encode(hashlib.sha256(encoded.encode("ascii")).digest())


def sd_hash(signed_part: str) -> str:
    """The KB-JWT's ``sd_hash``: the same digest over the presentation up to the last ``~``."""
    return digest(signed_part)


def _disclosure(encoded: str) -> Disclosure:
    try:
        value = STRICT_JSON.decode(b64url_decode(encoded, canonical=False).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise VerificationError("malformed", "a disclosure is not base64url JSON") from error
    if not isinstance(value, list) or len(value) not in (2, 3) or not isinstance(value[0], str):
        raise VerificationError("malformed", "a disclosure is not [salt, (name,) value]")
    if len(value) == 2:
        return Disclosure(encoded, None, value[1])
    name = value[1]
    if not isinstance(name, str) or name in ("_sd", "..."):
        raise VerificationError("malformed", "a disclosure's claim name is not allowed")
    return Disclosure(encoded, name, value[2])


def parse_presentation(text: object) -> SdJwt:
    """Split ``<JWT>~<d1>~…~<KB-JWT>``; ``malformed`` for anything else."""
    if not isinstance(text, str) or not text or len(text) > MAX_PRESENTATION_LENGTH:
        raise VerificationError("malformed", "not an SD-JWT of acceptable size")
    if not text.isascii():
        raise VerificationError("malformed", "an SD-JWT is ASCII")
    parts = text.split("~")
    if len(parts) < 2:
        raise VerificationError("malformed", "not an SD-JWT (no '~')")
    issuer_jwt, *middle, last = parts
    if len(middle) > MAX_DISCLOSURES:
        raise VerificationError("malformed", "too many disclosures")
    if any(not part for part in middle) or issuer_jwt.count(".") != 2:
        raise VerificationError("malformed", "not an SD-JWT (empty part)")
    disclosures = tuple(_disclosure(part) for part in middle)
    signed_part = text[: len(text) - len(last)]
    return SdJwt(issuer_jwt, disclosures, last or None, signed_part)


def resolve_disclosures(
    payload: Mapping[str, Any], disclosures: Sequence[Disclosure]
) -> dict[str, Any]:
    """The payload with every disclosure put in its place and ``_sd`` / ``_sd_alg`` removed.

    Each disclosure must match exactly one digest of the (signed) payload or of
    a value disclosed before it; undisclosed digests simply vanish.
    """
    by_digest: dict[str, Disclosure] = {}
    for item in disclosures:
        key = digest(item.encoded)
        if key in by_digest:
            raise VerificationError("digest_mismatch", "a disclosure is sent twice")
        by_digest[key] = item
    used: set[str] = set()
    result = _resolve(dict(payload), by_digest, used, 0)
    if used != set(by_digest):
        raise VerificationError("digest_mismatch", "a disclosure matches no digest in the token")
    if not isinstance(result, dict):  # pragma: no cover - a dict resolves to a dict
        raise VerificationError("malformed", "payload is not an object")
    result.pop("_sd_alg", None)
    return result


def _take(key: object, by_digest: Mapping[str, Disclosure], used: set[str]) -> Disclosure | None:
    if not isinstance(key, str):
        raise VerificationError("malformed", "a digest is not a string")
    found = by_digest.get(key)
    if found is None:
        return None
    if key in used:
        raise VerificationError("digest_mismatch", "a digest appears twice in the token")
    used.add(key)
    return found


def _resolve(value: Any, by_digest: Mapping[str, Disclosure], used: set[str], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise VerificationError("malformed", "the token is nested too deeply")
    if isinstance(value, dict):
        digests = value.pop("_sd", [])
        if not isinstance(digests, list):
            raise VerificationError("malformed", "_sd is not an array")
        out = {k: _resolve(v, by_digest, used, depth + 1) for k, v in value.items()}
        for key in digests:
            found = _take(key, by_digest, used)
            if found is None:
                continue
            if found.name is None:
                raise VerificationError("malformed", "an array disclosure is used for a claim")
            if found.name in out:
                raise VerificationError("malformed", "a disclosed claim is also in clear")
            out[found.name] = _resolve(found.value, by_digest, used, depth + 1)
        return out
    if isinstance(value, list):
        items: list[Any] = []
        for element in value:
            if isinstance(element, dict) and set(element) == {"..."}:
                found = _take(element["..."], by_digest, used)
                if found is None:
                    continue
                if found.name is not None:
                    raise VerificationError("malformed", "a claim disclosure is used in an array")
                items.append(_resolve(found.value, by_digest, used, depth + 1))
            else:
                items.append(_resolve(element, by_digest, used, depth + 1))
        return items
    return value
