"""The SD-JWT serialization parser: property tests and the RFC's rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifiers.b64url import b64url_encode
from verifiers.base import VerificationError
from verifiers.reference.sd_jwt_issuer import disclosure
from verifiers.sd_jwt_vc.format import (
    MAX_PRESENTATION_LENGTH,
    digest,
    parse_presentation,
    resolve_disclosures,
    sd_hash,
)

JWT = "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z]{0,5}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_parse_presentation_never_raises_anything_but_a_refusal(text: str) -> None:
    try:
        parsed = parse_presentation(text)
    except VerificationError as error:
        assert error.reason == "malformed"
    else:
        assert text.startswith(parsed.issuer_jwt)
        assert parsed.signed_part.endswith("~")


@given(
    st.lists(st.tuples(st.text(min_size=1, max_size=10), json_values), max_size=6), st.booleans()
)
def test_issued_disclosures_round_trip(claims: list[tuple[str, Any]], with_kb: bool) -> None:
    names = {name for name, _ in claims if name not in ("_sd", "...")}
    disclosures = [disclosure(name, value) for name, value in claims if name in names]
    kb = "a.b.c" if with_kb else ""
    parsed = parse_presentation("~".join([JWT, *disclosures, kb]))
    assert [d.encoded for d in parsed.disclosures] == disclosures
    assert parsed.kb_jwt == (kb or None)
    assert sd_hash(parsed.signed_part) == digest("~".join([JWT, *disclosures, ""]))


@given(st.dictionaries(st.from_regex(r"[a-h]{1,6}", fullmatch=True), json_values, max_size=5))
def test_resolving_all_disclosures_restores_the_claims(claims: dict[str, Any]) -> None:
    disclosures = [disclosure(name, value) for name, value in claims.items()]
    payload = {"iss": "x", "_sd": sorted(digest(d) for d in disclosures), "_sd_alg": "sha-256"}
    parsed = parse_presentation("~".join([JWT, *disclosures, ""]))
    resolved = resolve_disclosures(payload, parsed.disclosures)
    assert (
        resolved == {"iss": "x", **{k: v for k, v in claims.items() if k != "iss"}}
        or "iss" in claims
    )


def test_disclosure_matching_no_digest_is_refused() -> None:
    d = disclosure("age_over_18", True)
    parsed = parse_presentation(f"{JWT}~{d}~")
    with pytest.raises(VerificationError, match="matches no digest") as caught:
        resolve_disclosures({"_sd": []}, parsed.disclosures)
    assert caught.value.reason == "digest_mismatch"


def test_same_disclosure_twice_is_refused() -> None:
    d = disclosure("age_over_18", True)
    parsed = parse_presentation(f"{JWT}~{d}~{d}~")
    with pytest.raises(VerificationError) as caught:
        resolve_disclosures({"_sd": [digest(d)]}, parsed.disclosures)
    assert caught.value.reason == "digest_mismatch"


def test_disclosed_claim_also_in_clear_is_refused() -> None:
    d = disclosure("age_over_18", True)
    parsed = parse_presentation(f"{JWT}~{d}~")
    with pytest.raises(VerificationError) as caught:
        resolve_disclosures({"age_over_18": False, "_sd": [digest(d)]}, parsed.disclosures)
    assert caught.value.reason == "malformed"


def test_array_element_disclosures_resolve_in_place() -> None:
    d = disclosure(None, "DE")
    parsed = parse_presentation(f"{JWT}~{d}~")
    resolved = resolve_disclosures({"n": [{"...": digest(d)}, "FR"]}, parsed.disclosures)
    assert resolved == {"n": ["DE", "FR"]}


@pytest.mark.parametrize(
    "bad",
    [
        b64url_encode(b"not json"),
        b64url_encode(json.dumps(["salt"]).encode()),
        b64url_encode(json.dumps([1, "n", True]).encode()),
        b64url_encode(json.dumps(["s", "_sd", []]).encode()),
        b64url_encode(json.dumps(["s", "...", 1]).encode()),
    ],
)
def test_malformed_disclosures_are_refused(bad: str) -> None:
    with pytest.raises(VerificationError) as caught:
        parse_presentation(f"{JWT}~{bad}~")
    assert caught.value.reason == "malformed"


def test_oversize_and_empty_parts_are_refused() -> None:
    for text in ("x" * (MAX_PRESENTATION_LENGTH + 1), JWT, f"{JWT}~~", "a.b~", "é~"):
        with pytest.raises(VerificationError):
            parse_presentation(text)
