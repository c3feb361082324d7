"""What the privacy-canary drivers share: the run record, canary values, visitor headers.

A driver (one per verifier kind, see ``test_privacy_canary.py``) plants values in a
:class:`Run` and drives real processes; the test then scans everything the gateway (and
any third-party service the kind needs) kept for those values.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from tests.support.gateway import DEFAULT_POLICY, GatewayProcess, session_cookie
from tests.support.rawhttp import RawResponse, request
from tests.support.wallet import browser_get, wallet_challenge
from tests.verifiers.privacy_pass.harness import ReferenceProcess
from verifiers.reference.wallet import Wallet, parse_request, submit

__all__ = ["Run", "Setup", "canary", "visitor_headers"]


def canary(label: str) -> str:
    """A unique string that must never turn up where the scan looks."""
    return f"cnry{label}{uuid.uuid4().hex[:12]}"


@dataclass
class Setup:
    """How one kind's canary gateway is configured, and the services it talks to."""

    policy: str = DEFAULT_POLICY
    settings: dict[str, Any] = field(default_factory=dict)
    verifier: dict[str, Any] | None = None
    reference: ReferenceProcess | None = None
    services: dict[str, Any] = field(default_factory=dict)  # other processes a driver drives


@dataclass
class Run:
    """Everything one canary run planted and saw."""

    gw: GatewayProcess
    identity: dict[str, str] = field(default_factory=dict)  # never anywhere
    client_values: list[str] = field(default_factory=list)  # never kept by the gateway
    secrets: list[str] = field(default_factory=list)  # tokens, jtis, nonces, cookies
    upstream_headers: list[list[list[str]]] = field(default_factory=list)
    reference: ReferenceProcess | None = None  # the kind's issuer/attester, when it has one
    services: dict[str, Any] = field(default_factory=dict)  # e.g. the OpenID provider

    @property
    def origin_names(self) -> list[str]:
        """How the site is named to a verifier: its origin and its RFC 9577 server name."""
        return [self.gw.public_origin, f"localhost:{self.gw.port}"]

    def keep(self, response: RawResponse) -> RawResponse:
        for header in response.header_list("set-cookie"):
            value = header.split(";", 1)[0].partition("=")[2]
            if value:
                self.secrets.append(value)
        if response.header("server") == "test-upstream" and response.body.startswith(b"{"):
            self.upstream_headers.append(response.json()["headers"])
        return response

    def token(self, nonce: str, extra: dict[str, Any] | None = None, **mint: Any) -> str:
        """An age token from the gateway's test issuer with ``extra`` claims added."""
        base = self.gw.mint(nonce, **mint)
        header = jwt.get_unverified_header(base)
        claims = json.loads(base64.urlsafe_b64decode(base.split(".")[1] + "=="))
        claims.update(extra or {})
        token = jwt.api_jws.encode(
            json.dumps(claims).encode(),
            self.gw.signing_key,
            algorithm=header["alg"],
            headers={"typ": header["typ"], "kid": header["kid"]},
        )
        self.secrets += [token, token.split(".")[2], claims["jti"], nonce]
        return token


def visitor_headers(run: Run) -> list[tuple[bytes, bytes]]:
    """A canary ``User-Agent`` and ``Referer``, recorded as client values."""
    agent, ref = canary("ua"), canary("ref")
    run.client_values += [agent, ref]
    referer = f"https://ref.example/search?q={ref}".encode()
    return [(b"User-Agent", agent.encode()), (b"Referer", referer)]


def answer_wallet(
    run: Run,
    path: str,
    wallet: Wallet,
    overrides: Mapping[str, object],
    secrets_of: Callable[[str], list[str]],
) -> tuple[str, int, dict[str, Any]]:
    """A browser challenge for ``path``, then ``wallet``'s direct_post answer to it.

    Every secret of the exchange joins ``run.secrets``: the challenge cookie,
    the request's nonce and state, the presentation and ``secrets_of`` it.
    Returns the challenge cookie and the gateway's status and JSON answer.
    """
    challenge = wallet_challenge(run.gw, path)
    run.keep(challenge.page)
    wallet_request = parse_request(challenge.request_uri)
    vp_token = wallet.answer(wallet_request, overrides)
    presentation = vp_token["age"][0]
    run.secrets += [challenge.cookie, wallet_request.nonce, wallet_request.state, presentation,
                    *secrets_of(presentation)]  # fmt: skip
    status, body = submit(wallet_request, vp_token)
    return challenge.cookie, status, body


def complete_wallet_session(run: Run, path: str, cookie: str, body: dict[str, Any]) -> None:
    """A wallet's accepted answer, finished same-device in the browser up to the page.

    ``body`` is the gateway's answer to the wallet (its ``redirect_uri`` carries
    the one-time response_code, a secret); ``cookie`` the browser's challenge.
    """
    redirect = str(body["redirect_uri"])
    run.secrets += [redirect.rpartition("=")[2]]
    done = run.keep(browser_get(run.gw, redirect.removeprefix(run.gw.public_origin), cookie))
    assert done.status == 303, done.text
    session = session_cookie(done.header_list("set-cookie"))
    assert session
    jar = (b"Cookie", f"__Host-agegate={session}; site_pref=1".encode())
    page = run.keep(request(run.gw.port, "GET", path, [jar]))
    assert page.status == 200, page.text
    assert json.loads(page.body)["path"].startswith("/echo/wine/red")
