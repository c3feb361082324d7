"""``build_app(settings)``: the whole gateway composed in one screen.

::

    GatewayApp (ASGI, lifespan: Runtime and Proxy start / close)
    ├── Gate              hot path, raw ASGI: host → canonical path → decide → Proxy
    │   └── flow          /.agegate/* (Starlette): verify, callback, status, logout, wallet
    ├── .admin            AdminApp on admin_listen: healthz, readyz, metrics, policy
    │                     (+ /.agegate/authz when authz_listen is not set)
    └── .authz            AuthzApp, forward-auth decisions (on authz_listen when set)
"""

from __future__ import annotations

import logging

from gateway.admin import AdminApp
from gateway.authz.endpoint import AUTHZ_PATH, AuthzApp
from gateway.browser.flow import FlowPages, build_flow_app
from gateway.browser.openid4vp import WalletStateCodec
from gateway.browser.wallet import WalletFlow
from gateway.core.problem import send_problem
from gateway.decision.evaluate import Evaluator
from gateway.decision.responses import Responder
from gateway.observability import log_event
from gateway.proxy.fast import FastPath
from gateway.proxy.forward import Proxy
from gateway.proxy.handler import Gate
from gateway.runtime import Runtime
from gateway.session.nonces import derive_key
from gateway.settings import Settings
from gateway.types import ASGIApp, Receive, Scope, Send

__all__ = ["GatewayApp", "build_app"]


class GatewayApp:
    """The public ASGI application; ``admin`` and ``authz`` are the other listeners' apps."""

    def __init__(self, runtime: Runtime, proxy: Proxy) -> None:
        self.runtime = runtime
        self.proxy = proxy
        proxy.session_cookie_headers = runtime.sessions.alone_headers
        evaluator, responder = _deciders(runtime)
        settings, metrics = runtime.settings, runtime.metrics
        self.gate = Gate(settings, metrics, evaluator, responder, proxy, _flow(runtime))
        # Asked first by the client protocol for bodyless GET/HEAD (gateway.proxy.fast).
        self.fast_path: FastPath | None = (
            FastPath(self.gate, proxy, runtime) if settings.fast_path else None
        )
        self.authz = AuthzApp(settings, metrics, evaluator, responder, lambda: runtime.started)
        # Forward-auth answers on its own listener when one is set, else on the admin one.
        extra: dict[str, ASGIApp] = (
            {} if runtime.settings.authz_listen else {AUTHZ_PATH: self.authz}
        )
        self.admin = AdminApp(
            metrics=metrics,
            policies=runtime.policies,
            store=runtime.store,
            started=lambda: runtime.started,
            extra=extra,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self.runtime.started:
            # Fail closed: no decision can be made before verifiers and the policy are up.
            if kind == "http":
                await send_problem(
                    send,
                    503,
                    "starting",
                    "the gateway is starting",
                    headers=[(b"retry-after", b"1")],
                )
            return
        await self.gate(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.runtime.start()
                    # A verifier's credential scheme never reaches the site, used or not.
                    self.proxy.add_credential_schemes(self.runtime.verifiers.values())
                    await self.proxy.start()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    log_event("startup_failed", level=logging.ERROR, error=str(exc))
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                log_event("started", policy_sha256=self.runtime.policies.policy.sha256)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.proxy.close()
                await self.runtime.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_app(settings: Settings) -> GatewayApp:
    """Compose the gateway from settings; raises ConfigError or PolicyError."""
    return GatewayApp(Runtime.create(settings), Proxy.from_settings(settings))


def _deciders(runtime: Runtime) -> tuple[Evaluator, Responder]:
    """The decision layer, given what it uses of the runtime (shared by proxy and authz)."""
    # The verifiers dict is filled by Runtime.start(); both hold that same dict.
    evaluator = Evaluator(
        policies=runtime.policies,
        sessions=runtime.sessions,
        revocation=runtime.revocation,
        verifiers=runtime.verifiers,
        nonces=runtime.nonces,
        limiter=runtime.limiter,
        replay=runtime.store,
        metrics=runtime.metrics,
        audience=runtime.settings.audience,
        jurisdiction_header=runtime.settings.jurisdiction_header,
        trusted_proxies=runtime.settings.trusted_proxies,
    )
    responder = Responder(
        public_origin=runtime.settings.public_origin,
        nonces=runtime.nonces,
        verifiers=runtime.verifiers,
    )
    return evaluator, responder


def _flow(runtime: Runtime) -> ASGIApp:
    """The ``/.agegate/`` pages, given what they use of the runtime."""
    settings = runtime.settings
    wallet = WalletFlow(
        codec=WalletStateCodec(settings.session_keys, settings.audience),
        store=runtime.store,
        binding_key=derive_key(settings.session_keys[0], "openid4vp-binding"),
    )
    return build_flow_app(
        FlowPages(
            settings=runtime.settings,
            policies=runtime.policies,
            sessions=runtime.sessions,
            revocation=runtime.revocation,
            challenges=runtime.challenges,
            verifiers=runtime.verifiers,
            limiter=runtime.limiter,
            replay=runtime.store,
            metrics=runtime.metrics,
            wallet=wallet,
        )
    )
