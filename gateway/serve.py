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
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator
from typing import Any, Literal

import uvicorn

from gateway.app import GatewayApp, build_app
from gateway.http.server import ClientTimeouts, serve_config
from gateway.observability import configure_logging, flush_logs, log_event
from gateway.session.keys import readable_by_others
from gateway.settings import Listen, Settings
from gateway.types import ASGIApp

__all__ = ["client_timeouts", "run", "uvicorn_config"]


def uvicorn_config(
    app: ASGIApp,
    listen: Listen,
    *,
    lifespan: Literal["on", "off"],
    timeouts: ClientTimeouts | None = None,
    shutdown_timeout: float = 10.0,
) -> uvicorn.Config:
    """A uvicorn config for one listener: httptools + uvloop, our logging, no proxy headers.

    On SIGTERM uvicorn stops accepting, closes idle keep-alive connections at once
    (``GatewayHttpProtocol.shutdown``), lets responses in flight finish for up to
    ``shutdown_timeout`` seconds, then cancels what is left and runs the lifespan
    shutdown, which closes the upstream, Redis and JWKS pools.
    """
    return serve_config(
        app,
        host=listen.host,
        port=listen.port,
        lifespan=lifespan,
        client_timeouts=timeouts,
        timeout_graceful_shutdown=shutdown_timeout,
    )


def client_timeouts(settings: Settings) -> ClientTimeouts:
    """The waits on a client's body and reading, from settings (every listener's)."""
    return ClientTimeouts(
        body=settings.client_body_timeout,
        body_deadline=settings.client_body_deadline,
        send=settings.send_timeout,
    )


class _Announcing(uvicorn.Server):
    """A uvicorn server that logs one ``listening`` line of ours once its socket is bound.

    uvicorn's own start and stop lines are dropped (see ``gateway.observability``):
    they come once per listener and, without their arguments, cannot say where
    anything listens.
    """

    def __init__(
        self, config: uvicorn.Config, listener: str | None, listen: Listen, **fields: Any
    ) -> None:
        super().__init__(config)
        self._listener = listener  # None: another process announces this socket
        self._fields: dict[str, Any] = {"url": _url(listen), **fields}

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._listener is not None:
            log_event("listening", listener=self._listener, **self._fields)


class _Server(_Announcing):
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


class _SecondaryServer(_Announcing):
    """A listener that leaves signal handling to the primary server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(
    app: GatewayApp, settings: Settings, sockets: list[socket.socket] | None, with_admin: bool
) -> bool:
    """Serve until told to stop; False when the gateway failed to start."""
    timeouts = client_timeouts(settings)
    grace = settings.shutdown_timeout
    primary = _Server(
        uvicorn_config(
            app, settings.listen, lifespan="on", timeouts=timeouts, shutdown_timeout=grace
        ),
        None if sockets else "public",  # a shared socket was announced by the parent
        settings.listen,
        workers=1,
    )
    secondaries: list[uvicorn.Server] = []
    if with_admin:
        admin = settings.admin_listen
        secondaries.append(
            _SecondaryServer(
                uvicorn_config(
                    app.admin, admin, lifespan="off", timeouts=timeouts, shutdown_timeout=grace
                ),
                "admin",
                admin,
            )
        )
        if settings.authz_listen is not None:
            # One forward-auth listener per process group, like the admin one.
            authz = settings.authz_listen
            secondaries.append(
                _SecondaryServer(
                    uvicorn_config(
                        app.authz, authz, lifespan="off", timeouts=timeouts, shutdown_timeout=grace
                    ),
                    "authz",
                    authz,
                )
            )
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
    _warn_about_key_file(settings)
    if settings.workers == 1:
        app = build_app(settings)
        _freeze_heap()
        started = _run_loop(_serve(app, settings, None, with_admin=True))
        if started:
            log_event("stopped")
        flush_logs()
        return 0 if started else 3
    build_app(settings)  # fail fast in the parent on a bad config
    sock = socket.socket(socket.AF_INET6 if ":" in settings.listen.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.listen.host, settings.listen.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    log_event("listening", listener="public", url=_url(settings.listen), workers=settings.workers)
    flush_logs()  # or every child inherits the unwritten lines and writes them again
    _freeze_heap()  # before the fork: the children share these pages
    children = []
    for index in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # child: its own runtime, store connections and event loop
            code = 1
            try:
                # The log flushing thread did not survive the fork: a new handler has one.
                configure_logging(settings.log.format, settings.log.level)
                app = build_app(settings)
                code = 0 if _run_loop(_serve(app, settings, [sock], with_admin=index == 0)) else 3
            finally:
                flush_logs()  # os._exit skips the interpreter's own flush at exit
                os._exit(code)
        children.append(pid)
    sock.close()
    status = _supervise(children)
    log_event("stopped")
    flush_logs()
    return status


def _url(listen: Listen) -> str:
    return f"http://{listen}"


def _warn_about_key_file(settings: Settings) -> None:
    path = settings.session_keys_file
    if path is not None and readable_by_others(path):
        # A warning, not a refusal: some deployments mount secrets group-readable on purpose.
        log_event("key_file_readable", level=logging.WARNING, file=str(path))


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

    The modules and the runtime are tens of thousands of tracked objects that
    live as long as the process; a full collection walking them is a pause
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
