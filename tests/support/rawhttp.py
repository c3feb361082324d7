"""A raw-socket HTTP/1.1 client that sends exact bytes, for attack tests.

``httpx`` and friends normalise what they send (they re-encode the target,
merge duplicate headers, refuse control bytes, add their own framing), which
is exactly what an attack test must not do.  Here the caller writes the bytes
and gets back every response the server sent on that connection::

    response = request(port, "GET", b"/echo/w%69ne/red", headers=[(b"Host", b"localhost")])
    response.status, response.header("location"), response.body

    responses = exchange(port, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" * 2, expect=2)

Parsing is deliberately small but strict about framing: ``Content-Length``,
``chunked`` and close-delimited bodies, no body for ``HEAD`` / 1xx / 204 / 304.
Interim ``1xx`` responses (other than 101) are skipped.  Every read is bounded
by ``timeout`` so a test can never hang.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RawResponse",
    "build_request",
    "exchange",
    "exchange_pieces",
    "parse_responses",
    "request",
]

HeaderPair = tuple[bytes | str, bytes | str]


@dataclass
class RawResponse:
    """One parsed response: status, headers (names lower-cased, order kept) and body."""

    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    def header_list(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class _Incomplete(Exception):
    """The buffer does not hold a whole response yet."""


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def build_request(
    method: bytes | str,
    target: bytes | str,
    headers: Iterable[HeaderPair] = (),
    body: bytes = b"",
    *,
    host: bytes | str | None = b"localhost",
    close: bool = True,
    content_length: bool = True,
) -> bytes:
    """The exact bytes of one request.

    ``host`` adds a ``Host`` header first (None: none); ``close`` adds
    ``Connection: close``; ``content_length`` adds one when there is a body and
    the caller set neither ``Content-Length`` nor ``Transfer-Encoding``.
    Nothing else is added, changed or validated.
    """
    lines = [_as_bytes(method) + b" " + _as_bytes(target) + b" HTTP/1.1"]
    pairs = [(_as_bytes(k), _as_bytes(v)) for k, v in headers]
    if host is not None:
        lines.append(b"Host: " + _as_bytes(host))
    lines += [k + b": " + v for k, v in pairs]
    names = {k.lower() for k, _ in pairs}
    if body and content_length and not names & {b"content-length", b"transfer-encoding"}:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _parse_head(buffer: bytes, start: int) -> tuple[int, str, list[tuple[str, str]], int]:
    end = buffer.find(b"\r\n\r\n", start)
    if end == -1:
        raise _Incomplete
    lines = buffer[start:end].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0]!r}")
    code, _, reason = rest.partition(" ")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed response header line: {line!r}")
        headers.append((name.strip().lower(), value.strip()))
    return int(code), reason, headers, end + 4


def _chunked(buffer: bytes, index: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", index)
        if line_end == -1:
            raise _Incomplete
        size = int(buffer[index:line_end].split(b";")[0].strip(), 16)
        index = line_end + 2
        if size == 0:
            # Skip trailers up to the empty line.
            while True:
                line_end = buffer.find(b"\r\n", index)
                if line_end == -1:
                    raise _Incomplete
                blank = line_end == index
                index = line_end + 2
                if blank:
                    return bytes(body), index
        if len(buffer) < index + size + 2:
            raise _Incomplete
        body += buffer[index : index + size]
        index += size + 2


def parse_responses(
    buffer: bytes, *, head_requests: Sequence[bool] = (), eof: bool = True
) -> list[RawResponse]:
    """Every complete response in ``buffer``.

    ``head_requests[i]`` says whether the i-th response answers a HEAD (no
    body).  With ``eof`` a response without length runs to the end of the
    buffer; without it, it is incomplete.
    """
    responses: list[RawResponse] = []
    index = 0
    while index < len(buffer):
        try:
            status, reason, headers, body_start = _parse_head(buffer, index)
        except _Incomplete:
            break
        if 100 <= status < 200 and status != 101:
            index = body_start  # interim response: no body, the final one follows
            continue
        values = {k: v for k, v in reversed(headers)}
        no_body = (
            len(responses) < len(head_requests) and head_requests[len(responses)]
        ) or status in (101, 204, 304)
        try:
            if no_body:
                body, index = b"", body_start
            elif "chunked" in values.get("transfer-encoding", "").lower():
                body, index = _chunked(buffer, body_start)
            elif "content-length" in values:
                length = int(values["content-length"])
                if len(buffer) < body_start + length:
                    raise _Incomplete
                body, index = buffer[body_start : body_start + length], body_start + length
            elif eof:
                body, index = buffer[body_start:], len(buffer)
            else:
                raise _Incomplete
        except _Incomplete:
            break
        responses.append(RawResponse(status, reason, headers, body))
    return responses


def exchange(
    port: int,
    data: bytes,
    *,
    expect: int | None = None,
    head_requests: Sequence[bool] = (),
    timeout: float = 5.0,
    host: str = "127.0.0.1",
) -> list[RawResponse]:
    """Send ``data`` on a fresh connection and return every response to it.

    Reads until the server closes, until ``expect`` responses are complete,
    or until ``timeout`` seconds pass (then whatever is complete is returned).
    """
    return exchange_pieces(
        port, [data], expect=expect, head_requests=head_requests, timeout=timeout, host=host
    )


def exchange_pieces(
    port: int,
    pieces: Sequence[bytes],
    *,
    pause: float = 0.0,
    expect: int | None = None,
    head_requests: Sequence[bool] = (),
    timeout: float = 5.0,
    host: str = "127.0.0.1",
) -> list[RawResponse]:
    """Like :func:`exchange`, with the bytes written as ``pieces``, ``pause`` seconds apart.

    Splitting a request at chosen points exercises the server's parser across
    reads (a head or a chunk-size line cut in two) and pipelining.
    """
    deadline = time.monotonic() + timeout
    buffer = bytearray()
    eof = False
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # Each piece leaves as its own segment (no Nagle coalescing).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # The server may refuse and close early; then read what it said.
        with contextlib.suppress(OSError):
            for index, piece in enumerate(pieces):
                if index and pause:
                    time.sleep(pause)
                sock.sendall(piece)
        while time.monotonic() < deadline:
            if expect is not None:
                done = parse_responses(bytes(buffer), head_requests=head_requests, eof=False)
                if len(done) >= expect:
                    return done
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            buffer += chunk
    return parse_responses(bytes(buffer), head_requests=head_requests, eof=eof)


def request(
    port: int,
    method: bytes | str,
    target: bytes | str,
    headers: Iterable[HeaderPair] = (),
    body: bytes = b"",
    *,
    host: bytes | str | None = b"localhost",
    timeout: float = 5.0,
) -> RawResponse:
    """One request (``Connection: close``) and its response; AssertionError when none came."""
    data = build_request(method, target, headers, body, host=host)
    is_head = _as_bytes(method).upper() == b"HEAD"
    responses = exchange(port, data, expect=1, head_requests=[is_head], timeout=timeout)
    if not responses:
        raise AssertionError(f"no response to {data[:200]!r}")
    return responses[0]
