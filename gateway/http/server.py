"""The public listener's HTTP/1.1 protocol, and the uvicorn configuration around it.

uvicorn still runs the process side (sockets, lifespan, signals, graceful
shutdown); the per-connection protocol is the gateway's own
:class:`GatewayHttpProtocol`, an :class:`asyncio.Protocol` on httptools that
speaks ASGI 3 to the app.  It is the gateway's own because it does what the
gateway needs and uvicorn's ``HttpToolsProtocol`` does not, with less work per
request on the proxied path:

* **The raw request target.**  An absolute-form target
  (``GET http://evil.example/wine HTTP/1.1``) keeps its host: SPEC §6 answers
  it with 421 unless the host is served.  The scope carries, under
  ``scope["extensions"]["agegate"]``::

      {"target_host": "evil.example" | None,   # None: origin-form
       "raw_target": b"http://evil.example/wine",
       "target_error": None | "bad_authority" | ...}   # a BadRequest reason

  ``target_error`` is set when the target is neither origin-form nor a
  well-formed http(s) absolute-form; the app must answer 400 with that reason.
* **Head limits and timeouts.**  httptools has no limit on the request line or
  headers, so they are counted: past :data:`MAX_TARGET_BYTES` → ``414``, past
  :data:`MAX_HEADER_BYTES` or :data:`MAX_HEADER_COUNT` → ``431``, like nginx.
  An idle connection (new, or between requests) is closed after uvicorn's
  ``timeout_keep_alive``; a head that has begun must be complete within
  :data:`HEAD_TIMEOUT` seconds (else ``408``): a client trickling bytes cannot
  hold a connection open forever.
* **Body and send timeouts** (:class:`ClientTimeouts`, like nginx's
  ``client_body_timeout`` and ``send_timeout``).  While the app waits for
  request body bytes, none for ``body`` seconds, or a body still arriving
  ``body_deadline`` seconds after the app first waited for it, ends the
  connection: ``408`` if no response has started, else a plain drop.  While a
  response waits for the client to read (writing paused), ``send`` seconds in
  which the client takes none of the bytes written (ours or the kernel's) drop
  the connection and wake the app, which then lets its upstream connection go.
  A client that stalls thus cannot pin what the app holds for it.
* **One write per small response.**  A response head is held until its first
  body chunk (or the end of the loop iteration) and leaves with it, so a small
  response costs one syscall and one wake-up of the client, not two.
* **Security headers** on the answers it makes itself (400/408/414/431/500).

Everything else is ordinary ASGI HTTP/1.1 as uvicorn serves it: keep-alive,
pipelining (requests answered in order, reading paused meanwhile), request
bodies streamed with back-pressure, ``Expect: 100-continue`` answered when the
app first asks for the body, ``Content-Length`` or chunked responses, HEAD,
``http.disconnect`` when the client leaves, WebSocket upgrades handed to
uvicorn's WebSocket protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

import httptools
import uvicorn
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from gateway.core.paths import split_target
from gateway.core.timers import ConnectionTimer
from gateway.errors import BadRequest
from gateway.http.exchange import Exchange, closing_response

__all__ = [
    "BODY_DEADLINE",
    "BODY_TIMEOUT",
    "HEAD_TIMEOUT",
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "MAX_TARGET_BYTES",
    "SEND_TIMEOUT",
    "ClientTimeouts",
    "GatewayConfig",
    "GatewayHttpProtocol",
    "serve_config",
]

log = logging.getLogger("agegate.server")

# nginx answers 414 past 8 KiB of request line and 431-like 400 past 4 x 8 KiB headers.
MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADER_COUNT = 100
HEAD_TIMEOUT = 10.0  # seconds from a head's first byte to its end (nginx: client_header_timeout)
BODY_TIMEOUT = 10.0  # seconds without a body byte while the app waits for one
BODY_DEADLINE = 60.0  # seconds from the app's first wait for a body to the body's end
SEND_TIMEOUT = 30.0  # seconds a response may wait for the client to read
_BODY_HIGH_WATER = 64 * 1024  # buffered request body bytes before reading pauses

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}
_ASGI = {"version": "3.0", "spec_version": "2.3"}
# Request headers that keep a request off the app's fast path (with Expect).
_FAST_METHODS = frozenset({"GET", "HEAD"})
# The usual methods' names as str, so a request's is not decoded each time.
_METHODS = {
    name.encode(): name for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
}
_NOT_FAST = frozenset({b"content-length", b"transfer-encoding", b"upgrade"})


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """How long the protocol waits on a client's request body and on its reading."""

    body: float = BODY_TIMEOUT
    body_deadline: float = BODY_DEADLINE
    send: float = SEND_TIMEOUT


class GatewayConfig(uvicorn.Config):
    """A :class:`uvicorn.Config` that also carries the :class:`ClientTimeouts`."""

    def __init__(self, app: Any, *, client_timeouts: ClientTimeouts, **kw: Any) -> None:
        super().__init__(app, **kw)
        self.client_timeouts = client_timeouts


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a head that is answered with an error."""


class GatewayHttpProtocol(asyncio.Protocol):
    """One client connection: httptools parsing, ASGI 3 exchanges, in order.

    Constructed by uvicorn (``uvicorn.Config(http=GatewayHttpProtocol)``), which
    hands it the server-wide state: the set of open connections and running
    tasks it waits for on a graceful shutdown, and calls :meth:`shutdown` on.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.keep_alive_timeout = float(config.timeout_keep_alive)
        self.head_timeout = HEAD_TIMEOUT
        timeouts = getattr(config, "client_timeouts", None) or ClientTimeouts()
        self.body_timeout: float = timeouts.body
        self.body_deadline: float = timeouts.body_deadline
        self.send_timeout: float = timeouts.send
        self.parser = httptools.HttpRequestParser(self)
        # Answer the first of pipelined requests even when it says Connection: close.
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.exchange: Exchange | None = None  # the request parsed last
        self.active: Exchange | None = None  # the one whose response is being written
        self.pipeline: deque[Exchange] = deque()
        self.read_paused = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer = ConnectionTimer(self.loop, self._on_timer)  # idle and head deadlines
        self._idle_since = 0.0
        self._drain_since = 0.0  # when the client last took bytes while writing was paused
        self._drain_left = 0  # bytes still buffered for it then
        self._body_wait_since = 0.0  # when the app last began to wait for body bytes
        self._body_exchange: Exchange | None = None  # the exchange _body_since belongs to
        self._body_since = 0.0  # when the app first waited for that exchange's body
        # The request head being parsed.
        self._in_head = False
        self._head_since = 0.0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._continue = False
        self._refusal: int | None = None
        self._upgrade: str | None = None  # the method of a WebSocket upgrade request
        self._unusual = False  # a body, Expect or Upgrade declared: never the fast path
        # The app's fast path (gateway.proxy.fast), when it has one: asked first for
        # GET/HEAD requests without a body; ``sink`` is the request it is relaying.
        self.fast: Any = getattr(self.app, "fast_path", None)
        self.sink: Any = None

    # asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.server_state.connections.add(self)
        self.transport = transport
        self.server = get_local_addr(transport)
        self.client = get_remote_addr(transport)
        self.scheme = "https" if is_ssl(transport) else "http"
        self._became_idle()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._upgraded()
        except httptools.HttpParserError:
            # Malformed, or stopped by _refuse (414/431); the parser's words may quote input.
            log.info(
                "request refused", extra={"event": "bad_request", "status": self._refusal or 400}
            )
            self._answer_and_close(self._refusal or 400)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._timer.stop()
        for exchange in (self.active, self.exchange, *self.pipeline):
            if exchange is not None and not exchange.complete:
                exchange.disconnected = True
                exchange.wake()
        self.pipeline.clear()
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        sink = self.sink
        if sink is not None:
            self.sink = None
            sink.client_gone()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.sink is not None:
            self.sink.client_paused()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None
        if self.sink is not None:
            self.sink.client_resumed()

    def watch_drain(self) -> None:
        """Start the ``send`` timeout for the bytes written so far (see :meth:`drain`)."""
        if self._drain is None:
            self._drain = self.loop.create_future()
            self._drain_since = now = self.loop.time()
            self._drain_left = self._unsent()
            self._timer.arm_no_later(now + self.send_timeout)

    async def drain(self) -> None:
        """Wait until the client has read enough of what was written (``send`` timeout)."""
        self.watch_drain()
        if self._drain is not None:
            await self._drain

    def waiting_for_body(self, exchange: Exchange) -> None:
        """The app waits for request body bytes: bound the wait (``body`` timeouts).

        Only called when it must wait, so a request without a body arms nothing.
        """
        self._body_wait_since = now = self.loop.time()
        if self._body_exchange is not exchange:
            self._body_exchange = exchange
            self._body_since = now
        self._timer.arm_no_later(
            min(now + self.body_timeout, self._body_since + self.body_deadline)
        )

    # httptools callbacks ----------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_since = now = self.loop.time()
        # (An unarmed timer's ``when`` is 0.0: it is armed only when the head limit is shorter.)
        if self._timer.when > now + self.head_timeout:
            self._timer.arm(now + self.head_timeout)
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._continue = False
        self._unusual = False

    def on_url(self, url: bytes) -> None:
        self._url += url  # httptools may deliver the target in pieces
        if len(self._url) > MAX_TARGET_BYTES:
            self._refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            # A chunked body's trailer fields: dropped, never merged into the head, where
            # a trailer Host, Expect or X-Agegate-* would count as if the client had sent
            # it up front (RFC 9110 §6.5.1: a recipient may discard them).
            return
        # httptools may split one header across calls; counting calls overcounts a little.
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEADER_BYTES or len(self._headers) >= MAX_HEADER_COUNT:
            self._refuse(431)
        name = name.lower()
        if name == b"expect":
            if value.lower() == b"100-continue":
                self._continue = True
            self._unusual = True
        elif name in _NOT_FAST:
            self._unusual = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        upgrade = parser.should_upgrade()
        if upgrade:
            self._check_upgrade(method)
            if self._wants_websocket():
                self._upgrade = method  # data_received hands the connection over
                return
        url = self._url
        host: str | None = None
        error: str | None = None
        if url[:1] == b"/" and url.find(b"#") < 0:
            raw_path, _, query = url.partition(b"?")  # origin-form, as split_target splits it
        else:
            try:
                host, raw_path, query = split_target(url)
            except BadRequest as exc:
                # The app answers 400 with this reason; the path is only what apps may print.
                error, raw_path, query = exc.reason, url, b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        version = parser.get_http_version()
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": self._headers,
            "state": self.app_state.copy(),
            "extensions": {
                "agegate": {"target_host": host, "raw_target": url, "target_error": error}
            },
        }
        exchange = Exchange(
            self,
            scope,
            keep_alive=version != "1.0" and parser.should_keep_alive(),
            continue_wanted=self._continue,
        )
        exchange.fast = (
            self.fast is not None
            and not self._unusual
            and error is None
            and method in _FAST_METHODS
            and not upgrade
        )
        self.exchange = exchange
        if self.active is None:
            self._run(exchange)
        else:  # pipelined: answered after the ones before it, reading waits meanwhile
            self.pipeline.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is None or exchange.complete or self._upgrade is not None:
            return  # already answered: the rest of its body is read and dropped
        exchange.body.append(body)
        exchange.body_size += len(body)
        if exchange.body_size > _BODY_HIGH_WATER:
            self.pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange = self.exchange
        if exchange is None or self._upgrade is not None:
            return
        exchange.more_body = False
        exchange.wake()

    # exchanges ------------------------------------------------------------------
    def _run(self, exchange: Exchange) -> None:
        self.active = exchange
        if exchange.fast and self.fast.start(self, exchange):
            return
        self.run_app(exchange, self.app)

    def run_app(self, exchange: Exchange, app: Any) -> None:
        """Run ``app`` for ``exchange`` in a task the server waits for on shutdown."""
        task = self.loop.create_task(exchange.run(app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_complete(self, exchange: Exchange) -> None:
        """Called by an exchange when its last body byte was written."""
        self.server_state.total_requests += 1
        self.active = None
        exchange.body = []  # an unread request body is dropped, not kept
        exchange.body_size = 0
        if not exchange.keep_alive:
            self.transport.close()
            return
        if self.transport.is_closing():
            return
        if self.pipeline:
            self._run(self.pipeline.popleft())
        else:
            self._became_idle()
        if self.read_paused:
            self.resume_reading()

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again, unless a pipelined request waits or a request body is piling up."""
        if not self.read_paused or self.pipeline:
            return
        exchange = self.exchange
        if exchange is not None and exchange.body_size > _BODY_HIGH_WATER:
            return
        self.read_paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """Graceful shutdown (called by uvicorn): close now if idle, else after the response."""
        if self.active is None:
            self.transport.close()
            return
        self.active.keep_alive = False
        self.pipeline.clear()

    # timeouts -------------------------------------------------------------------
    def _became_idle(self) -> None:
        # One timer per connection, armed when idle and checked when it fires: moving a
        # timer on every request would cost more than the check.
        # (A body or send deadline may have moved it later: the idle one comes first.)
        self._idle_since = self.loop.time()
        self._timer.arm_no_later(self._idle_since + self.keep_alive_timeout)

    def _on_timer(self) -> None:
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.active is not None:
            # A response is being written: only waits on the client are bounded now; the
            # next idle period arms the timer again, and a head that arrived meanwhile is
            # judged then (never answered first).
            self._check_waits(self.active, now)
            return
        if self._in_head:
            deadline = self._head_since + self.head_timeout
            if now >= deadline:
                log.info("request head too slow", extra={"event": "bad_request", "status": 408})
                self._answer_and_close(408)
                return
        else:
            deadline = self._idle_since + self.keep_alive_timeout
            if now >= deadline:
                self.transport.close()
                return
        self._timer.arm(deadline)

    def _check_waits(self, exchange: Exchange, now: float) -> None:
        """End the connection if the app has waited on the client too long; else re-arm."""
        deadline: float | None = None
        if self._drain is not None and self.write_paused:
            left = self._unsent()
            if left < self._drain_left:  # the client took some: a slow reader, not a stalled one
                self._drain_since, self._drain_left = now, left
            deadline = self._drain_since + self.send_timeout
            if now >= deadline:
                log.info("client stopped reading", extra={"event": "send_timeout"})
                # close() would wait for the unread bytes to leave: never, here.
                self.transport.abort()
                return
        if exchange.waiter is not None and exchange.more_body and exchange is self._body_exchange:
            body_deadline = min(
                self._body_wait_since + self.body_timeout, self._body_since + self.body_deadline
            )
            if now >= body_deadline:
                self._body_too_slow(exchange)
                return
            deadline = body_deadline if deadline is None else min(deadline, body_deadline)
        if deadline is not None:
            self._timer.arm(deadline)

    def _unsent(self) -> int:
        """Bytes written that the client has not taken: in our buffer and the kernel's.

        The kernel's count matters: with a large send buffer, a client reading slowly
        frees kernel space long before the kernel asks us for more bytes.
        """
        size = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                size += struct.unpack("i", queued)[0]
        return size

    def _body_too_slow(self, exchange: Exchange) -> None:
        # The app stops waiting now (http.disconnect), before anything else is written.
        exchange.disconnected = True
        exchange.wake()
        if exchange.started:
            log.info("request body too slow", extra={"event": "body_timeout"})
            self.transport.abort()  # a response has begun: it cannot become a 408
            return
        log.info("request body too slow", extra={"event": "bad_request", "status": 408})
        self._answer_and_close(408)

    # refusals and upgrades ------------------------------------------------------
    def _refuse(self, status: int) -> None:
        # Raising inside a callback makes httptools stop with a parser error;
        # data_received then answers with the status recorded here.
        self._refusal = status
        raise _Refused(status)

    def _answer_and_close(self, status: int) -> None:
        """Answer a refused head (400/408/414/431) with the security headers, then close.

        The parser's message, which may quote the input, is not echoed.
        """
        reason = _REASONS[status]
        if not self.transport.is_closing():
            self.transport.write(
                closing_response(status, reason, b"text/plain; charset=utf-8", reason)
            )
            self.transport.close()
        self._timer.stop()

    def _check_upgrade(self, method: str) -> None:
        """Refuse what httptools would take for a protocol switch and stop parsing.

        httptools skips the body of any request that asks to upgrade and hands
        back the bytes after the head as another protocol's.  A CONNECT tunnel
        is not something the gateway offers (400: a client error, as before it
        reached the app).  An upgrade that declares a
        body is refused (400) whatever it asks for: served as plain HTTP its
        body would go unread, and its declared length would leave the bytes
        that follow to be read as the next request (request smuggling); a
        WebSocket handshake never has one (RFC 6455 §4.1).
        """
        if method == "CONNECT":
            self._refuse(400)  # data_received answers and logs it
        for name, value in self._headers:
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                self._refuse(400)

    def _wants_websocket(self) -> bool:
        if self.config.ws_protocol_class is None:
            return False
        connection = b""
        upgrade = b""
        for name, value in self._headers:
            if name == b"connection":
                connection = value.lower()
            elif name == b"upgrade":
                upgrade = value.lower().strip()
        return upgrade == b"websocket" and b"upgrade" in connection

    def _upgraded(self) -> None:
        """httptools stopped at an Upgrade: hand a WebSocket over, ignore any other."""
        method = self._upgrade
        if method is None:
            # Not a WebSocket (h2c, say): the request is answered as plain HTTP/1.1
            # and the connection closed, since what follows is not HTTP/1.1.
            if self.exchange is not None:
                self.exchange.keep_alive = False
            return
        self._timer.stop()
        self.server_state.connections.discard(self)
        # uvicorn's WebSocket protocol parses the handshake itself: give it the head again.
        head = [method.encode("ascii"), b" ", self._url, b" HTTP/1.1\r\n"]
        for name, value in self._headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        protocol = self.config.ws_protocol_class(  # type: ignore[call-arg,misc]
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        protocol.connection_made(self.transport)
        protocol.data_received(b"".join(head))
        self.transport.set_protocol(protocol)


def serve_config(
    app: Any,
    *,
    host: str,
    port: int,
    lifespan: Literal["auto", "on", "off"] = "on",
    client_timeouts: ClientTimeouts | None = None,
    **kw: Any,
) -> GatewayConfig:
    """A :class:`uvicorn.Config` for the gateway's public (or admin) listener.

    ``client_timeouts`` bound the waits on a client's body and reading (the
    defaults without).  ``kw`` may override any other :class:`uvicorn.Config`
    argument, except the protocol and proxy-header handling, which the
    gateway's security depends on.
    """
    for forbidden in ("http", "proxy_headers", "forwarded_allow_ips"):
        if forbidden in kw:
            raise ValueError(f"serve_config does not allow overriding {forbidden!r}")
    options: dict[str, Any] = {
        "loop": "uvloop",
        "access_log": False,  # the gateway logs its own privacy-filtered JSON lines
        "server_header": False,
        # The upstream's Date passes through (as with nginx); uvicorn's would be a second one.
        "date_header": False,
        # WebSocket upgrades on allowed routes are relayed (gateway/proxy/websocket.py).
        "ws": "websockets-sansio",
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
        "backlog": 2048,
        "log_config": None,  # logging is configured by the gateway, not by uvicorn's dictConfig
    }
    options.update(kw)
    return GatewayConfig(
        app,
        client_timeouts=client_timeouts or ClientTimeouts(),
        host=host,
        port=port,
        lifespan=lifespan,
        http=GatewayHttpProtocol,
        proxy_headers=False,
        forwarded_allow_ips=[],
        **options,
    )
