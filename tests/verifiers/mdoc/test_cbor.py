"""The strict CBOR reader and the DeviceResponse parser: property tests and named hostile inputs."""

from __future__ import annotations

import asyncio
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifiers.mdoc.helpers import (
    CLIENT_ID,
    NONCE,
    NOW_DT,
    RESPONSE_URI,
    context,
    presentation,
)
from verifiers.b64url import b64url_decode, b64url_encode
from verifiers.base import VerificationError
from verifiers.mdoc import EuAvVerifier
from verifiers.mdoc.cbor import MAX_BYTES, MAX_DEPTH, decode
from verifiers.mdoc.response import parse_device_response
from verifiers.reference.mdoc import MdocTestIssuer, build_device_response

PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.integers(-3, 40), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


def _malformed(data: bytes) -> None:
    with pytest.raises(VerificationError) as caught:
        decode(data)
    assert caught.value.reason == "malformed"


@PROPERTY
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_refuse(data: bytes) -> None:
    try:
        decode(data)
    except VerificationError as error:
        assert error.reason == "malformed"


@PROPERTY
@given(cbor_values)
def test_plain_values_round_trip(value: Any) -> None:
    assert decode(cbor2.dumps(value)) == value


def test_indefinite_length_is_refused() -> None:
    _malformed(b"\x9f\x01\xff")


def test_duplicate_map_key_is_refused() -> None:
    _malformed(b"\xa2\x01\x01\x01\x02")


def test_trailing_bytes_are_refused() -> None:
    _malformed(cbor2.dumps({}) + b"\x00")


def test_nesting_beyond_the_cap_is_refused() -> None:
    _malformed(b"\x81" * (MAX_DEPTH + 1) + b"\x00")


def test_shared_reference_cycle_is_refused() -> None:
    # 28([29(0)]): cbor2 would build a list that contains itself.
    _malformed(bytes.fromhex("d81c81d81d00"))


def test_bignum_and_set_tags_are_refused() -> None:
    _malformed(cbor2.dumps(cbor2.CBORTag(2, b"\x01" * 64)))
    _malformed(cbor2.dumps(cbor2.CBORTag(258, [1, 2])))


def test_oversized_input_is_refused() -> None:
    _malformed(cbor2.dumps(b"\x00" * MAX_BYTES))


def test_oversized_vp_token_is_refused_before_decoding() -> None:
    with pytest.raises(VerificationError, match="too large") as caught:
        parse_device_response("A" * (MAX_BYTES * 2))
    assert caught.value.reason == "malformed"


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"version": "1.0", "status": 0},
        {"version": "1.0", "status": 0, "documents": []},
        {"version": "2.0", "status": 0, "documents": [{}]},
        {"version": "1.0", "status": 0, "documents": [{"docType": 1}]},
        {"version": "1.0", "status": 0, "documents": [{"docType": "x", "issuerSigned": {}}]},
    ],
)
def test_wrong_shapes_are_malformed(value: Any) -> None:
    with pytest.raises(VerificationError) as caught:
        parse_device_response(b64url_encode(cbor2.dumps(value)))
    assert caught.value.reason == "malformed"


@pytest.fixture(scope="module")
def good_response(issuer: MdocTestIssuer) -> bytes:
    mdoc = issuer.issue(now=NOW_DT)
    vp = build_device_response(mdoc, client_id=CLIENT_ID, response_uri=RESPONSE_URI, nonce=NONCE)
    return b64url_decode(vp)


@PROPERTY
@given(data=st.data())
def test_mutated_responses_are_refused_not_crashed(
    data: st.DataObject, verifier: EuAvVerifier, good_response: bytes
) -> None:
    raw = bytearray(good_response)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        kind = data.draw(st.sampled_from(["flip", "set", "delete", "insert"]))
        byte = data.draw(st.integers(0, 255))
        if kind == "flip":
            raw[position] ^= 1 << (byte % 8)
        elif kind == "set":
            raw[position] = byte
        elif kind == "delete" and len(raw) > 1:
            del raw[position]
        else:
            raw.insert(position, byte)
    try:
        asyncio.run(verifier.verify(presentation(b64url_encode(bytes(raw))), context()))
    except VerificationError:
        return
    # A mutation that leaves everything signed intact (e.g. in an unsigned
    # length-preserving spot) may pass; it must still prove exactly age 18.
    result = asyncio.run(verifier.verify(presentation(b64url_encode(bytes(raw))), context()))
    assert result.age_over == frozenset({18})


@PROPERTY
@given(cbor_values)
def test_arbitrary_cbor_responses_are_refused_not_crashed(
    verifier: EuAvVerifier, value: Any
) -> None:
    with pytest.raises(VerificationError):
        asyncio.run(verifier.verify(presentation(b64url_encode(cbor2.dumps(value))), context()))
