"""An ``eu-av`` mdoc is accepted only from the wallet flow — against a live gateway.

A DeviceResponse valid for this very challenge (our nonce, our callback as
client_id and response_uri), posted to the callback browser-style (the
challenge's own ``state``, ``age_token``), must not start a session: on that
channel nothing binds the request the wallet answered to the one the gateway
made.  The callback of a wallet verifier is the OpenID4VP ``direct_post``
endpoint, which takes only the request's sealed ``state`` (``state_invalid``);
the verifier's own ``wrong_channel`` is the second line (tests/verifiers/mdoc).
Also: the gateway loads an ``eu-av`` verifier from YAML, and a hostile
DeviceResponse in a ``direct_post`` is a reasoned 400, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.security.support import browser_challenge, callback
from tests.support.gateway import GatewayProcess, session_cookie, token_verifier_settings
from tests.support.upstream import UpstreamServer
from tests.support.wallet import wallet_challenge, wallet_policy
from verifiers.reference.mdoc import MdocTestIssuer, build_device_response
from verifiers.reference.wallet import parse_request, submit

POLICY = wallet_policy("eu-wallet")


@pytest.fixture(scope="module")
def issuer() -> MdocTestIssuer:
    return MdocTestIssuer.generate()


@pytest.fixture(scope="module")
def mdoc_gateway(
    upstream: UpstreamServer, issuer: MdocTestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory: Path = tmp_path_factory.mktemp("mdoc-gw")
    (directory / "iaca.pem").write_bytes(issuer.trust_anchor_pem())
    verifiers = {
        "test-token": token_verifier_settings(),
        "eu-wallet": {"kind": "eu-av", "trust_anchors": "iaca.pem"},
    }
    settings = {"rate_limit": 0, "verifiers": verifiers}
    with GatewayProcess(directory, upstream=upstream.url, policy=POLICY, settings=settings) as gw:
        yield gw


def test_mdoc_on_the_form_post_callback_is_refused(
    mdoc_gateway: GatewayProcess, issuer: MdocTestIssuer
) -> None:
    challenge = browser_challenge(mdoc_gateway)
    uri = f"{mdoc_gateway.public_origin}/.agegate/callback/eu-wallet"
    vp_token = build_device_response(
        issuer.issue(), client_id=f"redirect_uri:{uri}", response_uri=uri, nonce=challenge.nonce
    )
    fields = f"state={quote(challenge.state)}&age_token={quote(vp_token)}"
    response = callback(mdoc_gateway, fields.encode(), challenge.cookie, verifier="eu-wallet")
    assert response.status == 400, (response.status, response.body[:300])
    assert json.loads(response.body)["reason"] == "state_invalid"
    assert session_cookie(response.header_list("set-cookie")) is None
    assert vp_token[:40] not in mdoc_gateway.log_text()


@pytest.mark.parametrize(
    "vp_token",
    ["", "!!", "oA", "2BhYQA" * 2000, "gxgYWQ", "pGd2ZXJzaW9uYzEuMA"],
)
def test_hostile_device_response_is_a_reasoned_refusal(
    mdoc_gateway: GatewayProcess, vp_token: str
) -> None:
    wallet_request = parse_request(wallet_challenge(mdoc_gateway).request_uri)
    status, body = submit(wallet_request, {"age": [vp_token]})
    assert 400 <= status < 500, (status, body)
    # Past the state: the DeviceResponse itself was judged (an empty one is the vp_token's).
    assert body["reason"] not in ("state_invalid", "replayed_state"), body
