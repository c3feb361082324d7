"""Forward-auth: ``/.agegate/authz``, the decision endpoint for nginx, Caddy, Traefik and Envoy.

A front proxy asks agegate about each request before serving it.  The
original request is read, only from a peer in ``trusted_proxies`` (anyone
else gets ``403 untrusted_proxy``), in one of three conventions:

- **nginx** ``auth_request``: ``X-Original-URI`` (``$request_uri``, raw) and
  ``X-Original-Method``; answers in *nginx style* (below);
- **Caddy** ``forward_auth`` / **Traefik** ``ForwardAuth``:
  ``X-Forwarded-Uri``, ``X-Forwarded-Method``, ``X-Forwarded-Host``;
- **Envoy** ``ext_authz`` (HTTP service, ``path_prefix: /.agegate/authz``):
  the check request's own method, ``Host`` and path, less the prefix.

Host is ``X-Forwarded-Host`` (else ``Host``), read strictly by
:func:`~gateway.core.hosts.parse_host` as in proxy mode (``400 bad_host``).
Every forwarded header must occur at most once, and a request carrying both ``X-Original-URI`` and
``X-Forwarded-Uri`` is refused: a proxy that passes one family through from
the client must never let it choose the path (``400``).

The decision is the proxy mode's, step for step: accepted host (``421``),
:func:`~gateway.core.paths.canonical_path` of the forwarded path, never the query
(``400``), ``/.agegate/`` itself allowed (the proxy routes it to the public
listener), then :class:`~gateway.decision.evaluate.Evaluator` — same policy, session,
inline ``Authorization: AgeToken`` — and :class:`~gateway.decision.responses.Responder`.

Answers: ``200`` with ``X-Agegate-Age-Over`` / ``X-Agegate-Assurance`` when
the route required an age and it is proven, ``X-Agegate-Path`` (the canonical
path, so the proxy can forward exactly what was decided), ``Set-Cookie``
when a credential was accepted, and the visitor's cookies without agegate's
own for the proxy to send the site (:func:`site_cookie_headers`); otherwise
the proxy mode's ``303`` / ``401`` / ``403`` / ``400`` / ``421`` / ``429`` /
``503`` with its headers and body, for the proxy to pass to the client.

*nginx style* (``X-Original-URI`` present, or ``?style=nginx``):
``auth_request`` only understands 2xx, 401 and 403, so the ``303`` becomes
``401`` with the location in ``X-Agegate-Location`` (the shipped config turns
it back into a ``303`` with ``error_page 401``), any other status becomes
``403`` with the real one in ``X-Agegate-Status``, and every refusal names
its reason in ``X-Agegate-Reason``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.core.cookies import strip_cookies
from gateway.core.forwarding import is_trusted
from gateway.core.headers import header_value, header_values
from gateway.core.hosts import parse_host
from gateway.core.paths import canonical_path, split_target
from gateway.core.problem import send_problem, send_response
from gateway.decision.access import AccessLog, AccessRecord
from gateway.decision.evaluate import Evaluation, Evaluator
from gateway.decision.responses import AGEGATE_PREFIX, Responder
from gateway.errors import BadRequest
from gateway.http.server import MAX_TARGET_BYTES
from gateway.observability import Metrics, log_event, truncate_ip
from gateway.policy import Outcome
from gateway.session.codec import CHALLENGE_COOKIE, SESSION_COOKIE
from gateway.settings import Settings
from gateway.types import Message, Receive, Scope, Send

__all__ = [
    "AUTHZ_PATH",
    "AuthzApp",
    "ForwardedRequest",
    "read_forwarded",
    "site_cookie_headers",
]

AUTHZ_PATH = "/.agegate/authz"
_AUTHZ_RAW = AUTHZ_PATH.encode()
Headers = Sequence[tuple[bytes, bytes]]

# RFC 9110 tchar: what a method name may be made of.
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# auth_request passes 2xx, 401 and 403; anything else becomes a 500 at nginx.
_NGINX_STATUSES = frozenset({200, 401, 403})
_AGEGATE_COOKIES = frozenset({SESSION_COOKIE.encode(), CHALLENGE_COOKIE.encode()})
# Bytes that would split or end the answer's head (RFC 9110 §5.5 allows none but HTAB).
_HEAD_BREAKERS = frozenset(range(0x20)) - {0x09} | {0x7F}


@dataclass(frozen=True, slots=True)
class ForwardedRequest:
    """The original request a front proxy asks about."""

    method: str
    host: str  # accepted host name, lower-case, without port
    raw_path: bytes  # the path as the client sent it (canonicalized by the caller)
    query: bytes  # the original query, raw
    nginx_style: bool  # answer the way nginx auth_request understands


def read_forwarded(scope: Scope, headers: Headers, hosts: frozenset[str]) -> ForwardedRequest:
    """The original request from a trusted proxy's authz request; BadRequest (400/421) if unusable.

    Only called for a trusted peer.  The path is returned raw here and made
    canonical by the caller, with the same settings as the proxy mode.
    """
    raw_target = _raw_target(scope)
    own_path, _, own_query = raw_target.partition(b"?")
    if raw_target.startswith(_AUTHZ_RAW + b"/"):
        # Envoy ext_authz: path_prefix + the original path and query.
        method = str(scope.get("method", "GET"))
        uri = raw_target[len(_AUTHZ_RAW) :]
        host_value = _only(headers, b"host")
        nginx_style = False
    elif own_path == _AUTHZ_RAW:
        original = _only(headers, b"x-original-uri")
        forwarded = _only(headers, b"x-forwarded-uri")
        if original is not None and forwarded is not None:
            raise BadRequest(
                "ambiguous_forwarded_uri", "both X-Original-URI and X-Forwarded-Uri were sent"
            )
        if original is not None:
            uri, method_value = original, _only(headers, b"x-original-method")
        elif forwarded is not None:
            uri, method_value = forwarded, _only(headers, b"x-forwarded-method")
        else:
            raise BadRequest(
                "missing_forwarded_uri", "the proxy sent neither X-Original-URI nor X-Forwarded-Uri"
            )
        method = _method(method_value) if method_value is not None else str(scope["method"])
        host_value = _only(headers, b"x-forwarded-host")
        if host_value is None:  # an empty X-Forwarded-Host is refused, not skipped
            host_value = _only(headers, b"host")
        nginx_style = original is not None or b"style=nginx" in own_query.split(b"&")
    else:
        raise BadRequest("not_found", "no such forward-auth endpoint", status=404)
    _check_forwarded_uri(uri)
    target_host, raw_path, query = split_target(uri)
    # The proxy-mode parser: a malformed forwarded host is a 400, never read leniently.
    header_host = parse_host(host_value).name if host_value is not None else None
    host = target_host or header_host
    if host is None or host not in hosts:
        raise BadRequest("unknown_host", "this gateway does not serve that host", status=421)
    if target_host is not None and header_host is not None and target_host != header_host:
        # As in proxy mode: an absolute URI naming another host than the Host header.
        raise BadRequest("host_mismatch", "the forwarded URI names another host than its Host")
    return ForwardedRequest(method, host, raw_path, query, nginx_style)


def _check_forwarded_uri(uri: bytes) -> None:
    """Refuse a URI no request line could carry, as the HTTP parser would in proxy mode.

    A proxy that joins the client's header and its own into ``a, b`` would otherwise
    have us decide on ``a`` while the site serves ``b``.
    """
    if len(uri) > MAX_TARGET_BYTES:
        raise BadRequest("uri_too_long", "the forwarded URI is too long", status=414)
    if any(byte <= 0x20 or byte >= 0x7F for byte in uri):
        raise BadRequest(
            "bad_forwarded_uri", "the forwarded URI holds a space, a control or a non-ASCII byte"
        )


class AuthzApp:
    """Raw-ASGI forward-auth endpoint; mount at ``/.agegate/authz`` (and below, for Envoy)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        evaluator: Evaluator,
        responder: Responder,
        started: Callable[[], bool],
    ) -> None:
        """``started`` says whether the runtime is up (verifiers loaded): else 503."""
        self.settings = settings
        self.started = started
        self.evaluator = evaluator
        self.responder = responder
        self.access = AccessLog(metrics, log_client_ip=self.settings.log_client_ip == "truncated")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = str(scope.get("path", ""))
        if path != AUTHZ_PATH and not path.startswith(AUTHZ_PATH + "/"):
            await send_problem(send, 404, "not_found", "no such endpoint")
            return
        record = AccessRecord(str(scope.get("method", "GET")))
        record.decision = "authz"
        client = scope.get("client")
        peer = client[0] if client else None
        try:
            await self._handle(scope, send, record, peer)
        finally:
            self.access.finish(record, peer)

    async def _handle(
        self, scope: Scope, send: Send, record: AccessRecord, peer: str | None
    ) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        accept = header_value(headers, b"accept")
        if not self.started():
            record.set(status=503, decision="reject", reason="starting")
            await send_problem(
                send, 503, "starting", "the gateway is starting", headers=[(b"retry-after", b"1")]
            )
            return
        if not is_trusted(peer, self.settings.trusted_proxies):
            record.set(status=403, decision="reject", reason="untrusted_proxy")
            if self.access.log_client_ip:
                # Even for a host on the operator's network, only its /24 (/48) is logged.
                log_event("authz_untrusted_proxy", level=logging.WARNING, client=truncate_ip(peer))
            else:
                log_event("authz_untrusted_proxy", level=logging.WARNING)
            await send_problem(
                send, 403, "untrusted_proxy", "only a trusted proxy may ask for decisions"
            )
            return
        nginx_style = _asks_nginx_style(scope, headers)
        try:
            original = read_forwarded(scope, headers, self.settings.hosts)
            nginx_style = original.nginx_style
            record.method = original.method
            path = canonical_path(
                original.raw_path, allow_semicolons=self.settings.allow_semicolons
            )
        except BadRequest as exc:
            record.set(status=exc.status, decision="reject", reason=exc.reason)
            out = _nginx_send(send, exc.reason) if nginx_style else send
            await send_problem(out, exc.status, exc.reason, str(exc), accept=accept)
            return
        record.path = path
        if path == AGEGATE_PREFIX or path.startswith(AGEGATE_PREFIX + "/"):
            # agegate's own pages: the proxy routes them to the public listener, unguarded.
            record.set(status=200, decision="agegate")
            answer = [(b"x-agegate-path", path.encode())]
            answer += site_cookie_headers(headers, nginx_style=nginx_style)
            await send_response(send, 200, b"", b"text/plain", answer)
            return
        await self._decide(scope, send, record, original, path, nginx_style, accept)

    async def _decide(
        self,
        scope: Scope,
        send: Send,
        record: AccessRecord,
        original: ForwardedRequest,
        path: str,
        nginx_style: bool,
        accept: bytes | None,
    ) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        client = scope.get("client")
        peer = client[0] if client else None
        facts = self.evaluator.facts(original.method, original.host, path, peer, headers)
        evaluation = await self.evaluator.evaluate(facts, headers, peer)
        record.verifier = evaluation.verifier
        decision = evaluation.decision
        # A HEAD asked about with a GET (Caddy, Traefik) is answered with a body all the same.
        method = original.method
        if method == "HEAD" and scope.get("method") != "HEAD":
            method = "GET"
        refusal = evaluation.refusal
        if refusal is not None:
            record.set(status=refusal.status, decision="challenge", reason=refusal.reason)
            out = _nginx_send(send, refusal.reason) if nginx_style else send
            await self.responder.refusal(out, refusal, decision, method=method, accept=accept)
            return
        record.set_decision(decision)
        outcome = decision.effective
        if outcome is Outcome.ALLOW:
            record.status = 200
            answer = _allow_headers(path, evaluation)
            answer += site_cookie_headers(headers, nginx_style=nginx_style)
            await send_response(send, 200, b"", b"text/plain", answer)
            return
        out = _nginx_send(send, decision.reason) if nginx_style else send
        record.status = await self.responder.answer(
            out, decision, method=method, accept=accept, path=path, query=original.query
        )


def _allow_headers(path: str, evaluation: Evaluation) -> list[tuple[bytes, bytes]]:
    """``X-Agegate-*`` for the proxy to copy upstream, ``Set-Cookie`` for it to copy back."""
    out = [(b"x-agegate-path", path.encode("ascii"))]
    decision = evaluation.decision
    requirement = decision.requirement
    # Only a proven age is announced: a report-only rule lets an unproven visitor through,
    # and the site must not read that as proof.
    if requirement is not None and decision.outcome is Outcome.ALLOW:
        out.append((b"x-agegate-age-over", str(requirement.min_age).encode()))
        out.append((b"x-agegate-assurance", requirement.assurance.label.encode()))
    out.extend((b"set-cookie", cookie) for cookie in evaluation.set_cookies)
    return out


def site_cookie_headers(headers: Headers, *, nginx_style: bool) -> list[tuple[bytes, bytes]]:
    """The visitor's ``Cookie`` less agegate's own, for the proxy to send the site instead.

    Every ``Cookie`` header of the question is read (HTTP/2 splits them) and
    joined with ``"; "``.  ``X-Agegate-Cookie`` carries the result for proxies
    that copy an answer header under another name (nginx ``auth_request_set``,
    Caddy ``request_header``).  Outside the nginx convention it is repeated as
    ``Cookie`` for proxies that copy answer headers only under their own name
    (Traefik ``authResponseHeaders``, Envoy ``allowed_upstream_headers``), and
    when nothing is left Envoy is told to remove the client's header
    (``x-envoy-auth-headers-to-remove``).  Nothing left means no header at all,
    never an empty one; a value holding a control byte is dropped whole, so it
    can never split the answer.
    """
    sent = header_values(headers, b"cookie")
    if not sent:
        return []
    kept = b"; ".join(
        stripped for stripped in (strip_cookies(v, _AGEGATE_COOKIES) for v in sent) if stripped
    )
    if kept and not _HEAD_BREAKERS.isdisjoint(kept):
        log_event("authz_cookie_dropped", level=logging.WARNING, reason="control_byte")
        kept = b""
    if not kept:
        return [] if nginx_style else [(b"x-envoy-auth-headers-to-remove", b"cookie")]
    out = [(b"x-agegate-cookie", kept)]
    if not nginx_style:
        out.append((b"cookie", kept))
    return out


def _raw_target(scope: Scope) -> bytes:
    """The authz request's own target as received (path and query), undecoded."""
    target = (scope.get("extensions") or {}).get("agegate") or {}
    raw = target.get("raw_target")
    if isinstance(raw, bytes) and raw.startswith(b"/"):
        return raw
    path = scope.get("raw_path") or str(scope.get("path", "/")).encode()
    query = scope.get("query_string", b"")
    return bytes(path) + (b"?" + query if query else b"")


def _only(headers: Headers, name: bytes) -> bytes | None:
    """The one value of ``name``; a proxy header sent twice is ambiguous and refused."""
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            if found is not None:
                raise BadRequest(
                    "ambiguous_forwarded_header",
                    f"the header {name.decode()} was sent more than once",
                )
            found = value
    return found


def _method(value: bytes) -> str:
    if not value or len(value) > 32 or value.translate(None, bytes(_TCHAR)):
        raise BadRequest("bad_forwarded_method", "the forwarded method is not an HTTP method")
    return value.decode("ascii")


def _asks_nginx_style(scope: Scope, headers: Headers) -> bool:
    """nginx style before the forwarded request is read (for refusing it in that style too)."""
    if header_value(headers, b"x-original-uri") is not None:
        return True
    return b"style=nginx" in bytes(scope.get("query_string", b"")).split(b"&")


def _nginx_send(send: Send, reason: str) -> Send:
    """Reshape a response for nginx ``auth_request`` (see the module docstring)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = []
            for name, value in message.get("headers", ()):
                renamed = name == b"location" and status == 303
                headers.append((b"x-agegate-location" if renamed else name, value))
            headers.append((b"x-agegate-reason", reason.encode("ascii", "replace")))
            if status == 303:
                status = 401
            elif status not in _NGINX_STATUSES:
                headers.append((b"x-agegate-status", str(status).encode()))
                status = 403
            message = {**message, "status": status, "headers": headers}
        await send(message)

    return wrapped
