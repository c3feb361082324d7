"""The ``age-token`` verifier: JWS age tokens from any provider with a JWKS (SPEC §5).

Registered as the ``age-token`` kind in the ``agegate.verifiers`` entry-point
group.  The profile checks live in :mod:`verifiers.token_profile` (shared with
``agegate verifier check``); this module parses the verifier's config once,
builds the browser redirect, runs the checks in order stopping at the first
finding, and records ``jti`` and nonce in the replay store last, so a refused
token never burns a nonce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from verifiers.base import (
    DEFAULT_SESSION_TTL,
    AgeAssertion,
    AssuranceLevel,
    Challenge,
    ChallengeContext,
    Presentation,
    VerificationError,
    Verifier,
    VerifierConfig,
    VerifierServices,
    VerifyContext,
)
from verifiers.config import optional_duration, provider_url, string_setting
from verifiers.jwks import JwksCache, parse_algorithms
from verifiers.token_profile import (
    DEFAULT_ALGORITHMS,
    PROFILE_CLAIMS,
    SKEW,
    age_thresholds,
    claim_findings,
    decode_payload,
    header_findings,
    is_identity_claim,
    parse_compact,
    signature_algorithms,
    verify_signature,
)

__all__ = ["DEFAULT_SESSION_TTL", "AgeTokenConfig", "AgeTokenVerifier", "parse_config"]

_OWN_KEYS = frozenset(
    {"issuer", "jwks_uri", "jwks_file", "algorithms", "max_token_lifetime", "allow_claims",
     "jwks_max_stale"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class AgeTokenConfig(VerifierConfig):
    """One age-token verifier's settings (the shared ones and its own), checked once at load."""

    issuer: str
    jwks_uri: str | None
    jwks_file: Path | None
    algorithms: tuple[str, ...]
    max_token_lifetime: float
    allow_claims: frozenset[str]
    jwks_max_stale: float


def _duration(config: Mapping[str, Any], key: str, default: float) -> float:
    return optional_duration(config, key) or default


def _allow_claims(config: Mapping[str, Any]) -> frozenset[str]:
    value = config.get("allow_claims", [])
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) and c for c in value):
        raise ValueError("allow_claims: expected a list of claim names")
    for claim in value:
        if is_identity_claim(claim):
            # The profile refuses identity claims whatever the config says;
            # saying so at load beats a verifier that refuses every token.
            raise ValueError(f"allow_claims: {claim!r} is an identity claim and is never accepted")
    return frozenset(value) - PROFILE_CLAIMS


def parse_config(name: str, config: Mapping[str, Any], base_dir: str = ".") -> AgeTokenConfig:
    """Check every key of one verifier's config; ``ValueError`` names the key."""
    shared = VerifierConfig.parse(name, config, kind="age-token", own_keys=_OWN_KEYS)
    issuer = string_setting(config, "issuer", required=True)
    jwks_uri = provider_url(config, "jwks_uri")
    jwks_file = string_setting(config, "jwks_file")
    if (jwks_uri is None) == (jwks_file is None):
        raise ValueError("jwks_uri: exactly one of jwks_uri and jwks_file is required")
    jwks_path = None
    if jwks_file is not None:
        jwks_path = Path(base_dir, jwks_file)
        if not jwks_path.is_file():
            raise ValueError(f"jwks_file: no such file {str(jwks_path)!r}")
    return AgeTokenConfig(
        **shared.shared(),
        issuer=str(issuer),
        jwks_uri=jwks_uri,
        jwks_file=jwks_path,
        algorithms=parse_algorithms(config, DEFAULT_ALGORITHMS),
        max_token_lifetime=_duration(config, "max_token_lifetime", 300.0),
        allow_claims=_allow_claims(config),
        jwks_max_stale=_duration(config, "jwks_max_stale", 3600.0),
    )


class AgeTokenVerifier(Verifier):
    """Verifies ``age-token+jwt`` presentations; see :mod:`verifiers.token_profile` for the order.

    Constructed by the gateway as ``AgeTokenVerifier(name, config, services)``;
    a bad config raises ``ValueError`` naming the key.
    """

    kind = "age-token"
    auth_scheme = "AgeToken"  # answers `Authorization: AgeToken <jws>` (SPEC §6)

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.config = parse_config(name, config, services.base_dir)
        super().__init__(name, self.config)
        self._algorithms = signature_algorithms(self.config.algorithms)
        self._keys = JwksCache(
            uri=self.config.jwks_uri,
            file=self.config.jwks_file,
            http=services.http,
            max_stale=self.config.jwks_max_stale,
        )

    def start(self, ctx: ChallengeContext) -> Challenge:
        """The browser redirect to the provider (SPEC §6), if an ``authorize_url`` is set."""
        url = self.config.authorize_url
        if url is None:
            return Challenge()
        query = urlencode(
            {
                "client_id": ctx.public_origin,
                "redirect_uri": ctx.redirect_uri,
                "response_mode": self.config.response_mode,
                "nonce": ctx.nonce,
                "state": ctx.state,
                "min_age": str(ctx.min_age),
            }
        )
        return Challenge(redirect_url=f"{url}{'&' if '?' in url else '?'}{query}")

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Check one token against SPEC §5; raise ``VerificationError`` at the first failure."""
        parsed = parse_compact(presentation.credential)
        header = parsed.header
        for finding in header_findings(header, self._algorithms):
            raise finding.error()
        alg: str = header["alg"]
        key = await self._keys.get(header["kid"], ctx.now)
        if not verify_signature(parsed, self._algorithms[alg], alg, key):
            raise VerificationError("bad_signature", "signature does not verify")
        claims = decode_payload(parsed)
        for finding in claim_findings(
            claims,
            issuer=self.config.issuer,
            audience=ctx.audience,
            nonce=ctx.expected_nonce,
            now=ctx.now,
            max_lifetime=self.config.max_token_lifetime,
            allow_claims=self.config.allow_claims,
        ):
            raise finding.error()
        over, under = age_thresholds(claims)
        level = claims.get("assurance_level")
        assurance = AssuranceLevel.parse(level) if level else self.config.assurance_level
        # Replay records last: a token refused above must not use up its nonce.
        # Store failures (reason store_unavailable) propagate: the gateway fails closed.
        # Recorded until the token could no longer pass the exp check (exp + skew).
        expires = float(claims["exp"]) + SKEW
        if not await ctx.replay.consume("jti:" + self.config.issuer, claims["jti"], expires):
            raise VerificationError("replayed", "token id was already used")
        if not await ctx.replay.consume("nonce", claims["nonce"], expires):
            raise VerificationError("replayed_nonce", "nonce was already used")
        ttl = self.session_ttl
        return AgeAssertion(
            age_over=over,
            age_under=under,
            assurance=assurance,
            method=claims.get("age_method"),
            verifier=self.name,
            expires_at=datetime.fromtimestamp(ctx.now + ttl, tz=UTC),
        )

    async def warm(self) -> None:
        """Fetch the provider's keys now (call from the lifespan to avoid a cold first request)."""
        await self._keys.refresh()

    async def aclose(self) -> None:
        """Release the HTTP session the key cache created, if any."""
        await self._keys.close()
