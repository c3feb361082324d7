"""Clients that abort downloads mid-stream: every upstream connection is let go, no leak."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from pathlib import Path

import httpx

from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer

ABORTS = 1000


def established_to(port: int) -> int:
    """Open TCP connections whose remote end is ``port`` on loopback (the gateway's side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    count += 1
    return count


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def abort_downloads(port: int, count: int, errors: list[str]) -> None:
    request = b"GET /stream/20000000 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            received = b""
            while len(received) < 4096:
                data = sock.recv(65536)
                if not data:
                    errors.append(f"closed after {len(received)} bytes")
                    break
                received += data
            if not received.startswith(b"HTTP/1.1 200"):
                errors.append(received[:40].decode("latin-1"))
            # RST instead of FIN: the client is gone at once, as a killed browser tab is.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_1000_aborted_downloads_leave_no_upstream_connection_or_fd_behind(
    tmp_path: Path,
) -> None:
    with UpstreamServer() as site, GatewayProcess(tmp_path, upstream=site.url) as gw:
        assert gw.process is not None
        upstream_port = int(site.url.rsplit(":", 1)[1])
        assert httpx.get(gw.url + "/echo/public/warm").status_code == 200
        fds_before = open_fds(gw.process.pid)
        errors: list[str] = []
        started = time.monotonic()
        threads = [
            threading.Thread(target=abort_downloads, args=(gw.port, ABORTS // 4, errors))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors[:5]
        duration = time.monotonic() - started

        # Each aborted download's upstream connection is closed (it cannot be reused
        # mid-body); what stays is at most the idle keep-alive pool.
        deadline = time.monotonic() + 10
        while established_to(upstream_port) > 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert established_to(upstream_port) <= 4, established_to(upstream_port)
        assert open_fds(gw.process.pid) <= fds_before + 4
        assert httpx.get(gw.url + "/echo/public/after").status_code == 200
        assert gw.process.poll() is None
        print(f"{ABORTS} aborted downloads in {duration:.1f} s")
