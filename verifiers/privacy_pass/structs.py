"""Privacy Pass wire structures (RFC 9577 §2, RFC 9578 §6) and the ``PrivateToken`` header syntax.

Only token type ``0x0002`` (blind RSA, 2048-bit, RSABSSA-SHA384-PSS-Deterministic)
is spoken here.  Every parser takes untrusted bytes or text and raises
:class:`StructError` (never ``IndexError``, ``binascii.Error`` or
``UnicodeDecodeError``) so callers can map one exception to ``malformed``.

base64url: RFC 9577 §2.1 says values carry padding, and a padded value must be
a quoted-string in an auth-param.  We always send padded, quoted values, and
accept unpadded or unquoted ones (the Cloudflare library and others do both).
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from verifiers import b64url

__all__ = [
    "NK",
    "TOKEN_LENGTH",
    "TOKEN_TYPE_BLIND_RSA",
    "AuthChallenge",
    "StructError",
    "Token",
    "TokenChallenge",
    "TokenRequest",
    "TokenResponse",
    "b64url_decode",
    "b64url_encode",
    "format_auth_params",
    "parse_auth_params",
    "parse_challenges",
]

TOKEN_TYPE_BLIND_RSA = 0x0002
NK = 256  # bytes of a 2048-bit RSA modulus: blinded messages, signatures
TOKEN_LENGTH = 2 + 32 + 32 + 32 + NK
# Ceilings for anything we decode from a header: bigger than any valid value, small
# enough that a hostile header costs nothing to refuse.
MAX_ENCODED = 4096
_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Unquoted values: RFC 9110 tokens, plus "/" and "=" (token68) for lenient peers.
_VALUE_CHARS = frozenset(_TCHAR + "/=")
_NAME_CHARS = frozenset(_TCHAR)
# A quoted-string without escapes, matched in one step: a token is ~500
# characters and walking it one character at a time cost most of a redemption.
_PLAIN_QUOTED = re.compile(r'"([\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]*)"')


class StructError(ValueError):
    """Bytes or header text that do not parse as the structure expected."""


def b64url_encode(data: bytes) -> str:
    """base64url with padding, as RFC 9577 §2.1 and RFC 9578 §4 ask."""
    return b64url.b64url_encode(data, pad=True)


def b64url_decode(text: str, *, limit: int = MAX_ENCODED) -> bytes:
    """Decode base64url with or without padding; :class:`StructError` for anything else."""
    try:
        return b64url.b64url_decode(text, padding=True, canonical=False, limit=limit)
    except ValueError:
        raise StructError("not base64url") from None


class _Reader:
    """A cursor over untrusted bytes; every read is bounds-checked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise StructError("truncated structure")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def end(self) -> None:
        if self.pos != len(self.data):
            raise StructError("trailing bytes after structure")


def _ascii(raw: bytes, what: str) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise StructError(f"{what} is not ASCII") from None
    if not text.isprintable():
        raise StructError(f"{what} has control characters")
    return text


@dataclass(frozen=True, slots=True)
class TokenChallenge:
    """RFC 9577 §2.1.1 TokenChallenge (default structure)."""

    token_type: int
    issuer_name: str
    redemption_context: bytes
    origin_info: tuple[str, ...]

    def serialize(self) -> bytes:
        issuer = self.issuer_name.encode("ascii")
        origins = ",".join(self.origin_info).encode("ascii")
        if not 1 <= len(issuer) <= 0xFFFF or len(origins) > 0xFFFF:
            raise StructError("issuer_name or origin_info out of range")
        if len(self.redemption_context) not in (0, 32):
            raise StructError("redemption_context must be 0 or 32 bytes")
        return b"".join(
            (
                struct.pack(">HH", self.token_type, len(issuer)),
                issuer,
                bytes([len(self.redemption_context)]),
                self.redemption_context,
                struct.pack(">H", len(origins)),
                origins,
            )
        )

    def digest(self) -> bytes:
        """``challenge_digest`` of RFC 9578 §6.1: SHA-256 of the serialized challenge."""
        return hashlib.sha256(self.serialize()).digest()

    @classmethod
    def parse(cls, data: bytes) -> TokenChallenge:
        reader = _Reader(data)
        token_type = reader.u16()
        issuer = _ascii(reader.take(reader.u16()), "issuer_name")
        if not issuer:
            raise StructError("empty issuer_name")
        context_length = reader.u8()
        if context_length not in (0, 32):
            # RFC 9577 §2.1.1: challenges with other lengths MUST be ignored.
            raise StructError("redemption_context must be 0 or 32 bytes")
        context = reader.take(context_length)
        origins = _ascii(reader.take(reader.u16()), "origin_info")
        reader.end()
        return cls(token_type, issuer, context, tuple(origins.split(",")) if origins else ())


@dataclass(frozen=True, slots=True)
class Token:
    """RFC 9577 §2.2 Token for type 0x0002 (Nk = 256)."""

    token_type: int
    nonce: bytes
    challenge_digest: bytes
    token_key_id: bytes
    authenticator: bytes

    @property
    def authenticator_input(self) -> bytes:
        """What the issuer's key signed: everything before the authenticator."""
        return (
            struct.pack(">H", self.token_type)
            + self.nonce
            + self.challenge_digest
            + self.token_key_id
        )

    def serialize(self) -> bytes:
        return self.authenticator_input + self.authenticator

    @classmethod
    def token_type_of(cls, data: bytes) -> int:
        """The leading type field, read before the length check (for ``bad_type``)."""
        return _Reader(data).u16()

    @classmethod
    def parse(cls, data: bytes) -> Token:
        if len(data) != TOKEN_LENGTH:
            raise StructError("a type 2 token is 354 bytes")
        reader = _Reader(data)
        token_type = reader.u16()
        if token_type != TOKEN_TYPE_BLIND_RSA:
            raise StructError("not a type 2 token")
        return cls(token_type, reader.take(32), reader.take(32), reader.take(32), reader.take(NK))


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """RFC 9578 §6.1 TokenRequest: type, truncated key id, blinded message."""

    token_type: int
    truncated_token_key_id: int
    blinded_msg: bytes

    def serialize(self) -> bytes:
        return struct.pack(">HB", self.token_type, self.truncated_token_key_id) + self.blinded_msg

    @classmethod
    def parse(cls, data: bytes) -> TokenRequest:
        reader = _Reader(data)
        token_type = reader.u16()
        if token_type != TOKEN_TYPE_BLIND_RSA:
            raise StructError("unsupported token type")
        truncated = reader.u8()
        blinded = reader.take(NK)
        reader.end()
        return cls(token_type, truncated, blinded)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """RFC 9578 §6.2 TokenResponse: the blind signature."""

    blind_sig: bytes

    def serialize(self) -> bytes:
        return self.blind_sig

    @classmethod
    def parse(cls, data: bytes) -> TokenResponse:
        if len(data) != NK:
            raise StructError("a type 2 token response is 256 bytes")
        return cls(data)


# -- RFC 9110 §11 auth-params --------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    """One challenge (or credentials) of an HTTP authentication header."""

    scheme: str
    params: dict[str, str]


class _HeaderScanner:
    def __init__(self, text: str) -> None:
        if len(text) > 64 * 1024:
            raise StructError("header too long")
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def skip_commas(self) -> None:
        while self.peek() in (" ", "\t", ",") and self.peek():
            self.pos += 1

    def run(self, chars: frozenset[str]) -> str:
        start = self.pos
        while self.peek() and self.peek() in chars:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted(self) -> str:
        plain = _PLAIN_QUOTED.match(self.text, self.pos)
        if plain is not None:
            self.pos = plain.end()
            return plain.group(1)
        return self.quoted_slowly()

    def quoted_slowly(self) -> str:
        """The general case (escapes, or an error to report): one character at a time."""
        self.pos += 1  # the opening quote
        out: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise StructError("unterminated quoted-string")
            self.pos += 1
            if char == '"':
                return "".join(out)
            if char == "\\":
                char = self.peek()
                if not char:
                    raise StructError("unterminated quoted-string")
                self.pos += 1
            if not (char == "\t" or " " <= char <= "~" or "\x80" <= char <= "\xff"):
                raise StructError("control character in quoted-string")
            out.append(char)

    def param_follows(self) -> bool:
        """At ``name BWS "="`` (another param) rather than at a new scheme?"""
        saved = self.pos
        name = self.run(_NAME_CHARS)
        self.skip_ows()
        found = bool(name) and self.peek() == "="
        self.pos = saved
        return found

    def params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        while self.param_follows():
            name = self.run(_NAME_CHARS).lower()
            self.skip_ows()
            self.pos += 1  # "="
            self.skip_ows()
            value = self.quoted() if self.peek() == '"' else self.run(_VALUE_CHARS)
            if not value and self.peek() not in ("", ",", " ", "\t"):
                raise StructError("bad auth-param value")
            if name in params:
                raise StructError(f"auth-param {name!r} given twice")
            params[name] = value
            self.skip_ows()
            if self.peek() == ",":
                self.skip_commas()
            elif self.peek():
                raise StructError("expected ',' between auth-params")
        return params


def parse_auth_params(text: str) -> dict[str, str]:
    """The auth-params of one credential (what follows ``PrivateToken `` in ``Authorization``)."""
    scanner = _HeaderScanner(text.strip())
    params = scanner.params()
    if scanner.peek():
        raise StructError("unexpected text after auth-params")
    return params


def parse_challenges(header: str) -> list[AuthChallenge]:
    """Every challenge of a ``WWW-Authenticate`` value (several may share one line)."""
    scanner = _HeaderScanner(header)
    found: list[AuthChallenge] = []
    scanner.skip_commas()
    while scanner.peek():
        scheme = scanner.run(_NAME_CHARS)
        if not scheme:
            raise StructError("expected an auth-scheme")
        scanner.skip_ows()
        if scanner.param_follows():
            params = scanner.params()
        else:
            token68 = scanner.run(_VALUE_CHARS)
            params = {"": token68} if token68 else {}
            scanner.skip_commas()
        found.append(AuthChallenge(scheme, params))
        scanner.skip_commas()
    return found


def format_auth_params(params: dict[str, str]) -> str:
    """``name="value", …`` with every value quoted (values here never need escapes)."""
    for value in params.values():
        if '"' in value or "\\" in value:
            raise StructError("value needs escaping")
    return ", ".join(f'{name}="{value}"' for name, value in params.items())
