"""Malformed age tokens get their reason code, never a 500 — over a real socket.

A token whose payload is JSON nested deeper than Python's recursion limit
once made the API path's unverified nonce peek raise ``RecursionError``
(a 500).  Both ways a token arrives are covered: ``Authorization: AgeToken``
on a protected route and the ``age_token`` field of the browser callback.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import jwt
import pytest

from tests.security.support import browser_challenge, callback, get
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse
from verifiers.sdk import public_jwk


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _nested_token(gw: GatewayProcess, depth: int, *, signed: bool) -> str:
    payload = b"[" * depth + b"]" * depth
    if signed:  # by the trusted issuer: the verifier itself then decodes the payload
        kid = public_jwk(gw.signing_key)["kid"]
        headers = {"typ": "age-token+jwt", "kid": kid}
        return jwt.api_jws.encode(payload, gw.signing_key, algorithm="ES256", headers=headers)
    header = _b64(json.dumps({"alg": "ES256", "typ": "age-token+jwt", "kid": "k"}).encode())
    return f"{header}.{_b64(payload)}.{_b64(b'sig')}"


# 100 000 levels is far over every size limit; 5 000 fits under the 16 KiB token
# bound and is still far past Python's recursion limit, so it reaches the JSON parser.
CASES = [(100_000, False), (5_000, False), (5_000, True)]


def _assert_reasoned_refusal(response: RawResponse) -> None:
    assert 400 <= response.status < 500, (response.status, response.body[:300])
    if response.header("content-type") == "application/problem+json":
        assert json.loads(response.body)["reason"]
    else:
        # A head too large for the HTTP parser is refused before any app runs.
        assert response.status in {413, 414, 431}, response.headers


@pytest.mark.parametrize(("depth", "signed"), CASES)
def test_deeply_nested_token_payload_in_authorization_is_refused(
    gateway: GatewayProcess, depth: int, signed: bool
) -> None:
    token = _nested_token(gateway, depth, signed=signed)
    response = get(gateway, "/echo/wine/red", [(b"Authorization", f"AgeToken {token}".encode())])
    _assert_reasoned_refusal(response)
    if depth == 5_000:
        assert response.status == 401
        assert json.loads(response.body)["reason"] == "malformed"


@pytest.mark.parametrize(("depth", "signed"), CASES)
def test_deeply_nested_token_payload_in_callback_is_refused(
    gateway: GatewayProcess, depth: int, signed: bool
) -> None:
    challenge = browser_challenge(gateway)
    token = _nested_token(gateway, depth, signed=signed)
    fields = f"state={quote(challenge.state)}&age_token={quote(token)}"
    response = callback(gateway, fields.encode(), challenge.cookie)
    _assert_reasoned_refusal(response)
    if signed:
        assert response.status == 400
        assert json.loads(response.body)["reason"] == "malformed"
