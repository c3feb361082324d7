"""The privacy-pass verifier: challenges, redemption, every refusal with its reason code."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.verifiers.privacy_pass.helpers import (
    ISSUER_NAME,
    MemoryReplay,
    context,
    header,
    make_verifier,
    mint,
    write_keys,
)
from verifiers.base import AssuranceLevel, ChallengeContext, Presentation, VerificationError
from verifiers.privacy_pass import PrivacyPassVerifier, blindrsa
from verifiers.privacy_pass.challenges import WINDOW
from verifiers.privacy_pass.client import parse_private_token_challenges
from verifiers.privacy_pass.structs import (
    Token,
    TokenChallenge,
    b64url_decode,
    b64url_encode,
    parse_challenges,
)
from verifiers.reference.issuer import IssuerKey

NOW = 1_780_000_000.0


@pytest.fixture
def token_keys(tmp_path: Path, issuer_keys: dict[int, IssuerKey]) -> dict[str, str]:
    return write_keys(tmp_path, issuer_keys)


@pytest.fixture
def verifier(token_keys: dict[str, str]) -> PrivacyPassVerifier:
    return make_verifier(token_keys)


def _api(credential: str) -> Presentation:
    return Presentation(credential, "authorization")


async def _refused(verifier: PrivacyPassVerifier, presentation: Presentation, **ctx: Any) -> str:
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation, context(NOW, **ctx))
    return caught.value.reason


def test_api_challenges_one_per_key_at_or_above_min_age(verifier: PrivacyPassVerifier) -> None:
    values = verifier.api_challenge(18, now=NOW)
    assert len(values) == 2
    assert len(verifier.api_challenge(21, now=NOW)) == 1
    assert verifier.api_challenge(25, now=NOW) == []
    for value in values:
        [parsed] = parse_challenges(value)
        assert parsed.scheme == "PrivateToken"
        assert set(parsed.params) == {"challenge", "token-key"}
        assert value.count('"') == 4  # both values quoted (RFC 9577 §2.1: padded b64url)
    offered = parse_private_token_challenges(values)
    assert [o.token_key.spki for o in offered] == [k.spki for _, k in verifier.config.keys]
    challenge = offered[0].challenge
    assert challenge.token_type == 2
    assert challenge.issuer_name == ISSUER_NAME
    assert challenge.origin_info == ("localhost:8080",)
    assert len(challenge.redemption_context) == 32


async def test_accepts_a_token_for_our_api_challenge(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    token = mint(verifier.challenges.for_api(NOW), issuer_keys[21])
    assertion = await verifier.verify(_api(header(token)), context(NOW))
    assert assertion.age_over == frozenset({21})
    assert assertion.age_under == frozenset()
    assert assertion.method == "privacy_pass"
    assert assertion.verifier == "test-pp"
    assert assertion.assurance is AssuranceLevel.BASIC
    assert assertion.expires_at.timestamp() == NOW + 3600


async def test_redemption_reuses_the_key_built_at_load(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey], monkeypatch: Any
) -> None:
    token = mint(verifier.challenges.for_api(NOW), issuer_keys[18])

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the RSA public key was rebuilt for one token")

    monkeypatch.setattr(blindrsa.rsa, "RSAPublicNumbers", no_rebuild)
    assert (await verifier.verify(_api(header(token)), context(NOW))).age_over == {18}
    forged = dataclasses.replace(token, authenticator=bytes(len(token.authenticator)))
    assert await _refused(verifier, _api(header(forged))) == "bad_signature"


async def test_previous_window_accepted_older_refused(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    previous = mint(verifier.challenges.for_api(NOW - WINDOW), issuer_keys[18])
    assert (await verifier.verify(_api(header(previous)), context(NOW))).age_over == {18}
    stale = mint(verifier.challenges.for_api(NOW - 2 * WINDOW), issuer_keys[18])
    assert await _refused(verifier, _api(header(stale))) == "wrong_challenge"


async def test_browser_token_is_bound_to_the_cookie_nonce(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    token = mint(verifier.challenges.for_browser("nonce-A"), issuer_keys[18])
    credential = b64url_encode(token.serialize())
    assert await _refused(verifier, Presentation(credential, "callback"), nonce="nonce-B") == (
        "wrong_challenge"
    )
    # An API-style challenge does not pass in the browser flow either.
    api = mint(verifier.challenges.for_api(NOW), issuer_keys[18])
    assert (
        await _refused(
            verifier, Presentation(b64url_encode(api.serialize()), "callback"), nonce="n"
        )
        == "wrong_challenge"
    )
    ok = await verifier.verify(Presentation(credential, "callback"), context(NOW, nonce="nonce-A"))
    assert ok.age_over == {18}


async def test_refuses_wrong_token_type(verifier: PrivacyPassVerifier) -> None:
    voprf_like = b"\x00\x01" + bytes(2 + 32 + 32 + 48 - 2)
    assert await _refused(verifier, _api(f'token="{b64url_encode(voprf_like)}"')) == "bad_type"


async def test_refuses_token_for_another_origin(
    token_keys: dict[str, str], issuer_keys: dict[int, IssuerKey]
) -> None:
    verifier = make_verifier(token_keys)
    other = make_verifier(token_keys, origin_info=["localhost:8080", "other.example"])
    token = mint(other.challenges.for_api(NOW), issuer_keys[18])
    assert await _refused(verifier, _api(header(token))) == "wrong_challenge"
    foreign = TokenChallenge(2, ISSUER_NAME, b"", ("evil.example",))
    assert await _refused(verifier, _api(header(mint(foreign, issuer_keys[18])))) == (
        "wrong_challenge"
    )


async def test_refuses_token_for_another_issuer_name(
    token_keys: dict[str, str], issuer_keys: dict[int, IssuerKey]
) -> None:
    verifier = make_verifier(token_keys)
    challenge = dataclasses.replace(verifier.challenges.for_api(NOW), issuer_name="evil.example")
    assert await _refused(verifier, _api(header(mint(challenge, issuer_keys[18])))) == (
        "wrong_challenge"
    )


async def test_refuses_unknown_key(verifier: PrivacyPassVerifier, stranger_key: IssuerKey) -> None:
    token = mint(verifier.challenges.for_api(NOW), stranger_key)
    assert await _refused(verifier, _api(header(token))) == "unknown_key"


async def test_refuses_bad_signature(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    token = mint(verifier.challenges.for_api(NOW), issuer_keys[18])
    flipped = bytearray(token.authenticator)
    flipped[100] ^= 0x40
    forged = dataclasses.replace(token, authenticator=bytes(flipped))
    assert await _refused(verifier, _api(header(forged))) == "bad_signature"
    # The 21 key id on a token signed by the 18 key: claims a higher age, must not verify.
    upgraded = dataclasses.replace(token, token_key_id=issuer_keys[21].public.token_key_id)
    assert await _refused(verifier, _api(header(upgraded))) == "bad_signature"


async def test_refuses_double_spend(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    replay = MemoryReplay()
    token = mint(verifier.challenges.for_api(NOW), issuer_keys[18])
    await verifier.verify(_api(header(token)), context(NOW, replay))
    assert await _refused(verifier, _api(header(token)), replay=replay) == "replayed"
    [(namespace, _)] = replay.seen
    assert namespace == "pp:" + ISSUER_NAME


async def test_refused_token_does_not_burn_its_nonce(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    replay = MemoryReplay()
    token = mint(verifier.challenges.for_api(NOW), issuer_keys[18])
    bad = dataclasses.replace(token, authenticator=bytes(256))
    assert await _refused(verifier, _api(header(bad)), replay=replay) == "bad_signature"
    assert replay.seen == {}


@pytest.mark.parametrize(
    "credential",
    [
        "",
        "token=",
        'token="%%%"',
        'token="AAAA"',  # two bytes of type 0 then nothing
        "token=AAIA",  # type 2, truncated
        'token="abc',  # unterminated quote
        'token="a", token="b"',
        "nonsense",
        'tokenx="AAIA"',
        "token=" + "A" * 10000,
    ],
)
async def test_malformed_credentials(verifier: PrivacyPassVerifier, credential: str) -> None:
    assert await _refused(verifier, _api(credential)) in {"malformed", "bad_type"}


async def test_truncated_and_extended_tokens_are_malformed(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    raw = mint(verifier.challenges.for_api(NOW), issuer_keys[18]).serialize()
    for bad in (raw[:-1], raw + b"\x00", raw[:2], raw[:100]):
        assert await _refused(verifier, _api(f'token="{b64url_encode(bad)}"')) == "malformed"


async def test_unquoted_and_unpadded_tokens_accepted(
    verifier: PrivacyPassVerifier, issuer_keys: dict[int, IssuerKey]
) -> None:
    token = mint(verifier.challenges.for_api(NOW), issuer_keys[18])
    text = b64url_encode(token.serialize()).rstrip("=")
    assert (await verifier.verify(_api(f"token={text}"), context(NOW))).age_over == {18}


async def test_empty_redemption_context(
    token_keys: dict[str, str], issuer_keys: dict[int, IssuerKey]
) -> None:
    verifier = make_verifier(token_keys, redemption_context="empty")
    challenge = verifier.challenges.for_api(NOW)
    assert challenge.redemption_context == b""
    token = mint(challenge, issuer_keys[18])
    # Still valid much later: only double spending limits an empty-context token.
    assert (await verifier.verify(_api(header(token)), context(NOW + 86400))).age_over == {18}


def test_start_redirect_carries_the_browser_challenge(token_keys: dict[str, str]) -> None:
    assert make_verifier(token_keys).start(_ctx(18)).redirect_url is None  # no authorize_url
    verifier = make_verifier(
        {"18": token_keys["18"]}, authorize_url="http://localhost:8081/pp/authorize"
    )
    url = verifier.start(_ctx(18)).redirect_url
    assert url is not None and url.startswith("http://localhost:8081/pp/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["nonce"] == "N" and query["state"] == "S" and query["min_age"] == "18"
    assert query["response_mode"] == "form_post"
    challenge = TokenChallenge.parse(b64url_decode(query["challenge"]))
    assert challenge == verifier.challenges.for_browser("N")
    assert verifier.start(_ctx(21)).redirect_url is None  # no key proves 21: no button


def _ctx(min_age: int) -> ChallengeContext:
    return ChallengeContext(
        public_origin="http://localhost:8080",
        redirect_uri="http://localhost:8080/.agegate/callback/test-pp",
        nonce="N",
        state="S",
        min_age=min_age,
        assurance=AssuranceLevel.BASIC,
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"issuer_name": None}, "issuer_name"),
        ({"issuer_name": "user@issuer"}, "issuer_name"),
        ({"token_keys": {}}, "token_keys"),
        ({"token_keys": {"eighteen": "x.pem"}}, "token_keys"),
        ({"token_keys": {"18": "missing.pem"}}, "token_keys.18"),
        ({"origin_info": ["other.example"]}, "origin_info"),
        ({"redemption_context": "random"}, "redemption_context"),
        ({"assurance_level": "superb"}, "assurance_level"),
        ({"authorize_url": "http://issuer.example/pp"}, "authorize_url"),
        ({"jwks_uri": "x"}, "jwks_uri"),
        ({"kind": "age-token"}, "kind"),
    ],
)
def test_config_errors_name_the_key(
    token_keys: dict[str, str], config: dict[str, Any], message: str
) -> None:
    keys = config.pop("token_keys", token_keys)
    with pytest.raises(ValueError, match=message):
        make_verifier(keys, **config)


def test_same_key_under_two_thresholds_is_refused(token_keys: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="twice"):
        make_verifier({"18": token_keys["18"], "21": token_keys["18"]})


def test_rotation_list_of_keys(token_keys: dict[str, str]) -> None:
    verifier = make_verifier({"18": [token_keys["18"], token_keys["21"]]})
    assert [n for n, _ in verifier.config.keys] == [18, 18]


def test_token_roundtrip_struct(issuer_keys: dict[int, IssuerKey]) -> None:
    token = mint(TokenChallenge(2, ISSUER_NAME, b"", ()), issuer_keys[18])
    assert Token.parse(token.serialize()) == token
