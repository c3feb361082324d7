"""The OpenID4VP 1.0 flow for wallet verifiers (``eu-av``, ``sd-jwt-vc``): offer, answer, finish.

::

    browser  GET /.agegate/verify           challenge cookie + openid4vp:// link and QR code
    wallet   POST /.agegate/callback/<v>    direct_post: vp_token + sealed state (no cookie)
             <- 200 {"redirect_uri": "/.agegate/wallet?response_code=…"}
    browser  GET /.agegate/wallet?response_code=…        same device: the wallet opens it
    browser  GET /.agegate/wallet/status?verifier=…&state=…   other device: polls, then 303 there

The ``direct_post`` carries no browser cookie, so the request's sealed
``state`` (:class:`~gateway.browser.openid4vp.WalletStateCodec`) says which
challenge it answers; it is single use (the store's ``consume``).  The
verified outcome (thresholds, assurance, verifier, expiry; never the
credential) waits in the store for five minutes under an HMAC of the
challenge's ``state`` (its *binding*); the wallet gets a random one-time
``response_code``, which the store knows only as the HMAC'd key of a record
naming that binding.  Only the browser holding that challenge cookie turns the
outcome into a session (OpenID4VP 1.0 §13.3, session fixation): a
``response_code`` carried to another browser is refused (``session_mismatch``)
and used up, and the waiting page of the right browser finishes by itself.
Nothing in the store is a usable secret.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.browser.flow import FlowPages, _problem, _response, retry_url
from gateway.browser.forms import FormRefused
from gateway.browser.openid4vp import (
    QUERY_ID,
    WalletOutcome,
    WalletRefused,
    WalletState,
    WalletStateCodec,
    challenge_binding,
    client_id_for,
    parse_vp_token,
    query_ids,
    request_uri,
)
from gateway.core.wallet_pages import WalletOffer, wallet_item, wallet_wait_page
from gateway.decision.responses import AGEGATE_PREFIX
from gateway.decision.verification import verify_presentation
from gateway.errors import StoreUnavailable
from gateway.observability import log_event
from gateway.session.codec import ChallengeState
from gateway.stores.base import Store
from verifiers.base import AgeAssertion, Presentation, VerificationError
from verifiers.wallet import WALLET_CHANNEL, WalletVerifier

__all__ = ["COMPLETE_PATH", "OUTCOME_TTL", "STATUS_PATH", "WalletFlow"]

COMPLETE_PATH = f"{AGEGATE_PREFIX}/wallet"
STATUS_PATH = f"{AGEGATE_PREFIX}/wallet/status"
OUTCOME_TTL = 300.0
REQUEST_TTL = 600.0  # as long as the challenge cookie
_OUTCOMES = "openid4vp:outcome"  # challenge binding -> WalletOutcome (verified, or an error)
_CODES = "openid4vp:code"  # response_code -> the challenge binding it completes
_STATES = "openid4vp:state"  # the request nonces already answered
_CODE = re.compile(r"[A-Za-z0-9_-]{43}")
_REASON = re.compile(r"[a-z_]{1,40}")
_MAX_STATE = 1024


@dataclass(slots=True)
class WalletFlow:
    """The wallet endpoints; ``binding_key`` HMACs challenge states for the store."""

    codec: WalletStateCodec
    store: Store
    binding_key: bytes

    def routes(self, pages: FlowPages) -> list[BaseRoute]:
        async def complete(request: Request) -> Response:
            return await self.complete(pages, request)

        async def status(request: Request) -> Response:
            return await self.status(pages, request)

        return [
            Route(COMPLETE_PATH, complete, methods=["GET"]),
            Route(STATUS_PATH, status, methods=["GET"]),
        ]

    # -- the challenge page ------------------------------------------------------

    def offer(self, pages: FlowPages, challenge: ChallengeState, name: str) -> WalletOffer | None:
        """The OpenID4VP request for one wallet verifier of this challenge, or None."""
        verifier = pages.verifiers.get(name)
        if not isinstance(verifier, WalletVerifier):
            return None
        state = WalletState(
            nonce=secrets.token_urlsafe(24),
            challenge_state=challenge.state,
            min_age=challenge.min_age,
            verifier=name,
            expires_at=min(challenge.expires_at, time.time() + REQUEST_TTL),
        )
        return self._offer(pages, verifier, self.codec.seal(state), state)

    def _offer(
        self, pages: FlowPages, verifier: WalletVerifier, sealed: str, state: WalletState
    ) -> WalletOffer:
        response_uri = f"{pages.settings.public_origin}{AGEGATE_PREFIX}/callback/{verifier.name}"
        query = verifier.dcql_query(QUERY_ID, state.min_age)
        uri = request_uri(response_uri, state.nonce, sealed, query)
        wait = f"{STATUS_PATH}?{urlencode({'verifier': verifier.name, 'state': sealed})}"
        web = None
        if verifier.wallet_url:
            joiner = "&" if "?" in verifier.wallet_url else "?"
            web = verifier.wallet_url + joiner + uri.partition("?")[2]
        return WalletOffer(verifier.name, verifier.label, uri, wait, web)

    def offer_items(self, pages: FlowPages, challenge: ChallengeState) -> list[str]:
        offers = (self.offer(pages, challenge, name) for name in challenge.verifiers)
        return [wallet_item(offer) for offer in offers if offer is not None]

    # -- the wallet's answer -------------------------------------------------------

    async def direct_post(
        self, pages: FlowPages, request: Request, verifier: WalletVerifier
    ) -> Response:
        """``POST /.agegate/callback/<verifier>`` from the wallet (form head already checked)."""
        now = time.time()
        if limited := await pages._rate_limited(request, "callback"):
            return limited
        try:
            fields = await pages._fields(request, False)
        except FormRefused as exc:
            return pages._form_refused(request, exc)
        sealed = fields.get("state", "")
        state = self.codec.open(sealed, now) if len(sealed) <= _MAX_STATE else None
        if state is None or state.verifier != verifier.name:
            return self._wallet_refused(request, "state_invalid", "unknown or expired state")
        binding = challenge_binding(self.binding_key, state.challenge_state)
        try:
            if not await self.store.consume(_STATES, state.nonce, state.expires_at):
                return self._wallet_refused(request, "replayed_state", "already answered")
            if "error" in fields:
                code = fields["error"] if _REASON.fullmatch(fields["error"]) else "wallet_error"
                await self._keep_error(binding, verifier.name, code, now)
                log_event("wallet_error", level=logging.INFO, verifier=verifier.name, reason=code)
                return _response(200, b"{}", "application/json")
            response_uri = (
                f"{pages.settings.public_origin}{AGEGATE_PREFIX}/callback/{verifier.name}"
            )
            extra = {"client_id": client_id_for(response_uri), "response_uri": response_uri}
            try:
                asked = query_ids(verifier.dcql_query(QUERY_ID, state.min_age))
                _, credential = parse_vp_token(fields.get("vp_token"), asked)
                assertion = await verify_presentation(
                    [verifier],
                    Presentation(credential, WALLET_CHANNEL, extra),
                    audience=pages.settings.audience,
                    replay=pages.replay,
                    metrics=pages.metrics,
                    expected_nonce=state.nonce,
                    now=now,
                )
            except (WalletRefused, VerificationError) as exc:
                await self._keep_error(binding, verifier.name, exc.reason, now)
                return self._wallet_refused(request, exc.reason, "the presentation was refused")
            code = await self._keep(binding, verifier.name, assertion, now)
        except StoreUnavailable:
            return pages._store_down(request)
        redirect = f"{pages.settings.public_origin}{COMPLETE_PATH}?response_code={code}"
        body = f'{{"redirect_uri":"{redirect}"}}'.encode()
        log_event("wallet_answered", verifier=verifier.name)
        return _response(200, body, "application/json")

    async def _keep(self, binding: str, verifier: str, assertion: AgeAssertion, now: float) -> str:
        """Leave the outcome for the browser; the new response_code for the wallet."""
        outcome = WalletOutcome(
            binding=binding,
            verifier=verifier,
            age_over=assertion.age_over,
            age_under=assertion.age_under,
            assurance=assertion.assurance,
            expires_at=assertion.expires_at.timestamp(),
        )
        code = secrets.token_urlsafe(32)
        # A second answer to one challenge (two wallet verifiers offered) leaves the first.
        await self.store.put(_OUTCOMES, binding, outcome.encode(), now + OUTCOME_TTL)
        await self.store.put(_CODES, code, binding.encode("ascii"), now + OUTCOME_TTL)
        return code

    async def _keep_error(self, binding: str, verifier: str, reason: str, now: float) -> None:
        outcome = WalletOutcome(binding=binding, verifier=verifier, error=reason)
        await self.store.put(_OUTCOMES, binding, outcome.encode(), now + OUTCOME_TTL)

    def _wallet_refused(self, request: Request, reason: str, detail: str) -> Response:
        log_event("wallet_refused", level=logging.INFO, reason=reason)
        return _problem(request, 400, reason, detail, title="Presentation refused")

    # -- the browser ---------------------------------------------------------------

    async def complete(self, pages: FlowPages, request: Request) -> Response:
        """``GET /.agegate/wallet?response_code=…``: the outcome becomes this browser's session."""
        now = time.time()
        challenge = pages._challenge(request, now)
        if challenge is None:
            return pages._no_challenge(request)
        retry = retry_url(challenge)
        if limited := await pages._rate_limited(request, "callback"):
            return limited
        code = request.query_params.get("response_code", "")
        if not _CODE.fullmatch(code):
            return pages._refused(request, "malformed", "the response code is malformed", retry)
        binding = challenge_binding(self.binding_key, challenge.state)
        unknown = "this answer was already used or has expired"
        try:
            bound = await self.store.take(_CODES, code)
            if bound is None:
                return pages._refused(request, "response_code_unknown", unknown, retry)
            if not secrets.compare_digest(bound, binding.encode("ascii")):
                log_event("wallet_session_mismatch", level=logging.WARNING)
                return pages._refused(
                    request,
                    "session_mismatch",
                    "this answer belongs to a verification started in another browser",
                    retry,
                )
            data = await self.store.take(_OUTCOMES, binding)
        except StoreUnavailable:
            return pages._store_down(request)
        if data is None:  # already finished by this browser's waiting page
            return pages._refused(request, "response_code_unknown", unknown, retry)
        return self._finish(pages, request, challenge, data, retry, now)

    def _finish(
        self,
        pages: FlowPages,
        request: Request,
        challenge: ChallengeState,
        data: bytes,
        retry: str,
        now: float,
    ) -> Response:
        """The stored outcome of this browser's challenge made a session, or its refusal."""
        outcome = WalletOutcome.decode(data)
        binding = challenge_binding(self.binding_key, challenge.state)
        if outcome is None or not secrets.compare_digest(outcome.binding, binding):
            return pages._refused(request, "session_mismatch", "this answer is not yours", retry)
        if outcome.error is not None:
            reason = outcome.error if _REASON.fullmatch(outcome.error) else "wallet_error"
            return pages._refused(request, reason, "your wallet did not confirm your age", retry)
        verifier = pages.verifiers.get(outcome.verifier)
        if verifier is None or outcome.verifier not in challenge.verifiers:
            return pages._refused(
                request, "verifier_not_offered", "that verifier was not offered here", retry
            )
        assertion = AgeAssertion(
            age_over=outcome.age_over,
            age_under=outcome.age_under,
            assurance=outcome.assurance,
            method="digital_id",
            verifier=outcome.verifier,
            expires_at=datetime.fromtimestamp(outcome.expires_at, UTC),
        )
        return pages._start_session(request, challenge, assertion, verifier, now)

    async def status(self, pages: FlowPages, request: Request) -> Response:
        """``GET /.agegate/wallet/status``: wait (reloading) until the wallet has answered."""
        now = time.time()
        challenge = pages._challenge(request, now)
        if challenge is None:
            return pages._no_challenge(request)
        retry = retry_url(challenge)
        sealed = request.query_params.get("state", "")
        state = self.codec.open(sealed, now) if len(sealed) <= _MAX_STATE else None
        verifier = pages.verifiers.get(state.verifier) if state else None
        if (
            state is None
            or not isinstance(verifier, WalletVerifier)
            or not secrets.compare_digest(state.challenge_state.encode(), challenge.state.encode())
        ):
            return pages._refused(request, "state_invalid", "unknown or expired request", retry)
        if limited := await pages._rate_limited(request, "wallet-status"):
            return limited
        try:
            data = await self.store.take(
                _OUTCOMES, challenge_binding(self.binding_key, challenge.state)
            )
        except StoreUnavailable:
            return pages._store_down(request)
        if data is None:
            offer = self._offer(pages, verifier, sealed, state)
            return _response(200, wallet_wait_page(offer, state.min_age))
        return self._finish(pages, request, challenge, data, retry, now)
