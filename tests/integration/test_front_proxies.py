"""nginx and Caddy, running the shipped docs/integrations configs, in front of a real site.

agegate is the decision service (``trusted_proxies: [127.0.0.1/32]``); the
test upstream is the site and echoes what it receives.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import Stack, nonce_of, seal_session
from tests.support.gateway import session_cookie
from tests.support.rawhttp import request

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.proxy.url, follow_redirects=False, timeout=10)


def upstream_headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.json()["headers"]}


def test_public_route_passes(client: httpx.Client) -> None:
    response = client.get("/echo/public/page?q=1")
    assert response.status_code == 200
    echo = response.json()
    assert (echo["path"], echo["query"]) == ("/echo/public/page", "q=1")
    seen = upstream_headers(response)
    assert "x-agegate-age-over" not in seen
    assert "set-cookie" not in response.headers


def test_protected_route_redirects_browsers_to_the_verify_page(client: httpx.Client) -> None:
    response = client.get("/echo/wine/red?vintage=2019", headers=HTML)
    assert response.status_code == 303
    # Relative: the client's host is the site's, and /.agegate/ is routed to agegate.
    assert response.headers["location"] == "/.agegate/verify?return=/echo/wine/red%3Fvintage%3D2019"
    page = client.get(response.headers["location"], headers=HTML)
    assert page.status_code == 200
    assert "__Host-agegate-challenge=" in page.headers["set-cookie"]


def test_protected_route_challenges_api_clients(client: httpx.Client) -> None:
    response = client.get("/echo/wine/red")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "no_session"
    assert 'min_age="18"' in response.headers["www-authenticate"]
    assert response.headers["cache-control"] == "no-store"


def test_api_token_flow_then_the_session_cookie_grants_access(
    stack: Stack, client: httpx.Client
) -> None:
    challenge = client.get("/echo/wine/red")
    token = stack.gw.mint(nonce_of(challenge.headers["www-authenticate"]))
    answered = client.get("/echo/wine/red", headers={"authorization": f"AgeToken {token}"})
    assert answered.status_code == 200, answered.text
    seen = upstream_headers(answered)
    assert seen["x-agegate-age-over"] == "18"
    assert seen["x-agegate-assurance"] == "basic"
    assert "authorization" not in seen  # the credential was agegate's, not the site's
    cookie = session_cookie(answered.headers.get_list("set-cookie"))
    assert cookie and cookie.startswith("v1.")
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in answered.headers["set-cookie"]
    again = client.get("/echo/wine/white", headers={"cookie": f"__Host-agegate={cookie}"})
    assert again.status_code == 200
    assert upstream_headers(again)["x-agegate-age-over"] == "18"
    replayed = client.get("/echo/wine/red", headers={"authorization": f"AgeToken {token}"})
    assert replayed.status_code == 401
    status = client.get("/.agegate/status", headers={"cookie": f"__Host-agegate={cookie}"})
    assert status.json()["verified"] is True


def test_site_authorization_of_other_schemes_still_reaches_the_site(client: httpx.Client) -> None:
    response = client.get("/echo/public/x", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert upstream_headers(response)["authorization"] == "Basic dXNlcjpwYXNz"


@pytest.mark.parametrize(
    "spoofed",
    [
        {"x-agegate-age-over": "18", "x-agegate-assurance": "strict"},
        {"x-forwarded-uri": "/echo/public/x", "x-forwarded-method": "GET"},
        {"x-original-uri": "/echo/public/x", "x-original-method": "GET"},
        {"x-forwarded-host": "elsewhere.example", "x-agegate-path": "/echo/public/x"},
    ],
    ids=["agegate-headers", "forwarded-uri", "original-uri", "host-and-path"],
)
def test_client_sent_proxy_headers_change_nothing_and_never_reach_the_site(
    stack: Stack, client: httpx.Client, spoofed: dict[str, str]
) -> None:
    assert client.get("/echo/wine/red", headers=spoofed).status_code == 401
    public = client.get("/echo/public/x", headers=spoofed)
    assert public.status_code == 200
    seen = upstream_headers(public)
    for name, value in spoofed.items():
        if name == "x-forwarded-host":
            assert seen.get(name) != value
        else:
            assert name not in seen, (name, seen)
    # With a real session: the site sees agegate's values, not the client's.
    cookie = seal_session(stack.gw)
    allowed = client.get("/echo/wine/red", headers={**spoofed, "cookie": cookie})
    assert allowed.status_code == 200
    seen = upstream_headers(allowed)
    assert seen["x-agegate-age-over"] == "18"
    assert seen["x-agegate-assurance"] == "basic"
    assert allowed.json()["path"] == "/echo/wine/red"


def test_underscore_spelling_never_reaches_the_site(stack: Stack) -> None:
    response = request(
        stack.port, "GET", "/echo/public/x", [("X_Agegate_Age_Over", "18")], host="localhost"
    )
    assert response.status == 200
    names = [name for name, _ in response.json()["headers"]]
    assert not any("agegate" in name.lower() for name in names), names


def test_path_confusion_is_decided_on_the_canonical_path(stack: Stack) -> None:
    for target in (
        b"/echo/public/%2e%2e/wine/red",
        b"/echo/public/../wine/red",
        b"//echo//wine/red",
        b"/echo/w%69ne/red",
    ):
        response = request(stack.port, "GET", target, host="localhost")
        assert response.status == 401, (stack.kind, target, response.status)
    assert request(stack.port, "GET", b"/echo/public%2Fx", host="localhost").status == 400


def test_agegate_pages_are_reachable_through_the_proxy(stack: Stack, client: httpx.Client) -> None:
    assert client.get("/.agegate/status").json()["verified"] is False
    cookie = seal_session(stack.gw)
    logout = client.post(
        "/.agegate/logout", headers={"cookie": cookie, "sec-fetch-site": "same-origin"}
    )
    assert logout.status_code == 204
    assert session_cookie(logout.headers.get_list("set-cookie")) == ""
    # The pages see the client through the proxy, and only agegate's public listener answers.
    assert stack.upstream.requests[-1][1] != "/.agegate/logout"


def test_unknown_host_is_misdirected(stack: Stack) -> None:
    response = request(stack.port, "GET", b"/echo/public/x", host="evil.example")
    assert response.status == 421


def test_denied_and_proven_under_are_refused(stack: Stack, client: httpx.Client) -> None:
    assert client.get("/echo/closed/x").status_code == 403
    under = seal_session(stack.gw, age_over=frozenset(), age_under=frozenset({18}))
    response = client.get("/echo/wine/red", headers={"cookie": under})
    assert response.status_code == 403
    assert response.json()["reason"] == "proven_under"


def test_request_body_reaches_the_site_once_allowed(stack: Stack, client: httpx.Client) -> None:
    cookie = seal_session(stack.gw)
    response = client.post("/echo/wine/order", content=b"x" * 5000, headers={"cookie": cookie})
    assert response.status_code == 200
    assert response.json()["body_len"] == 5000


def cookies_seen(response: httpx.Response) -> list[str]:
    """Every ``Cookie`` header the site received, as sent (an empty one too)."""
    return [value for name, value in response.json()["headers"] if name.lower() == "cookie"]


@pytest.mark.parametrize("path", ["/echo/public/x", "/echo/wine/red"], ids=["allowed", "protected"])
def test_forward_auth_strips_agegate_cookies(stack: Stack, client: httpx.Client, path: str) -> None:
    session = seal_session(stack.gw)
    sent = f"a=1; {session}; b=2; __Host-agegate-challenge=x"
    response = client.get(path, headers={"cookie": sent})
    assert response.status_code == 200, (stack.kind, response.text)
    assert cookies_seen(response) == ["a=1; b=2"], stack.kind
    assert path == "/echo/public/x" or upstream_headers(response)["x-agegate-age-over"] == "18"
    values = " ".join(value for _, value in response.json()["headers"])
    assert "__Host-agegate" not in values
    assert session.split("=", 1)[1] not in values
    assert "x-agegate-cookie" not in upstream_headers(response)


@pytest.mark.parametrize("path", ["/echo/public/x", "/echo/wine/red"], ids=["allowed", "protected"])
def test_forward_auth_with_only_agegate_cookies_sends_the_site_no_cookie(
    stack: Stack, client: httpx.Client, path: str
) -> None:
    session = seal_session(stack.gw)
    response = client.get(path, headers={"cookie": f"{session}; __Host-agegate-challenge=x"})
    assert response.status_code == 200, (stack.kind, response.text)
    # No Cookie header at all: not an empty one either.
    assert cookies_seen(response) == [], stack.kind


def test_forward_auth_passes_site_cookies_verbatim(stack: Stack, client: httpx.Client) -> None:
    # Braces a proxy could take for its own placeholders, quotes, and a cookie as large
    # as nginx's default header buffer lets a client send: all reach the site as sent.
    big = "z" * 6000
    sent = f'q="a b"; p={{http.request.host}}; {seal_session(stack.gw)}; big={big}'
    response = client.get("/echo/wine/red", headers={"cookie": sent})
    assert response.status_code == 200, (stack.kind, response.text)
    assert cookies_seen(response) == [f'q="a b"; p={{http.request.host}}; big={big}']
    # No cookies sent: none received, and a spoofed X-Agegate-Cookie changes nothing.
    bare = client.get("/echo/public/x", headers={"x-agegate-cookie": "stolen=1"})
    assert cookies_seen(bare) == []
    assert "x-agegate-cookie" not in upstream_headers(bare)
