"""What the ``oidc`` verifier derives per challenge, and how it fails closed without a provider."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.verifiers.tokens import MemoryReplay
from verifiers.base import Presentation, VerificationError, VerifierServices, VerifyContext
from verifiers.oidc import OidcVerifier

SECRET = bytes(range(32))


def make(tmp_path: Path, secret: bytes = SECRET, name: str = "op") -> OidcVerifier:
    (tmp_path / "secret").write_text("s3cret")
    config: dict[str, Any] = {
        "kind": "oidc",
        "issuer": "http://127.0.0.1:9",  # discard port: nothing listens
        "client_id": "agegate",
        "client_secret_file": "secret",
        "age_scope": "age",
        "age_claims": {"age_over_18": 18},
        "timeout": "1s",
    }
    return OidcVerifier(name, config, VerifierServices(base_dir=str(tmp_path), secret=secret))


def test_pkce_verifier_is_rfc7636_and_the_same_in_every_worker(tmp_path: Path) -> None:
    one, two = make(tmp_path), make(tmp_path)
    verifier = one.code_verifier("challenge-nonce")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", verifier)  # RFC 7636 §4.1: 43-128 unreserved
    assert two.code_verifier("challenge-nonce") == verifier
    assert create_s256_code_challenge(verifier) != verifier
    assert one.code_verifier("other-nonce") != verifier


def test_derived_values_depend_on_secret_and_name_and_are_not_the_nonce(tmp_path: Path) -> None:
    base = make(tmp_path)
    assert base.oidc_nonce("n") != "n"
    assert base.oidc_nonce("n") != base.code_verifier("n")
    assert make(tmp_path, secret=bytes(32)).code_verifier("n") != base.code_verifier("n")
    assert make(tmp_path, name="other").oidc_nonce("n") != base.oidc_nonce("n")


async def test_provider_down_fails_closed(tmp_path: Path) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        (tmp_path / "secret").write_text("s3cret")
        verifier = OidcVerifier(
            "op",
            {
                "kind": "oidc", "issuer": "http://127.0.0.1:9", "client_id": "agegate",
                "client_secret_file": "secret", "age_claims": {"age_over_18": 18}, "timeout": "1s",
            },
            VerifierServices(http=http, base_dir=str(tmp_path), secret=SECRET),
        )  # fmt: skip
        with pytest.raises(VerificationError) as down:
            await verifier.warm()
        assert down.value.reason == "provider_unavailable"
        ctx = VerifyContext("http://localhost", "nonce", 1.0e9, MemoryReplay())
        with pytest.raises(VerificationError) as refused:
            await verifier.verify(Presentation("code", "callback", {}), ctx)
        assert refused.value.reason == "provider_unavailable"


async def test_api_channel_is_refused(tmp_path: Path) -> None:
    verifier = make(tmp_path)
    ctx = VerifyContext("http://localhost", None, 1.0e9, MemoryReplay())
    with pytest.raises(VerificationError) as refused:
        await verifier.verify(Presentation("code", "authorization", {}), ctx)
    assert refused.value.reason == "missing_nonce"
