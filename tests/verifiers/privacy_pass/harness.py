"""A real reference service (attester + issuer) process and gateway settings that trust it.

::

    with ReferenceProcess(tmp_path / "ref", client=gw_origin) as ref:
        settings = pp_settings(ref)            # for GatewayProcess(settings=...)

The reference writes its issuer keys (``pp-18``, ``pp-21``) into its key
directory at start; the gateway's ``reference-pp`` verifier reads the public
halves from there.  The reference's log goes to ``ref.log_path``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.gateway import token_verifier_settings
from tests.support.net import free_port, wait_for_port
from tests.support.process import stop_process

__all__ = ["PP_POLICY", "ReferenceProcess", "pp_settings"]

PP_POLICY = """
version: 1
defaults:
  verifiers: [test-token, reference-pp]
  session_ttl: 1h
  assurance: basic
routes:
  - name: wine
    path: /echo/wine/**
    min_age: 18
  - name: spirits
    path: /echo/spirits/**
    min_age: 21
  - name: everything-else
    path: /**
    action: allow
"""


class ReferenceProcess:
    """``python -m verifiers.reference --pp-keys-dir …`` on a free port."""

    def __init__(self, directory: Path, *, clients: list[str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = f"http://localhost:{self.port}"
        self.issuer_name = f"localhost:{self.port}"
        self.keys_dir = directory / "pp-keys"
        self.log_path = directory / "reference.log"
        self.clients = clients
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ReferenceProcess:
        argv = [
            sys.executable, "-m", "verifiers.reference", "--port", str(self.port),
            "--issuer", self.issuer, "--pp-keys-dir", str(self.keys_dir), "--log-level", "info",
        ]  # fmt: skip
        for client in self.clients:
            argv += ["--client", client]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"reference did not start:\n{self.log_text()}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ReferenceProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def pp_settings(ref: ReferenceProcess, **extra: Any) -> dict[str, Any]:
    """Gateway ``verifiers`` for GatewayProcess: its test-token plus ``reference-pp``."""
    return {
        "verifiers": {
            "test-token": token_verifier_settings(),
            "reference-pp": {
                "kind": "privacy-pass",
                "issuer_name": ref.issuer_name,
                "token_keys": {
                    "18": str(ref.keys_dir / "pp-18.spki.pem"),
                    "21": str(ref.keys_dir / "pp-21.spki.pem"),
                },
                "authorize_url": f"{ref.issuer}/pp/authorize",
                "label": "Privacy Pass (reference issuer)",
                **extra,
            },
        }
    }
