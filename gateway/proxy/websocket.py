"""WebSocket pass-through: an ASGI ``websocket`` scope relayed to the upstream.

The upstream handshake happens first, so a refusing or absent upstream is
answered with an HTTP status (through the ASGI ``websocket.http.response``
extension where the server offers it) instead of an accepted-then-dropped
socket.  Messages are relayed both ways unchanged; a close on either side is
passed on with its code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from gateway.core.problem import problem_body
from gateway.types import Receive, Scope, Send
from gateway.upstream.reference import AiohttpClient

__all__ = ["relay_websocket"]

log = logging.getLogger("agegate.proxy")

# The upstream handshake makes its own key, version and extensions.
_HANDSHAKE_HEADERS = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
    }
)
_MAX_MESSAGE = 16 * 1024 * 1024


def _sendable_code(code: int | None) -> int:
    """A close code that may appear on the wire (RFC 6455 §7.4)."""
    if code is None or code in (1005, 1006, 1015) or not (1000 <= code < 5000):
        return 1000
    return code


async def _refuse(scope: Scope, send: Send, status: int, reason: str) -> int:
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps(problem_body(status, reason, "the upstream refused the WebSocket"))
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/problem+json")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body.encode()})
        return status
    await send({"type": "websocket.close", "code": 1011})
    return 403  # what ASGI servers answer to a close before accept


async def relay_websocket(
    client: AiohttpClient,
    scope: Scope,
    receive: Receive,
    send: Send,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
) -> int:
    """Relay one WebSocket session; the HTTP status of the handshake (101 when accepted)."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return 499
    forwarded = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in headers
        if k not in _HANDSHAKE_HEADERS
    ]
    scheme = "wss" if client.url(b"/").scheme == "https" else "ws"
    try:
        upstream = await client.session.ws_connect(
            client.url(target, scheme=scheme),
            headers=forwarded,
            protocols=tuple(scope.get("subprotocols", ())),
            autoping=True,
            compress=0,
            max_msg_size=_MAX_MESSAGE,
        )
    except aiohttp.WSServerHandshakeError as exc:
        status = exc.status if 400 <= exc.status < 600 else 502
        return await _refuse(scope, send, status, "upstream_refused_websocket")
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return await _refuse(scope, send, 504, "upstream_timeout")
    except (aiohttp.ClientError, OSError):
        return await _refuse(scope, send, 502, "upstream_unavailable")
    await send({"type": "websocket.accept", "subprotocol": upstream.protocol})
    to_upstream = asyncio.create_task(_client_to_upstream(receive, upstream))
    to_client = asyncio.create_task(_upstream_to_client(upstream, send))
    try:
        await asyncio.wait({to_upstream, to_client}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (to_upstream, to_client):
            task.cancel()
        await asyncio.gather(to_upstream, to_client, return_exceptions=True)
        await upstream.close()
    return 101


async def _client_to_upstream(receive: Receive, upstream: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await upstream.close(code=_sendable_code(message.get("code")))
            return
        if message["type"] != "websocket.receive":
            continue
        try:
            if message.get("text") is not None:
                await upstream.send_str(message["text"])
            else:
                await upstream.send_bytes(message.get("bytes") or b"")
        except (aiohttp.ClientError, ConnectionError):
            return  # the upstream is gone; the other direction reports its close


async def _upstream_to_client(upstream: aiohttp.ClientWebSocketResponse, send: Send) -> None:
    code = 1011
    try:
        async for msg in upstream:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": msg.data})
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": msg.data})
            elif msg.type == aiohttp.WSMsgType.ERROR:
                log.warning("websocket relay error", extra={"event": "upstream_ws_error"})
                break
        code = _sendable_code(upstream.close_code) if upstream.close_code is not None else 1011
    finally:
        # The client may already be gone; the ASGI server then ignores or refuses this.
        with contextlib.suppress(OSError, RuntimeError):
            await send({"type": "websocket.close", "code": code})
