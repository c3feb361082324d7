"""Debian's Chromium, driven by Selenium, against the real demo stack.

::

    with DemoStack(tmp_dir) as stack:                 # shop, reference verifier, gateway
        browser = Browser.launch(profile_dir, shots_dir)
        browser.open(stack.url("/wine/red"))
        browser.css("a[data-verifier]").click()
        browser.status_json(stack), browser.cookie_jar(), browser.network_urls()
        browser.quit()

:class:`DemoStack` runs the three processes exactly as ``agegate demo`` does
(``gateway.demo.runner.write_demo_files`` and ``demo_commands``), on free
loopback ports.  The gateway's public origin is ``http://localhost:<port>``,
and the browser must open that origin: the session cookie is
``__Host-agegate; Secure`` and Chromium treats ``http://localhost`` as a
secure context, while ``http://127.0.0.1`` would be a different site.

:class:`Browser` launches ``/usr/bin/chromium`` through ``/usr/bin/chromedriver``
with a fixed set of flags and a fresh profile.  The driver path is given to
Selenium explicitly, so Selenium Manager never runs and nothing is downloaded.
The DevTools performance log is collected so that tests can see every request
the page made (and each document's HTTP status), not just what the DOM shows.

Selenium is imported lazily: without it, or without Chromium, :func:`launch`
raises :class:`BrowserUnavailable` with a message saying what to install, so
the browser tests fail clearly instead of erroring at collection.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.demo.runner import DemoPorts, default_policy, demo_commands, write_demo_files
from tests.support.net import free_ports, wait_for_port

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

__all__ = [
    "A11Y_PROBLEMS_JS",
    "CHROMEDRIVER",
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "Browser",
    "BrowserUnavailable",
    "DemoStack",
    "NetworkEvent",
    "network_events",
]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Exactly these, plus a fresh --user-data-dir: no sandbox (containers, root), no
# QUIC, and none of the background traffic (updates, sync, field trials) a
# profile would otherwise start, so the network log holds only the page's own.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_WINDOW = (1024, 900)
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0

# Simple accessibility facts of the current page, as a list of problems (empty: fine).
A11Y_PROBLEMS_JS = """
const problems = [];
if (!document.documentElement.lang) problems.push('no lang attribute on <html>');
if (!document.title.trim()) problems.push('empty <title>');
const h1 = document.querySelectorAll('h1').length;
if (h1 !== 1) problems.push(`${h1} <h1> elements, expected exactly one`);
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = (el.labels && el.labels.length > 0
                    && [...el.labels].some(l => l.textContent.trim()))
    || (el.getAttribute('aria-label') || '').trim()
    || (el.getAttribute('aria-labelledby') || '').trim();
  if (!labelled) problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.outerHTML}`);
}
for (const el of document.querySelectorAll('a[href], button')) {
  const name = (el.textContent || '').trim() || (el.getAttribute('aria-label') || '').trim();
  if (!name) problems.push(`${el.tagName.toLowerCase()} without an accessible name`);
}
for (const img of document.querySelectorAll('img')) {
  if (!img.hasAttribute('alt')) problems.push(`img without alt: ${img.src}`);
}
return problems;
"""


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or Selenium is missing; the message says what to install."""


# -- the demo stack ---------------------------------------------------------------------


class DemoStack:
    """Shop, reference verifier and gateway as real processes, like ``agegate demo``.

    ``session_ttl`` (seconds) becomes the reference verifier's ``max_session_ttl``,
    which caps the policy's ``session_ttl``.  Each process logs to a file in
    ``directory``; :meth:`logs` returns them for failure reports and privacy checks.
    """

    def __init__(
        self, directory: Path, *, session_ttl: float | None = None, policy: Path | None = None
    ) -> None:
        self.directory = directory
        self.ports = DemoPorts(*free_ports(4))
        self.files = write_demo_files(
            directory, self.ports, policy=policy or default_policy(), session_ttl=session_ttl
        )
        self.session_ttl = session_ttl
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def origin(self) -> str:
        """The gateway's public origin: what the browser opens."""
        return self.ports.origin

    @property
    def verifier_origin(self) -> str:
        """The reference verifier's origin, as the challenge page links to it."""
        return self.ports.issuer

    def url(self, path: str) -> str:
        """``path`` on the gateway's public origin."""
        return self.origin + path

    def start(self) -> DemoStack:
        # AGEGATE_* variables would override the demo's settings file.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGEGATE_")}
        env["PYTHONUNBUFFERED"] = "1"
        for name, argv in demo_commands(self.files, self.ports).items():
            with (self.directory / f"{name}.log").open("ab") as log:
                self.processes[name] = subprocess.Popen(
                    argv, cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT
                )
        deadline = time.monotonic() + _START_TIMEOUT
        for name, port in (
            ("shop", self.ports.shop),
            ("verifier", self.ports.verifier),
            ("gateway", self.ports.gateway),
        ):
            try:
                wait_for_port(port, timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                self.stop()
                raise RuntimeError(f"the demo {name} did not start:\n{self.logs()}") from None
        return self

    def stop(self) -> None:
        """Gateway first, so that it never proxies to an upstream already gone."""
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(list(self.processes.values())):
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def logs(self) -> str:
        """Every process's output so far, one section each."""
        parts = []
        for name in ("shop", "verifier", "gateway"):
            path = self.directory / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            parts.append(f"--- {name} ---\n{text}")
        return "\n".join(parts)

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


# -- the browser ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkEvent:
    """One request the page made (from the DevTools performance log)."""

    method: str
    url: str
    status: int | None = None  # the response's status, when one arrived


@dataclass
class Browser:
    """One Chromium with a fresh profile; screenshots numbered per step into ``shots``."""

    driver: WebDriver
    shots: Path
    profile: Path
    _events: list[dict[str, Any]] = field(default_factory=list)
    _step: int = 0

    @classmethod
    def launch(cls, profile: Path, shots: Path, *, javascript: bool = True) -> Browser:
        """Start Chromium; ``javascript=False`` blocks page scripts (not the test's own)."""
        missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
        if missing:
            raise BrowserUnavailable(
                f"browser tests need Debian's Chromium and its driver; missing: "
                f"{', '.join(missing)}. Install them with "
                "`apt-get install chromium chromium-driver` (or `make system-deps`)."
            )
        try:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
        except ImportError as exc:
            raise BrowserUnavailable(
                f"browser tests need Selenium ({exc}); install the dev group: "
                "`.venv/bin/pip install -e . --group dev` (or `make install`)."
            ) from exc
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        if not javascript:
            options.add_experimental_option(
                "prefs", {"profile.managed_default_content_settings.javascript": 2}
            )
        # An explicit driver path: Selenium Manager is skipped and never downloads anything.
        # An English locale, so that typing into <input type=date> means month, day, year.
        env = {**os.environ, "LANG": "en_US.UTF-8", "LANGUAGE": "en_US"}
        service = Service(executable_path=str(CHROMEDRIVER), env=env)
        shots.mkdir(parents=True, exist_ok=True)
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_window_size(*_WINDOW)
        driver.set_page_load_timeout(15)
        return cls(driver, shots, profile)

    def quit(self) -> None:
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- navigation and the DOM --

    def open(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    @property
    def path(self) -> str:
        """Path and query of the current URL (what the address bar shows after the origin)."""
        parts = urlsplit(self.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    @contextmanager
    def navigation(self, timeout: float = 15.0) -> Iterator[None]:
        """Wrap a click or key press that loads a new page; wait until that page has loaded.

        A click returns as soon as the event is dispatched, so without this the next
        assertion could still see the old page.
        """
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.support.wait import WebDriverWait

        old = self.css("html")
        yield

        def replaced(_driver: Any) -> bool:
            try:
                old.is_enabled()
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:
                # Asked while the old document is being torn down, Chromium may answer
                # "Node with given id does not belong to the document" instead of a stale
                # reference (seen once in CI): that, too, means the page was replaced.
                return "does not belong to the document" in str(exc)
            return False

        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.05)
        wait.until(replaced)
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def css(self, selector: str) -> WebElement:
        return self.driver.find_element("css selector", selector)

    def all_css(self, selector: str) -> list[WebElement]:
        return list(self.driver.find_elements("css selector", selector))

    def text(self, selector: str = "body") -> str:
        return str(self.css(selector).text)

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def keys(self, *keys: str) -> None:
        """Type at whatever has the focus, like a keyboard would."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def focused(self) -> WebElement:
        return self.driver.switch_to.active_element

    def document_status(self) -> int:
        """The HTTP status of the current document (Navigation Timing ``responseStatus``)."""
        status = self.script(
            "const [nav] = performance.getEntriesByType('navigation');"
            "return nav ? nav.responseStatus : null;"
        )
        if not isinstance(status, int):
            raise AssertionError(f"no navigation entry for {self.url}")
        return status

    def page_origins(self) -> set[str]:
        """Origins of the document and every resource it loaded (Resource Timing)."""
        names = self.script(
            "return performance.getEntries()"
            ".filter(e => e.entryType === 'navigation' || e.entryType === 'resource')"
            ".map(e => e.name);"
        )
        return {_origin(name) for name in names}

    def a11y_problems(self) -> list[str]:
        return list(self.script(A11Y_PROBLEMS_JS))

    def snap(self, name: str) -> Path:
        """A numbered screenshot of this step, for people; tests assert on the DOM only."""
        self._step += 1
        path = self.shots / f"{self._step:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # -- state the browser keeps --

    def status_json(self, stack: DemoStack) -> dict[str, Any]:
        """What ``/.agegate/status`` tells an API client holding this browser's cookies.

        A browser navigation gets the HTML status page (see :meth:`status_page`);
        the JSON of SPEC §6 is asked for here with ``Accept: application/json``.
        """
        cookies = "; ".join(
            f"{c['name']}={c['value']}"
            for c in self.cookie_jar().values()
            if c["domain"] == urlsplit(stack.origin).hostname
        )
        request = urllib.request.Request(
            stack.url("/.agegate/status"),
            headers={"accept": "application/json", "cookie": cookies},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            shown = json.loads(response.read())
        if not isinstance(shown, dict):
            raise AssertionError(f"status is not a JSON object: {shown!r}")
        return shown

    def status_page(self, stack: DemoStack, query: str = "") -> str:
        """Open ``/.agegate/status`` as a visitor would; the text of its ``<main>``."""
        self.open(stack.url("/.agegate/status" + query))
        return self.text("main")

    def cookie_jar(self) -> dict[str, dict[str, Any]]:
        """Every cookie in the profile, for every site, by name (DevTools, HttpOnly too)."""
        cookies = self.driver.execute_cdp_cmd("Storage.getCookies", {})["cookies"]
        return {cookie["name"]: cookie for cookie in cookies}

    def put_cookie(self, origin: str, cookie: Mapping[str, Any]) -> None:
        """Store ``cookie`` (a :meth:`cookie_jar` entry) for ``origin``, as if it had been set."""
        fields = ("name", "value", "path", "secure", "httpOnly", "sameSite", "expires")
        # A url and no domain: a host-only cookie, as the __Host- prefix demands.
        params = {"url": f"{origin}/", **{key: cookie[key] for key in fields}}
        if not self.driver.execute_cdp_cmd("Network.setCookie", params).get("success", True):
            raise AssertionError(f"Chromium refused the cookie {cookie['name']}")

    def network(self) -> list[NetworkEvent]:
        """Every request pages have made since launch, with the status of its response."""
        # Selenium leaves get_log untyped; its entries are {"message": "<JSON>", ...}.
        entries: list[dict[str, Any]] = self.driver.get_log("performance")  # type: ignore[no-untyped-call]
        for entry in entries:
            self._events.append(json.loads(entry["message"])["message"])
        return list(network_events(self._events))

    def network_origins(self) -> set[str]:
        """Origins of every http(s)/ws(s) request; browser-internal chrome: and data: aside."""
        return {
            _origin(e.url)
            for e in self.network()
            if urlsplit(e.url).scheme in {"http", "https", "ws", "wss"}
        }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def network_events(events: Sequence[Mapping[str, Any]]) -> Iterator[NetworkEvent]:
    """Requests in order; a redirect hop is one event with the redirect's status."""
    pending: dict[str, tuple[str, str]] = {}
    for event in events:
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            request_id = params["requestId"]
            if (hop := params.get("redirectResponse")) and request_id in pending:
                method, url = pending.pop(request_id)
                yield NetworkEvent(method, url, int(hop["status"]))
            pending[request_id] = (params["request"]["method"], params["request"]["url"])
        elif event.get("method") == "Network.responseReceived":
            request_id = params["requestId"]
            if request_id in pending:
                method, url = pending.pop(request_id)
                yield NetworkEvent(method, url, int(params["response"]["status"]))
    for method, url in pending.values():
        yield NetworkEvent(method, url)
