"""The proxied path, in raw ASGI: host check, canonical path, decide, then act.

Order per request (SPEC §6): a well-formed ``Host`` (else 400 ``bad_host``,
:func:`~gateway.core.hosts.parse_host`) that is served (else 421) → canonical target
(else 400, before any matching) → ``/.agegate/`` goes to the flow endpoints →
:class:`~gateway.decision.evaluate.Evaluator` (policy, session, inline API
credentials) → allow (proxy, with the required threshold in ``X-Agegate-*``),
challenge (303 for browser navigations, 401 + ``WWW-Authenticate``
otherwise) or deny (403).  Any error on a protected route denies; nothing
here logs a token, a cookie or a full client address.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.cache import BoundedCache
from gateway.core.headers import EMPTY_BLOCK, HeaderBlock, header_value, header_values
from gateway.core.hosts import parse_host
from gateway.core.paths import canonical_path
from gateway.core.problem import send_problem
from gateway.decision.access import AccessLog, AccessRecord, recording_status
from gateway.decision.evaluate import Evaluation, Evaluator
from gateway.decision.responses import AGEGATE_PREFIX, Responder
from gateway.errors import BadRequest
from gateway.observability import Metrics
from gateway.policy import Outcome, Policy, Requirement, Rule
from gateway.proxy.forward import Proxy, upstream_target
from gateway.settings import Settings
from gateway.types import ASGIApp, Message, Receive, Scope, Send
from verifiers.base import AssuranceLevel

__all__ = ["AGEGATE_PREFIX", "FastTicket", "Gate"]

_CACHE_ENTRIES = 4096  # per cache: host values, raw paths


class FastTicket:
    """A request :meth:`Gate.decide_now` allowed: what to forward and how to log it.

    A plain class: one is made per fast request, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) costs five times as much.
    """

    __slots__ = ("add_headers", "authority", "private", "record", "target")

    def __init__(
        self,
        record: AccessRecord,
        authority: bytes,
        target: bytes,
        add_headers: HeaderBlock,
        private: bool,
    ) -> None:
        self.record = record
        self.authority = authority
        self.target = target  # the canonical path as sent upstream, without the query
        self.add_headers = add_headers
        self.private = private


_CACHE_KEY_BYTES = 512
# A request's normal authority, canonical path, that path as sent upstream (without
# the query), matched rule, and the X-Agegate-* headers its requirement proves.
_Route = tuple[bytes, str, bytes, Rule, HeaderBlock]


class Gate:
    """The public listener's request handler (the app handles the lifespan)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        evaluator: Evaluator,
        responder: Responder,
        proxy: Proxy,
        flow: ASGIApp,
    ) -> None:
        self.proxy = proxy
        self.flow = flow
        self.settings = settings
        self.evaluator = evaluator
        self.responder = responder
        self.access = AccessLog(metrics, log_client_ip=self.settings.log_client_ip == "truncated")
        # Host values and raw paths repeat from request to request; both functions are
        # pure, so their results are kept (bounded; refusals are not kept).
        self._hosts: BoundedCache[bytes, tuple[str, bytes]] = BoundedCache(
            _CACHE_ENTRIES, max_key_size=_CACHE_KEY_BYTES
        )
        self._paths: BoundedCache[bytes, str] = BoundedCache(
            _CACHE_ENTRIES, max_key_size=_CACHE_KEY_BYTES
        )
        # Each (method, Host, raw path)'s route under the policy in force (see _route).
        self._routes: BoundedCache[tuple[str, bytes | None, bytes | None], _Route | None] = (
            BoundedCache(_CACHE_ENTRIES)
        )
        self._routes_policy: Policy | None = None
        # The X-Agegate-* headers of each (threshold, level): at most 99 x 5 of them.
        self._age_headers: dict[tuple[int, AssuranceLevel], HeaderBlock] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = AccessRecord(scope.get("method", "GET"))
        try:
            await self._handle(scope, receive, send, record)
        finally:
            client = scope.get("client")
            self.access.finish(record, client[0] if client else None)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, record: AccessRecord
    ) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        accept = header_value(headers, b"accept")
        method = record.method
        try:
            host, authority, path = self._target(scope, headers)
        except BadRequest as exc:
            record.set(status=exc.status, decision="reject", reason=exc.reason)
            await self._reject(scope, send, exc.status, exc.reason, str(exc), accept, method)
            return
        record.path = path
        if path == AGEGATE_PREFIX or path.startswith(AGEGATE_PREFIX + "/"):
            record.decision = "agegate"
            scope["path"] = path
            await self.flow(scope, receive, recording_status(send, record))
            return
        client = scope.get("client")
        peer = client[0] if client else None
        facts = self.evaluator.facts(method, host, path, peer, headers)
        evaluation = await self.evaluator.evaluate(facts, headers, peer)
        record.verifier = evaluation.verifier
        decision = evaluation.decision
        refusal = evaluation.refusal
        if refusal is not None:  # a credential in Authorization was refused
            record.set(status=refusal.status, decision="challenge", reason=refusal.reason)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.responder.refusal(send, refusal, decision, method=method, accept=accept)
            return
        record.set_decision(decision)
        outcome = decision.effective
        if outcome is Outcome.ALLOW:
            # Report-only lets an unproven visitor through: the site must not be told an
            # age was proven, so X-Agegate-* go upstream only for a real allow.
            proven = decision.requirement if decision.outcome is Outcome.ALLOW else None
            await self._forward(scope, receive, send, record, authority, path, proven, evaluation)
            return
        if scope["type"] == "websocket":
            record.status = 403
            await send({"type": "websocket.close", "code": 1008})
        else:
            record.status = await self.responder.answer(
                send,
                decision,
                method=method,
                accept=accept,
                path=path,
                query=scope.get("query_string", b""),
            )

    def _target(
        self, scope: Scope, headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, bytes, str]:
        """The accepted host's name and normal authority, and the canonical path.

        Raises BadRequest: 400 for a malformed target or ``Host``, 421 for a host not served.
        """
        target = (scope.get("extensions") or {}).get("agegate") or {}
        if target.get("target_error"):
            # A malformed absolute-form target or a fragment: refuse, never fall back to Host.
            raise BadRequest(target["target_error"], "the request target is not acceptable")
        host_values = header_values(headers, b"host")
        if len(host_values) > 1:
            # RFC 9112 §3.2: more than one Host is a 400; which one a server reads differs.
            raise BadRequest("duplicate_host", "more than one Host header")
        host, authority = self._host(host_values[0]) if host_values else (None, b"")
        target_host = target.get("target_host")
        if target_host is not None and target_host not in self.settings.hosts:
            raise BadRequest("unknown_host", "this gateway does not serve that host", status=421)
        if target_host is not None and target_host != host:
            # RFC 9112 §3.2.2 would have us replace Host with the target's authority; the
            # upstream would still see the client's Host, so a mismatch is refused instead.
            raise BadRequest("host_mismatch", "the request target names another host than Host")
        if host is None or host not in self.settings.hosts:
            raise BadRequest("unknown_host", "this gateway does not serve that host", status=421)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path = self._paths.entries.get(raw_path)
        if path is None:
            path = canonical_path(raw_path, allow_semicolons=self.settings.allow_semicolons)
            self._paths.put(raw_path, path)
        return host, authority, path

    def _host(self, value: bytes) -> tuple[str, bytes]:
        """``(name, authority)`` of a ``Host`` value; BadRequest (400 ``bad_host``) if malformed."""
        known = self._hosts.entries.get(value)
        if known is None:
            parsed = parse_host(value)
            known = (parsed.name, parsed.authority.encode("ascii"))
            self._hosts.put(value, known)
        return known

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: AccessRecord,
        authority: bytes,
        path: str,
        requirement: Requirement | None,
        evaluation: Evaluation,
    ) -> None:
        add = self.age_headers(requirement)
        # A credential of ours, used or not, never goes upstream: the proxy drops every
        # Authorization in a verifier's scheme (forwarding.upstream_request_headers).
        if evaluation.set_cookies:
            send = _add_response_headers(send, [(b"set-cookie", c) for c in evaluation.set_cookies])
        # A protected response is kept out of shared caches: a cache in front of the
        # gateway would otherwise serve an age-restricted page to unproven visitors.
        record.status = await self.proxy.forward(
            scope,
            receive,
            send,
            host=authority,
            path=path,
            query=scope.get("query_string", b""),
            add_headers=add,
            private=requirement is not None,
        )

    def age_headers(self, requirement: Requirement | None) -> HeaderBlock:
        """The ``X-Agegate-*`` headers telling the site what was proven (none if public)."""
        if requirement is None:
            return EMPTY_BLOCK
        key = (requirement.min_age, requirement.assurance)
        return self._age_headers.get(key) or self._age_headers.setdefault(
            key,
            HeaderBlock(
                (
                    (b"x-agegate-age-over", str(requirement.min_age).encode()),
                    (b"x-agegate-assurance", requirement.assurance.label.encode()),
                )
            ),
        )

    def decide_now(self, scope: Scope) -> FastTicket | None:
        """What :meth:`__call__` would forward, when that is decided without a wait.

        The same steps as :meth:`_handle` in the same order, for a request it
        would proxy: a served host, a canonical path outside ``/.agegate/`` and
        an allow (public route, or a cached session that satisfies the rule).
        None for anything else, with nothing recorded or counted, so the
        ordinary path then handles the request as if this had not been asked.
        """
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        # One pass for both fields read here (names are lower-case on this path).
        host = cookie = None
        for name, value in headers:
            if name == b"host":
                if host is not None:
                    return None  # two Host headers: refused by the ordinary path
                host = value
            elif name == b"cookie" and cookie is None:
                cookie = value
        route = self._route(scope, headers, host)
        if route is None:
            return None
        authority, path, target, rule, age_headers = route
        client = scope.get("client")
        decision = self.evaluator.decide_now(rule, client[0] if client else None, headers, cookie)
        if decision is None:
            return None
        record = AccessRecord(scope["method"])
        record.path = path
        record.set_decision(decision)
        requirement = decision.requirement
        if requirement is None:
            return FastTicket(record, authority, target, EMPTY_BLOCK, False)
        if requirement is not rule.requirement:  # a jurisdiction's own requirement
            age_headers = self.age_headers(requirement)
        return FastTicket(record, authority, target, age_headers, True)

    def _route(
        self, scope: Scope, headers: Sequence[tuple[bytes, bytes]], host_value: bytes | None
    ) -> _Route | None:
        """The authority, canonical path (also as sent upstream), rule and that rule's
        :meth:`age_headers` of a request the fast path may take.

        ``host_value`` is the request's one ``Host`` value (None: none).
        :meth:`_target` and the policy's match, kept per (method, ``Host``, raw
        path) for the policy in force: all three are pure functions of those.
        None for a request the ordinary path must answer (a refusal, a path
        under ``/.agegate/``, no matching rule), which is then decided there.
        """
        policy = self.evaluator.policies.policy
        if policy is not self._routes_policy:
            self._routes.clear()  # rules changed: every kept match may be wrong
            self._routes_policy = policy
        target = (scope.get("extensions") or {}).get("agegate") or {}
        raw_path = scope.get("raw_path")
        method = scope["method"]
        key: tuple[str, bytes | None, bytes | None] | None = None
        if target.get("target_host") is None and not target.get("target_error"):
            key = (method, host_value, raw_path)  # absolute-form is checked every time
            routes = self._routes.entries
            if key in routes:
                return routes[key]
        try:
            host, authority, path = self._target(scope, headers)
        except BadRequest:
            return None
        route = None
        if not (path == AGEGATE_PREFIX or path.startswith(AGEGATE_PREFIX + "/")):
            rule = policy.match(method, host, path)
            if rule is not None:
                target_bytes = upstream_target(path, b"")
                # With the headers of the rule's own requirement, the one usually met.
                route = (authority, path, target_bytes, rule, self.age_headers(rule.requirement))
        if (
            key is not None
            and raw_path is not None
            and host_value is not None
            and len(raw_path) + len(host_value) <= _CACHE_KEY_BYTES
        ):
            self._routes.put(key, route)
        return route

    async def _reject(
        self,
        scope: Scope,
        send: Send,
        status: int,
        reason: str,
        detail: str,
        accept: bytes | None,
        method: str,
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_problem(send, status, reason, detail, accept=accept, head=method == "HEAD")


def _add_response_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return wrapped
