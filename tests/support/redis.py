"""A real ``redis-server`` on a free loopback port, started and stopped by tests.

No persistence (``--save "" --appendonly no``) and a private temporary
``--dir``, so nothing a test writes survives it.  ``kill()`` is SIGKILL (a
crash); ``start()`` again comes back on the same port, so clients holding the
URL can be tested for reconnection.  Use it as a context manager, or through
:func:`redis_server_fixture` in a ``conftest.py``::

    from tests.support.redis import redis_server_fixture

    redis_server = redis_server_fixture()  # one shared server, flushed per test

    def test_x(redis_server):
        ... redis_server.url ...
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support.net import free_port, wait_for_port
from tests.support.process import stop_process

__all__ = ["RedisServer", "redis_server_fixture"]

_HOST = "127.0.0.1"


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:<port>`` (port fixed for its lifetime)."""

    def __init__(self, port: int | None = None, *, binary: str = "redis-server") -> None:
        path = shutil.which(binary)
        if path is None:
            raise RuntimeError(f"{binary} not found; `make test` installs it (Debian redis-server)")
        self.binary = path
        self.host = _HOST
        self.port = port or free_port(_HOST)
        self._dir = Path(tempfile.mkdtemp(prefix="agegate-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """The server's own log, for a failing test to read."""
        return self._dir / "redis.log"

    def start(self, timeout: float = 15.0) -> RedisServer:
        """Start (or restart) the server on :attr:`port` and wait until it answers PING."""
        if self.running:
            return self
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        atexit.register(self._reap)
        try:
            wait_for_port(self.port, self.host, timeout=timeout)
            self._wait_for_pong(timeout)
        except (TimeoutError, OSError):
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), then SIGKILL if it lingers."""
        process = self._process
        if process is None:
            return
        stop_process(process, timeout)
        self._process = None
        atexit.unregister(self._reap)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-connection, like a crash or an OOM kill."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        self._process = None
        atexit.unregister(self._reap)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def command(self, *args: str | bytes, timeout: float = 5.0) -> Any:
        """Run one command on a fresh synchronous connection (for test setup and inspection)."""
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=timeout)
        try:
            return client.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            client.close()

    def flush(self) -> None:
        """Delete every key (between tests sharing one server)."""
        self.command("FLUSHALL")

    def dump(self) -> dict[bytes, tuple[bytes, int]]:
        """Every key with its string value and PTTL (ms, -1 without expiry)."""
        import redis

        client = redis.Redis(host=self.host, port=self.port, socket_timeout=5.0)
        try:
            result: dict[bytes, tuple[bytes, int]] = {}
            for key in client.scan_iter(count=1000):
                value = client.get(key)
                result[key] = (value if isinstance(value, bytes) else b"", int(client.pttl(key)))
            return result
        finally:
            client.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _wait_for_pong(self, timeout: float) -> None:
        # The port may accept before the server is ready; PING proves it answers.
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {self.port} does not answer PING")
            time.sleep(0.05)

    def _reap(self) -> None:
        # A test run interrupted mid-test must not leave a server behind.
        if self._process is not None and self._process.poll() is None:
            self._process.kill()


def redis_server_fixture(scope: str = "session") -> Callable[..., Iterator[RedisServer]]:
    """A function-scoped pytest fixture giving a running, empty :class:`RedisServer`.

    ``scope="session"``: one server per test process, shared by every test
    using this fixture, flushed before each test and restarted (same port)
    if a previous test killed or stopped it; closed when the run ends.
    ``scope="function"``: a fresh server per test (for tests that must own
    the process, e.g. to kill it while others use it).
    """
    if scope not in {"session", "function"}:
        raise ValueError("scope is 'session' or 'function'")
    shared: list[RedisServer] = []

    @pytest.fixture
    def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
        if scope == "function":
            with RedisServer() as server:
                yield server
            return
        if not shared:
            server = RedisServer().start()
            shared.append(server)
            request.config.add_cleanup(server.close)
        server = shared[0]
        if not server.running:
            server.start()
        server.flush()
        yield server

    return redis_server
