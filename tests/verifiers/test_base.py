"""verifiers.base: the shared config parser and the Verifier defaults."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifiers.base import AssuranceLevel, VerifierConfig

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10_000),
    st.text(max_size=12),
    st.sampled_from(["form_post", "query", "5m", "standard", "https://p.example/a", "k"]),
    st.lists(st.text(max_size=3), max_size=2),
)
_KEYS = st.sampled_from([*sorted(VerifierConfig.KEYS), "own", "lable", "x"])


@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_parse_returns_or_names_a_key(config: dict[str, Any]) -> None:
    """Any config either parses or raises ValueError starting with one of its keys."""
    try:
        parsed = VerifierConfig.parse("v", config, kind="k", own_keys={"own"})
    except ValueError as error:
        assert str(error).split(":", 1)[0] in config
        return
    assert parsed.kind == "k"
    assert parsed.label.strip() == parsed.label and parsed.label
    assert parsed.response_mode in ("form_post", "query")
    assert parsed.max_session_ttl is None or parsed.max_session_ttl > 0


def test_defaults() -> None:
    parsed = VerifierConfig.parse("v", {"kind": "k"}, kind="k")
    assert (parsed.label, parsed.response_mode, parsed.authorize_url) == ("v", "form_post", None)
    assert (parsed.assurance_level, parsed.max_session_ttl) == (AssuranceLevel.BASIC, None)


def test_unknown_key_suggests_and_lists_allowed() -> None:
    with pytest.raises(
        ValueError, match=r"^lable: unknown setting; did you mean 'label'\? \(allowed: "
    ):
        VerifierConfig.parse("v", {"lable": "x"}, kind="k")


def test_restricted_response_modes() -> None:
    with pytest.raises(ValueError, match=r"^response_mode: expected one of form_post$"):
        VerifierConfig.parse(
            "v", {"response_mode": "query"}, kind="k", response_modes=("form_post",)
        )
