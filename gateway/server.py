"""uvicorn, configured the way the gateway needs it.

Two things uvicorn does not do by itself:

* Its httptools protocol parses an absolute-form request target
  (``GET http://evil.example/wine HTTP/1.1``) and hands the app only the path
  and query, so the host named in the target is lost.  SPEC §6 answers such a
  target with 421 unless the host is accepted, so :class:`GatewayHttpProtocol`
  records the raw target and its host in the scope, under
  ``scope["extensions"]["agegate"]``::

      {"target_host": "evil.example" | None,   # None: origin-form
       "raw_target": b"http://evil.example/wine",
       "target_error": None | "bad_authority" | ...}   # a BadRequest reason

  ``target_error`` is set (and ``target_host`` is None) when the target is
  neither origin-form nor well-formed http(s) absolute-form; the app must
  answer 400 with that reason.  The app may equally run
  :func:`gateway.paths.split_target` on ``raw_target`` itself.

* httptools has no limit on the size of the request line and headers (h11's
  ``h11_max_incomplete_event_size`` does not apply to it), so the protocol
  counts them and answers ``414`` / ``431`` past :data:`MAX_TARGET_BYTES`,
  :data:`MAX_HEADER_BYTES` or :data:`MAX_HEADER_COUNT`, like nginx does.

:func:`serve_config` builds the :class:`uvicorn.Config` with this protocol and
with uvicorn's own proxy-header handling off: the gateway decides itself which
peers may set ``X-Forwarded-For`` (setting ``trusted_proxies``).

The hook depends on three uvicorn internals: the httptools parser callbacks
``on_url`` / ``on_header`` / ``on_headers_complete``, the per-request
``self.scope`` dict, and ``send_400_response``.  ``tests/gateway/test_server.py``
fails loudly if a uvicorn upgrade moves any of them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import BadRequest
from gateway.paths import split_target
from gateway.problem import SECURITY_HEADERS

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_HEADER_COUNT",
    "MAX_TARGET_BYTES",
    "GatewayHttpProtocol",
    "serve_config",
]

# nginx answers 414 past 8 KiB of request line and 431-like 400 past 4 x 8 KiB headers.
MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADER_COUNT = 100

_REASONS = {400: b"Bad Request", 414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class _TooLarge(Exception):
    """Raised from a parser callback to stop parsing an oversized request head."""


_COALESCE_LIMIT = 64 * 1024  # pending bytes past which a write leaves at once


class _CoalescingTransport:
    """A transport whose writes leave together at the end of the loop iteration.

    uvicorn writes a response head and its body with one ``transport.write``
    each, and uvloop sends each at once: two syscalls (and, on loopback, two
    wake-ups of the client) for a small response.  Writes made within one
    iteration are joined and sent by one ``call_soon`` callback instead, in
    order; ``close`` sends what is pending first.  Everything else is the
    underlying transport's.
    """

    __slots__ = ("_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._size = len(data)
            self._loop.call_soon(self._flush)
            return
        pending.append(data)
        self._size += len(data)
        if self._size > _COALESCE_LIMIT:
            self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus the raw request target and head-size limits.

    Its transport coalesces the writes of one loop iteration
    (:class:`_CoalescingTransport`), so a small response leaves in one syscall.
    """

    _agegate_target: bytes = b""
    _agegate_head_bytes: int = 0
    _agegate_header_count: int = 0
    _agegate_refusal: int | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Hand uvicorn a transport that joins a response's head and body into one write."""
        coalescing: Any = _CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)

    def on_message_begin(self) -> None:
        """Start a request: reset the per-request counters."""
        super().on_message_begin()
        self._agegate_target = b""
        self._agegate_head_bytes = 0
        self._agegate_header_count = 0

    def on_url(self, url: bytes) -> None:
        """Keep the raw target ourselves (httptools may deliver it in pieces)."""
        super().on_url(url)
        self._agegate_target += url
        if len(self._agegate_target) > MAX_TARGET_BYTES:
            self._refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the head; past the limits the request is refused with 431."""
        # httptools may split one header across calls; counting calls overcounts a little.
        self._agegate_head_bytes += len(name) + len(value)
        self._agegate_header_count += 1
        if (
            self._agegate_head_bytes > MAX_HEADER_BYTES
            or self._agegate_header_count > MAX_HEADER_COUNT
        ):
            self._refuse(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Record the target in the scope before uvicorn hands the scope to the app."""
        raw_target = self._agegate_target
        host: str | None = None
        error: str | None = None
        try:
            host = split_target(raw_target)[0]
        except BadRequest as exc:
            error = exc.reason
        # ``self.scope`` is uvicorn's per-request dict, created in on_message_begin and
        # given to the app by super().on_headers_complete(): an AttributeError here means
        # uvicorn changed, and every request then fails with 400 rather than passing unchecked.
        extensions = self.scope.setdefault("extensions", {})
        extensions["agegate"] = {
            "target_host": host,
            "raw_target": raw_target,
            "target_error": error,
        }
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """Answer a parser error (400) or an oversized head (414/431), then close.

        Written here rather than by uvicorn so these answers carry the same
        security headers as every other gateway response; ``msg`` (the parser's
        words, which may quote input) is not echoed.
        """
        status = self._agegate_refusal or 400
        self._agegate_refusal = None
        reason = _REASONS[status]
        security = b"".join(b"%s: %s\r\n" % pair for pair in SECURITY_HEADERS)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n%s\r\n%s"
            % (status, reason, len(reason), security, reason)
        )
        self.transport.close()

    def _refuse(self, status: int) -> None:
        # Raising inside a callback makes httptools abort with a parser error; uvicorn
        # then calls send_400_response, where the status recorded here is used.
        self._agegate_refusal = status
        raise _TooLarge(status)


def serve_config(
    app: Any,
    *,
    host: str,
    port: int,
    lifespan: Literal["auto", "on", "off"] = "on",
    **kw: Any,
) -> uvicorn.Config:
    """A :class:`uvicorn.Config` for the gateway's public (or admin) listener.

    ``kw`` may override any other :class:`uvicorn.Config` argument, except the
    protocol and proxy-header handling, which the gateway's security depends on.
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
        # WebSocket upgrades on allowed routes are relayed (gateway/proxy_ws.py).
        "ws": "websockets-sansio",
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
        "backlog": 2048,
        # Only used if someone swaps in h11; the httptools limits are MAX_* above.
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "log_config": None,  # logging is configured by the gateway, not by uvicorn's dictConfig
    }
    options.update(kw)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        http=GatewayHttpProtocol,
        proxy_headers=False,
        forwarded_allow_ips=[],
        **options,
    )
