"""The streaming reverse proxy: one ASGI request in, one upstream exchange out.

Raw ASGI, no framework on this path (SPEC §1: it is the hot path).  Bodies
stream both ways with bounded memory; ASGI server back-pressure (uvicorn's
``send`` waits while the client is slow) pauses reading from the upstream.

What the client sees:

- the upstream's status, headers (minus hop-by-hop ones; repeated fields such as
  ``Set-Cookie`` kept separate) and bytes;
- ``413`` when the request body is larger than ``max_request_body``;
- a request body up to ``request_buffer_size`` is read whole before an upstream
  connection is taken, and sent with a ``Content-Length`` of the bytes read
  (nginx's ``proxy_request_buffering``): a client trickling its body holds a
  client connection, which the server's body timeouts bound, never an upstream
  one.  A larger body streams after its first ``request_buffer_size`` bytes;
- ``502 upstream_unavailable`` / ``504 upstream_timeout`` as problem responses
  when the upstream fails before its response head;
- a dropped connection when it fails after the head: a response that has started
  cannot become an error, and a truncated body must not look complete.  ``forward``
  then returns without finishing the response, which makes the ASGI server close
  the connection.

WebSocket scopes are relayed by :mod:`gateway.proxy.websocket`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection, Container, Iterable, Sequence
from urllib.parse import quote

from gateway.core.cache import BoundedCache
from gateway.core.forwarding import (
    CREDENTIAL_SCHEMES,
    ForwardingCache,
    Network,
    downstream_response_headers,
    is_trusted,
    private_cache_headers,
    upstream_request_parts,
)
from gateway.core.headers import HeaderBlock
from gateway.core.problem import send_problem
from gateway.errors import UpstreamError
from gateway.proxy.websocket import relay_websocket
from gateway.session.codec import CHALLENGE_COOKIE, SESSION_COOKIE
from gateway.settings import Settings
from gateway.types import Receive, Scope, Send
from gateway.upstream import make_client
from gateway.upstream.base import (
    BodyAborted,
    RequestBody,
    UpstreamClient,
    UpstreamResponse,
)
from gateway.upstream.pool import PoolClient, PoolResponse
from gateway.upstream.reference import AiohttpClient
from verifiers.base import Verifier

__all__ = [
    "CLIENT_GONE",
    "NO_BODY_STATUSES",
    "Proxy",
    "private_cache_headers",
    "upstream_target",
]

log = logging.getLogger("agegate.proxy")

CLIENT_GONE = 499  # nginx's code for "the client closed the connection first"; never sent
NO_BODY_STATUSES = frozenset({204, 304})
_NO_BODY_STATUSES = NO_BODY_STATUSES
_FORWARDING_ENTRIES = 1024  # (client address, scheme, host): they churn slowly
_PEER_ENTRIES = 1024
# One client-facing text per reason, whichever upstream client noticed what.
_DETAILS = {
    "upstream_unavailable": "the site's server could not be reached",
    "upstream_timeout": "the site's server did not answer in time",
    "upstream_busy": "the site's server is busy; try again",
}
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


class _RequestBody:
    """Reads the ASGI request body lazily, counting it against the limit."""

    __slots__ = ("done", "first", "gone", "limit", "more", "receive", "too_large")

    def __init__(self, receive: Receive, limit: int, first: bytes | None) -> None:
        self.receive = receive
        self.limit = limit
        self.first = first
        self.more = True  # whether messages follow ``first``
        self.done = False
        self.gone = False
        self.too_large = False

    async def chunks(self) -> AsyncIterator[bytes]:
        size = 0
        if self.first is not None:
            size = len(self.first)
            yield self.first
            if not self.more:
                self.done = True
                return
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                raise BodyAborted("the client went away while sending the body")
            data = message.get("body", b"")
            size += len(data)
            if size > self.limit:
                self.too_large = True
                raise BodyAborted("the request body is too large")
            if data:
                yield data
            if not message.get("more_body", False):
                self.done = True
                return


def upstream_target(path: str, query: bytes) -> bytes:
    """The request-target sent upstream for a canonical ``path`` and a raw ``query``."""
    # The canonical path is already percent-encoded except where it decoded
    # unreserved characters; anything else non-ASCII is encoded here.
    raw = path.encode("ascii") if path.isascii() and " " not in path else None
    if raw is None:
        raw = quote(path, safe=_PATH_SAFE).encode("ascii")
    return raw + b"?" + query if query else raw


class Proxy:
    """Forwards allowed requests to the site's upstream."""

    def __init__(
        self,
        *,
        upstream: str,
        connect_timeout: float,
        read_timeout: float,
        trusted_proxies: Sequence[Network],
        forward_client_ip: bool,
        strip_cookie_names: Collection[bytes],
        max_request_body: int,
        request_buffer_size: int = 64 * 1024,
        max_connections: int = 100,
        client: str = "pool",
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._trusted = tuple(trusted_proxies)
        self._forward_client_ip = forward_client_ip
        self._strip_cookies = frozenset(strip_cookie_names)
        # Cookie headers known to hold only our session cookie (SessionCodec.alone_headers).
        self.session_cookie_headers: Container[bytes] = ()
        self.credential_schemes = CREDENTIAL_SCHEMES  # plus the plug-ins' (add_credential_scheme)
        self._max_body = max_request_body
        self._buffer_size = request_buffer_size
        self._max_connections = max_connections
        self._kind = client
        self._client: UpstreamClient | None = None
        self._ws: AiohttpClient | None = None
        # The httptools pool while it is the upstream client (the fast path needs it).
        self.pool: PoolClient | None = None
        self._forwarding: ForwardingCache = BoundedCache(_FORWARDING_ENTRIES)
        # Whether a peer address is a trusted proxy: an address parse is the slow part.
        self._trusted_peers: BoundedCache[str | None, bool] = BoundedCache(
            _PEER_ENTRIES, max_key_size=64
        )
        make_client(client, self.upstream, connect_timeout=1, read_timeout=1)  # validate kind
        if request_buffer_size < 1 or max_connections < 1:
            raise ValueError("request_buffer_size and max_connections must be positive")

    @classmethod
    def from_settings(cls, settings: Settings) -> Proxy:
        """The proxy to ``settings.upstream``, with agegate's cookies kept from it."""
        return cls(
            upstream=settings.upstream,
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
            trusted_proxies=settings.trusted_proxies,
            forward_client_ip=settings.forward_client_ip,
            strip_cookie_names=(SESSION_COOKIE.encode(), CHALLENGE_COOKIE.encode()),
            max_request_body=settings.max_request_body,
            request_buffer_size=settings.request_buffer_size,
            max_connections=settings.upstream_max_connections,
        )

    def add_credential_schemes(self, verifiers: Iterable[Verifier]) -> None:
        """Never forward an ``Authorization`` in a scheme of one of ``verifiers``."""
        for verifier in verifiers:
            if verifier.auth_scheme:
                self.credential_schemes |= {verifier.auth_scheme.lower().encode("latin-1")}

    async def start(self) -> None:
        """Create the upstream client(s); call once from the app lifespan."""
        self._ws = AiohttpClient(
            self.upstream,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            max_connections=self._max_connections,
        )
        await self._ws.start()
        if self._kind == "aiohttp":
            self._client = self._ws
        else:
            self._client = make_client(
                self._kind,
                self.upstream,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                max_connections=self._max_connections,
            )
            await self._client.start()
        client = self._client
        self.pool = client if isinstance(client, PoolClient) else None

    async def close(self) -> None:
        """Close every upstream connection."""
        if self._client is not None and self._client is not self._ws:
            await self._client.close()
        if self._ws is not None:
            await self._ws.close()
        self._client = self._ws = None
        self.pool = None

    @property
    def read_timeout(self) -> float:
        """Seconds to wait for each part of an upstream response."""
        return self._read_timeout

    def bodyless_request(
        self,
        pool: PoolClient,
        scope: Scope,
        *,
        host: bytes,
        path: bytes,
        add_headers: HeaderBlock,
    ) -> bytes:
        """The head :meth:`forward` would send for a request without a body.

        ``path`` is :func:`upstream_target` of the canonical path without a query.
        The same fields in the same order as :meth:`forward` sends, the
        gateway's own (forwarding and ``add_headers``) copied in wire form.
        """
        headers, own = self._parts(scope, host)
        query = scope.get("query_string")
        target = path + b"?" + query if query else path
        return pool.request_head(scope["method"], target, headers, own.wire, add_headers.wire)

    async def recover(
        self,
        receive: Receive,
        send: Send,
        *,
        pool: PoolClient,
        method: str,
        head: bytes,
        error: UpstreamError,
        stale: bool,
        accept: bytes | None,
        private: bool,
    ) -> int:
        """Go on as :meth:`forward` does when its first attempt failed before a response.

        A stale keep-alive connection (no byte back) is retried once on a new one;
        any other failure, or the retry's, is answered 502/504 as :meth:`forward` does.
        """
        is_head = method == "HEAD"
        if stale:
            try:
                response: PoolResponse = await pool.retry_fresh(method, head)
            except UpstreamError as exc:
                error = exc
            else:
                try:
                    return await self._relay_response(
                        response, receive, send, is_head, True, private
                    )
                finally:
                    response.release()
        log.warning("upstream failed", extra={"event": "upstream_error", "reason": error.reason})
        detail = _DETAILS.get(error.reason, str(error))
        await send_problem(send, error.status, error.reason, detail, accept=accept, head=is_head)
        return error.status

    def _headers(
        self, scope: Scope, host: bytes, add_headers: Sequence[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """:func:`upstream_request_headers` for this request."""
        headers, own = self._parts(scope, host)
        headers += own
        headers += add_headers
        return headers

    def _parts(self, scope: Scope, host: bytes) -> tuple[list[tuple[bytes, bytes]], HeaderBlock]:
        """:func:`upstream_request_parts` for this request."""
        client = scope.get("client")
        client_ip = client[0] if client else None
        scheme = scope.get("scheme", "http")
        if scheme in ("ws", "wss"):
            scheme = "http" if scheme == "ws" else "https"
        trusted = self._trusted_peers.entries.get(client_ip)
        if trusted is None:
            trusted = self._trusted_peers.put(client_ip, is_trusted(client_ip, self._trusted))
        return upstream_request_parts(
            scope["headers"],
            client_ip=client_ip,
            scheme=scheme,
            host=host,
            trusted_peer=trusted,
            forward_client_ip=self._forward_client_ip,
            strip_cookie_names=self._strip_cookies,
            strip_auth_schemes=self.credential_schemes,
            cache=self._forwarding,
            dropped_cookie_headers=self.session_cookie_headers,
        )

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        path: str,
        query: bytes,
        add_headers: Sequence[tuple[bytes, bytes]],
        private: bool = False,
        host: bytes | None = None,
    ) -> int:
        """Proxy one ASGI request to the upstream; the status sent to the client.

        ``path`` is the canonical path and ``query`` the raw query string.
        ``host`` is the normal form of the accepted ``Host`` (gateway/core/hosts.py),
        sent upstream as ``Host`` and ``X-Forwarded-Host`` in place of the
        client's spelling; None sends the client's own.
        ``private`` keeps the response out of shared caches (see
        :func:`private_cache_headers`).  Returns :data:`CLIENT_GONE` when the
        client left before a response.
        """
        if self._client is None or self._ws is None:
            raise RuntimeError("Proxy.start() was not called")
        target = upstream_target(path, query)
        # One pass over the client's headers for everything this function needs.
        client_host = b""
        accept = length = None
        chunked = expect = False
        for name, value in scope["headers"]:
            if name == b"host":
                client_host = value
            elif name == b"accept":
                accept = value
            elif name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                expect = True
        headers = self._headers(scope, client_host if host is None else host, add_headers)
        if scope["type"] == "websocket":
            return await relay_websocket(self._ws, scope, receive, send, target, headers)
        method: str = scope["method"]
        head = method == "HEAD"
        if length in (None, b"0") and not chunked:
            # No body (the common GET): nothing to validate or read.
            body: RequestBody = b""
            reader = _RequestBody(receive, self._max_body, None)
            reader.done = True
        else:
            prepared = await self._request_body(receive, send, length, expect, accept, head)
            if isinstance(prepared, int):
                return prepared
            body, reader = prepared
            if length is not None and not chunked and not isinstance(body, bytes):
                # Streamed with the length the client declared (checked to be a number);
                # the upstream client holds the bytes it sends to it.
                headers.append((b"content-length", length))
            elif expect and isinstance(body, bytes):
                # Read already (after our own 100 Continue): the upstream gets it whole.
                headers = [pair for pair in headers if pair[0] != b"expect"]
        try:
            response = await self._client.request(method, target, headers, body)
        except (UpstreamError, BodyAborted) as exc:
            if reader.too_large:
                return await self._too_large(send, accept, head)
            if reader.gone:
                return CLIENT_GONE
            if not isinstance(exc, UpstreamError):
                # The body did not match its declared length: nothing sent can be trusted.
                log.warning("request body refused", extra={"event": "bad_request_body"})
                await send_problem(
                    send,
                    400,
                    "bad_request_body",
                    "the request body does not match its declared length",
                    accept=accept,
                    head=head,
                    headers=[(b"connection", b"close")],
                )
                return 400
            log.warning("upstream failed", extra={"event": "upstream_error", "reason": exc.reason})
            detail = _DETAILS.get(exc.reason, str(exc))
            await send_problem(send, exc.status, exc.reason, detail, accept=accept, head=head)
            return exc.status
        try:
            return await self._relay_response(response, receive, send, head, reader.done, private)
        finally:
            response.release()

    async def _request_body(
        self,
        receive: Receive,
        send: Send,
        length: bytes | None,
        expect: bool,
        accept: bytes | None,
        head: bool,
    ) -> tuple[RequestBody, _RequestBody] | int:
        """The body to send upstream, or the status already answered (400, 413, gone)."""
        reader = _RequestBody(receive, self._max_body, None)
        if length is not None:
            if not length.isdigit():
                await send_problem(
                    send,
                    400,
                    "bad_content_length",
                    "the Content-Length header is not a number",
                    accept=accept,
                    head=head,
                )
                return 400
            if int(length) > self._max_body:
                return await self._too_large(send, accept, head)
        # (No body at all is answered by forward() before it comes here.)
        declared = -1 if length is None else int(length)
        if expect and declared > self._buffer_size:
            # Too large to buffer: read only when the upstream asks for it (100-continue).
            return reader.chunks(), reader
        # Buffered before any upstream connection is taken: a client that trickles its
        # body waits on the server's body timeouts alone (nginx: proxy_request_buffering).
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return CLIENT_GONE
            data = message.get("body", b"")
            size += len(data)
            if size > self._max_body:
                return await self._too_large(send, accept, head)
            parts.append(data)
            if not message.get("more_body", False):
                reader.done = True
                return (parts[0] if len(parts) == 1 else b"".join(parts)), reader
            if size >= self._buffer_size:
                break
        # Larger: what is read leads, the rest streams (chunked when it came chunked).
        reader.first = b"".join(parts)
        reader.more = True
        return reader.chunks(), reader

    async def _too_large(self, send: Send, accept: bytes | None, head: bool) -> int:
        detail = f"the request body is larger than {self._max_body} bytes"
        await send_problem(
            send,
            413,
            "body_too_large",
            detail,
            accept=accept,
            head=head,
            headers=[(b"connection", b"close")],
        )
        return 413

    async def _relay_response(
        self,
        response: UpstreamResponse,
        receive: Receive,
        send: Send,
        head: bool,
        idle: bool,
        private: bool,
    ) -> int:
        status = response.status
        headers = downstream_response_headers(response.headers, private=private)
        bodyless = head or status in _NO_BODY_STATUSES
        if status in _NO_BODY_STATUSES:
            # uvicorn would expect that many body bytes; a 204/304 has none.
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if bodyless:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return status
        watcher: asyncio.Task[None] | None = None
        gone: asyncio.Event | None = None
        try:
            while True:
                try:
                    # Small bodies are usually here with the head: no coroutine for them.
                    chunk = response.read_nowait()
                    data, more = chunk if chunk is not None else await response.read()
                except UpstreamError as exc:
                    log.warning(
                        "upstream broke off the response",
                        extra={"event": "upstream_aborted", "reason": exc.reason},
                    )
                    return status  # response left unfinished: the server drops the connection
                await send({"type": "http.response.body", "body": data, "more_body": more})
                if not more or (gone is not None and gone.is_set()):
                    return status
                if watcher is None and idle:
                    # A long body: stop reading the upstream once the client has left.
                    gone = asyncio.Event()
                    watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        finally:
            if watcher is not None:
                watcher.cancel()


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()
