"""Reading fields from an ASGI header list (lower-case names, bytes values)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["header_value", "header_values"]


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case) in ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header ``name`` (lower-case) in ``headers``, in order."""
    return [value for key, value in headers if key == name]
