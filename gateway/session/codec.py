"""Sealed cookies: the session (SPEC §4), the challenge (SPEC §6), and safe return paths.

Both cookies use one scheme::

    v1.<key-id>.<base64url(nonce || AES-256-GCM ciphertext+tag)>

The 12-byte nonce is random per seal.  The associated data binds the scheme
version, the cookie *name* and the site's audience, so a session cookie never
opens as a challenge cookie (or the reverse), and a cookie minted for one site
never opens on another sharing the key file.  The AES key is derived from
each configured key with HKDF and a per-cookie purpose, so the two cookie
kinds never even share a key; the key id stays that of the configured key
(SPEC §4), so operators can tell which line of the key file sealed a cookie.

The first key seals, every key opens: adding a key line first rotates keys
without logging anyone out.  Opening never raises: anything but a fresh,
authentic cookie is ``None``, and ``on_invalid(reason)`` is told why
(``malformed``, ``unknown_key``, ``tampered`` or ``expired``) for metrics.
The reason never includes the cookie value.

A session cookie carries a random session id (``sid``) so that a logout can
revoke it server-side (:mod:`gateway.session.revocation`); cookies sealed before ids
existed still open, with ``session_id`` None.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote, unquote

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError
from gateway.policy.facts import SessionClaims
from gateway.session.keys import KEY_BYTES, key_id
from gateway.session.nonces import derive_key
from verifiers.b64url import b64url_decode, b64url_encode
from verifiers.base import AssuranceLevel

__all__ = [
    "CHALLENGE_COOKIE",
    "DEFAULT_SESSION_CACHE",
    "MAX_RETURN_PATH",
    "SESSION_COOKIE",
    "ChallengeCodec",
    "ChallengeState",
    "SessionCodec",
    "new_session_id",
    "safe_return_path",
    "session_cookie_of",
]

SESSION_COOKIE = "__Host-agegate"
CHALLENGE_COOKIE = "__Host-agegate-challenge"
MAX_RETURN_PATH = 2048
#: Opened session cookies a codec keeps (each well under 1 KB with its claims).
DEFAULT_SESSION_CACHE = 4096

OnInvalid = Callable[[str], None]
# A Cookie header value holding the session cookie alone starts with this.
_HEADER_PREFIX = f"{SESSION_COOKIE}=".encode("ascii")

_VERSION = "v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
# Browsers keep at most ~4096 bytes per cookie; anything longer is not ours.
_MAX_COOKIE_CHARS = 4096
_KID_RE = re.compile(r"[0-9a-f]{8}")
_SESSION_ID_BYTES = 16
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{22}")


def session_cookie_of(header: bytes) -> str:
    """The value of a ``Cookie`` header ``__Host-agegate=<value>`` (see peek_header)."""
    return header[len(_HEADER_PREFIX) :].decode("latin-1")


def new_session_id() -> str:
    """A fresh random session id: 16 bytes, base64url without padding (22 characters)."""
    return secrets.token_urlsafe(_SESSION_ID_BYTES)


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity by default; no timestamp of ours is either.
    raise ValueError(f"non-finite number {name}")


class _Sealer:
    """AES-GCM sealing of bytes under a key ring, bound to one cookie name and audience."""

    __slots__ = ("_aad", "_audience", "_cookie_name", "_on_invalid", "_ring", "_sealing")

    def __init__(
        self,
        keys: Sequence[bytes],
        audience: str,
        cookie_name: str,
        on_invalid: OnInvalid | None,
    ) -> None:
        if not keys:
            raise ConfigError(
                "no session keys: set AGEGATE_SESSION_KEYS or session_keys_file "
                "(create one with 'agegate keys generate')",
                key="session_keys",
            )
        ring: dict[str, list[AESGCM]] = {}
        for key in keys:
            if len(key) != KEY_BYTES:
                raise ConfigError(f"a session key is {KEY_BYTES} bytes", key="session_keys")
            aead = AESGCM(derive_key(key, f"agegate {cookie_name} aead v1"))
            # Two keys could share an 8-hex-digit id; keep both and try each.
            ring.setdefault(key_id(key), []).append(aead)
        first_id = key_id(keys[0])
        self._sealing = (first_id, ring[first_id][0])
        self._ring = ring
        self._aad = json.dumps([_VERSION, cookie_name, audience]).encode("utf-8")
        self._audience, self._cookie_name = audience, cookie_name
        self._on_invalid = on_invalid

    def rekeyed(self, keys: Sequence[bytes]) -> _Sealer:
        """The same sealer on another key ring (a reloaded keys file)."""
        return _Sealer(keys, self._audience, self._cookie_name, self._on_invalid)

    def seal(self, payload: bytes) -> str:
        kid, aead = self._sealing
        nonce = os.urandom(_NONCE_BYTES)
        blob = nonce + aead.encrypt(nonce, payload, self._aad)
        return f"{_VERSION}.{kid}.{b64url_encode(blob)}"

    def unseal(self, value: object) -> bytes | str:
        """The plaintext (bytes), or why there is none (a reason code, str)."""
        if not isinstance(value, str) or len(value) > _MAX_COOKIE_CHARS:
            return "malformed"
        version, kid, body = [*value.split("."), "", ""][:3]
        if value.count(".") != 2 or version != _VERSION or not _KID_RE.fullmatch(kid):
            return "malformed"
        blob = _decode_body(body)
        if blob is None or len(blob) < _NONCE_BYTES + _TAG_BYTES:
            return "malformed"
        candidates = self._ring.get(kid)
        if candidates is None:
            return "unknown_key"
        for aead in candidates:
            try:
                return aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad)
            except InvalidTag:
                continue
        return "tampered"

    def report(self, reason: str) -> None:
        """Tell the metrics hook why a cookie was ignored (never the cookie itself)."""
        if self._on_invalid is not None:
            self._on_invalid(reason)


def _decode_body(body: str) -> bytes | None:
    """Strict base64url: our alphabet only, padding tolerated, one canonical spelling."""
    try:
        raw = b64url_decode(body, padding=True)
    except ValueError:
        return None
    return raw or None


def _load_payload(payload: bytes) -> Mapping[str, Any] | None:
    try:
        data = json.loads(payload, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _finite(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return float(value)


def _age(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 150:
        raise ValueError("not an age threshold")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _ages(value: object) -> frozenset[int]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return frozenset(_age(item) for item in value)


class SessionCodec:
    """Seals and opens the session cookie ``__Host-agegate`` (SPEC §4).

    Opened cookies are kept, by their exact value, in a cache this codec owns:
    a sealed cookie never changes, so a second request with it costs one dict
    lookup and one expiry check instead of an AES-GCM open and a JSON parse.
    Only authentic cookies that opened are kept (junk cannot fill it), at most
    ``cache_size`` of them (oldest out first), expiry is checked again on every
    hit, and :meth:`use_keys` empties it.  The fast path also finds them by the
    whole ``Cookie`` header when that holds our cookie alone
    (:meth:`peek_header`), kept the same way.  This is the one place in the
    process where cookie text outlives its request, and only our own cookie's.
    """

    __slots__ = ("_cache", "_cache_size", "_headers", "_sealer")

    def __init__(
        self,
        keys: Sequence[bytes],
        audience: str,
        *,
        on_invalid: OnInvalid | None = None,
        cache_size: int = DEFAULT_SESSION_CACHE,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._sealer = _Sealer(keys, audience, SESSION_COOKIE, on_invalid)
        # Cookies this process already authenticated and decoded, by their exact value:
        # opening one (JSON and field checks) is the protected route's biggest cost.
        # Only successful opens are cached, emptied when the keys change (use_keys),
        # and expiry is checked again on every use.  Bounded (oldest dropped).
        self._cache: dict[str, SessionClaims] = {}
        # The same claims by the exact Cookie header holding that cookie alone
        # (``__Host-agegate=<value>``, see peek_header): same bound, same clearing.
        self._headers: dict[bytes, SessionClaims] = {}
        self._cache_size = cache_size

    @property
    def cached(self) -> int:
        """How many opened cookies are cached now (for tests and metrics)."""
        return len(self._cache)

    @property
    def alone_headers(self) -> Container[bytes]:
        """``Cookie`` header values known to hold the session cookie alone (see
        :meth:`peek_header`), live: the proxy sends nothing of one upstream."""
        return self._headers.keys()

    @property
    def alone_claims(self) -> Mapping[bytes, SessionClaims]:
        """What :meth:`peek_header` keeps, live: those headers with their claims,
        expired ones included (a caller checks ``expires_at`` as peek_header does)."""
        return self._headers

    def use_keys(self, keys: Sequence[bytes]) -> None:
        """Seal with ``keys[0]`` and open with every key from now on (hot reload).

        The cache of opened cookies is emptied: a cookie sealed with a key no
        longer listed must stop opening at once.
        """
        self._sealer = self._sealer.rekeyed(keys)
        self._cache.clear()
        self._headers.clear()  # in place: alone_claims is read live elsewhere

    def seal(self, claims: SessionClaims) -> str:
        """The cookie value carrying exactly the fields of ``claims``."""
        payload = {
            "age_over": sorted(claims.age_over),
            "age_under": sorted(claims.age_under),
            "assurance": claims.assurance.label,
            "verifier": claims.verifier,
            "issued_at": claims.issued_at,
            "expires_at": claims.expires_at,
        }
        if claims.session_id is not None:
            payload["sid"] = _session_id(claims.session_id)
        return self._sealer.seal(json.dumps(payload, separators=(",", ":")).encode("utf-8"))

    def open(self, value: str | None, now: float) -> SessionClaims | None:
        """The claims of a fresh, authentic cookie; ``None`` otherwise.  Never raises."""
        if not value:
            return None  # absent is not invalid: nothing to count
        cached = self._cache.get(value)
        if cached is not None:
            if now < cached.expires_at:
                return cached
            del self._cache[value]
            self._sealer.report("expired")
            return None
        outcome = self._open(value, now)
        if isinstance(outcome, str):
            self._sealer.report(outcome)
            return None
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
        self._cache[value] = outcome
        return outcome

    def peek(self, value: str | None, now: float) -> SessionClaims | None:
        """The claims of ``value`` if it is cached and fresh; None otherwise.

        No decryption and no side effect (nothing counted, nothing dropped): the
        fast path asks, and on None the ordinary path opens the cookie as usual.
        """
        cached = self._cache.get(value) if value else None
        if cached is not None and now < cached.expires_at:
            return cached
        return None

    def peek_header(self, header: bytes, now: float) -> SessionClaims | None:
        """:meth:`peek` for a request's first ``Cookie`` header, when it holds our cookie alone.

        For ``__Host-agegate=<value>`` with ``<value>`` already opened, the
        claims of ``<value>``: an authentic value has no ``;``, blank or quote,
        so :func:`~gateway.core.cookies.get_cookie` reads exactly ``<value>``
        from that header.  The header is then kept with its claims, so the next
        request carrying it costs one dict lookup instead of finding the cookie
        in the header.  None for any other header (the caller reads the cookie
        out of it and asks :meth:`peek`).  As :meth:`peek`: no decryption, and
        nothing counted.
        """
        claims = self._headers.get(header) or self.keep_header(header)
        if claims is not None and now < claims.expires_at:
            return claims
        return None

    def keep_header(self, header: bytes) -> SessionClaims | None:
        """The claims of a ``Cookie`` header not kept yet (see :meth:`peek_header`),
        kept with it from now on; None for any other header.

        Expired claims too: every reader of :attr:`alone_claims` tests ``expires_at``.
        """
        if not header.startswith(_HEADER_PREFIX):
            return None
        claims = self._cache.get(session_cookie_of(header))
        if claims is None:
            return None
        if len(self._headers) >= self._cache_size:
            del self._headers[next(iter(self._headers))]
        self._headers[header] = claims
        return claims

    def expired(self, value: str | None, now: float) -> bool:
        """True for an authentic cookie past its expiry (so a page can say "verify again")."""
        return bool(value) and self._open(value or "", now) == "expired"

    def _open(self, value: str, now: float) -> SessionClaims | str:
        payload = self._sealer.unseal(value)
        if isinstance(payload, str):
            return payload
        data = _load_payload(payload)
        try:
            if data is None or set(data) - {"sid"} != _SESSION_FIELDS:
                raise ValueError("unexpected fields")
            claims = SessionClaims(
                age_over=_ages(data["age_over"]),
                age_under=_ages(data["age_under"]),
                assurance=AssuranceLevel.parse(_text(data["assurance"])),
                verifier=_text(data["verifier"]),
                issued_at=_finite(data["issued_at"]),
                expires_at=_finite(data["expires_at"]),
                session_id=_session_id(data["sid"]) if "sid" in data else None,
            )
        except ValueError:
            return "malformed"
        if not now < claims.expires_at:
            return "expired"
        return claims


# The sealed ones: not ``decided``, which is the policy's memo (not a claim).
_SESSION_FIELDS = frozenset(f.name for f in fields(SessionClaims) if f.init) - {"session_id"}


def _session_id(value: object) -> str:
    if not isinstance(value, str) or not _SESSION_ID_RE.fullmatch(value):
        raise ValueError("not a session id")
    return value


@dataclass(frozen=True, slots=True)
class ChallengeState:
    """What the challenge cookie remembers between the verify page and the callback."""

    nonce: str
    state: str
    return_path: str
    min_age: int
    assurance: AssuranceLevel
    verifiers: tuple[str, ...]
    expires_at: float  # seconds since the epoch


_CHALLENGE_FIELDS = frozenset(ChallengeState.__dataclass_fields__)


class ChallengeCodec:
    """Seals and opens the challenge cookie ``__Host-agegate-challenge`` (SPEC §6)."""

    __slots__ = ("_sealer",)

    def __init__(
        self,
        keys: Sequence[bytes],
        audience: str,
        *,
        on_invalid: OnInvalid | None = None,
    ) -> None:
        self._sealer = _Sealer(keys, audience, CHALLENGE_COOKIE, on_invalid)

    def use_keys(self, keys: Sequence[bytes]) -> None:
        """Seal with ``keys[0]`` and open with every key from now on (hot reload)."""
        self._sealer = self._sealer.rekeyed(keys)

    def seal(self, state: ChallengeState) -> str:
        """The cookie value carrying ``state``."""
        payload = {
            "nonce": state.nonce,
            "state": state.state,
            "return_path": state.return_path,
            "min_age": state.min_age,
            "assurance": state.assurance.label,
            "verifiers": list(state.verifiers),
            "expires_at": state.expires_at,
        }
        return self._sealer.seal(json.dumps(payload, separators=(",", ":")).encode("utf-8"))

    def open(self, value: str | None, now: float) -> ChallengeState | None:
        """The state of a fresh, authentic challenge cookie; ``None`` otherwise.  Never raises."""
        if not value:
            return None
        outcome = self._open(value, now)
        if isinstance(outcome, str):
            self._sealer.report(outcome)
            return None
        return outcome

    def _open(self, value: str, now: float) -> ChallengeState | str:
        payload = self._sealer.unseal(value)
        if isinstance(payload, str):
            return payload
        data = _load_payload(payload)
        try:
            if data is None or set(data) != _CHALLENGE_FIELDS:
                raise ValueError("unexpected fields")
            verifiers = data["verifiers"]
            if not isinstance(verifiers, list):
                raise ValueError("not a list")
            state = ChallengeState(
                nonce=_text(data["nonce"]),
                state=_text(data["state"]),
                # Sealed values are ours, but re-checking costs nothing and keeps
                # "never redirect off-site" true even if a caller forgot to.
                return_path=safe_return_path(_text(data["return_path"])),
                min_age=_age(data["min_age"]),
                assurance=AssuranceLevel.parse(_text(data["assurance"])),
                verifiers=tuple(_text(item) for item in verifiers),
                expires_at=_finite(data["expires_at"]),
            )
        except ValueError:
            return "malformed"
        if not now < state.expires_at:
            return "expired"
        return state


# Characters kept as they are in a return path: RFC 3986 reserved and
# unreserved ones plus "%" (existing escapes).  Everything else, notably
# non-ASCII, space, quotes and angle brackets, is percent-encoded, so the
# result is plain ASCII and safe in a Location header.
_PATH_SAFE = "/?#[]@!$&'()*+,;=:%~"
# More nested encodings than this is not a real path; it is someone probing
# for a component that decodes one more time than we do.
_DECODE_ROUNDS = 3
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _safe_form(text: str) -> bool:
    """One reading of a candidate path: path-absolute, no "//", no "\\", no controls."""
    if not text.startswith("/") or "\\" in text:
        return False
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text):
        return False
    path = re.split(r"[?#]", text, maxsplit=1)[0]
    # "//" at the start is a network-path reference; anywhere else in the path,
    # dot-segment removal ("/..//evil") or a path-only redirect downstream can
    # bring it to the start.
    return "//" not in path


def safe_return_path(value: str | None) -> str:
    """``value`` when it is a same-origin relative path, else ``"/"`` (SPEC §6).

    Accepted: ``"/"`` followed by a character other than ``"/"`` or ``"\\"``
    (or exactly ``"/"``), at most :data:`MAX_RETURN_PATH` characters, no
    backslash, no control or invisible format character, no ``"//"`` in the
    path part.  The checks are repeated on every percent-decoded form (up to
    three rounds) and on the NFKC form of each, so ``/%2F%2Fevil``,
    ``/%5Cevil``, ``/%09/evil`` and ``/\uff0fevil`` are refused even where
    some later component decodes or normalises once more.  The result is
    ASCII: anything outside RFC 3986's reserved and unreserved sets is
    percent-encoded.  Never raises.
    """
    if not isinstance(value, str) or not value or len(value) > MAX_RETURN_PATH:
        return "/"
    if value == "/":
        return "/"
    level = value
    for _ in range(_DECODE_ROUNDS + 1):
        if not _safe_form(level) or not _safe_form(unicodedata.normalize("NFKC", level)):
            return "/"
        decoded = unquote(level, errors="replace")
        if decoded == level:
            break
        level = decoded
    else:
        return "/"
    encoded = quote(value, safe=_PATH_SAFE)
    return encoded if len(encoded) <= MAX_RETURN_PATH else "/"
