"""A wallet simulator that answers an OpenID4VP request: for tests and ``make demo`` only.

:func:`parse_request` reads an ``openid4vp://`` request by value;
:meth:`Wallet.answer` builds the DCQL response (``vp_token`` =
``{query_id: [presentation]}``) disclosing only the claims the query names;
:func:`submit` posts it ``direct_post`` to the ``response_uri`` and returns the
``redirect_uri`` the verifier answers.  Each credential format is one
function in :data:`PRESENTERS`: ``dc+sd-jwt`` (an SD-JWT VC with a KB-JWT) and
``mso_mdoc`` (an ISO 18013-5 DeviceResponse signed over the request's
SessionTranscript, from an mdoc of :class:`~verifiers.reference.mdoc.MdocTestIssuer`).
When the query has ``credential_sets``, only the first option of each set the
wallet can answer is answered, as a real wallet would.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from verifiers.b64url import b64url_decode
from verifiers.reference.mdoc import Defects, IssuedMdoc, build_device_response
from verifiers.reference.sd_jwt_issuer import public_jwk
from verifiers.sd_jwt_vc.format import sd_hash

__all__ = [
    "PRESENTERS",
    "AuthorizationRequest",
    "HeldCredential",
    "Presenter",
    "Wallet",
    "parse_request",
    "present_mdoc",
    "present_sd_jwt_vc",
    "submit",
]


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """The parameters of an OpenID4VP request by value."""

    client_id: str
    response_uri: str
    nonce: str
    state: str
    dcql_query: Mapping[str, Any]
    response_type: str
    response_mode: str


def parse_request(uri: str) -> AuthorizationRequest:
    """Read ``openid4vp://?client_id=…&…``; ``ValueError`` when something is missing."""
    parts = urlsplit(uri)
    if parts.scheme != "openid4vp":
        raise ValueError("not an openid4vp: request")
    params = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))
    missing = {"client_id", "response_uri", "nonce", "state", "dcql_query"} - set(params)
    if missing:
        raise ValueError(f"request lacks {', '.join(sorted(missing))}")
    return AuthorizationRequest(
        client_id=params["client_id"],
        response_uri=params["response_uri"],
        nonce=params["nonce"],
        state=params["state"],
        dcql_query=json.loads(params["dcql_query"]),
        response_type=params.get("response_type", ""),
        response_mode=params.get("response_mode", ""),
    )


@dataclass
class HeldCredential:
    """One credential in the wallet: its format, the issued form, and the holder key."""

    format: str
    issued: str  # the SD-JWT VC as issued; "" for an mdoc
    holder_key: ec.EllipticCurvePrivateKey
    mdoc: IssuedMdoc | None = None  # the mdoc (``mso_mdoc``), with its own device key

    def matches(self, query: Mapping[str, Any]) -> bool:
        """Whether this credential answers one DCQL Credential Query (format, doctype)."""
        if self.format != query.get("format"):
            return False
        doctype = query.get("meta", {}).get("doctype_value")
        return doctype is None or (self.mdoc is not None and self.mdoc.doc_type == doctype)


#: Builds one presentation: (credential, claim paths asked, request, overrides) -> text.
Presenter = Callable[
    [HeldCredential, Sequence[Sequence[str]], AuthorizationRequest, Mapping[str, Any]], str
]


def _disclosure_name(encoded: str) -> str | None:
    value = json.loads(b64url_decode(encoded, canonical=False))
    return value[1] if isinstance(value, list) and len(value) == 3 else None


def present_sd_jwt_vc(
    held: HeldCredential,
    paths: Sequence[Sequence[str]],
    request: AuthorizationRequest,
    overrides: Mapping[str, Any],
) -> str:
    """The SD-JWT with only the disclosures on ``paths`` and a KB-JWT for ``request``.

    ``overrides`` plants test defects: ``disclose`` (extra claim names),
    ``kb`` (KB-JWT claims to replace), ``no_kb`` (end with ``~``).
    """
    token, *disclosures, _ = held.issued.split("~")
    wanted = {str(path[-1]) for path in paths} | set(overrides.get("disclose", ()))
    kept = [d for d in disclosures if _disclosure_name(d) in wanted]
    presented = "~".join([token, *kept, ""])
    if overrides.get("no_kb"):
        return presented
    claims = {
        "aud": request.client_id,
        "nonce": request.nonce,
        "iat": int(time.time()),
        "sd_hash": sd_hash(presented),
        **overrides.get("kb", {}),
    }
    kb = jwt.encode(claims, held.holder_key, algorithm="ES256", headers={"typ": "kb+jwt"})
    return presented + kb


def present_mdoc(
    held: HeldCredential,
    paths: Sequence[Sequence[str]],
    request: AuthorizationRequest,
    overrides: Mapping[str, Any],
) -> str:
    """A base64url DeviceResponse revealing only the asked elements the mdoc holds.

    ``overrides`` plants test defects: ``disclose`` (extra element names),
    ``defects`` (a :class:`~verifiers.reference.mdoc.Defects`).
    """
    if held.mdoc is None:
        raise ValueError("an mso_mdoc credential without its mdoc")
    asked = [str(path[-1]) for path in paths] + list(overrides.get("disclose", ()))
    defects = overrides.get("defects")
    return build_device_response(
        held.mdoc,
        client_id=request.client_id,
        response_uri=request.response_uri,
        nonce=request.nonce,
        disclose=[name for name in asked if name in held.mdoc.items],
        defects=defects if isinstance(defects, Defects) else None,
    )


PRESENTERS: dict[str, Presenter] = {"dc+sd-jwt": present_sd_jwt_vc, "mso_mdoc": present_mdoc}


@dataclass
class Wallet:
    """Holds credentials and answers DCQL queries with the first one of a matching format."""

    credentials: list[HeldCredential] = field(default_factory=list)
    holder_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def holder_jwk(self) -> dict[str, Any]:
        """The public key an issuer binds a credential to (``cnf.jwk``)."""
        return public_jwk(self.holder_key)

    def add(self, fmt: str, issued: str) -> None:
        self.credentials.append(HeldCredential(fmt, issued, self.holder_key))

    def add_mdoc(self, mdoc: IssuedMdoc) -> None:
        """Hold an mdoc (AV or mDL); it signs with its own device key."""
        self.credentials.append(HeldCredential("mso_mdoc", "", mdoc.device_key, mdoc))

    def answer(
        self, request: AuthorizationRequest, overrides: Mapping[str, Any] | None = None
    ) -> dict[str, list[str]]:
        """The ``vp_token`` object for the request's DCQL query."""
        vp_token: dict[str, list[str]] = {}
        for query in request.dcql_query.get("credentials", []):
            held = next((c for c in self.credentials if c.matches(query)), None)
            presenter = PRESENTERS.get(str(query.get("format")))
            if held is None or presenter is None:
                continue
            paths = [claim["path"] for claim in query.get("claims", [])]
            vp_token[query["id"]] = [presenter(held, paths, request, overrides or {})]
        sets = request.dcql_query.get("credential_sets")
        if not sets:
            return vp_token
        chosen: set[str] = set()
        for options in (each.get("options", []) for each in sets):
            first: list[str] = next((o for o in options if all(i in vp_token for i in o)), [])
            chosen.update(first)
        return {key: value for key, value in vp_token.items() if key in chosen}


def submit(
    request: AuthorizationRequest, vp_token: Mapping[str, Any] | None, *, error: str | None = None
) -> tuple[int, dict[str, Any]]:
    """POST the response ``direct_post`` to ``response_uri``: (status, JSON body)."""
    fields = {"state": request.state}
    if error is not None:
        fields["error"] = error
    else:
        fields["vp_token"] = json.dumps(vp_token, separators=(",", ":"))
    data = urlencode(fields).encode()
    post = urllib.request.Request(  # noqa: S310 - the scheme is the request's http(s) URI
        request.response_uri,
        data=data,
        headers={"content-type": "application/x-www-form-urlencoded", "accept": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(post, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as failure:
        body = failure.read()
        return failure.code, json.loads(body) if body else {}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
