"""Scanning the logs agegate wrote during the test suite for secrets.

Every harness writes its processes' logs under pytest's base temp directory
(``gateway.log`` from GatewayProcess and the demo stack, ``verifier.log`` and
``reference.log`` from the reference verifier).  At the end of the session
``tests/conftest.py`` scans them all: a token, a cookie value or a date of
birth in any of them fails the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AGEGATE_LOG_NAMES", "Leak", "scan_logs", "scan_text"]

AGEGATE_LOG_NAMES = ("gateway.log", "verifier.log", "reference.log")

_PATTERNS = {
    # A compact JWS (age token, KB-JWT): three base64url parts, the first a JSON header.
    "token": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    # A sealed agegate cookie: v1.<key id>.<base64url(nonce || ciphertext)>.
    "cookie": re.compile(r"\bv1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{24,}"),
    # A calendar date that is not a log timestamp (a date followed by a time of day).
    "birth_date": re.compile(r"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b(?![T ]\d\d:)"),
    # A Privacy Pass token or any long opaque credential.
    "credential": re.compile(r"[A-Za-z0-9_-]{200,}"),
}


@dataclass(frozen=True)
class Leak:
    path: Path
    kind: str
    line: int


def scan_text(text: str, path: Path = Path("<text>")) -> list[Leak]:
    """Every line of ``text`` that holds something no agegate log may hold."""
    leaks = []
    for number, line in enumerate(text.splitlines(), start=1):
        for kind, pattern in _PATTERNS.items():
            if pattern.search(line):
                leaks.append(Leak(path, kind, number))
    return leaks


def scan_logs(root: Path) -> tuple[int, list[Leak]]:
    """(files scanned, leaks) for every agegate log below ``root``."""
    files = [p for name in AGEGATE_LOG_NAMES for p in root.rglob(name) if p.is_file()]
    leaks = []
    for path in files:
        leaks.extend(scan_text(path.read_text(errors="replace"), path))
    return len(files), leaks
