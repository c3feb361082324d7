"""docs/token-profile.md stays true: its worked example verifies, its decoded parts match
the token, and SDK tokens pass the gateway's own profile checks (verifiers.token_profile)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from verifiers import sdk
from verifiers.token_profile import check_token

DOC = (Path(__file__).resolve().parents[3] / "docs" / "token-profile.md").read_text("utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", DOC, flags=re.S)
JSON_BLOCKS = [json.loads(body) for lang, body in BLOCKS if lang == "json"]
JWKS, HEADER, PAYLOAD = JSON_BLOCKS[:3]
TOKEN = next(body.strip() for lang, body in BLOCKS if body.startswith("eyJ"))

REASON_CODES = [
    "malformed", "bad_type", "alg_not_allowed", "unknown_kid", "bad_signature", "wrong_issuer",
    "wrong_audience", "expired", "not_yet_valid", "issued_in_future", "lifetime_too_long",
    "missing_claim", "missing_jti", "missing_nonce", "wrong_nonce", "replayed", "replayed_nonce",
    "undisclosed_claim", "identity_claim", "no_age_claim", "bad_claim", "jwks_unavailable",
]  # fmt: skip


def _b64(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def test_worked_example_verifies_and_matches_its_decoded_parts() -> None:
    key = jwt.PyJWK(JWKS["keys"][0]).key
    claims = jwt.decode(
        TOKEN,
        key,
        algorithms=["ES256"],
        audience="https://shop.example",
        issuer="https://verifier.example",
        options={"verify_exp": False},
    )
    assert claims == PAYLOAD
    assert jwt.get_unverified_header(TOKEN) == HEADER


def test_worked_example_key_and_kid() -> None:
    d = re.search(r"private scalar `d` is\s+`([\w-]+)`", DOC)
    assert d
    private = ec.derive_private_key(_b64(d.group(1)), ec.SECP256R1())
    assert sdk.jwks(private) == JWKS
    assert JWKS["keys"][0]["kid"] == sdk.jwk_thumbprint(JWKS["keys"][0])


def test_worked_example_passes_the_gateway_checks_while_fresh() -> None:
    findings = check_token(
        TOKEN,
        issuer="https://verifier.example",
        jwks=JWKS,
        audience="https://shop.example",
        nonce=PAYLOAD["nonce"],
        now=PAYLOAD["iat"] + 10,
    )
    assert findings == []
    late = check_token(
        TOKEN, issuer="https://verifier.example", jwks=JWKS, audience=None, nonce=None,
        now=PAYLOAD["exp"] + 31,
    )  # fmt: skip
    assert [finding.code for finding in late] == ["expired"]


@pytest.mark.parametrize("alg", sdk.ALGORITHMS)
def test_sdk_tokens_conform_for_every_algorithm(alg: str) -> None:
    key = sdk.generate_signing_key(alg)
    token = sdk.issue_age_token(
        key,
        issuer="https://p.example",
        audience="https://shop.example",
        nonce="abc",
        age_over={13: True, 18: True, 21: False},
        assurance_level="enhanced",
        age_method="digital_id",
        now=1_767_225_600,
    )
    findings = check_token(
        token,
        issuer="https://p.example",
        jwks=sdk.jwks(key),
        audience="https://shop.example",
        nonce="abc",
        now=1_767_225_601,
    )
    assert findings == []


def test_reason_code_table_lists_every_token_refusal() -> None:
    table = DOC.split("## 6. Refusal reason codes", 1)[1].split("## 7.", 1)[0]
    listed = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert listed == REASON_CODES


def test_redirect_and_form_post_parameters_are_documented() -> None:
    for name in ("client_id", "redirect_uri", "response_mode", "nonce", "state", "min_age"):
        assert f"| `{name}` |" in DOC
    for field in ("age_token", "error", "state"):
        assert f"| `{field}` |" in DOC
