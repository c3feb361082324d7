"""A real ``agegate run`` process on free loopback ports, for end-to-end tests.

::

    with GatewayProcess(tmp_path, upstream=up.url, policy=POLICY) as gw:
        gw.url, gw.admin_url, gw.signing_key, gw.log_text()

The gateway trusts one age-token verifier, ``test-token`` (issuer
:data:`ISSUER`), whose JWKS is a file holding the public half of
``gw.signing_key``; :meth:`GatewayProcess.mint` issues tokens with the SDK.
Its stderr (the JSON log) goes to ``gw.log_path`` for privacy assertions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.session.keys import generate_key_line
from tests.support.net import free_ports, wait_for_port
from tests.support.process import stop_process
from verifiers import sdk

__all__ = [
    "ISSUER",
    "GatewayProcess",
    "cookie_value",
    "session_cookie",
    "token_verifier_settings",
]

ISSUER = "https://issuer.test"
AUTHORIZE_URL = "https://issuer.test/authorize"


def token_verifier_settings(**overrides: Any) -> dict[str, Any]:
    """The settings of ``test-token``, the age-token verifier every test gateway has.

    It trusts :data:`ISSUER` through the ``jwks.json`` :class:`GatewayProcess` writes.
    """
    return {
        "kind": "age-token",
        "issuer": ISSUER,
        "jwks_file": "jwks.json",
        "algorithms": ["ES256"],
        "authorize_url": AUTHORIZE_URL,
        **overrides,
    }


DEFAULT_POLICY = """
version: 1
defaults:
  verifiers: [test-token]
  session_ttl: 1h
  assurance: basic
routes:
  - name: public
    path: /echo/public/**
    action: allow
  - name: wine
    path: /echo/wine/**
    min_age: 18
  - name: spirits
    path: /echo/spirits/**
    min_age: 21
    assurance: standard
  - name: closed
    path: /echo/closed/**
    action: deny
  - name: everything-else
    path: /**
    action: allow
"""


def cookie_value(set_cookie_headers: list[str], name: str) -> str | None:
    """The value a list of Set-Cookie headers gives ``name`` ("" when cleared)."""
    found = None
    for header in set_cookie_headers:
        pair = header.split(";", 1)[0]
        key, _, value = pair.partition("=")
        if key.strip() == name:
            found = value.strip()
    return found


def session_cookie(set_cookie_headers: list[str]) -> str | None:
    return cookie_value(set_cookie_headers, "__Host-agegate")


class GatewayProcess:
    """Start, inspect and stop one gateway process."""

    def __init__(
        self,
        directory: Path,
        *,
        upstream: str,
        policy: str = DEFAULT_POLICY,
        settings: Mapping[str, Any] | None = None,
        verifier: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        session_key: str | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        port: int | None = None,
        module: str = "gateway.cli.main",
    ) -> None:
        self.directory = directory
        self.module = module  # what ``python -m`` runs with ``run --config``
        if port:
            self.port = port
            (self.admin_port,) = free_ports(1, exclude=frozenset({port}))
        else:
            self.port, self.admin_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.public_origin = f"http://localhost:{self.port}"
        # Pass the same session key and signing key to several processes to make them
        # behave as workers of one site (they then accept each other's nonces and cookies).
        self.signing_key = signing_key or ec.generate_private_key(ec.SECP256R1())
        self.log_path = directory / "gateway.log"
        self.config_path = directory / "agegate.yaml"
        self.policy_path = directory / "policy.yaml"
        self.policy_path.write_text(policy)
        jwks_path = directory / "jwks.json"
        jwks_path.write_text(json.dumps(sdk.jwks(self.signing_key)))
        (directory / "session.keys").write_text((session_key or generate_key_line()) + "\n")
        config: dict[str, Any] = {
            "listen": f"127.0.0.1:{self.port}",
            "admin_listen": f"127.0.0.1:{self.admin_port}",
            "public_origin": self.public_origin,
            "hosts": ["localhost", "127.0.0.1"],
            "upstream": upstream,
            "session_keys_file": "session.keys",
            "policy": "policy.yaml",
            "verifiers": {"test-token": token_verifier_settings(**(verifier or {}))},
            "log": {"format": "json", "level": "info"},
        }
        config.update(settings or {})
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, **(env or {})}
        if module.startswith("tests."):
            # A test-side entry module runs from the temp directory: find it via the checkout.
            root = str(Path(__file__).resolve().parents[2])
            paths = [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
            self.env["PYTHONPATH"] = os.pathsep.join([*paths, root])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.directory,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout=20, process=self.process)
            wait_for_port(self.admin_port, timeout=10, process=self.process)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"gateway did not start:\n{self.log_text()}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (non-JSON lines are a test failure)."""
        time.sleep(0.4)  # the gateway writes log lines in batches at least every 0.2 s
        return [json.loads(line) for line in self.log_text().splitlines() if line.strip()]

    def mint(self, nonce: str, *, age_over: Mapping[int, bool] | None = None, **kwargs: Any) -> str:
        """An age token from the trusted test issuer for this gateway's audience."""
        kwargs.setdefault("audience", self.public_origin)
        return sdk.issue_age_token(
            self.signing_key,
            issuer=ISSUER,
            nonce=nonce,
            age_over=age_over or {18: True},
            **kwargs,
        )

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
