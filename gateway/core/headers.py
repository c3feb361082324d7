"""Reading fields from an ASGI header list (lower-case names, bytes values), and the
fixed blocks of fields the gateway adds to one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["EMPTY_BLOCK", "HeaderBlock", "header_value", "header_values"]


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case) in ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header ``name`` (lower-case) in ``headers``, in order."""
    return [value for key, value in headers if key == name]


class HeaderBlock(tuple[tuple[bytes, bytes], ...]):
    """Header fields the gateway adds, as ``(name, value)`` pairs, with their wire form.

    A tuple like any header list here.  ``wire`` is ``name: value\r\n`` for each
    field, in order, made once: an upstream request head copies the block whole
    instead of joining its fields again on every request.  The usual blocks are
    made once and kept with what they were made for: the forwarding headers of
    a client address, scheme and host, and a rule's ``X-Agegate-*`` headers.
    """

    wire: bytes

    def __new__(cls, fields: Iterable[tuple[bytes, bytes]] = ()) -> HeaderBlock:
        block = super().__new__(cls, fields)
        block.wire = b"".join(b"%s: %s\r\n" % field for field in block)
        return block


EMPTY_BLOCK = HeaderBlock()
