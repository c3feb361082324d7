"""The reference verifier: a development stand-in for an age-verification provider.

It asks for a date of birth, believes it, and issues an ``age-token+jwt``
with the SDK, exactly as a real provider would after a real check.  It is a
consumer of the token profile like any third-party provider and does not
import the gateway.  Every page says, in a banner, that it is not a real check.

Endpoints::

    GET  /                         what this is, its issuer, JWKS and clients
    GET  /.well-known/jwks.json    the public signing key(s)
    GET  /authorize?client_id=&redirect_uri=&response_mode=&nonce=&state=&min_age=
    POST /authorize                the date-of-birth form's submit (or Cancel)

With ``pp_keys`` it is also a Privacy Pass attester and issuer (RFC 9578 type
2): see :mod:`verifiers.reference.issuer` for those endpoints.

Privacy: the date of birth is turned into threshold booleans and dropped in
the request that carried it; it is never stored or logged.  The app logs its
own access lines (method, path, status, duration: no query string, so no
nonce, and no client address); run uvicorn with ``access_log=False``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import escape
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifiers.base import AssuranceLevel
from verifiers.reference.issuer import IssuerKey, PrivacyPassIssuer
from verifiers.reference.mdoc import MdocTestIssuer
from verifiers.reference.pages import Pages, Raw, ages_phrase, origin_of, post_back_intro
from verifiers.reference.params import (
    AuthorizeRequest,
    RequestRefused,
    RequestSealer,
    age_over,
    parse_authorize_request,
    parse_birth_date,
)
from verifiers.reference.sd_jwt_issuer import ReferenceCa, ReferenceSdJwtIssuer
from verifiers.reference.web_wallet import WebWallet
from verifiers.sdk import (
    PrivateKey,
    algorithm_for,
    generate_signing_key,
    issue_age_token,
    jwks,
    public_jwk,
)

__all__ = ["ReferenceConfig", "build_reference_app"]

ACCESS_LOGGER = "verifiers.reference.access"


@dataclass(frozen=True)
class ReferenceConfig:
    """How the reference verifier runs.

    ``clients`` maps each ``client_id`` (a site's public origin) to the
    redirect URIs registered for it; any other redirect URI is refused.
    Without a ``signing_key`` a new ES256 key is generated at start.
    """

    issuer: str
    clients: Mapping[str, tuple[str, ...]]
    signing_key: PrivateKey | None = None
    token_lifetime: float = 120
    assurance_level: str = "basic"
    age_method: str | None = "self_declared"
    form_ttl: float = 600
    # Privacy Pass issuer keys (one per age threshold); none: no issuer endpoints.
    pp_keys: tuple[IssuerKey, ...] = ()
    # The test CA key of the simulated EU wallet (/wallet); None: no wallet pages.
    wallet_ca_key: PrivateKey | None = None
    # The test IACA and DS of the simulated wallet's mdocs (eu-av); None: no mdocs.
    wallet_mdoc_issuer: MdocTestIssuer | None = None
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.issuer)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query:
            raise ValueError(f"issuer must be an http(s) URL, got {self.issuer!r}")
        AssuranceLevel.parse(self.assurance_level)
        if not 1 <= self.token_lifetime <= 300:
            raise ValueError("token_lifetime must be from 1 to 300 seconds")
        for client_id, uris in self.clients.items():
            if isinstance(uris, str):
                raise ValueError(f"client {client_id!r}: give a tuple of redirect URIs")
            for uri in uris:
                uri_parts = urlsplit(uri)
                if uri_parts.scheme not in {"http", "https"} or not uri_parts.netloc:
                    raise ValueError(f"client {client_id!r}: {uri!r} is not an absolute URL")
                if uri_parts.fragment:
                    raise ValueError(f"client {client_id!r}: {uri!r} has a fragment")


class _AccessLog:
    """Minimal access lines: method, path, status, duration.  Never the query or the peer."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.logger.info("%s %s %d %.1fms", scope["method"], scope["path"], status, elapsed_ms)


class _Handlers:
    """The endpoints, sharing the config, the key and the form sealer."""

    def __init__(self, config: ReferenceConfig, key: PrivateKey) -> None:
        self.config = config
        self.key = key
        self.jwk = public_jwk(key)
        self.pages = Pages()
        self.sealer = RequestSealer(secrets.token_bytes(32), ttl=config.form_ttl)

    def _today(self) -> date:
        return datetime.fromtimestamp(self.config.clock(), UTC).date()

    async def index(self, request: Request) -> Response:
        clients = "\n".join(
            f"<li><code>{escape(client)}</code> → "
            + ", ".join(f"<code>{escape(uri)}</code>" for uri in uris)
            + "</li>"
            for client, uris in sorted(self.config.clients.items())
        )
        return self.pages.render(
            "index",
            title="About",
            issuer=self.config.issuer,
            kid=self.jwk["kid"],
            alg=self.jwk["alg"],
            lifetime=f"{self.config.token_lifetime:g}",
            assurance=self.config.assurance_level,
            clients=Raw(clients or "<li>none</li>"),
        )

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(
            jwks(self.jwk),
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    async def authorize_page(self, request: Request) -> Response:
        params = {key: request.query_params.getlist(key) for key in request.query_params}
        try:
            auth = parse_authorize_request(params, self.config.clients)
        except RequestRefused as exc:
            return self.pages.refused(str(exc))
        return self._form(auth)

    def _form(self, auth: AuthorizeRequest, error: str | None = None) -> Response:
        return self.pages.render(
            "authorize",
            title="Confirm your age",
            status_code=400 if error else 200,
            form_action=(origin_of(auth.redirect_uri),),
            action="/authorize",
            client=auth.client_id,
            min_age=auth.min_age,
            thresholds=ages_phrase(auth.thresholds),
            sealed=self.sealer.seal(auth, self.config.clock()),
            today=self._today().isoformat(),
            error=Raw(
                f'<p class="error" id="birth_date_error" role="alert">{escape(error)}</p>'
                if error
                else ""
            ),
            error_ref=" birth_date_error" if error else "",
            invalid=Raw(' aria-invalid="true"' if error else ""),
        )

    async def authorize_submit(self, request: Request) -> Response:
        async with request.form(max_files=0, max_fields=8) as form:
            sealed = form.get("request")
            action = form.get("action", "continue")
            birth_text = form.get("birth_date")
            if not isinstance(sealed, str) or not isinstance(action, str):
                return self.pages.refused("The form is incomplete; start again from the site.")
            try:
                auth = self.sealer.open(sealed, self.config.clock())
                # Re-checked so that a client removed from the config loses its open forms.
                if auth.redirect_uri not in self.config.clients.get(auth.client_id, ()):
                    raise RequestRefused("The redirect_uri is not registered for this site.")
            except RequestRefused as exc:
                return self.pages.refused(str(exc))
            if action == "cancel":
                return self._respond(auth, {"error": "access_denied"}, summary=None)
            today = self._today()
            try:
                born = parse_birth_date(birth_text if isinstance(birth_text, str) else None, today)
            except ValueError as exc:
                return self._form(auth, error=str(exc))
            answers = age_over(born, today, auth.thresholds)
            # The date of birth goes no further: only the booleans leave this block.
            del born, birth_text
        token = issue_age_token(
            self.key,
            issuer=self.config.issuer,
            audience=auth.client_id,
            nonce=auth.nonce,
            age_over=answers,
            kid=self.jwk["kid"],
            assurance_level=self.config.assurance_level,
            age_method=self.config.age_method,
            lifetime=self.config.token_lifetime,
            now=self.config.clock(),
        )
        return self._respond(auth, {"age_token": token}, summary=answers)

    def _respond(
        self, auth: AuthorizeRequest, result: dict[str, str], summary: Mapping[int, bool] | None
    ) -> Response:
        fields = {**result, "state": auth.state}
        if auth.response_mode == "query":
            joiner = "&" if urlsplit(auth.redirect_uri).query else "?"
            return RedirectResponse(
                auth.redirect_uri + joiner + urlencode(fields),
                status_code=303,
                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
            )
        [(name, value)] = result.items()
        lines = (
            [f"<li>over {n}: {'yes' if ok else 'no'}</li>" for n, ok in sorted(summary.items())]
            if summary is not None
            else ["<li>you cancelled the age check</li>"]
        )
        return self.pages.render(
            "form_post",
            title="Return to the site",
            form_action=(origin_of(auth.redirect_uri),),
            client=auth.client_id,
            intro=post_back_intro(auth.client_id, "token" if summary is not None else "cancelled"),
            summary=Raw("\n".join(lines)),
            redirect_uri=auth.redirect_uri,
            field=name,
            value=value,
            state=auth.state,
        )


def build_reference_app(config: ReferenceConfig) -> Starlette:
    """The reference verifier as an ASGI app (wrapped in its own privacy-safe access log)."""
    key = config.signing_key or generate_signing_key("ES256")
    algorithm_for(key)  # refuse an unusable key at start, not at the first visitor
    handlers = _Handlers(config, key)
    routes = [
        Route("/", handlers.index, methods=["GET"]),
        Route("/.well-known/jwks.json", handlers.jwks, methods=["GET"]),
        Route("/authorize", handlers.authorize_page, methods=["GET"]),
        Route("/authorize", handlers.authorize_submit, methods=["POST"]),
    ]
    if config.pp_keys:
        issuer = PrivacyPassIssuer(
            config.pp_keys,
            issuer_url=config.issuer,
            clients=config.clients,
            clock=config.clock,
            pages=handlers.pages,
        )
        routes += issuer.routes()
    wallet_issuer = None
    if config.wallet_ca_key is not None:
        if not isinstance(config.wallet_ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError("the wallet CA key must be an EC key")
        wallet_issuer = ReferenceSdJwtIssuer(
            issuer=config.issuer, ca=ReferenceCa(key=config.wallet_ca_key)
        )
    if wallet_issuer is not None or config.wallet_mdoc_issuer is not None:
        routes += WebWallet(
            wallet_issuer, config.clients, handlers.pages, config.clock, config.wallet_mdoc_issuer
        ).routes()
    app = Starlette(routes=routes)
    app.add_middleware(_AccessLog, logger=logging.getLogger(ACCESS_LOGGER))
    return app
