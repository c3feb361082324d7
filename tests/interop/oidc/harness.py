"""A real OpenID provider (npm ``oidc-provider`` 8.x) process, and the headless visitor's side.

::

    with OidcProvider(tmp_path / "op", redirect_uris=[...]) as op:
        settings = oidc_settings(op, tmp_path)          # for GatewayProcess(settings=...)
        form = op.login(link, "adult")                  # authorize + sign-in, like a browser
        op.tamper(aud="someone-else")                   # the next id_token, re-signed

``provider.mjs`` is the provider; it signs with its own ES256 key, which never
leaves the node process (tampered id_tokens are re-signed there too).  It needs
``node_modules``: ``make interop-deps`` (or ``npm ci`` in this folder).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from html import unescape
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpx
from joserfc.jwk import ECKey

from tests.support.net import free_port, wait_for_port
from tests.support.process import stop_process

__all__ = [
    "CLIENT_SECRET",
    "HERE",
    "OIDC_POLICY",
    "OidcProvider",
    "ProviderAnswer",
    "oidc_settings",
]

HERE = Path(__file__).parent
CLIENT_SECRET = "agegate-test-client-secret-4d1f"
OIDC_POLICY = """
version: 1
defaults:
  verifiers: [op]
  session_ttl: 1h
  assurance: basic
routes:
  - name: wine
    path: /echo/wine/**
    min_age: 18
  - name: everything-else
    path: /**
    action: allow
"""
_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)
_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', re.IGNORECASE)


def require_node() -> str:
    """The node binary, or a failure saying how to install what the tests need."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: the oidc interop tests need Node.js >= 20")
    if not (HERE / "node_modules" / "oidc-provider" / "package.json").is_file():
        raise RuntimeError(
            "tests/interop/oidc/node_modules is missing: run `make interop-deps` "
            "(or `npm ci` in tests/interop/oidc)"
        )
    return node


class ProviderAnswer:
    """The provider's form_post back to the gateway: where it posts and which fields."""

    def __init__(self, action: str, fields: dict[str, str]) -> None:
        self.action = action
        self.fields = fields

    def body(self, **override: str) -> bytes:
        from urllib.parse import urlencode

        return urlencode({**self.fields, **override}).encode()


class OidcProvider:
    """``node provider.mjs`` on a free loopback port; stdout/stderr go to ``log_path``."""

    def __init__(self, directory: Path, *, redirect_uris: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "provider.log"
        self.identity_file = directory / "identity.json"
        self.identity_file.write_text("{}")
        # The private_key_jwt client's key: agegate holds the private half (a file),
        # the provider registers the public half.
        self.client_key = ECKey.generate_key("P-256", parameters={"kid": "agegate-client"})
        self.client_key_file = directory / "client-key.pem"
        self.client_key_file.write_bytes(self.client_key.as_pem(private=True))
        config = {
            "port": self.port,
            "redirect_uris": redirect_uris,
            "client_secret": CLIENT_SECRET,
            "client_jwks": {"keys": [self.client_key.as_dict(private=False)]},
            "identity_file": str(self.identity_file),
        }
        self.config_path = directory / "provider.json"
        self.config_path.write_text(json.dumps(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OidcProvider:
        node = require_node()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [node, str(HERE / "provider.mjs"), str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=HERE,
            )
        try:
            wait_for_port(self.port, timeout=30, process=self.process)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"oidc-provider did not start:\n{self.log_text()}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def plant(self, **claims: str) -> None:
        """Identity claims every account releases from now on (``name``, ``email``)."""
        self.identity_file.write_text(json.dumps(claims))

    def tamper(self, **changes: Any) -> None:
        """Rewrite the next id_token (``aud``, ``nonce``, ``exp_offset``); the provider re-signs."""
        response = httpx.post(f"{self.issuer}/__test/tamper", json=changes, timeout=10)
        assert response.status_code == 204, response.text

    def last_claim_names(self) -> list[str]:
        """The claim names of the last id_token the provider issued (it never shows values)."""
        response = httpx.get(f"{self.issuer}/__test/last-claims", timeout=10)
        names: list[str] = response.json()["names"]
        return names

    def login(self, link: str, account: str) -> ProviderAnswer:
        """Follow the verifier link, sign in as ``account``; the form the provider posts back."""
        with httpx.Client(timeout=15) as client:
            response = client.get(link)
            for _ in range(10):
                if response.status_code not in (302, 303):
                    break
                response = client.get(urljoin(str(response.url), response.headers["location"]))
            assert response.status_code == 200, (response.status_code, response.text[:300])
            assert f'data-account="{account}"' in response.text, response.text[:500]
            response = client.post(f"{response.url}/login", params={"account": account})
            for _ in range(10):
                if response.status_code not in (302, 303):
                    break
                response = client.get(urljoin(str(response.url), response.headers["location"]))
        assert response.status_code == 200, (response.status_code, response.text[:300])
        action = _FORM.search(response.text)
        assert action, response.text[:500]
        fields = {unescape(k): unescape(v) for k, v in _INPUT.findall(response.text)}
        return ProviderAnswer(unescape(action.group(1)), fields)

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def oidc_settings(
    op: OidcProvider, *, name: str = "op", private_key_jwt: bool = False, **extra: Any
) -> dict[str, Any]:
    """Gateway settings with one oidc verifier ``name`` for ``op`` (secret from the env)."""
    verifier: dict[str, Any] = {
        "kind": "oidc",
        "label": "Test OpenID provider",
        "issuer": op.issuer,
        "age_scope": "age",
        "age_claims": {"age_over_18": 18},
        "assurance_level": "standard",
        "timeout": "5s",
    }
    if private_key_jwt:
        verifier |= {
            "client_id": "agegate-pkjwt",
            "token_endpoint_auth_method": "private_key_jwt",
            "client_key_file": str(op.client_key_file),
        }
    else:
        secret_file = op.directory / "client-secret"
        secret_file.write_text(CLIENT_SECRET + "\n")
        verifier |= {"client_id": "agegate", "client_secret_file": str(secret_file)}
    verifier |= extra
    return {"verifiers": {name: verifier}}


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` until true; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
