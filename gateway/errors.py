"""The gateway's one exception hierarchy.

Every error agegate raises is an ``AgegateError``.  Library exceptions (PyYAML,
aiohttp, redis, PyJWT, cryptography) are caught where those libraries are
called and re-raised as one of these, so callers never depend on a library's
exception types.  Each class maps to one RFC 9457 problem type and a status::

    AgegateError
    ├── ConfigError            settings invalid (operator error; CLI exit 2)
    ├── PolicyError            policy file invalid (operator error; CLI exit 1)
    ├── BadRequest             request refused before any decision (400 / 421)
    ├── VerificationError      presentation refused (verifiers.base, re-exported)
    ├── StoreUnavailable       replay/rate store unreachable (503, fail closed)
    └── UpstreamError          upstream refused, reset or timed out (502 / 504)

``reason`` is a short machine-readable code used alike in logs, metrics and
problem bodies.  Messages never contain token, cookie or claim values.
"""

from __future__ import annotations

from verifiers.base import AgegateError, VerificationError

__all__ = [
    "AgegateError",
    "BadRequest",
    "ConfigError",
    "PolicyError",
    "StoreUnavailable",
    "UpstreamError",
    "VerificationError",
]


class ConfigError(AgegateError):
    """Settings are invalid; the message names the file, the key and the problem."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        self.source = source
        self.key = key
        where = ": ".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message, reason="config_invalid")


class PolicyError(AgegateError):
    """A policy file is invalid; the message names the file, the rule and the field."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        rule: str | None = None,
        field: str | None = None,
    ):
        self.source = source
        self.rule = rule
        self.field = field
        parts = []
        if source:
            parts.append(source)
        if rule:
            parts.append(f"rule {rule!r}")
        if field:
            parts.append(f"field {field!r}")
        where = ": ".join(parts)
        super().__init__(f"{where}: {message}" if where else message, reason="policy_invalid")


class BadRequest(AgegateError):
    """The request is refused before policy matching (malformed target, wrong host)."""

    def __init__(self, reason: str, detail: str, *, status: int = 400):
        self.status = status
        super().__init__(detail, reason=reason)


class StoreUnavailable(AgegateError):
    """The replay / rate-limit store cannot be reached: new verifications fail closed."""

    def __init__(self, detail: str = "the replay store is unavailable"):
        super().__init__(detail, reason="store_unavailable")


class UpstreamError(AgegateError):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, reason: str, detail: str, *, status: int = 502):
        self.status = status
        super().__init__(detail, reason=reason)
