"""The admin listener: ``/healthz``, ``/readyz``, ``/metrics``, ``/policy`` (SPEC §6).

Served only on ``admin_listen``; on the public listener these paths are
ordinary site paths, decided by the policy and proxied.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.core.problem import send_problem, send_response
from gateway.errors import StoreUnavailable
from gateway.observability import Metrics
from gateway.runtime import PolicyHolder
from gateway.stores.base import Store
from gateway.types import ASGIApp, Receive, Scope, Send

__all__ = ["AdminApp"]


class AdminApp:
    """A small raw-ASGI app for operators; ``extra`` routes (e.g. forward-auth) plug in.

    An ``extra`` route serves its path and everything below it (Envoy's ext_authz
    appends the original path to ``/.agegate/authz``).
    """

    def __init__(
        self,
        *,
        metrics: Metrics,
        policies: PolicyHolder,
        store: Store,
        started: Callable[[], bool],
        extra: dict[str, ASGIApp] | None = None,
    ) -> None:
        """``started`` says whether the runtime is up (verifiers loaded)."""
        self.metrics = metrics
        self.policies = policies
        self.store = store
        self.started = started
        self.extra = extra or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        for prefix, app in self.extra.items():
            if path == prefix or path.startswith(prefix + "/"):
                await app(scope, receive, send)
                return
        if scope["method"] not in ("GET", "HEAD"):
            await send_problem(send, 405, "method_not_allowed", "admin endpoints are read-only")
            return
        if path == "/healthz":
            await self._json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            await self._ready(send)
        elif path == "/metrics":
            data = generate_latest(self.metrics.registry)
            await send_response(send, 200, data, CONTENT_TYPE_LATEST.encode())
        elif path == "/policy":
            await self._json(send, 200, self._policy_summary())
        else:
            await send_problem(send, 404, "not_found", "no such admin endpoint")

    async def _ready(self, send: Send) -> None:
        started = self.started()
        checks: dict[str, object] = {"policy": True, "started": started}
        ok = started
        if self.store.shared:
            try:
                store_ok = await self.store.ping()
            except StoreUnavailable:
                store_ok = False
            checks["store"] = store_ok
            ok = ok and store_ok
        await self._json(send, 200 if ok else 503, {"ready": ok, "checks": checks})

    def _policy_summary(self) -> dict[str, object]:
        holder = self.policies
        policy = holder.policy
        return {
            "source": str(holder.path),
            "sha256": policy.sha256,
            "loaded_at": datetime.fromtimestamp(holder.loaded_at, UTC).isoformat(),
            "last_reload_error": holder.last_error,
            "rules": [
                {
                    "name": rule.name,
                    "path": rule.path.text,
                    "action": str(rule.action),
                    "min_age": rule.min_age,
                    "mode": str(rule.mode),
                }
                for rule in policy.rules
            ],
        }

    @staticmethod
    async def _json(send: Send, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        await send_response(send, status, data, b"application/json")
