"""Interop: DeviceResponses built by npm ``@auth0/mdl`` 3.0.1 against our ``eu-av`` verifier.

``mdl.mjs`` makes its own IACA -> Document Signer chain with ``@peculiar/x509``,
issues ``eu.europa.ec.av.1`` (and mDL) credentials with ``@auth0/mdl`` and
signs each DeviceResponse over an OpenID4VP 1.0 SessionTranscript it computes
itself, so nothing on that side is agegate's code.  Each planted defect must be
refused with its own reason.  Node and ``node_modules`` are required
(``make interop-deps`` runs ``npm ci`` here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.node import require_package, run_node_json
from tests.verifiers.mdoc.helpers import CLIENT_ID, NONCE, NOW_DT, RESPONSE_URI, context
from tests.verifiers.mdoc.helpers import presentation as wallet_presentation
from tests.verifiers.tokens import MemoryReplay
from verifiers.base import VerificationError, VerifierServices
from verifiers.mdoc import EuAvVerifier

HERE = Path(__file__).parent
OTHER_NONCE = "n-of-another-request"

CASES: dict[str, dict[str, Any]] = {
    "ok": {},
    "under_18": {"age_over_18": False},
    "mdl": {"mdl": True},
    "wrong_nonce": {"nonce": OTHER_NONCE},
    "wrong_client_id": {"client_id": "redirect_uri:https://evil.example/cb"},
    "wrong_response_uri": {"response_uri": "https://evil.example/cb"},
    "expired": {"valid_from_days": -100, "valid_until_days": -10},
    "not_yet_valid": {"valid_from_days": 10, "valid_until_days": 100},
    "tampered": {"tamper": True},
    "device_mac": {"mac": True},
    "family_name": {"extra": {"family_name": "Jones"}, "disclose_extra": ["family_name"]},
    "precise_signed_time": {"precise": True},
    "reused_first": {},
    "reused_again": {"same_credential_as": "reused_first", "nonce": "n-second-visit"},
}

REFUSALS = {
    "wrong_nonce": "bad_device_signature",
    "wrong_client_id": "bad_device_signature",
    "wrong_response_uri": "bad_device_signature",
    "expired": "expired",
    "not_yet_valid": "not_yet_valid",
    "tampered": "digest_mismatch",
    "device_mac": "missing_device_signature",
    "family_name": "extra_disclosure",
    "precise_signed_time": "linkable_credential",
}


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    # An interop test that skips proves nothing: fail, saying what to install.
    require_package(HERE, "@auth0/mdl")
    request = {
        "now": NOW_DT.isoformat(),
        "client_id": CLIENT_ID,
        "response_uri": RESPONSE_URI,
        "nonce": NONCE,
        "cases": CASES,
    }
    return run_node_json(HERE / "mdl.mjs", request, timeout=120)


def _verifier(tmp_path: Path, pem: str, **config: Any) -> EuAvVerifier:
    (tmp_path / "iaca.pem").write_text(pem)
    settings = {"kind": "eu-av", "trust_anchors": "iaca.pem", **config}
    return EuAvVerifier("eu-wallet", settings, VerifierServices(base_dir=str(tmp_path)))


@pytest.fixture
def verifier(tmp_path: Path, built: dict[str, Any]) -> EuAvVerifier:
    return _verifier(tmp_path, built["anchor_pem"])


async def test_auth0_response_is_accepted(verifier: EuAvVerifier, built: dict[str, Any]) -> None:
    result = await verifier.verify(wallet_presentation(built["responses"]["ok"]), context())
    assert result.age_over == frozenset({18})
    assert result.age_under == frozenset()


async def test_auth0_false_element_proves_under(
    verifier: EuAvVerifier, built: dict[str, Any]
) -> None:
    result = await verifier.verify(wallet_presentation(built["responses"]["under_18"]), context())
    assert result.age_under == frozenset({18})
    assert result.age_over == frozenset()


async def test_auth0_mdl_accepted_only_with_accept_mdl(
    tmp_path: Path, verifier: EuAvVerifier, built: dict[str, Any]
) -> None:
    vp = wallet_presentation(built["responses"]["mdl"])
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(vp, context())
    assert caught.value.reason == "bad_type"
    mdl = _verifier(tmp_path, built["anchor_pem"], accept_mdl=True)
    assert (await mdl.verify(vp, context())).age_over == frozenset({18})


@pytest.mark.parametrize(("case", "reason"), sorted(REFUSALS.items()))
async def test_auth0_planted_defect_is_refused(
    verifier: EuAvVerifier, built: dict[str, Any], case: str, reason: str
) -> None:
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(wallet_presentation(built["responses"][case]), context())
    assert caught.value.reason == reason


async def test_auth0_chain_without_its_root_is_untrusted(
    tmp_path: Path, built: dict[str, Any]
) -> None:
    verifier = _verifier(tmp_path, built["other_anchor_pem"])
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(wallet_presentation(built["responses"]["ok"]), context())
    assert caught.value.reason == "untrusted_chain"


async def test_auth0_reused_credential_is_refused(
    verifier: EuAvVerifier, built: dict[str, Any]
) -> None:
    replay = MemoryReplay()
    first = wallet_presentation(built["responses"]["reused_first"])
    assert (await verifier.verify(first, context(replay))).age_over == frozenset({18})
    again = wallet_presentation(built["responses"]["reused_again"])
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(again, context(replay, nonce="n-second-visit"))
    assert caught.value.reason == "linkable_credential"
    assert "seen_before" in str(caught.value)


async def test_auth0_wrong_nonce_would_verify_under_its_own_nonce(
    verifier: EuAvVerifier, built: dict[str, Any]
) -> None:
    # The refusal above is the binding, not a broken signature: under the nonce
    # it was made for, the same response verifies.
    vp = wallet_presentation(built["responses"]["wrong_nonce"])
    assert (await verifier.verify(vp, context(nonce=OTHER_NONCE))).age_over == frozenset({18})
