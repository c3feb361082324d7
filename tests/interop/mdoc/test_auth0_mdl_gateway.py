"""Interop through a real gateway: ``@auth0/mdl`` DeviceResponses for the gateway's own request.

The challenge page's ``openid4vp://`` request is read as a wallet would;
``mdl.mjs`` (an independent mdoc stack, see ``test_auth0_mdl.py``) signs a
DeviceResponse over the SessionTranscript of that request's client_id,
response_uri and nonce, and it is posted ``direct_post`` to the gateway.
The gateway trusts the IACA ``mdl.mjs`` made in a first run; later runs
issue under the same chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.eu_av import EU_AV_POLICY, eu_av_verifiers
from tests.support.gateway import GatewayProcess, session_cookie
from tests.support.node import require_package, run_node_json
from tests.support.rawhttp import request
from tests.support.upstream import UpstreamServer
from tests.support.wallet import browser_get, wallet_challenge
from verifiers.reference.wallet import AuthorizationRequest, parse_request, submit

pytestmark = [pytest.mark.slow]
HERE = Path(__file__).parent


def run_mdl(cases: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """One run of ``mdl.mjs``; fails (never skips) without node or its modules."""
    require_package(HERE, "@auth0/mdl")
    stdin = {"now": datetime.now(UTC).isoformat(), "cases": cases, **fields}
    return run_node_json(HERE / "mdl.mjs", stdin, timeout=120)


@pytest.fixture(scope="module")
def chain() -> dict[str, Any]:
    made: dict[str, Any] = run_mdl({})["chain"]
    return made


@pytest.fixture(scope="module")
def gw(
    chain: dict[str, Any], upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("auth0-gateway")
    (directory / "iaca.pem").write_text(chain["rootPem"])
    settings = {"verifiers": eu_av_verifiers("iaca.pem")}
    with GatewayProcess(
        directory, upstream=upstream.url, policy=EU_AV_POLICY, settings=settings
    ) as running:
        yield running


def auth0_answer(
    chain: dict[str, Any], wallet_request: AuthorizationRequest, **case: Any
) -> dict[str, list[str]]:
    """The vp_token of an @auth0/mdl DeviceResponse for the gateway's request."""
    built = run_mdl(
        {"case": case},
        chain=chain,
        client_id=wallet_request.client_id,
        response_uri=wallet_request.response_uri,
        nonce=wallet_request.nonce,
    )
    [query] = wallet_request.dcql_query["credentials"]
    return {query["id"]: [built["responses"]["case"]]}


def test_auth0_response_to_the_gateways_request_reaches_the_protected_page(
    gw: GatewayProcess, chain: dict[str, Any]
) -> None:
    challenge = wallet_challenge(gw)
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, auth0_answer(chain, wallet_request))
    assert status == 200, body
    done = browser_get(gw, body["redirect_uri"].removeprefix(gw.public_origin), challenge.cookie)
    assert done.status == 303, done.text
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    page = request(
        gw.port, "GET", "/echo/wine/red", [(b"Cookie", f"__Host-agegate={cookie}".encode())]
    )
    assert page.status == 200
    headers = {k.lower(): v for k, v in json.loads(page.body)["headers"]}
    assert headers["x-agegate-age-over"] == "18"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ({"nonce": "n-of-another-request"}, "bad_device_signature"),
        ({"response_uri": "https://evil.example/cb"}, "bad_device_signature"),
        ({"tamper": True}, "digest_mismatch"),
    ],
)
def test_auth0_response_with_a_planted_defect_is_refused_by_the_gateway(
    gw: GatewayProcess, chain: dict[str, Any], case: dict[str, Any], reason: str
) -> None:
    challenge = wallet_challenge(gw)
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, auth0_answer(chain, wallet_request, **case))
    assert (status, body["reason"]) == (400, reason)
    shown = browser_get(gw, challenge.wait_url, challenge.cookie)
    assert shown.status == 400
    assert reason in shown.text
