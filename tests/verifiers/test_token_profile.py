"""The age-token profile checks: every deviation of a sample token is reported, one finding each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.verifiers.tokens import (
    AUDIENCE,
    DROP,
    ISSUER,
    NONCE,
    NOW,
    Signer,
    good_claims,
    make_signer,
    pyjwt_token,
    write_jwks,
)
from verifiers import token_profile
from verifiers.token_profile import check_token, load_jwks


def codes(signer: Signer, token: str, **kwargs: object) -> list[str]:
    options: dict[str, object] = {
        "issuer": ISSUER,
        "jwks": {"keys": [signer.public_jwk]},
        "audience": AUDIENCE,
        "nonce": NONCE,
        "now": NOW,
        **kwargs,
    }
    return [f.code for f in check_token(token, **options)]  # type: ignore[arg-type]


def test_public_names_import() -> None:
    for name in token_profile.__all__:
        assert getattr(token_profile, name) is not None


def test_conforming_token_has_no_findings(signer: Signer) -> None:
    assert codes(signer, pyjwt_token(signer, good_claims())) == []


def test_every_deviation_is_reported(signer: Signer) -> None:
    claims = good_claims(
        iss="https://evil.example",
        aud="https://other.example",
        iat=int(NOW) - 10,
        exp=int(NOW) + 3600,
        jti=DROP,
        nonce="foreign",
        birthdate="2000-01-01",
        tracking="x",
        age_over_18=DROP,
    )
    found = codes(signer, pyjwt_token(signer, claims, typ="JWT"))
    assert found == [
        "bad_type",
        "wrong_issuer",
        "wrong_audience",
        "lifetime_too_long",
        "missing_jti",
        "wrong_nonce",
        "identity_claim",
        "undisclosed_claim",
        "no_age_claim",
    ]


def test_key_problems_are_reported(signer: Signer) -> None:
    other = make_signer("ES256", kid=signer.kid)
    assert codes(signer, pyjwt_token(other, good_claims())) == ["bad_signature"]
    assert codes(signer, pyjwt_token(signer, good_claims(), kid="nope")) == ["unknown_kid"]
    assert codes(signer, pyjwt_token(signer, good_claims(), kid=None)) == ["unknown_kid"]
    jwks = {"keys": [signer.public_jwk, {"kty": "oct", "kid": "h", "k": "AA"}]}
    assert codes(signer, pyjwt_token(signer, good_claims()), jwks=jwks) == ["jwks_invalid"]


def test_unknown_audience_and_nonce_check_presence_only(signer: Signer) -> None:
    token = pyjwt_token(signer, good_claims(nonce="whatever"))
    assert codes(signer, token, audience=None, nonce=None) == []
    token = pyjwt_token(signer, good_claims(nonce=DROP, aud=DROP))
    assert codes(signer, token, audience=None, nonce=None) == ["wrong_audience", "missing_nonce"]


def test_malformed_token_is_one_finding(signer: Signer) -> None:
    assert codes(signer, "not-a-token") == ["malformed"]


def test_custom_lifetime(signer: Signer) -> None:
    token = pyjwt_token(signer, good_claims(iat=int(NOW), exp=int(NOW) + 120))
    assert codes(signer, token, max_lifetime=60) == ["lifetime_too_long"]


async def test_load_jwks_from_file(tmp_path: Path, signer: Signer) -> None:
    path = write_jwks(tmp_path / "jwks.json", [signer])
    assert await load_jwks(str(path)) == json.loads(path.read_text())
    with pytest.raises(ValueError, match="could not be read"):
        await load_jwks(str(tmp_path / "missing.json"))


# -- unverified_claims: the one unverified payload reader --------------------------------


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@given(st.binary(max_size=20_000))
@settings(max_examples=300)
def test_unverified_claims_never_raises_on_any_payload_bytes(payload: bytes) -> None:
    token = f"{_b64(b'{}')}.{_b64(payload)}.{_b64(b'sig')}"
    claims = token_profile.unverified_claims(token)
    assert claims is None or isinstance(claims, dict)


@given(st.text(max_size=300))
def test_unverified_claims_never_raises_on_any_text(token: str) -> None:
    claims = token_profile.unverified_claims(token)
    assert claims is None or isinstance(claims, dict)


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=10,
        ),
        max_size=5,
    )
)
def test_unverified_claims_reads_what_was_written(claims: dict[str, object]) -> None:
    token = f"{_b64(b'{}')}.{_b64(json.dumps(claims).encode())}.{_b64(b'sig')}"
    assert token_profile.unverified_claims(token) == claims


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_unverified_claims_of_deeply_nested_payload_is_none(depth: int) -> None:
    token = f"{_b64(b'{}')}.{_b64(b'[' * depth + b']' * depth)}.{_b64(b'sig')}"
    assert token_profile.unverified_claims(token) is None


@pytest.mark.parametrize(
    "token",
    [
        "a.b",  # two parts
        "a.b.c.d",
        f"x.{_b64(b'[1]')}.y",  # not an object
        "x." + _b64(b'{"a":1,"a":2}') + ".y",  # duplicate member
        "x." + _b64(b'{"a":NaN}') + ".y",
        f"x.{_b64(b'{}')}+.y",  # not base64url
        "x." + "A" * 20_000 + ".y",  # over the size bound
    ],
)
def test_unverified_claims_refuses_what_the_verifier_refuses(token: str) -> None:
    assert token_profile.unverified_claims(token) is None
