"""A verifier, an issuer and a wallet wired together, for the sd-jwt-vc unit tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verifiers.base import Presentation, VerifierServices, VerifyContext
from verifiers.reference.sd_jwt_issuer import TEST_VCT, ReferenceSdJwtIssuer
from verifiers.reference.wallet import AuthorizationRequest, Wallet
from verifiers.sd_jwt_vc import SdJwtVcVerifier
from verifiers.wallet import WALLET_CHANNEL

ORIGIN = "https://shop.example"
CLIENT_ID = f"redirect_uri:{ORIGIN}/.agegate/callback/eu-pid"
RESPONSE_URI = f"{ORIGIN}/.agegate/callback/eu-pid"
NONCE = "n-0123456789abcdef"


class MemoryReplay:
    """A ReplayGuard in a set."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
        if (namespace, value) in self.seen:
            return False
        self.seen.add((namespace, value))
        return True


@dataclass
class Setup:
    verifier: SdJwtVcVerifier
    issuer: ReferenceSdJwtIssuer
    wallet: Wallet
    replay: MemoryReplay

    def request(self, nonce: str = NONCE) -> AuthorizationRequest:
        query = self.verifier.credential_query("age", 18)
        return AuthorizationRequest(
            client_id=CLIENT_ID,
            response_uri=RESPONSE_URI,
            nonce=nonce,
            state="s",
            dcql_query={"credentials": [query]},
            response_type="vp_token",
            response_mode="direct_post",
        )

    def present(self, issued: str | None = None, **overrides: Any) -> str:
        self.wallet.credentials.clear()
        self.wallet.add("dc+sd-jwt", issued or self.issuer.issue(self.wallet.holder_jwk()))
        return self.wallet.answer(self.request(), overrides)["age"][0]

    async def verify(self, credential: str, *, nonce: str = NONCE, now: float | None = None) -> Any:
        ctx = VerifyContext(
            audience=ORIGIN,
            expected_nonce=nonce,
            now=time.time() if now is None else now,
            replay=self.replay,
        )
        extra = {"client_id": CLIENT_ID, "response_uri": RESPONSE_URI}
        return await self.verifier.verify(Presentation(credential, WALLET_CHANNEL, extra), ctx)


def make_setup(tmp_path: Path, **config: Any) -> Setup:
    issuer = ReferenceSdJwtIssuer()
    (tmp_path / "anchors.pem").write_bytes(issuer.ca.pem())
    (tmp_path / "jwks.json").write_text(json.dumps(issuer.jwks()))
    settings: dict[str, Any] = {"vct": [TEST_VCT], "trust_anchors": "anchors.pem", **config}
    verifier = SdJwtVcVerifier("eu-pid", settings, VerifierServices(base_dir=str(tmp_path)))
    return Setup(verifier, issuer, Wallet(), MemoryReplay())
