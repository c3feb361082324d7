"""End to end: the challenge page's OpenID4VP request, answered by the wallet simulator.

A real gateway and upstream; the wallet reads the ``openid4vp://`` request
from the page, posts ``direct_post`` to the gateway, and the browser (its
challenge cookie only) follows the ``redirect_uri`` to a session and the
protected page.  Then the cross-device variant: the browser polls the
waiting page until the wallet has answered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.session.keys import generate_key_line
from tests.support.gateway import session_cookie
from tests.support.rawhttp import request
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer
from tests.support.wallet import WalletSite, browser_get, wallet_challenge
from verifiers.reference.wallet import parse_request, submit

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WalletSite]:
    with WalletSite(tmp_path_factory.mktemp("wallet"), upstream.url) as running:
        yield running


def protected_page(site: WalletSite, cookie: str) -> tuple[int, dict[str, str]]:
    page = request(
        site.gw.port,
        "GET",
        "/echo/wine/red",
        [(b"Accept", b"text/html"), (b"Cookie", f"__Host-agegate={cookie}".encode())],
    )
    headers = json.loads(page.body)["headers"] if page.status == 200 else {}
    return page.status, {k.lower(): v for k, v in headers}


def test_the_challenge_page_offers_an_openid4vp_request_by_value(site: WalletSite) -> None:
    challenge = wallet_challenge(site.gw)
    origin = site.gw.public_origin
    params = {k: v[0] for k, v in parse_qs(urlsplit(challenge.request_uri).query).items()}
    assert params["client_id"] == f"redirect_uri:{origin}/.agegate/callback/eu-pid"
    assert params["response_uri"] == f"{origin}/.agegate/callback/eu-pid"
    assert params["response_type"] == "vp_token"
    assert params["response_mode"] == "direct_post"
    assert len(params["nonce"]) >= 32
    query = json.loads(params["dcql_query"])
    assert query == {
        "credentials": [
            {
                "id": "age",
                "format": "dc+sd-jwt",
                "meta": {"vct_values": ["urn:eudi:age_verification:test:1"]},
                "claims": [{"path": ["age_equal_or_over", "18"]}],
            }
        ]
    }
    assert "data:image/svg+xml" in challenge.page.text  # the QR code, inline
    assert "<script" not in challenge.page.text


def test_same_device_wallet_answer_lands_on_the_protected_page(site: WalletSite) -> None:
    site.fresh_credential()
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200, body
    redirect = body["redirect_uri"]
    assert redirect.startswith(f"{site.gw.public_origin}/.agegate/wallet?response_code=")
    target = redirect.removeprefix(site.gw.public_origin)
    done = browser_get(site.gw, target, challenge.cookie)
    assert done.status == 303, done.text
    assert done.header("location") == "/echo/wine/red"
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    status_code, upstream_headers = protected_page(site, cookie)
    assert status_code == 200
    assert upstream_headers["x-agegate-age-over"] == "18"


def test_cross_device_browser_polls_until_the_wallet_answers(site: WalletSite) -> None:
    site.fresh_credential()
    challenge = wallet_challenge(site.gw)
    waiting = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert waiting.status == 200
    assert "http-equiv=refresh" in waiting.text
    assert "data:image/svg+xml" in waiting.text
    wallet_request = parse_request(challenge.request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200
    done = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert done.status == 303, done.text  # the waiting page finishes by itself
    assert done.header("location") == "/echo/wine/red"
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    # The wallet's response_code is now spent for this browser too.
    again = browser_get(site.gw, body["redirect_uri"].removeprefix(site.gw.public_origin),
                        challenge.cookie)  # fmt: skip
    assert again.status == 400
    assert "response_code_unknown" in again.text
    status_code, upstream_headers = protected_page(site, cookie)
    assert (status_code, upstream_headers["x-agegate-age-over"]) == (200, "18")


def test_wallet_error_is_shown_to_the_polling_browser(site: WalletSite) -> None:
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    status, _ = submit(wallet_request, None, error="access_denied")
    assert status == 200
    shown = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert shown.status == 400
    assert "access_denied" in shown.text


def test_refused_presentation_is_shown_to_the_polling_browser(site: WalletSite) -> None:
    site.fresh_credential()
    challenge = wallet_challenge(site.gw)
    wallet_request = parse_request(challenge.request_uri)
    answer = site.wallet.answer(wallet_request, {"kb": {"nonce": "not-the-nonce"}})
    status, body = submit(wallet_request, answer)
    assert (status, body["reason"]) == (400, "wrong_nonce")
    shown = browser_get(site.gw, challenge.wait_url, challenge.cookie)
    assert shown.status == 400
    assert "wrong_nonce" in shown.text


def test_route_without_the_wallet_verifier_offers_no_wallet(site: WalletSite) -> None:
    page = request(
        site.gw.port,
        "GET",
        "/.agegate/verify?return=/echo/tokens/x",
        [(b"Accept", b"text/html")],
    )
    assert page.status == 200
    assert "openid4vp://" not in page.text


def test_logs_hold_no_credential(site: WalletSite, tmp_path: Path) -> None:
    text = site.gw.log_text()
    issued = site.wallet.credentials[0].issued
    assert issued.split("~")[0] not in text
    assert "response_code=" not in text


def test_wallet_answer_to_one_worker_completes_on_another(
    upstream: UpstreamServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Two gateway processes of one site (same keys, one Redis): the state sealed by the
    # first opens in the second, and the outcome waits in Redis for the browser.
    key = generate_key_line()
    store = {"store": redis_server.url}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = WalletSite(tmp_path / "a", upstream.url, store, session_key=key)
    second = WalletSite(
        tmp_path / "b", upstream.url, store, session_key=key, issuer=first.issuer,
        port=first.gw.port,
    )  # fmt: skip
    with first:
        challenge = wallet_challenge(first.gw)
    with second:  # the same public origin and port, another process
        wallet_request = parse_request(challenge.request_uri)
        status, body = submit(wallet_request, first.wallet.answer(wallet_request))
        assert status == 200, body
    with first:
        done = browser_get(first.gw, body["redirect_uri"].removeprefix(first.gw.public_origin),
                           challenge.cookie)  # fmt: skip
        assert done.status == 303, done.text
        assert session_cookie(done.header_list("set-cookie"))
