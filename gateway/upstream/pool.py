"""A minimal HTTP/1.1 keep-alive connection pool on httptools.

It does only what a reverse proxy needs, so the proxied path stays cheap: one
asyncio ``Protocol`` per connection, the llhttp parser uvicorn already uses, no
URL objects, no header multidicts.

Rules (SPEC §1), each tested differentially against aiohttp:

- HEAD, 204 and 304 responses end at their head (the parser cannot be told
  that a HEAD response has no body, so the pool decides; a fresh parser per
  exchange keeps the next response aligned);
- 1xx interim responses are dropped; ``100 Continue`` releases a request body
  held back for ``Expect: 100-continue``; an unasked ``101`` is an error;
- chunked, ``Content-Length`` and close-delimited bodies; an EOF ends only a
  close-delimited body, anywhere else it is an upstream failure;
- a connection is reused only after a complete exchange with keep-alive: never
  after an error, a cancel, a partly read body or a body not sent;
- a request that fails on a reused connection before any response byte is
  retried once on a new connection, only if its method is idempotent and its
  body is replayable (``bytes``); everything else is answered 502;
- connect and read timeouts (504), a limit on open connections, idle eviction.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Sequence
from urllib.parse import urlsplit

from gateway.core.headers import header_value
from gateway.errors import UpstreamError
from gateway.upstream.base import (
    BODYLESS_METHODS,
    IDEMPOTENT_METHODS,
    BodyAborted,
    RequestBody,
    unavailable,
    upstream_timeout,
)
from gateway.upstream.connection import Connection

__all__ = ["PoolClient", "PoolResponse"]

_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_EXPECT_WAIT = 1.0  # RFC 9110 §10.1.1: send the body anyway if no 100 comes this soon


class PoolResponse:
    """The response of one exchange; the body is read with :meth:`read`."""

    __slots__ = ("_conn", "_pool", "_read_timeout", "_sent_body", "headers", "status")

    def __init__(self, pool: PoolClient, conn: Connection, sent_body: bool) -> None:
        self._pool = pool
        self._conn: Connection | None = conn
        self._read_timeout = pool.read_timeout
        self._sent_body = sent_body
        self.status = conn.status
        self.headers = conn.headers

    def read_nowait(self) -> tuple[bytes, bool] | None:
        """What :meth:`read` would return, if that needs no wait; else None."""
        conn = self._conn
        if conn is None:
            return b"", False
        if conn.chunks:
            data = conn.take_body()
            if conn.complete:
                self.release()
                return data, False
            return data, True
        if conn.complete:
            self.release()
            return b"", False
        return None

    async def read(self) -> tuple[bytes, bool]:
        """The next body bytes and whether more follow."""
        while True:
            chunk = self.read_nowait()
            if chunk is not None:
                return chunk
            conn = self._conn
            if conn is None:  # not reached: read_nowait answers once the exchange ended
                return b"", False
            await conn.wait(self._read_timeout)

    def release(self) -> None:
        """Return the connection to the pool if the exchange ended cleanly, else close it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            clean = conn.complete and not conn.chunks and self._sent_body
            self._pool.release(conn, reusable=clean)


class PoolClient:
    """Keep-alive connections to one upstream origin."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 100,
        idle_timeout: float = 15.0,
    ) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._prefix = parts.path.rstrip("/").encode("latin-1")
        self.default_host = parts.netloc.encode("latin-1")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._idle: deque[Connection] = deque()  # oldest on the left, reused from the right
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def open_connections(self) -> int:
        """Connections currently open, idle or busy."""
        return self._open

    @property
    def idle_connections(self) -> int:
        """Connections waiting in the pool for reuse."""
        return len(self._idle)

    async def start(self) -> None:
        """Bind to the running loop (connections open on demand)."""
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Close idle connections; busy ones close when their exchange ends."""
        while self._idle:
            self._idle.pop().close()

    # connections -------------------------------------------------------------
    async def _connect(self) -> Connection:
        self._open += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await self.loop.create_connection(
                    lambda: Connection(self), self.host, self.port, ssl=self._ssl
                )
        except TimeoutError:
            self._closed_one()
            raise upstream_timeout("the upstream did not accept the connection in time") from None
        except OSError:
            self._closed_one()
            raise unavailable("the upstream refused the connection") from None
        except BaseException:
            self._closed_one()
            raise
        return conn

    def take_idle(self) -> Connection | None:
        """The most recently used live idle connection (older dead ones are closed), or None.

        The fast path never waits for one.
        """
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                conn.reused = True
                return conn
            self._discard(conn)
        return None

    async def _acquire(self) -> Connection:
        conn = self.take_idle()
        if conn is not None:
            return conn
        if self._open >= self.max_connections:
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await waiter
            except TimeoutError:
                raise UpstreamError(
                    "upstream_busy", "every upstream connection is busy", status=503
                ) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            return await self._acquire()
        return await self._connect()

    def _closed_one(self) -> None:
        self._open -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _discard(self, conn: Connection) -> None:
        conn.close()
        self.forget(conn)

    def forget(self, conn: Connection) -> None:
        """Called when a connection closes: drop it from the idle list and the count."""
        if conn in self._idle:
            self._idle.remove(conn)
        if not conn.counted_out:
            conn.counted_out = True
            self._closed_one()

    def release(self, conn: Connection, *, reusable: bool) -> None:
        """Put ``conn`` back for reuse, or close it."""
        if not (reusable and conn.keep_alive and conn.error is None and not conn.closed):
            self._discard(conn)
            return
        now = time.monotonic()
        conn.end()
        conn.sink = None
        conn.idle_since = now
        self._idle.append(conn)
        while self._idle and now - self._idle[0].idle_since >= self.idle_timeout:
            self._discard(self._idle.popleft())
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # exchanges ----------------------------------------------------------------
    async def request(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: RequestBody
    ) -> PoolResponse:
        """Send one request; see :class:`gateway.upstream.base.UpstreamClient`."""
        head, length = self._head(method, target, headers, body)
        # An idle connection is the common case: taken without another coroutine.
        conn = self.take_idle() or await self._acquire()
        try:
            return await self._exchange(conn, method, head, length, headers, body)
        except UpstreamError as exc:
            stale = conn.reused and not conn.got_bytes and exc.reason == "upstream_unavailable"
            if not (stale and method in IDEMPOTENT_METHODS and isinstance(body, bytes)):
                raise
        # The keep-alive connection had been closed by the upstream: retry once, fresh.
        conn = await self._connect()
        return await self._exchange(conn, method, head, length, headers, body)

    def request_head(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], *wires: bytes
    ) -> bytes:
        """The head :meth:`request` writes for a request without a body.

        ``wires`` are more fields already in wire form (:class:`HeaderBlock`
        ``.wire``), written after ``headers`` where :meth:`request` would write
        the same fields had they been in ``headers``: the head is byte for byte
        the one :meth:`request` writes for ``headers`` followed by their fields.
        """
        return self._head(method, target, headers, b"", wires)[0]

    async def retry_fresh(self, method: str, head: bytes) -> PoolResponse:
        """A bodyless request again, on a new connection (its keep-alive one was stale)."""
        conn = await self._connect()
        return await self._exchange(conn, method, head, None, (), b"")

    def _head(
        self,
        method: str,
        target: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: RequestBody,
        wires: tuple[bytes, ...] = (),
    ) -> tuple[bytes, int | None]:
        """The request head, and the body length it declares (None: chunked or no body).

        The framing is the pool's own, from the body it is given: a ``bytes``
        body gets its exact length; an iterator keeps a ``Content-Length`` the
        caller validated, which :meth:`_send` then holds it to, else goes
        chunked.  A ``Content-Length`` beside a ``bytes`` body, or any
        ``Transfer-Encoding``, is never copied: a declared length the bytes
        sent do not fill would make the upstream read the next request on
        this connection as the rest of this body.
        """
        lines = [method.encode("ascii"), b" ", self._prefix, target, b" HTTP/1.1\r\n"]
        has_host = False
        length: int | None = None
        streaming = not isinstance(body, bytes)
        for name, value in headers:
            if name in _FRAMING:
                if name == b"content-length" and streaming and length is None:
                    length = int(value)  # the proxy checked it is one plain number
                continue
            lines += (name, b": ", value, b"\r\n")
            if name == b"host":
                has_host = True
        if wires:
            lines += wires  # fields of the gateway's own: never framing, never Host
        if not has_host:
            lines += (b"host: ", self.default_host, b"\r\n")
        if isinstance(body, bytes):
            if body or method not in BODYLESS_METHODS:
                lines += (b"content-length: ", str(len(body)).encode(), b"\r\n")
        elif length is not None:
            lines += (b"content-length: ", str(length).encode(), b"\r\n")
        else:
            lines.append(b"transfer-encoding: chunked\r\n")
        lines.append(b"\r\n")
        return b"".join(lines), length

    async def _exchange(
        self,
        conn: Connection,
        method: str,
        head: bytes,
        length: int | None,
        headers: Sequence[tuple[bytes, bytes]],
        body: RequestBody,
    ) -> PoolResponse:
        conn.begin(head_only=method == "HEAD")
        try:
            if isinstance(body, bytes) and (not body or header_value(headers, b"expect") is None):
                conn.write(head + body if body else head)  # the whole request in one write
                sent = True
            else:
                sent = await self._send(conn, head, length, headers, body)
            while not conn.head_done:
                await conn.wait(self.read_timeout)
        except BaseException:
            # Error, timeout, cancel or an aborted body: this stream is out of step.
            self._discard(conn)
            raise
        return PoolResponse(self, conn, sent)

    async def _send(
        self,
        conn: Connection,
        head: bytes,
        length: int | None,
        headers: Sequence[tuple[bytes, bytes]],
        body: RequestBody,
    ) -> bool:
        """Write the request; False when the upstream answered before the body was sent."""
        expect = header_value(headers, b"expect") if body else None
        if expect is not None and expect.lower() == b"100-continue":
            conn.write(head)
            deadline = self.loop.time() + _EXPECT_WAIT
            while not (conn.continued or conn.head_done) and self.loop.time() < deadline:
                await conn.wait(_EXPECT_WAIT, fatal=False)
            if conn.head_done:
                # Answered without wanting the body (417, 401, 413...): the
                # upstream may still expect it, so this connection ends here.
                aclose = getattr(body, "aclose", None)
                if aclose is not None:
                    await aclose()
                return False
            head = b""
        if isinstance(body, bytes):
            conn.write(head + body if body else head)
            return True
        if head:
            conn.write(head)
        if length is None:
            async for piece in body:
                if piece:
                    conn.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                    await conn.drain()
            conn.write(b"0\r\n\r\n")
            return True
        left = length
        async for piece in body:
            left -= len(piece)
            if left < 0:
                raise BodyAborted("the request body is longer than its Content-Length")
            if piece:
                conn.write(piece)
                await conn.drain()
        if left:
            # Fewer bytes than declared: the upstream would take the next request on
            # this connection for the rest (the caller discards the connection).
            raise BodyAborted("the request body is shorter than its Content-Length")
        return True
