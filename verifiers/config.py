"""Small parsers for configuration values, shared by the gateway and verifier plug-ins.

They raise ``ValueError`` with a message that says what was expected; callers
add the file and key to it.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["did_you_mean", "optional_duration", "parse_duration", "provider_url", "string_setting"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """``"; did you mean 'policy'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def parse_duration(value: object) -> float:
    """Seconds from ``300``, ``"300s"``, ``"5m"``, ``"1h"``, ``"1d"`` or ``"250ms"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 300s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 300s, 5m or 1h, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def optional_duration(config: Mapping[str, Any], key: str) -> float | None:
    """A positive duration from ``config[key]``, or None when absent; errors name the key."""
    if config.get(key) is None:
        return None
    try:
        seconds = parse_duration(config[key])
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None
    if seconds <= 0:
        raise ValueError(f"{key}: must be greater than zero")
    return seconds


def string_setting(config: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    """A non-empty string from ``config[key]`` (stripped), or None when absent and optional."""
    value = config.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key}: is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a non-empty string")
    return value.strip()


def provider_url(config: Mapping[str, Any], key: str) -> str | None:
    """An absolute provider URL from ``config[key]``: https, or http on loopback only.

    Plain http would let anyone on the path swap the provider's keys or read the
    redirect; it is tolerated only for local development.
    """
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a non-empty string")
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise ValueError(f"{key}: expected an absolute http(s) URL without fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{key}: must use https (http is accepted only for loopback hosts)")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
