"""End to end: a real ``agegate run`` process in front of a real upstream, over HTTP.

Covers the proxy contract (SPEC §6), API mode with ``Authorization: AgeToken``,
the browser challenge → callback flow, status, logout, the admin listener,
and that the access log holds no token, cookie or query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.gateway import AUTHORIZE_URL, GatewayProcess, cookie_value, session_cookie
from tests.support.upstream import UpstreamServer

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    with GatewayProcess(tmp_path_factory.mktemp("gw"), upstream=upstream.url) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, follow_redirects=False, timeout=10) as c:
        yield c


def nonce_from(response: httpx.Response) -> str:
    challenge = response.headers["www-authenticate"]
    match = re.search(r'AgeToken realm="[^"]+", nonce="([^"]+)", min_age="(\d+)"', challenge)
    assert match, challenge
    return match.group(1)


def token_session(
    gateway: GatewayProcess,
    client: httpx.Client,
    path: str,
    age_over: dict[int, bool] | None = None,
) -> httpx.Response:
    challenge = client.get(path)
    assert challenge.status_code == 401
    token = gateway.mint(nonce_from(challenge), age_over=age_over)
    return client.get(path, headers={"authorization": f"AgeToken {token}"})


def test_public_route_is_proxied_with_forwarding_headers(client: httpx.Client) -> None:
    response = client.get(
        "/echo/public/page?q=1", headers={"x-agegate-age-over": "99", "x-forwarded-for": "6.6.6.6"}
    )
    assert response.status_code == 200
    echo = response.json()
    assert echo["path"] == "/echo/public/page"
    assert echo["query"] == "q=1"
    headers = {k.lower(): v for k, v in echo["headers"]}
    assert "x-agegate-age-over" not in headers  # client-sent: stripped
    assert headers["x-forwarded-for"] == "127.0.0.1"  # untrusted peer: rebuilt, not appended
    assert "for=" in headers["forwarded"]
    assert "cache-control" not in response.headers  # public routes: the upstream's choice


def test_protected_route_challenges_browsers_with_a_redirect(client: httpx.Client) -> None:
    response = client.get("/echo/wine/red?vintage=2019", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/.agegate/verify?return=/echo/wine/red%3Fvintage%3D2019"


def test_protected_route_challenges_api_clients_with_401(client: httpx.Client) -> None:
    response = client.get("/echo/wine/red")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["reason"] == "no_session"
    assert body["min_age"] == 18
    assert 'min_age="18"' in response.headers["www-authenticate"]
    assert response.headers["cache-control"] == "no-store"


def test_api_token_grants_a_session_and_is_not_forwarded(
    gateway: GatewayProcess, client: httpx.Client
) -> None:
    response = token_session(gateway, client, "/echo/wine/red")
    assert response.status_code == 200, response.text
    headers = {k.lower(): v for k, v in response.json()["headers"]}
    assert "authorization" not in headers
    assert headers["x-agegate-age-over"] == "18"
    assert headers["x-agegate-assurance"] == "basic"
    assert response.headers["cache-control"] == "private"  # never stored by a shared cache
    cookie = session_cookie(response.headers.get_list("set-cookie"))
    assert cookie and cookie.startswith("v1.")
    set_cookie = response.headers["set-cookie"]
    for attribute in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        assert attribute in set_cookie
    again = client.get("/echo/wine/white", headers={"cookie": f"__Host-agegate={cookie}"})
    assert again.status_code == 200
    upstream_cookie = dict(again.json()["headers"]).get("cookie")
    assert upstream_cookie is None or "__Host-agegate" not in upstream_cookie


def test_replayed_token_is_refused(gateway: GatewayProcess, client: httpx.Client) -> None:
    challenge = client.get("/echo/wine/red")
    token = gateway.mint(nonce_from(challenge))
    first = client.get("/echo/wine/red", headers={"authorization": f"AgeToken {token}"})
    assert first.status_code == 200
    second = client.get("/echo/wine/red", headers={"authorization": f"AgeToken {token}"})
    assert second.status_code == 401
    assert second.json()["reason"] in {"replayed", "replayed_nonce"}
    assert "set-cookie" not in second.headers


def test_token_with_foreign_nonce_is_refused(gateway: GatewayProcess, client: httpx.Client) -> None:
    token = gateway.mint("not-a-nonce-this-gateway-issued")
    response = client.get("/echo/wine/red", headers={"authorization": f"AgeToken {token}"})
    assert response.status_code == 401
    assert response.json()["reason"] == "wrong_nonce"


def test_visitor_proven_under_age_is_refused(gateway: GatewayProcess, client: httpx.Client) -> None:
    response = token_session(gateway, client, "/echo/wine/red", age_over={18: False})
    assert response.status_code == 403
    assert response.json()["reason"] == "proven_under"


def test_too_low_threshold_is_challenged_again(
    gateway: GatewayProcess, client: httpx.Client
) -> None:
    response = token_session(gateway, client, "/echo/wine/red", age_over={16: True})
    assert response.status_code == 401
    assert response.json()["reason"] == "age_not_proven"


def test_assurance_too_low_for_spirits(gateway: GatewayProcess, client: httpx.Client) -> None:
    response = token_session(gateway, client, "/echo/spirits/rum", age_over={21: True})
    assert response.status_code == 401
    assert response.json()["reason"] == "assurance_too_low"


def test_deny_rule_and_unknown_host_and_bad_paths(client: httpx.Client) -> None:
    assert client.get("/echo/closed/x").status_code == 403
    assert client.get("/echo/public/x", headers={"host": "evil.example"}).status_code == 421
    assert client.get("/echo/public/%2F..%2Fwine").status_code == 400
    # encoded dot segments resolve before matching: this is the protected rule
    assert client.get("/echo/public/%2e%2e/%2e%2e/echo/wine/red").status_code == 401


def test_status_and_logout(gateway: GatewayProcess, client: httpx.Client) -> None:
    anonymous = client.get("/.agegate/status").json()
    assert anonymous == {"verified": False, "age_over": [], "assurance": None, "expires_at": None}
    cookie = session_cookie(
        token_session(gateway, client, "/echo/wine/red").headers.get_list("set-cookie")
    )
    jar = {"cookie": f"__Host-agegate={cookie}"}
    status = client.get("/.agegate/status", headers=jar).json()
    assert status["verified"] is True
    assert 18 in status["age_over"]
    assert status["assurance"] == "basic"
    assert status["expires_at"].endswith("Z")
    refused = client.post("/.agegate/logout", headers={**jar, "origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers
    done = client.post("/.agegate/logout", headers={**jar, "origin": gateway.public_origin})
    assert done.status_code == 204
    assert session_cookie(done.headers.get_list("set-cookie")) == ""


def test_browser_flow_verify_page_then_callback(
    gateway: GatewayProcess, client: httpx.Client
) -> None:
    page = client.get("/.agegate/verify?return=/echo/wine/red", headers=HTML)
    assert page.status_code == 200
    assert "only whether you are over 18" in page.text
    challenge_cookie = cookie_value(page.headers.get_list("set-cookie"), "__Host-agegate-challenge")
    assert challenge_cookie
    assert "SameSite=None" in page.headers["set-cookie"]
    link = re.search(r"href='([^']+)' data-verifier='test-token'", page.text)
    assert link, page.text
    url = link.group(1).replace("&amp;", "&")
    assert url.startswith(AUTHORIZE_URL)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["client_id"] == gateway.public_origin
    assert params["redirect_uri"] == f"{gateway.public_origin}/.agegate/callback/test-token"
    assert params["min_age"] == "18"
    token = gateway.mint(params["nonce"])
    jar = {"cookie": f"__Host-agegate-challenge={challenge_cookie}"}
    forged = client.post(
        "/.agegate/callback/test-token", headers=jar, data={"age_token": token, "state": "forged"}
    )
    assert forged.status_code == 400
    assert "set-cookie" not in forged.headers or "__Host-agegate=" not in forged.headers.get(
        "set-cookie", ""
    )
    done = client.post(
        "/.agegate/callback/test-token",
        headers=jar,
        data={"age_token": token, "state": params["state"]},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/echo/wine/red"
    cookies = done.headers.get_list("set-cookie")
    assert session_cookie(cookies)
    assert cookie_value(cookies, "__Host-agegate-challenge") == ""
    # a satisfied visitor asking for the verify page goes straight back
    again = client.get(
        "/.agegate/verify?return=/echo/wine/red",
        headers={**HTML, "cookie": f"__Host-agegate={session_cookie(cookies)}"},
    )
    assert again.status_code == 303
    assert again.headers["location"] == "/echo/wine/red"


def test_open_redirect_return_paths_become_root(client: httpx.Client) -> None:
    # A refused return path becomes "/", an allowed route, so the verify page sends the
    # visitor straight there: never off-site.
    for evil in ("//evil.example", "/\\evil.example", "https://evil.example", "/%09/evil"):
        page = client.get("/.agegate/verify", params={"return": evil}, headers=HTML)
        assert page.status_code == 303
        assert page.headers["location"] == "/"


def test_admin_listener(
    gateway: GatewayProcess, client: httpx.Client, upstream: UpstreamServer
) -> None:
    with httpx.Client(base_url=gateway.admin_url, timeout=5) as admin:
        assert admin.get("/healthz").json() == {"status": "ok"}
        assert admin.get("/readyz").status_code == 200
        metrics = admin.get("/metrics").text
        assert "agegate_requests_total" in metrics
        policy = admin.get("/policy").json()
        assert [rule["name"] for rule in policy["rules"]][:2] == ["public", "wine"]
    # on the public listener, /metrics is an ordinary site path (allowed, proxied)
    public = client.get("/metrics")
    assert "agegate_requests_total" not in public.text
    assert ("GET", "/metrics") in upstream.requests  # the upstream answered, not the gateway


def test_access_log_is_json_and_holds_no_secrets(
    gateway: GatewayProcess, client: httpx.Client, tmp_path: Path
) -> None:
    response = token_session(gateway, client, "/echo/wine/red?secret-query=1")
    cookie = session_cookie(response.headers.get_list("set-cookie"))
    assert cookie
    lines = gateway.log_lines()
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests, lines
    assert any(line.get("rule") == "wine" and line.get("decision") == "allow" for line in requests)
    text = gateway.log_text()
    assert cookie not in text
    assert "secret-query" not in text
    assert "AgeToken ey" not in text and ".ey" not in text
    assert all("client" not in line for line in lines)  # log_client_ip is off by default


REPORT_ONLY_POLICY = """
version: 1
defaults: {verifiers: [test-token], assurance: basic}
routes:
  - {name: trial, path: /echo/trial/**, min_age: 18, mode: report-only}
  - {name: rest, path: /**, action: allow}
"""


def test_report_only_lets_through_without_claiming_an_age(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url, policy=REPORT_ONLY_POLICY) as gw:
        response = httpx.get(gw.url + "/echo/trial/x")
        assert response.status_code == 200
        headers = {k.lower() for k, _ in response.json()["headers"]}
        assert "x-agegate-age-over" not in headers
        assert "x-agegate-assurance" not in headers
        lines = [line for line in gw.log_lines() if line.get("event") == "request"]
        assert lines[-1]["decision"] == "challenge"
        assert lines[-1]["mode"] == "report-only"


def test_sigterm_exits_0_with_the_last_access_line_written(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    # uvicorn raises the signal again after its graceful shutdown: the process then died of
    # it (-15), and what the log buffer held was lost with it.
    gw = GatewayProcess(tmp_path, upstream=upstream.url).start()
    try:
        assert httpx.get(gw.url + "/echo/public/last-one").status_code == 200
        assert gw.process is not None
        gw.process.terminate()
        assert gw.process.wait(timeout=15) == 0
    finally:
        gw.stop()
    paths = [line.get("path") for line in gw.log_lines() if line.get("event") == "request"]
    assert "/echo/public/last-one" in paths
