"""The soak's mixed traffic (``loadtests/soak.py`` runs it; not in the test suite).

Three kinds of visitor against the soak gateway's policy (``/echo/public/**``
allowed, ``/echo/wine/**`` needs age 18):

- public pages;
- a visitor with a session: verified once at start (an API age token), then
  protected pages with the session cookie;
- an API client verifying afresh each time: challenge (401 with a nonce),
  a token minted for that nonce, the protected page with it (200).

Tokens are signed with the key in ``SOAK_SIGNING_KEY`` (a PEM file the soak
writes, the public half being the gateway's JWKS file), for ``SOAK_AUDIENCE``.
Any other status than the expected one is a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from locust import HttpUser, between, task

from verifiers import sdk

__all__ = ["ApiClient", "PublicVisitor", "VerifiedVisitor"]

ISSUER = os.environ.get("SOAK_ISSUER", "https://issuer.test")
AUDIENCE = os.environ.get("SOAK_AUDIENCE", "http://localhost:8080")
_NONCE = re.compile(r'nonce="([^"]+)"')


def _signer() -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key(Path(os.environ["SOAK_SIGNING_KEY"]).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


SIGNER = _signer() if "SOAK_SIGNING_KEY" in os.environ else None


def _verify(user: HttpUser, name: str) -> str | None:
    """One API verification; the session cookie it set, or None (a failure is recorded)."""
    with user.client.get("/echo/wine/red", name=f"{name} challenge", catch_response=True) as r:
        match = _NONCE.search(r.headers.get("www-authenticate", ""))
        if r.status_code != 401 or match is None:
            r.failure(f"expected a 401 challenge, got {r.status_code}")
            return None
        r.success()
    assert SIGNER is not None, "SOAK_SIGNING_KEY is not set"
    token = sdk.issue_age_token(
        SIGNER, issuer=ISSUER, nonce=match.group(1), age_over={18: True}, audience=AUDIENCE
    )
    with user.client.get(
        "/echo/wine/red",
        name=f"{name} with token",
        headers={"authorization": f"AgeToken {token}"},
        catch_response=True,
    ) as r:
        if r.status_code != 200:
            r.failure(f"token refused: {r.status_code}")
            return None
        return r.cookies.get("__Host-agegate")


class PublicVisitor(HttpUser):
    weight = 5
    wait_time = between(0.05, 0.2)

    @task
    def public_page(self) -> None:
        with self.client.get("/echo/public/page", name="public", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"public page answered {r.status_code}")


class VerifiedVisitor(HttpUser):
    weight = 4
    wait_time = between(0.05, 0.2)
    cookie: str | None = None

    def on_start(self) -> None:
        self.cookie = _verify(self, "session setup")

    @task
    def protected_page(self) -> None:
        headers = {"cookie": f"__Host-agegate={self.cookie}"} if self.cookie else {}
        with self.client.get(
            "/echo/wine/red", name="gated with session", headers=headers, catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"session refused: {r.status_code}")


class ApiClient(HttpUser):
    weight = 1
    wait_time = between(0.1, 0.4)

    @task
    def verify(self) -> None:
        self.client.cookies.clear()  # a fresh verification each time, not a session
        _verify(self, "API verification")
