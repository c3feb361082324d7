"""A 1 GB response streams through a real gateway process with flat memory (SPEC §10)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.support.net import free_port, wait_for_port
from tests.support.upstream import UpstreamServer

GIB = 1024**3


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.parametrize("client", ["pool", "aiohttp"])
def test_one_gigabyte_streams_with_flat_memory(client):
    port = free_port()
    env = {**os.environ, "AGEGATE_TEST_CLIENT": client}
    with UpstreamServer() as upstream:
        env["AGEGATE_TEST_UPSTREAM"] = upstream.url
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory",
             "tests.gateway.proxy.harness:app_from_env", "--host", "127.0.0.1",
             "--port", str(port), "--loop", "uvloop", "--http", "httptools",
             "--no-access-log", "--log-level", "warning"],
            env=env, cwd=os.getcwd(),
        )  # fmt: skip
        try:
            wait_for_port(port)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /stream/1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
                warm = 0
                while warm < 1_000_000:
                    warm += len(sock.recv(1 << 20))
            baseline = rss_kib(proc.pid)
            peak = baseline
            received = 0
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(f"GET /stream/{GIB}?cl=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                buf = bytearray(1 << 20)
                while received < GIB:
                    n = sock.recv_into(buf)
                    if not n:
                        break
                    received += n
                    if received % (64 << 20) < n:
                        peak = max(peak, rss_kib(proc.pid))
                    assert time.monotonic() - started < 60, "too slow"
            elapsed = time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(10)
    assert received >= GIB  # body plus the response head
    growth_mib = (peak - baseline) / 1024
    print(f"{client}: 1 GiB in {elapsed:.1f}s, RSS growth {growth_mib:.1f} MiB")
    assert growth_mib < 50
