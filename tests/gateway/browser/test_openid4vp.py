"""The OpenID4VP pieces without I/O: request URI, sealed state, vp_token, stored outcome."""

from __future__ import annotations

import json
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.browser.openid4vp import (
    WalletOutcome,
    WalletRefused,
    WalletState,
    WalletStateCodec,
    challenge_binding,
    parse_vp_token,
    query_ids,
    request_uri,
)
from verifiers.base import AssuranceLevel
from verifiers.reference.wallet import parse_request

KEYS = [secrets.token_bytes(32)]
NOW = 1_750_000_000.0
codec = WalletStateCodec(KEYS, "https://shop.example")


def sample_state(**changes: object) -> WalletState:
    fields: dict[str, object] = {
        "nonce": "n" * 32,
        "challenge_state": "c" * 32,
        "min_age": 18,
        "verifier": "eu-pid",
        "expires_at": NOW + 600,
    }
    fields.update(changes)
    return WalletState(**fields)  # type: ignore[arg-type]


def test_request_uri_is_openid4vp_1_0_by_value() -> None:
    uri = request_uri(
        "https://shop.example/.agegate/callback/eu-pid",
        "nonce1",
        "st",
        {"credentials": [{"id": "age"}]},
    )
    params = {k: v[0] for k, v in parse_qs(urlsplit(uri).query).items()}
    assert uri.startswith("openid4vp://?")
    assert params["client_id"] == "redirect_uri:https://shop.example/.agegate/callback/eu-pid"
    assert params["response_uri"] == "https://shop.example/.agegate/callback/eu-pid"
    assert (params["response_type"], params["response_mode"]) == ("vp_token", "direct_post")
    assert json.loads(params["dcql_query"]) == {"credentials": [{"id": "age"}]}
    assert parse_request(uri).nonce == "nonce1"


def test_state_round_trips_and_expires() -> None:
    sealed = codec.seal(sample_state())
    assert codec.open(sealed, NOW) == sample_state()
    assert codec.open(sealed, NOW + 601) is None


def test_state_from_another_site_or_key_does_not_open() -> None:
    other_site = WalletStateCodec(KEYS, "https://other.example")
    other_key = WalletStateCodec([secrets.token_bytes(32)], "https://shop.example")
    sealed = codec.seal(sample_state())
    assert other_site.open(sealed, NOW) is None
    assert other_key.open(sealed, NOW) is None


@given(st.text(max_size=200))
def test_state_open_never_raises(text: str) -> None:
    assert codec.open(text, NOW) is None


ASKED = frozenset({"age", "age-mdl"})
_ids = st.sampled_from(["age", "age-mdl", "pid", ""])
_entries = st.lists(st.text(max_size=5), max_size=3) | st.text(max_size=5) | st.integers()


@given(st.text(max_size=300) | st.dictionaries(_ids, _entries, max_size=3).map(json.dumps))
def test_parse_vp_token_never_raises_anything_but_a_refusal(text: str) -> None:
    try:
        query_id, value = parse_vp_token(text, ASKED)
    except WalletRefused as error:
        assert error.reason in ("malformed", "unexpected_query")
    else:
        assert query_id in ASKED
        assert json.loads(text) == {query_id: [value]}


@pytest.mark.parametrize(
    "text",
    ['{"age": ["x"], "pid": ["y"]}', '{"age": ["x"], "age-mdl": ["y"]}', '{"pid": ["x"]}', "{}"],
)
def test_vp_token_answering_not_exactly_one_asked_query_is_refused(text: str) -> None:
    with pytest.raises(WalletRefused) as caught:
        parse_vp_token(text, ASKED)
    assert caught.value.reason == "unexpected_query"


def test_vp_token_may_answer_any_one_option_asked() -> None:
    assert parse_vp_token('{"age-mdl": ["m"]}', ASKED) == ("age-mdl", "m")
    assert parse_vp_token('{"age": ["a"]}') == ("age", "a")


def test_query_ids_are_the_credential_query_ids() -> None:
    query = {"credentials": [{"id": "age"}, {"id": "age-mdl"}], "credential_sets": []}
    assert query_ids(query) == ASKED


@given(
    st.frozensets(st.integers(1, 99)),
    st.frozensets(st.integers(1, 99)),
    st.sampled_from(list(AssuranceLevel)),
    st.none() | st.from_regex(r"[a-z_]{1,20}", fullmatch=True),
)
def test_outcome_round_trips(
    over: frozenset[int], under: frozenset[int], level: AssuranceLevel, error: str | None
) -> None:
    outcome = WalletOutcome("b" * 64, "eu-pid", over, under, level, NOW, error)
    assert WalletOutcome.decode(outcome.encode()) == outcome


@given(st.binary(max_size=200))
def test_outcome_decode_never_raises(data: bytes) -> None:
    WalletOutcome.decode(data)


def test_binding_is_an_hmac_not_the_state() -> None:
    binding = challenge_binding(b"k" * 32, "state-value")
    assert "state-value" not in binding
    assert binding != challenge_binding(b"j" * 32, "state-value")
