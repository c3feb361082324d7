"""Odd input to every wallet-flow endpoint: a 4xx with a reason, never a 5xx or a session.

The named attack tests (test_wallet_attacks.py) each aim at one binding; this
sweeps the input space an attacker would try first (missing, repeated,
oversized, non-UTF-8 and control-character parameters, foreign methods,
garbage cookies) over a real socket, and checks the gateway still serves after.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.rawhttp import request
from tests.support.upstream import UpstreamServer
from tests.support.wallet import WalletSite, wallet_challenge

pytestmark = [pytest.mark.slow]

ODD_VALUES = [
    b"",
    b"%00",
    b"%ff%fe",
    b"%0d%0aSet-Cookie:%20x=1",
    b"A" * 4000,
    b"..%2f..%2f",
    b"%E2%80%AE",
    b"x&response_code=y",
]
TARGETS = [
    b"/.agegate/wallet?response_code=",
    b"/.agegate/wallet/status?state=",
    b"/.agegate/wallet/status?request=",
]


@pytest.fixture(scope="module")
def site(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WalletSite]:
    with WalletSite(tmp_path_factory.mktemp("wallet-odd"), upstream.url) as running:
        yield running


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize("cookie", ["none", "garbage", "real"])
def test_wallet_pages_refuse_odd_parameters_without_a_5xx_or_a_session(
    site: WalletSite, target: bytes, value: bytes, cookie: str
) -> None:
    headers = [(b"Accept", b"text/html")]
    if cookie == "garbage":
        headers.append((b"Cookie", b"__Host-agegate-challenge=v1.00000000.AAAA"))
    elif cookie == "real":
        headers.append((b"Cookie", wallet_challenge(site.gw).cookie.encode()))
    response = request(site.gw.port, "GET", target + value, headers)
    assert 400 <= response.status < 500 or response.status in (200, 303), response.status
    set_cookies = [v for k, v in response.headers if k.lower() == b"set-cookie"]
    assert not any(v.startswith(b"__Host-agegate=") and b"Max-Age=0" not in v for v in set_cookies)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "POST"])
@pytest.mark.parametrize("target", [b"/.agegate/wallet", b"/.agegate/wallet/status"])
def test_wallet_pages_refuse_other_methods(site: WalletSite, method: str, target: bytes) -> None:
    response = request(site.gw.port, method, target, [(b"Content-Length", b"0")])
    assert 400 <= response.status < 500, (method, target, response.status)


@pytest.mark.parametrize(
    "body",
    [
        b"state=&vp_token=",
        b"state=%ff&vp_token=%ff",
        b"vp_token=%7B%7D",
        b"state=" + b"A" * 60000,
        b"error=access_denied",
        b"error=%0d%0a&state=x",
        b"state=x&vp_token=%5B%5D",
        b"state=x&vp_token=null",
        b"state=x&vp_token=%7B%22age%22%3A%5B1%5D%7D",
    ],
)
def test_direct_post_refuses_odd_bodies_without_a_5xx(site: WalletSite, body: bytes) -> None:
    response = request(
        site.gw.port,
        "POST",
        "/.agegate/callback/eu-pid",
        [(b"Content-Type", b"application/x-www-form-urlencoded"), (b"Accept", b"application/json")],
        body,
    )
    assert 400 <= response.status < 500, (body[:40], response.status, response.body[:200])
    # And the gateway still serves.
    assert (
        request(site.gw.port, "GET", "/.agegate/status", [(b"Accept", b"application/json")]).status
        == 200
    )
