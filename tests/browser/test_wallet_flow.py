"""The wallet flow in Chromium: the QR code renders under the CSP, and the waiting page
moves on by itself (``<meta http-equiv=refresh>``) once the wallet has answered."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.test_demo_flow import ADULT, CHILD, type_birth_date
from tests.support.browser import Browser, DemoStack
from tests.support.upstream import UpstreamServer
from tests.support.wallet import WalletSite
from verifiers.reference.wallet import parse_request, submit

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WalletSite]:
    with WalletSite(tmp_path_factory.mktemp("wallet-browser"), upstream.url) as running:
        yield running


def test_cross_device_wallet_in_chromium(site: WalletSite, launch: Callable[..., Browser]) -> None:
    browser = launch(site)
    origin = site.gw.public_origin  # http://localhost: a secure context for __Host- cookies
    browser.open(f"{origin}/echo/wine/red")
    assert browser.path.startswith("/.agegate/verify")
    qr = browser.css("li[data-verifier='eu-pid'] img")
    assert browser.script("return arguments[0].complete && arguments[0].naturalWidth", qr) > 0
    request_uri = browser.css("a[data-openid4vp]").get_attribute("href")
    assert request_uri and request_uri.startswith("openid4vp://")
    browser.snap("wallet-offer")
    with browser.navigation():
        browser.css("li[data-verifier='eu-pid'] p a").click()
    assert browser.path.startswith("/.agegate/wallet/status")
    assert browser.script("return document.images[0].naturalWidth") > 0
    browser.snap("waiting-for-wallet")

    wallet_request = parse_request(request_uri)
    status, body = submit(wallet_request, site.wallet.answer(wallet_request))
    assert status == 200, body

    deadline = time.monotonic() + 15
    while browser.path != "/echo/wine/red" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert browser.path == "/echo/wine/red"
    echoed = json.loads(browser.text("body"))
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["x-agegate-age-over"] == "18"
    browser.snap("protected-page")


def test_demo_web_wallet_gets_through(stack: DemoStack, launch: Callable[..., Browser]) -> None:
    """``make demo``: the simulated EU wallet answers the OpenID4VP request, no phone needed."""
    browser = launch(stack)
    browser.open(stack.url("/wine/red"))
    web = browser.css("a[data-web-wallet]")
    href = web.get_attribute("href") or ""
    assert href.startswith(f"{stack.verifier_origin}/wallet?client_id=redirect_uri%3A")
    assert browser.css("a[data-openid4vp]").get_attribute("href").startswith("openid4vp://")
    with browser.navigation():
        web.click()
    assert browser.text("h1") == "Simulated EU wallet"
    browser.snap("simulated-wallet")
    type_birth_date(browser, ADULT)
    with browser.navigation():
        browser.css("button[name=action][value=share]").click()
    assert browser.path == "/wine/red"
    assert browser.status_json(stack)["age_over"] == [18]
    browser.snap("wine-after-wallet")


def test_demo_web_wallet_refuses_a_child(stack: DemoStack, launch: Callable[..., Browser]) -> None:
    browser = launch(stack)
    browser.open(stack.url("/wine/red"))
    with browser.navigation():
        browser.css("a[data-web-wallet]").click()
    type_birth_date(browser, CHILD)
    with browser.navigation():
        browser.css("button[name=action][value=share]").click()
    assert browser.document_status() == 403
    assert "not available to you" in browser.text("h1")
    assert browser.status_json(stack)["verified"] is False


def test_demo_web_wallet_presents_an_eu_av_mdoc(
    stack: DemoStack, launch: Callable[..., Browser]
) -> None:
    """``make demo``: the simulated wallet answers the ``eu-av`` request with an mdoc."""
    browser = launch(stack)
    browser.open(stack.url("/wine/red"))
    offer = "li[data-verifier='eu-av-wallet']"
    request_uri = browser.css(f"{offer} a[data-openid4vp]").get_attribute("href") or ""
    assert '"format":"mso_mdoc"' in parse_qs(urlsplit(request_uri).query)["dcql_query"][0]
    web = browser.css(f"{offer} a[data-web-wallet]")
    assert (web.get_attribute("href") or "").startswith(f"{stack.verifier_origin}/wallet?")
    with browser.navigation():
        web.click()
    assert browser.text("h1") == "Simulated EU wallet"
    assert "eu.europa.ec.av.1.age_over_18" in browser.text("body")
    type_birth_date(browser, ADULT)
    with browser.navigation():
        browser.css("button[name=action][value=share]").click()
    assert browser.path == "/wine/red"
    assert browser.status_json(stack)["age_over"] == [18]
    browser.snap("wine-after-mdoc-wallet")
