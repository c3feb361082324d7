"""The Privacy Pass client: answer a ``PrivateToken`` challenge with a token from an issuer.

::

    attestation = await attest("http://localhost:8081", "1990-01-01")
    credential = await fetch_token(www_authenticate, "http://localhost:8081", attestation)
    # -> 'PrivateToken token="…"' for the Authorization header

The client checks what RFC 9577 §2.1.2 asks (type, structure, origin in
``origin_info``) and one thing more: the challenge's ``token-key`` must be
listed in the issuer's directory, so an origin cannot tag one visitor with a
key of its own making.  The attestation (``Authorization: Attestation …`` on
the token request) is how the reference issuer knows the attester checked
the age; see docs/privacy-pass.md.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp

from verifiers.privacy_pass import blindrsa
from verifiers.privacy_pass.keys import IssuerPublicKey
from verifiers.privacy_pass.structs import (
    TOKEN_TYPE_BLIND_RSA,
    StructError,
    Token,
    TokenChallenge,
    TokenRequest,
    TokenResponse,
    b64url_decode,
    b64url_encode,
    format_auth_params,
    parse_challenges,
)

__all__ = [
    "DIRECTORY_PATH",
    "ClientError",
    "OfferedChallenge",
    "PendingToken",
    "Redemption",
    "attest",
    "authorization_value",
    "begin_issuance",
    "fetch_token",
    "finish_issuance",
    "parse_private_token_challenges",
    "redeem",
]

DIRECTORY_PATH = "/.well-known/private-token-issuer-directory"
REQUEST_TYPE = "application/private-token-request"
RESPONSE_TYPE = "application/private-token-response"
_TIMEOUT = aiohttp.ClientTimeout(total=15)


class ClientError(Exception):
    """The token could not be obtained; the message says why."""


@dataclass(frozen=True, slots=True)
class OfferedChallenge:
    """One ``PrivateToken`` challenge of a ``WWW-Authenticate`` header, parsed."""

    challenge: TokenChallenge
    raw: bytes  # the serialized TokenChallenge, as received
    token_key: IssuerPublicKey


@dataclass(frozen=True, slots=True)
class PendingToken:
    """What the client keeps between TokenRequest and TokenResponse."""

    key: IssuerPublicKey
    token_input: bytes
    nonce: bytes
    challenge_digest: bytes
    inv: int


def parse_private_token_challenges(headers: str | Iterable[str]) -> list[OfferedChallenge]:
    """Every usable type 2 ``PrivateToken`` challenge in one or more ``WWW-Authenticate`` values.

    Challenges of other schemes, other token types, or that do not parse are
    skipped, as RFC 9577 §2.1.2 says clients must.
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    offered: list[OfferedChallenge] = []
    for value in values:
        try:
            challenges = parse_challenges(value)
        except StructError:
            continue
        for item in challenges:
            if item.scheme.lower() != "privatetoken":
                continue
            try:
                raw = b64url_decode(item.params.get("challenge", ""))
                challenge = TokenChallenge.parse(raw)
                key = IssuerPublicKey.from_spki(b64url_decode(item.params.get("token-key", "")))
            except StructError:
                continue
            if challenge.token_type == TOKEN_TYPE_BLIND_RSA:
                offered.append(OfferedChallenge(challenge, raw, key))
    return offered


def begin_issuance(
    challenge: bytes, key: IssuerPublicKey, *, nonce: bytes | None = None
) -> tuple[TokenRequest, PendingToken]:
    """RFC 9578 §6.1: the TokenRequest for ``challenge`` and what to keep for finishing."""
    nonce = secrets.token_bytes(32) if nonce is None else nonce
    digest = hashlib.sha256(challenge).digest()
    token_input = TOKEN_TYPE_BLIND_RSA.to_bytes(2, "big") + nonce + digest + key.token_key_id
    blinded, inv = blindrsa.blind(key.n, key.e, token_input)
    request = TokenRequest(TOKEN_TYPE_BLIND_RSA, key.truncated_id, blinded)
    return request, PendingToken(key, token_input, nonce, digest, inv)


def finish_issuance(pending: PendingToken, response: TokenResponse) -> Token:
    """RFC 9578 §6.3: unblind and verify; :class:`ClientError` if the issuer misbehaved."""
    key = pending.key
    try:
        authenticator = blindrsa.finalize(
            key.n, key.e, pending.token_input, response.blind_sig, pending.inv
        )
    except blindrsa.BlindingError as exc:
        raise ClientError(f"the issuer's response does not finalize: {exc}") from None
    return Token(
        TOKEN_TYPE_BLIND_RSA,
        pending.nonce,
        pending.challenge_digest,
        key.token_key_id,
        authenticator,
    )


def authorization_value(token: Token) -> str:
    """The ``Authorization`` header value that redeems ``token``."""
    return "PrivateToken " + format_auth_params({"token": b64url_encode(token.serialize())})


async def _json(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        raise ClientError(f"{response.url}: the answer is not JSON") from None


async def attest(
    issuer_url: str, birth_date: str, *, http: aiohttp.ClientSession | None = None
) -> str:
    """Pass the reference attester's (simulated) age check; returns the attestation credential."""
    async with _session(http) as session:
        url = urljoin(issuer_url, "/attest")
        async with session.post(url, json={"birth_date": birth_date}) as response:
            body = await _json(response)
            if response.status != 200 or not isinstance(body, dict):
                reason = body.get("error") if isinstance(body, dict) else None
                raise ClientError(f"the attester refused ({response.status}, {reason})")
            attestation = body.get("attestation")
            if not isinstance(attestation, str):
                raise ClientError("the attester answered without an attestation")
            return attestation


class _session:
    """Use the caller's session, or a short-lived one of our own."""

    def __init__(self, http: aiohttp.ClientSession | None) -> None:
        self._given = http
        self._own: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> aiohttp.ClientSession:
        if self._given is not None:
            return self._given
        self._own = aiohttp.ClientSession(timeout=_TIMEOUT)
        return self._own

    async def __aexit__(self, *exc: object) -> None:
        if self._own is not None:
            await self._own.close()


async def _directory(session: aiohttp.ClientSession, issuer_url: str) -> tuple[str, set[bytes]]:
    url = urljoin(issuer_url, DIRECTORY_PATH)
    async with session.get(url) as response:
        if response.status != 200:
            raise ClientError(f"no issuer directory at {url} ({response.status})")
        body = await _json(response)
    if not isinstance(body, dict) or not isinstance(body.get("issuer-request-uri"), str):
        raise ClientError("the issuer directory has no issuer-request-uri")
    keys: set[bytes] = set()
    for entry in body.get("token-keys") or []:
        if isinstance(entry, dict) and entry.get("token-type") == TOKEN_TYPE_BLIND_RSA:
            try:
                keys.add(IssuerPublicKey.from_spki(b64url_decode(str(entry["token-key"]))).spki)
            except (StructError, KeyError):
                continue
    return urljoin(url, body["issuer-request-uri"]), keys


async def fetch_token(
    challenge_header: str | Iterable[str],
    issuer_url: str,
    attestation: str,
    *,
    origin: str | None = None,
    http: aiohttp.ClientSession | None = None,
) -> str:
    """Obtain a token for the first challenge the issuer will sign; returns the credential.

    ``challenge_header`` is the ``WWW-Authenticate`` value (or values) of the
    401; ``origin`` (the protected site's server name, e.g. ``shop.example``)
    is checked against each challenge's ``origin_info`` when given.
    """
    offered = parse_private_token_challenges(challenge_header)
    if origin is not None:
        offered = [
            o for o in offered
            if not o.challenge.origin_info
            or origin.lower() in (name.lower() for name in o.challenge.origin_info)
        ]  # fmt: skip
    if not offered:
        raise ClientError("no usable PrivateToken challenge (type 2) for this origin")
    refusals: list[str] = []
    async with _session(http) as session:
        request_url, listed = await _directory(session, issuer_url)
        for item in offered:
            if not any(hmac.compare_digest(item.token_key.spki, key) for key in listed):
                refusals.append("token-key not in the issuer directory")
                continue
            request, pending = begin_issuance(item.raw, item.token_key)
            headers = {
                "Content-Type": REQUEST_TYPE,
                "Accept": RESPONSE_TYPE,
                "Authorization": f"Attestation {attestation}",
            }
            async with session.post(request_url, data=request.serialize(), headers=headers) as r:
                body = await r.read()
                if r.status != 200:
                    # 403: the attestation does not cover this key's threshold; try the next.
                    refusals.append(f"issuer answered {r.status}")
                    continue
            try:
                response = TokenResponse.parse(body)
            except StructError as exc:
                raise ClientError(f"bad TokenResponse: {exc}") from None
            return authorization_value(finish_issuance(pending, response))
    raise ClientError("no challenge could be answered: " + "; ".join(refusals))


@dataclass(frozen=True, slots=True)
class Redemption:
    """What :func:`redeem` saw: the status with the token and whether a session was set."""

    status: int
    challenged: bool
    session_cookie: bool


async def redeem(url: str, issuer_url: str, birth_date: str) -> Redemption:
    """The whole flow against a protected URL: 401 -> attest -> token -> redeem.

    Used by ``agegate pp fetch``.  Raises :class:`ClientError` when a step fails.
    """
    from verifiers.privacy_pass.verifier import origin_name

    headers = {"Accept": "application/json"}
    async with aiohttp.ClientSession(timeout=_TIMEOUT) as session:
        async with session.get(url, headers=headers, allow_redirects=False) as first:
            if first.status != 401:
                return Redemption(first.status, False, False)
            challenges = first.headers.getall("WWW-Authenticate", [])
        attestation = await attest(issuer_url, birth_date, http=session)
        credential = await fetch_token(
            challenges, issuer_url, attestation, origin=origin_name(url), http=session
        )
        headers["Authorization"] = credential
        async with session.get(url, headers=headers, allow_redirects=False) as answer:
            cookies = answer.headers.getall("Set-Cookie", [])
            has_session = any(c.startswith("__Host-agegate=") for c in cookies)
            return Redemption(answer.status, True, has_session)
