"""A small locust scenario for manual runs against a running gateway (not in the test suite).

::

    .venv/bin/locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 \\
        --headless -u 20 -r 5 -t 30s

Paths follow the bench policy (``/wine/**`` needs age 18, everything else is
allowed); override them with ``AGEGATE_PUBLIC_PATH`` / ``AGEGATE_PROTECTED_PATH``.
Point ``--host`` only at a gateway you run yourself, on loopback.
"""

from __future__ import annotations

import os

from locust import HttpUser, between, task

__all__ = ["Visitor"]

PUBLIC_PATH = os.environ.get("AGEGATE_PUBLIC_PATH", "/public/page")
PROTECTED_PATH = os.environ.get("AGEGATE_PROTECTED_PATH", "/wine/red")
BROWSER = {"accept": "text/html,application/xhtml+xml"}


class Visitor(HttpUser):
    """Mostly public pages; some protected pages without a session; the status endpoint."""

    wait_time = between(0.05, 0.2)

    @task(6)
    def public_page(self) -> None:
        with self.client.get(PUBLIC_PATH, name="public", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"public page answered {response.status_code}")

    @task(2)
    def protected_page_challenge(self) -> None:
        # A browser without a session is sent to the challenge page (SPEC §6: 303).
        with self.client.get(
            PROTECTED_PATH,
            name="protected (browser challenge)",
            headers=BROWSER,
            allow_redirects=False,
            catch_response=True,
        ) as response:
            location = response.headers.get("location", "")
            if response.status_code != 303 or not location.startswith("/.agegate/verify"):
                response.failure(f"expected 303 to /.agegate/verify, got {response.status_code}")

    @task(1)
    def protected_api_challenge(self) -> None:
        # An API client gets 401 with an AgeToken challenge and a problem body.
        with self.client.get(
            PROTECTED_PATH, name="protected (API 401)", catch_response=True
        ) as response:
            challenge = response.headers.get("www-authenticate", "")
            if response.status_code != 401 or "AgeToken" not in challenge:
                response.failure(f"expected 401 AgeToken, got {response.status_code}")

    @task(1)
    def status(self) -> None:
        with self.client.get("/.agegate/status", name="status", catch_response=True) as response:
            if response.status_code != 200 or response.json().get("verified") is not False:
                response.failure(f"status answered {response.status_code}")
