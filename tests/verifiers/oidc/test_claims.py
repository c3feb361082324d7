"""Claim paths and the age-claim mapping of the ``oidc`` verifier (verifiers/oidc/claims.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifiers.base import VerificationError
from verifiers.oidc.claims import (
    MAX_PATH_DEPTH,
    AgeClaimMap,
    map_age_claims,
    parse_age_claims,
    parse_claim_path,
)

SEGMENT = st.from_regex(r"[A-Za-z0-9_:\-$]{1,64}", fullmatch=True)
PATHS = st.lists(SEGMENT, min_size=1, max_size=MAX_PATH_DEPTH)
_VALID = re.compile(r"[A-Za-z0-9_:\-$]{1,64}(\.[A-Za-z0-9_:\-$]{1,64}){0,3}")


@given(PATHS)
def test_a_dotted_path_round_trips(segments: list[str]) -> None:
    assert parse_claim_path(".".join(segments)) == tuple(segments)


@given(st.text(max_size=80))
def test_any_text_is_a_valid_path_or_a_value_error(text: str) -> None:
    try:
        parsed = parse_claim_path(text)
    except ValueError:
        assert not _VALID.fullmatch(text)
    else:
        assert _VALID.fullmatch(text)
        assert ".".join(parsed) == text


@pytest.mark.parametrize(
    "bad", ["", ".", "a..b", "a.", ".a", "a b", "a.b.c.d.e", "é", "a/b", None, 18, ["a"]]
)
def test_bad_paths_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_claim_path(bad)


@given(st.dictionaries(st.text(max_size=20), st.one_of(st.integers(), st.booleans(), st.text())))
def test_age_claims_parser_never_raises_anything_but_value_error(value: dict[str, Any]) -> None:
    try:
        parsed = parse_age_claims(value)
    except ValueError as error:
        assert str(error).startswith("age_claims:")
    else:
        assert parsed and all(1 <= threshold <= 99 for _, threshold in parsed)


@pytest.mark.parametrize("threshold", [0, 100, True, "18", 18.0, None])
def test_thresholds_outside_1_to_99_are_refused(threshold: object) -> None:
    with pytest.raises(ValueError, match="age_claims: age_over_18"):
        parse_age_claims({"age_over_18": threshold})


MAPPING = AgeClaimMap(parse_age_claims({"age_over_18": 18, "age_verification.over_21": 21}))


def test_top_level_and_nested_claims_map_to_thresholds() -> None:
    claims = {"age_over_18": True, "age_verification": {"over_21": False}, "name": "x"}
    assert map_age_claims(MAPPING, claims) == (frozenset({18}), frozenset({21}))


def test_first_source_holding_a_path_wins() -> None:
    assert map_age_claims(MAPPING, {"age_over_18": True}, {"age_over_18": False}) == (
        frozenset({18}),
        frozenset(),
    )


@pytest.mark.parametrize("value", [1, 0, "true", None, [True], {"x": True}])
def test_a_value_of_another_type_is_bad_claim_not_proof(value: object) -> None:
    with pytest.raises(VerificationError) as refused:
        map_age_claims(MAPPING, {"age_over_18": value})
    assert refused.value.reason == "bad_claim"
    assert repr(value) not in str(refused.value)


def test_no_configured_claim_is_no_age_claim() -> None:
    with pytest.raises(VerificationError) as refused:
        map_age_claims(MAPPING, {"name": "Alice", "age_verification": "yes"})
    assert refused.value.reason == "no_age_claim"


def test_custom_proven_value_without_refuted_value() -> None:
    mapping = AgeClaimMap(parse_age_claims({"age_verification.result": 18}), "passed", None)
    assert map_age_claims(mapping, {"age_verification": {"result": "passed"}})[0] == {18}
    with pytest.raises(VerificationError) as refused:
        map_age_claims(mapping, {"age_verification": {"result": "failed"}})
    assert refused.value.reason == "bad_claim"


@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
        lambda inner: (
            st.dictionaries(
                st.sampled_from(["age_over_18", "age_verification", "over_21", "x"]),
                inner,
                max_size=4,
            )
            | st.lists(inner, max_size=3)
        ),
        max_leaves=12,
    )
)
def test_mapping_any_json_gives_thresholds_or_a_refusal(document: object) -> None:
    claims = document if isinstance(document, dict) else {"x": document}
    try:
        over, under = map_age_claims(MAPPING, claims)
    except VerificationError as error:
        assert error.reason in {"bad_claim", "no_age_claim"}
    else:
        assert over | under and not over & under
        assert over <= {18, 21} and under <= {18, 21}
        if 18 in over:
            assert claims["age_over_18"] is True
