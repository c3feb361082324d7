"""One test IACA, one clock, one request, and an eu-av verifier reading that IACA."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.verifiers.tokens import MemoryReplay
from verifiers.base import Presentation, VerifierServices, VerifyContext
from verifiers.mdoc import EuAvVerifier
from verifiers.reference.mdoc import MdocTestIssuer

__all__ = [
    "CLIENT_ID",
    "NONCE",
    "NOW",
    "NOW_DT",
    "RESPONSE_URI",
    "context",
    "make_verifier",
    "presentation",
    "write_anchors",
]

NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
NOW_DT = datetime.fromtimestamp(NOW, tz=UTC)
RESPONSE_URI = "https://shop.example/.agegate/callback/eu-wallet"
CLIENT_ID = f"redirect_uri:{RESPONSE_URI}"
NONCE = "n-mdoc-0123456789abcdef"


def write_anchors(path: Path, *issuers: MdocTestIssuer) -> Path:
    path.write_bytes(b"".join(issuer.trust_anchor_pem() for issuer in issuers))
    return path


def make_verifier(anchors: Path, **config: Any) -> EuAvVerifier:
    settings: dict[str, Any] = {"kind": "eu-av", "trust_anchors": anchors.name}
    settings.update(config)
    return EuAvVerifier("eu-wallet", settings, VerifierServices(base_dir=str(anchors.parent)))


def context(
    replay: MemoryReplay | None = None, nonce: str | None = NONCE, now: float = NOW
) -> VerifyContext:
    return VerifyContext(
        audience="https://shop.example",
        expected_nonce=nonce,
        now=now,
        replay=replay or MemoryReplay(),
    )


def presentation(vp_token: str, extra: Mapping[str, str] | None = None) -> Presentation:
    bound = {"client_id": CLIENT_ID, "response_uri": RESPONSE_URI}
    return Presentation(vp_token, "wallet", dict(extra) if extra is not None else bound)
