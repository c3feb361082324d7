"""The fast path: an allowed GET or HEAD without a body, relayed without a task.

The ordinary path runs one task per request through ASGI messages and a
dozen coroutines (:mod:`gateway.proxy.handler`, :mod:`gateway.proxy.forward`).
For the commonest request, a page or asset on an allowed route, that is
most of the gateway's own work, so the client protocol asks
:meth:`FastPath.start` first, when the head has been parsed:

- the decision is made at once (:meth:`Gate.decide_now`): a served host, a
  canonical path, and an allow that needs no wait (a public route, or a
  session cookie already opened and cached that satisfies the rule);
- the request goes to an idle pooled upstream connection (never a new one);
- the upstream connection's parser callbacks hand the response to a
  :class:`FastExchange`, which frames it with the very code the ASGI path
  uses (:class:`~gateway.http.exchange.Exchange`) and writes it to the client.

Anything else (no idle connection, a challenge, a body, ``Expect``, an
upgrade, a path under ``/.agegate/``) is refused by returning False, with
nothing recorded, and takes the ordinary path.  A failure before the
response head hands the rest of the request to a task that goes on exactly
as the ordinary path does after a failed first attempt (one retry for a
stale keep-alive connection, then 502/504), so both paths give a client the
same bytes.  Flow control holds both ways: a client that reads slowly pauses
reading from the upstream (and the send timeout applies), and reading from
the client is paused by the protocol while a response is in flight.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from gateway.core.forwarding import downstream_response_headers
from gateway.core.headers import header_value
from gateway.decision.access import AccessRecord
from gateway.errors import UpstreamError
from gateway.http.exchange import Exchange
from gateway.proxy.forward import CLIENT_GONE, NO_BODY_STATUSES, Proxy
from gateway.proxy.handler import Gate
from gateway.types import Receive, Scope, Send
from gateway.upstream.connection import Connection
from gateway.upstream.pool import PoolClient

__all__ = ["FastExchange", "FastPath", "FastProtocol"]

log = logging.getLogger("agegate.proxy")


class FastProtocol(Protocol):
    """What the fast path needs from the client connection."""

    sink: FastExchange | None

    def watch_drain(self) -> None:
        """Bound the time the client may take to read what was written (send timeout)."""

    def run_app(self, exchange: Exchange, app: Any) -> None:
        """Run ``app`` for ``exchange`` in a task, as the ordinary path does."""


class Startable(Protocol):
    """What serves requests only once started: the runtime."""

    started: bool


class FastPath:
    """Decides at once and relays without a task whatever it can; see the module docstring."""

    def __init__(self, gate: Gate, proxy: Proxy, runtime: Startable) -> None:
        self.gate = gate
        self.proxy = proxy
        self.runtime = runtime

    def start(self, protocol: FastProtocol, exchange: Exchange) -> bool:
        """Take ``exchange`` (True) or leave it to the ordinary path (False, nothing done)."""
        if not self.runtime.started:
            return False
        pool = self.proxy.pool
        if pool is None or not pool.idle_connections:
            return False
        scope = exchange.scope
        ticket = self.gate.decide_now(scope)
        if ticket is None:
            return False
        conn = pool.take_idle()
        if conn is None:
            return False
        proxy = self.proxy
        head = proxy.bodyless_request(
            pool, scope, host=ticket.authority, path=ticket.target, add_headers=ticket.add_headers
        )
        sink = FastExchange(self, protocol, exchange, pool, conn, ticket.record, head)
        sink.private = ticket.private
        protocol.sink = sink
        self.gate.access.metrics.fast_path.taken += 1
        # The request goes out now; the response comes to sink.upstream_progress.
        conn.begin(head_only=scope["method"] == "HEAD")
        conn.watch(sink, proxy.read_timeout)
        try:
            conn.write(head)
        except UpstreamError as exc:
            sink.failed_before_head(exc)
        return True


class FastExchange:
    """One fast-path request: the upstream connection's sink and the client's writer."""

    __slots__ = (
        "conn",
        "done",
        "exchange",
        "fast",
        "head",
        "logged",
        "pool",
        "private",
        "protocol",
        "record",
        "status",
    )

    def __init__(
        self,
        fast: FastPath,
        protocol: FastProtocol,
        exchange: Exchange,
        pool: PoolClient,
        conn: Connection,
        record: AccessRecord,
        head: bytes,
    ) -> None:
        self.fast = fast
        self.protocol = protocol
        self.exchange = exchange
        self.pool = pool
        self.conn = conn
        self.record = record
        self.head = head
        self.private = False
        self.done = False
        self.logged = False
        self.status = 0

    # upstream side ---------------------------------------------------------------
    def upstream_progress(self, conn: Connection) -> None:
        """The upstream connection moved on: relay what it has (see ResponseSink)."""
        if self.done or conn is not self.conn:
            return
        try:
            exchange = self.exchange
            if not exchange.started:
                if not conn.head_done:
                    if conn.error is not None:
                        self.failed_before_head(conn.error)
                    return
                # The head leaves with the body bytes written below; alone only if none came.
                self._start(conn, hold=not (conn.chunks or conn.complete))
            if conn.chunks:
                data = conn.take_body()
            elif conn.complete:
                data = b""
            elif conn.error is not None:
                self._broke_off(conn.error)
                return
            else:
                return
            if conn.complete:
                self._finish(reusable=True)  # every byte of it was taken above
                exchange.write_body(data, False)
                self.logged = True
                client = exchange.scope["client"]
                self.fast.gate.access.finish(self.record, client[0] if client else None)
            elif data:
                exchange.write_body(data, True)
                if conn.error is not None:
                    self._broke_off(conn.error)
        except Exception:
            # As Exchange.run does for a failing handler: logged, answered or dropped.
            log.exception("the request handler failed", extra={"event": "internal_error"})
            self._finish(reusable=False)
            self.exchange.abort()
            self._log()

    def _start(self, conn: Connection, *, hold: bool) -> None:
        status = conn.status
        headers = downstream_response_headers(conn.headers, private=self.private)
        if status in NO_BODY_STATUSES:
            headers = [(k, v) for k, v in headers if k != b"content-length"]
        self.status = self.record.status = status
        # downstream_response_headers lower-cases every name.
        self.exchange.start_response(status, headers, hold=hold, lowered=True)

    def _broke_off(self, error: UpstreamError) -> None:
        # As the ordinary path: a response that has started cannot become an error.
        log.warning(
            "upstream broke off the response",
            extra={"event": "upstream_aborted", "reason": error.reason},
        )
        self._finish(reusable=False)
        self.exchange.abort()
        self._log()

    def failed_before_head(self, error: UpstreamError) -> None:
        conn = self.conn
        stale = conn.reused and not conn.got_bytes and error.reason == "upstream_unavailable"
        self._finish(reusable=False)
        exchange = self.exchange
        record = self.record
        proxy = self.fast.proxy
        pool, head, private = self.pool, self.head, self.private

        async def rest(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                record.status = await proxy.recover(
                    receive,
                    send,
                    pool=pool,
                    method=scope["method"],
                    head=head,
                    error=error,
                    stale=stale,
                    accept=header_value(scope["headers"], b"accept"),
                    private=private,
                )
            finally:
                client = scope.get("client")
                self.fast.gate.access.finish(record, client[0] if client else None)

        self.protocol.run_app(exchange, rest)

    def _finish(self, *, reusable: bool) -> None:
        """Let go of the upstream connection: back to the pool if the exchange was clean."""
        if self.done:
            return
        self.done = True
        if self.protocol.sink is self:
            self.protocol.sink = None
        conn = self.conn
        conn.sink = None
        self.pool.release(conn, reusable=reusable)

    def _log(self) -> None:
        if self.logged:
            return
        self.logged = True
        client = self.exchange.scope.get("client")
        self.fast.gate.access.finish(self.record, client[0] if client else None)

    # client side -----------------------------------------------------------------
    def client_paused(self) -> None:
        """The client's transport buffer is full: stop reading the upstream meanwhile."""
        if not self.done:
            self.conn.pause_for_sink()
            self.protocol.watch_drain()

    def client_resumed(self) -> None:
        if not self.done:
            self.conn.resume_for_sink()

    def client_gone(self) -> None:
        """The client closed the connection: the upstream one cannot be reused."""
        if self.done:
            return
        if not self.exchange.started:
            self.record.status = CLIENT_GONE
        self._finish(reusable=False)
        self._log()
