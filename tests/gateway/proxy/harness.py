"""Real servers and a byte-exact HTTP client for the proxy tests.

``gateway_app`` is the smallest raw ASGI app around :class:`gateway.proxy.forward.Proxy`
(every request forwarded, as on an allowed route).  ``GatewayThread`` runs it
under uvicorn (uvloop + httptools, like production) in a thread; ``raw_request``
speaks HTTP/1.1 over a plain socket so tests see exactly what a client would.
``python -m uvicorn --factory tests.gateway.proxy.harness:app_from_env`` serves it
in its own process (memory and throughput measurements).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httptools
import uvicorn

from gateway.proxy.forward import Proxy
from gateway.types import ASGIApp, Receive, Scope, Send
from tests.support.net import free_port, wait_for_port

__all__ = ["GatewayThread", "RawResponse", "app_from_env", "gateway_app", "raw_request"]

ADD_HEADERS = [(b"x-agegate-age-over", b"18"), (b"x-agegate-assurance", b"standard")]


def gateway_app(proxy: Proxy) -> ASGIApp:
    """A raw ASGI app that forwards every http/websocket request through ``proxy``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await proxy.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await proxy.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await proxy.forward(
            scope,
            receive,
            send,
            path=scope["path"],
            query=scope["query_string"],
            add_headers=ADD_HEADERS,
        )

    return app


def make_proxy(upstream: str, client: str, **overrides: Any) -> Proxy:
    """A Proxy with test defaults (short timeouts, loopback trusted)."""
    options: dict[str, Any] = {
        "upstream": upstream,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "trusted_proxies": [],
        "forward_client_ip": True,
        "strip_cookie_names": [b"__Host-agegate", b"__Host-agegate-challenge"],
        "max_request_body": 1024 * 1024,
        "client": client,
    }
    options.update(overrides)
    return Proxy(**options)


def app_from_env() -> ASGIApp:
    """Factory for a gateway process: ``AGEGATE_TEST_UPSTREAM``, ``AGEGATE_TEST_CLIENT``."""
    return gateway_app(
        make_proxy(
            os.environ["AGEGATE_TEST_UPSTREAM"],
            os.environ.get("AGEGATE_TEST_CLIENT", "pool"),
            read_timeout=30.0,
            max_request_body=2**31,
        )
    )


class GatewayThread:
    """uvicorn serving ``app`` on a free loopback port, in a daemon thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop="uvloop",
            http="httptools",
            ws="websockets-sansio",
            lifespan="on",
            server_header=False,
            date_header=False,
            log_level="error",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        wait_for_port(self.port)
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class RawResponse:
    """What came back: ``complete`` is False when the connection dropped mid-message."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    interim: list[int] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]


class _Collector:
    def __init__(self, head: bool) -> None:
        self.head = head
        self.resp = RawResponse()
        self.body = bytearray()
        self.parser = httptools.HttpResponseParser(self)
        self.headers_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.resp.interim.append(status)
            self.resp.headers = []
            return
        self.resp.status = status
        self.headers_done = True
        if self.head or status in (204, 304):
            self.resp.complete = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.resp.complete = True


def raw_request(
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | Iterable[bytes] = b"",
    *,
    host: str = "shop.example",
    chunked: bool = False,
    timeout: float = 10.0,
) -> RawResponse:
    """Send one request on a new connection and read the response to its end (or EOF)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    pieces = [body] if isinstance(body, bytes) else list(body)
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif pieces != [b""] or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {sum(len(p) for p in pieces)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    collector = _Collector(method == "HEAD")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            for piece in pieces:
                if chunked:
                    if piece:
                        sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
                else:
                    sock.sendall(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed: read what it said
        while not collector.resp.complete:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            try:
                collector.parser.feed_data(chunk)
            except httptools.HttpParserError:
                break
    collector.resp.body = bytes(collector.body)
    return collector.resp
