"""RFC 9457 problem responses, as raw ASGI sends (usable on the hot path).

Every gateway-made response carries the security headers of :data:`SECURITY_HEADERS`.
Browsers (``Accept`` preferring HTML) get a small readable page with the
same content; other clients get ``application/problem+json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from email.utils import formatdate
from functools import lru_cache

from gateway.core.pages import error_page
from gateway.types import Send

__all__ = [
    "SECURITY_HEADERS",
    "http_date",
    "problem_body",
    "response_headers",
    "send_problem",
    "send_response",
    "wants_html",
]

PROBLEM_TYPE_BASE = "https://agegate.dev/problems/"

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        b"form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'",
    ),
)

_TITLES = {
    400: "Bad request",
    401: "Age verification required",
    403: "Access refused",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
    421: "Misdirected request",
    429: "Too many requests",
    500: "Internal error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


@lru_cache(maxsize=4)
def _format_date(second: int) -> bytes:
    return formatdate(second, usegmt=True).encode("ascii")


def http_date() -> bytes:
    """The current time as an HTTP ``Date`` value (formatted once per second)."""
    return _format_date(int(time.time()))


def wants_html(accept: bytes | None) -> bool:
    """True when the client prefers an HTML page (a browser navigation)."""
    return accept is not None and b"text/html" in accept


def problem_body(status: int, reason: str, detail: str, **extra: object) -> dict[str, object]:
    """The RFC 9457 JSON object; ``reason`` is our machine-readable code."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + reason.replace("_", "-"),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "reason": reason,
    }
    body.update(extra)
    return body


def response_headers(
    status: int,
    content_type: bytes,
    body: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> list[tuple[bytes, bytes]]:
    """The headers of every gateway-made response.

    ``Date``, type, length, the security headers, then ``headers``; a 1xx, 204
    or 304 has no ``Content-Length`` (RFC 9110 §8.6).
    """
    if status < 200 or status in (204, 304):
        return [
            (b"date", http_date()),
            (b"content-type", content_type),
            *SECURITY_HEADERS,
            *headers,
        ]
    return [
        (b"date", http_date()),
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
        *headers,
    ]


async def send_response(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
    *,
    head: bool = False,
) -> None:
    """Send a complete response with the security headers."""
    all_headers = response_headers(status, content_type, body, headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_problem(
    send: Send,
    status: int,
    reason: str,
    detail: str,
    *,
    accept: bytes | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    head: bool = False,
    **extra: object,
) -> None:
    """Send a problem: an HTML page for browsers, ``application/problem+json`` otherwise."""
    body = problem_body(status, reason, detail, **extra)
    if wants_html(accept):
        page = error_page(str(body["title"]), detail, reason, None)
        await send_response(send, status, page, b"text/html; charset=utf-8", headers, head=head)
    else:
        data = json.dumps(body, separators=(",", ":")).encode()
        await send_response(send, status, data, b"application/problem+json", headers, head=head)
