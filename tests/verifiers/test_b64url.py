"""base64url encoding and strict decoding (verifiers/b64url.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from verifiers.b64url import b64url_decode, b64url_encode

B64URL_TEXT = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ \n.", max_size=24
)


def test_rfc4648_vectors() -> None:
    # RFC 4648 §10, in the URL-safe alphabet without padding.
    for raw, text in [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
    ]:
        assert b64url_encode(raw) == text
        assert b64url_decode(text) == raw
    assert b64url_encode(b"fo", pad=True) == "Zm8="
    assert b64url_encode(b"\xfb\xff") == "-_8"


@pytest.mark.parametrize(
    "text",
    ["Zm8=", "Zm9", "Zm+v", "Zm/v", "Zm9v\n", " Zm9v", "Zm9v.", "Z", "Zm9vY", "é"],
)
def test_strict_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_padding_tolerated_when_asked() -> None:
    assert b64url_decode("Zm8=", padding=True) == b"fo"
    assert b64url_decode("Zm8", padding=True) == b"fo"
    with pytest.raises(ValueError):
        b64url_decode("Zm8===", padding=True)


def test_non_canonical_tolerated_when_asked() -> None:
    assert b64url_decode("Zm9", canonical=False) == b"fo"


def test_limit() -> None:
    with pytest.raises(ValueError, match="too long"):
        b64url_decode("Zm9v", limit=3)


@given(st.binary(max_size=64), st.booleans())
def test_round_trip(raw: bytes, pad: bool) -> None:
    assert b64url_decode(b64url_encode(raw, pad=pad), padding=pad) == raw


@given(B64URL_TEXT)
def test_strict_accepts_only_the_canonical_spelling(text: str) -> None:
    try:
        raw = b64url_decode(text)
    except ValueError:
        return
    assert b64url_encode(raw) == text


@given(B64URL_TEXT)
def test_lenient_agrees_with_the_standard_decoder(text: str) -> None:
    try:
        raw = b64url_decode(text, padding=True, canonical=False)
    except ValueError:
        return
    body = text.rstrip("=")
    assert raw == base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
