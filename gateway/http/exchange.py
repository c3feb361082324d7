"""One HTTP/1.1 request and its response, as the ASGI ``receive`` and ``send`` callables.

:class:`Exchange` is the per-request half of :class:`gateway.http.server.GatewayHttpProtocol`:
the connection parses, an exchange buffers the request body for ``receive``
and frames what the app sends:

- the response head is held until the first body chunk, or the end of the
  loop iteration, and leaves with it: a small response is one write;
- ``Content-Length`` bodies are counted (a longer or shorter body is the app's
  error and drops the connection), a body without one is sent chunked (read
  to the close for an HTTP/1.0 client), HEAD/204/304/1xx carry none;
- a header value with CR or LF is refused (no response splitting);
- an app that fails, or returns without a response, gets a ``500`` problem if
  nothing has left yet, else the connection is dropped so a truncated
  response cannot look complete.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from typing import Any, Protocol

from gateway.core.problem import SECURITY_HEADERS, problem_body
from gateway.types import Message

__all__ = ["Connection", "Exchange", "closing_response", "status_line"]

log = logging.getLogger("agegate.server")

# The security headers of every gateway-made response, as head lines.
_SECURITY_LINES = b"".join(b"%s: %s\r\n" % pair for pair in SECURITY_HEADERS)


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>\r\n`` (no phrase for a status Python does not name)."""
    try:
        phrase = http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


_STATUS_LINES = {status: status_line(status) for status in range(100, 600)}
_INTERNAL_ERROR_BODY = json.dumps(
    problem_body(500, "internal_error", "the gateway failed to answer this request"),
    separators=(",", ":"),
).encode()


def closing_response(status: int, phrase: bytes, content_type: bytes, body: bytes) -> bytes:
    """A whole response the server writes itself, with the security headers, before closing."""
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n%s\r\n%s"
        % (status, phrase, content_type, len(body), _SECURITY_LINES, body)
    )


_INTERNAL_ERROR = closing_response(
    500, b"Internal Server Error", b"application/problem+json", _INTERNAL_ERROR_BODY
)


# Response headers whose values change how the body is framed or the connection ends.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})


class Connection(Protocol):
    """What an exchange needs from its connection."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    server_state: Any  # uvicorn's ServerState: default_headers, total_requests
    write_paused: bool

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written."""

    def resume_reading(self) -> None:
        """Read from the client again, unless the connection must not yet."""

    def waiting_for_body(self, exchange: Exchange) -> None:
        """Called when ``exchange``'s app must wait for request body bytes."""

    def response_complete(self, exchange: Exchange) -> None:
        """Called when the last byte of ``exchange``'s response was written."""


class Exchange:
    """One request and its response on a connection: the ASGI ``receive`` and ``send``."""

    __slots__ = (
        "body",
        "body_size",
        "bodyless",
        "chunked",
        "complete",
        "conn",
        "continue_wanted",
        "disconnected",
        "fast",
        "head_request",
        "keep_alive",
        "last_delivered",
        "more_body",
        "pending_head",
        "remaining",
        "scope",
        "started",
        "waiter",
    )

    def __init__(
        self,
        conn: Connection,
        scope: dict[str, Any],
        *,
        keep_alive: bool,
        continue_wanted: bool,
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.continue_wanted = continue_wanted
        self.head_request = scope["method"] == "HEAD"
        self.body: list[bytes] = []
        self.body_size = 0
        self.more_body = True  # the parser has not seen the request's end yet
        self.last_delivered = False  # receive() handed out the final http.request
        self.waiter: asyncio.Future[None] | None = None
        self.disconnected = False
        self.started = False
        self.complete = False
        self.pending_head: bytes | None = None
        self.bodyless = False
        self.chunked = False
        self.remaining = -1  # Content-Length bytes still to send; -1: not length-delimited
        self.fast = False  # the connection may offer it to the app's fast path

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, app: Any) -> None:
        """Run the app for this request; a failure is logged and answered, never passed on."""
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            log.exception("the request handler failed", extra={"event": "internal_error"})
            self._abort()
            return
        except asyncio.CancelledError:
            self._abort()
            raise
        if self.complete or self.disconnected:
            return
        if not self.started:
            log.error("the request handler sent no response", extra={"event": "internal_error"})
        # Left unfinished on purpose (the proxy does so when the upstream breaks off a
        # body): a truncated response must not look complete, so the connection goes.
        self._abort()

    def abort(self) -> None:
        """End a response that cannot finish: a 500 if none has left yet, else a drop."""
        self._abort()

    def _abort(self) -> None:
        transport = self.conn.transport
        if self.complete or self.disconnected or transport.is_closing():
            return
        if not self.started or self.pending_head is not None:
            transport.write(_INTERNAL_ERROR)  # nothing of the response has left yet
        self.keep_alive = False
        self.complete = True
        transport.close()

    async def receive(self) -> Message:
        """The next ``http.request`` message, or ``http.disconnect``."""
        if self.continue_wanted:
            self.continue_wanted = False
            if self.more_body and not self.started and not self.conn.transport.is_closing():
                self.conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not (self.body or (not self.more_body and not self.last_delivered)):
            if self.disconnected or self.complete:
                return {"type": "http.disconnect"}
            self.conn.resume_reading()
            if self.more_body:
                self.conn.waiting_for_body(self)  # bounded by the body timeouts
            self.waiter = self.conn.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.disconnected:
            return {"type": "http.disconnect"}
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        self.body = []
        self.body_size = 0
        if not self.more_body:
            self.last_delivered = True
        self.conn.resume_reading()
        return {"type": "http.request", "body": data, "more_body": self.more_body}

    async def send(self, message: Message) -> None:
        """Write a response message (the head waits for the first body chunk)."""
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind!r}")
            self.start_response(message["status"], message.get("headers", ()))
            return
        if self.complete or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        self.write_body(message.get("body", b""), message.get("more_body", False))

    def start_response(
        self, status: int, headers: Any, *, hold: bool = True, lowered: bool = False
    ) -> None:
        """Frame the response head (``http.response.start`` without the message).

        The head waits for the first body bytes; with ``hold`` false the caller
        promises to call :meth:`write_body` before it returns, so no flush of
        the head alone is scheduled for the end of the loop iteration.
        ``lowered``: every name is lower-case already (ASGI says they should
        be, but an app may not keep to it, so by default they are lowered here).
        Started only once the head is built: a refused head (CR/LF in a value)
        is then still answered with a 500 instead of a silent close.
        """
        parts = [_STATUS_LINES.get(status) or status_line(status)]
        lines = 2  # the status line and the blank line
        length: bytes | None = None
        close_sent = False
        defaults = self.conn.server_state.default_headers
        for name, value in (*defaults, *headers) if defaults else headers:
            lower = name if lowered and not defaults else name.lower()
            if lower in _FRAMING:
                if lower == b"content-length":
                    length = value
                elif lower == b"transfer-encoding":
                    self.chunked = value.lower() == b"chunked"
                elif b"close" in value.lower():  # Connection
                    self.keep_alive = False
                    close_sent = True
            parts += (name, b": ", value, b"\r\n")
            lines += 1
        self.bodyless = self.head_request or status in (204, 304) or status < 200
        if length is not None and not self.chunked:
            self.remaining = int(length)
        elif not self.chunked and not self.bodyless:
            if self.scope["http_version"] == "1.0":
                self.keep_alive = False  # an HTTP/1.0 client reads to the close
            else:
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
                lines += 1
        if not self.keep_alive and not close_sent:
            parts.append(b"connection: close\r\n")
            lines += 1
        parts.append(b"\r\n")
        head = b"".join(parts)
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            raise RuntimeError("a response header contains CR or LF")  # no header injection
        self.pending_head = head
        self.started = True
        self.continue_wanted = False
        if hold:
            self.conn.loop.call_soon(self._flush_head)

    def write_body(self, body: bytes, more: bool) -> None:
        """Frame and write body bytes (``http.response.body`` without the message)."""
        conn = self.conn
        if self.bodyless:
            out = b""
        elif self.chunked:
            out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            out = body
            if self.remaining >= 0:
                self.remaining -= len(body)
                if self.remaining < 0:
                    raise RuntimeError("response body longer than its Content-Length")
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            out = head + out
        if out:
            conn.transport.write(out)
        if not more:
            if self.remaining > 0 and not self.bodyless:
                raise RuntimeError("response body shorter than its Content-Length")
            self.complete = True
            self.wake()
            conn.response_complete(self)

    def _flush_head(self) -> None:
        # The body did not follow within this loop iteration: the head leaves alone.
        head = self.pending_head
        if head is not None and not self.disconnected:
            self.pending_head = None
            if not self.conn.transport.is_closing():
                self.conn.transport.write(head)
