"""Interop: tokens minted by the npm ``jose`` library (another JOSE stack) against our verifier.

Keys are generated here in Python; ``mint.mjs`` signs with jose; the verifier
and the profile checks (``check_token``) must agree with SPEC §5 on every token.  Node and
``node_modules`` are required: ``make test`` runs ``npm ci`` here first.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.verifiers.tokens import (
    AUDIENCE,
    DROP,
    ISSUER,
    NONCE,
    NOW,
    MemoryReplay,
    Signer,
    context,
    good_claims,
    make_signer,
    make_verifier,
    presentation,
    write_jwks,
)
from verifiers.age_token import AgeTokenVerifier
from verifiers.base import VerificationError
from verifiers.token_profile import check_token

HERE = Path(__file__).parent
ALGS = ("ES256", "EdDSA", "PS256")


@dataclass(frozen=True)
class Case:
    """One jose-minted token and what the verifier must make of it."""

    signer: str = "ES256"  # which key signs: an alg of ALGS, or "other" / "hs-jwk" / "hs-pem"
    claims: dict[str, Any] = field(default_factory=good_claims)
    header: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # None: accepted


CASES: dict[str, Case] = {
    "es256": Case("ES256"),
    "eddsa": Case("EdDSA"),
    "ps256": Case("PS256"),
    "expired": Case(claims=good_claims(iat=int(NOW) - 400, exp=int(NOW) - 100), reason="expired"),
    "lifetime_too_long": Case(
        claims=good_claims(iat=int(NOW), exp=int(NOW) + 3600), reason="lifetime_too_long"
    ),
    "wrong_audience": Case(claims=good_claims(aud="https://evil.example"), reason="wrong_audience"),
    "wrong_issuer": Case(claims=good_claims(iss="https://evil.example"), reason="wrong_issuer"),
    "hs256_public_jwk": Case("hs-jwk", reason="alg_not_allowed"),
    "hs256_public_pem": Case("hs-pem", reason="alg_not_allowed"),
    "unknown_kid": Case(header={"kid": "never-published"}, reason="unknown_kid"),
    "other_key_same_kid": Case("other", reason="bad_signature"),
    "missing_jti": Case(claims=good_claims(jti=DROP), reason="missing_jti"),
    "missing_nonce": Case(claims=good_claims(nonce=DROP), reason="missing_nonce"),
    "foreign_nonce": Case(claims=good_claims(nonce="n-from-elsewhere"), reason="wrong_nonce"),
    "wrong_typ": Case(header={"typ": "JWT"}, reason="bad_type"),
    "identity_claim": Case(claims=good_claims(birthdate="2001-02-03"), reason="identity_claim"),
    "under_18": Case(claims=good_claims(age_over_18=False)),
    "only_16": Case(claims=good_claims(age_over_18=DROP, age_over_16=True)),
    "replayed": Case(),
}


@pytest.fixture(scope="module")
def node() -> str:
    node_bin = shutil.which("node")
    if node_bin is None:
        pytest.fail("node is not installed: the interop suite needs Node.js >= 20")
    if not (HERE / "node_modules" / "jose" / "package.json").is_file():
        pytest.fail(
            "tests/interop/node_modules is missing: run `npm ci` in tests/interop "
            "(`make interop-deps` does it)"
        )
    return node_bin


@pytest.fixture(scope="module")
def keys() -> dict[str, Signer]:
    signers = {alg: make_signer(alg) for alg in ALGS}
    signers["other"] = make_signer("ES256", kid=signers["ES256"].kid)  # same kid, not published
    return signers


def mint(node: str, specs: list[dict[str, Any]]) -> list[str]:
    result = subprocess.run(
        [node, str(HERE / "mint.mjs")],
        input=json.dumps(specs),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"mint.mjs failed: {result.stderr}"
    tokens = result.stdout.split()
    assert len(tokens) == len(specs)
    return tokens


def spec_for(case: Case, keys: dict[str, Signer]) -> dict[str, Any]:
    es256 = keys["ES256"]
    header = {"typ": "age-token+jwt", **case.header}
    if case.signer in ("hs-jwk", "hs-pem"):
        # Key confusion: HMAC keyed with the bytes of the *published* public key.
        secret = (
            json.dumps(es256.public_jwk)
            if case.signer == "hs-jwk"
            else es256.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return {
            "alg": "HS256",
            "secret": secret,
            "header": {"kid": es256.kid, **header},
            "claims": case.claims,
        }
    signer = keys[case.signer]
    return {
        "alg": signer.alg,
        "jwk": signer.private_jwk,
        "header": {"kid": signer.kid, **header},
        "claims": case.claims,
    }


@pytest.fixture(scope="module")
def tokens(node: str, keys: dict[str, Signer]) -> dict[str, str]:
    """Every case minted by jose in one node process."""
    return dict(zip(CASES, mint(node, [spec_for(c, keys) for c in CASES.values()]), strict=True))


@pytest.fixture
def verifier(tmp_path: Path, keys: dict[str, Signer]) -> AgeTokenVerifier:
    jwks = write_jwks(tmp_path / "jwks.json", [keys[alg] for alg in ALGS])
    return make_verifier(jwks, name="jose-provider")


def test_jose_mints_what_we_asked(tokens: dict[str, str], keys: dict[str, Signer]) -> None:
    header = json.loads(base64.urlsafe_b64decode(tokens["es256"].split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": keys["ES256"].kid, "typ": "age-token+jwt"}


@pytest.mark.parametrize("name", ["es256", "eddsa", "ps256"])
async def test_accepted_for_each_algorithm(
    verifier: AgeTokenVerifier, tokens: dict[str, str], name: str
) -> None:
    assertion = await verifier.verify(presentation(tokens[name]), context())
    assert assertion.age_over == frozenset({18})
    assert assertion.age_under == frozenset()
    assert assertion.verifier == "jose-provider"


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.reason is not None])
async def test_refused_with_its_own_reason(
    verifier: AgeTokenVerifier, tokens: dict[str, str], name: str
) -> None:
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(tokens[name]), context())
    assert caught.value.reason == CASES[name].reason


async def test_alg_none_refused(verifier: AgeTokenVerifier, keys: dict[str, Signer]) -> None:
    # jose will not produce an unsecured token, so it is crafted by hand.
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    header = {"alg": "none", "typ": "age-token+jwt", "kid": keys["ES256"].kid}
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(f"{b64(header)}.{b64(good_claims())}."), context())
    assert caught.value.reason == "alg_not_allowed"


async def test_age_over_18_false_is_proven_under(
    verifier: AgeTokenVerifier, tokens: dict[str, str]
) -> None:
    assertion = await verifier.verify(presentation(tokens["under_18"]), context())
    assert (assertion.age_over, assertion.age_under) == (frozenset(), frozenset({18}))


async def test_only_age_over_16(verifier: AgeTokenVerifier, tokens: dict[str, str]) -> None:
    assertion = await verifier.verify(presentation(tokens["only_16"]), context())
    assert (assertion.age_over, assertion.age_under) == (frozenset({16}), frozenset())


async def test_same_jti_twice_is_replayed(
    verifier: AgeTokenVerifier, tokens: dict[str, str]
) -> None:
    replay = MemoryReplay()
    await verifier.verify(presentation(tokens["replayed"]), context(replay))
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(tokens["replayed"]), context(replay))
    assert caught.value.reason == "replayed"


def findings(token: str, keys: dict[str, Signer]) -> list[str]:
    jwks = {"keys": [keys[alg].public_jwk for alg in ALGS]}
    return [
        f.code
        for f in check_token(
            token, issuer=ISSUER, jwks=jwks, audience=AUDIENCE, nonce=NONCE, now=NOW
        )
    ]


def test_profile_checks_pass_good_jose_tokens(
    tokens: dict[str, str], keys: dict[str, Signer]
) -> None:
    for name in ("es256", "eddsa", "ps256", "under_18", "only_16"):
        assert findings(tokens[name], keys) == [], name


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.reason is not None])
def test_profile_checks_report_each_planted_deviation(
    tokens: dict[str, str], keys: dict[str, Signer], name: str
) -> None:
    assert CASES[name].reason in findings(tokens[name], keys)


def test_profile_checks_report_all_deviations_of_one_token(
    node: str, keys: dict[str, Signer]
) -> None:
    claims = good_claims(
        aud="https://evil.example",
        iat=int(NOW) - 10,
        exp=int(NOW) + 900,
        nonce="n-from-elsewhere",
        jti=DROP,
        email="x@y.example",
        session="s",
    )
    planted = Case("PS256", claims=claims, header={"typ": "jwt"})
    (token,) = mint(node, [spec_for(planted, keys)])
    assert findings(token, keys) == [
        "bad_type",
        "wrong_audience",
        "lifetime_too_long",
        "missing_jti",
        "wrong_nonce",
        "identity_claim",
        "undisclosed_claim",
    ]
