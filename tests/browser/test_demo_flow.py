"""The demo in Debian's Chromium: a visitor proves their age (or fails to) end to end.

Real processes (demo shop, reference verifier, gateway) on loopback; the browser
opens ``http://localhost:<gateway port>``, a secure context, so the
``__Host-agegate; Secure`` cookie works over plain HTTP.  Every step is saved as a
screenshot under ``tests/artifacts/browser/<test>/`` for people to look at; the
assertions read the DOM, the cookie jar and the network log, never pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import Browser, DemoStack

if TYPE_CHECKING:
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = [pytest.mark.browser]

Launch = Callable[..., Browser]
SESSION = "__Host-agegate"
CHALLENGE = "__Host-agegate-challenge"
WINE = "/wine/red"
VERIFY = "/.agegate/verify?return=/wine/red"

# Day == month, so the typed digits mean the same date in month/day and day/month locales.
ADULT = date(date.today().year - 40, 1, 1)
CHILD = date(date.today().year - 10, 6, 6)


# -- steps ------------------------------------------------------------------------------


def assert_accessible(browser: Browser) -> None:
    assert browser.a11y_problems() == [], browser.url


def assert_only_our_origins(browser: Browser, stack: DemoStack) -> None:
    """The page, and everything any page loaded so far, came from our loopback origins."""
    ours = {stack.origin, stack.verifier_origin}
    assert browser.page_origins() <= ours, browser.url
    assert browser.network_origins() <= ours


def sent(browser: Browser, method: str, url: str) -> list[int | None]:
    """Statuses of every ``method url`` request the browser made so far."""
    return [e.status for e in browser.network() if (e.method, e.url) == (method, url)]


def open_challenge(browser: Browser, stack: DemoStack) -> None:
    """Step 1: a protected page sends a visitor without a session to the challenge page."""
    browser.open(stack.url(WINE))
    assert browser.url == stack.url(VERIFY)
    assert browser.document_status() == 200
    assert 303 in sent(browser, "GET", stack.url(WINE))
    # Why the Secure session cookie can work over plain http: localhost is trustworthy.
    assert browser.script("return window.isSecureContext") is True
    assert "only whether you are over 18" in browser.text("main")
    assert browser.text("h1") == "Please confirm you are 18 or over"
    assert CHALLENGE in browser.cookie_jar()
    assert_accessible(browser)
    assert_only_our_origins(browser, stack)
    browser.snap("challenge")


def verifier_button(browser: Browser, stack: DemoStack) -> WebElement:
    """The reference verifier's button: a link styled as a button, in the list of ways."""
    offered = browser.all_css("ul.verifiers a.button[data-verifier]")
    # Every way offered (the demo may offer Privacy Pass too) leads to the demo's verifier.
    for link in offered:
        assert (link.get_attribute("href") or "").startswith(f"{stack.verifier_origin}/")
    [button] = [b for b in offered if b.get_attribute("data-verifier") == "reference-token"]
    assert button.text == "Reference verifier (development only)"
    assert (button.get_attribute("href") or "").startswith(f"{stack.verifier_origin}/authorize?")
    return button


def on_birth_date_page(browser: Browser, stack: DemoStack) -> None:
    """Step 2: the reference verifier's page, with its banner and a labelled date input."""
    assert browser.url.startswith(f"{stack.verifier_origin}/authorize?")
    assert browser.document_status() == 200
    banner = browser.css(".banner")
    assert banner.get_attribute("role") == "note"
    assert "Development verifier: this is NOT a real age check" in banner.text
    field = browser.css("input#birth_date")
    assert field.get_attribute("type") == "date"
    assert field.get_attribute("required") is not None
    labels = browser.script("return [...arguments[0].labels].map(l => l.textContent)", field)
    assert labels == ["Date of birth"]
    assert_accessible(browser)
    assert_only_our_origins(browser, stack)
    browser.snap("date-of-birth")


def type_birth_date(browser: Browser, born: date) -> None:
    """Type the date as a person would (month, day, year in the English locale)."""
    field = browser.css("input#birth_date")
    # Focuses the first part of the field (a mouse click lands on the middle part).
    field.send_keys(f"{born.month:02d}{born.day:02d}{born.year}")
    assert field.get_attribute("value") == born.isoformat()


def on_return_page(browser: Browser, stack: DemoStack, over_18: bool) -> None:
    """The verifier's form_post page: what the token says, and a Continue button."""
    assert browser.url == f"{stack.verifier_origin}/authorize"
    assert browser.text("h1") == "Return to the site"
    assert f"over 18: {'yes' if over_18 else 'no'}" in browser.text("main")
    form = browser.css("main form")
    assert form.get_attribute("method") == "post"
    assert form.get_attribute("action") == stack.url("/.agegate/callback/reference-token")
    assert_accessible(browser)
    browser.snap("return-to-site")


def prove_age(browser: Browser, stack: DemoStack, born: date, *, over_18: bool) -> None:
    """Steps 1-3 up to the verifier's answer, by mouse."""
    open_challenge(browser, stack)
    with browser.navigation():
        verifier_button(browser, stack).click()
    on_birth_date_page(browser, stack)
    type_birth_date(browser, born)
    with browser.navigation():
        browser.css("button[name=action][value=continue]").click()
    on_return_page(browser, stack, over_18)
    with browser.navigation():
        browser.css("main form button[type=submit]").click()


def on_wine_page(browser: Browser, stack: DemoStack) -> None:
    """The shop's red wines, with the only facts the gateway passed on."""
    assert browser.url == stack.url(WINE)
    assert browser.document_status() == 200
    assert browser.text("h1") == "Red wine"
    assert "Côtes du Rhône 2021" in browser.text("main")
    told = browser.script(
        "return Object.fromEntries([...document.querySelectorAll('main table tr')]"
        ".map(r => [r.querySelector('th').textContent, r.querySelector('td').textContent]));"
    )
    assert told == {"X-Agegate-Age-Over": "18", "X-Agegate-Assurance": "basic"}
    assert_accessible(browser)
    assert_only_our_origins(browser, stack)


def assert_unverified(browser: Browser, stack: DemoStack) -> None:
    status = browser.status_json(stack)
    assert status == {"verified": False, "age_over": [], "assurance": None, "expires_at": None}
    assert SESSION not in browser.cookie_jar()
    browser.status_page(stack)
    assert browser.text("h1") == "No proof of age is remembered"


# -- scenarios --------------------------------------------------------------------------


def test_adult_gets_in_without_javascript_then_logs_out(stack: DemoStack, launch: Launch) -> None:
    # Page scripts are off for the whole run: the flow, form_post included, needs none.
    browser = launch(stack, javascript=False)

    prove_age(browser, stack, ADULT, over_18=True)
    assert sent(browser, "POST", stack.url("/.agegate/callback/reference-token")) == [303]
    on_wine_page(browser, stack)
    browser.snap("wine-after-verification")

    jar = browser.cookie_jar()
    assert CHALLENGE not in jar  # the callback consumed it
    session = jar[SESSION]
    assert (session["secure"], session["httpOnly"], session["sameSite"]) == (True, True, "Lax")
    assert (session["domain"], session["path"]) == ("localhost", "/")  # host-only, no Domain

    status = browser.status_json(stack)
    assert "18 or over" in browser.status_page(stack)
    browser.snap("status-verified")
    assert status["verified"] is True
    assert 18 in status["age_over"]
    assert status["assurance"] == "basic"

    # The session holds across navigations: no second challenge.
    browser.open(stack.url(WINE))
    on_wine_page(browser, stack)

    # Step 5: the shop's own logout form (a same-origin POST) clears it.
    with browser.navigation():
        browser.css("form[action='/.agegate/logout'] button").click()
    assert browser.url == stack.url("/.agegate/status?logged_out=1")
    assert sent(browser, "POST", stack.url("/.agegate/logout")) == [303]
    assert browser.text("h1") == "You are logged out"
    assert_accessible(browser)
    browser.snap("logged-out")
    assert_unverified(browser, stack)
    browser.snap("status-after-logout")
    browser.open(stack.url(WINE))
    assert browser.url == stack.url(VERIFY)

    assert_only_our_origins(browser, stack)
    # The date of birth never left the verifier's one request, not even into a log.
    assert ADULT.isoformat() not in stack.logs()


def test_child_is_refused_and_keeps_no_session(stack: DemoStack, launch: Launch) -> None:
    browser = launch(stack)

    prove_age(browser, stack, CHILD, over_18=False)
    callback = stack.url("/.agegate/callback/reference-token")
    assert browser.url == callback
    assert browser.document_status() == 403
    assert sent(browser, "POST", callback) == [403]
    assert browser.text("h1") == "Sorry, this part of the site is not available to you"
    assert "under 18" in browser.text("main")
    assert_accessible(browser)
    browser.snap("refused")

    jar = browser.cookie_jar()
    assert SESSION not in jar
    assert CHALLENGE not in jar
    assert_unverified(browser, stack)
    browser.snap("status-unverified")
    assert_only_our_origins(browser, stack)
    assert CHILD.isoformat() not in stack.logs()


def test_session_expires_after_its_ttl(short_ttl_stack: DemoStack, launch: Launch) -> None:
    stack = short_ttl_stack
    assert stack.session_ttl is not None
    browser = launch(stack)

    prove_age(browser, stack, ADULT, over_18=True)
    on_wine_page(browser, stack)
    browser.snap("wine-after-verification")
    # The verifier's max_session_ttl caps the policy's 1 h, in the cookie's Max-Age too.
    # (Read from the jar, not /.agegate/status: on a busy machine the TTL may be over.)
    session = browser.cookie_jar()[SESSION]
    left = session["expires"] - time.time()
    assert left <= stack.session_ttl

    # The server's own expiry is the same instant; wait a second past both.
    time.sleep(max(0.0, left) + 1.2)
    browser.open(stack.url(WINE))
    assert browser.url == stack.url(VERIFY)
    assert browser.text("h1") == "Please confirm you are 18 or over"
    browser.snap("challenged-again")
    assert_unverified(browser, stack)

    # A browser that keeps the cookie past its Max-Age gets no further: the gateway
    # checks the expiry sealed inside it.
    browser.put_cookie(stack.origin, {**session, "expires": time.time() + 3600})
    assert browser.cookie_jar()[SESSION]["value"] == session["value"]
    browser.open(stack.url(WINE))
    assert browser.url == stack.url(VERIFY)
    assert browser.status_json(stack)["verified"] is False
    browser.snap("kept-cookie-refused")


def test_keyboard_alone_gets_through(stack: DemoStack, launch: Launch) -> None:
    browser = launch(stack)
    open_challenge(browser, stack)

    # Tab from the top of the page walks the verifier buttons first, in the page's order,
    # and reaches the reference verifier's; Enter follows it.
    offered = [b.get_attribute("data-verifier") for b in browser.all_css("ul.verifiers a")]
    for expected in offered[: offered.index("reference-token") + 1]:
        browser.keys("\ue004")  # Tab
        assert browser.focused().get_attribute("data-verifier") == expected
    browser.snap("verifier-button-focused")
    with browser.navigation():
        browser.keys("\ue007")  # Enter
    on_birth_date_page(browser, stack)

    # The date field is the first stop; Enter in it submits the form with Continue.
    browser.keys("\ue004")
    assert browser.focused().get_attribute("id") == "birth_date"
    browser.keys(f"{ADULT.month:02d}{ADULT.day:02d}{ADULT.year}")
    assert browser.css("input#birth_date").get_attribute("value") == ADULT.isoformat()
    with browser.navigation():
        browser.keys("\ue007")
    on_return_page(browser, stack, over_18=True)

    browser.keys("\ue004")
    assert browser.focused().text == "Continue"
    with browser.navigation():
        browser.keys("\ue007")
    on_wine_page(browser, stack)
    browser.snap("wine-by-keyboard")
