"""The wallet flow in Chromium: the QR code renders under the CSP, and the waiting page
moves on by itself (``<meta http-equiv=refresh>``) once the wallet has answered."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest

from tests.support.browser import Browser
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
