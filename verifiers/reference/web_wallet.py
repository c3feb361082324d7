"""A simulated EU wallet as web pages of the reference service: ``make demo`` without a phone.

``GET /wallet?<OpenID4VP request parameters>`` shows what the site asks;
``POST /wallet`` issues a fresh test credential for the date of birth given
(an SD-JWT VC from this service's test CA for ``dc+sd-jwt``, an
``eu.europa.ec.av.1`` mdoc from its test IACA for ``mso_mdoc``; never a real
credential), answers the DCQL query with only the age element, key-bound to
the request (:mod:`verifiers.reference.wallet`),
posts it ``direct_post`` to the gateway, and sends the browser on to the
``redirect_uri`` the gateway answered.  Only ``response_uri`` origins of
registered clients are accepted, so this page cannot be made to POST anywhere
else.  Development only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from verifiers.reference.mdoc import AV_DOCTYPE, MdocTestIssuer
from verifiers.reference.pages import Pages, Raw, origin_of
from verifiers.reference.params import age_over, parse_birth_date
from verifiers.reference.sd_jwt_issuer import ReferenceSdJwtIssuer
from verifiers.reference.wallet import AuthorizationRequest, Wallet, parse_request, submit

__all__ = ["WebWallet"]


class WebWallet:
    """The ``/wallet`` pages, issuing from ``issuer`` / ``mdoc_issuer`` to registered sites."""

    def __init__(
        self,
        issuer: ReferenceSdJwtIssuer | None,
        clients: Mapping[str, tuple[str, ...]],
        pages: Pages,
        clock: Callable[[], float],
        mdoc_issuer: MdocTestIssuer | None = None,
    ) -> None:
        self.issuer = issuer
        self.mdoc_issuer = mdoc_issuer
        self.clients = clients
        self.pages = pages
        self.clock = clock

    def _can_answer(self, query: Mapping[str, Any]) -> bool:
        if query.get("format") == "dc+sd-jwt":
            return self.issuer is not None
        doctype = query.get("meta", {}).get("doctype_value")
        return (
            query.get("format") == "mso_mdoc"
            and doctype == AV_DOCTYPE
            and (self.mdoc_issuer is not None)
        )

    def routes(self) -> list[Route]:
        return [
            Route("/wallet", self.page, methods=["GET"]),
            Route("/wallet", self.answer, methods=["POST"]),
        ]

    def _request(self, uri: str) -> tuple[AuthorizationRequest, int, str, str]:
        """The request, the age asked, the claim name and the format it is answered in.

        ValueError when it is not a registered site's or asks for nothing this wallet holds.
        """
        request = parse_request(uri)
        if origin_of(request.response_uri) not in self.clients:
            raise ValueError("This site is not registered with the reference service.")
        if request.response_mode != "direct_post" or request.response_type != "vp_token":
            raise ValueError("Only response_type=vp_token with direct_post is supported.")
        # The first Credential Query it can answer (eu-av with accept_mdl also offers an mDL).
        query = next((q for q in request.dcql_query.get("credentials", []) if self._can_answer(q)),
                     None)  # fmt: skip
        if query is None:
            raise ValueError("The request asks for something this wallet does not hold.")
        [claim] = query.get("claims", [{}])
        path = [str(part) for part in claim.get("path", [])]
        age = path[-1].removeprefix("age_over_") if path else ""
        if not age.isdigit() or not 0 < int(age) < 100:
            raise ValueError("The request does not ask for an age.")
        return request, int(age), ".".join(path), str(query["format"])

    async def page(self, request: Request) -> Response:
        uri = "openid4vp://?" + request.url.query
        try:
            wallet_request, min_age, claim, _ = self._request(uri)
        except (ValueError, KeyError, TypeError) as exc:
            return self.pages.refused(
                str(exc) if isinstance(exc, ValueError) else "Malformed request."
            )
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        return self.pages.render(
            "wallet",
            title="Simulated wallet",
            form_action=(origin_of(wallet_request.response_uri),),
            client=origin_of(wallet_request.response_uri),
            min_age=min_age,
            claim=claim,
            action="/wallet",
            request=uri,
            today=today.isoformat(),
            error=Raw(""),
        )

    async def answer(self, request: Request) -> Response:
        async with request.form(max_files=0, max_fields=8) as form:
            uri, action, birth = form.get("request"), form.get("action"), form.get("birth_date")
        if not isinstance(uri, str):
            return self.pages.refused("The form is incomplete; start again from the site.")
        try:
            wallet_request, min_age, _, fmt = self._request(uri)
        except (ValueError, KeyError, TypeError):
            return self.pages.refused("Malformed request; start again from the site.")
        if action == "decline":
            await asyncio.to_thread(submit, wallet_request, None, error="access_denied")
            return self.pages.refused("You declined: the site was told only that.")
        now = datetime.fromtimestamp(self.clock(), UTC)
        today = now.date()
        try:
            born = parse_birth_date(birth if isinstance(birth, str) else None, today)
        except ValueError as exc:
            return self.pages.refused(str(exc))
        answers = age_over(born, today, [min_age])
        del born, birth  # only the boolean goes any further
        wallet = Wallet()
        if fmt == "mso_mdoc" and self.mdoc_issuer is not None:
            wallet.add_mdoc(self.mdoc_issuer.issue(age_over=answers, now=now))
        elif self.issuer is not None:
            wallet.add("dc+sd-jwt", self.issuer.issue(wallet.holder_jwk(), age_over=answers))
        status, body = await asyncio.to_thread(
            submit, wallet_request, wallet.answer(wallet_request)
        )
        redirect = body.get("redirect_uri")
        gateway = origin_of(wallet_request.response_uri)
        if status != 200 or not isinstance(redirect, str) or not redirect.startswith(gateway + "/"):
            return self.pages.refused(
                f"The site refused the answer ({body.get('reason', status)})."
            )
        return RedirectResponse(redirect, status_code=303, headers={"Cache-Control": "no-store"})
