"""Strict, bounded CBOR decoding for wallet responses, and typed accessors over the result.

A DeviceResponse comes from the internet, so the reader is narrower than
CBOR itself: a size cap, a nesting cap, no indefinite lengths, no duplicate
map keys, and none of cbor2's extension tags (shared references can build a
cyclic object, string references, bignums, sets, regexes, …).  Tags 0 (date
text), 1 (epoch) and 1004 (full-date) keep cbor2's decoders; tag 24
(embedded CBOR, ``bstr .cbor``) and 18 (COSE_Sign1) stay :class:`cbor2.CBORTag`
so the embedded bytes are kept exactly as received, which the digests and
signatures are computed over.  Every failure is ``VerificationError("malformed")``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import cbor2

from verifiers.base import VerificationError

__all__ = [
    "EMBEDDED_CBOR",
    "MAX_BYTES",
    "MAX_DEPTH",
    "as_bytes",
    "as_datetime",
    "as_list",
    "as_map",
    "as_text",
    "decode",
    "embedded",
    "encode",
    "malformed",
]

MAX_BYTES = 64 * 1024  # an age-only DeviceResponse with a 3-cert chain is a few KiB
MAX_DEPTH = 16  # DeviceResponse nests ~8 deep; tag-24 payloads are decoded separately
EMBEDDED_CBOR = 24

# cbor2's built-in semantic decoders that a DeviceResponse never needs.  Each is
# replaced by one that refuses, so an attacker cannot reach them at all.
_REFUSED_TAGS = (2, 3, 4, 5, 25, 28, 29, 30, 32, 33, 34, 35, 36, 37, 100, 256, 258, 260, 261,
                 262, 263, 270, 271, 55799)  # fmt: skip


def malformed(detail: str) -> NoReturn:
    """Raise the one error every structural problem maps to."""
    raise VerificationError("malformed", f"malformed mdoc: {detail}")


def _refuse_tag(*_: object) -> NoReturn:
    raise ValueError("CBOR tag not allowed here")


_SEMANTIC_DECODERS: dict[int, Any] = dict.fromkeys(_REFUSED_TAGS, _refuse_tag)


def decode(data: bytes) -> Any:
    """One complete CBOR item from ``data`` (nothing may follow it), under the caps."""
    if not isinstance(data, bytes | bytearray | memoryview):
        malformed("expected CBOR bytes")
    if len(data) > MAX_BYTES:
        malformed("too large")
    if not data:
        malformed("empty")
    stream = io.BytesIO(bytes(data))
    try:
        decoder = cbor2.CBORDecoder(
            stream,
            semantic_decoders=_SEMANTIC_DECODERS,
            max_depth=MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
        value = decoder.decode()
    # cbor2 raises CBORDecodeError for most bad input, but its hooks and value
    # constructors can surface ValueError/TypeError/OverflowError/RecursionError.
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, EOFError,
            MemoryError, IndexError, KeyError, UnicodeError) as error:  # fmt: skip
        raise VerificationError("malformed", "malformed mdoc: not valid CBOR") from error
    if stream.tell() != len(data):
        malformed("trailing bytes after the CBOR item")
    return value


def encode(value: Any) -> bytes:
    """Deterministic-enough CBOR for values we build (definite lengths, keys as given)."""
    return cbor2.dumps(value)


def embedded(value: Any, what: str) -> tuple[bytes, Any]:
    """A tag-24 item: its embedded bytes (as received) and their decoded value."""
    if not isinstance(value, cbor2.CBORTag) or value.tag != EMBEDDED_CBOR:
        malformed(f"{what}: expected embedded CBOR (tag 24)")
    raw = value.value
    if not isinstance(raw, bytes):
        malformed(f"{what}: tag 24 must wrap a byte string")
    return raw, decode(raw)


def as_map(value: Any, what: str) -> Mapping[Any, Any]:
    """``value`` if it is a CBOR map, else ``malformed``."""
    if not isinstance(value, Mapping):
        malformed(f"{what}: expected a map")
    return value


def as_list(value: Any, what: str) -> Sequence[Any]:
    """``value`` if it is a CBOR array (cbor2 gives a tuple inside tags), else ``malformed``."""
    if not isinstance(value, list | tuple):
        malformed(f"{what}: expected an array")
    return value


def as_text(value: Any, what: str) -> str:
    """``value`` if it is a CBOR text string, else ``malformed``."""
    if not isinstance(value, str):
        malformed(f"{what}: expected a text string")
    return value


def as_bytes(value: Any, what: str) -> bytes:
    """``value`` if it is a CBOR byte string, else ``malformed``."""
    if not isinstance(value, bytes):
        malformed(f"{what}: expected a byte string")
    return value


def as_datetime(value: Any, what: str) -> datetime:
    """A ``tdate`` (tag 0) as an aware datetime, else ``malformed``."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        malformed(f"{what}: expected a date-time (tag 0)")
    return value
