"""The public listener's HTTP/1.1, black-box: raw bytes on loopback sockets to a real server.

The server is ``gateway.http.server.serve_config`` around the echo app of
``tests/support/echo_server.py``, in a subprocess.  Nothing here knows how the
protocol is written (these tests held for uvicorn's protocol and hold for the
gateway's own); what they check is what a client, a slow or hostile one, or an
operator sending SIGTERM sees on the wire.  Tests marked "new behaviour (own
protocol)" are what uvicorn's protocol did not do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.echo_server import (
    Closed,
    Connection,
    EchoServer,
    Response,
    big_body,
    get,
    post,
    stream_pieces,
)

HEAD_TIMEOUT = 1.0  # set in the servers below; the module default is 10 s
KEEP_ALIVE = 1  # timeout_keep_alive of the short-timeouts server, seconds
SLACK = 1.0  # seconds a timeout may fire late on a loaded 2-core machine
BODY_TIMEOUT = 1.0  # ClientTimeouts of the stalling server, seconds
BODY_DEADLINE = 3.0
SEND_TIMEOUT = 1.0


def echoed(response: Response) -> dict[str, Any]:
    assert response.status == 200, response
    result: dict[str, Any] = response.json()
    return result


# --- servers ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    """The shared server: default keep-alive (5 s), HEAD_TIMEOUT 1 s."""
    with EchoServer(tmp_path_factory.mktemp("echo"), head_timeout=HEAD_TIMEOUT) as running:
        yield running


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    """A server with 1 s keep-alive and head timeouts."""
    workdir = tmp_path_factory.mktemp("echo-short")
    with EchoServer(workdir, head_timeout=HEAD_TIMEOUT, timeout_keep_alive=KEEP_ALIVE) as running:
        yield running


@pytest.fixture(scope="module")
def stalling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoServer]:
    """A server with short body and send timeouts (ClientTimeouts)."""
    timeouts = {"body": BODY_TIMEOUT, "body_deadline": BODY_DEADLINE, "send": SEND_TIMEOUT}
    workdir = tmp_path_factory.mktemp("echo-stalling")
    with EchoServer(workdir, head_timeout=HEAD_TIMEOUT, client_timeouts=timeouts) as running:
        yield running


# --- 1. keep-alive ------------------------------------------------------------------


def test_two_requests_share_one_connection(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        first = conn.request(get("/one"))
        second = conn.request(get("/two"))
    assert echoed(first)["raw_path"] == "/one"
    assert echoed(second)["raw_path"] == "/two"
    assert first.header("connection") is None
    assert second.header("connection") is None


def test_http10_request_without_keep_alive_is_answered_then_closed(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        response = conn.request(get("/old", version="1.0"))
        assert echoed(response)["http_version"] == "1.0"
        assert response.header("connection") == "close"
        assert conn.closed_within(2.0) is not None
        assert conn.buffer == b""


def test_connection_close_request_is_answered_then_closed(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        response = conn.request(get("/bye", "Connection: close"))
        assert echoed(response)["raw_path"] == "/bye"
        assert response.header("connection") == "close"
        assert conn.closed_within(2.0) is not None
        assert conn.buffer == b""


# --- 2. timeouts ----------------------------------------------------------------------


def test_idle_keep_alive_connection_is_closed_after_the_timeout(short: EchoServer) -> None:
    with Connection(short.port) as conn:
        echoed(conn.request(get("/then-idle")))
        elapsed = conn.closed_within(KEEP_ALIVE + 2 * SLACK)
        assert elapsed is not None, "the idle connection was kept open"
        assert elapsed >= KEEP_ALIVE / 2
        assert conn.buffer == b"", "an idle close must be silent (a client may be sending)"


def test_a_slow_response_is_not_cut_by_the_idle_timeout(short: EchoServer) -> None:
    with Connection(short.port) as conn:
        assert echoed(conn.request(get("/slow?ms=1500")))["query"] == "ms=1500"
        assert echoed(conn.request(get("/after")))["raw_path"] == "/after"


def test_a_slow_request_body_is_not_cut_by_the_head_timeout(short: EchoServer) -> None:
    # HEAD_TIMEOUT bounds the head only: a body is the app's to wait for.
    with Connection(short.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":
            time.sleep(0.3)
            conn.send(bytes([byte]))
        assert echoed(conn.read_response())["body"] == "abcdef"


def test_connection_that_never_sends_is_closed_after_keep_alive_timeout(
    short: EchoServer,
) -> None:
    # new behaviour (own protocol): uvicorn left a silent new connection open forever.
    with Connection(short.port) as conn:
        elapsed = conn.closed_within(KEEP_ALIVE + 2 * SLACK)
        assert elapsed is not None, "a connection that never spoke was kept open"
        assert elapsed >= KEEP_ALIVE / 2
        assert conn.buffer == b""


def _trickle_until_closed(conn: Connection, limit: float) -> float | None:
    """Send a never-ending head one byte every 300 ms; seconds until the server closes."""
    head = b"GET /trickle HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"s" * 200
    start = time.monotonic()
    for byte in head:
        try:
            conn.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - start
        if conn.closed_within(0.3) is not None:
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            return None
    raise AssertionError("the whole head was sent")


@pytest.mark.parametrize("after_a_response", [False, True], ids=["fresh", "kept-alive"])
def test_trickled_head_is_cut_off_with_408(server: EchoServer, after_a_response: bool) -> None:
    # new behaviour (own protocol): uvicorn waited for a trickled head forever.
    # The shared server's keep-alive timeout (5 s) is longer than HEAD_TIMEOUT on purpose:
    # the head timeout must not wait for the idle timer.
    with Connection(server.port) as conn:
        if after_a_response:
            echoed(conn.request(get("/first")))
        elapsed = _trickle_until_closed(conn, limit=HEAD_TIMEOUT + 5)
        assert elapsed is not None, "a head trickled for 6 s was still being read"
        assert elapsed <= HEAD_TIMEOUT + SLACK, f"cut off after {elapsed:.1f}s"
        assert conn.read_response().status == 408


def test_a_late_head_behind_a_slow_response_does_not_preempt_it(short: EchoServer) -> None:
    # A pipelined head that stalls may earn a 408, but only after the response before it:
    # a 408 first would read as the answer to the slow request (which the app did run).
    with Connection(short.port) as conn:
        conn.send(get("/slow?ms=2000") + b"GET /stalled HTTP/1.1\r\nHo")
        first = conn.read_response()
        assert first.status == 200, f"got {first.status} before the slow response"
        assert echoed(first)["query"] == "ms=2000"


def test_a_stalled_request_body_gets_408_after_the_body_timeout(stalling: EchoServer) -> None:
    # new behaviour (own protocol): the app waited for the rest of a body forever.
    with Connection(stalling.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc")
        start = time.monotonic()
        response = conn.read_response()
        elapsed = time.monotonic() - start
        assert response.status == 408
        assert response.header("connection") == "close"
        assert BODY_TIMEOUT - 0.2 <= elapsed <= BODY_TIMEOUT + SLACK, elapsed
        assert conn.closed_within(SLACK) is not None


def test_a_body_trickled_within_the_idle_timeout_is_cut_at_the_deadline(
    stalling: EchoServer,
) -> None:
    with Connection(stalling.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n")
        start = time.monotonic()
        elapsed = None
        while time.monotonic() - start < BODY_DEADLINE + 3 * SLACK:
            try:
                conn.send(b"x")
            except (BrokenPipeError, ConnectionResetError):
                elapsed = time.monotonic() - start
                break
            if conn.closed_within(BODY_TIMEOUT / 2) is not None:
                elapsed = time.monotonic() - start
                break
        assert elapsed is not None, "a body trickled past its deadline was still being read"
        assert BODY_DEADLINE - 0.5 <= elapsed <= BODY_DEADLINE + SLACK, elapsed
        assert conn.read_response().status == 408


def test_a_steady_body_slower_than_the_idle_timeout_in_all_arrives(stalling: EchoServer) -> None:
    with Connection(stalling.port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":  # 1.8 s in all, 0.3 s apart
            time.sleep(0.3)
            conn.send(bytes([byte]))
        assert echoed(conn.read_response())["body"] == "abcdef"
        assert echoed(conn.request(get("/after")))["raw_path"] == "/after"


def test_a_client_that_stops_reading_is_dropped_after_the_send_timeout(
    stalling: EchoServer,
) -> None:
    # new behaviour (own protocol): a response waited for its reader forever.
    size = 64 * 1024 * 1024
    with Connection(stalling.port, timeout=10, rcvbuf=16 * 1024) as conn:
        conn.send(get(f"/big?bytes={size}"))
        status, _ = conn.read_head()
        assert status == 200
        # Reads nothing meanwhile; generous, since a late timer meeting our first read
        # would count as progress and keep the connection (a loaded CI machine).
        time.sleep(SEND_TIMEOUT + 3 * SLACK)
        received = len(conn.buffer)
        try:
            while data := conn.sock.recv(1024 * 1024):
                received += len(data)
        except ConnectionResetError:
            pass
        assert received < size, "the whole response was kept for a client that stopped reading"


def test_a_slow_but_reading_client_is_not_cut_by_the_send_timeout(stalling: EchoServer) -> None:
    size = 8 * 1024 * 1024
    # Reads of 64 KiB: loopback's MSS is that large, and the client's kernel opens its
    # window only after a segment's worth was read.
    with Connection(stalling.port, timeout=10, rcvbuf=256 * 1024) as conn:
        conn.send(get(f"/big?bytes={size}"))
        status, _ = conn.read_head()
        assert status == 200
        received = len(conn.buffer)
        slow_until = time.monotonic() + 3 * SEND_TIMEOUT
        while received < size:
            slow = time.monotonic() < slow_until
            data = conn.sock.recv(64 * 1024 if slow else 1024 * 1024)
            assert data, f"closed after {received} of {size} bytes"
            received += len(data)
            if slow:
                time.sleep(SEND_TIMEOUT / 8)  # the writer stays paused, yet sees progress
        assert received == size


# --- 3. Expect: 100-continue ---------------------------------------------------------


def test_100_continue_comes_before_the_body_is_sent(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        conn.send(
            b"POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        status, headers = conn.read_head()  # the body has not been sent: this is the 100
        assert (status, headers) == (100, [])
        conn.send(b"hello")
        response = conn.read_response()
        assert echoed(response)["body"] == "hello"
        assert echoed(conn.request(get("/after")))["raw_path"] == "/after"


def test_no_100_continue_when_the_app_answers_without_the_body(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        conn.send(
            b"POST /no-read HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        status, headers = conn.read_head()
        assert status == 200, "the final answer comes first, no 100 Continue"
        assert conn.take(int(dict(headers)["content-length"])).startswith(b"answered")
        # The client may still send the body: it must be read as a body, not a request.
        conn.send(b"GET /" + get("/after"))
        try:
            after = conn.read_response()
        except Closed:
            return  # closing instead is allowed too
        assert echoed(after)["raw_path"] == "/after"


# --- 4. request bodies ------------------------------------------------------------------


def test_chunked_request_body_split_across_sends_arrives_intact(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        conn.send_pieces(
            [
                b"POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r",
                b"\nhel",
                b"lo\r\n6\r\n wo",
                b"rld\r\n",
                b"1;ext=1\r\n!\r\n0\r",
                b"\n\r\n",
            ],
            pause=0.02,
        )
        seen = echoed(conn.read_response())
    assert seen["body"] == "hello world!"
    assert ["transfer-encoding", "chunked"] in seen["headers"]


def test_four_mib_request_body_arrives_intact(server: EchoServer) -> None:
    body = os.urandom(4 * 1024 * 1024)
    with Connection(server.port, timeout=15) as conn:
        response = conn.request(post("/digest", body))
    assert response.json() == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_an_unread_request_body_is_skipped_and_the_connection_stays_usable(
    server: EchoServer,
) -> None:
    body = b"u" * (1024 * 1024)
    with Connection(server.port) as conn:
        conn.send(post("/no-read", body) + get("/after"))
        assert conn.read_response().body.startswith(b"answered")
        try:
            after = conn.read_response()
        except Closed:
            return  # closing instead of reading the body through is allowed too
        assert echoed(after)["raw_path"] == "/after"


# --- 5. response framing ----------------------------------------------------------------


def test_streamed_response_is_chunked_and_the_connection_stays_usable(
    server: EchoServer,
) -> None:
    with Connection(server.port) as conn:
        response = conn.request(get("/stream?n=4"))
        assert response.status == 200
        assert response.header("transfer-encoding") == "chunked"
        assert response.header("content-length") is None
        assert response.chunks == stream_pieces(4)
        assert echoed(conn.request(get("/after")))["raw_path"] == "/after"


def test_head_has_the_length_but_no_body(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        conn.send(b"HEAD /big?bytes=1000 HTTP/1.1\r\nHost: test\r\n\r\n")
        response = conn.read_response(head_request=True)
        assert response.status == 200
        assert response.header("content-length") == "1000"
        # A body byte left on the wire would be read as the next status line here.
        assert echoed(conn.request(get("/after")))["raw_path"] == "/after"


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses_send_no_body(server: EchoServer, code: int) -> None:
    with Connection(server.port) as conn:
        response = conn.request(get(f"/status?code={code}"))
        assert response.status == code
        assert "transfer-encoding" not in response.names()
        assert echoed(conn.request(get("/after")))["raw_path"] == "/after"


def test_http10_streamed_response_is_close_delimited(server: EchoServer) -> None:
    # new behaviour (own protocol): uvicorn sent chunked to HTTP/1.0 clients,
    # which RFC 9112 §6.1 forbids (they cannot decode it).
    with Connection(server.port) as conn:
        conn.send(get("/stream?n=3", version="1.0"))
        response = conn.read_response()
        assert "transfer-encoding" not in response.names()
        assert response.body == b"".join(stream_pieces(3))
        assert conn.eof


# --- 6. pipelining ----------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        conn.send(get("/slow?ms=100") + post("/middle", b"middle body") + get("/last"))
        first, middle, last = (echoed(conn.read_response()) for _ in range(3))
    assert (first["raw_path"], first["query"]) == ("/slow", "ms=100")
    assert (middle["raw_path"], middle["method"], middle["body"]) == (
        "/middle",
        "POST",
        "middle body",
    )
    assert last["raw_path"] == "/last"


def test_many_pipelined_requests_are_all_answered_in_order(server: EchoServer) -> None:
    requests = [post(f"/p{i}", b"b%d" % i) if i % 3 else get(f"/p{i}") for i in range(60)]
    with Connection(server.port) as conn:
        conn.send(b"".join(requests))
        seen = [echoed(conn.read_response()) for _ in requests]
    assert [s["raw_path"] for s in seen] == [f"/p{i}" for i in range(60)]
    assert [s["body"] for s in seen] == [f"b{i}" if i % 3 else "" for i in range(60)]


def test_nothing_after_a_connection_close_request_is_answered(server: EchoServer) -> None:
    # The bytes after it must neither be answered nor make the parser answer 400 instead.
    with Connection(server.port) as conn:
        conn.send(get("/last-one", "Connection: close") + get("/ignored"))
        response = conn.read_response()
        assert echoed(response)["raw_path"] == "/last-one"
        assert conn.closed_within(2.0) is not None
        assert conn.buffer == b"", "the request after Connection: close was answered"


# --- 7. a slow reader -------------------------------------------------------------------


def test_slow_reader_gets_every_byte_and_the_server_does_not_buffer_them(
    server: EchoServer,
) -> None:
    size = 32 * 1024 * 1024
    expected = hashlib.sha256()
    for piece in big_body(size):
        expected.update(piece)
    before = peak = server.rss_kib()
    # A small receive window: what the client does not take stays in the server.
    with Connection(server.port, timeout=10, rcvbuf=64 * 1024) as conn:
        conn.send(get(f"/big?bytes={size}"))
        status, headers = conn.read_head()
        assert status == 200
        assert dict(headers)["content-length"] == str(size)
        received, digest = len(conn.buffer), hashlib.sha256(conn.buffer)
        slow_until = time.monotonic() + 1.0
        while received < size:
            slow = time.monotonic() < slow_until
            data = conn.sock.recv(4096 if slow else 1024 * 1024)
            assert data, f"closed after {received} of {size} bytes"
            received += len(data)
            digest.update(data)
            if slow:
                time.sleep(0.01)
                peak = max(peak, server.rss_kib())
        peak = max(peak, server.rss_kib())
    assert received == size
    assert digest.hexdigest() == expected.hexdigest()
    assert peak - before < 20 * 1024, f"server RSS grew by {(peak - before) // 1024} MiB"


# --- 8. app failures ------------------------------------------------------------------------


def test_app_failing_before_its_response_gets_500_and_a_close(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        response = conn.request(get("/raise-before"))
        assert response.status == 500
        assert response.header("connection") == "close"
        assert conn.closed_within(2.0) is not None
    with Connection(server.port) as conn:
        assert echoed(conn.request(get("/still-up")))["raw_path"] == "/still-up"


@pytest.mark.parametrize("value", ["a%0D%0ASet-Cookie:%20x=1", "a%0ASet-Cookie:%20x=1", "a%0Db"])
def test_response_splitting_through_a_header_value_is_refused(
    server: EchoServer, value: str
) -> None:
    # An app copying input into a header must not let it write a second header (or a
    # second response): the head is refused before any of it leaves.
    with Connection(server.port) as conn:
        response = conn.request(get(f"/header?v={value}"))
        assert response.status == 500
        assert response.header("set-cookie") is None
        assert conn.closed_within(2.0) is not None
    with Connection(server.port) as conn:
        plain = conn.request(get("/header?v=plain"))
        assert (plain.status, plain.header("x-echo-value")) == (200, "plain")


def test_app_failing_mid_body_truncates_and_closes(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        conn.send(get("/raise-after"))
        status, headers = conn.read_head()
        assert status == 200
        assert dict(headers)["content-length"] == "1000"
        assert conn.closed_within(2.0) is not None
        assert 0 < len(conn.buffer) < 1000, "a truncated body must not look complete"
    with Connection(server.port) as conn:
        assert echoed(conn.request(get("/still-up")))["raw_path"] == "/still-up"


# --- 9. the client leaving ----------------------------------------------------------------


def test_app_sees_http_disconnect_when_the_client_leaves(server: EchoServer) -> None:
    ident = uuid.uuid4().hex
    conn = Connection(server.port)
    conn.send(get(f"/disconnect?id={ident}"))
    server.wait_for_event(f"start {ident}", timeout=2.0)
    conn.close()
    server.wait_for_event(f"disconnect {ident}", timeout=2.0)


# --- 10. graceful shutdown ------------------------------------------------------------------


def test_sigterm_finishes_the_running_response_and_closes_idle_ones(tmp_path: Path) -> None:
    server = EchoServer(tmp_path).start()
    try:
        idle = Connection(server.port)
        echoed(idle.request(get("/earlier")))
        busy = Connection(server.port)
        busy.send(get("/slow?ms=1500"))
        time.sleep(0.3)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        assert idle.closed_within(1.0) is not None, "the idle connection was kept open"
        assert idle.buffer == b""
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        response = busy.read_response()
        assert echoed(response)["query"] == "ms=1500"
        assert response.header("connection") == "close"
        assert busy.closed_within(1.0) is not None
        assert server.process.wait(timeout=5 - (time.monotonic() - signalled)) == 0
        idle.close()
        busy.close()
    finally:
        server.stop()


# --- 11. any split of a request means the same request ---------------------------------------

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_VALUE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)
_PATH = st.lists(
    st.one_of(
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~/", min_size=1, max_size=6),
        st.sampled_from(["%41", "%2F", "%20", "%25", "%e2%82%ac"]),
    ),
    max_size=6,
).map("".join)


@st.composite
def _requests(draw: st.DrawFn) -> tuple[str, bytes, list[int]]:
    method = draw(st.sampled_from(["GET", "POST", "HEAD"]))
    path = "/" + draw(_PATH)
    if draw(st.booleans()):
        path += "?" + draw(_TOKEN) + "=" + draw(_TOKEN)
    names = draw(st.lists(_TOKEN, max_size=6, unique=True))
    headers = [(f"x-{name}", draw(_VALUE)) for name in names]
    body = draw(st.binary(max_size=3000)) if draw(st.booleans()) else b""
    head = [f"{method} {path} HTTP/1.1", "Host: test"]
    head += [f"{name}: {value}" for name, value in headers]
    if body:
        head.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
    cuts = draw(st.lists(st.integers(1, len(raw) - 1), max_size=6, unique=True))
    return method, raw, sorted(cuts)


@settings(max_examples=25, deadline=None)
@given(_requests())
def test_a_request_split_anywhere_is_the_same_request(
    server: EchoServer, case: tuple[str, bytes, list[int]]
) -> None:
    method, raw, cuts = case
    is_head = method == "HEAD"
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    with Connection(server.port) as conn:
        whole = conn.request(raw, head_request=is_head)
        conn.send_pieces(pieces)
        split = conn.read_response(head_request=is_head)
    assert whole.status == split.status == 200
    assert whole.body == split.body
    seen = json.loads(base64.b64decode(split.header("x-echo") or ""))
    assert seen == json.loads(base64.b64decode(whole.header("x-echo") or ""))
    head, _, body = raw.partition(b"\r\n\r\n")
    target = head.split(b" ")[1].decode()
    assert (seen["method"], seen["raw_path"], seen["body"]) == (
        method,
        target.partition("?")[0],
        body.decode("latin-1"),
    )
    sent = [line.decode("latin-1").split(": ", 1) for line in head.split(b"\r\n")[1:]]
    assert seen["headers"] == [[name.lower(), value] for name, value in sent]


# --- 12. limits still in force (test_server.py tests them in detail) --------------------------


def test_oversized_heads_are_still_refused(server: EchoServer) -> None:
    with Connection(server.port) as conn:
        assert conn.request(get("/" + "a" * 9000)).status == 414
    with Connection(server.port) as conn:
        assert conn.request(get("/", "X-Big: " + "a" * 40000)).status == 431
