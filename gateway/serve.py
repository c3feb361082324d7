"""Serving the gateway: the public, admin (and forward-auth) listeners under uvicorn.

One process serves all listeners on one event loop, so they share one
:class:`~gateway.runtime.Runtime`.  ``workers > 1`` forks that many such
processes after binding the public socket once (they need a ``redis://``
store, which :class:`Runtime` enforces); the first worker also serves the
admin listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from typing import Literal

import uvicorn

from gateway.app import GatewayApp, build_app
from gateway.observability import configure_logging, flush_logs, log_event
from gateway.server import ClientTimeouts, serve_config
from gateway.settings import Listen, Settings
from gateway.types import ASGIApp

__all__ = ["client_timeouts", "run", "uvicorn_config"]


def uvicorn_config(
    app: ASGIApp,
    listen: Listen,
    *,
    lifespan: Literal["on", "off"],
    timeouts: ClientTimeouts | None = None,
) -> uvicorn.Config:
    """A uvicorn config for one listener: httptools + uvloop, our logging, no proxy headers."""
    return serve_config(
        app, host=listen.host, port=listen.port, lifespan=lifespan, client_timeouts=timeouts
    )


def client_timeouts(settings: Settings) -> ClientTimeouts:
    """The waits on a client's body and reading, from settings (every listener's)."""
    return ClientTimeouts(
        body=settings.client_body_timeout,
        body_deadline=settings.client_body_deadline,
        send=settings.send_timeout,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM/SIGINT ends ``serve()`` normally.

    uvicorn raises the captured signal again after its graceful shutdown, so
    the process died of it: exit status -15, access lines still in the log
    buffer lost, and ``--workers`` reporting a failed child.  Here the
    shutdown is the end of serving, and :func:`run` returns 0.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # Served to the end: nothing to raise again (uvicorn would, on leaving).
            self._captured_signals.clear()


class _SecondaryServer(uvicorn.Server):
    """A listener that leaves signal handling to the primary server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(
    app: GatewayApp, settings: Settings, sockets: list[socket.socket] | None, with_admin: bool
) -> bool:
    """Serve until told to stop; False when the gateway failed to start."""
    timeouts = client_timeouts(settings)
    primary = _Server(uvicorn_config(app, settings.listen, lifespan="on", timeouts=timeouts))
    secondaries: list[uvicorn.Server] = []
    if with_admin:
        admin = uvicorn_config(app.admin, settings.admin_listen, lifespan="off", timeouts=timeouts)
        secondaries.append(_SecondaryServer(admin))
        if settings.authz_listen is not None:
            # One forward-auth listener per process group, like the admin one.
            authz = uvicorn_config(
                app.authz, settings.authz_listen, lifespan="off", timeouts=timeouts
            )
            secondaries.append(_SecondaryServer(authz))
    tasks = [asyncio.create_task(server.serve()) for server in secondaries]
    try:
        await primary.serve(sockets=sockets)
    finally:
        for server in secondaries:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
    return primary.started


def run(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    configure_logging(settings.log.format, settings.log.level)
    if settings.workers == 1:
        app = build_app(settings)
        log_event("listening", listen=str(settings.listen), workers=1)
        _freeze_heap()
        started = _run_loop(_serve(app, settings, None, with_admin=True))
        flush_logs()
        return 0 if started else 3
    build_app(settings)  # fail fast in the parent on a bad config
    sock = socket.socket(socket.AF_INET6 if ":" in settings.listen.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.listen.host, settings.listen.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    log_event("listening", listen=str(settings.listen), workers=settings.workers)
    _freeze_heap()  # before the fork: the children share these pages
    children = []
    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # child: its own runtime, store connections and event loop
            code = 1
            try:
                app = build_app(settings)
                code = 0 if _run_loop(_serve(app, settings, [sock], with_admin=index == 0)) else 3
            finally:
                flush_logs()  # os._exit skips the interpreter's own flush at exit
                os._exit(code)
        children.append(pid)
    sock.close()
    return _supervise(children)


def _supervise(children: list[int]) -> int:
    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGHUP, forward)
    status = 0
    for pid in children:
        _, code = os.waitpid(pid, 0)
        status = status or os.waitstatus_to_exitcode(code)
    return 1 if status else 0


def _freeze_heap() -> None:
    """Move everything built at start into the GC's permanent generation.

    The modules and the runtime are ~47,000 tracked objects that live as long
    as the process; a full collection walking them took 27 ms here, a pause
    every visitor in flight would feel.  Frozen, collections only walk what
    requests allocate.
    """
    gc.collect()
    gc.freeze()


def _run_loop(coroutine: Coroutine[None, None, bool]) -> bool:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coroutine)
    result = uvloop.run(coroutine)
    sys.stdout.flush()
    return result
