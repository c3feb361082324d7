"""The eu-av verifier called directly: a good response passes, each defect has its reason code."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.verifiers.mdoc.helpers import (
    CLIENT_ID,
    NONCE,
    NOW,
    NOW_DT,
    RESPONSE_URI,
    context,
    make_verifier,
    presentation,
    write_anchors,
)
from tests.verifiers.tokens import MemoryReplay
from verifiers.b64url import b64url_decode, b64url_encode
from verifiers.base import AssuranceLevel, Presentation, VerificationError, VerifierServices
from verifiers.mdoc import EuAvVerifier
from verifiers.reference.mdoc import Defects, MdocTestIssuer, build_device_response

DAY = timedelta(days=1)


def respond(issuer: MdocTestIssuer, **options: Any) -> str:
    """A response to the standard request; ``options`` split between issue() and the builder."""
    build_keys = {"disclose", "defects", "client_id", "response_uri", "nonce"}
    build = {k: options.pop(k) for k in list(options) if k in build_keys}
    options.setdefault("now", NOW_DT)
    mdoc = issuer.issue(**options)
    request = {"client_id": CLIENT_ID, "response_uri": RESPONSE_URI, "nonce": NONCE}
    request.update(build)
    return build_device_response(mdoc, **request)


def edit(vp_token: str, change: Callable[[dict[str, Any]], None]) -> str:
    """Decode, change and re-encode a DeviceResponse (signatures are left as they were)."""
    response = cbor2.loads(b64url_decode(vp_token))
    change(response)
    return b64url_encode(cbor2.dumps(response))


async def refused(verifier: EuAvVerifier, vp_token: str, **kwargs: Any) -> str:
    extra = kwargs.pop("extra", None)
    with pytest.raises(VerificationError) as caught:
        await verifier.verify(presentation(vp_token, extra), context(**kwargs))
    return caught.value.reason


async def test_age_over_18_is_accepted(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    result = await verifier.verify(presentation(respond(issuer)), context())
    assert result.age_over == frozenset({18})
    assert result.age_under == frozenset()
    assert result.method == "digital_id"
    assert result.verifier == "eu-wallet"
    assert result.assurance == AssuranceLevel.BASIC
    assert result.expires_at == datetime.fromtimestamp(NOW + 3600, tz=UTC)


async def test_false_element_proves_under(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer, age_over={16: True, 18: False, 21: False})
    result = await verifier.verify(presentation(vp), context())
    assert result.age_over == frozenset({16})
    assert result.age_under == frozenset({18, 21})


async def test_assurance_comes_from_config(anchors: Path, issuer: MdocTestIssuer) -> None:
    verifier = make_verifier(anchors, assurance_level="enhanced")
    result = await verifier.verify(presentation(respond(issuer)), context())
    assert result.assurance == AssuranceLevel.ENHANCED


async def test_session_ends_no_later_than_valid_until(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    until = NOW_DT.replace(hour=0, minute=0, second=0, microsecond=0) + DAY
    vp = respond(issuer, valid_until=until)
    result = await verifier.verify(presentation(vp), context(now=until.timestamp() - 60))
    assert result.expires_at == until


async def test_wrong_nonce_fails_the_device_signature(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, nonce="n-of-another-request")
    assert await refused(verifier, vp) == "bad_device_signature"


async def test_wrong_client_id_fails_the_device_signature(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, client_id="redirect_uri:https://evil.example/cb")
    assert await refused(verifier, vp) == "bad_device_signature"


async def test_wrong_response_uri_fails_the_device_signature(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, response_uri="https://evil.example/cb")
    assert await refused(verifier, vp) == "bad_device_signature"


async def test_other_device_key_fails(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    mdoc = issuer.issue(now=NOW_DT)
    thief = dataclasses.replace(mdoc, device_key=ec.generate_private_key(ec.SECP256R1()))
    vp = build_device_response(thief, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce=NONCE)
    assert await refused(verifier, vp) == "bad_device_signature"


async def test_device_mac_only_is_missing_signature(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, defects=Defects(no_device_signature=True))
    assert await refused(verifier, vp) == "missing_device_signature"


async def test_no_device_signed_is_missing_signature(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = edit(respond(issuer), lambda r: r["documents"][0].pop("deviceSigned"))
    assert await refused(verifier, vp) == "missing_device_signature"


async def test_expired(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer, valid_from=NOW_DT - 100 * DAY, valid_until=NOW_DT - 10 * DAY)
    assert await refused(verifier, vp) == "expired"


async def test_not_yet_valid(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer, valid_from=NOW_DT + 10 * DAY, valid_until=NOW_DT + 100 * DAY)
    assert await refused(verifier, vp) == "not_yet_valid"


async def test_tampered_element_is_digest_mismatch(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, age_over={18: False}, defects=Defects(tamper_element="age_over_18"))
    assert await refused(verifier, vp) == "digest_mismatch"


async def test_untrusted_chain(verifier: EuAvVerifier, stranger: MdocTestIssuer) -> None:
    assert await refused(verifier, respond(stranger)) == "untrusted_chain"


async def test_a_second_anchor_is_trusted_too(
    tmp_path: Path, issuer: MdocTestIssuer, stranger: MdocTestIssuer
) -> None:
    verifier = make_verifier(write_anchors(tmp_path / "two.pem", issuer, stranger))
    result = await verifier.verify(presentation(respond(stranger)), context())
    assert result.age_over == frozenset({18})


async def test_document_signer_without_mdoc_eku_is_untrusted(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    # A certificate the IACA issued for something else (say TLS) must not sign mdocs.
    ds_cert = (
        x509.CertificateBuilder()
        .subject_name(issuer.ds_cert.subject)
        .issuer_name(issuer.iaca_cert.subject)
        .public_key(issuer.ds_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issuer.ds_cert.not_valid_before_utc)
        .not_valid_after(issuer.ds_cert.not_valid_after_utc)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(issuer.iaca_key, hashes.SHA256())
    )
    tls_signer = dataclasses.replace(issuer, ds_cert=ds_cert)
    assert await refused(verifier, respond(tls_signer)) == "untrusted_chain"


async def test_chain_checked_at_now(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    # The DS certificate is valid for one year from NOW - 1 day.
    vp = respond(issuer, valid_until=NOW_DT + 800 * DAY)
    assert await refused(verifier, vp, now=NOW + 400 * 86400) == "untrusted_chain"


async def test_missing_x5chain(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = edit(respond(issuer), lambda r: r["documents"][0]["issuerSigned"]["issuerAuth"][1].clear())
    assert await refused(verifier, vp) == "untrusted_chain"


async def test_forged_issuer_signature(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    def flip(response: dict[str, Any]) -> None:
        auth = response["documents"][0]["issuerSigned"]["issuerAuth"]
        auth[3] = bytes([auth[3][0] ^ 1]) + auth[3][1:]

    assert await refused(verifier, edit(respond(issuer), flip)) == "bad_signature"


async def test_family_name_is_extra_disclosure(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(
        issuer,
        extra_elements={"family_name": "Mustermann"},
        disclose=["age_over_18", "family_name"],
    )
    assert await refused(verifier, vp) == "extra_disclosure"


async def test_undisclosed_extra_elements_are_fine(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, extra_elements={"family_name": "Mustermann"}, disclose=["age_over_18"])
    assert (await verifier.verify(presentation(vp), context())).age_over == frozenset({18})


async def test_device_signed_family_name_is_extra_disclosure(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, defects=Defects(device_elements={"family_name": "Mustermann"}))
    assert await refused(verifier, vp) == "extra_disclosure"


async def test_device_signed_age_is_not_counted(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    # Self-asserted by the device, not the issuer: tolerated, never proof.
    vp = respond(
        issuer, age_over={16: True}, defects=Defects(device_elements={"age_over_18": True})
    )
    assert (await verifier.verify(presentation(vp), context())).age_over == frozenset({16})


async def test_no_age_element(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer, disclose=[])
    assert await refused(verifier, vp) == "no_age_claim"


async def test_age_element_not_boolean(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer, age_over={}, extra_elements={"age_over_18": "yes"})
    assert await refused(verifier, vp) == "bad_claim"


async def test_mdl_is_refused_unless_configured(
    anchors: Path, verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, doc_type="org.iso.18013.5.1.mDL", namespace="org.iso.18013.5.1")
    assert await refused(verifier, vp) == "bad_type"
    mdl_verifier = make_verifier(anchors, accept_mdl=True)
    result = await mdl_verifier.verify(presentation(vp), context())
    assert result.age_over == frozenset({18})


async def test_mdl_elements_in_av_namespace_are_refused(
    anchors: Path, issuer: MdocTestIssuer
) -> None:
    verifier = make_verifier(anchors, accept_mdl=True)
    vp = respond(issuer, doc_type="org.iso.18013.5.1.mDL", namespace="eu.europa.ec.av.1")
    assert await refused(verifier, vp) == "extra_disclosure"


async def test_mso_doctype_must_match(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer, mso_overrides={"docType": "org.iso.18013.5.1.mDL"})
    assert await refused(verifier, vp) == "bad_type"


async def test_digest_algorithm_must_be_sha256(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, mso_overrides={"digestAlgorithm": "SHA-512"})
    assert await refused(verifier, vp) == "alg_not_allowed"


async def test_error_status_is_malformed(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = edit(respond(issuer), lambda r: r.update(status=10))
    assert await refused(verifier, vp) == "malformed"


async def test_two_documents_are_malformed(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = edit(respond(issuer), lambda r: r["documents"].append(r["documents"][0]))
    assert await refused(verifier, vp) == "malformed"


async def test_request_binding_is_required(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    vp = respond(issuer)
    assert await refused(verifier, vp, nonce=None) == "missing_nonce"
    assert await refused(verifier, vp, extra={"client_id": CLIENT_ID}) == "wrong_audience"


async def test_only_the_wallet_channel_is_accepted(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    bound = {"client_id": CLIENT_ID, "response_uri": RESPONSE_URI}
    for channel in ("callback", "authorization"):
        vp = Presentation(respond(issuer), channel, bound)
        with pytest.raises(VerificationError) as caught:
            await verifier.verify(vp, context())
        assert caught.value.reason == "wrong_channel"


async def test_reused_credential_is_refused(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    mdoc = issuer.issue(now=NOW_DT)
    replay = MemoryReplay()
    first = build_device_response(mdoc, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce=NONCE)
    await verifier.verify(presentation(first), context(replay))
    # A fresh response (new nonce, new device signature) from the same credential.
    second = build_device_response(
        mdoc, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce="n-second"
    )
    assert await refused(verifier, second, replay=replay, nonce="n-second") == (
        "linkable_credential"
    )
    assert replay.calls[0] == ("eu-av:eu-wallet", (NOW_DT.replace(hour=0, minute=0, second=0,
                               microsecond=0) + 90 * DAY).timestamp())  # fmt: skip


async def test_refused_response_does_not_burn_the_credential(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    mdoc = issuer.issue(now=NOW_DT)
    replay = MemoryReplay()
    bad = build_device_response(mdoc, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce="x")
    assert await refused(verifier, bad, replay=replay) == "bad_device_signature"
    good = build_device_response(mdoc, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce=NONCE)
    assert (await verifier.verify(presentation(good), context(replay))).age_over == {18}


async def test_status_index_is_linkable(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    status = {"status_list": {"idx": 4711, "uri": "https://issuer.example/status/1"}}
    assert await refused(verifier, respond(issuer, status=status)) == "linkable_credential"


async def test_precise_timestamp_is_linkable(
    verifier: EuAvVerifier, issuer: MdocTestIssuer
) -> None:
    vp = respond(issuer, valid_from=NOW_DT - timedelta(seconds=5))
    assert await refused(verifier, vp) == "linkable_credential"


async def test_flag_mode_accepts_and_records(
    anchors: Path, issuer: MdocTestIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = make_verifier(anchors, linkability="flag")
    mdoc = issuer.issue(now=NOW_DT, valid_from=NOW_DT - timedelta(seconds=5))
    replay = MemoryReplay()
    for nonce in (NONCE, "n-second"):
        vp = build_device_response(
            mdoc, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce=nonce
        )
        result = await verifier.verify(presentation(vp), context(replay, nonce=nonce))
        assert result.age_over == frozenset({18})
    findings = [r.__dict__.get("findings") for r in caplog.records]
    assert findings == ["precise_timestamp", "precise_timestamp,seen_before"]


async def test_status_hook_is_called(verifier: EuAvVerifier, issuer: MdocTestIssuer) -> None:
    seen: list[Any] = []

    async def revoked(status: Any, now: float) -> None:
        seen.append((dict(status), now))
        raise VerificationError("revoked")

    verifier.status_check = revoked
    status = {"status_list": {"idx": 1, "uri": "https://issuer.example/status/1"}}
    assert await refused(verifier, respond(issuer, status=status)) == "revoked"
    assert seen == [(status, NOW)]


def test_credential_query_asks_for_the_threshold_only(verifier: EuAvVerifier) -> None:
    assert verifier.credential_query("age", 18) == {
        "id": "age",
        "format": "mso_mdoc",
        "meta": {"doctype_value": "eu.europa.ec.av.1"},
        "claims": [{"path": ["eu.europa.ec.av.1", "age_over_18"], "intent_to_retain": False}],
    }
    assert verifier.dcql_query("age", 21) == {"credentials": [verifier.credential_query("age", 21)]}


def test_dcql_with_mdl_offers_either(anchors: Path) -> None:
    query = make_verifier(anchors, accept_mdl=True).dcql_query("age", 18)
    assert [c["meta"]["doctype_value"] for c in query["credentials"]] == [
        "eu.europa.ec.av.1",
        "org.iso.18013.5.1.mDL",
    ]
    assert query["credentials"][1]["claims"][0]["path"] == ["org.iso.18013.5.1", "age_over_18"]
    assert query["credential_sets"] == [{"options": [["age"], ["age-mdl"]]}]


def test_wallet_url_is_offered_when_configured(anchors: Path) -> None:
    assert make_verifier(anchors).wallet_url is None
    web = make_verifier(anchors, wallet_url="https://wallet.example/present")
    assert web.wallet_url == "https://wallet.example/present"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "trust_anchors: required"),
        ({"trust_anchors": "missing.pem"}, "trust_anchors: no such file"),
        ({"trust_anchors": "iaca.pem", "accept_mdl": "yes"}, "accept_mdl: expected"),
        ({"trust_anchors": "iaca.pem", "linkability": "ignore"}, "linkability: expected"),
        ({"trust_anchor": "iaca.pem"}, "trust_anchor: unknown setting"),
        ({"trust_anchors": "iaca.pem", "wallet_url": "http://wallet.example/w"}, "wallet_url: "),
        ({"trust_anchors": "iaca.pem", "wallet_url": ""}, "wallet_url: "),
    ],
)
def test_config_errors_name_the_key(anchors: Path, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _build(anchors, config)


def _build(anchors: Path, settings: dict[str, Any]) -> EuAvVerifier:
    full = {"kind": "eu-av", **settings}
    return EuAvVerifier("eu-wallet", full, VerifierServices(base_dir=str(anchors.parent)))


def test_trust_anchor_file_without_certificates(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"trust_anchors: .*no PEM certificates"):
        _build(tmp_path / "empty.pem", {"trust_anchors": "empty.pem"})
