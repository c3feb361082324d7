"""The OpenID4VP 1.0 SessionTranscript (Appendix B.2.6.1) and DeviceAuthenticationBytes."""

from __future__ import annotations

import hashlib

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from verifiers.mdoc.transcript import (
    device_authentication_bytes,
    handover_info_hash,
    session_transcript,
)

texts = st.text(max_size=40)


def test_structure_and_known_bytes() -> None:
    transcript = session_transcript(
        "redirect_uri:https://rp.example/cb", "n", "https://rp.example/cb"
    )
    info = bytes.fromhex(
        "84"  # array(4)
        "7822" + b"redirect_uri:https://rp.example/cb".hex()
        + "61" + b"n".hex()
        + "f6"  # jwkThumbprint: null (unencrypted direct_post)
        + "75" + b"https://rp.example/cb".hex()
    )  # fmt: skip
    assert transcript == [None, None, ["OpenID4VPHandover", hashlib.sha256(info).digest()]]


@given(texts, texts, texts)
def test_handover_hash_is_sha256_of_the_info_array(client_id: str, nonce: str, uri: str) -> None:
    expected = hashlib.sha256(cbor2.dumps([client_id, nonce, None, uri])).digest()
    assert handover_info_hash(client_id, nonce, uri) == expected
    assert session_transcript(client_id, nonce, uri)[2] == ["OpenID4VPHandover", expected]


@given(texts, texts, texts, texts)
def test_any_changed_field_changes_the_transcript(a: str, b: str, c: str, other: str) -> None:
    base = session_transcript(a, b, c)
    if other != a:
        assert session_transcript(other, b, c) != base
    if other != b:
        assert session_transcript(a, other, c) != base
    if other != c:
        assert session_transcript(a, b, other) != base


@given(st.binary(max_size=16))
def test_jwk_thumbprint_is_bound_when_given(thumbprint: bytes) -> None:
    assert handover_info_hash("c", "n", "u", thumbprint) != handover_info_hash("c", "n", "u")


def test_device_authentication_bytes_wrap_the_structure_in_tag_24() -> None:
    namespaces = cbor2.CBORTag(24, cbor2.dumps({}))
    transcript = session_transcript("c", "n", "u")
    outer = cbor2.loads(device_authentication_bytes(transcript, "eu.europa.ec.av.1", namespaces))
    assert outer.tag == 24
    assert cbor2.loads(outer.value) == [
        "DeviceAuthentication",
        transcript,
        "eu.europa.ec.av.1",
        namespaces,
    ]
