"""Property tests: the Privacy Pass parsers never raise anything but their own errors."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifiers.privacy_pass.helpers import context, make_verifier, write_keys
from verifiers.base import Presentation, VerificationError
from verifiers.privacy_pass.client import parse_private_token_challenges
from verifiers.privacy_pass.keys import IssuerPublicKey
from verifiers.privacy_pass.structs import (
    StructError,
    Token,
    TokenChallenge,
    TokenRequest,
    b64url_decode,
    b64url_encode,
    parse_auth_params,
    parse_challenges,
)
from verifiers.privacy_pass.structs import _HeaderScanner as HeaderScanner
from verifiers.reference.issuer import IssuerKey

HEADERISH = st.text(alphabet=st.sampled_from('PrivateTokn =",\\ \t\x00\xffAb_-/+'), max_size=80)


@given(st.binary(max_size=600))
def test_struct_parsers_raise_only_struct_error(data: bytes) -> None:
    for parse in (TokenChallenge.parse, Token.parse, TokenRequest.parse):
        with contextlib.suppress(StructError):
            parse(data)


@given(st.text(max_size=200) | HEADERISH)
def test_header_parsers_raise_only_struct_error(text: str) -> None:
    for parse in (parse_auth_params, parse_challenges, b64url_decode):
        with contextlib.suppress(StructError):
            parse(text)
    parse_private_token_challenges(text)  # skips what it cannot use, never raises


def _read_quoted(text: str, *, slowly: bool) -> tuple[str, int] | None:
    scanner = HeaderScanner(text)
    try:
        value = scanner.quoted_slowly() if slowly else scanner.quoted()
    except StructError:
        return None
    return value, scanner.pos


@given(
    st.text(alphabet=st.sampled_from('"\\ \t\x00\x1f\x7f\x80\xffaZ=,/'), max_size=40).map(
        lambda t: '"' + t
    )
)
def test_quoted_string_shortcut_reads_what_the_scanner_reads(text: str) -> None:
    assert _read_quoted(text, slowly=False) == _read_quoted(text, slowly=True)


def test_issuer_key_builds_its_public_key_once(issuer_keys: dict[int, IssuerKey]) -> None:
    key = IssuerPublicKey.from_spki(issuer_keys[18].public.spki)
    assert key.cryptography_key() is key.public_key
    assert key.public_key.public_numbers().n == key.n


@given(
    st.sampled_from([0, 1, 2, 0xFFFF]),
    st.text(alphabet="abc.:-0123456789", min_size=1, max_size=30),
    st.sampled_from([b"", bytes(32), bytes(range(32))]),
    st.lists(st.text(alphabet="abc.:0123456789", min_size=1, max_size=12), max_size=3),
)
def test_token_challenge_roundtrip(
    token_type: int, issuer: str, context_bytes: bytes, origins: list[str]
) -> None:
    challenge = TokenChallenge(token_type, issuer, context_bytes, tuple(origins))
    assert TokenChallenge.parse(challenge.serialize()) == challenge


def test_challenge_with_bad_context_length_is_refused() -> None:
    raw = TokenChallenge(2, "i.example", bytes(32), ()).serialize()
    bad = raw[:13] + bytes([31]) + raw[14:]  # length byte of the redemption context
    with pytest.raises(StructError):
        TokenChallenge.parse(bad)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=400).map(lambda b: f'token="{b64url_encode(b)}"')
    | st.text(max_size=120)
    | HEADERISH
)
def test_verifier_refuses_garbage_with_a_reason(
    tmp_path: Path, issuer_keys: dict[int, IssuerKey], credential: str
) -> None:
    verifier = make_verifier(write_keys(tmp_path, issuer_keys))
    for channel in ("authorization", "callback"):
        with pytest.raises(VerificationError) as caught:
            asyncio.run(verifier.verify(Presentation(credential, channel), context(0.0)))
        assert caught.value.reason in {"malformed", "bad_type", "unknown_key"}
