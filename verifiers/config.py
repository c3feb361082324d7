"""Small parsers for configuration values, shared by the gateway and verifier plug-ins.

They raise ``ValueError`` with a message that says what was expected; callers
add the file and key to it.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


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
