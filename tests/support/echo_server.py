"""An echo ASGI app served by ``gateway.http.server`` in a subprocess, and a strict
raw client for it.

For the listener's HTTP/1.1 tests (``tests/gateway/http/test_http1.py``, ``test_server.py``)::

    with EchoServer(tmp_path, head_timeout=1, timeout_keep_alive=1) as server:
        server.port, server.pid, server.rss_kib(), server.wait_for_event("disconnect x")
        with Connection(server.port) as conn:
            response = conn.request(get("/stream?n=3"))  # .status .headers .body .chunks

The app answers every path with JSON describing what it saw (scope and body),
also base64-encoded in an ``x-echo`` header so a HEAD answer shows it too.
Some paths behave differently, to drive the protocol's corners:

==================  ============================================================
``/digest``         the request body's length and SHA-256 only (for big bodies)
``/stream?n=3``     no Content-Length: ``n`` pieces (:func:`stream_pieces`)
``/big?bytes=N``    N bytes with Content-Length, in 64 KiB pieces (:func:`big_body`)
``/slow?ms=N``      sleeps N ms, then echoes
``/no-read``        answers without reading the request body
``/status?code=N``  status N with an empty body (204, 304)
``/raise-before``   raises before starting a response
``/raise-after``    raises after the head and 100 of 1000 announced body bytes
``/disconnect?id=``  records ``start <id>``, then ``disconnect <id>`` when
                    ``receive()`` says the client left (the events file)
==================  ============================================================

Unlike ``GatewayProcess`` this runs ``gateway.http.server`` alone, without the
gateway app: what is tested is the listener's HTTP/1.1, nothing above it.
:class:`Connection` reads responses strictly (unlike ``rawhttp``, it keeps the
bytes after a response for the next one): a stray byte after a response, such
as a body on HEAD or 204 or a wrong chunk size, makes the next one fail to parse.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

from tests.support.net import free_port, wait_for_port
from tests.support.process import stop_process

__all__ = [
    "BIG_PIECE",
    "Closed",
    "Connection",
    "EchoServer",
    "Response",
    "big_body",
    "echo_app",
    "get",
    "post",
    "stream_pieces",
]

ROOT = Path(__file__).resolve().parents[2]
EVENTS_ENV = "AGEGATE_TEST_EVENTS"
BIG_PIECE = 64 * 1024
_DISCONNECT_WAIT = 5.0  # seconds /disconnect waits before giving up (and answering 200)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def big_body(size: int) -> Iterator[bytes]:
    """The pieces ``/big?bytes=size`` sends: piece i is 64 KiB of byte ``i % 256``."""
    for index, start in enumerate(range(0, size, BIG_PIECE)):
        yield bytes([index % 256]) * min(BIG_PIECE, size - start)


def stream_pieces(count: int) -> list[bytes]:
    """The pieces ``/stream?n=count`` sends, each as one ASGI body message."""
    return [b"piece %d of %d\n" % (i, count) for i in range(count)]


# --- the app --------------------------------------------------------------------


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Route by path; anything unknown is echoed."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
    handler = _ROUTES.get(scope["path"], _echo)
    await handler(scope, receive, send, query)


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client left before its body arrived")
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)


async def _answer(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [*(headers or []), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _echo(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    body = await _read_body(receive)
    ext = scope.get("extensions", {}).get("agegate")
    seen = {
        "method": scope["method"],
        "http_version": scope["http_version"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query": scope["query_string"].decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": scope["client"][0],
        "body": body.decode("latin-1"),
        "agegate": ext and {**ext, "raw_target": ext["raw_target"].decode("latin-1")},
    }
    data = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"x-echo", base64.b64encode(data))]
    await _answer(send, 200, data, headers)


async def _digest(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    body = await _read_body(receive)
    data = json.dumps({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})
    await _answer(send, 200, data.encode(), [(b"content-type", b"application/json")])


async def _stream(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for piece in stream_pieces(int(query.get("n", "3"))):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        await asyncio.sleep(0.01)  # each piece leaves on its own
    await send({"type": "http.response.body", "body": b""})


async def _big(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    size = int(query["bytes"])
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % size)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for piece in big_body(size):
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _slow(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await asyncio.sleep(int(query.get("ms", "1000")) / 1000)
    await _echo(scope, receive, send, query)


async def _no_read(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    await _answer(send, 200, b"answered without reading the body")


async def _status(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    code = int(query["code"])
    headers = [(b"etag", b'"v1"')] if code == 304 else []
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _header(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    # An app that copies input into a header: the server must refuse CR/LF in it.
    value = unquote_to_bytes(scope["query_string"].partition(b"=")[2])
    headers = [(b"x-echo-value", value), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def _raise_before(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    raise RuntimeError("test: the app fails before its response starts")


async def _raise_after(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    headers = [(b"content-length", b"1000")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
    raise RuntimeError("test: the app fails in the middle of its body")


async def _disconnect(scope: Scope, receive: Receive, send: Send, query: dict[str, str]) -> None:
    ident = query.get("id", "-")
    _record(f"start {ident}")
    deadline = asyncio.get_running_loop().time() + _DISCONNECT_WAIT
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(receive(), max(remaining, 0.0))
        except TimeoutError:
            _record(f"timeout {ident}")
            await _answer(send, 200, b"the client stayed")
            return
        if message["type"] == "http.disconnect":
            _record(f"disconnect {ident}")
            return


def _record(line: str) -> None:
    with open(os.environ[EVENTS_ENV], "a", encoding="utf-8") as events:
        events.write(line + "\n")


_ROUTES: dict[str, Callable[[Scope, Receive, Send, dict[str, str]], Awaitable[None]]] = {
    "/digest": _digest,
    "/stream": _stream,
    "/big": _big,
    "/slow": _slow,
    "/no-read": _no_read,
    "/status": _status,
    "/header": _header,
    "/raise-before": _raise_before,
    "/raise-after": _raise_after,
    "/disconnect": _disconnect,
}


# --- the subprocess -----------------------------------------------------------


class EchoServer:
    """:func:`echo_app` served by ``gateway.http.server.serve_config`` in a subprocess.

    ``config`` goes to ``serve_config`` (``timeout_keep_alive=1``, say;
    ``client_timeouts`` as a dict of :class:`gateway.http.server.ClientTimeouts` fields);
    ``head_timeout`` sets ``gateway.http.server.HEAD_TIMEOUT`` in the subprocess
    when the module has it.  The process's stderr goes to ``server.log`` in
    ``workdir``, the app's events to ``events.txt``.
    """

    def __init__(self, workdir: Path, *, head_timeout: float | None = None, **config: Any) -> None:
        self.workdir = workdir
        self.head_timeout = head_timeout
        self.config = config
        self.port = 0
        self.events_path = workdir / "events.txt"
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def start(self) -> EchoServer:
        """Start the subprocess; returns once it accepts connections."""
        self.port = free_port()
        self.events_path.touch()
        command = [sys.executable, "-m", "tests.support.echo_server", "--port", str(self.port)]
        command += ["--config", json.dumps(self.config)]
        if self.head_timeout is not None:
            command += ["--head-timeout", str(self.head_timeout)]
        env = {**os.environ, "PYTHONPATH": str(ROOT), EVENTS_ENV: str(self.events_path)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown), then SIGKILL if it hangs."""
        stop_process(self.process)

    def rss_kib(self) -> int:
        """The server process's resident set size (VmRSS), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS in /proc status")

    def events(self) -> list[str]:
        """The lines the app recorded so far."""
        return self.events_path.read_text().splitlines()

    def wait_for_event(self, line: str, timeout: float) -> float:
        """Seconds until the app records ``line``; AssertionError after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if line in self.events():
                return time.monotonic() - start
            time.sleep(0.01)
        raise AssertionError(f"the app did not record {line!r} within {timeout}s")

    def __enter__(self) -> EchoServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


# --- a strict raw client ---------------------------------------------------------


class Closed(Exception):
    """The server closed the connection where more bytes were expected."""


@dataclass
class Response:
    """One final response: header names lower-cased, in order; ``chunks`` when chunked."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[bytes] | None = None  # the payloads, when chunked

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def names(self) -> set[str]:
        return {k for k, _ in self.headers}

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One client connection: exact bytes out, responses parsed strictly as they come in."""

    def __init__(self, port: int, timeout: float = 5.0, *, rcvbuf: int | None = None) -> None:
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connecting, so the TCP window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_pieces(self, pieces: list[bytes], pause: float = 0.002) -> None:
        """Send each piece on its own, so the server reads them apart."""
        for piece in pieces:
            self.sock.sendall(piece)
            time.sleep(pause)

    def _more(self, size: int = 65536) -> None:
        if self.eof:
            raise Closed
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed
        self.buffer += data

    def _take_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) == -1:
            self._more()
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def take(self, size: int) -> bytes:
        """Exactly the next ``size`` bytes (Closed if the server closes first)."""
        while len(self.buffer) < size:
            self._more()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def read_head(self) -> tuple[int, list[tuple[str, str]]]:
        """The next status line and headers (interim ones included)."""
        status_line = self._take_line()
        version, status, _ = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1", f"not a status line: {status_line[:80]!r}"
        headers = []
        while line := self._take_line():
            name, sep, value = line.partition(b":")
            assert sep and name == name.strip(), f"bad header line {line!r}"
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        return int(status), headers

    def read_response(self, *, head_request: bool = False) -> Response:
        """The next final response; 100 Continue is skipped."""
        status, headers = self.read_head()
        while status == 100:
            status, headers = self.read_head()
        response = Response(status, headers, b"")
        if head_request or status in (204, 304):
            return response
        if (response.header("transfer-encoding") or "").lower() == "chunked":
            response.chunks = self._read_chunks()
            response.body = b"".join(response.chunks)
        elif (length := response.header("content-length")) is not None:
            response.body = self.take(int(length))
        else:  # close-delimited
            response.body = self.read_until_closed()
        return response

    def _read_chunks(self) -> list[bytes]:
        chunks: list[bytes] = []
        while True:
            size_line = self._take_line()
            assert size_line and all(c in b"0123456789abcdefABCDEF" for c in size_line), (
                f"bad chunk size line {size_line!r}"
            )
            size = int(size_line, 16)
            if size == 0:
                assert self._take_line() == b"", "trailers after the last chunk"
                return chunks
            chunks.append(self.take(size))
            assert self.take(2) == b"\r\n", "chunk data not followed by CRLF"

    def read_until_closed(self) -> bytes:
        """Everything up to the server's close (socket timeout: TimeoutError)."""
        while True:
            try:
                self._more()
            except Closed:
                break
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def closed_within(self, timeout: float) -> float | None:
        """Seconds until the server closes (bytes it sends are kept), or None if still open."""
        start = time.monotonic()
        try:
            while not self.eof:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                try:
                    self._more()
                except Closed:
                    break
                except TimeoutError:
                    return None
            return time.monotonic() - start
        finally:
            self.sock.settimeout(self.timeout)

    def request(self, data: bytes, *, head_request: bool = False) -> Response:
        self.send(data)
        return self.read_response(head_request=head_request)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def get(target: str, *headers: str, version: str = "1.1") -> bytes:
    """A GET request's bytes, with ``Host`` and ``headers`` (``"Name: value"`` strings)."""
    lines = [f"GET {target} HTTP/{version}", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def post(target: str, body: bytes, *headers: str) -> bytes:
    """A POST request's bytes, with ``Host``, ``Content-Length``, ``headers`` and ``body``."""
    lines = [f"POST {target} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def main(argv: list[str] | None = None) -> None:
    """Serve :func:`echo_app` on 127.0.0.1 until SIGTERM (the subprocess side)."""
    import uvicorn

    import gateway.http.server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", default="{}", help="serve_config keyword arguments, as JSON")
    parser.add_argument("--head-timeout", type=float, default=None)
    args = parser.parse_args(argv)
    if args.head_timeout is not None and hasattr(gateway.http.server, "HEAD_TIMEOUT"):
        gateway.http.server.HEAD_TIMEOUT = args.head_timeout
    options = json.loads(args.config)
    if "client_timeouts" in options:  # {"body": s, "body_deadline": s, "send": s}
        timeouts = options["client_timeouts"]
        options["client_timeouts"] = gateway.http.server.ClientTimeouts(**timeouts)
    config = gateway.http.server.serve_config(echo_app, host="127.0.0.1", port=args.port, **options)
    # uvicorn re-raises the SIGTERM it handled once it has shut down; ignored here, so
    # exit status 0 means a shutdown that completed, not one cut short by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
