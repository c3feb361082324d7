"""RFC 9474 and RFC 9578 test vectors through our blind RSA, structs and key encoding."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.verifiers.privacy_pass.vectors import (
    RFC9474_PSS_DETERMINISTIC,
    RFC9474_PSS_RANDOMIZED,
    RFC9578_TYPE2,
)
from verifiers.privacy_pass import blindrsa
from verifiers.privacy_pass.keys import IssuerPublicKey, encode_spki
from verifiers.privacy_pass.structs import (
    TOKEN_TYPE_BLIND_RSA,
    Token,
    TokenChallenge,
    TokenRequest,
    TokenResponse,
)


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def _i(text: str) -> int:
    return int(text, 16)


def _private_key(vector: dict[str, str]) -> rsa.RSAPrivateKey:
    p, q, e, d = (_i(vector[k]) for k in ("p", "q", "e", "d"))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


@pytest.mark.parametrize(
    "vector",
    [RFC9474_PSS_DETERMINISTIC, RFC9474_PSS_RANDOMIZED],
    ids=["rfc9474-pss-deterministic", "rfc9474-pss-randomized"],
)
def test_rfc9474_appendix_a_vector(vector: dict[str, str]) -> None:
    n, e = _i(vector["n"]), _i(vector["e"])
    assert _i(vector["p"]) * _i(vector["q"]) == n
    prepared = _h(vector["msg_prefix"]) + _h(vector["msg"])
    assert prepared == _h(vector["prepared_msg"])
    salt = _h(vector["salt"])
    encoded = blindrsa.emsa_pss_encode(prepared, n.bit_length() - 1, salt)
    assert encoded.hex() == vector["encoded_msg"]
    inv = _i(vector["inv"])
    r = pow(inv, -1, n)  # the vector gives the inverse; Blind draws r
    blinded, got_inv = blindrsa.blind(n, e, prepared, salt=salt, r=r)
    assert got_inv == inv
    assert blinded.hex() == vector["blinded_msg"]
    blind_sig = blindrsa.blind_sign(_private_key(vector), blinded)
    assert blind_sig.hex() == vector["blind_sig"]
    sig = blindrsa.finalize(n, e, prepared, blind_sig, inv)
    assert sig.hex() == vector["sig"]
    assert blindrsa.verify(n, e, prepared, sig)
    assert not blindrsa.verify(n, e, prepared + b"x", sig)


def test_finalize_refuses_a_wrong_blind_signature() -> None:
    vector = RFC9474_PSS_DETERMINISTIC
    n, e = _i(vector["n"]), _i(vector["e"])
    bad = bytearray(_h(vector["blind_sig"]))
    bad[-1] ^= 1
    with pytest.raises(blindrsa.BlindingError, match="invalid signature"):
        blindrsa.finalize(n, e, _h(vector["msg"]), bytes(bad), _i(vector["inv"]))


def test_blind_sign_refuses_out_of_range_and_wrong_size() -> None:
    key = _private_key(RFC9474_PSS_DETERMINISTIC)
    n = key.public_key().public_numbers().n
    with pytest.raises(blindrsa.BlindingError):
        blindrsa.blind_sign(key, (n + 1).to_bytes(512, "big"))
    with pytest.raises(blindrsa.BlindingError):
        blindrsa.blind_sign(key, b"\x01" * 100)


@pytest.mark.parametrize("index", range(len(RFC9578_TYPE2)), ids=lambda i: f"rfc9578-a2-{i + 1}")
def test_rfc9578_type2_vector(index: int) -> None:
    vector = RFC9578_TYPE2[index]
    pem = _h(vector["skS"])
    secret = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(secret, rsa.RSAPrivateKey)
    numbers = secret.public_key().public_numbers()
    # Our SPKI encoding of the key is byte for byte the pkS of the vector.
    assert encode_spki(numbers.n, numbers.e).hex() == vector["pkS"]
    key = IssuerPublicKey.from_spki(_h(vector["pkS"]))
    challenge = TokenChallenge.parse(_h(vector["token_challenge"]))
    assert challenge.serialize().hex() == vector["token_challenge"]
    nonce = _h(vector["nonce"])
    token_input = (
        TOKEN_TYPE_BLIND_RSA.to_bytes(2, "big") + nonce + challenge.digest() + key.token_key_id
    )
    blinded, inv = blindrsa.blind(
        key.n, key.e, token_input, salt=_h(vector["salt"]), r=_i(vector["blind"])
    )
    request = TokenRequest(TOKEN_TYPE_BLIND_RSA, key.truncated_id, blinded)
    assert request.serialize().hex() == vector["token_request"]
    assert TokenRequest.parse(_h(vector["token_request"])) == request
    response = TokenResponse(blindrsa.blind_sign(secret, request.blinded_msg))
    assert response.serialize().hex() == vector["token_response"]
    authenticator = blindrsa.finalize(key.n, key.e, token_input, response.blind_sig, inv)
    token = Token(TOKEN_TYPE_BLIND_RSA, nonce, challenge.digest(), key.token_key_id, authenticator)
    assert token.serialize().hex() == vector["token"]
    parsed = Token.parse(_h(vector["token"]))
    assert parsed == token
    assert blindrsa.verify(key.n, key.e, parsed.authenticator_input, parsed.authenticator)
    assert parsed.token_key_id == hashlib.sha256(_h(vector["pkS"])).digest()
