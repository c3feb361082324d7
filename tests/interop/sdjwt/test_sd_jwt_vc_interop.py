"""Interop with ``@sd-jwt/sd-jwt-vc`` 0.19.0 + ``@sd-jwt/crypto-nodejs`` 0.19.0 (TypeScript).

Their library issues an SD-JWT VC (our test CA's issuer certificate in
``x5c``) and presents it with a KB-JWT; our verifier accepts it, and refuses
each planted defect with its own reason code.  Then the same through a real
gateway's ``direct_post``: the accepted one and two refusals.

Node and ``node_modules`` are required (``make interop-deps`` runs ``npm ci`` here).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.support.gateway import session_cookie
from tests.support.node import require_package, run_node_json
from tests.support.upstream import UpstreamServer
from tests.support.wallet import WalletSite, browser_get, wallet_challenge
from tests.verifiers.sd_jwt_vc.helpers import CLIENT_ID, NONCE, Setup, make_setup
from verifiers.base import VerificationError
from verifiers.reference.sd_jwt_issuer import (
    TEST_VCT,
    ReferenceCa,
    ReferenceSdJwtIssuer,
    public_jwk,
)
from verifiers.reference.wallet import parse_request, submit

HERE = Path(__file__).parent
DAY = 86400
pytestmark = [pytest.mark.slow]


@pytest.fixture(autouse=True)
def _independent_implementation_installed() -> None:
    # An interop test that skips proves nothing: fail, saying what to install.
    require_package(HERE, "@sd-jwt/sd-jwt-vc")


def private_jwk(key: Any) -> dict[str, Any]:
    return dict(json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)))


def node_present(
    issuer: ReferenceSdJwtIssuer,
    holder_key: Any,
    *,
    aud: str,
    nonce: str,
    kb: bool = True,
    extra: bool = False,
    times: int = 1,
    tamper: bool = False,
    **payload: Any,
) -> list[str]:
    """Presentations made by the TypeScript library for our verifier's request."""
    day = int(time.time() // DAY * DAY)
    claims: dict[str, Any] = {
        "iss": issuer.issuer,
        "vct": TEST_VCT,
        "iat": day,
        "exp": day + 30 * DAY,
        "cnf": {"jwk": public_jwk(holder_key)},
        "age_equal_or_over": {"18": True, "21": False},
        **payload,
    }
    frame: dict[str, Any] = {"age_equal_or_over": {"_sd": ["18", "21"]}}
    present: dict[str, Any] = {"age_equal_or_over": {"18": True}}
    if extra:
        claims["family_name"] = "Doe"
        frame["_sd"] = ["family_name"]
        present["family_name"] = True
    command = {
        "issuer_key": private_jwk(issuer.key),
        "x5c": issuer.x5c(),
        "holder_key": private_jwk(holder_key),
        "payload": claims,
        "frame": frame,
        "present": present,
        "kb": {"aud": aud, "nonce": nonce, "iat": int(time.time())} if kb else None,
        "tamper": tamper,
        "times": times,
    }
    presentations: list[str] = run_node_json(HERE / "present.mjs", command)["presentations"]
    return presentations


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup(tmp_path)


def present(setup: Setup, **kwargs: Any) -> list[str]:
    kwargs.setdefault("aud", CLIENT_ID)
    kwargs.setdefault("nonce", NONCE)
    return node_present(setup.issuer, setup.wallet.holder_key, **kwargs)


async def reason(setup: Setup, presentation: str) -> str:
    with pytest.raises(VerificationError) as caught:
        await setup.verify(presentation)
    return caught.value.reason


async def test_their_presentation_is_accepted(setup: Setup) -> None:
    (presentation,) = present(setup)
    assertion = await setup.verify(presentation)
    assert assertion.age_over == frozenset({18})
    assert assertion.age_under == frozenset()  # "21" was not disclosed


async def test_their_wrong_nonce_is_refused(setup: Setup) -> None:
    assert await reason(setup, present(setup, nonce="their-nonce")[0]) == "wrong_nonce"


async def test_their_wrong_audience_is_refused(setup: Setup) -> None:
    assert await reason(setup, present(setup, aud="https://shop.example")[0]) == "wrong_audience"


async def test_their_expired_credential_is_refused(setup: Setup) -> None:
    day = int(time.time() // DAY * DAY)
    expired = present(setup, iat=day - 40 * DAY, exp=day - 10 * DAY)[0]
    assert await reason(setup, expired) == "expired"


async def test_their_not_yet_valid_credential_is_refused(setup: Setup) -> None:
    day = int(time.time() // DAY * DAY)
    assert await reason(setup, present(setup, nbf=day + 2 * DAY)[0]) == "not_yet_valid"


async def test_their_tampered_disclosure_is_refused(setup: Setup) -> None:
    assert await reason(setup, present(setup, tamper=True)[0]) == "digest_mismatch"


async def test_their_untrusted_issuer_is_refused(setup: Setup) -> None:
    stranger = ReferenceSdJwtIssuer(ca=ReferenceCa(name="not a trust anchor"))
    presentation = node_present(stranger, setup.wallet.holder_key, aud=CLIENT_ID, nonce=NONCE)[0]
    assert await reason(setup, presentation) == "untrusted_chain"


async def test_their_presentation_without_kb_jwt_is_refused(setup: Setup) -> None:
    assert await reason(setup, present(setup, kb=False)[0]) == "missing_key_binding"


async def test_their_extra_family_name_is_refused(setup: Setup) -> None:
    assert await reason(setup, present(setup, extra=True)[0]) == "extra_disclosure"


async def test_their_reused_credential_is_refused(setup: Setup) -> None:
    first, second = present(setup, times=2)
    await setup.verify(first)
    assert await reason(setup, second) == "linkable_credential"


# -- through a real gateway ----------------------------------------------------------


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WalletSite]:
    with WalletSite(tmp_path_factory.mktemp("sdjwt-interop"), upstream.url) as running:
        yield running


def gateway_answer(site: WalletSite, **kwargs: Any) -> tuple[str, int, dict[str, Any]]:
    challenge = wallet_challenge(site.gw)
    request = parse_request(challenge.request_uri)
    presentation = node_present(
        site.issuer,
        site.wallet.holder_key,
        aud=kwargs.pop("aud", request.client_id),
        nonce=kwargs.pop("nonce", request.nonce),
        **kwargs,
    )[0]
    status, body = submit(request, {"age": [presentation]})
    return challenge.cookie, status, body


def test_gateway_accepts_their_presentation(site: WalletSite) -> None:
    cookie, status, body = gateway_answer(site)
    assert status == 200, body
    done = browser_get(site.gw, body["redirect_uri"].removeprefix(site.gw.public_origin), cookie)
    assert done.status == 303
    assert session_cookie(done.header_list("set-cookie"))


def test_gateway_refuses_their_presentation_for_another_request(site: WalletSite) -> None:
    _, status, body = gateway_answer(site, nonce="not-this-request")
    assert (status, body["reason"]) == (400, "wrong_nonce")


def test_gateway_refuses_their_extra_disclosure(site: WalletSite) -> None:
    _, status, body = gateway_answer(site, extra=True)
    assert (status, body["reason"]) == (400, "extra_disclosure")
