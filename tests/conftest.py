"""Suite-wide test settings and the fixtures tests in several folders share."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.logscan import scan_logs
from tests.support.redis import redis_server_fixture
from tests.support.upstream import UpstreamServer

# Property tests check behaviour, not speed: on a shared 2-core machine a slow example
# is not a failure (speed is measured by loadtests/, never by a test).
settings.register_profile(
    "agegate",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("agegate")

# One redis-server for the whole run, flushed before each test.
redis_server = redis_server_fixture("session")
# A server of its own, for tests that kill or stop it.
own_redis_server = redis_server_fixture("function")


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    """The test site (:class:`UpstreamServer`), one per module; it records what it saw."""
    with UpstreamServer() as server:
        yield server


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], str]:
    """``write_file(name, text)`` -> path of a file holding ``text`` (dedented)."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return str(path)

    return write


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any log agegate wrote during the suite holds a token or cookie.

    Issue 4: no token, cookie value or claim value may appear in the captured
    logs of the whole suite.  Every process harness logs under the base temp dir.
    """
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or session.config.option.collectonly:
        return
    try:
        root = factory.getbasetemp()
    except (OSError, ValueError):
        return
    scanned, leaks = scan_logs(root)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"log privacy scan: {scanned} agegate log files, {len(leaks)} leaks")
    if leaks:
        for leak in leaks[:20]:
            message = f"LEAK {leak.kind} in {leak.path} line {leak.line}"
            if reporter is not None:
                reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
