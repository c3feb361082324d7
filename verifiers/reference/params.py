"""The reference verifier's request logic, kept apart from HTTP so it tests without sockets.

- :func:`parse_authorize_request` checks the browser redirect's parameters
  against the registered clients (an unregistered ``redirect_uri`` is never
  redirected to: that would make us an open redirector handing out tokens).
- :class:`RequestSealer` carries those parameters through the date-of-birth
  form in one hidden field with an HMAC, so the visitor (or a page that
  posts to us) cannot swap the ``redirect_uri``, ``nonce`` or ``min_age``.
- :func:`parse_birth_date` and :func:`age_over` turn a date of birth into
  threshold booleans; callers drop the date straight after.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date

from verifiers.b64url import b64url_decode, b64url_encode

__all__ = [
    "STANDARD_THRESHOLDS",
    "AuthorizeRequest",
    "RequestRefused",
    "RequestSealer",
    "age_over",
    "parse_authorize_request",
    "parse_birth_date",
]

# Thresholds the reference verifier always answers, plus the requested min_age.
STANDARD_THRESHOLDS = (13, 16, 18, 21)
RESPONSE_MODES = ("form_post", "query")
_MAX_PARAM = 512
# Visible ASCII only: nonces and states are opaque tokens, never free text.
_OPAQUE = re.compile(r"^[\x21-\x7e]+$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_OLDEST_YEAR = 1900


class RequestRefused(Exception):
    """An authorize request we answer with a 400 page and no redirect; the message is shown."""


@dataclass(frozen=True, slots=True)
class AuthorizeRequest:
    """The validated parameters of one ``GET /authorize``."""

    client_id: str
    redirect_uri: str
    response_mode: str
    nonce: str
    state: str
    min_age: int

    @property
    def thresholds(self) -> tuple[int, ...]:
        """The thresholds the token answers: the standard ones and ``min_age``."""
        return tuple(sorted({*STANDARD_THRESHOLDS, self.min_age}))


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name, ())
    if len(values) > 1:
        # RFC 6749 §3.1: a parameter sent twice is an error, not a choice.
        raise RequestRefused(f"The parameter {name} was given more than once.")
    return values[0] if values else None


def _opaque(params: Mapping[str, Sequence[str]], name: str) -> str:
    value = _single(params, name)
    if not value:
        raise RequestRefused(f"The request has no {name}; the site must send one.")
    if len(value) > _MAX_PARAM or not _OPAQUE.match(value):
        raise RequestRefused(f"The {name} is not a short opaque value.")
    return value


def parse_authorize_request(
    params: Mapping[str, Sequence[str]], clients: Mapping[str, Iterable[str]]
) -> AuthorizeRequest:
    """Validate redirect parameters (each name mapped to all its values).

    ``clients`` maps each ``client_id`` to its registered redirect URIs;
    a redirect URI must match one of them exactly.
    """
    client_id = _single(params, "client_id")
    if not client_id or client_id not in clients:
        raise RequestRefused("The site (client_id) is not registered with this verifier.")
    redirect_uri = _single(params, "redirect_uri")
    if not redirect_uri or redirect_uri not in set(clients[client_id]):
        raise RequestRefused("The redirect_uri is not registered for this site.")
    response_mode = _single(params, "response_mode") or "form_post"
    if response_mode not in RESPONSE_MODES:
        raise RequestRefused("The response_mode must be form_post or query.")
    nonce = _opaque(params, "nonce")
    state = _opaque(params, "state")
    min_age_text = _single(params, "min_age") or "18"
    if not min_age_text.isascii() or not min_age_text.isdigit() or not 1 <= int(min_age_text) <= 99:
        raise RequestRefused("The min_age must be a whole number from 1 to 99.")
    return AuthorizeRequest(client_id, redirect_uri, response_mode, nonce, state, int(min_age_text))


def _b64url(data: bytes) -> str:
    return b64url_encode(data)


def _unb64url(text: str) -> bytes:
    return b64url_decode(text, canonical=False)


class RequestSealer:
    """Seal an :class:`AuthorizeRequest` into a hidden form field and open it again.

    The seal is ``base64url(json) "." base64url(HMAC-SHA256)`` and expires
    ``ttl`` seconds after the form was shown.  The secret lives only in this
    process, so a restart invalidates open forms, which is fine for a dev tool.
    """

    def __init__(self, secret: bytes, ttl: float = 600.0):
        if len(secret) < 32:
            raise ValueError("the sealing secret needs at least 32 bytes")
        self._secret = secret
        self._ttl = ttl

    def _mac(self, payload: bytes) -> bytes:
        message = b"agegate-reference-form\0" + payload  # domain-separated from other HMACs
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def seal(self, request: AuthorizeRequest, now: float) -> str:
        """The hidden-field value for ``request``, valid until ``now + ttl``."""
        body = {**asdict(request), "exp": int(now + self._ttl)}
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return f"{_b64url(payload)}.{_b64url(self._mac(payload))}"

    def open(self, sealed: str, now: float) -> AuthorizeRequest:
        """The request sealed in ``sealed``; :class:`RequestRefused` if altered or expired."""
        encoded, _, mac = sealed.partition(".")
        try:
            payload = _unb64url(encoded)
            given = _unb64url(mac)
        except (binascii.Error, ValueError):
            raise RequestRefused("The form was altered; start again from the site.") from None
        if not hmac.compare_digest(given, self._mac(payload)):
            raise RequestRefused("The form was altered; start again from the site.")
        body = json.loads(payload)
        if not isinstance(body, dict) or body.pop("exp", 0) < now:
            raise RequestRefused("The form has expired; start again from the site.")
        return AuthorizeRequest(**body)


def parse_birth_date(text: str | None, today: date) -> date:
    """A date of birth from ``YYYY-MM-DD`` (what ``<input type=date>`` sends).

    Raises ``ValueError`` with a message for the visitor; the message never
    repeats the date typed.
    """
    match = _ISO_DATE.match((text or "").strip())
    if not match:
        raise ValueError("Enter your date of birth as year-month-day, for example 2001-04-30.")
    try:
        born = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise ValueError("That date does not exist; check the day and month.") from None
    if born > today:
        raise ValueError("A date of birth cannot be in the future.")
    if born.year < _OLDEST_YEAR:
        raise ValueError(f"Enter a year from {_OLDEST_YEAR} on.")
    return born


def _birthday(born: date, year: int) -> date:
    # Someone born on 29 February comes of age on 1 March in common years
    # (the later of the two usual readings, so we never say "over" too early).
    if born.month == 2 and born.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 3, 1)
    return born.replace(year=year)


def age_over(born: date, today: date, thresholds: Iterable[int]) -> dict[int, bool]:
    """For each threshold N: has the visitor had their N-th birthday by ``today``?

    ``age_over_18`` means "18 or older", as in ISO/IEC 18013-5.
    """
    return {n: _birthday(born, born.year + n) <= today for n in thresholds}
