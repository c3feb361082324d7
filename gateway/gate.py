"""The proxied path, in raw ASGI: host check, canonical path, decide, then act.

Order per request (SPEC §6): accepted ``Host`` (else 421) → canonical target
(else 400, before any matching) → ``/.agegate/`` goes to the flow endpoints →
policy match and :func:`~gateway.policy.decide` → allow (proxy, with the
required threshold in ``X-Agegate-*``), challenge (303 for browser
navigations, 401 + ``WWW-Authenticate`` otherwise, or an ``Authorization:
AgeToken`` answered on the spot), or deny (403).  Any error on a protected
route denies; nothing here logs a token, a cookie or a full client address.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from urllib.parse import quote

from gateway.cookies import get_cookie, set_cookie
from gateway.errors import BadRequest, StoreUnavailable
from gateway.forwarding import is_trusted
from gateway.observability import ACCESS_LOGGER, truncate_ip
from gateway.paths import canonical_path
from gateway.policy import Decision, Outcome, Requirement, decide
from gateway.policy.facts import RequestFacts
from gateway.problem import send_problem, send_response
from gateway.runtime import Runtime
from gateway.session import SESSION_COOKIE
from gateway.types import ASGIApp, Message, Receive, Scope, Send
from gateway.verification import peek_claim, session_claims, verify_presentation
from verifiers.base import Presentation, VerificationError

__all__ = ["AGEGATE_PREFIX", "Gate", "host_name"]

AGEGATE_PREFIX = "/.agegate"
_HTML = b"text/html"


def host_name(value: bytes | None) -> str | None:
    """Lower-case host without port from a ``Host`` value; None when malformed."""
    if not value:
        return None
    try:
        text = value.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else None
    host, _, port = text.partition(":")
    if port and not port.isdigit():
        return None
    return host or None


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


class Gate:
    """The public ASGI app's request handler (lifespan is handled by the app)."""

    def __init__(self, runtime: Runtime, flow: ASGIApp) -> None:
        self.runtime = runtime
        self.flow = flow
        self.settings = runtime.settings
        self._access = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        record = _Record(method=scope.get("method", "GET"))
        try:
            await self._handle(scope, receive, send, headers, record)
        finally:
            self._finish(scope, record, started)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        record: _Record,
    ) -> None:
        accept = _header(headers, b"accept")
        head = record.method == "HEAD"
        try:
            host, path = self._target(scope, headers)
        except BadRequest as exc:
            record.set(status=exc.status, decision="reject", reason=exc.reason)
            await self._reject(scope, send, exc.status, exc.reason, str(exc), accept, head)
            return
        record.path = path
        if path == AGEGATE_PREFIX or path.startswith(AGEGATE_PREFIX + "/"):
            record.decision = "agegate"
            scope["path"] = path
            await self.flow(scope, receive, _status_recorder(send, record))
            return

        runtime = self.runtime
        now = time.time()
        policy = runtime.policies.policy
        jurisdiction = self._jurisdiction(scope, headers)
        facts = RequestFacts(record.method, host, path, jurisdiction)
        rule = policy.match(record.method, host, path)
        session = None
        if rule is not None and rule.min_age is not None:
            session = runtime.sessions.open(get_cookie(headers, SESSION_COOKIE), now)
        decision = decide(facts, session, policy, now)
        set_cookies: list[bytes] = []
        if decision.outcome is Outcome.CHALLENGE and decision.enforced:
            authorization = _header(headers, b"authorization")
            if authorization is not None and authorization[:9].lower() == b"agetoken ":
                answered, cookie = await self._answer_token(
                    scope, send, record, facts, authorization[9:].strip(), decision, now, accept
                )
                if answered is None:
                    return  # a refusal was sent
                decision = answered
                if cookie is not None:
                    set_cookies.append(cookie)
        record.set(rule=decision.rule, decision=decision.outcome.value, reason=decision.reason)
        if not decision.enforced:
            record.mode = "report-only"
        outcome = decision.effective
        if outcome is Outcome.ALLOW:
            await self._forward(
                scope, receive, send, record, path, decision.requirement, set_cookies
            )
        elif outcome is Outcome.CHALLENGE:
            await self._challenge(scope, send, record, path, decision, accept, head)
        else:
            record.status = 403
            detail = (
                "you have shown that you are under the age this page requires"
                if decision.reason == "proven_under"
                else "access to this path is denied"
            )
            await self._reject(scope, send, 403, decision.reason, detail, accept, head)

    def _target(self, scope: Scope, headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, str]:
        """The accepted host and the canonical path, or BadRequest (400, or 421 for the host)."""
        target = (scope.get("extensions") or {}).get("agegate") or {}
        if target.get("target_error"):
            # A malformed absolute-form target or a fragment: refuse, never fall back to Host.
            raise BadRequest(target["target_error"], "the request target is not acceptable")
        host = target.get("target_host") or host_name(_header(headers, b"host"))
        if host is None or host not in self.settings.hosts:
            raise BadRequest("unknown_host", "this gateway does not serve that host", status=421)
        path = canonical_path(
            scope.get("raw_path") or scope["path"].encode(),
            allow_semicolons=self.settings.allow_semicolons,
        )
        return host, path

    def _jurisdiction(self, scope: Scope, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        name = self.settings.jurisdiction_header
        if name is None:
            return None
        client = scope.get("client")
        if not is_trusted(client[0] if client else None, self.settings.trusted_proxies):
            return None
        value = _header(headers, name.encode())
        if value is None or not value.isalnum() or len(value) > 8:
            return None
        return value.decode("ascii").upper()

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        record: _Record,
        path: str,
        requirement: Requirement | None,
        set_cookies: Sequence[bytes],
    ) -> None:
        add: list[tuple[bytes, bytes]] = []
        if requirement is not None:
            add.append((b"x-agegate-age-over", str(requirement.min_age).encode()))
            add.append((b"x-agegate-assurance", requirement.assurance.label.encode()))
        if set_cookies:
            # An API token was answered: the token never goes upstream.
            scope = dict(scope)
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            send = _add_response_headers(send, [(b"set-cookie", c) for c in set_cookies])
        record.status = await self.runtime.proxy.forward(
            scope, receive, send, path=path, query=scope.get("query_string", b""), add_headers=add
        )

    async def _challenge(
        self,
        scope: Scope,
        send: Send,
        record: _Record,
        path: str,
        decision: Decision,
        accept: bytes | None,
        head: bool,
    ) -> None:
        requirement = decision.requirement
        min_age = requirement.min_age if requirement else 18
        if scope["type"] == "websocket":
            record.status = 403
            await send({"type": "websocket.close", "code": 1008})
            return
        if record.method in ("GET", "HEAD") and accept is not None and _HTML in accept:
            query = scope.get("query_string", b"")
            back = path + ("?" + query.decode("latin-1") if query else "")
            location = f"{AGEGATE_PREFIX}/verify?return={quote(back, safe='/')}"
            record.status = 303
            await send_response(
                send, 303, b"", b"text/plain", [(b"location", location.encode("ascii"))], head=head
            )
            return
        record.status = 401
        challenges = [self._age_token_challenge(min_age)]
        challenges += self._extra_challenges(requirement)
        await send_problem(
            send,
            401,
            decision.reason,
            f"this resource requires proof of age {min_age} or over",
            accept=accept,
            head=head,
            headers=[(b"www-authenticate", c.encode("ascii")) for c in challenges],
            min_age=min_age,
            assurance=requirement.assurance.label if requirement else None,
            verify_url=f"{self.settings.public_origin}{AGEGATE_PREFIX}/verify",
        )

    def _age_token_challenge(self, min_age: int) -> str:
        nonce = self.runtime.nonces.issue(time.time())
        realm = self.settings.public_origin
        return f'AgeToken realm="{realm}", nonce="{nonce}", min_age="{min_age}"'

    def _extra_challenges(self, requirement: Requirement | None) -> list[str]:
        """WWW-Authenticate challenges of verifiers that answer API clients (Privacy Pass)."""
        if requirement is None:
            return []
        found = []
        for name in requirement.verifiers:
            verifier = self.runtime.verifiers.get(name)
            api_challenge = getattr(verifier, "api_challenge", None)
            if callable(api_challenge):
                value = api_challenge(requirement.min_age)
                if isinstance(value, str):
                    found.append(value)
        return found

    async def _answer_token(
        self,
        scope: Scope,
        send: Send,
        record: _Record,
        facts: RequestFacts,
        token_bytes: bytes,
        decision: Decision,
        now: float,
        accept: bytes | None,
    ) -> tuple[Decision | None, bytes | None]:
        """Verify an ``Authorization: AgeToken`` and decide again with the new session."""
        runtime = self.runtime
        head = record.method == "HEAD"
        requirement = decision.requirement
        allowed = [
            runtime.verifiers[n]
            for n in (requirement.verifiers if requirement else ())
            if n in runtime.verifiers and runtime.verifiers[n].kind == "age-token"
        ]
        try:
            limited = (
                await runtime.store.rate_limit(
                    "api:" + runtime.client_bucket(_client_ip(scope)),
                    self.settings.rate_limit,
                    60.0,
                )
                if self.settings.rate_limit
                else None
            )
            if limited is not None and not limited.allowed:
                record.set(status=429, reason="rate_limited")
                await send_problem(
                    send,
                    429,
                    "rate_limited",
                    "too many verification attempts",
                    accept=accept,
                    head=head,
                    headers=[(b"retry-after", str(int(limited.retry_after) + 1).encode())],
                )
                return None, None
            token = token_bytes.decode("ascii")
            nonce = peek_claim(token, "nonce")
            if not isinstance(nonce, str):
                raise VerificationError("missing_nonce")
            if not runtime.nonces.check(nonce, now):
                raise VerificationError(
                    "wrong_nonce",
                    "the nonce was not issued by this gateway or is older than 5 minutes",
                )
            assertion = await verify_presentation(
                runtime,
                allowed,
                Presentation(token, "authorization"),
                expected_nonce=nonce,
                now=now,
            )
        except UnicodeDecodeError:
            return await self._token_refused(send, record, "malformed", accept, head)
        except VerificationError as exc:
            return await self._token_refused(send, record, exc.reason, accept, head)
        except StoreUnavailable:
            record.set(status=503, reason="store_unavailable")
            await send_problem(
                send,
                503,
                "store_unavailable",
                "age verification is briefly unavailable; try again shortly",
                accept=accept,
                head=head,
                headers=[(b"retry-after", b"5")],
            )
            return None, None
        record.verifier = assertion.verifier
        verifier = runtime.verifiers.get(assertion.verifier)
        claims, max_age = session_claims(assertion, verifier, requirement, now=now)
        cookie = set_cookie(SESSION_COOKIE, runtime.sessions.seal(claims), max_age=max_age)
        new_decision = decide(facts, claims, runtime.policies.policy, now)
        return new_decision, cookie

    async def _token_refused(
        self, send: Send, record: _Record, reason: str, accept: bytes | None, head: bool
    ) -> tuple[None, None]:
        record.set(status=401, decision="challenge", reason=reason)
        min_age = 18
        await send_problem(
            send,
            401,
            reason,
            "the age token was refused",
            accept=accept,
            head=head,
            headers=[
                (
                    b"www-authenticate",
                    self._age_token_challenge(min_age).encode() + b', error="invalid_token"',
                )
            ],
        )
        return None, None

    async def _reject(
        self,
        scope: Scope,
        send: Send,
        status: int,
        reason: str,
        detail: str,
        accept: bytes | None,
        head: bool,
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send_problem(send, status, reason, detail, accept=accept, head=head)

    def _finish(self, scope: Scope, record: _Record, started: float) -> None:
        runtime = self.runtime
        duration = time.perf_counter() - started
        status = str(record.status)
        runtime.metrics.requests.labels(record.rule or "", record.decision, status).inc()
        runtime.metrics.duration.labels(record.decision).observe(duration)
        if self._access.isEnabledFor(logging.INFO):
            fields = {
                "method": record.method,
                "path": record.path,
                "status": record.status,
                "rule": record.rule,
                "decision": record.decision,
                "reason": record.reason,
                "duration_ms": round(duration * 1000, 3),
                "request_id": secrets.token_hex(8),
            }
            if record.mode:
                fields["mode"] = record.mode
            if record.verifier:
                fields["verifier"] = record.verifier
            if self.settings.log_client_ip == "truncated":
                fields["client"] = truncate_ip(_client_ip(scope))
            self._access.info("request", extra={"event": "request", "fields": fields})


def _client_ip(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class _Record:
    """What the access line says about one request."""

    __slots__ = ("decision", "method", "mode", "path", "reason", "rule", "status", "verifier")

    def __init__(self, method: str) -> None:
        self.method = method
        self.path: str | None = None
        self.status = 500
        self.rule: str | None = None
        self.decision = "none"
        self.reason: str | None = None
        self.mode: str | None = None
        self.verifier: str | None = None

    def set(
        self,
        *,
        status: int | None = None,
        rule: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if rule is not None:
            self.rule = rule
        if decision is not None:
            self.decision = decision
        if reason is not None:
            self.reason = reason


def _status_recorder(send: Send, record: _Record) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        await send(message)

    return wrapped


def _add_response_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return wrapped
