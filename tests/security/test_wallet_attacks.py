"""Attacks on the OpenID4VP wallet flow, each over a real socket to a real gateway.

The wallet's ``direct_post`` carries no cookie, so its sealed ``state`` is the
only thing tying it to a browser; the one-time ``response_code`` turns the
outcome into a session only in the browser that holds that challenge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from tests.support.gateway import session_cookie
from tests.support.rawhttp import RawResponse, request
from tests.support.upstream import UpstreamServer
from tests.support.wallet import WalletSite, browser_get, wallet_challenge
from verifiers.reference.wallet import parse_request, submit

pytestmark = [pytest.mark.slow]
FORM = (b"Content-Type", b"application/x-www-form-urlencoded")
JSON = (b"Accept", b"application/json")


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WalletSite]:
    with WalletSite(tmp_path_factory.mktemp("wallet-attacks"), upstream.url) as running:
        yield running


def direct_post(
    site: WalletSite, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> RawResponse:
    return request(
        site.gw.port,
        "POST",
        "/.agegate/callback/eu-pid",
        headers if headers is not None else [FORM, JSON],
        body,
    )


def reason(response: RawResponse) -> str:
    return str(json.loads(response.body)["reason"])


def answered(site: WalletSite) -> tuple[str, str]:
    """A browser's challenge cookie and the response_code a wallet got for it."""
    site.fresh_credential()
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200, body
    return challenge.cookie, body["redirect_uri"].removeprefix(site.gw.public_origin)


def test_replayed_wallet_state_is_refused(site: WalletSite) -> None:
    site.fresh_credential()
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    assert submit(wallet_request, site.wallet.answer(wallet_request))[0] == 200
    site.fresh_credential()  # even with another credential, the state is used up
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert (status, body["reason"]) == (400, "replayed_state")


def test_forged_wallet_state_is_refused(site: WalletSite) -> None:
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    forged = wallet_request.state[:-4] + (
        "AAAA" if not wallet_request.state.endswith("AAAA") else "BBBB"
    )
    body = urlencode({"state": forged, "vp_token": json.dumps(site.wallet.answer(wallet_request))})
    response = direct_post(site, body.encode())
    assert (response.status, reason(response)) == (400, "state_invalid")


def test_browser_challenge_state_is_not_a_wallet_state(site: WalletSite) -> None:
    # The challenge cookie's own random state must not open as a sealed wallet state.
    response = direct_post(site, urlencode({"state": "x" * 32, "vp_token": "{}"}).encode())
    assert (response.status, reason(response)) == (400, "state_invalid")


def test_response_code_used_twice_is_refused(site: WalletSite) -> None:
    cookie, completion = answered(site)
    first = browser_get(site.gw, completion, cookie)
    assert first.status == 303
    again = browser_get(site.gw, completion, cookie)
    assert again.status == 400
    assert "response_code_unknown" in again.text
    assert not session_cookie(again.header_list("set-cookie"))


def test_response_code_from_another_browsers_challenge_is_refused_session_fixation(
    site: WalletSite,
) -> None:
    # The attacker answers their own request with their wallet and sends the victim
    # the completion link: the victim's browser holds another challenge.
    _, attacker_completion = answered(site)
    victim = wallet_challenge(site.gw)
    response = browser_get(site.gw, attacker_completion, victim.cookie)
    assert response.status == 400
    assert "session_mismatch" in response.text
    assert not session_cookie(response.header_list("set-cookie"))


def test_response_code_without_a_challenge_cookie_is_refused(site: WalletSite) -> None:
    _, completion = answered(site)
    response = browser_get(site.gw, completion, None)
    assert response.status == 400
    assert "challenge_missing" in response.text


def test_guessed_response_code_is_refused(site: WalletSite) -> None:
    victim = wallet_challenge(site.gw)
    response = browser_get(site.gw, "/.agegate/wallet?response_code=" + "A" * 43, victim.cookie)
    assert response.status == 400
    assert "response_code_unknown" in response.text
    odd = browser_get(site.gw, "/.agegate/wallet?response_code=%00%0d%0a", victim.cookie)
    assert odd.status == 400
    assert "malformed" in odd.text


def test_direct_post_with_an_oversize_body_is_refused(site: WalletSite) -> None:
    response = direct_post(site, b"state=x&vp_token=" + b"a" * (70 * 1024))
    assert response.status == 413


def test_direct_post_as_json_is_refused(site: WalletSite) -> None:
    response = direct_post(site, b'{"state":"x"}', [(b"Content-Type", b"application/json"), JSON])
    assert response.status == 415


def test_direct_post_as_get_is_refused(site: WalletSite) -> None:
    response = request(site.gw.port, "GET", "/.agegate/callback/eu-pid?state=x&vp_token=y", [JSON])
    assert response.status == 405


def test_vp_token_for_a_query_not_asked_is_refused(site: WalletSite) -> None:
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    answer = site.wallet.answer(wallet_request)
    body = urlencode(
        {"state": wallet_request.state, "vp_token": json.dumps({"pid": answer["age"]})}
    )
    response = direct_post(site, body.encode())
    assert (response.status, reason(response)) == (400, "unexpected_query")


def test_vp_token_answering_two_query_ids_at_once_is_refused(site: WalletSite) -> None:
    # Two credentials for one age would only make the visitor more linkable.
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    answer = site.wallet.answer(wallet_request)
    vp_token = json.dumps({"age": answer["age"], "age-mdl": answer["age"]})
    body = urlencode({"state": wallet_request.state, "vp_token": vp_token})
    response = direct_post(site, body.encode())
    assert (response.status, reason(response)) == (400, "unexpected_query")


def test_vp_token_naming_an_id_the_query_did_not_name_is_refused(site: WalletSite) -> None:
    # "age-mdl" is an id of the eu-av query with accept_mdl, not of this sd-jwt-vc one.
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    assert [q["id"] for q in wallet_request.dcql_query["credentials"]] == ["age"]
    answer = site.wallet.answer(wallet_request)
    body = urlencode(
        {"state": wallet_request.state, "vp_token": json.dumps({"age-mdl": answer["age"]})}
    )
    response = direct_post(site, body.encode())
    assert (response.status, reason(response)) == (400, "unexpected_query")


@pytest.mark.parametrize(
    "vp_token",
    [
        "not json",
        "[]",
        '{"age": "bare string"}',
        '{"age": []}',
        '{"age": ["a", "b"]}',
        '{"age": [1]}',
    ],
)
def test_malformed_vp_token_is_refused(site: WalletSite, vp_token: str) -> None:
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    response = direct_post(
        site, urlencode({"state": wallet_request.state, "vp_token": vp_token}).encode()
    )
    assert (response.status, reason(response)) == (400, "malformed")


def test_repeated_state_field_is_refused(site: WalletSite) -> None:
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    body = urlencode(
        [("state", wallet_request.state), ("state", wallet_request.state), ("vp_token", "{}")]
    )
    assert direct_post(site, body.encode()).status == 400


def test_wait_page_with_another_browsers_request_is_refused(site: WalletSite) -> None:
    theirs = wallet_challenge(site.gw)
    mine = wallet_challenge(site.gw)
    response = browser_get(site.gw, theirs.wait_url, mine.cookie)
    assert response.status == 400
    assert "state_invalid" in response.text


def test_presentation_to_another_audience_is_refused(site: WalletSite) -> None:
    site.fresh_credential()
    wallet_request = parse_request(wallet_challenge(site.gw).request_uri)
    answer = site.wallet.answer(
        wallet_request, {"kb": {"aud": "redirect_uri:https://evil.example/cb"}}
    )
    status, body = submit(wallet_request, answer)
    assert (status, body["reason"]) == (400, "wrong_audience")


def test_direct_post_is_rate_limited(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("wallet-limited")
    with WalletSite(directory, upstream.url, settings={"rate_limit": 3}) as limited:
        answers = [direct_post(limited, b"state=x&vp_token=%7B%7D") for _ in range(4)]
    assert [a.status for a in answers[:3]] == [400, 400, 400]
    assert answers[3].status == 429
    assert reason(answers[3]) == "rate_limited"
