"""The upstream client: one small interface, two implementations.

:class:`UpstreamClient` sends one request and returns an
:class:`UpstreamResponse` whose body is read chunk by chunk, so bodies stream
both ways with bounded memory.  Implementations:

- ``"pool"`` (default, :mod:`gateway.upstream_pool`): a minimal keep-alive
  connection pool on httptools, the parser uvicorn already uses; about three
  times the throughput of aiohttp on the proxied path (SPEC §1, §10).
- ``"aiohttp"`` (:class:`AiohttpClient`): the reference implementation the pool
  is tested against, and the WebSocket relay's client.

Framing rule shared by both, so they send the same bytes: a ``bytes`` body is
sent with its own ``Content-Length`` (``0`` is sent only for methods that carry
a body); an iterator body is sent with the ``Content-Length`` the proxy
validated and puts in the headers (the pool refuses to send more or fewer
bytes than that), and chunked otherwise.  The client's own framing headers
never reach this interface (:mod:`gateway.forwarding` drops them).  Failures
are :class:`UpstreamError`: ``upstream_unavailable`` (502) or
``upstream_timeout`` (504).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway.errors import UpstreamError

__all__ = [
    "BODYLESS_METHODS",
    "IDEMPOTENT_METHODS",
    "AiohttpClient",
    "BodyAborted",
    "RequestBody",
    "UpstreamClient",
    "UpstreamResponse",
    "header_value",
    "make_client",
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


class _AiohttpResponse:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        # raw_headers keeps repeated fields (Set-Cookie) separate and in order.
        self.headers = list(resp.raw_headers)

    async def read(self) -> tuple[bytes, bool]:
        content = self._resp.content
        try:
            data = await content.readany()
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise upstream_timeout("the upstream stopped sending the body") from None
        except (aiohttp.ClientError, OSError):
            raise unavailable("the upstream broke off the body") from None
        return data, not content.at_eof()

    def read_nowait(self) -> tuple[bytes, bool] | None:
        return None  # the reference client: always the awaited path

    def release(self) -> None:
        # aiohttp reuses the connection only if the payload was read to its end.
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()


_SKIP_AUTO_HEADERS = frozenset({"Accept", "Accept-Encoding", "User-Agent", "Content-Type"})


class AiohttpClient:
    """The upstream client on one shared ``aiohttp.ClientSession``."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 100,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session (for the WebSocket relay); :meth:`start` first."""
        if self._session is None:
            raise RuntimeError("AiohttpClient.start() was not called")
        return self._session

    def url(self, target: bytes, *, scheme: str | None = None) -> URL:
        """The upstream URL for an origin-form ``target``, already percent-encoded."""
        base = self._base
        if scheme is not None:
            base = scheme + base[base.index(":") :]
        return URL(base + target.decode("latin-1"), encoded=True)

    async def start(self) -> None:
        """Create the session."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._limit),
            timeout=self._timeout,
            auto_decompress=False,  # bytes pass through exactly as the site sent them
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep a visitor's cookies
            skip_auto_headers=_SKIP_AUTO_HEADERS,
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: RequestBody
    ) -> UpstreamResponse:
        """Send one request; see :class:`UpstreamClient`."""
        fields = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers)
        data: bytes | AsyncIterator[bytes] | None = body
        if isinstance(body, bytes) and not body:
            data = None  # aiohttp then adds "Content-Length: 0" only where a body is expected
        try:
            resp = await self.session.request(
                method,
                self.url(target),
                headers=fields,
                data=data,
                allow_redirects=False,
                chunked=None,
            )
        except BodyAborted:
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise upstream_timeout() from None
        except (aiohttp.ClientError, OSError) as exc:
            if isinstance(exc.__cause__, BodyAborted) or isinstance(exc.__context__, BodyAborted):
                raise BodyAborted from None
            raise unavailable() from None
        return _AiohttpResponse(resp)


def make_client(
    kind: str,
    base_url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    max_connections: int = 100,
) -> UpstreamClient:
    """The upstream client called ``kind`` (``"pool"`` or ``"aiohttp"``)."""
    if kind == "aiohttp":
        return AiohttpClient(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )
    if kind == "pool":
        from gateway.upstream_pool import PoolClient

        return PoolClient(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )
    raise ValueError(f"unknown upstream client {kind!r} (expected 'pool' or 'aiohttp')")


def header_value(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case) in ``headers``, or None."""
    for key, value in headers:
        if key == name:
            return value
    return None
