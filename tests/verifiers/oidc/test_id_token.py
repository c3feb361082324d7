"""id_token validation of the ``oidc`` verifier (verifiers/oidc/provider.py), without a network.

The real provider covers the ordinary refusals (tests/interop/oidc); these are the
tokens a certified provider would never issue: unsigned, MACed, unknown keys,
absurd times.  Each one must be a reason code, never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.verifiers.tokens import Signer, make_signer
from verifiers.base import VerificationError
from verifiers.jwks import JwksCache
from verifiers.oidc.config import OidcConfig, parse_config
from verifiers.oidc.provider import Discovery, validate_id_token

ISSUER = "https://op.example"
NOW = 1_800_000_000.0
NONCE = "derived-nonce"


@pytest.fixture
def signer() -> Signer:
    return make_signer("ES256")


@pytest.fixture
def setup(tmp_path: Path, signer: Signer) -> tuple[OidcConfig, Discovery, JwksCache]:
    (tmp_path / "secret").write_text("s3cret")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [signer.public_jwk]}))
    config = parse_config(
        "op",
        {
            "kind": "oidc", "issuer": ISSUER, "client_id": "agegate",
            "client_secret_file": "secret", "age_claims": {"age_over_18": 18},
        },
        str(tmp_path),
    )  # fmt: skip
    discovery = Discovery(
        authorization_endpoint=f"{ISSUER}/auth",
        token_endpoint=f"{ISSUER}/token",
        jwks_uri=f"{ISSUER}/jwks",
        userinfo_endpoint=None,
        form_post=True,
        iss_parameter=True,
        id_token_algorithms=frozenset({"ES256", "RS256"}),
        fetched_at=NOW,
    )
    return config, discovery, JwksCache(file=tmp_path / "jwks.json")


def claims(**change: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER, "sub": "u1", "aud": "agegate", "iat": int(NOW), "exp": int(NOW) + 300,
        "nonce": NONCE, "age_over_18": True,
    }  # fmt: skip
    base.update(change)
    return {k: v for k, v in base.items() if v is not None}


async def check(setup: tuple[OidcConfig, Discovery, JwksCache], token: str) -> dict[str, Any]:
    config, discovery, keys = setup
    return await validate_id_token(
        token, config=config, discovery=discovery, keys=keys, nonce=NONCE, now=NOW
    )


def sign(signer: Signer, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode(payload, signer.key, algorithm="ES256", headers={"kid": signer.kid, **header})


async def test_a_good_id_token_passes(setup: Any, signer: Signer) -> None:
    assert (await check(setup, sign(signer, claims())))["age_over_18"] is True


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"iss": "https://evil.example"}, "wrong_issuer"),
        ({"aud": "other-rp"}, "wrong_audience"),
        ({"aud": ["agegate", "other-rp"], "azp": "other-rp"}, "wrong_audience"),
        ({"nonce": "other"}, "wrong_nonce"),
        ({"nonce": None}, "missing_nonce"),
        ({"exp": int(NOW) - 31}, "expired"),
        ({"iat": int(NOW) + 120}, "issued_in_future"),
        ({"nbf": int(NOW) + 120}, "not_yet_valid"),
        ({"sub": None}, "missing_claim"),
        ({"exp": 10**400}, None),  # absurd but not expired: accepted, no crash
        ({"exp": "soon"}, "bad_claim"),
        ({"iat": True}, "bad_claim"),
    ],
)
async def test_claim_refusals(
    setup: Any, signer: Signer, change: dict[str, Any], reason: str | None
) -> None:
    token = sign(signer, claims(**change))
    if reason is None:
        await check(setup, token)
        return
    with pytest.raises(VerificationError) as refused:
        await check(setup, token)
    assert refused.value.reason == reason


async def test_unsigned_and_maced_and_foreign_tokens(setup: Any, signer: Signer) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": signer.kid})
    maced = jwt.encode(claims(), "s3cret" * 8, algorithm="HS256", headers={"kid": signer.kid})
    other = make_signer("ES256", kid=signer.kid)
    cases = {
        unsigned: "alg_not_allowed",
        maced: "alg_not_allowed",
        sign(other, claims()): "bad_signature",
        sign(signer, claims(), kid="nope"): "unknown_kid",
        jwt.encode(claims(), signer.key, algorithm="ES256"): "unknown_kid",  # no kid at all
        sign(signer, claims(), crit=["x"]): "malformed",
        "not.a.token": "malformed",
    }
    for token, reason in cases.items():
        with pytest.raises(VerificationError) as refused:
            await check(setup, token)
        assert refused.value.reason == reason, token
