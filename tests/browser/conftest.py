"""Fixtures for the browser tests: the demo stack (twice: normal and short session TTL)
and fresh Chromium profiles, with screenshots under ``tests/artifacts/browser/``.

A missing Chromium, chromedriver or Selenium is a test *failure* with a message
saying what to install, never a skip: ``make test`` must prove the browser flow.
On a failure the current page is saved (screenshot and HTML) and the stack's
process logs are attached to the report.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.support.browser import Browser, BrowserUnavailable, DemoStack

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
# Short enough to wait out in a test, long enough for the flow to finish before it ends.
SHORT_SESSION_TTL = 3.0

_failed = pytest.StashKey[bool]()
_stacks = pytest.StashKey[list[DemoStack]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_failed] = True
        for stack in item.stash.get(_stacks, []):
            report.sections.append((f"demo stack logs ({stack.origin})", stack.logs()))
    return report


def _start(directory: Path, session_ttl: float | None) -> Iterator[DemoStack]:
    with DemoStack(directory, session_ttl=session_ttl) as stack:
        yield stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """The demo as ``make demo`` runs it (policies/example.yaml, 1 h sessions)."""
    yield from _start(tmp_path_factory.mktemp("demo"), None)


@pytest.fixture(scope="module")
def short_ttl_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """The same demo with sessions capped at :data:`SHORT_SESSION_TTL` seconds."""
    yield from _start(tmp_path_factory.mktemp("demo-short-ttl"), SHORT_SESSION_TTL)


@pytest.fixture
def launch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Browser]]:
    """``launch(stack, javascript=True)``: a Chromium with a fresh profile, quit afterwards."""
    browsers: list[Browser] = []
    test_dir = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(test_dir, ignore_errors=True)  # no stale screenshots from an earlier run

    def start(stack: DemoStack, *, javascript: bool = True) -> Browser:
        request.node.stash.setdefault(_stacks, []).append(stack)
        profile = tmp_path / f"profile-{len(browsers)}"
        shots = test_dir if not browsers else test_dir / f"run-{len(browsers) + 1}"
        try:
            browser = Browser.launch(profile, shots, javascript=javascript)
        except BrowserUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        browsers.append(browser)
        return browser

    yield start
    for browser in browsers:
        try:
            if request.node.stash.get(_failed, False):
                browser.snap("failure")
                (browser.shots / "failure.html").write_text(browser.driver.page_source)
        finally:
            browser.quit()
