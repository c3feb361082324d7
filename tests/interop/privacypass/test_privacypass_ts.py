"""Interop with Cloudflare's ``@cloudflare/privacypass-ts`` 0.8.1 (another RFC 9578 stack).

(a) their client obtains a token from our reference issuer for our gateway's
    challenge, and the gateway accepts it;
(b) their issuer (a key they generated, configured in our gateway) issues a
    token for our challenge, and our verifier accepts it.

Node and ``node_modules`` are required (``make interop-deps`` runs ``npm ci`` here).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway import GatewayProcess, session_cookie
from tests.support.net import free_port
from tests.support.node import require_package, run_node_json
from tests.support.upstream import UpstreamServer
from tests.verifiers.privacy_pass.harness import ReferenceProcess, pp_settings
from verifiers.privacy_pass.client import attest, parse_private_token_challenges
from verifiers.privacy_pass.structs import b64url_encode
from verifiers.privacy_pass.verifier import PrivacyPassVerifier

HERE = Path(__file__).parent
INTEROP_ISSUER = "interop.example"
POLICY = """
version: 1
defaults:
  verifiers: [test-token, reference-pp]
  session_ttl: 1h
routes:
  - name: wine
    path: /echo/wine/**
    min_age: 18
  - name: interop
    path: /echo/interop/**
    min_age: 18
    verifiers: [interop-pp]
  - name: both
    path: /echo/both/**
    min_age: 18
    verifiers: [reference-pp, interop-pp]
  - name: everything-else
    path: /**
    action: allow
"""

pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _independent_implementation_installed() -> None:
    # An interop test that skips proves nothing: fail, saying what to install.
    require_package(HERE, "@cloudflare/privacypass-ts")


def node(command: dict[str, Any]) -> dict[str, Any]:
    return run_node_json(HERE / "pp.mjs", command)


@pytest.fixture(scope="module")
def their_key() -> dict[str, Any]:
    return node({"op": "keygen"})


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, their_key: dict[str, Any]
) -> Iterator[tuple[GatewayProcess, ReferenceProcess]]:
    tmp = tmp_path_factory.mktemp("pp-interop")
    spki = tmp / "interop-18.spki.der"
    spki.write_bytes(base64.b64decode(their_key["spki"]))
    port = free_port()
    with UpstreamServer() as upstream, ReferenceProcess(tmp / "ref", clients=[]) as ref:
        settings = pp_settings(ref)
        settings["verifiers"]["interop-pp"] = {
            "kind": "privacy-pass",
            "issuer_name": INTEROP_ISSUER,
            "token_keys": {"18": str(spki)},
        }
        (tmp / "gw").mkdir()
        with GatewayProcess(
            tmp / "gw", upstream=upstream.url, policy=POLICY, settings=settings, port=port
        ) as gw:
            yield gw, ref


def _private_token_header(response: httpx.Response, issuer_name: str) -> str:
    values = [
        value
        for value in response.headers.get_list("www-authenticate")
        if (offered := parse_private_token_challenges(value))
        and offered[0].challenge.issuer_name == issuer_name
    ]
    assert values, response.headers.get_list("www-authenticate")
    return ", ".join(values)


def _redeem(gw: GatewayProcess, path: str, authorization: str) -> httpx.Response:
    return httpx.get(
        gw.url + path, headers={"accept": "application/json", "authorization": authorization}
    )


def test_their_client_our_issuer_our_gateway(
    gateway: tuple[GatewayProcess, ReferenceProcess],
) -> None:
    gw, ref = gateway
    challenge = httpx.get(gw.url + "/echo/wine/red", headers={"accept": "application/json"})
    assert challenge.status_code == 401
    attestation = asyncio.run(attest(ref.url, "1990-01-01"))
    answer = node(
        {
            "op": "client",
            "www_authenticate": _private_token_header(challenge, ref.issuer_name),
            "issuer_request_uri": ref.url + "/token-request",
            "attestation": attestation,
        }
    )
    assert answer["authorization"].startswith("PrivateToken token=")
    response = _redeem(gw, "/echo/wine/red", answer["authorization"])
    assert response.status_code == 200, response.text
    assert session_cookie(response.headers.get_list("set-cookie"))
    assert _redeem(gw, "/echo/wine/red", answer["authorization"]).json()["reason"] == "replayed"


def test_their_issuer_our_challenge_our_verifier(
    gateway: tuple[GatewayProcess, ReferenceProcess], their_key: dict[str, Any]
) -> None:
    gw, _ = gateway
    challenge = httpx.get(gw.url + "/echo/interop/x", headers={"accept": "application/json"})
    assert challenge.status_code == 401
    header = _private_token_header(challenge, INTEROP_ISSUER)
    # Their SPKI encoding of their key is byte for byte what the gateway advertises.
    assert b64url_encode(base64.b64decode(their_key["spki"])) in header
    answer = node({"op": "issue", **their_key, "www_authenticate": header})
    response = _redeem(gw, "/echo/interop/x", answer["authorization"])
    assert response.status_code == 200, response.text
    assert session_cookie(response.headers.get_list("set-cookie"))


def test_two_privacy_pass_verifiers_on_one_route(
    gateway: tuple[GatewayProcess, ReferenceProcess], their_key: dict[str, Any]
) -> None:
    gw, _ = gateway
    challenge = httpx.get(gw.url + "/echo/both/x", headers={"accept": "application/json"})
    header = _private_token_header(challenge, INTEROP_ISSUER)
    answer = node({"op": "issue", **their_key, "www_authenticate": header})
    assert _redeem(gw, "/echo/both/x", answer["authorization"]).status_code == 200


def test_verifier_class_is_registered() -> None:
    from importlib.metadata import entry_points

    found = {e.name: e.load() for e in entry_points(group="agegate.verifiers")}
    assert found["privacy-pass"] is PrivacyPassVerifier
