"""What the visitor reads, for both ways of proving age, in Chromium.

Adult, child and Cancel, through the reference age token and through Privacy
Pass: the challenge page, the verifier's page and ``/.agegate/status`` agree on
what is shared and remembered; a child gets the same 403 refusal page by either
method; a Cancel is never called a finished check; logout is confirmed; an
expired session is named as such.  Screenshots of every step go under
``tests/artifacts/browser/<test>/``.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

import pytest

from gateway.core.pages import FAVICON
from gateway.core.problem import SECURITY_HEADERS
from tests.browser import test_demo_flow as demo
from tests.support.browser import Browser, DemoStack

pytestmark = [pytest.mark.browser]

Launch = Callable[..., Browser]
TOKEN = "reference-token"
PRIVACY_PASS = "reference-pp"
LABELS = {
    TOKEN: "Reference verifier (development only)",
    PRIVACY_PASS: "Privacy Pass (reference issuer, development only)",
}
# What each method answers, so what the session remembers for a 40-year-old.
ANSWERED = {TOKEN: "the ages 13, 16, 18 and 21", PRIVACY_PASS: "the age 18"}
REMEMBERED = {TOKEN: [13, 16, 18, 21], PRIVACY_PASS: [18]}
METHODS = [TOKEN, PRIVACY_PASS]


def challenge(browser: Browser, stack: DemoStack, *, expired: bool = False) -> None:
    browser.open(stack.url(demo.WINE))
    assert browser.url == stack.url(demo.VERIFY)
    assert browser.document_status() == 200
    main = browser.text("main")
    assert "only whether you are over 18" in main
    assert "See what is remembered" in main
    assert ("Your earlier proof of age has expired" in main) is expired
    assert browser.css("link[rel=icon]").get_attribute("href") == FAVICON
    demo.assert_accessible(browser)
    browser.snap("challenge-expired" if expired else "challenge")


def to_verifier(browser: Browser, stack: DemoStack, method: str) -> None:
    [button] = browser.all_css(f"ul.verifiers a.button[data-verifier='{method}']")
    assert button.text == LABELS[method]
    with browser.navigation():
        button.click()
    assert browser.url.startswith(stack.verifier_origin)
    assert browser.document_status() == 200
    main = browser.text("main")
    # The same promise as the challenge page, with the ages this method answers.
    assert f"It will learn only yes or no for {ANSWERED[method]}, never your date of birth" in (
        " ".join(main.split())
    )
    hint = " ".join(browser.text("#birth_date_hint").split())
    field = browser.css("input#birth_date")
    # The hint describes the control Chromium shows (a date field), not only typed text.
    assert field.get_attribute("type") == "date"
    assert "in the order the field shows" in hint
    assert "pick it from the calendar" in hint
    demo.assert_accessible(browser)
    browser.snap("verifier")


def answer(browser: Browser, born_or_cancel: object) -> str:
    """Continue with a date of birth, or Cancel; the return page's text."""
    if born_or_cancel == "cancel":
        button = browser.css("button[name=action][value=cancel]")
    else:
        demo.type_birth_date(browser, born_or_cancel)  # type: ignore[arg-type]
        button = browser.css("button[name=action][value=continue]")
    with browser.navigation():
        button.click()
    assert browser.text("h1") == "Return to the site"
    demo.assert_accessible(browser)
    browser.snap("return-page")
    text = " ".join(browser.text("main").split())
    with browser.navigation():
        browser.css("main form button[type=submit]").click()
    return text


def status_headers(stack: DemoStack, query: str = "") -> dict[str, str]:
    request = urllib.request.Request(
        stack.url("/.agegate/status" + query), headers={"accept": "text/html"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/html")
        return {k.lower(): v for k, v in response.headers.items()}


@pytest.mark.parametrize("method", METHODS)
def test_adult_sees_what_is_remembered_and_logs_out(
    stack: DemoStack, launch: Launch, method: str
) -> None:
    browser = launch(stack, javascript=False)
    challenge(browser, stack)
    to_verifier(browser, stack, method)
    returned = answer(browser, demo.ADULT)
    assert "The age check is done" in returned
    demo.on_wine_page(browser, stack)
    browser.snap("wine")

    # The JSON of SPEC §6 is unchanged for API clients...
    status = browser.status_json(stack)
    assert status["verified"] is True
    assert status["age_over"] == REMEMBERED[method]
    # ...and a person sees the same thresholds, said plainly, on a page.
    main = browser.status_page(stack)
    assert browser.document_status() == 200
    assert browser.text("h1") == "Your proof of age is remembered"
    remembered = ", ".join(f"{n} or over" for n in REMEMBERED[method])
    assert f"Remembered\n{remembered}" in main
    assert "Each page of the site is told only whether you meet its own age" in main
    demo.assert_accessible(browser)
    browser.snap("status")
    headers = status_headers(stack)
    for key, value in SECURITY_HEADERS:
        assert headers[key.decode()] == value.decode()

    # Logout from the status page itself, no script: a 303 to a page that says it is done.
    with browser.navigation():
        browser.css("form[action='/.agegate/logout'] button").click()
    assert demo.sent(browser, "POST", stack.url("/.agegate/logout")) == [303]
    assert browser.url == stack.url("/.agegate/status?logged_out=1")
    assert browser.document_status() == 200
    assert browser.text("h1") == "You are logged out"
    assert "Your proof of age has been removed from this browser" in browser.text("main")
    demo.assert_accessible(browser)
    browser.snap("logged-out")
    assert demo.SESSION not in browser.cookie_jar()
    assert browser.status_json(stack)["verified"] is False

    # The gate's pages carry their own icon: nothing asked the site for /favicon.ico.
    assert not [e for e in browser.network() if e.url.endswith("/favicon.ico")]
    demo.assert_only_our_origins(browser, stack)


@pytest.mark.parametrize("method", METHODS)
def test_child_gets_the_same_refusal_page(stack: DemoStack, launch: Launch, method: str) -> None:
    browser = launch(stack)
    challenge(browser, stack)
    to_verifier(browser, stack, method)
    returned = answer(browser, demo.CHILD)
    assert "over 18: no" in returned
    if method == PRIVACY_PASS:
        assert "receives no token" in returned
    callback = stack.url(f"/.agegate/callback/{method}")
    assert browser.url == callback
    assert demo.sent(browser, "POST", callback) == [403]
    assert browser.document_status() == 403
    assert browser.text("h1") == "Sorry, this part of the site is not available to you"
    main = browser.text("main")
    assert "you are under 18" in main
    assert "Try again" not in main and "access_denied" not in main
    demo.assert_accessible(browser)
    browser.snap("refused")
    jar = browser.cookie_jar()
    assert demo.SESSION not in jar and demo.CHALLENGE not in jar
    demo.assert_unverified(browser, stack)
    browser.snap("status-unverified")


@pytest.mark.parametrize("method", METHODS)
def test_cancel_is_not_called_a_finished_check(
    stack: DemoStack, launch: Launch, method: str
) -> None:
    browser = launch(stack)
    challenge(browser, stack)
    to_verifier(browser, stack, method)
    returned = answer(browser, "cancel")
    assert "You cancelled the age check, so no age was checked and no token is sent" in returned
    assert "done" not in returned
    callback = stack.url(f"/.agegate/callback/{method}")
    assert demo.sent(browser, "POST", callback) == [400]
    assert browser.document_status() == 400
    assert browser.text("h1") == "Age check cancelled"
    assert "The age check was cancelled, so your age was not confirmed." in browser.text("main")
    retry = browser.css("a.button")
    assert retry.text == "Try again"
    assert retry.get_attribute("href") == stack.url(demo.VERIFY)
    demo.assert_accessible(browser)
    browser.snap("cancelled")
    demo.assert_unverified(browser, stack)


def test_expired_session_is_named_on_the_challenge_page(
    short_ttl_stack: DemoStack, launch: Launch
) -> None:
    stack = short_ttl_stack
    browser = launch(stack)
    challenge(browser, stack)
    to_verifier(browser, stack, TOKEN)
    answer(browser, demo.ADULT)
    demo.on_wine_page(browser, stack)
    session = browser.cookie_jar()[demo.SESSION]
    time.sleep(max(0.0, session["expires"] - time.time()) + 1.2)
    # A browser that still sends the cookie (restored tab, clock skew): the page says why.
    browser.put_cookie(stack.origin, {**session, "expires": time.time() + 3600})
    challenge(browser, stack, expired=True)
    assert browser.text(".notice") == "Your earlier proof of age has expired. Please verify again."
