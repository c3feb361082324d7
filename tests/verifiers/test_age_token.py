"""The age-token verifier: config, challenge, every refusal reason, replay, RFC vectors, fuzzing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm

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
    pyjwt_token,
    write_jwks,
)
from verifiers import age_token
from verifiers.age_token import AgeTokenVerifier, parse_config
from verifiers.base import (
    AgegateError,
    AssuranceLevel,
    ChallengeContext,
    VerificationError,
    Verifier,
    VerifyContext,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand, for tokens no library will sign."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(signature)}"


async def refusal(verifier: AgeTokenVerifier, token: str, **ctx: Any) -> str:
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(token), context(**ctx))
    return caught.value.reason


def test_public_names_import() -> None:
    for name in age_token.__all__:
        assert getattr(age_token, name) is not None


def test_satisfies_the_verifier_protocol(verifier: AgeTokenVerifier) -> None:
    assert isinstance(verifier, Verifier)
    assert verifier.kind == "age-token"
    assert verifier.name == "test-token"
    assert verifier.label == "test-token"
    assert verifier.max_session_ttl is None


# --- config -------------------------------------------------------------------------------


def test_config_defaults(jwks_path: Path) -> None:
    config = parse_config("p", {"issuer": ISSUER, "jwks_file": "jwks.json"}, str(jwks_path.parent))
    assert config.algorithms == ("ES256", "ES384", "EdDSA", "PS256")
    assert config.max_token_lifetime == 300
    assert config.jwks_max_stale == 3600
    assert config.assurance_level is AssuranceLevel.BASIC
    assert config.response_mode == "form_post"
    assert config.jwks_file == jwks_path
    assert config.label == "p"
    assert config.allow_claims == frozenset()


def test_config_values_parsed(jwks_path: Path) -> None:
    config = parse_config(
        "p",
        {
            "kind": "age-token",
            "issuer": ISSUER,
            "jwks_uri": "https://age.example/jwks.json",
            "algorithms": ["EdDSA"],
            "authorize_url": "https://age.example/authorize",
            "max_token_lifetime": "2m",
            "assurance_level": "standard",
            "allow_claims": ["txn"],
            "max_session_ttl": "30m",
            "jwks_max_stale": "10m",
            "response_mode": "query",
            "label": "Age Example",
        },
    )
    assert (config.max_token_lifetime, config.max_session_ttl, config.jwks_max_stale) == (
        120,
        1800,
        600,
    )
    assert config.assurance_level is AssuranceLevel.STANDARD
    assert config.allow_claims == frozenset({"txn"})
    assert (config.response_mode, config.label) == ("query", "Age Example")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"issuer": None}, "issuer"),
        ({"issuer": 42}, "issuer"),
        ({"jwks_file": None}, "jwks_uri"),
        ({"jwks_uri": "https://age.example/jwks"}, "jwks_uri"),
        ({"jwks_file": "missing.json"}, "jwks_file"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["ES256", "hs512"]}, "algorithms"),
        ({"algorithms": ["XS999"]}, "algorithms"),
        ({"algorithms": []}, "algorithms"),
        ({"algorithms": "ES256"}, "algorithms"),
        ({"max_token_lifetime": "soon"}, "max_token_lifetime"),
        ({"max_token_lifetime": 0}, "max_token_lifetime"),
        ({"assurance_level": "platinum"}, "assurance_level"),
        ({"allow_claims": "txn"}, "allow_claims"),
        ({"allow_claims": ["birthdate"]}, "allow_claims"),
        ({"allow_claims": ["Given-Name"]}, "allow_claims"),
        ({"max_session_ttl": "-5s"}, "max_session_ttl"),
        ({"jwks_max_stale": True}, "jwks_max_stale"),
        ({"response_mode": "fragment"}, "response_mode"),
        ({"label": ""}, "label"),
        ({"authorize_url": "javascript:alert(1)"}, "authorize_url"),
        ({"authorize_url": "http://age.example/authorize"}, "authorize_url"),
        ({"kind": "privacy-pass"}, "kind"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_config_errors_name_the_key(jwks_path: Path, change: dict[str, Any], key: str) -> None:
    config: dict[str, Any] = {"issuer": ISSUER, "jwks_file": "jwks.json", **change}
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(ValueError, match=rf"^{key}: "):
        parse_config("p", config, str(jwks_path.parent))


def test_http_jwks_uri_allowed_only_on_loopback() -> None:
    for uri in ("http://localhost:8081/jwks", "http://127.0.0.1/jwks", "http://[::1]:9/jwks"):
        assert parse_config("p", {"issuer": ISSUER, "jwks_uri": uri}).jwks_uri == uri
    with pytest.raises(ValueError, match=r"^jwks_uri: must use https"):
        parse_config("p", {"issuer": ISSUER, "jwks_uri": "http://age.example/jwks"})


# --- challenge ----------------------------------------------------------------------------


def challenge_context() -> ChallengeContext:
    return ChallengeContext(
        public_origin=AUDIENCE,
        redirect_uri=f"{AUDIENCE}/.agegate/callback/test-token",
        nonce=NONCE,
        state="st-1",
        min_age=18,
        assurance=AssuranceLevel.BASIC,
    )


def test_start_redirects_with_spec_parameters(jwks_path: Path) -> None:
    verifier = make_verifier(jwks_path, authorize_url="https://age.example/authorize?v=2")
    challenge = verifier.start(challenge_context())
    assert challenge.redirect_url is not None
    url = urlsplit(challenge.redirect_url)
    assert (url.scheme, url.netloc, url.path) == ("https", "age.example", "/authorize")
    assert parse_qs(url.query) == {
        "v": ["2"],
        "client_id": [AUDIENCE],
        "redirect_uri": [f"{AUDIENCE}/.agegate/callback/test-token"],
        "response_mode": ["form_post"],
        "nonce": [NONCE],
        "state": ["st-1"],
        "min_age": ["18"],
    }


def test_start_without_authorize_url_has_no_redirect(verifier: AgeTokenVerifier) -> None:
    challenge = verifier.start(challenge_context())
    assert challenge.redirect_url is None


def test_start_query_response_mode(jwks_path: Path) -> None:
    verifier = make_verifier(
        jwks_path, authorize_url="https://age.example/a", response_mode="query"
    )
    url = verifier.start(challenge_context()).redirect_url or ""
    assert parse_qs(urlsplit(url).query)["response_mode"] == ["query"]


# --- acceptance ---------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "PS256"])
async def test_accepts_each_default_algorithm(
    verifier: AgeTokenVerifier, signers: dict[str, Signer], alg: str
) -> None:
    replay = MemoryReplay()
    claims = good_claims(age_over_16=True, age_over_21=False, age_method="id_document")
    token = pyjwt_token(signers[alg], claims)
    assertion = await verifier.verify(presentation(token), context(replay))
    assert assertion.age_over == frozenset({16, 18})
    assert assertion.age_under == frozenset({21})
    assert assertion.assurance is AssuranceLevel.BASIC
    assert assertion.method == "id_document"
    assert assertion.verifier == "test-token"
    assert assertion.expires_at == datetime.fromtimestamp(NOW + 3600, tz=UTC)
    # jti per issuer and nonce recorded until the token could no longer pass (exp + skew).
    assert replay.calls == [(f"jti:{ISSUER}", claims["exp"] + 30), ("nonce", claims["exp"] + 30)]


async def test_token_assurance_and_session_ttl(jwks_path: Path, signer: Signer) -> None:
    verifier = make_verifier(jwks_path, max_session_ttl="10m", assurance_level="standard")
    plain = await verifier.verify(presentation(pyjwt_token(signer, good_claims())), context())
    assert plain.assurance is AssuranceLevel.STANDARD
    assert plain.expires_at == datetime.fromtimestamp(NOW + 600, tz=UTC)
    token = pyjwt_token(signer, good_claims(assurance_level="enhanced"))
    assert (await verifier.verify(presentation(token), context())).assurance is (
        AssuranceLevel.ENHANCED
    )


async def test_audience_array_and_allowed_extra_claim(jwks_path: Path, signer: Signer) -> None:
    verifier = make_verifier(jwks_path, allow_claims=["txn"])
    claims = good_claims(aud=["https://other.example", AUDIENCE], txn="t-1", nbf=int(NOW) - 1)
    assertion = await verifier.verify(presentation(pyjwt_token(signer, claims)), context())
    assert assertion.age_over == frozenset({18})


async def test_without_expected_nonce_any_nonce_is_accepted(
    verifier: AgeTokenVerifier, signer: Signer
) -> None:
    token = pyjwt_token(signer, good_claims(nonce="api-nonce"))
    await verifier.verify(presentation(token), context(nonce=None))


async def test_skew_of_30_seconds(verifier: AgeTokenVerifier, signer: Signer) -> None:
    late = good_claims(iat=int(NOW) - 200, exp=int(NOW) - 29)
    await verifier.verify(presentation(pyjwt_token(signer, late)), context())
    early = good_claims(iat=int(NOW) + 29, exp=int(NOW) + 200, nbf=int(NOW) + 29)
    await verifier.verify(presentation(pyjwt_token(signer, early)), context())


# --- refusals, one per reason -------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (good_claims(iss="https://evil.example"), "wrong_issuer"),
        (good_claims(iss=DROP), "wrong_issuer"),
        (good_claims(aud="https://other.example"), "wrong_audience"),
        (good_claims(aud=["https://other.example"]), "wrong_audience"),
        (good_claims(aud=DROP), "wrong_audience"),
        (good_claims(iat=DROP), "missing_claim"),
        (good_claims(exp=DROP), "missing_claim"),
        (good_claims(exp="tomorrow"), "bad_claim"),
        (good_claims(iat=int(NOW) - 200, exp=int(NOW) - 30), "expired"),
        (good_claims(iat=int(NOW) + 31, exp=int(NOW) + 200), "issued_in_future"),
        (good_claims(nbf=int(NOW) + 31), "not_yet_valid"),
        (good_claims(iat=int(NOW) - 10, exp=int(NOW) + 291), "lifetime_too_long"),
        (good_claims(iat=int(NOW) + 10, exp=int(NOW) + 5), "bad_claim"),
        (good_claims(jti=DROP), "missing_jti"),
        (good_claims(jti=""), "missing_jti"),
        (good_claims(jti=7), "bad_claim"),
        (good_claims(nonce=DROP), "missing_nonce"),
        (good_claims(nonce="someone-elses-nonce"), "wrong_nonce"),
        (good_claims(nonce=["n"]), "bad_claim"),
        (good_claims(birthdate="2001-02-03"), "identity_claim"),
        (good_claims(sub="user-42"), "identity_claim"),
        (good_claims(Email="a@b.example"), "identity_claim"),
        (good_claims(document_number="X1"), "identity_claim"),
        (good_claims(txn="t-1", family_name="Doe"), "identity_claim"),
        (good_claims(txn="t-1"), "undisclosed_claim"),
        (good_claims(age_over_18="yes"), "bad_claim"),
        (good_claims(age_over_18=1), "bad_claim"),
        (good_claims(age_over_100=True), "bad_claim"),
        (good_claims(age_over_0=True), "bad_claim"),
        (good_claims(age_over_018=True), "bad_claim"),
        (good_claims(age_over_18=DROP), "no_age_claim"),
        (good_claims(assurance_level="platinum"), "bad_claim"),
        (good_claims(assurance_level=3), "bad_claim"),
        (good_claims(age_method=["x"]), "bad_claim"),
    ],
)
async def test_claim_refusals(
    verifier: AgeTokenVerifier, signer: Signer, claims: dict[str, Any], reason: str
) -> None:
    replay = MemoryReplay()
    assert await refusal(verifier, pyjwt_token(signer, claims), replay=replay) == reason
    assert replay.calls == []  # a refused token never consumes its jti or nonce


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"typ": "JWT"}, "bad_type"),
        ({"typ": "at+jwt"}, "bad_type"),
        ({"typ": None}, "bad_type"),
        ({"kid": None}, "unknown_kid"),
        ({"kid": "not-in-jwks"}, "unknown_kid"),
        ({"crit": ["exp"]}, "malformed"),
    ],
)
async def test_header_refusals(
    verifier: AgeTokenVerifier, signer: Signer, header: dict[str, Any], reason: str
) -> None:
    token = pyjwt_token(signer, good_claims(), **header)
    if header.get("typ", "x") is None:  # PyJWT adds typ JWT when none is given: drop it
        parts = token.split(".")
        head = json.loads(base64.urlsafe_b64decode(parts[0] + "=="))
        head.pop("typ")
        token = ".".join([b64(json.dumps(head).encode()), *parts[1:]])
    assert await refusal(verifier, token) == reason


async def test_typ_media_type_form_is_accepted(verifier: AgeTokenVerifier, signer: Signer) -> None:
    token = pyjwt_token(signer, good_claims(), typ="application/Age-Token+JWT")
    await verifier.verify(presentation(token), context())


async def test_alg_none_refused(verifier: AgeTokenVerifier, signer: Signer) -> None:
    token = craft({"alg": "none", "typ": "age-token+jwt", "kid": signer.kid}, good_claims())
    assert await refusal(verifier, token) == "alg_not_allowed"


async def test_hs256_signed_with_the_public_key_refused(
    verifier: AgeTokenVerifier, signer: Signer
) -> None:
    # The classic key-confusion attack: HMAC keyed with the published key's bytes.
    for secret in (
        json.dumps(signer.public_jwk).encode(),
        signer.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    ):
        header = {"alg": "HS256", "typ": "age-token+jwt", "kid": signer.kid}
        unsigned = craft(header, good_claims()).rsplit(".", 1)[0]
        mac = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
        assert await refusal(verifier, f"{unsigned}.{b64(mac)}") == "alg_not_allowed"


async def test_algorithm_outside_the_configured_allowlist(jwks_path: Path, signer: Signer) -> None:
    verifier = make_verifier(jwks_path, algorithms=["EdDSA"])
    assert await refusal(verifier, pyjwt_token(signer, good_claims())) == "alg_not_allowed"


async def test_valid_kid_signed_by_another_key(verifier: AgeTokenVerifier, signer: Signer) -> None:
    impostor = make_signer("ES256", kid=signer.kid)
    assert await refusal(verifier, pyjwt_token(impostor, good_claims())) == "bad_signature"


async def test_kid_of_another_key_type(
    verifier: AgeTokenVerifier, signers: dict[str, Signer]
) -> None:
    # An ES256 token naming the RSA key's kid must not reach RSA verification.
    token = pyjwt_token(signers["ES256"], good_claims(), kid=signers["PS256"].kid)
    assert await refusal(verifier, token) == "bad_signature"


async def test_key_pinned_to_another_alg(tmp_path: Path) -> None:
    signer = make_signer("PS256")
    pinned = {**signer.public_jwk, "alg": "PS256"}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [pinned]}))
    verifier = make_verifier(tmp_path / "jwks.json", algorithms=["PS256", "RS256"])
    token = pyjwt_token(signer, good_claims(), alg="RS256")
    assert await refusal(verifier, token) == "bad_signature"


async def test_tampered_payload(verifier: AgeTokenVerifier, signer: Signer) -> None:
    head, _, sig = pyjwt_token(signer, good_claims(age_over_18=False)).split(".")
    forged = b64(json.dumps(good_claims()).encode())
    assert await refusal(verifier, f"{head}.{forged}.{sig}") == "bad_signature"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.e30.",
        "e30.e30.+/+/",
        "W10.e30.",  # header is a JSON array
        "eyJhIjoxLCJhIjoyfQ.e30.",  # duplicate header member
        "x" * 20000,
    ],
)
async def test_malformed(verifier: AgeTokenVerifier, token: str) -> None:
    assert await refusal(verifier, token) == "malformed"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        ('"nonce": "\\ud800"', "bad_claim"),
        ('"jti": "a\\u0000b"', "bad_claim"),
        ('"iss": "\\udfff"', "wrong_issuer"),
        ('"age_method": "\\ud83d"', "bad_claim"),
        ('"\\ud800": 1', "undisclosed_claim"),
    ],
)
async def test_lone_surrogates_and_controls_refused(
    verifier: AgeTokenVerifier, signer: Signer, member: str, reason: str
) -> None:
    # JSON escapes can smuggle strings that cannot be encoded to bytes later (store, logs).
    claims = good_claims()
    name = member.split(":", maxsplit=1)[0].strip('"')
    claims.pop(name, None)
    body = json.dumps(claims)[:-1] + ", " + member + "}"
    header = b64(json.dumps({"alg": "ES256", "typ": "age-token+jwt", "kid": signer.kid}).encode())
    signing_input = f"{header}.{b64(body.encode())}"
    sig = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), signer.key)
    assert await refusal(verifier, f"{signing_input}.{b64(sig)}") == reason


async def test_duplicate_claims_refused(verifier: AgeTokenVerifier, signer: Signer) -> None:
    header = b64(json.dumps({"alg": "ES256", "typ": "age-token+jwt", "kid": signer.kid}).encode())
    body = json.dumps(good_claims())[:-1] + ', "age_over_18": false}'
    signing_input = f"{header}.{b64(body.encode())}"
    sig = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), signer.key)
    assert await refusal(verifier, f"{signing_input}.{b64(sig)}") == "malformed"


# --- replay -------------------------------------------------------------------------------


async def test_replayed_jti(verifier: AgeTokenVerifier, signer: Signer) -> None:
    replay = MemoryReplay()
    token = pyjwt_token(signer, good_claims())
    await verifier.verify(presentation(token), context(replay))
    assert await refusal(verifier, token, replay=replay) == "replayed"


async def test_replayed_nonce_with_fresh_jti(verifier: AgeTokenVerifier, signer: Signer) -> None:
    replay = MemoryReplay()
    await verifier.verify(presentation(pyjwt_token(signer, good_claims())), context(replay))
    second = pyjwt_token(signer, good_claims())  # new jti, same nonce
    assert await refusal(verifier, second, replay=replay) == "replayed_nonce"


async def test_store_errors_propagate_unchanged(verifier: AgeTokenVerifier, signer: Signer) -> None:
    class DownStore:
        async def consume(self, namespace: str, value: str, expires_at: float) -> bool:
            raise AgegateError("store down", reason="store_unavailable")

    ctx = VerifyContext(audience=AUDIENCE, expected_nonce=NONCE, now=NOW, replay=DownStore())
    with pytest.raises(AgegateError) as caught:
        await verifier.verify(presentation(pyjwt_token(signer, good_claims())), ctx)
    assert caught.value.reason == "store_unavailable"
    assert not isinstance(caught.value, VerificationError)


async def test_errors_carry_no_claim_values(verifier: AgeTokenVerifier, signer: Signer) -> None:
    secret_values = {"jti": "jti-SECRET-1", "nonce": "nonce-SECRET-2", "birthdate": "1999-09-09"}
    token = pyjwt_token(signer, good_claims(**secret_values))
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(token), context())
    text = f"{caught.value} {caught.value.args} {caught.value.reason}"
    assert caught.value.reason == "wrong_nonce"
    assert not any(value in text for value in secret_values.values())
    assert token not in text


# --- RFC vectors --------------------------------------------------------------------------

RFC7515_A3_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
}
RFC7515_A3_JWS = (
    "eyJhbGciOiJFUzI1NiJ9"
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)
RFC8037_A4_KEY = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_A4_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


@pytest.mark.parametrize(
    ("jwk", "jws", "alg"),
    [(RFC7515_A3_KEY, RFC7515_A3_JWS, "ES256"), (RFC8037_A4_KEY, RFC8037_A4_JWS, "EdDSA")],
    ids=["rfc7515-a3-es256", "rfc8037-a4-ed25519"],
)
def test_rfc_example_signatures(jwk: dict[str, str], jws: str, alg: str) -> None:
    from verifiers.jwks import parse_jwks
    from verifiers.token_profile import parse_compact, signature_algorithms, verify_signature

    keys, problems = parse_jwks({"keys": [{**jwk, "kid": "rfc"}]})
    assert problems == []
    algorithm = signature_algorithms([alg])[alg]
    assert verify_signature(parse_compact(jws), algorithm, alg, keys["rfc"])
    head, payload, sig = jws.split(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert not verify_signature(
        parse_compact(f"{head}.{payload}.{flipped}"), algorithm, alg, keys["rfc"]
    )


async def test_rfc7515_a3_token_is_refused_by_the_profile(tmp_path: Path) -> None:
    # A correctly signed JWS that is not an age token: refused for its header, not crashed.
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**RFC7515_A3_KEY, "kid": "a"}]}))
    verifier = make_verifier(tmp_path / "jwks.json")
    assert await refusal(verifier, RFC7515_A3_JWS) == "bad_type"


# --- fuzzing ------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=()), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=()), max_size=8), inner, max_size=3
        )
    ),
    max_leaves=10,
)
_claim_names = st.sampled_from(
    ["iss", "aud", "iat", "exp", "nbf", "jti", "nonce", "age_over_18", "age_over_7",
     "assurance_level", "age_method", "sub", "x"]
)  # fmt: skip


def _run(verifier: AgeTokenVerifier, token: str) -> None:
    with contextlib.suppress(VerificationError):  # the only failure allowed
        asyncio.run(verifier.verify(presentation(token), context()))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.text(max_size=200) | st.from_regex(r"[A-Za-z0-9_=+/.-]{0,120}", fullmatch=True))
def test_fuzz_random_strings_only_raise_verification_error(
    verifier: AgeTokenVerifier, token: str
) -> None:
    _run(verifier, token)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.dictionaries(st.sampled_from(["alg", "typ", "kid", "crit"]), _json_values)
    | _json_values,
    claims=st.dictionaries(_claim_names, _json_values) | _json_values,
    sig=st.binary(max_size=80),
)
def test_fuzz_json_tokens_only_raise_verification_error(
    verifier: AgeTokenVerifier, signer: Signer, header: Any, claims: Any, sig: bytes
) -> None:
    if isinstance(header, dict):
        header = {"alg": "ES256", "typ": "age-token+jwt", "kid": signer.kid, **header}
    _run(verifier, craft(header, claims, sig))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(claims=st.dictionaries(_claim_names, _json_values))
def test_fuzz_signed_claims_only_raise_verification_error(
    verifier: AgeTokenVerifier, signer: Signer, claims: dict[str, Any]
) -> None:
    # Correctly signed, so every claim check runs on arbitrary JSON values.
    _run(verifier, pyjwt_token(signer, {**good_claims(), **claims}))


def test_write_jwks_helper_roundtrip(tmp_path: Path, signers: dict[str, Signer]) -> None:
    path = write_jwks(tmp_path / "k.json", signers.values())
    assert {k["kid"] for k in json.loads(path.read_text())["keys"]} == {
        s.kid for s in signers.values()
    }
