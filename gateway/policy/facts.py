"""The inputs of :func:`gateway.policy.decide`: request facts and session claims.

Both are frozen values built by the HTTP layer (request facts per request;
session claims once per cookie, which the session codec then keeps, with
``decided``, the policy's memo of its answers, as their one mutable part);
the policy package never sees a socket, a header list or a cookie string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from verifiers.base import AssuranceLevel

if TYPE_CHECKING:
    from gateway.policy.model import Decision, SessionCheck

__all__ = ["RequestFacts", "SessionClaims"]


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the policy may know about a request."""

    method: str  # upper-case, e.g. "GET"
    host: str  # lower-case, without port
    path: str  # canonical path from gateway.core.paths (never the query)
    jurisdiction: str | None = None  # upper-case code from a trusted proxy header, else None


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """What a session cookie holds: proven thresholds and how, never who."""

    age_over: frozenset[int]
    age_under: frozenset[int]
    assurance: AssuranceLevel
    verifier: str
    issued_at: float  # seconds since the epoch
    expires_at: float  # seconds since the epoch
    # Random per session (16 bytes, base64url), only so a logout can revoke it server-side;
    # None for a cookie sealed before session ids existed.  Never derived from the visitor.
    session_id: str | None = None
    # What each rule's check made of these claims while unexpired (SessionCheck.decide):
    # that answer depends on the claims alone, so a session the codec keeps is decided
    # once per check.  Policy decisions only: nothing of the cookie or the visitor.
    decided: dict[SessionCheck, Decision] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
