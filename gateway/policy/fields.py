"""Field parsers shared by the policy loader and the embedded-test loader.

Each takes the raw YAML value and returns the parsed one or raises
:class:`FieldError` saying what was expected and what was found; the caller
adds the file, the rule and the field (see :class:`Where`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gateway.errors import PolicyError
from verifiers.base import AssuranceLevel
from verifiers.config import did_you_mean, parse_duration

__all__ = [
    "KNOWN_METHODS",
    "FieldError",
    "Where",
    "check_keys",
    "parse_age",
    "parse_ages",
    "parse_assurance",
    "parse_jurisdiction_code",
    "parse_ttl",
    "string_list",
]

#: Methods a rule or test may name: RFC 9110, PATCH (RFC 5789) and WebDAV.
KNOWN_METHODS = frozenset(
    {
        *("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"),
        *("PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT"),
        *("SEARCH", "MKCALENDAR", "MKACTIVITY", "CHECKOUT", "MERGE"),
    }
)

# ISO 3166-1 alpha-2, optionally with an ISO 3166-2 subdivision ("US-UT").
_JURISDICTION = re.compile(r"\A[A-Z]{2}(?:-[A-Z0-9]{1,3})?\Z")


class FieldError(ValueError):
    """A value is wrong; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Where:
    """Where in the file a value sits: the file, and a rule or an embedded test."""

    source: str
    rule: str | None = None  # rule name, or "#3" for a rule without a usable name
    test: int | None = None  # 1-based number of an embedded test

    def error(self, field: str | None, message: str) -> PolicyError:
        """A PolicyError naming the file, the rule (or test) and ``field``."""
        if self.test is None:
            return PolicyError(message, source=self.source, rule=self.rule, field=field)
        where = f"test #{self.test}: " + (f"field {field!r}: " if field else "")
        error = PolicyError(where + message, source=self.source)
        error.field = field
        return error

    def mapping(
        self, value: object, field: str | None, allowed: Collection[str]
    ) -> Mapping[str, object]:
        """``value`` as a mapping with only ``allowed`` keys, or a PolicyError."""
        if not isinstance(value, Mapping):
            raise self.error(field, f"expected a mapping of keys, got {describe(value)}")
        try:
            check_keys(value, allowed)
        except FieldError as exc:
            raise self.error(field, str(exc)) from None
        return value


def describe(value: object) -> str:
    """A short, safe rendering of a wrong value for messages."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_keys(value: Mapping[object, object], allowed: Collection[str]) -> None:
    """Raise FieldError for the first key not in ``allowed`` (with a suggestion)."""
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            hint = did_you_mean(key, allowed) if isinstance(key, str) else ""
            names = ", ".join(sorted(allowed))
            raise FieldError(f"unknown key {describe(key)}{hint} (allowed: {names})")


def parse_age(value: object) -> int:
    """A whole number of years from 1 to 99."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        raise FieldError(f"expected a whole number from 1 to 99, got {describe(value)}")
    return value


def parse_ages(value: object) -> frozenset[int]:
    """A list of ages (thresholds)."""
    if not isinstance(value, list):
        raise FieldError(f"expected a list of ages such as [18], got {describe(value)}")
    return frozenset(parse_age(item) for item in value)


def parse_assurance(value: object) -> AssuranceLevel:
    """An assurance level name (asserted, basic, standard, enhanced, strict)."""
    if not isinstance(value, str):
        allowed = ", ".join(level.label for level in AssuranceLevel)
        raise FieldError(f"expected one of {allowed}, got {describe(value)}")
    try:
        return AssuranceLevel.parse(value)
    except ValueError as exc:
        raise FieldError(str(exc)) from None


def parse_ttl(value: object) -> float:
    """A positive, finite duration such as ``1h`` or ``900s``."""
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise FieldError(f"expected a positive duration such as 1h, got {describe(value)}")
    return seconds


def parse_jurisdiction_code(value: object) -> str:
    """An ISO 3166 code (``US``, ``GB``, ``US-UT``), upper-cased."""
    code = value.strip().upper() if isinstance(value, str) else None
    if code is None or not _JURISDICTION.match(code):
        raise FieldError(
            f"expected a country code such as US or a subdivision such as US-UT, "
            f"got {describe(value)}"
        )
    return code


def string_list(value: object, what: str) -> tuple[str, ...]:
    """A non-empty list of non-empty strings (``what`` names one item in messages)."""
    if isinstance(value, str):
        raise FieldError(f"expected a list of {what}s, got a single string; write [{value}]")
    if not isinstance(value, list) or not value:
        raise FieldError(f"expected a non-empty list of {what}s, got {describe(value)}")
    items = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise FieldError(f"expected each {what} to be a non-empty string, got {describe(item)}")
        items.append(item.strip())
    return tuple(items)
