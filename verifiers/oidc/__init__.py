"""The ``oidc`` verifier: age claims from an OpenID Connect provider (code flow + PKCE).

Registered as the ``oidc`` kind in the ``agegate.verifiers`` entry-point group.
The visitor goes to the provider's authorization endpoint with ``scope`` =
``openid`` plus the configured age scope, ``state`` (the challenge cookie's),
a ``nonce`` and a PKCE ``code_challenge`` (S256); the provider answers the
callback with ``code`` (and ``iss``, RFC 9207), and :meth:`OidcVerifier.verify`
redeems the code, validates the id_token and maps the configured age claims.

Stateless across workers: the PKCE ``code_verifier`` and the OIDC ``nonce``
are HMACs of the gateway's challenge nonce under a key derived from
``services.secret`` and the verifier's name, so ``start`` and ``verify`` agree
without storing anything, and a code obtained for one challenge cannot be
redeemed with another challenge's cookie (the verifier would not match).

Privacy: only the configured age claim paths are read; the decoded claims,
the access token and the refresh token are dropped before ``verify`` returns,
and nothing of them is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from verifiers.b64url import b64url_encode
from verifiers.base import (
    DEFAULT_SESSION_TTL,
    AgeAssertion,
    Challenge,
    ChallengeContext,
    Presentation,
    VerificationError,
    Verifier,
    VerifierServices,
    VerifyContext,
)
from verifiers.jwks import JwksCache
from verifiers.oidc.claims import map_age_claims
from verifiers.oidc.config import OidcConfig, parse_config
from verifiers.oidc.provider import (
    Discovery,
    fetch_discovery,
    fetch_userinfo,
    redeem_code,
    validate_id_token,
)
from verifiers.token_profile import SKEW

__all__ = ["CALLBACK_PATH", "DEFAULT_SESSION_TTL", "OidcVerifier"]

log = logging.getLogger("agegate.verifiers.oidc")

CALLBACK_PATH = "/.agegate/callback/"  # SPEC §6; the redirect_uri must match start()'s
_MAX_CODE = 2048
_RETRY_AFTER_FAILURE = 10.0


class OidcVerifier(Verifier):
    """Verifies an OpenID provider's answer; built as ``OidcVerifier(name, config, services)``."""

    kind = "oidc"
    callback_fields = ("code", "iss")

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.config: OidcConfig = parse_config(name, config, services.base_dir)
        super().__init__(name, self.config)
        self._http = services.http
        if len(services.secret) < 32:
            raise ValueError("the gateway gave no verifier secret (session keys are needed)")
        label = f"agegate-oidc\0{name}".encode()
        self._pkce_key = hmac.new(services.secret, label + b"\0pkce", hashlib.sha256).digest()
        self._nonce_key = hmac.new(services.secret, label + b"\0nonce", hashlib.sha256).digest()
        self._discovery: Discovery | None = None
        self._keys: JwksCache | None = None
        self._lock = asyncio.Lock()
        self._next_attempt = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        # Configured form_post, but the provider cannot post: it answers by GET query.
        self._configured_mode = self.config.response_mode

    # -- derived per-challenge values -----------------------------------------

    def code_verifier(self, challenge_nonce: str) -> str:
        """RFC 7636 verifier for one challenge: 43 base64url characters, never stored."""
        return b64url_encode(hmac.new(self._pkce_key, challenge_nonce.encode(), "sha256").digest())

    def oidc_nonce(self, challenge_nonce: str) -> str:
        """The ``nonce`` sent to the provider for one challenge (not the challenge nonce itself)."""
        return b64url_encode(hmac.new(self._nonce_key, challenge_nonce.encode(), "sha256").digest())

    # -- discovery --------------------------------------------------------------

    async def _load_discovery(self, now: float) -> Discovery:
        async with self._lock:
            current = self._discovery
            if current is not None and now < current.fetched_at + self.config.discovery_ttl:
                return current
            if now < self._next_attempt:
                if current is not None:
                    return current  # keep the last good document while the provider is down
                raise VerificationError("provider_unavailable", "the provider is unavailable")
            if self._http is None:
                raise VerificationError("provider_unavailable", "no HTTP client for the provider")
            try:
                discovery = await fetch_discovery(self._http, self.config, now)
            except VerificationError as error:
                self._next_attempt = now + _RETRY_AFTER_FAILURE
                fields = {"verifier": self.name, "reason": error.reason}
                log.warning("oidc_discovery_failed", extra={"fields": fields})
                if current is not None and error.reason == "provider_unavailable":
                    return current
                raise
            if self._keys is None or current is None or current.jwks_uri != discovery.jwks_uri:
                if self._keys is not None:
                    await self._keys.close()
                self._keys = JwksCache(
                    uri=discovery.jwks_uri,
                    http=self._http,
                    max_stale=self.config.jwks_max_stale,
                    timeout=self.config.timeout,
                )
            if self._configured_mode == "form_post" and not discovery.form_post:
                log.warning("oidc_form_post_unsupported", extra={"fields": {"verifier": self.name}})
                self.response_mode = "query"
            else:
                self.response_mode = self._configured_mode
            self._discovery = discovery
            return discovery

    def _refresh_soon(self) -> None:
        """From the synchronous ``start``: fetch discovery in the background, once at a time."""
        if self._refreshing is not None and not self._refreshing.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.create_task(self._background_refresh())

    async def _background_refresh(self) -> None:
        try:
            await self._load_discovery(time.time())
        except VerificationError:
            return  # logged in _load_discovery; the next visitor tries again

    # -- the Verifier contract ---------------------------------------------------

    def start(self, ctx: ChallengeContext) -> Challenge:
        """The authorization request (code flow, PKCE S256); no button without discovery."""
        discovery = self._discovery
        if discovery is None or time.time() >= discovery.fetched_at + self.config.discovery_ttl:
            self._refresh_soon()
        if discovery is None:
            return Challenge()
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": ctx.redirect_uri,
            "scope": self.config.scope,
            "state": ctx.state,
            "nonce": self.oidc_nonce(ctx.nonce),
            "code_challenge": create_s256_code_challenge(self.code_verifier(ctx.nonce)),
            "code_challenge_method": "S256",
        }
        if self.response_mode == "form_post":
            params["response_mode"] = "form_post"
        url = discovery.authorization_endpoint
        return Challenge(redirect_url=f"{url}{'&' if '?' in url else '?'}{urlencode(params)}")

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Redeem the code, validate the id_token, map the age claims; raise at the first fault."""
        code = presentation.credential
        if presentation.channel != "callback" or ctx.expected_nonce is None:
            raise VerificationError("missing_nonce", "an oidc answer needs the browser challenge")
        if not code or len(code) > _MAX_CODE or not code.isascii():
            raise VerificationError("malformed", "the authorization code is not acceptable")
        discovery = await self._load_discovery(ctx.now)
        iss = presentation.extra.get("iss")
        if iss is not None and iss != self.config.issuer:
            # RFC 9207 mix-up defence: the answer came from another provider.
            raise VerificationError("wrong_issuer", "the answer names another issuer")
        if iss is None and discovery.iss_parameter:
            raise VerificationError("wrong_issuer", "the provider always names itself, not here")
        keys = self._keys
        if keys is None:  # set together with the discovery document; never None here
            raise VerificationError("provider_unavailable", "the provider's keys are not loaded")
        id_token, access_token = await redeem_code(
            self._http,
            self.config,
            discovery,
            code=code,
            redirect_uri=f"{ctx.audience}{CALLBACK_PATH}{self.name}",
            code_verifier=self.code_verifier(ctx.expected_nonce),
        )
        claims = await validate_id_token(
            id_token,
            config=self.config,
            discovery=discovery,
            keys=keys,
            nonce=self.oidc_nonce(ctx.expected_nonce),
            now=ctx.now,
        )
        sources: list[Mapping[str, Any]] = [claims]
        if self.config.use_userinfo:
            if access_token is None:
                raise VerificationError("provider_error", "the token response has no access token")
            userinfo = await fetch_userinfo(self._http, self.config, discovery, access_token)
            # OIDC Core §5.3.2: userinfo about another subject must not be mixed in.
            if not hmac.compare_digest(str(userinfo.get("sub", "")), str(claims.get("sub"))):
                raise VerificationError("bad_claim", "userinfo is about another subject")
            sources.append(userinfo)
        over, under = map_age_claims(self.config.claims, *sources)
        # Capped before float(): a validated exp may still be an int too large for a float.
        expires = float(min(claims["exp"], ctx.now + 86400)) + SKEW
        # Nothing but the thresholds leaves this method: the claims and tokens go now.
        del claims, sources, id_token, access_token
        # Last, so a refused answer never burns the challenge; the same namespace as
        # age-token's, so one challenge cannot earn two sessions through two kinds.
        if not await ctx.replay.consume("nonce", ctx.expected_nonce, max(expires, ctx.now + 600)):
            raise VerificationError("replayed_nonce", "this challenge was already answered")
        ttl = self.session_ttl
        return AgeAssertion(
            age_over=over,
            age_under=under,
            assurance=self.config.assurance_level,
            method=self.config.age_method,
            verifier=self.name,
            expires_at=datetime.fromtimestamp(ctx.now + ttl, tz=UTC),
        )

    async def warm(self) -> None:
        """Fetch discovery and the provider's keys now; ``provider_unavailable`` if it is down."""
        await self._load_discovery(time.time())
        if self._keys is not None:
            await self._keys.refresh()

    async def aclose(self) -> None:
        """Stop a background refresh and release the key cache."""
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
        if self._keys is not None:
            await self._keys.close()
