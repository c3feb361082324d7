"""A gateway that offers an ``sd-jwt-vc`` wallet verifier, its test issuer and a wallet.

::

    with WalletSite(tmp_path, upstream.url) as site:
        challenge = wallet_challenge(site.gw)          # cookie, openid4vp:// URI, wait URL
        request = parse_request(challenge.request_uri)
        status, body = submit(request, site.wallet.answer(request))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from tests.support.gateway import GatewayProcess, cookie_value, token_verifier_settings
from tests.support.rawhttp import RawResponse, request
from verifiers.reference.sd_jwt_issuer import TEST_VCT, ReferenceSdJwtIssuer
from verifiers.reference.wallet import Wallet

__all__ = ["WALLET_POLICY", "WalletChallenge", "WalletSite", "wallet_challenge", "wallet_policy"]

HTML = (b"Accept", b"text/html,application/xhtml+xml")


def wallet_policy(verifier: str) -> str:
    """``/echo/wine/**`` for ``test-token`` or the wallet verifier ``verifier``; the rest open."""
    return f"""
version: 1
defaults:
  verifiers: [test-token, {verifier}]
  session_ttl: 1h
routes:
  - name: wine
    path: /echo/wine/**
    min_age: 18
  - name: tokens-only
    path: /echo/tokens/**
    min_age: 18
    verifiers: [test-token]
  - name: everything-else
    path: /**
    action: allow
"""


WALLET_POLICY = wallet_policy("eu-pid")
_REQUEST = re.compile(r"href='(openid4vp://[^']+)' rel=noopener data-openid4vp")
_WAIT = re.compile(r"href='(/\.agegate/wallet/status\?[^']+)'")


class WalletSite:
    """A gateway process with verifiers ``test-token`` and ``eu-pid`` (sd-jwt-vc)."""

    def __init__(
        self,
        directory: Path,
        upstream: str,
        settings: dict[str, Any] | None = None,
        *,
        issuer: ReferenceSdJwtIssuer | None = None,
        session_key: str | None = None,
        port: int | None = None,
        **verifier: Any,
    ) -> None:
        # Pass one issuer and session key to several sites to make them workers of one site.
        self.issuer = issuer or ReferenceSdJwtIssuer()
        self.wallet = Wallet()
        self.wallet.add("dc+sd-jwt", self.issuer.issue(self.wallet.holder_jwk()))
        (directory / "anchors.pem").write_bytes(self.issuer.ca.pem())
        verifiers = {
            "test-token": token_verifier_settings(),
            "eu-pid": {
                "kind": "sd-jwt-vc",
                "label": "EU wallet",
                "vct": [TEST_VCT],
                "trust_anchors": "anchors.pem",
                **verifier,
            },
        }
        self.gw = GatewayProcess(
            directory,
            upstream=upstream,
            policy=WALLET_POLICY,
            settings={"verifiers": verifiers, **(settings or {})},
            session_key=session_key,
            port=port,
        )

    @property
    def origin(self) -> str:
        return self.gw.public_origin

    def logs(self) -> str:
        """The gateway's log (attached to a failed browser test's report)."""
        return self.gw.log_text()

    def fresh_credential(self) -> None:
        """Replace the wallet's credential with a new one (seen-before is per credential)."""
        self.wallet.credentials.clear()
        self.wallet.add("dc+sd-jwt", self.issuer.issue(self.wallet.holder_jwk()))

    def __enter__(self) -> WalletSite:
        self.gw.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.gw.stop()


@dataclass(frozen=True)
class WalletChallenge:
    """What the verify page gave a browser for the wallet verifier."""

    page: RawResponse
    cookie: str
    request_uri: str
    wait_url: str


def wallet_challenge(gw: GatewayProcess, return_path: str = "/echo/wine/red") -> WalletChallenge:
    """GET the verify page as a browser; read the openid4vp:// link and the waiting URL."""
    page = request(
        gw.port, "GET", f"/.agegate/verify?return={quote(return_path, safe='/')}", [HTML]
    )
    assert page.status == 200, (page.status, page.body[:300])
    cookie = cookie_value(page.header_list("set-cookie"), "__Host-agegate-challenge")
    assert cookie, page.headers
    link = _REQUEST.search(page.text)
    wait = _WAIT.search(page.text)
    assert link and wait, page.text
    return WalletChallenge(page, cookie, unescape(link.group(1)), unescape(wait.group(1)))


def browser_get(gw: GatewayProcess, target: str, cookie: str | None) -> RawResponse:
    """A browser navigation carrying the challenge cookie (if any)."""
    jar = [(b"Cookie", f"__Host-agegate-challenge={cookie}".encode())] if cookie else []
    return request(gw.port, "GET", target, [HTML, *jar])
