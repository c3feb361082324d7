"""The reference upstream client on aiohttp: what the pool is tested against,
and the WebSocket relay's client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway.upstream.base import (
    BodyAborted,
    RequestBody,
    UpstreamResponse,
    unavailable,
    upstream_timeout,
)

__all__ = ["AiohttpClient"]


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
