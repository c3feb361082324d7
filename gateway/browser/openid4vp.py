"""OpenID4VP 1.0 pieces of the wallet flow that need no I/O: request, state, vp_token, outcome.

- :func:`request_uri`: the request by value, ``openid4vp://?client_id=
  redirect_uri:<callback>&response_type=vp_token&response_mode=direct_post
  &response_uri=<callback>&nonce=…&state=…&dcql_query=…`` (unsigned: the
  ``redirect_uri:`` client identifier prefix allows no signed request).
- :class:`WalletStateCodec`: the request's ``state`` is sealed (AES-GCM under
  a key derived from the session key ring, like the cookies) and carries the
  nonce, the browser challenge's ``state``, the age asked, the verifier and
  an expiry.  The wallet's ``direct_post`` comes without the browser's
  cookies (it is another app, often another device), so this is what ties
  the answer to the challenge, statelessly, in every worker.
- :func:`parse_vp_token`: the DCQL response ``{query_id: [presentation]}``
  answering exactly one of the query's Credential Query ids.
- :class:`WalletOutcome`: what ``direct_post`` leaves in the store for the
  browser under a one-time ``response_code``: proven thresholds, assurance,
  verifier, expiry and an HMAC of the challenge state; no credential.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from gateway.errors import BadRequest
from gateway.session.codec import _load_payload, _Sealer
from verifiers.base import AssuranceLevel

__all__ = [
    "MAX_PRESENTATIONS",
    "QUERY_ID",
    "WalletOutcome",
    "WalletRefused",
    "WalletState",
    "WalletStateCodec",
    "challenge_binding",
    "client_id_for",
    "parse_vp_token",
    "query_ids",
    "request_uri",
]

QUERY_ID = "age"  # the one DCQL credential query the gateway asks
MAX_PRESENTATIONS = 1  # one credential proves the age; more would only add linkability
_STATE_PURPOSE = "openid4vp-state"


class WalletRefused(BadRequest):
    """A ``direct_post`` or completion refused with a reason code (400 unless said)."""


def client_id_for(response_uri: str) -> str:
    """The client identifier with the ``redirect_uri:`` prefix (OpenID4VP 1.0 §5.9.3)."""
    return f"redirect_uri:{response_uri}"


def request_uri(response_uri: str, nonce: str, state: str, dcql_query: Mapping[str, Any]) -> str:
    """The ``openid4vp://`` request by value for a whole DCQL query."""
    query = {
        "client_id": client_id_for(response_uri),
        "response_type": "vp_token",
        "response_mode": "direct_post",
        "response_uri": response_uri,
        "nonce": nonce,
        "state": state,
        "dcql_query": json.dumps(dcql_query, separators=(",", ":")),
    }
    return "openid4vp://?" + urlencode(query)


@dataclass(frozen=True, slots=True)
class WalletState:
    """What an OpenID4VP request's sealed ``state`` carries."""

    nonce: str
    challenge_state: str  # the browser challenge cookie's ``state``
    min_age: int
    verifier: str
    expires_at: float


class WalletStateCodec:
    """Seals and opens the ``state`` of the gateway's OpenID4VP requests."""

    __slots__ = ("_sealer",)

    def __init__(self, keys: Sequence[bytes], audience: str) -> None:
        self._sealer = _Sealer(keys, audience, _STATE_PURPOSE, None)

    def seal(self, state: WalletState) -> str:
        payload = [
            state.nonce,
            state.challenge_state,
            state.min_age,
            state.verifier,
            state.expires_at,
        ]
        return self._sealer.seal(json.dumps(payload, separators=(",", ":")).encode())

    def open(self, value: object, now: float) -> WalletState | None:
        """The state of a fresh, authentic value; None otherwise.  Never raises."""
        plain = self._sealer.unseal(value)
        if isinstance(plain, str):
            return None
        try:
            data = json.loads(plain)
            nonce, challenge_state, min_age, verifier, expires_at = data
            state = WalletState(str(nonce), str(challenge_state), int(min_age), str(verifier),
                                float(expires_at))  # fmt: skip
        except (ValueError, TypeError):
            return None
        return state if math.isfinite(state.expires_at) and now < state.expires_at else None


def challenge_binding(key: bytes, challenge_state: str) -> str:
    """An HMAC of a challenge's ``state``: what the store holds instead of the state."""
    return hmac.new(key, challenge_state.encode(), hashlib.sha256).hexdigest()


def query_ids(dcql_query: Mapping[str, Any]) -> frozenset[str]:
    """The Credential Query ids a DCQL query names (what a ``vp_token`` may answer)."""
    credentials = dcql_query.get("credentials", ())
    return frozenset(str(query["id"]) for query in credentials if "id" in query)


def parse_vp_token(text: str | None, asked: Collection[str] = (QUERY_ID,)) -> tuple[str, str]:
    """(query id, presentation) of a DCQL ``vp_token`` answering one id of ``asked``.

    Exactly one id, with exactly one presentation: a second credential would
    only add linkability, and ``credential_sets`` options are alternatives.
    WalletRefused otherwise.
    """
    if not text:
        raise WalletRefused("malformed", "the response has no vp_token")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise WalletRefused("malformed", "vp_token is not JSON") from None
    if not isinstance(value, dict):
        raise WalletRefused("malformed", "vp_token is not a JSON object")
    if len(value) != 1 or next(iter(value)) not in asked:
        raise WalletRefused("unexpected_query", "vp_token answers a query that was not asked")
    [(query_id, presentations)] = value.items()
    if (
        not isinstance(presentations, list)
        or not 0 < len(presentations) <= MAX_PRESENTATIONS
        or not isinstance(presentations[0], str)
        or not presentations[0]
    ):
        raise WalletRefused("malformed", "vp_token holds not exactly one presentation")
    return query_id, presentations[0]


@dataclass(frozen=True, slots=True)
class WalletOutcome:
    """The verified result a ``direct_post`` leaves for the browser, or the wallet's error."""

    binding: str  # challenge_binding() of the challenge this answers
    verifier: str
    age_over: frozenset[int] = frozenset()
    age_under: frozenset[int] = frozenset()
    assurance: AssuranceLevel = AssuranceLevel.ASSERTED
    expires_at: float = 0.0
    error: str | None = None  # a reason code: the browser shows the error page

    def encode(self) -> bytes:
        return json.dumps(
            {
                "b": self.binding,
                "v": self.verifier,
                "o": sorted(self.age_over),
                "u": sorted(self.age_under),
                "a": self.assurance.label,
                "e": self.expires_at,
                "r": self.error,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> WalletOutcome | None:
        """The outcome in ``data`` (written by :meth:`encode`); None if it is not one."""
        fields = _load_payload(data)
        try:
            if fields is None:
                raise ValueError("not an object")
            error = fields["r"]
            return cls(
                binding=str(fields["b"]),
                verifier=str(fields["v"]),
                age_over=frozenset(int(n) for n in fields["o"]),
                age_under=frozenset(int(n) for n in fields["u"]),
                assurance=AssuranceLevel.parse(str(fields["a"])),
                expires_at=float(fields["e"]),
                error=None if error is None else str(error),
            )
        except (KeyError, TypeError, ValueError):
            return None
