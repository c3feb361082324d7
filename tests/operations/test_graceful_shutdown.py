"""SIGTERM: stop accepting, close idle connections, finish responses in flight, then exit 0."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import parse_responses
from tests.support.upstream import UpstreamServer, pattern_bytes

STREAM = 2_000_000


def request(path: str, *, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET %b HTTP/1.1\r\nHost: localhost\r\n%b\r\n" % (path.encode(), connection)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_sigterm_finishes_a_slow_download_and_closes_idle_connections(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    gw = GatewayProcess(tmp_path, upstream=upstream.url, settings={"shutdown_timeout": "10s"})
    with gw:
        assert gw.process is not None
        idle = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        idle.sendall(request("/echo/public/first", close=False))
        received = b""
        while not parse_responses(received, eof=False):
            received += idle.recv(65536)
        assert parse_responses(received, eof=False)[0].status == 200
        busy = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        # ~2 s of streaming: 2 MB in 256 KiB blocks, 0.25 s apart.
        busy.sendall(request(f"/stream/{STREAM}?delay=0.25"))
        first = busy.recv(1024)
        assert first.startswith(b"HTTP/1.1 200")
        gw.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        idle.settimeout(2)
        assert idle.recv(1) == b"", "the idle keep-alive connection was kept open"
        time.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gw.port), timeout=1).close()
        (response,) = parse_responses(first + read_all(busy))
        assert response.status == 200
        assert response.body == pattern_bytes(STREAM)  # every byte: not cut mid-response
        assert gw.process.wait(timeout=10) == 0
        assert time.monotonic() - signalled < 6
        events = [line["event"] for line in gw.log_lines()]
        assert events[-1] == "stopped"
        idle.close()
        busy.close()


def test_shutdown_timeout_bounds_how_long_a_response_may_hold_the_exit(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url, settings={"shutdown_timeout": "1s"}) as gw:
        assert gw.process is not None
        busy = socket.create_connection(("127.0.0.1", gw.port), timeout=20)
        busy.sendall(request("/stream/10000000?delay=0.25"))  # ~10 s of streaming
        assert busy.recv(1024).startswith(b"HTTP/1.1 200")
        signalled = time.monotonic()
        gw.process.send_signal(signal.SIGTERM)
        assert gw.process.wait(timeout=10) == 0
        assert time.monotonic() - signalled < 4
        busy.close()


def test_steady_traffic_through_sigterm_sees_no_response_cut_short(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    """Every request gets a whole response or no byte at all (refused or reset unanswered)."""
    with GatewayProcess(tmp_path, upstream=upstream.url) as gw:
        assert gw.process is not None
        outcomes: list[str] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
                        sock.sendall(request("/stream/300000?delay=0.05"))
                        data = read_all(sock)
                except ConnectionRefusedError:
                    outcomes.append("refused")
                    time.sleep(0.05)
                    continue
                except ConnectionResetError:
                    outcomes.append("reset")  # no byte was read: never a partial answer
                    continue
                if not data:
                    outcomes.append("unanswered")
                    continue
                responses = parse_responses(data)
                ok = len(responses) == 1 and responses[0].status == 200
                ok = ok and responses[0].body == pattern_bytes(300000)
                outcomes.append("whole" if ok else "cut")

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        gw.process.send_signal(signal.SIGTERM)
        assert gw.process.wait(timeout=15) == 0
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(15)
        assert "cut" not in outcomes, outcomes
        assert outcomes.count("whole") >= 6 and "refused" in outcomes
