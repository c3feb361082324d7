"""The ``privacy-pass`` verifier: redeems RFC 9577 ``PrivateToken`` tokens of type 2 (RFC 9578).

One issuer key per age threshold: a token signed with the key configured
under ``"18"`` proves "18 or over" and nothing else.  The site never learns
more than that, and the issuer never learns the site (the TokenRequest holds
only a blinded message and one byte of the key id).

Checks, in order, each with its reason code::

    auth-params / base64url / struct length   malformed
    token_type != 0x0002                      bad_type
    token_key_id not a configured key         unknown_key
    challenge_digest not one we issue now     wrong_challenge
    RSASSA-PSS (SHA-384, MGF1, salt 48)       bad_signature
    token nonce already redeemed              replayed

The key check comes before the challenge check so that, with several
privacy-pass verifiers on a route, the one that does not own the key says so
(``unknown_key``) rather than ``wrong_challenge``.  The replay record is
written last, so a refused token never burns its nonce.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from verifiers.base import (
    DEFAULT_SESSION_TTL,
    AgeAssertion,
    Challenge,
    ChallengeContext,
    Presentation,
    VerificationError,
    Verifier,
    VerifierConfig,
    VerifierServices,
    VerifyContext,
)
from verifiers.privacy_pass import blindrsa
from verifiers.privacy_pass.challenges import WINDOW, ChallengeMaker
from verifiers.privacy_pass.keys import IssuerPublicKey, load_public_key
from verifiers.privacy_pass.structs import (
    TOKEN_TYPE_BLIND_RSA,
    StructError,
    Token,
    b64url_decode,
    b64url_encode,
    format_auth_params,
    parse_auth_params,
)

__all__ = [
    "AUTH_SCHEME",
    "DEFAULT_SESSION_TTL",
    "EMPTY_CONTEXT_REPLAY_TTL",
    "PrivacyPassConfig",
    "PrivacyPassVerifier",
    "origin_name",
    "parse_config",
]

AUTH_SCHEME = "PrivateToken"
REDEMPTION_CONTEXTS = ("per-challenge", "empty")
# A spent nonce is remembered for as long as any challenge it could answer is accepted:
# API challenges live at most two windows, browser challenge cookies 10 minutes.
_REPLAY_TTL = max(2 * WINDOW, 600) + 60
# With an empty redemption context a token stays redeemable until its key is retired,
# so its nonce is remembered that long: rotate keys at least this often in that mode.
EMPTY_CONTEXT_REPLAY_TTL = 90 * 86400.0
_OWN_KEYS = frozenset({"issuer_name", "token_keys", "origin_info", "redemption_context"})


def origin_name(url: str) -> str:
    """The RFC 9577 §2.1.1.1 server name of an origin URL: host, plus port unless 443."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(f"no host in {url!r}")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return host if port in (None, 443) else f"{host}:{port}"


def _server_name(value: object, key: str) -> str:
    if not isinstance(value, str) or not value or not value.isascii():
        raise ValueError(f"{key}: expected a server name such as issuer.example or host:8443")
    if any(c in value for c in ",@/ \t") or not value.isprintable():
        raise ValueError(f"{key}: {value!r} is not a server name (host[:port], no userinfo)")
    return value.lower()


@dataclass(frozen=True, slots=True)
class PrivacyPassConfig(VerifierConfig):
    """One privacy-pass verifier's settings (the shared ones and its own), checked once at load."""

    issuer_name: str
    keys: tuple[tuple[int, IssuerPublicKey], ...]  # (threshold, key), thresholds ascending
    origin_info: tuple[str, ...]
    per_challenge: bool


def _token_keys(value: object, base_dir: str) -> tuple[tuple[int, IssuerPublicKey], ...]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError('token_keys: expected a mapping like {"18": keys/pp-18.spki.pem}')
    found: list[tuple[int, IssuerPublicKey]] = []
    for raw_threshold, paths in value.items():
        text = str(raw_threshold)
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 99:
            raise ValueError(f"token_keys: {raw_threshold!r} is not an age from 1 to 99")
        # A list allows rotation: old and new key of one threshold side by side.
        for path in paths if isinstance(paths, list | tuple) else [paths]:
            if not isinstance(path, str) or not path:
                raise ValueError(f"token_keys.{text}: expected a file path (or a list of them)")
            file = Path(base_dir, path)
            try:
                key = load_public_key(file)
            except OSError as exc:
                raise ValueError(f"token_keys.{text}: cannot read {str(file)!r}: {exc}") from None
            except ValueError as exc:
                raise ValueError(f"token_keys.{text}: {exc}") from None
            found.append((int(text), key))
    ids = [key.token_key_id for _, key in found]
    if len(set(ids)) != len(ids):
        # One key under two thresholds would make a token prove an age it was never checked for.
        raise ValueError("token_keys: the same key is configured twice")
    return tuple(sorted(found, key=lambda item: item[0]))


def parse_config(
    name: str, config: Mapping[str, Any], services: VerifierServices
) -> PrivacyPassConfig:
    """Check every key of one verifier's config; ``ValueError`` names the key."""
    # The provider always answers with a POST: the challenge rides in the form.
    shared = VerifierConfig.parse(
        name, config, kind="privacy-pass", own_keys=_OWN_KEYS, response_modes=("form_post",)
    )
    if "issuer_name" not in config:
        raise ValueError("issuer_name: is required")
    issuer_name = _server_name(config["issuer_name"], "issuer_name")
    raw_origins = config.get("origin_info")
    if raw_origins is None:
        if not services.audience:
            raise ValueError("origin_info: required when the gateway has no public_origin")
        origins: tuple[str, ...] = (origin_name(services.audience),)
    else:
        if not isinstance(raw_origins, list | tuple) or not raw_origins:
            raise ValueError("origin_info: expected a non-empty list of origin names")
        origins = tuple(_server_name(o, "origin_info") for o in raw_origins)
        if services.audience and origin_name(services.audience) not in origins:
            # RFC 9577 §2.1.1: a non-empty origin_info must name the origin itself.
            raise ValueError("origin_info: must include this gateway's own origin name")
    context = config.get("redemption_context", "per-challenge")
    if context not in REDEMPTION_CONTEXTS:
        raise ValueError(f"redemption_context: expected one of {', '.join(REDEMPTION_CONTEXTS)}")
    return PrivacyPassConfig(
        **shared.shared(),
        issuer_name=issuer_name,
        keys=_token_keys(config.get("token_keys"), services.base_dir),
        origin_info=origins,
        per_challenge=context == "per-challenge",
    )


class PrivacyPassVerifier(Verifier):
    """Redeems ``Authorization: PrivateToken token=…`` (and browser ``age_token`` posts).

    Constructed by the gateway as ``PrivacyPassVerifier(name, config, services)``;
    a bad config raises ``ValueError`` naming the key.
    """

    kind = "privacy-pass"
    auth_scheme = AUTH_SCHEME

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.config = parse_config(name, config, services)
        super().__init__(name, self.config)
        self._challenges = ChallengeMaker(
            services.secret,
            label=f"{name}\0{self.config.issuer_name}",
            issuer_name=self.config.issuer_name,
            origin_info=self.config.origin_info,
            per_challenge=self.config.per_challenge,
        )
        self._by_id = {key.token_key_id: (n, key) for n, key in self.config.keys}

    @property
    def challenges(self) -> ChallengeMaker:
        """The challenge builder (the reference service and tests use it)."""
        return self._challenges

    def api_challenge(self, min_age: int, now: float | None = None) -> list[str]:
        """One ``PrivateToken`` challenge per key whose threshold is at least ``min_age``.

        Lowest threshold first: a client taking the first one it can satisfy
        proves no more than the route needs.
        """
        when = time.time() if now is None else now
        challenge = b64url_encode(self._challenges.for_api(when).serialize())
        return [
            f"{AUTH_SCHEME} "
            + format_auth_params({"challenge": challenge, "token-key": b64url_encode(key.spki)})
            for threshold, key in self.config.keys
            if threshold >= min_age
        ]

    def start(self, ctx: ChallengeContext) -> Challenge:
        """The browser redirect (SPEC §6 parameters plus the challenge for this visitor)."""
        url = self.config.authorize_url
        if url is None:
            return Challenge()
        keys = [key for n, key in self.config.keys if n >= ctx.min_age]
        if not keys:
            return Challenge()  # no key proves this route's threshold: no button
        query = urlencode(
            {
                "client_id": ctx.public_origin,
                "redirect_uri": ctx.redirect_uri,
                "response_mode": "form_post",
                "nonce": ctx.nonce,
                "state": ctx.state,
                "min_age": str(ctx.min_age),
                "challenge": b64url_encode(self._challenges.for_browser(ctx.nonce).serialize()),
                "token_key": b64url_encode(keys[0].spki),
            }
        )
        return Challenge(redirect_url=f"{url}{'&' if '?' in url else '?'}{query}")

    def _token_bytes(self, presentation: Presentation) -> bytes:
        credential = presentation.credential.strip()
        try:
            if presentation.channel == "authorization":
                params = parse_auth_params(credential)
                if "token" not in params:
                    raise StructError("no token auth-param")
                credential = params["token"]
            return b64url_decode(credential)
        except StructError as exc:
            raise VerificationError("malformed", f"not a PrivateToken credential: {exc}") from None

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Check one token; raise ``VerificationError`` at the first failure."""
        raw = self._token_bytes(presentation)
        try:
            if Token.token_type_of(raw) != TOKEN_TYPE_BLIND_RSA:
                raise VerificationError("bad_type", "only token type 2 (blind RSA) is accepted")
            token = Token.parse(raw)
        except StructError as exc:
            raise VerificationError("malformed", f"not a type 2 token: {exc}") from None
        found = self._by_id.get(token.token_key_id)
        if found is None:
            raise VerificationError("unknown_key", "the token was signed by a key we do not trust")
        threshold, key = found
        digests = self._challenges.accepted_digests(ctx.now, ctx.expected_nonce)
        if not any(hmac.compare_digest(token.challenge_digest, d) for d in digests):
            raise VerificationError(
                "wrong_challenge", "the token answers another challenge, origin or issuer"
            )
        if not blindrsa.verify_with_key(
            key.public_key, token.authenticator_input, token.authenticator
        ):
            raise VerificationError("bad_signature", "the token authenticator does not verify")
        # Store failures (reason store_unavailable) propagate: the gateway fails closed.
        nonce = b64url_encode(token.nonce)
        spent = ctx.now + (_REPLAY_TTL if self.config.per_challenge else EMPTY_CONTEXT_REPLAY_TTL)
        if not await ctx.replay.consume("pp:" + self.config.issuer_name, nonce, spent):
            raise VerificationError("replayed", "this token was already redeemed")
        ttl = self.session_ttl
        return AgeAssertion(
            age_over=frozenset({threshold}),
            age_under=frozenset(),
            assurance=self.config.assurance_level,
            method="privacy_pass",
            verifier=self.name,
            expires_at=datetime.fromtimestamp(ctx.now + ttl, tz=UTC),
        )
