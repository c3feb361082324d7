"""Talking to an OpenID provider: discovery, the token request, userinfo, the id_token.

Every network or protocol failure becomes a :class:`VerificationError` with a
stable reason: ``provider_unavailable`` (cannot reach the provider, or it
answered 5xx / garbage), ``code_rejected`` (the token endpoint refused the
code: expired, used, or the PKCE verifier does not match), ``provider_error``
(any other refusal).  Bodies are read up to a bound and never logged; an
error response's ``error_description`` is not even read, since a provider may
echo request values into it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from authlib.oidc.core import CodeIDToken
from joserfc.errors import ClaimError, ExpiredTokenError, MissingClaimError

from verifiers.base import VerificationError
from verifiers.config import provider_url
from verifiers.jwks import JwksCache
from verifiers.oidc.config import OidcConfig
from verifiers.token_profile import (
    SKEW,
    decode_payload,
    parse_compact,
    signature_algorithms,
    verify_signature,
)

__all__ = [
    "MAX_BODY",
    "Discovery",
    "fetch_discovery",
    "fetch_userinfo",
    "redeem_code",
    "validate_id_token",
]

MAX_BODY = 262144
_DISCOVERY_PATH = "/.well-known/openid-configuration"
# Which failed id_token claim becomes which reason code (the claim is named, never its value).
_CLAIM_REASONS = {
    "iss": "wrong_issuer",
    "aud": "wrong_audience",
    "azp": "wrong_audience",
    "nonce": "wrong_nonce",
    "nbf": "not_yet_valid",
    "iat": "issued_in_future",
}


@dataclass(frozen=True, slots=True)
class Discovery:
    """What agegate reads from a provider's ``openid-configuration``, checked once."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    form_post: bool  # the provider lists response_mode form_post
    iss_parameter: bool  # RFC 9207: the authorization response carries ``iss``
    id_token_algorithms: frozenset[str] | None  # None: the provider did not say
    fetched_at: float


async def _get_json(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: float,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """Status and parsed JSON body (None if not JSON); ``provider_unavailable`` on I/O failure."""
    try:
        async with http.request(
            method,
            url,
            data=dict(data) if data is not None else None,
            headers={"Accept": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            body = await response.content.read(MAX_BODY + 1)
            status = response.status
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise VerificationError("provider_unavailable", "the provider cannot be reached") from error
    if len(body) > MAX_BODY:
        raise VerificationError("provider_error", "the provider's answer is too large")
    try:
        return status, json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return status, None


def _endpoint(document: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    try:
        url = provider_url(document, key)
    except ValueError:
        # Plain http to a non-loopback host, or garbage: the provider is not usable.
        raise VerificationError("provider_error", f"discovery: {key} is not acceptable") from None
    if url is None and required:
        raise VerificationError("provider_error", f"discovery: {key} is missing")
    return url


async def fetch_discovery(
    http: aiohttp.ClientSession, config: OidcConfig, now: float | None = None
) -> Discovery:
    """Fetch and check ``<issuer>/.well-known/openid-configuration`` (OIDC Discovery §4)."""
    url = config.issuer.rstrip("/") + _DISCOVERY_PATH
    status, document = await _get_json(http, "GET", url, timeout=config.timeout)
    if status >= 500:
        raise VerificationError("provider_unavailable", f"discovery answered {status}")
    if status != 200 or not isinstance(document, Mapping):
        raise VerificationError("provider_error", "discovery is not a JSON object")
    if document.get("issuer") != config.issuer:
        # §4.3: a document naming another issuer could hand us someone else's keys.
        raise VerificationError("wrong_issuer", "discovery names another issuer")
    pkce = document.get("code_challenge_methods_supported")
    if isinstance(pkce, list) and "S256" not in pkce:
        raise VerificationError("provider_error", "the provider does not support PKCE S256")
    modes = document.get("response_modes_supported")
    algs = document.get("id_token_signing_alg_values_supported")
    return Discovery(
        authorization_endpoint=str(_endpoint(document, "authorization_endpoint")),
        token_endpoint=str(_endpoint(document, "token_endpoint")),
        jwks_uri=str(_endpoint(document, "jwks_uri")),
        userinfo_endpoint=_endpoint(document, "userinfo_endpoint", required=False),
        form_post=isinstance(modes, list) and "form_post" in modes,
        iss_parameter=document.get("authorization_response_iss_parameter_supported") is True,
        id_token_algorithms=(
            frozenset(a for a in algs if isinstance(a, str)) if isinstance(algs, list) else None
        ),
        fetched_at=time.time() if now is None else now,
    )


def _client_auth(config: OidcConfig, token_endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
    """Form fields and headers that authenticate agegate at the token endpoint."""
    if config.auth_method == "client_secret_basic":
        # RFC 6749 §2.3.1: both parts form-urlencoded before base64.
        pair = f"{quote(config.client_id, safe='')}:{quote(str(config.client_secret), safe='')}"
        basic = base64.b64encode(pair.encode()).decode()
        return {}, {"Authorization": f"Basic {basic}"}
    assertion = private_key_jwt_sign(
        config.client_key,
        config.client_id,
        token_endpoint,
        alg=config.client_key_alg,
    )
    fields = {
        "client_id": config.client_id,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion.decode() if isinstance(assertion, bytes) else assertion,
    }
    return fields, {}


async def redeem_code(
    http: aiohttp.ClientSession,
    config: OidcConfig,
    discovery: Discovery,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> tuple[str, str | None]:
    """The id_token, and the access token only when userinfo is configured.

    The refresh token and everything else in the token response are dropped here.
    """
    fields, headers = _client_auth(config, discovery.token_endpoint)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
        **fields,
    }
    status, body = await _get_json(
        http,
        "POST",
        discovery.token_endpoint,
        timeout=config.timeout,
        data=form,
        headers=headers,
    )
    if status >= 500:
        raise VerificationError("provider_unavailable", f"the token endpoint answered {status}")
    if status != 200 or not isinstance(body, Mapping):
        error = body.get("error") if isinstance(body, Mapping) else None
        if error == "invalid_grant":
            raise VerificationError("code_rejected", "the provider refused the authorization code")
        raise VerificationError("provider_error", "the token request was refused")
    id_token = body.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise VerificationError("malformed", "the token response has no id_token")
    access = body.get("access_token") if config.use_userinfo else None
    return id_token, access if isinstance(access, str) and access else None


async def fetch_userinfo(
    http: aiohttp.ClientSession, config: OidcConfig, discovery: Discovery, access_token: str
) -> dict[str, Any]:
    """The userinfo claims (JSON only); the caller reads the age paths and drops the rest."""
    if discovery.userinfo_endpoint is None:
        raise VerificationError("provider_error", "the provider has no userinfo endpoint")
    status, body = await _get_json(
        http,
        "GET",
        discovery.userinfo_endpoint,
        timeout=config.timeout,
        headers={"Authorization": f"Bearer {access_token}"},
    )
    if status >= 500:
        raise VerificationError("provider_unavailable", f"userinfo answered {status}")
    if status != 200 or not isinstance(body, dict):
        raise VerificationError("provider_error", "userinfo did not answer a JSON object")
    return body


async def validate_id_token(
    id_token: str,
    *,
    config: OidcConfig,
    discovery: Discovery,
    keys: JwksCache,
    nonce: str,
    now: float,
) -> dict[str, Any]:
    """The id_token claims once signature, iss, aud, azp, exp, iat and nonce are checked.

    The signature is checked first (nothing unsigned is read), with the
    provider's key from the shared :class:`JwksCache`; the claims then go
    through Authlib's OIDC Core validation with a 30 s leeway.
    """
    parsed = parse_compact(id_token)
    alg = parsed.header.get("alg")
    allowed = set(config.algorithms)
    if discovery.id_token_algorithms is not None:
        allowed &= discovery.id_token_algorithms
    if not isinstance(alg, str) or alg not in allowed:
        raise VerificationError("alg_not_allowed", "the id_token's alg is not accepted")
    kid = parsed.header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VerificationError("unknown_kid", "the id_token names no key")
    if "crit" in parsed.header:
        raise VerificationError("malformed", "the id_token has critical header parameters")
    key = await keys.get(kid, now)
    algorithm = signature_algorithms([alg])[alg]
    if not verify_signature(parsed, algorithm, alg, key):
        raise VerificationError("bad_signature", "the id_token's signature does not verify")
    claims = decode_payload(parsed)
    for name in ("exp", "iat", "nbf"):
        # A time that is not a number is a bad claim, not "expired" or "in the future".
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise VerificationError("bad_claim", f"the id_token's {name} is not a number")
    options = {
        "iss": {"essential": True, "value": config.issuer},
        "aud": {"essential": True, "value": config.client_id},
    }
    token = CodeIDToken(
        claims, dict(parsed.header), options, {"nonce": nonce, "client_id": config.client_id}
    )
    try:
        token.validate(now=int(now), leeway=int(SKEW))
    except ExpiredTokenError as error:
        raise VerificationError("expired", "the id_token has expired") from error
    except MissingClaimError as error:
        reason = "missing_nonce" if error.claim == "nonce" else "missing_claim"
        raise VerificationError(reason, f"the id_token has no {error.claim}") from error
    except ClaimError as error:
        reason = _CLAIM_REASONS.get(error.claim, "bad_claim")
        raise VerificationError(
            reason, f"the id_token's {error.claim} is not acceptable"
        ) from error
    return claims
