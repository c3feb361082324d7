"""Loopback ports and waiting for servers."""

from __future__ import annotations

import socket
import subprocess
import time

__all__ = ["free_port", "free_ports", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(
    count: int, host: str = "127.0.0.1", exclude: frozenset[int] = frozenset()
) -> list[int]:
    """``count`` distinct TCP ports, free a moment ago on ``host``, none in ``exclude``.

    The sockets are all held until every port is chosen: two :func:`free_port`
    calls in a row may get the same port back from the kernel (a gateway was
    once given one port for both its listeners).
    """
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            if sock.getsockname()[1] in exclude:
                sock.close()
                continue
            socks.append(sock)
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    timeout: float = 15.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until something accepts connections on ``host:port``; raise after ``timeout``.

    With ``process``, raise as soon as it has exited: a server that refused to
    start will never listen, and waiting out the timeout would only slow the test.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise TimeoutError(f"the process exited ({process.returncode}) before {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
