"""Real processes the operations tests kill and restart: upstream, JWKS provider, Sentinel, Cluster.

Each runs as its own OS process on a fixed loopback port, so a test can
SIGKILL it (a crash), SIGSTOP it (a hung peer) and start it again on the same
port, exactly as an operator's Redis, site or key provider comes and goes.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
import redis
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.gateway import ISSUER, GatewayProcess
from tests.support.net import free_port, wait_for_port
from tests.support.process import stop_process
from verifiers import sdk

__all__ = [
    "ClusterNode",
    "JwksProvider",
    "Process",
    "RedisReplica",
    "SentinelServer",
    "UpstreamProcess",
    "api_session",
    "nonce_of",
    "verify",
    "wait_for",
    "with_session",
]


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the gateway did not reach the expected state"
        time.sleep(0.02)


def nonce_of(gw: GatewayProcess) -> str:
    """The nonce of a fresh API challenge."""
    challenge = httpx.get(gw.url + "/echo/wine/red", timeout=10)
    nonce = re.search(r'nonce="([^"]+)"', challenge.headers["www-authenticate"])
    assert nonce, challenge.headers
    return nonce.group(1)


def verify(gw: GatewayProcess, signer: ec.EllipticCurvePrivateKey | None = None) -> httpx.Response:
    """One API verification with a fresh token (from ``signer``, else the gateway's issuer)."""
    token = sdk.issue_age_token(
        signer or gw.signing_key,
        issuer=ISSUER,
        nonce=nonce_of(gw),
        age_over={18: True},
        audience=gw.public_origin,
    )
    auth = {"authorization": f"AgeToken {token}"}
    return httpx.get(gw.url + "/echo/wine/red", headers=auth, timeout=10)


def api_session(gw: GatewayProcess, signer: ec.EllipticCurvePrivateKey | None = None) -> str:
    """A session cookie value from one age-token verification."""
    answer = verify(gw, signer)
    assert answer.status_code == 200, answer.text
    cookie = answer.cookies.get("__Host-agegate")
    assert cookie
    return cookie


def with_session(gw: GatewayProcess, cookie: str) -> int:
    response = httpx.get(gw.url + "/echo/wine/red", headers={"cookie": f"__Host-agegate={cookie}"})
    return response.status_code


class Process:
    """A command on a fixed port: start, kill (SIGKILL), pause/resume (SIGSTOP/SIGCONT)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Process:
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=15, process=self.process)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)  # a paused process cannot exit
            stop_process(self.process)
        self.process = None

    def __enter__(self) -> Process:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class UpstreamProcess(Process):
    """``tests.support.upstream`` in a process of its own (its routes: /echo, /stream, /slow…)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tests.support.upstream", "--port", str(self.port)]


class JwksProvider(Process):
    """A static HTTP server publishing ``jwks.json`` from a directory (no cache headers)."""

    def __init__(self, jwks: object, port: int | None = None) -> None:
        super().__init__(port)
        self.directory = Path(tempfile.mkdtemp(prefix="agegate-jwks-"))
        (self.directory / "jwks.json").write_text(json.dumps(jwks))

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "http.server", str(self.port),
            "--bind", "127.0.0.1", "--directory", str(self.directory),
        ]  # fmt: skip

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class SentinelServer(Process):
    """One ``redis-server --sentinel`` watching a primary as service ``agegate``."""

    SERVICE = "agegate"

    def __init__(self, primary_port: int) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="agegate-sentinel-"))
        self.config = self.directory / "sentinel.conf"
        self.config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
            f"sentinel failover-timeout {self.SERVICE} 5000\n"
        )

    def command(self) -> list[str]:
        return [shutil.which("redis-server") or "redis-server", str(self.config), "--sentinel"]

    def url(self, db: int = 0) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.SERVICE}/{db}"

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisReplica(Process):
    """A ``redis-server --replicaof`` a primary; :meth:`start` waits until it is in sync."""

    def __init__(self, primary_port: int) -> None:
        super().__init__()
        self.primary_port = primary_port
        self.directory = Path(tempfile.mkdtemp(prefix="agegate-replica-"))

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--replicaof", "127.0.0.1", str(self.primary_port),
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip

    def start(self) -> RedisReplica:
        super().start()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            wait_for(
                lambda: client.info("replication").get("master_link_status") == "up", timeout=15
            )
        finally:
            client.close()
        return self

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class ClusterNode(Process):
    """A one-node Redis Cluster: cluster mode on, every hash slot assigned to itself."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="agegate-cluster-"))
        self.bus_port = free_port()

    def command(self) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-config-file", str(self.directory / "n.conf"),
            # Its own bus port: the default, port + 10000, is past 65535 for high free ports.
            "--cluster-port", str(self.bus_port),
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip

    def start(self) -> ClusterNode:
        super().start()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)
        try:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
            deadline = time.monotonic() + 15
            while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):  # type: ignore[no-untyped-call]
                if time.monotonic() > deadline:
                    raise TimeoutError("the one-node cluster did not become ok")
                time.sleep(0.05)
        finally:
            client.close()
        return self

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.port}"

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)
