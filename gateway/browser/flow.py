"""The ``/.agegate/`` endpoints (SPEC §6): verify, callback, status, logout.

Wallet verifiers (OpenID4VP) add ``/.agegate/wallet`` and ``/.agegate/wallet/status``
and answer their callback in :mod:`gateway.browser.wallet`.

Starlette serves these pages; they are off the hot path.  The challenge
cookie (AEAD, 10 minutes) binds ``nonce``, ``state`` and the return path to
the visitor's browser: the provider's ``form_post`` back to us is cross-site
by design, so ``state`` and ``nonce`` are the CSRF defence, not ``Origin``.
A failed callback changes no session.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.browser.forms import (
    FormRefused,
    check_form_head,
    declares_body,
    parse_form,
    read_form_body,
)
from gateway.core.cookies import clear_cookie, get_cookie, set_cookie
from gateway.core.hosts import parse_host
from gateway.core.pages import (
    SessionFacts,
    VerifierButton,
    challenge_page,
    error_page,
    refusal_page,
    status_page,
)
from gateway.core.paths import canonical_path
from gateway.core.problem import problem_body, response_headers, wants_html
from gateway.decision.responses import AGEGATE_PREFIX
from gateway.decision.verification import session_claims, verify_presentation
from gateway.errors import BadRequest, StoreUnavailable
from gateway.observability import Metrics, log_event
from gateway.policy import Decision, Outcome, decide
from gateway.policy.facts import RequestFacts, SessionClaims
from gateway.runtime import PolicyHolder, RateLimiter
from gateway.session.codec import (
    CHALLENGE_COOKIE,
    SESSION_COOKIE,
    ChallengeCodec,
    ChallengeState,
    SessionCodec,
    safe_return_path,
)
from gateway.session.revocation import SessionRevocation
from gateway.settings import Settings
from verifiers.base import (
    AgeAssertion,
    ChallengeContext,
    Presentation,
    ReplayGuard,
    VerificationError,
    Verifier,
)
from verifiers.wallet import WalletVerifier

if TYPE_CHECKING:
    from gateway.browser.wallet import WalletFlow

__all__ = ["FlowPages", "build_flow_app", "retry_url"]

CHALLENGE_TTL = 600
# Provider error codes we repeat to the visitor; anything else is shown as "provider_error".
_PROVIDER_ERRORS = frozenset({"access_denied", "cancelled", "temporarily_unavailable"})
# A provider that can only prove "over" (Privacy Pass) answers an under-age visitor with
# this error instead of a token; the visitor gets the same refusal page as a token saying
# ``age_over_NN: false``.  Only a refusal rides on it: no session is ever set from an error.
_UNDER_AGE = "under_age"
_CANCELLED = frozenset({"access_denied", "cancelled"})
# Where a browser lands after logging out: the status page, saying it is done.
_LOGGED_OUT = f"{AGEGATE_PREFIX}/status?logged_out=1"
# Scope key set once the callback body has been read to its end.
_BODY_READ = "agegate.body_read"


def retry_url(challenge: ChallengeState) -> str:
    """The verify page for the challenge's return path: where "try again" leads."""
    return f"{AGEGATE_PREFIX}/verify?return={quote(challenge.return_path, safe='/')}"


def build_flow_app(flow: FlowPages) -> Starlette:
    """The Starlette app for ``/.agegate/*`` (paths arrive already canonical)."""
    routes: list[BaseRoute] = [
        Route(f"{AGEGATE_PREFIX}/verify", flow.verify, methods=["GET", "HEAD"]),
        Route(f"{AGEGATE_PREFIX}/callback/{{verifier}}", flow.callback, methods=["GET", "POST"]),
        Route(f"{AGEGATE_PREFIX}/status", flow.status, methods=["GET", "HEAD"]),
        Route(f"{AGEGATE_PREFIX}/logout", flow.logout, methods=["POST"]),
    ]
    if flow.wallet is not None:
        routes += flow.wallet.routes(flow)
    app = Starlette(routes=routes)
    app.add_exception_handler(404, flow.not_found)
    app.add_exception_handler(405, flow.not_allowed)
    return app


def _response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/html; charset=utf-8",
    headers: Sequence[tuple[str, str]] = (),
    cookies: Sequence[bytes] = (),
) -> Response:
    response = Response(body, status_code=status)
    extra = [(key.encode("latin-1"), value.encode("latin-1")) for key, value in headers]
    extra += [(b"set-cookie", cookie) for cookie in cookies]
    response.raw_headers = response_headers(status, content_type.encode("latin-1"), body, extra)
    return response


def _problem(
    request: Request,
    status: int,
    reason: str,
    detail: str,
    *,
    title: str | None = None,
    retry_url: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    cookies: Sequence[bytes] = (),
) -> Response:
    """HTML for browsers, problem+json for other clients."""
    if wants_html(request.headers.get("accept", "").encode("latin-1")):
        page = error_page(title or "Something went wrong", detail, reason, retry_url)
        return _response(status, page, headers=headers, cookies=cookies)
    body = json.dumps(problem_body(status, reason, detail), separators=(",", ":")).encode()
    return _response(status, body, "application/problem+json", headers, cookies)


@dataclass(slots=True)
class FlowPages:
    """The ``/.agegate/`` endpoints and what they use.

    ``verifiers`` may be filled after construction (the runtime loads them at start-up).
    """

    settings: Settings
    policies: PolicyHolder
    sessions: SessionCodec
    revocation: SessionRevocation
    challenges: ChallengeCodec
    verifiers: Mapping[str, Verifier]
    limiter: RateLimiter
    replay: ReplayGuard
    metrics: Metrics
    # The OpenID4VP flow for wallet verifiers (gateway/browser/wallet.py); None offers none.
    wallet: WalletFlow | None = None

    # -- helpers ---------------------------------------------------------------

    async def _session(self, request: Request, now: float) -> SessionClaims | None:
        """The session unless revoked; StoreUnavailable only past the revoked-set bound."""
        cookie = get_cookie(request.scope["headers"], SESSION_COOKIE)
        return await self.revocation.open(cookie, now)

    def _decide_for(
        self, request: Request, return_path: str, session: SessionClaims | None, now: float
    ) -> Decision:
        path_only = return_path.split("?", 1)[0]
        try:
            path = canonical_path(path_only, allow_semicolons=self.settings.allow_semicolons)
        except BadRequest:
            path = "/"
        try:
            # The gate already refused a malformed Host; "" matches only host-free rules.
            host = parse_host(request.headers.get("host", "").encode("latin-1")).name
        except BadRequest:
            host = ""
        facts = RequestFacts("GET", host, path, None)
        return decide(facts, session, self.policies.policy, now)

    async def _rate_limited(self, request: Request, bucket: str) -> Response | None:
        peer = request.client.host if request.client else None
        try:
            result = await self.limiter.check(bucket, peer, request.scope["headers"])
        except StoreUnavailable:
            return self._store_down(request)
        if result is None or result.allowed:
            return None
        return _problem(
            request,
            429,
            "rate_limited",
            "too many attempts; please wait a minute",
            title="Too many attempts",
            headers=[("retry-after", str(int(result.retry_after) + 1))],
        )

    def _store_down(self, request: Request) -> Response:
        self.metrics.store_errors.inc()
        return _problem(
            request,
            503,
            "store_unavailable",
            "age verification is briefly unavailable; please try again shortly",
            title="Please try again shortly",
            headers=[("retry-after", "5")],
        )

    # -- endpoints -------------------------------------------------------------

    async def verify(self, request: Request) -> Response:
        now = time.time()
        return_path = safe_return_path(request.query_params.get("return"))
        try:
            session = await self._session(request, now)
        except StoreUnavailable:
            return self._store_down(request)
        decision = self._decide_for(request, return_path, session, now)
        if decision.effective is Outcome.ALLOW:
            return _response(303, headers=[("location", return_path)])
        requirement = decision.requirement
        if decision.effective is Outcome.DENY or requirement is None:
            if decision.reason == "proven_under" and requirement is not None:
                return _response(403, refusal_page(requirement.min_age))
            return _problem(
                request,
                403,
                decision.reason,
                "access to this page is denied",
                title="Access refused",
            )
        if limited := await self._rate_limited(request, "verify"):
            return limited
        state = ChallengeState(
            nonce=secrets.token_urlsafe(24),
            state=secrets.token_urlsafe(24),
            return_path=return_path,
            min_age=requirement.min_age,
            assurance=requirement.assurance,
            verifiers=requirement.verifiers,
            expires_at=now + CHALLENGE_TTL,
        )
        buttons = self._buttons(state)
        wallets = self.wallet.offer_items(self, state) if self.wallet else []
        cookie = set_cookie(
            CHALLENGE_COOKIE,
            self.challenges.seal(state),
            max_age=CHALLENGE_TTL,
            same_site="None",
        )
        # A cookie sent but not accepted may just have run out: say so, not "who are you?".
        expired = session is None and self.sessions.expired(
            get_cookie(request.scope["headers"], SESSION_COOKIE), now
        )
        page = challenge_page(
            requirement.min_age, buttons, return_path, expired=expired, wallets=wallets
        )
        return _response(200, page, cookies=[cookie])

    def _buttons(self, state: ChallengeState) -> list[VerifierButton]:
        origin = self.settings.public_origin
        buttons = []
        for name in state.verifiers:
            verifier = self.verifiers.get(name)
            if verifier is None:
                continue
            ctx = ChallengeContext(
                public_origin=origin,
                redirect_uri=f"{origin}{AGEGATE_PREFIX}/callback/{name}",
                nonce=state.nonce,
                state=state.state,
                min_age=state.min_age,
                assurance=state.assurance,
            )
            challenge = verifier.start(ctx)
            if challenge.redirect_url:
                buttons.append(VerifierButton(name, verifier.label, challenge.redirect_url))
        return buttons

    async def callback(self, request: Request) -> Response:
        response = await self._callback(request)
        headers = request.scope["headers"]
        if not request.scope.get(_BODY_READ) and declares_body(headers):
            # Answered without reading the body: close rather than keep the connection
            # alive only to swallow whatever the client still sends (nginx does the same).
            response.headers["connection"] = "close"
        return response

    async def _callback(self, request: Request) -> Response:
        """Everything that needs no body first: no byte of it is read for a refusal."""
        now = time.time()
        name = request.path_params["verifier"]
        verifier = self.verifiers.get(name)
        if verifier is None:
            return _problem(request, 404, "unknown_verifier", "no such verifier")
        wants_query = verifier.response_mode == "query"
        if (request.method == "GET") != wants_query:
            return _problem(
                request,
                405,
                "method_not_allowed",
                f"this verifier answers with {'GET' if wants_query else 'POST'}",
            )
        if not wants_query:
            try:
                check_form_head(request.scope["headers"])
            except FormRefused as exc:
                return self._form_refused(request, exc)
        if isinstance(verifier, WalletVerifier):
            # A wallet's direct_post: no browser cookie comes with it (see wallet.py).
            if self.wallet is None:
                return _problem(request, 404, "unknown_verifier", "no such verifier")
            return await self.wallet.direct_post(self, request, verifier)
        challenge = self._challenge(request, now)
        if challenge is None:
            return self._no_challenge(request)
        if limited := await self._rate_limited(request, "callback"):
            return limited
        try:
            fields = await self._fields(request, wants_query)
        except FormRefused as exc:
            return self._form_refused(request, exc)
        retry = retry_url(challenge)
        state = fields.get("state")
        # As bytes: compare_digest raises TypeError for a str with non-ASCII characters.
        if state is None or not hmac.compare_digest(state.encode(), challenge.state.encode()):
            return self._refused(
                request, "state_mismatch", "this answer does not belong to your verification", retry
            )
        if name not in challenge.verifiers:
            return self._refused(
                request,
                "verifier_not_offered",
                "that verifier was not offered for this page",
                retry,
            )
        error = fields.get("error")
        if error == _UNDER_AGE:
            log_event("callback_refused", verifier=name, reason="proven_under")
            clear = clear_cookie(CHALLENGE_COOKIE, same_site="None")
            return _response(403, refusal_page(challenge.min_age), cookies=[clear])
        if error in _CANCELLED:
            return self._refused(
                request,
                str(error),
                "the age check was cancelled, so your age was not confirmed",
                retry,
                title="Age check cancelled",
            )
        if error is not None:
            reason = str(error) if error in _PROVIDER_ERRORS else "provider_error"
            return self._refused(request, reason, "the verifier did not confirm your age", retry)
        credential_field, *extra_fields = verifier.callback_fields
        token = fields.get(credential_field)
        if not isinstance(token, str) or not token:
            return self._refused(request, "malformed", "the verifier sent no age token", retry)
        extra = {key: fields[key] for key in extra_fields if key in fields}
        try:
            assertion = await verify_presentation(
                [verifier],
                Presentation(token, "callback", extra),
                audience=self.settings.audience,
                replay=self.replay,
                metrics=self.metrics,
                expected_nonce=challenge.nonce,
                now=now,
            )
        except VerificationError as exc:
            return self._refused(request, exc.reason, "the age proof was not accepted", retry)
        except StoreUnavailable:
            return self._store_down(request)
        return self._start_session(request, challenge, assertion, verifier, now)

    def _challenge(self, request: Request, now: float) -> ChallengeState | None:
        """This browser's open challenge (cookie), or None when missing, expired or forged."""
        return self.challenges.open(get_cookie(request.scope["headers"], CHALLENGE_COOKIE), now)

    def _no_challenge(self, request: Request) -> Response:
        return self._refused(
            request,
            "challenge_missing",
            "this verification has expired or was started in another browser; please start again",
            f"{AGEGATE_PREFIX}/verify",
        )

    def _start_session(
        self,
        request: Request,
        challenge: ChallengeState,
        assertion: AgeAssertion,
        verifier: Verifier,
        now: float,
    ) -> Response:
        """Set the session for a verified assertion (or refuse it) and clear the challenge."""
        retry = retry_url(challenge)
        route = self._decide_for(request, challenge.return_path, None, now)
        claims, max_age = session_claims(assertion, verifier, route.requirement, now=now)
        result = self._decide_for(request, challenge.return_path, claims, now)
        clear = clear_cookie(CHALLENGE_COOKIE, same_site="None")
        if result.outcome is Outcome.DENY and result.reason == "proven_under":
            log_event("callback_refused", verifier=verifier.name, reason="proven_under")
            return _response(403, refusal_page(challenge.min_age), cookies=[clear])
        if result.outcome is not Outcome.ALLOW:
            return self._refused(
                request, result.reason, "the proof does not meet what this page requires", retry
            )
        cookie = set_cookie(SESSION_COOKIE, self.sessions.seal(claims), max_age=max_age)
        log_event("session_started", verifier=verifier.name, rule=result.rule)
        return _response(
            303, headers=[("location", challenge.return_path)], cookies=[cookie, clear]
        )

    async def _fields(self, request: Request, wants_query: bool) -> dict[str, str]:
        if wants_query:  # the request line, so at most 8 KiB (server.MAX_TARGET_BYTES)
            return parse_form(request.scope["query_string"])
        body = await read_form_body(request.receive)
        request.scope[_BODY_READ] = True
        return parse_form(body)

    def _form_refused(self, request: Request, exc: FormRefused) -> Response:
        log_event("callback_refused", level=logging.INFO, reason=exc.reason)
        return _problem(request, exc.status, exc.reason, str(exc), title="Request refused")

    def _refused(
        self,
        request: Request,
        reason: str,
        detail: str,
        retry: str,
        *,
        title: str = "We could not confirm your age",
    ) -> Response:
        log_event("callback_refused", level=logging.INFO, reason=reason)
        return _problem(request, 400, reason, detail, title=title, retry_url=retry)

    async def status(self, request: Request) -> Response:
        try:
            session = await self._session(request, time.time())
        except StoreUnavailable:
            return self._store_down(request)
        body: dict[str, object]
        facts: SessionFacts | None = None
        if session is None:
            body = {"verified": False, "age_over": [], "assurance": None, "expires_at": None}
        else:
            expires = datetime.fromtimestamp(session.expires_at, UTC)
            expires_text = expires.isoformat(timespec="seconds").replace("+00:00", "Z")
            body = {
                "verified": True,
                "age_over": sorted(session.age_over),
                "assurance": session.assurance.label,
                "expires_at": expires_text,
            }
            facts = SessionFacts(
                tuple(sorted(session.age_over)),
                tuple(sorted(session.age_under)),
                session.assurance.label,
                expires_text,
            )
        # SPEC §6's JSON for API clients; a person who opens the link gets a page.
        if wants_html(request.headers.get("accept", "").encode("latin-1")):
            logged_out = request.query_params.get("logged_out") == "1"
            return _response(200, status_page(facts, logged_out=logged_out))
        return _response(200, json.dumps(body).encode(), "application/json")

    async def logout(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        same_site = request.headers.get("sec-fetch-site") == "same-origin"
        if not same_site and origin != self.settings.public_origin:
            return _problem(
                request,
                403,
                "cross_origin",
                "logout needs a same-origin request",
                title="Not allowed",
            )
        cookie = clear_cookie(SESSION_COOKIE)
        # Revoked before the cookie is cleared, so every copy of it dies with this one.
        revoked = await self.revocation.revoke(
            get_cookie(request.scope["headers"], SESSION_COOKIE), time.time()
        )
        if revoked == "recorded":
            log_event("session_revoked")
        elif revoked == "pending":
            # Refused by this process already and recorded when Redis is back, so the
            # logout is answered as done: a 503 would invite a retry that, without the
            # cookie we are clearing, could revoke nothing more.
            self.metrics.store_errors.inc()
            log_event("session_revocation_pending", level=logging.WARNING)
        if wants_html(request.headers.get("accept", "").encode("latin-1")):
            # Still a 303 (SPEC §6), to a page that confirms the logout; API clients: 204.
            return _response(303, headers=[("location", _LOGGED_OUT)], cookies=[cookie])
        return _response(204, cookies=[cookie])

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return _problem(request, 404, "not_found", "no such agegate endpoint", title="Not found")

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return _problem(
            request,
            405,
            "method_not_allowed",
            "method not allowed here",
            title="Method not allowed",
        )
