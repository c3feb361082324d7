"""The issuer SDK: tokens carry exactly the profile's claims and verify with PyJWT."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from verifiers import sdk

AUDIENCE = "http://localhost:8080"
ISSUER = "http://localhost:8081"
NOW = 1_750_000_000.0
_KEY = sdk.generate_signing_key()

# RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Qvz"
        "qY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6We"
        "Zu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def _segment(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _issue(key: sdk.PrivateKey, **overrides: object) -> str:
    args: dict[str, object] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "nonce": "n-0123456789abcdef",
        "age_over": {18: True, 21: False},
        "now": NOW,
    }
    args.update(overrides)
    return sdk.issue_age_token(key, **args)  # type: ignore[arg-type]


def test_rfc7638_thumbprint_vector() -> None:
    assert sdk.jwk_thumbprint(RFC7638_JWK) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_ignores_optional_members_and_member_order() -> None:
    reordered = {"e": "AQAB", "use": "sig", "n": RFC7638_JWK["n"], "kty": "RSA"}
    assert sdk.jwk_thumbprint(reordered) == sdk.jwk_thumbprint(RFC7638_JWK)


@pytest.mark.parametrize(
    "jwk", [{"kty": "oct", "k": "AA"}, {"kty": "EC", "crv": "P-256", "x": "a"}]
)
def test_thumbprint_refuses_unknown_or_incomplete_keys(jwk: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        sdk.jwk_thumbprint(jwk)


@pytest.mark.parametrize(
    ("alg", "kty", "crv"),
    [
        ("ES256", "EC", "P-256"),
        ("ES384", "EC", "P-384"),
        ("EdDSA", "OKP", "Ed25519"),
        ("PS256", "RSA", None),
    ],
)
def test_round_trip_for_each_algorithm(alg: str, kty: str, crv: str | None) -> None:
    key = sdk.generate_signing_key(alg)
    token = _issue(key, now=None)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "age-token+jwt", "kid": sdk.public_jwk(key)["kid"]}
    claims = jwt.decode(token, key.public_key(), algorithms=[alg], audience=AUDIENCE, issuer=ISSUER)
    assert claims["age_over_18"] is True
    assert claims["age_over_21"] is False
    jwk = sdk.public_jwk(key)
    assert (jwk["kty"], jwk.get("crv"), jwk["alg"], jwk["use"]) == (kty, crv, alg, "sig")
    assert jwk["kid"] == sdk.jwk_thumbprint(jwk)
    # The published JWK verifies the token on its own (what a gateway does).
    published = jwt.PyJWK(jwk)
    assert jwt.decode(token, published.key, algorithms=[alg], audience=AUDIENCE)["nonce"]


def test_claims_are_exactly_the_profile() -> None:
    key = sdk.generate_signing_key()
    token = _issue(key, assurance_level="Standard", age_method="id_document", jti="fixed-id")
    assert _segment(token, 1) == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": 1_750_000_000,
        "exp": 1_750_000_120,
        "jti": "fixed-id",
        "nonce": "n-0123456789abcdef",
        "age_over_18": True,
        "age_over_21": False,
        "assurance_level": "standard",
        "age_method": "id_document",
    }


def test_optional_claims_are_absent_unless_given() -> None:
    claims = _segment(_issue(sdk.generate_signing_key()), 1)
    assert "assurance_level" not in claims
    assert "age_method" not in claims
    assert "nbf" not in claims


def test_jti_is_random_128_bit_base64url() -> None:
    key = sdk.generate_signing_key()
    ids = {_segment(_issue(key), 1)["jti"] for _ in range(20)}
    assert len(ids) == 20
    for jti in ids:
        assert isinstance(jti, str)
        assert len(base64.urlsafe_b64decode(jti + "==")) == 16


def test_explicit_kid_is_used() -> None:
    token = _issue(sdk.generate_signing_key(), kid="2026-01")
    assert _segment(token, 0)["kid"] == "2026-01"


@pytest.mark.parametrize(
    "age_over",
    [{}, {0: True}, {100: True}, {-1: True}, {True: True}, {"18": True}, {18: "yes"}, {18: 1}],
)
def test_refuses_bad_thresholds(age_over: dict[object, object]) -> None:
    with pytest.raises(ValueError):
        _issue(sdk.generate_signing_key(), age_over=age_over)


@given(st.integers(min_value=1, max_value=99), st.booleans())
def test_every_threshold_from_1_to_99_is_accepted(threshold: int, proven: bool) -> None:
    token = _issue(_KEY, age_over={threshold: proven})
    assert _segment(token, 1)[f"age_over_{threshold}"] is proven


@pytest.mark.parametrize("lifetime", [0, -5, 301, 1e9, True])
def test_refuses_lifetime_outside_bounds(lifetime: float) -> None:
    with pytest.raises(ValueError):
        _issue(_KEY, lifetime=lifetime)


def test_max_lifetime_can_be_raised() -> None:
    claims = _segment(_issue(_KEY, lifetime=600, max_lifetime=900), 1)
    assert claims["exp"] - claims["iat"] == 600


def test_fractional_lifetime_never_exceeds_request() -> None:
    claims = _segment(_issue(_KEY, now=NOW + 0.9, lifetime=120.7), 1)
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": ""},
        {"audience": " "},
        {"nonce": ""},
        {"assurance_level": "gold"},
        {"age_method": ""},
        {"age_method": "m" * 65},
        {"nonce": "n" * 513},
        {"jti": "j" * 513},
        {"nonce": "with space"},
        {"jti": "caf\u00e9"},
        {"nonce": "\ud800"},
        {"age_method": "id\ndocument"},
    ],
)
def test_refuses_empty_or_unknown_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _issue(_KEY, **overrides)


def test_refuses_unsupported_keys() -> None:
    with pytest.raises(ValueError):
        sdk.algorithm_for(ec.generate_private_key(ec.SECP521R1()))
    with pytest.raises(ValueError):
        sdk.algorithm_for(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ValueError):
        sdk.generate_signing_key("HS256")


def test_ec_coordinates_are_full_length() -> None:
    # RFC 7518 §6.2.1.2: x and y keep leading zero bytes (32 bytes for P-256).
    for _ in range(40):
        jwk = sdk.public_jwk(ec.generate_private_key(ec.SECP256R1()))
        assert len(base64.urlsafe_b64decode(jwk["x"] + "=")) == 32
        assert len(base64.urlsafe_b64decode(jwk["y"] + "=")) == 32


def test_jwks_holds_public_keys_only_and_refuses_duplicate_kids() -> None:
    keys = [sdk.generate_signing_key(alg) for alg in ("ES256", "EdDSA")]
    document = sdk.jwks(*keys)
    assert [entry["kid"] for entry in document["keys"]] == [sdk.public_jwk(k)["kid"] for k in keys]
    for entry in document["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(entry)
    with pytest.raises(ValueError):
        sdk.jwks(keys[0], keys[0])


def test_pem_round_trip() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    loaded = sdk.load_signing_key(sdk.signing_key_pem(key))
    assert sdk.public_jwk(loaded) == sdk.public_jwk(key)


def test_public_names_import() -> None:
    for name in sdk.__all__:
        assert hasattr(sdk, name)
