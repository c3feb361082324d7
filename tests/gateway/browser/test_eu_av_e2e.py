"""End to end for ``eu-av``: the challenge page's OpenID4VP request answered with an mdoc.

A real gateway and upstream; the wallet simulator reads the ``openid4vp://``
request from the page, signs a DeviceResponse over its SessionTranscript
(client_id, response_uri, nonce), posts it ``direct_post``, and the browser
(its challenge cookie only) follows the ``redirect_uri`` or polls the
waiting page to a session and the protected page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.eu_av import MDL_DOCTYPE, EuAvSite
from tests.support.gateway import GatewayProcess, session_cookie
from tests.support.rawhttp import request
from tests.support.upstream import UpstreamServer
from tests.support.wallet import browser_get, wallet_challenge
from verifiers.reference.mdoc import Defects, build_device_response
from verifiers.reference.wallet import parse_request, submit

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def site(upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EuAvSite]:
    with EuAvSite(tmp_path_factory.mktemp("eu-av"), upstream.url) as running:
        yield running


@pytest.fixture(scope="module")
def mdl_site(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EuAvSite]:
    with EuAvSite(tmp_path_factory.mktemp("eu-av-mdl"), upstream.url, accept_mdl=True) as running:
        yield running


def protected_page(gw: GatewayProcess, cookie: str) -> tuple[int, dict[str, str]]:
    page = request(
        gw.port,
        "GET",
        "/echo/wine/red",
        [(b"Accept", b"text/html"), (b"Cookie", f"__Host-agegate={cookie}".encode())],
    )
    headers = json.loads(page.body)["headers"] if page.status == 200 else {}
    return page.status, {k.lower(): v for k, v in headers}


def same_device(site: EuAvSite) -> tuple[int, dict[str, str]]:
    """Answer the page's request with the wallet's mdoc; follow the redirect_uri."""
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200, body
    done = browser_get(site.gw, body["redirect_uri"].removeprefix(site.gw.public_origin),
                       challenge.cookie)  # fmt: skip
    assert done.status == 303, done.text
    assert done.header("location") == "/echo/wine/red"
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    return protected_page(site.gw, cookie)


def test_the_challenge_page_asks_for_the_av_mdoc_age_element_only(site: EuAvSite) -> None:
    challenge = wallet_challenge(site.gw)
    params = {k: v[0] for k, v in parse_qs(urlsplit(challenge.request_uri).query).items()}
    assert params["client_id"] == f"redirect_uri:{site.gw.public_origin}/.agegate/callback/eu-av"
    assert json.loads(params["dcql_query"]) == {
        "credentials": [
            {
                "id": "age",
                "format": "mso_mdoc",
                "meta": {"doctype_value": "eu.europa.ec.av.1"},
                "claims": [
                    {"path": ["eu.europa.ec.av.1", "age_over_18"], "intent_to_retain": False}
                ],
            }
        ]
    }


def test_same_device_mdoc_answer_lands_on_the_protected_page(site: EuAvSite) -> None:
    site.hold(age_over={18: True, 21: False})
    status, headers = same_device(site)
    assert (status, headers["x-agegate-age-over"]) == (200, "18")


def test_cross_device_browser_polls_until_the_mdoc_answer(site: EuAvSite) -> None:
    site.hold()
    challenge = wallet_challenge(site.gw)
    waiting = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert waiting.status == 200
    assert "http-equiv=refresh" in waiting.text
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200, body
    done = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert done.status == 303, done.text
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    status_code, headers = protected_page(site.gw, cookie)
    assert (status_code, headers["x-agegate-age-over"]) == (200, "18")


def test_under_18_mdoc_gets_the_refusal_page(site: EuAvSite) -> None:
    site.hold(age_over={18: False})
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200, body  # a valid credential: the answer "not over 18" is the outcome
    done = browser_get(site.gw, body["redirect_uri"].removeprefix(site.gw.public_origin),
                       challenge.cookie)  # fmt: skip
    assert done.status == 403, done.text
    assert "text/html" in done.header("content-type")
    assert not session_cookie(done.header_list("set-cookie"))


def test_wrong_nonce_is_shown_to_the_waiting_browser_as_bad_device_signature(
    site: EuAvSite,
) -> None:
    site.hold()
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    defects = Defects(transcript_nonce="n-of-another-request")
    status, body = submit(wallet_request, site.wallet.answer(wallet_request, {"defects": defects}))
    assert (status, body["reason"]) == (400, "bad_device_signature")
    shown = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert shown.status == 400
    assert "bad_device_signature" in shown.text
    assert not session_cookie(shown.header_list("set-cookie"))


def test_mdl_is_not_accepted_without_accept_mdl(site: EuAvSite) -> None:
    mdl = site.hold(mdl=True)
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    assert site.wallet.answer(wallet_request) == {}  # the query asks for the AV docType only
    # A wallet sending its mDL anyway, validly signed for this request.
    response = build_device_response(
        mdl,
        client_id=wallet_request.client_id,
        response_uri=wallet_request.response_uri,
        nonce=wallet_request.nonce,
    )
    status, body = submit(wallet_request, {"age": [response]})
    assert (status, body["reason"]) == (400, "bad_type")


def test_mdl_with_accept_mdl_answers_the_mdl_option(mdl_site: EuAvSite) -> None:
    challenge = wallet_challenge(mdl_site.gw)
    query = parse_request(challenge.request_uri).dcql_query
    assert [q["meta"]["doctype_value"] for q in query["credentials"]] == [
        "eu.europa.ec.av.1",
        MDL_DOCTYPE,
    ]
    assert query["credential_sets"] == [{"options": [["age"], ["age-mdl"]]}]
    mdl_site.hold(mdl=True)
    wallet_request = parse_request(challenge.request_uri)
    answer = mdl_site.wallet.answer(wallet_request)
    assert list(answer) == ["age-mdl"]
    status, body = submit(wallet_request, answer)
    assert status == 200, body
    done = browser_get(mdl_site.gw, body["redirect_uri"].removeprefix(mdl_site.gw.public_origin),
                       challenge.cookie)  # fmt: skip
    assert done.status == 303, done.text
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    status_code, headers = protected_page(mdl_site.gw, cookie)
    assert (status_code, headers["x-agegate-age-over"]) == (200, "18")


def test_av_mdoc_still_accepted_with_accept_mdl(mdl_site: EuAvSite) -> None:
    mdl_site.hold()
    status, headers = same_device(mdl_site)
    assert (status, headers["x-agegate-age-over"]) == (200, "18")
