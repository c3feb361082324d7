"""The reference Privacy Pass attester and issuer (RFC 9578 type 2), development only.

Endpoints (mounted by :func:`verifiers.reference.app.build_reference_app` when
issuer keys are configured)::

    GET  /.well-known/private-token-issuer-directory   RFC 9578 §4 directory
    POST /attest          {"birth_date": "YYYY-MM-DD"} -> {"attestation": "…", "age_over": N}
    POST /token-request   TokenRequest -> TokenResponse; needs ``Authorization: Attestation <cred>``
    GET  /pp/authorize    browser fallback: date-of-birth page for one gateway challenge
    POST /pp/authorize    … which then acts as client and issuer and form_posts ``age_token``

Roles: the *attester* checks the age (here: believes a date of birth) and
hands out an attestation credential that says only "over N", valid 5
minutes, HMAC-signed with a secret of this process.  The *issuer* signs a
blinded TokenRequest for a key whose threshold the attestation covers; it
sees one byte of the key id and a blinded message, never the origin.
Nothing here logs a request body, a header, a query string or a client
address: the app's access log has method, path, status and duration only.

The browser fallback is for browsers without native Privacy Pass.  There
this service is client, attester and issuer at once, so it sees the origin
(the challenge's ``origin_info`` and the ``client_id``): that mode is no more
private than an age token, and docs/privacy-pass.md says so.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import html
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from verifiers import b64url
from verifiers.privacy_pass import blindrsa
from verifiers.privacy_pass.client import begin_issuance, finish_issuance
from verifiers.privacy_pass.keys import IssuerPublicKey, spki_pem
from verifiers.privacy_pass.structs import (
    TOKEN_TYPE_BLIND_RSA,
    StructError,
    TokenChallenge,
    TokenRequest,
    TokenResponse,
    b64url_decode,
    b64url_encode,
)
from verifiers.privacy_pass.verifier import origin_name
from verifiers.reference.pages import Pages, Raw, ages_phrase, origin_of, post_back_intro
from verifiers.reference.params import (
    AuthorizeRequest,
    RequestRefused,
    age_over,
    parse_authorize_request,
    parse_birth_date,
)

__all__ = [
    "ATTESTATION_TTL",
    "DEFAULT_THRESHOLDS",
    "Attestations",
    "IssuerKey",
    "PrivacyPassIssuer",
    "generate_issuer_key",
    "load_issuer_keys",
]

ATTESTATION_TTL = 300.0
DEFAULT_THRESHOLDS = (18, 21)
_KEY_FILE = re.compile(r"^pp-(\d{1,2})(?:-[A-Za-z0-9_.]+)?\.key\.pem$")
_MAX_BODY = 1024


@dataclass(frozen=True)
class IssuerKey:
    """One issuer key pair and the age threshold it stands for."""

    threshold: int
    private: rsa.RSAPrivateKey
    public: IssuerPublicKey
    not_before: int | None = None


def generate_issuer_key(threshold: int, *, unlike: Iterable[IssuerKey] = ()) -> IssuerKey:
    """A fresh 2048-bit key (e = 65537) for ``threshold``.

    Its truncated token key id differs from every key's in ``unlike``: an
    issuer finds the key a TokenRequest names by that one byte (RFC 9578
    §6.5), so keys served together must not share it.
    """
    taken = {key.public.truncated_id for key in unlike}
    while True:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = private.public_key().public_numbers()
        public = IssuerPublicKey.from_numbers(numbers.n, numbers.e)
        if public.truncated_id not in taken:
            return IssuerKey(threshold, private, public)


def _write(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def load_issuer_keys(
    directory: Path, thresholds: Sequence[int] = DEFAULT_THRESHOLDS
) -> list[IssuerKey]:
    """Every ``pp-<N>[-<tag>].key.pem`` in ``directory``; a new key for each missing threshold.

    A new key is written as ``pp-<N>.key.pem`` (mode 0600) with its public
    half ``pp-<N>.spki.pem`` (RFC 9578 SPKI, for the gateway's ``token_keys``).
    Newest file first per threshold, so after a rotation the directory lists
    the new key first (RFC 9578 §4: clients use the first usable key).
    """
    directory.mkdir(parents=True, exist_ok=True)
    keys: list[tuple[float, IssuerKey]] = []
    named: dict[int, Path] = {}  # truncated token key id -> the file holding that key
    for path in sorted(directory.iterdir()):
        match = _KEY_FILE.match(path.name)
        if not match:
            continue
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(private, rsa.RSAPrivateKey) or private.key_size != 2048:
            raise ValueError(f"{path}: expected a 2048-bit RSA private key")
        numbers = private.public_key().public_numbers()
        public = IssuerPublicKey.from_numbers(numbers.n, numbers.e)
        # A TokenRequest names its key by one byte (RFC 9578 §6.5): two keys sharing
        # it could not be told apart, and the wrong one would sign.
        same = named.get(public.truncated_id)
        if same is not None:
            raise ValueError(
                f"{path}: its truncated token key id ({public.truncated_id}) is also"
                f" {same.name}'s; replace one of the two keys"
            )
        named[public.truncated_id] = path
        keys.append((path.stat().st_mtime, IssuerKey(int(match.group(1)), private, public)))
    have = {key.threshold for _, key in keys}
    for threshold in thresholds:
        if threshold in have:
            continue
        key = generate_issuer_key(threshold, unlike=[k for _, k in keys])
        pem = key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(directory / f"pp-{threshold}.key.pem", pem, 0o600)
        _write(directory / f"pp-{threshold}.spki.pem", spki_pem(key.public.spki), 0o644)
        keys.append((float("inf"), key))
    keys.sort(key=lambda item: (item[1].threshold, -item[0]))
    return [key for _, key in keys]


def _b64(data: bytes) -> str:
    return b64url.b64url_encode(data)


def _unb64(text: str) -> bytes:
    return b64url.b64url_decode(text, canonical=False)


class _Sealer:
    """``base64url(json).base64url(HMAC-SHA256)`` with an expiry, under one purpose label."""

    def __init__(self, secret: bytes, purpose: bytes) -> None:
        self._key = hmac.new(secret, b"agegate-reference-pp\0" + purpose, hashlib.sha256).digest()

    def seal(self, body: Mapping[str, Any], expires: float) -> str:
        payload = json.dumps({**body, "exp": int(expires)}, separators=(",", ":"), sort_keys=True)
        raw = payload.encode()
        return f"{_b64(raw)}.{_b64(hmac.new(self._key, raw, hashlib.sha256).digest())}"

    def open(self, sealed: str, now: float) -> dict[str, Any] | None:
        encoded, _, mac = sealed.partition(".")
        if len(sealed) > 8192:
            return None
        try:
            raw, given = _unb64(encoded), _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, hmac.new(self._key, raw, hashlib.sha256).digest()):
            return None
        body = json.loads(raw)
        if not isinstance(body, dict) or not isinstance(body.get("exp"), int) or body["exp"] < now:
            return None
        return body


class Attestations:
    """Attestation credentials: "this client was checked to be over N", for 5 minutes."""

    def __init__(self, secret: bytes, ttl: float = ATTESTATION_TTL) -> None:
        self._sealer = _Sealer(secret, b"attestation")
        self._ttl = ttl

    def issue(self, threshold: int, now: float) -> str:
        return self._sealer.seal({"age_over": threshold}, now + self._ttl)

    def check(self, credential: str, now: float) -> int | None:
        """The attested threshold, or None for a forged, altered or expired credential."""
        body = self._sealer.open(credential, now)
        value = body.get("age_over") if body else None
        return value if isinstance(value, int) else None


def _problem(status: int, error: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error}, status_code=status, headers={"Cache-Control": "no-store", **headers}
    )


class PrivacyPassIssuer:
    """The attester, issuer and browser-fallback endpoints over one set of keys."""

    def __init__(
        self,
        keys: Sequence[IssuerKey],
        *,
        issuer_url: str,
        clients: Mapping[str, tuple[str, ...]],
        clock: Callable[[], float],
        pages: Pages,
    ) -> None:
        if not keys:
            raise ValueError("the Privacy Pass issuer needs at least one key")
        self.keys = tuple(keys)
        self.issuer_name = origin_name(issuer_url)
        self.clients = clients
        self.clock = clock
        self.pages = pages
        secret = secrets.token_bytes(32)
        self.attestations = Attestations(secret)
        self._forms = _Sealer(secret, b"pp-form")

    def routes(self) -> list[Route]:
        return [
            Route("/.well-known/private-token-issuer-directory", self.directory, methods=["GET"]),
            Route("/attest", self.attest, methods=["POST"]),
            Route("/token-request", self.token_request, methods=["POST"]),
            Route("/pp/authorize", self.authorize_page, methods=["GET"]),
            Route("/pp/authorize", self.authorize_submit, methods=["POST"]),
        ]

    def _today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    # -- issuer -----------------------------------------------------------------

    async def directory(self, request: Request) -> Response:
        entries: list[dict[str, Any]] = []
        for key in self.keys:
            entry: dict[str, Any] = {"token-type": TOKEN_TYPE_BLIND_RSA}
            entry["token-key"] = b64url_encode(key.public.spki)
            if key.not_before is not None:
                entry["not-before"] = key.not_before
            entries.append(entry)
        return JSONResponse(
            {"issuer-request-uri": "/token-request", "token-keys": entries},
            media_type="application/private-token-issuer-directory",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def token_request(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != (
            "application/private-token-request"
        ):
            return _problem(415, "unsupported_media_type")
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        attested = (
            self.attestations.check(credential.strip(), self.clock())
            if scheme.lower() == "attestation"
            else None
        )
        if attested is None:
            return _problem(401, "attestation_required", **{"WWW-Authenticate": "Attestation"})
        body = await request.body()
        try:
            if len(body) > _MAX_BODY:
                raise StructError("too long")
            token_request = TokenRequest.parse(body)
        except StructError:
            return _problem(422, "malformed_token_request")  # RFC 9578 §6.2
        candidates = [
            k for k in self.keys if k.public.truncated_id == token_request.truncated_token_key_id
        ]
        if not candidates:
            return _problem(422, "unknown_token_key")
        covered = [k for k in candidates if k.threshold <= attested]
        if not covered:
            return _problem(403, "attestation_does_not_cover_key")
        try:
            blind_sig = blindrsa.blind_sign(covered[0].private, token_request.blinded_msg)
        except blindrsa.BlindingError:
            return _problem(422, "malformed_token_request")
        return Response(
            TokenResponse(blind_sig).serialize(),
            media_type="application/private-token-response",
            headers={"Cache-Control": "no-store"},
        )

    # -- attester ---------------------------------------------------------------

    def _attested_threshold(self, born: date) -> int | None:
        answers = age_over(born, self._today(), sorted({k.threshold for k in self.keys}))
        passed = [n for n, ok in answers.items() if ok]
        return max(passed) if passed else None

    async def attest(self, request: Request) -> Response:
        body = await request.body()
        try:
            data = json.loads(body) if len(body) <= _MAX_BODY else None
        except (ValueError, UnicodeDecodeError):
            data = None
        text = data.get("birth_date") if isinstance(data, dict) else None
        try:
            born = parse_birth_date(text if isinstance(text, str) else None, self._today())
        except ValueError as exc:
            return JSONResponse({"error": "invalid_birth_date", "detail": str(exc)}, 400)
        threshold = self._attested_threshold(born)
        del born, text, data, body  # the date of birth goes no further
        if threshold is None:
            return _problem(403, "under_age")
        return JSONResponse(
            {
                "attestation": self.attestations.issue(threshold, self.clock()),
                "age_over": threshold,
                "expires_in": int(ATTESTATION_TTL),
            },
            headers={"Cache-Control": "no-store"},
        )

    # -- browser fallback: client + attester + issuer in one ----------------------

    def _key_for(self, min_age: int, token_key: str | None) -> IssuerKey:
        usable = [k for k in self.keys if k.threshold >= min_age]
        if token_key:
            try:
                wanted = b64url_decode(token_key)
            except StructError:
                raise RequestRefused("The token_key is not base64url.") from None
            usable = [k for k in usable if hmac.compare_digest(k.public.spki, wanted)]
        if not usable:
            raise RequestRefused("This issuer has no key for the age this site asks about.")
        return min(usable, key=lambda k: k.threshold)

    def _challenge_for(self, auth: AuthorizeRequest, text: str | None) -> bytes:
        try:
            raw = b64url_decode(text or "")
            challenge = TokenChallenge.parse(raw)
        except StructError:
            raise RequestRefused("The site sent no valid Privacy Pass challenge.") from None
        if (
            challenge.token_type != TOKEN_TYPE_BLIND_RSA
            or challenge.issuer_name != self.issuer_name
        ):
            raise RequestRefused("The challenge is not for this issuer.")
        site = origin_name(auth.client_id)
        if challenge.origin_info and site not in (o.lower() for o in challenge.origin_info):
            # A registered site must not obtain tokens for another site's challenges.
            raise RequestRefused("The challenge is for another site.")
        return raw

    async def authorize_page(self, request: Request) -> Response:
        params = {key: request.query_params.getlist(key) for key in request.query_params}
        try:
            auth = parse_authorize_request(params, self.clients)
            raw = self._challenge_for(auth, request.query_params.get("challenge"))
            key = self._key_for(auth.min_age, request.query_params.get("token_key"))
        except RequestRefused as exc:
            return self.pages.refused(str(exc))
        sealed = self._forms.seal(
            {
                "auth": [auth.client_id, auth.redirect_uri, auth.nonce, auth.state, auth.min_age],
                "challenge": b64url_encode(raw),
                "key": key.public.token_key_id.hex(),
            },
            self.clock() + 600,
        )
        return self._form(auth, key.threshold, sealed)

    def _form(
        self, auth: AuthorizeRequest, threshold: int, sealed: str, error: str = ""
    ) -> Response:
        return self.pages.render(
            "authorize",
            title="Confirm your age",
            status_code=400 if error else 200,
            form_action=(origin_of(auth.redirect_uri),),
            action="/pp/authorize",
            client=auth.client_id,
            min_age=auth.min_age,
            thresholds=ages_phrase([threshold]),
            sealed=sealed,
            today=self._today().isoformat(),
            error=Raw(
                f'<p class="error" id="birth_date_error" role="alert">{error}</p>' if error else ""
            ),
            error_ref=" birth_date_error" if error else "",
            invalid=Raw(' aria-invalid="true"' if error else ""),
        )

    async def authorize_submit(self, request: Request) -> Response:
        async with request.form(max_files=0, max_fields=8) as form:
            sealed, action, birth_text = (form.get(k) for k in ("request", "action", "birth_date"))
            if (
                not isinstance(sealed, str)
                or (body := self._forms.open(sealed, self.clock())) is None
            ):
                return self.pages.refused("The form was altered or has expired; start again.")
            client_id, redirect_uri, nonce, state, min_age = body["auth"]
            auth = AuthorizeRequest(client_id, redirect_uri, "form_post", nonce, state, min_age)
            if redirect_uri not in self.clients.get(client_id, ()):
                return self.pages.refused("The redirect_uri is not registered for this site.")
            key = next(k for k in self.keys if k.public.token_key_id.hex() == body["key"])
            if action == "cancel":
                return self._post_back(auth, {"error": "access_denied"}, None, key.threshold)
            try:
                born = parse_birth_date(
                    birth_text if isinstance(birth_text, str) else None, self._today()
                )
            except ValueError as exc:
                return self._form(auth, key.threshold, sealed, html.escape(str(exc)))
            over = age_over(born, self._today(), [key.threshold])[key.threshold]
            del born, birth_text
        if not over:
            # A Privacy Pass token can only prove "over"; an under-age visitor gets no token,
            # and "under_age" (not "access_denied", which is Cancel) so the site can say why.
            return self._post_back(auth, {"error": "under_age"}, False, key.threshold)
        token_request, pending = begin_issuance(b64url_decode(body["challenge"]), key.public)
        response = TokenResponse(blindrsa.blind_sign(key.private, token_request.blinded_msg))
        token = finish_issuance(pending, response)
        token_text = b64url_encode(token.serialize())
        return self._post_back(auth, {"age_token": token_text}, True, key.threshold)

    def _post_back(
        self, auth: AuthorizeRequest, result: dict[str, str], over: bool | None, threshold: int
    ) -> Response:
        [(name, value)] = result.items()
        summary = (
            "<li>you cancelled the age check</li>"
            if over is None
            else f"<li>over {threshold}: {'yes' if over else 'no (no token is sent)'}</li>"
        )
        return self.pages.render(
            "form_post",
            title="Return to the site",
            form_action=(origin_of(auth.redirect_uri),),
            client=auth.client_id,
            intro=post_back_intro(
                auth.client_id, "cancelled" if over is None else "token" if over else "no_token"
            ),
            summary=Raw(summary),
            redirect_uri=auth.redirect_uri,
            field=name,
            value=value,
            state=auth.state,
        )
