"""One upstream HTTP/1.1 connection of the pool: an asyncio Protocol around httptools.

It parses the response of the current exchange and hands the body out in
chunks with back-pressure (reading pauses past a high-water mark).  The
pool-level rules are in :mod:`gateway.upstream.pool`; this module only knows
how one response is framed:

- HEAD, 204 and 304 end at their head (httptools cannot be told a HEAD response
  has no body, so an exchange after a HEAD gets a fresh parser, which keeps the
  stream aligned; after any other clean response the parser is reused, as
  llhttp expects the next message on a keep-alive stream);
- 1xx interim responses are dropped, ``100 Continue`` is recorded;
- an EOF ends a close-delimited body; anywhere else it is an upstream failure.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

import httptools

from gateway.core.timers import ConnectionTimer
from gateway.errors import UpstreamError
from gateway.upstream.base import unavailable, upstream_timeout

__all__ = ["Connection", "ConnectionOwner", "ResponseSink"]

_FRAMING = frozenset({b"content-length", b"transfer-encoding"})
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING)  # only these can be one
_HIGH_WATER = 256 * 1024  # buffered response bytes before reading from the upstream pauses


class _ExtraMessage(Exception):
    """Raised from a parser callback: bytes past the end of the current response."""


class ConnectionOwner(Protocol):
    """What a connection needs from its pool."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the pool runs on."""
        ...

    def forget(self, conn: Connection) -> None:
        """Called once when ``conn`` has closed."""
        ...


class ResponseSink(Protocol):
    """Takes a response as it arrives, instead of a coroutine reading it (the fast path)."""

    def upstream_progress(self, conn: Connection) -> None:
        """Called after the connection got bytes, closed, failed or timed out."""
        ...


class Connection(asyncio.Protocol):
    """One upstream connection; parses the response of the current exchange."""

    def __init__(self, pool: ConnectionOwner) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser: Any = None  # set while an exchange is in progress
        self._spare_parser: Any = None  # the last clean exchange's, for the next one
        self.closed = False
        self.reused = False
        self.counted_out = False  # already subtracted from the pool's open count
        self.idle_since = 0.0
        self._drain: asyncio.Future[None] | None = None
        # One timer per connection, moved only when a wait ends sooner than it fires:
        # a timer per wait costs more than the rest of the wait.
        self._timer = ConnectionTimer(self.loop, self._on_timer)
        self._deadline = 0.0
        self._fatal = True
        # Fast path: the response goes to a sink as it arrives (no waiter, no task).
        self.sink: ResponseSink | None = None
        self.sink_timeout = 0.0  # the read timeout while a sink waits on the upstream
        self.sink_paused = False  # reading paused because the sink's client is slow
        self.reset(head_only=False)

    def begin(self, *, head_only: bool) -> None:
        """Prepare for a new exchange: fresh state, and a parser ready for its response."""
        self.reset(head_only=head_only)
        parser = self._spare_parser
        self._spare_parser = None
        self.parser = parser if parser is not None else httptools.HttpResponseParser(self)

    def end(self) -> None:
        """The exchange ended and the connection goes back to the pool (see :meth:`begin`)."""
        if self.complete and not self.head_only and self.error is None:
            self._spare_parser = self.parser
        self.parser = None

    def reset(self, *, head_only: bool) -> None:
        """Prepare for a new exchange."""
        self.head_only = head_only
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.until_eof = False
        self.interim = False
        self.got_bytes = False
        self.error: UpstreamError | None = None
        self.continued = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.parser is None or self.complete:
            # Bytes nobody asked for (a body on a HEAD response, say): the
            # stream is out of step, so the connection must not be reused.
            self.keep_alive = False
            self._fail(unavailable("the upstream sent bytes outside a response"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(unavailable("the upstream switched protocols unasked"))
        except httptools.HttpParserError:
            self._fail(unavailable("the upstream sent a malformed response"))
        sink = self.sink
        if sink is not None:
            # Acted on once the parser has returned, never from inside its callbacks:
            # the sink may hand this connection to the next request.
            self._deadline = self.loop.time() + self.sink_timeout
            sink.upstream_progress(self)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._timer.stop()
        self.pool.forget(self)
        if self.head_done and self.until_eof and exc is None and not self.complete:
            self.complete = True  # EOF is how a close-delimited body ends
            self._wake()
        elif not self.complete:
            self._fail(unavailable("the upstream closed the connection"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(unavailable("the upstream closed the connection"))
        if self.sink is not None:
            self.sink.upstream_progress(self)

    def pause_writing(self) -> None:
        self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # httptools callbacks --------------------------------------------------
    def on_message_begin(self) -> None:
        if self.complete:
            # Another message in the bytes that ended this one: an upstream answering
            # twice (or smuggling a response).  Parsing stops here, so nothing of it
            # reaches this exchange; data_received fails the connection, which is
            # then never reused, and a kept parser never carries it into the next.
            raise _ExtraMessage

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # dropped; its on_message_complete is ignored too
            self.headers = []
            if status == 100:
                self.continued = True
                if self.waiter is not None:
                    self._wake()
            return
        self.status = status
        self.head_done = True
        self.keep_alive = bool(self.parser.should_keep_alive())
        if self.head_only or status in (204, 304):
            self.complete = True
        else:
            framed = False
            for name, _ in self.headers:
                if len(name) in _FRAMING_LENGTHS and name.lower() in _FRAMING:
                    framed = True
                    break
            if not framed:
                self.until_eof = True
                self.keep_alive = False
        if self.waiter is not None:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self.keep_alive = False  # a body where none may be: do not trust this stream
            return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if self.waiter is not None:
            self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        if self.waiter is not None:
            self._wake()

    # exchange helpers ------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self.keep_alive = False
        if self.error is None:
            self.error = error
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None and not self.closed:
            self.transport.close()

    async def wait(self, timeout: float, *, fatal: bool = True) -> None:
        """Wait for the next parser event, at most ``timeout`` seconds.

        When the time runs out a ``fatal`` wait fails the exchange (504); any
        other wait just returns.
        """
        if self.error is not None:
            raise self.error
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        self._deadline = deadline = loop.time() + timeout
        self._fatal = fatal
        self._timer.arm_no_later(deadline)
        try:
            await waiter
        finally:
            self.waiter = None

    def watch(self, sink: ResponseSink, timeout: float) -> None:
        """Send this exchange's response to ``sink``; ``timeout`` bounds each wait for bytes."""
        self.sink = sink
        self.sink_timeout = timeout
        self.sink_paused = False
        self._deadline = deadline = self.loop.time() + timeout
        self._fatal = True
        self._timer.arm_no_later(deadline)

    def pause_for_sink(self) -> None:
        """The sink's client reads slowly: stop reading (and the read timeout) meanwhile."""
        if not self.sink_paused and self.transport is not None and not self.closed:
            self.sink_paused = True
            self.transport.pause_reading()

    def resume_for_sink(self) -> None:
        if self.sink_paused and self.transport is not None and not self.closed:
            self.sink_paused = False
            self.transport.resume_reading()
            self._deadline = deadline = self.loop.time() + self.sink_timeout
            self._timer.arm_no_later(deadline)

    def _sink_timer(self, sink: ResponseSink) -> None:
        if self.sink_paused or self.complete or self.error is not None:
            return  # the client's send timeout bounds a paused wait
        if self._deadline - self.loop.time() > 0.001:
            self._timer.arm(self._deadline)
            return
        self.keep_alive = False
        self.error = upstream_timeout()
        sink.upstream_progress(self)

    def _on_timer(self) -> None:
        if self.sink is not None:
            self._sink_timer(self.sink)
            return
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # no wait in progress; the next one arms the timer again
        if self._deadline - self.loop.time() > 0.001:
            self._timer.arm(self._deadline)  # this wait began after the timer was set
            return
        if not self._fatal:
            waiter.set_result(None)
            return
        self.keep_alive = False
        self.error = upstream_timeout()
        waiter.set_exception(self.error)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.closed:
            raise unavailable("the upstream closed the connection")
        self.transport.write(data)

    async def drain(self) -> None:
        if self._drain is not None:
            await self._drain

    def take_body(self) -> bytes:
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.sink = None
        self._timer.stop()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
