"""Open redirects through ``/.agegate/verify?return=`` on a live gateway.

Reuses the ≥ 500 payload generator of ``tests/gateway/session/test_return_paths.py`` (which
checks :func:`gateway.session.codec.safe_return_path` in-process) and sends every
payload to the real endpoint, twice: with a valid session (the gateway answers
``303`` to the return path, so ``Location`` is checked) and without (the
challenge page, whose every link is checked).  The policy protects every path,
so no payload is short-circuited by an allowed route.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from gateway.core.pages import FAVICON
from tests.gateway.session.test_return_paths import OPEN_REDIRECT_PAYLOADS, _assert_same_origin
from tests.security.support import HTML, api_session, get
from tests.support.gateway import AUTHORIZE_URL, GatewayProcess
from tests.support.upstream import UpstreamServer

EVERYTHING_PROTECTED = """
version: 1
defaults:
  verifiers: [test-token]
  assurance: basic
routes:
  - name: everything
    path: /**
    min_age: 18
"""
_HREF = re.compile(r"""href=(['"])(.*?)\1""")
_LOCATION_HEADERS = ("location", "refresh", "content-location", "link")


@pytest.fixture(scope="module")
def strict_gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with GatewayProcess(
        tmp_path_factory.mktemp("redirect-gw"),
        upstream=upstream.url,
        policy=EVERYTHING_PROTECTED,
        settings={"rate_limit": 0},
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
def session(strict_gateway: GatewayProcess) -> str:
    response, cookie = api_session(strict_gateway, "/x")
    assert response.status == 200 and cookie
    return cookie


def _targets(payload: str) -> list[bytes]:
    """The payload percent-encoded, and raw where it is legal in a request line."""
    targets = [f"/.agegate/verify?return={quote(payload, safe='')}".encode()]
    if all(0x21 <= ord(c) <= 0x7E for c in payload) and not set(payload) & set("#&+"):
        targets.append(f"/.agegate/verify?return={payload}".encode())
    return targets


def _check_link(gw: GatewayProcess, href: str) -> None:
    if href == FAVICON:
        return  # the page's own icon, a fixed data: URL that is never navigated to
    if href.startswith(AUTHORIZE_URL + "?"):
        # The verifier button: off-site by design, to the configured provider only,
        # and it brings the visitor back to our own callback.
        params = parse_qs(urlsplit(href).query)
        assert params["redirect_uri"] == [f"{gw.public_origin}/.agegate/callback/test-token"]
        return
    _assert_same_origin(href)


def test_payload_corpus_is_large() -> None:
    assert len(OPEN_REDIRECT_PAYLOADS) >= 500


def test_every_payload_stays_on_site_with_a_session(
    strict_gateway: GatewayProcess, session: str
) -> None:
    jar = (b"Cookie", f"__Host-agegate={session}".encode())
    sent = 0
    for payload in OPEN_REDIRECT_PAYLOADS:
        for target in _targets(payload):
            response = get(strict_gateway, target, [jar, HTML])
            sent += 1
            assert response.status in {303, 400}, (payload, response.status)
            if response.status == 303:
                location = response.header("location")
                assert location is not None
                try:
                    _assert_same_origin(location)
                except AssertionError as error:
                    raise AssertionError(f"{payload!r} -> Location {location!r}") from error
            for name in _LOCATION_HEADERS[1:]:
                assert response.header(name) is None, (payload, name)
    assert sent >= 500


def test_every_payload_stays_on_site_on_the_challenge_page(
    strict_gateway: GatewayProcess,
) -> None:
    for payload in OPEN_REDIRECT_PAYLOADS:
        for target in _targets(payload):
            response = get(strict_gateway, target, [HTML])
            assert response.status in {200, 400}, (payload, response.status)
            assert response.header("location") is None
            if response.status != 200:
                continue
            hrefs = [unescape(m.group(2)) for m in _HREF.finditer(response.text)]
            assert hrefs, response.text
            for href in hrefs:
                try:
                    _check_link(strict_gateway, href)
                except AssertionError as error:
                    raise AssertionError(f"{payload!r} -> link {href!r}") from error
            # The return path is shown escaped: no markup from the payload survives.
            assert "<script" not in response.text.lower()
            assert "javascript:" not in " ".join(hrefs).lower()


def test_callback_returns_only_to_a_safe_path(strict_gateway: GatewayProcess) -> None:
    # The return path sealed in the challenge cookie is the one the callback redirects to;
    # a hostile one was already replaced by "/" when the page was made.
    from tests.security.support import browser_challenge, callback

    for payload in ("//evil.example", "/\\evil.example", "https://evil.example", "/%2F%2Fevil"):
        challenge = browser_challenge(strict_gateway, payload)
        token = strict_gateway.mint(challenge.nonce)
        fields = f"age_token={token}&state={quote(challenge.state)}".encode()
        response = callback(strict_gateway, fields, challenge.cookie)
        assert response.status == 303, response.text
        assert response.header("location") == "/"
