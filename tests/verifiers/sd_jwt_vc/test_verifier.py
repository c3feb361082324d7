"""The sd-jwt-vc verifier: one accepted presentation and one named refusal per defect."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.verifiers.sd_jwt_vc.helpers import NONCE, ORIGIN, Setup, make_setup
from verifiers.base import Presentation, VerificationError, VerifierServices
from verifiers.reference.sd_jwt_issuer import ReferenceCa, ReferenceSdJwtIssuer, disclosure
from verifiers.reference.wallet import Wallet
from verifiers.sd_jwt_vc import SdJwtVcVerifier

DAY = 86400


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


async def refused(setup: Setup, credential: str, **kwargs: Any) -> str:
    with pytest.raises(VerificationError) as caught:
        await setup.verify(credential, **kwargs)
    return caught.value.reason


async def test_accepts_an_age_presentation_and_learns_only_the_threshold(setup: Setup) -> None:
    assertion = await setup.verify(setup.present())
    assert assertion.age_over == frozenset({18})
    assert assertion.age_under == frozenset()
    assert assertion.verifier == "eu-pid"


async def test_accepts_top_level_age_over_claims(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, claim="age_over")
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), style="age_over")
    assert (await setup.verify(setup.present(issued))).age_over == frozenset({18})


async def test_a_false_age_claim_proves_under(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), age_over={18: False})
    assert (await setup.verify(setup.present(issued))).age_under == frozenset({18})


async def test_accepts_an_issuer_key_from_the_jwks(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, jwks_file="jwks.json")
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), use_x5c=False)
    assert (await setup.verify(setup.present(issued))).age_over == frozenset({18})


async def test_wrong_nonce_is_refused(setup: Setup) -> None:
    assert await refused(setup, setup.present(), nonce="another-nonce") == "wrong_nonce"


async def test_wrong_audience_is_refused(setup: Setup) -> None:
    presentation = setup.present(kb={"aud": ORIGIN})
    assert await refused(setup, presentation) == "wrong_audience"


async def test_expired_credential_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), iat=time.time() - 40 * DAY)
    assert await refused(setup, setup.present(issued)) == "expired"


async def test_not_yet_valid_credential_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), nbf=time.time() + 2 * DAY)
    assert await refused(setup, setup.present(issued)) == "not_yet_valid"


async def test_tampered_disclosure_is_refused_as_digest_mismatch(setup: Setup) -> None:
    token, _, end = setup.issuer.issue(setup.wallet.holder_jwk(), age_over={18: False}).split("~")
    forged = f"{token}~{disclosure('18', True)}~{end}"  # the holder flips its own answer
    assert await refused(setup, setup.present(forged)) == "digest_mismatch"


async def test_third_party_tampering_breaks_the_sd_hash(setup: Setup) -> None:
    token, _, kb = setup.present().split("~")
    assert await refused(setup, f"{token}~{disclosure('18', True)}~{kb}") == "sd_hash_mismatch"


async def test_untrusted_issuer_chain_is_refused(setup: Setup) -> None:
    stranger = ReferenceSdJwtIssuer(ca=ReferenceCa(name="someone else's CA"))
    issued = stranger.issue(setup.wallet.holder_jwk())
    assert await refused(setup, setup.present(issued)) == "untrusted_chain"


async def test_missing_key_binding_is_refused(setup: Setup) -> None:
    assert await refused(setup, setup.present(no_kb=True)) == "missing_key_binding"


async def test_key_binding_by_another_key_is_refused(setup: Setup) -> None:
    someone_else = Wallet()
    issued = setup.issuer.issue(someone_else.holder_jwk())
    # A stolen credential presented with the thief's key: the KB-JWT does not verify.
    assert await refused(setup, setup.present(issued)) == "bad_key_binding"


async def test_extra_disclosed_family_name_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), disclosed={"family_name": "Doe"})
    presentation = setup.present(issued, disclose=["family_name"])
    assert await refused(setup, presentation) == "extra_disclosure"


async def test_undisclosed_extra_claims_stay_hidden_and_pass(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), disclosed={"family_name": "Doe"})
    assert (await setup.verify(setup.present(issued))).age_over == frozenset({18})


async def test_reused_credential_is_refused_as_linkable(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk())
    await setup.verify(setup.present(issued))
    with pytest.raises(VerificationError) as caught:
        await setup.verify(setup.present(issued))
    assert caught.value.reason == "linkable_credential"
    assert "seen_before" in str(caught.value)


async def test_reused_credential_passes_in_flag_mode(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, linkability="flag")
    issued = setup.issuer.issue(setup.wallet.holder_jwk())
    await setup.verify(setup.present(issued))
    assert (await setup.verify(setup.present(issued))).age_over == frozenset({18})


async def test_sd_hash_over_another_presentation_is_refused(setup: Setup) -> None:
    assert await refused(setup, setup.present(kb={"sd_hash": "x" * 43})) == "sd_hash_mismatch"


async def test_stale_key_binding_is_refused(setup: Setup) -> None:
    presentation = setup.present(kb={"iat": int(time.time()) - 3600})
    assert await refused(setup, presentation) == "stale_key_binding"


async def test_vct_outside_the_allowlist_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), vct="urn:eudi:pid:1")
    assert await refused(setup, setup.present(issued)) == "wrong_vct"


async def test_identity_claim_in_clear_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), clear={"given_name": "Ann"})
    assert await refused(setup, setup.present(issued)) == "identity_claim"


@pytest.mark.parametrize(
    ("clear", "finding"),
    [
        ({"jti": "cred-42"}, "unique_id"),
        ({"region": "x"}, "extra_element"),
        ({"status": {"status_list": {"idx": 7, "uri": "https://issuer.test/sl"}}}, "status_index"),
    ],
)
async def test_linkable_elements_are_refused(
    setup: Setup, clear: dict[str, Any], finding: str
) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), clear=clear)
    with pytest.raises(VerificationError) as caught:
        await setup.verify(setup.present(issued))
    assert caught.value.reason in ("linkable_credential", "status_unavailable")
    if caught.value.reason == "linkable_credential":
        assert finding in str(caught.value)


async def test_precise_timestamp_is_a_linkability_finding(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), nbf=time.time() - 5)
    with pytest.raises(VerificationError, match="precise_timestamp"):
        await setup.verify(setup.present(issued))


async def test_no_age_claim_disclosed_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk(), age_over={21: True})
    assert await refused(setup, setup.present(issued)) == "no_age_claim"  # asked for 18 only


async def test_wrong_typ_is_refused(setup: Setup) -> None:
    issued = setup.issuer.issue(setup.wallet.holder_jwk())
    token, rest = issued.split("~", 1)
    header, payload, sig = token.split(".")
    assert await refused(setup, f"{payload}.{header}.{sig}~{rest}") in ("malformed", "bad_type")


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    services = VerifierServices(base_dir=str(tmp_path))
    (tmp_path / "j.json").write_text(json.dumps({"keys": []}))
    with pytest.raises(ValueError, match=r"^vct:"):
        SdJwtVcVerifier("x", {"jwks_file": "j.json"}, services)
    with pytest.raises(ValueError, match=r"^trust_anchors:"):
        SdJwtVcVerifier("x", {"vct": ["a"]}, services)
    with pytest.raises(ValueError, match=r"^trust_anchors: no such file"):
        SdJwtVcVerifier("x", {"vct": ["a"], "trust_anchors": "missing.pem"}, services)
    with pytest.raises(ValueError, match=r"^linkability:"):
        SdJwtVcVerifier("x", {"vct": ["a"], "jwks_file": "j.json", "linkability": "x"}, services)
    with pytest.raises(ValueError, match=r"^status_list.refresh:"):
        SdJwtVcVerifier(
            "x", {"vct": ["a"], "jwks_file": "j.json", "status_list": {"refresh": "1s"}}, services
        )


def test_credential_query_asks_only_for_the_age_claim(setup: Setup) -> None:
    query = setup.verifier.credential_query("age", 21)
    assert query["format"] == "dc+sd-jwt"
    assert query["claims"] == [{"path": ["age_equal_or_over", "21"]}]


async def test_presentation_over_size_is_malformed(setup: Setup) -> None:
    assert await refused(setup, "a" * 40_000) == "malformed"


def test_presentation_dataclass_used_as_the_gateway_does() -> None:
    assert Presentation("x", "wallet", {"client_id": "c"}).extra["client_id"] == "c"


async def test_nonce_mismatch_uses_the_request_nonce(setup: Setup) -> None:
    assert (await setup.verify(setup.present(), nonce=NONCE)).age_over == frozenset({18})
