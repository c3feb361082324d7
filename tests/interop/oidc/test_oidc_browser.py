"""The ``oidc`` flow in Debian's Chromium against a real oidc-provider 8.x.

The browser opens the gateway at ``http://localhost:<port>`` (a secure context, so
``__Host-`` cookies work over HTTP), follows the verify page's button to the
provider at ``http://127.0.0.1:<port>`` (another site), signs in with the
provider's account button, and the provider's ``form_post`` page posts back to the
gateway's callback cross-site: the challenge cookie is ``SameSite=None`` for this.
Screenshots of each step go to ``tests/artifacts/browser/oidc-*/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.oidc.harness import OIDC_POLICY, OidcProvider, oidc_settings
from tests.support.browser import Browser, BrowserUnavailable
from tests.support.gateway import GatewayProcess
from tests.support.net import free_port
from tests.support.upstream import UpstreamServer

pytestmark = [pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
WINE = "/echo/wine/red"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer
) -> Iterator[tuple[GatewayProcess, OidcProvider]]:
    port = free_port()
    uris = [f"http://localhost:{port}/.agegate/callback/op"]
    with (
        OidcProvider(tmp_path_factory.mktemp("op"), redirect_uris=uris) as op,
        GatewayProcess(
            tmp_path_factory.mktemp("gw"),
            upstream=upstream.url,
            policy=OIDC_POLICY,
            settings=oidc_settings(op),
            port=port,
        ) as gw,
    ):
        yield gw, op


@pytest.fixture
def launch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Browser]]:
    browsers: list[Browser] = []
    shots = ARTIFACTS / f"oidc-{request.node.name}"
    shutil.rmtree(shots, ignore_errors=True)

    def start() -> Browser:
        try:
            browser = Browser.launch(tmp_path / f"profile-{len(browsers)}", shots)
        except BrowserUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        browser.quit()


def _wait_for(browser: Browser, predicate: Callable[[Browser], bool], timeout: float = 15) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser.driver, timeout, poll_frequency=0.05).until(lambda _d: predicate(browser))
    WebDriverWait(browser.driver, timeout).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _sign_in(browser: Browser, gw: GatewayProcess, op: OidcProvider, account: str) -> None:
    browser.open(f"{gw.public_origin}{WINE}")
    assert browser.path.startswith("/.agegate/verify?return=")
    browser.snap("verify-page")
    browser.css("a[data-verifier='op']").click()
    _wait_for(browser, lambda b: b.url.startswith(f"{op.issuer}/interaction/"))
    browser.snap("provider-sign-in")
    browser.css(f"button[data-account='{account}']").click()
    _wait_for(browser, lambda b: b.url.startswith(gw.public_origin))


def test_adult_signs_in_at_the_provider_and_reaches_the_page(
    stack: tuple[GatewayProcess, OidcProvider], launch: Callable[[], Browser]
) -> None:
    gw, op = stack
    browser = launch()
    _sign_in(browser, gw, op, "adult")
    _wait_for(browser, lambda b: b.path == WINE)
    browser.snap("protected-page")
    assert browser.document_status() == 200
    echoed = json.loads(browser.text("body"))
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert headers["x-agegate-age-over"] == "18"
    jar = browser.cookie_jar()
    assert "__Host-agegate" in jar
    assert jar["__Host-agegate"]["httpOnly"] and jar["__Host-agegate"]["secure"]
    # The provider posted back (form_post), cross-site, to the callback.
    callbacks = [
        e for e in browser.network() if e.url == f"{gw.public_origin}/.agegate/callback/op"
    ]
    assert [(e.method, e.status) for e in callbacks] == [("POST", 303)]


def test_minor_gets_the_refusal_page_and_no_session(
    stack: tuple[GatewayProcess, OidcProvider], launch: Callable[[], Browser]
) -> None:
    gw, op = stack
    browser = launch()
    _sign_in(browser, gw, op, "minor")
    _wait_for(browser, lambda b: b.path == "/.agegate/callback/op")
    browser.snap("refused")
    assert browser.document_status() == 403
    assert "__Host-agegate" not in browser.cookie_jar()
