"""The upstream client interface, shared by both implementations.

:class:`UpstreamClient` sends one request and returns an
:class:`UpstreamResponse` whose body is read chunk by chunk, so bodies stream
both ways with bounded memory.  Implementations:

- ``"pool"`` (default, :mod:`gateway.upstream.pool`): a minimal keep-alive
  connection pool on httptools, the parser uvicorn already uses (SPEC §1, §10);
- ``"aiohttp"`` (:mod:`gateway.upstream.reference`): the implementation the pool
  is tested against, and the WebSocket relay's client.

Framing rule shared by both, so they send the same bytes: a ``bytes`` body is
sent with its own ``Content-Length`` (``0`` is sent only for methods that carry
a body); an iterator body is sent with the ``Content-Length`` the proxy
validated and puts in the headers (the pool refuses to send more or fewer
bytes than that), and chunked otherwise.  The client's own framing headers
never reach this interface (:mod:`gateway.core.forwarding` drops them).  Failures
are :class:`UpstreamError`: ``upstream_unavailable`` (502) or
``upstream_timeout`` (504).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gateway.errors import UpstreamError

__all__ = [
    "BODYLESS_METHODS",
    "IDEMPOTENT_METHODS",
    "BodyAborted",
    "RequestBody",
    "UpstreamClient",
    "UpstreamResponse",
    "unavailable",
    "upstream_timeout",
]

RequestBody = bytes | AsyncIterator[bytes]

# RFC 9110 §9.2.2; only these may be retried on a stale keep-alive connection.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# Methods that get no ``Content-Length: 0`` when they have no body (as aiohttp does).
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class BodyAborted(Exception):
    """Raised by a request-body iterator to stop sending (client gone, body too large).

    Clients let it through unchanged, so the proxy can answer 413 or give up.
    """


def unavailable(detail: str = "the upstream refused or reset the connection") -> UpstreamError:
    """The 502 error for an upstream that cannot be reached or broke the exchange."""
    return UpstreamError("upstream_unavailable", detail, status=502)


def upstream_timeout(detail: str = "the upstream did not answer in time") -> UpstreamError:
    """The 504 error for an upstream that did not connect or answer in time."""
    return UpstreamError("upstream_timeout", detail, status=504)


class UpstreamResponse(Protocol):
    """A response whose head has arrived; the body is read with :meth:`read`."""

    status: int
    headers: list[tuple[bytes, bytes]]  # as received: hop-by-hop headers still in

    async def read(self) -> tuple[bytes, bool]:
        """The next body bytes and whether more follow; raises :class:`UpstreamError`."""
        ...

    def read_nowait(self) -> tuple[bytes, bool] | None:
        """What :meth:`read` would return when that needs no wait (already here), else None."""
        ...

    def release(self) -> None:
        """Give the connection back (reused only if the body was read to its end)."""
        ...


class UpstreamClient(Protocol):
    """Sends requests to one upstream origin."""

    async def start(self) -> None:
        """Create sessions and pools (called from the app lifespan)."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...

    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: RequestBody
    ) -> UpstreamResponse:
        """Send ``method target`` with ``headers`` (``Host`` included) and ``body``."""
        ...
