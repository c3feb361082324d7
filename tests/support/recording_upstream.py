"""A raw upstream that records every byte it receives, for request-smuggling tests.

::

    with RecordingUpstream() as up:
        up.url                       # "http://127.0.0.1:<port>"
        up.reset()                   # close every connection, forget what was seen
        up.answered()                # what its live parser answered, in order
        up.reparsed()                # the recorded bytes parsed again by h11
        up.connections()             # per connection: the exact bytes and whether it ended

It answers each request as soon as its *head* is parsed, before reading the
body, as many real upstreams do: bytes a proxy leaves in the stream (a body it
announced but did not send, a body it did not announce) are then read as the
next request, which is what a request-smuggling desync looks like from the
site's side.  Each answer is ``200`` with a JSON body naming the connection,
the request's sequence number on it, its method, target and marker (the ``m``
query parameter the tests put on every request).

The live parser is httptools (llhttp); :func:`reparse` reads the same bytes
with h11, a different code base, so a test can check that two independent
parsers agree on what the upstream was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import h11
import httptools

__all__ = ["RecordedConnection", "RecordingUpstream", "SeenRequest", "reparse"]

SERVER_NAME = "recording-upstream"


@dataclass
class SeenRequest:
    """One request as an upstream parser saw it (header names lower-cased)."""

    conn: int
    seq: int
    method: str = ""
    target: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def marker(self) -> str | None:
        values = parse_qs(urlsplit(self.target).query).get("m")
        return values[-1] if values else None

    def summary(self) -> str:
        state = "" if self.complete else " (incomplete)"
        return f"#{self.conn}.{self.seq} {self.method} {self.target} body={self.body!r}{state}"


@dataclass
class RecordedConnection:
    """The exact bytes one upstream connection received, and how it ended."""

    index: int
    raw: bytearray = field(default_factory=bytearray)
    ended: bool = False  # the gateway closed it (EOF) or it broke
    live_error: str | None = None  # the live parser gave up here


class _Live(asyncio.Protocol):
    """One connection: record bytes, answer each request at the end of its head."""

    def __init__(self, server: RecordingUpstream) -> None:
        self.server = server
        self.record = server._new_connection(self)
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.current = SeenRequest(self.record.index, 0)
        self.seq = 0
        self.stopped = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        with self.server.lock:
            self.record.raw += data
        if self.stopped:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.stopped = True  # what follows is not HTTP/1.1 for llhttp
        except httptools.HttpParserError as exc:
            self.stopped = True
            self.record.live_error = str(exc)
            self._close()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.record.ended = True
        self.server._lost(self)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.current = SeenRequest(self.record.index, self.seq)
        self.seq += 1

    def on_url(self, url: bytes) -> None:
        self.current.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        req = self.current
        req.method = self.parser.get_method().decode("latin-1")
        with self.server.lock:
            self.server._answered.append(req)
        doc = {
            "conn": req.conn,
            "seq": req.seq,
            "method": req.method,
            "target": req.target,
            "marker": req.marker,
        }
        body = json.dumps(doc).encode()
        head = (
            b"HTTP/1.1 200 OK\r\nserver: %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % (SERVER_NAME.encode(), len(body))
        )
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head if req.method == "HEAD" else head + body)

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.current.complete = True
        if not self.parser.should_keep_alive():
            self.stopped = True
            self._close()


def reparse(raw: bytes, conn: int = 0) -> tuple[list[SeenRequest], str | None]:
    """The requests h11 reads in ``raw`` (one connection's bytes) and its complaint, if any.

    h11 refuses what RFC 9112 forbids a sender to write (conflicting lengths,
    a transfer coding other than chunked, bare LF, obs-fold...), so a
    complaint about bytes a proxy wrote is itself a finding.
    """
    parser = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    # No EOF is fed: a request cut short stays ``complete=False`` (whether its
    # connection ended is in RecordedConnection.ended).
    parser.receive_data(raw)
    seen: list[SeenRequest] = []
    current: SeenRequest | None = None
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            return seen, f"h11: {exc}"
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return seen, None
        if isinstance(event, h11.ConnectionClosed):
            return seen, None
        if isinstance(event, h11.Request):
            current = SeenRequest(
                conn,
                len(seen),
                event.method.decode("latin-1"),
                event.target.decode("latin-1"),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers],
            )
            seen.append(current)
        elif isinstance(event, h11.Data) and current is not None:
            current.body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage) and current is not None:
            current.complete = True
            if parser.their_state is not h11.DONE:
                return seen, None
            parser.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            parser.send(h11.EndOfMessage())
            if parser.our_state is not h11.DONE:
                return seen, None  # Connection: close (or HTTP/1.0): nothing more is read
            parser.start_next_cycle()


class RecordingUpstream:
    """The recording upstream, in a daemon thread with its own event loop."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.lock = threading.Lock()
        self._records: list[RecordedConnection] = []
        self._answered: list[SeenRequest] = []
        self._live: set[_Live] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _new_connection(self, live: _Live) -> RecordedConnection:
        with self.lock:
            record = RecordedConnection(len(self._records))
            self._records.append(record)
            self._live.add(live)
        return record

    def _lost(self, live: _Live) -> None:
        with self.lock:
            self._live.discard(live)

    # what was seen -------------------------------------------------------------
    def connections(self) -> list[RecordedConnection]:
        with self.lock:
            return [
                RecordedConnection(r.index, bytearray(r.raw), r.ended, r.live_error)
                for r in self._records
            ]

    def answered(self) -> list[SeenRequest]:
        """What the live parser answered (its bodies may still have been filling)."""
        with self.lock:
            return list(self._answered)

    def reparsed(self) -> tuple[list[SeenRequest], list[str]]:
        """Every connection's bytes parsed by h11: the requests and the complaints."""
        seen: list[SeenRequest] = []
        errors: list[str] = []
        for record in self.connections():
            requests, error = reparse(bytes(record.raw), record.index)
            seen += requests
            if error is not None:
                errors.append(f"connection {record.index}: {error}; bytes {bytes(record.raw)!r}")
        return seen, errors

    def reset(self, settle: float = 0.15) -> None:
        """Close every connection and forget everything; the gateway's pool starts afresh."""
        loop = self._loop
        assert loop is not None, "not started"
        done = threading.Event()

        def close_all() -> None:
            for live in list(self._live):
                live._close()
            done.set()

        loop.call_soon_threadsafe(close_all)
        done.wait(5)
        time.sleep(settle)  # the gateway sees the EOFs and drops those pooled connections
        with self.lock:
            self._records.clear()
            self._answered.clear()

    # lifecycle ---------------------------------------------------------------------
    def start(self) -> RecordingUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                loop.create_server(lambda: _Live(self), self.host, 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="recording-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("recording upstream did not start")
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for live in list(self._live):
                live._close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> RecordingUpstream:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
