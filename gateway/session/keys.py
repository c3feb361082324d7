"""Session key lines: one base64url 32-byte key per line, ``#`` comments (SPEC §4).

The first key seals, all keys open, so adding a new first line rotates keys
without logging anyone out.  A key's id is the first 8 hex digits of the
SHA-256 of its raw bytes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path

from verifiers.b64url import b64url_decode, b64url_encode

__all__ = [
    "KEY_BYTES",
    "generate_key_line",
    "key_id",
    "parse_key_lines",
    "readable_by_others",
    "write_new_key_file",
]

KEY_BYTES = 32


def key_id(key: bytes) -> str:
    """The public id of a key: 8 hex digits of SHA-256(key)."""
    return hashlib.sha256(key).hexdigest()[:8]


def generate_key_line() -> str:
    """A new random key, unpadded base64url (43 characters)."""
    return b64url_encode(secrets.token_bytes(KEY_BYTES))


def write_new_key_file(path: str | os.PathLike[str]) -> None:
    """Write a new key line to ``path``, readable by its owner only.

    Raises ``FileExistsError`` rather than replace a file: overwriting a keys
    file logs every visitor out.  Rotation prepends a line by hand instead.
    """
    # O_EXCL: no window in which the file exists with looser permissions or is clobbered.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(generate_key_line() + "\n")


def readable_by_others(path: Path) -> bool:
    """True when the group or anyone else may read ``path`` (False if it cannot be stat'ed)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


def parse_key_lines(text: str) -> tuple[bytes, ...]:
    """Parse key lines; raises ``ValueError`` naming the line number of a bad key."""
    keys: list[bytes] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        # SPEC §4: '=' padding is tolerated (any amount, as before), spelling not compared.
        stripped = line.rstrip("=")
        try:
            raw = b64url_decode(stripped, canonical=False)
        except ValueError:
            raise ValueError(f"line {number}: not base64url") from None
        if len(raw) != KEY_BYTES:
            raise ValueError(
                f"line {number}: a session key is 32 bytes of base64url "
                f"(43 characters); run 'agegate keys generate'"
            )
        keys.append(raw)
    if len(set(keys)) != len(keys):
        raise ValueError("the same key is listed twice")
    return tuple(keys)
