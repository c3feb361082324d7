"""``/.agegate/authz`` on a real gateway: who may ask, what it reads, how it answers.

The decision itself is compared with proxy mode in test_decision_parity.py;
here: trust, malformed questions, the nginx and Envoy conventions, the
``authz_listen`` listener, the access log, and that a request with a valid
session is decided without any network I/O (no Redis, no JWKS fetch).
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TRUSTED, nonce_of, seal_session
from tests.support.gateway import GatewayProcess
from tests.support.net import free_port, wait_for_port
from tests.support.rawhttp import request
from tests.support.upstream import UpstreamServer
from verifiers import sdk

AUTHZ = "/.agegate/authz"


def ask(gw: GatewayProcess, uri: str, **headers: str) -> httpx.Response:
    """A Caddy/Traefik-style question about ``GET uri`` on host localhost."""
    sent = {"x-forwarded-method": "GET", "x-forwarded-host": "localhost", "x-forwarded-uri": uri}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return httpx.get(gw.admin_url + AUTHZ, headers=sent, timeout=5)


def test_untrusted_peer_is_refused_and_logged(upstream: UpstreamServer, tmp_path: Path) -> None:
    # Trusts only 127.0.0.2; the test connects from 127.0.0.1.
    with GatewayProcess(
        tmp_path, upstream=upstream.url, settings={"trusted_proxies": ["127.0.0.2/32"]}
    ) as gw:
        response = ask(gw, "/echo/public/x")
        assert response.status_code == 403
        assert response.json()["reason"] == "untrusted_proxy"
        assert "x-agegate-path" not in response.headers
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(transport=transport, timeout=5) as trusted:
            allowed = trusted.get(
                gw.admin_url.replace("127.0.0.1", "127.0.0.1") + AUTHZ,
                headers={"x-forwarded-uri": "/echo/public/x", "x-forwarded-host": "localhost"},
            )
        assert allowed.status_code == 200
        lines = gw.log_lines()
        assert any(line.get("event") == "authz_untrusted_proxy" for line in lines)
        assert any(
            line.get("reason") == "untrusted_proxy" and line.get("status") == 403 for line in lines
        )
        assert all("client" not in line for line in lines)


def test_an_empty_trust_list_trusts_no_one(upstream: UpstreamServer, tmp_path: Path) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url) as gw:  # trusted_proxies: []
        assert ask(gw, "/echo/public/x").status_code == 403


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ({"x-forwarded-uri": None}, 400, "missing_forwarded_uri"),
        ({"x-forwarded-method": "G E T"}, 400, "bad_forwarded_method"),
        ({"x-forwarded-uri": "/echo/public/x#frag"}, 400, "fragment"),
        ({"x-forwarded-uri": "echo/public/x"}, 400, "not_origin_form"),
        ({"x-forwarded-uri": "http://evil.example/echo/public/x"}, 421, "unknown_host"),
        ({"x-forwarded-host": "evil.example"}, 421, "unknown_host"),
        ({"x-forwarded-host": "localhost, evil.example"}, 400, "bad_host"),
    ],
    ids=[
        "no-uri",
        "bad-method",
        "fragment",
        "relative",
        "absolute",
        "host",
        "host-list",
    ],
)
def test_unusable_questions_are_refused_never_500(
    gateway: GatewayProcess, headers: dict[str, str | None], status: int, reason: str
) -> None:
    sent = {
        "x-forwarded-method": "GET",
        "x-forwarded-host": "localhost",
        "x-forwarded-uri": "/echo/public/x",
    }
    sent.update(headers)  # type: ignore[arg-type]
    response = httpx.get(
        gateway.admin_url + AUTHZ, headers={k: v for k, v in sent.items() if v is not None}
    )
    assert (response.status_code, response.json()["reason"]) == (status, reason)


def test_both_conventions_at_once_are_ambiguous(gateway: GatewayProcess) -> None:
    # X-Original-URI asks for nginx style: the 400 travels as 403 + X-Agegate-Status.
    response = ask(gateway, "/echo/public/x", x_original_uri="/echo/wine/red")
    assert response.status_code == 403
    assert response.headers["x-agegate-status"] == "400"
    assert response.json()["reason"] == "ambiguous_forwarded_uri"


def test_a_forwarded_header_sent_twice_is_ambiguous(gateway: GatewayProcess) -> None:
    response = request(
        gateway.admin_port,
        "GET",
        AUTHZ,
        [("X-Forwarded-Uri", "/echo/public/x"), ("X-Forwarded-Uri", "/echo/wine/red")],
    )
    assert response.status == 400
    assert response.json()["reason"] == "ambiguous_forwarded_header"


def test_absolute_form_naming_an_accepted_host_is_decided(gateway: GatewayProcess) -> None:
    response = ask(gateway, "http://localhost:8080/echo/wine/red")
    assert response.status_code == 401


def test_nginx_style_on_request_for_other_conventions(gateway: GatewayProcess) -> None:
    url = gateway.admin_url + AUTHZ + "?style=nginx"
    base = {"x-forwarded-host": "localhost", "accept": "text/html"}
    browser = httpx.get(url, headers={**base, "x-forwarded-uri": "/echo/wine/red?a=1"})
    assert browser.status_code == 401
    assert browser.headers["x-agegate-location"] == "/.agegate/verify?return=/echo/wine/red%3Fa%3D1"
    assert "location" not in browser.headers
    misdirected = httpx.get(
        url, headers={**base, "x-forwarded-uri": "/x", "x-forwarded-host": "evil.example"}
    )
    assert misdirected.status_code == 403
    assert misdirected.headers["x-agegate-status"] == "421"
    assert misdirected.headers["x-agegate-reason"] == "unknown_host"
    allowed = httpx.get(url, headers={**base, "x-forwarded-uri": "/echo/public/x"})
    assert allowed.status_code == 200
    assert "x-agegate-reason" not in allowed.headers


def test_envoy_convention_reads_the_path_after_the_prefix(gateway: GatewayProcess) -> None:
    base = gateway.admin_url + AUTHZ
    assert httpx.get(base + "/echo/public/x?q=1", headers={"host": "localhost"}).status_code == 200
    challenged = httpx.post(base + "/echo/wine/red", headers={"host": "localhost"})
    assert challenged.status_code == 401
    assert "verify?return=/echo/wine/red" in challenged.json()["verify_url"]
    # Only the exact prefix counts: an encoded look-alike is no endpoint at all.
    odd = request(gateway.admin_port, "GET", AUTHZ.replace("authz", "%61uthz") + "/echo/wine/red")
    assert odd.status == 404
    assert request(gateway.admin_port, "GET", AUTHZ + "x/echo/public/x").status == 404
    # The Host header names the site; a client cannot choose the path with headers here.
    spoofed = httpx.get(
        base + "/echo/wine/red",
        headers={"host": "localhost", "x-forwarded-uri": "/echo/public/x", "x-original-uri": "/x"},
    )
    assert spoofed.status_code == 401


def test_forward_auth_is_not_served_on_the_public_listener(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    response = httpx.get(
        gateway.url + AUTHZ, headers={"x-forwarded-uri": "/echo/public/x", "host": "localhost"}
    )
    assert "x-agegate-path" not in response.headers


def test_authz_listen_serves_forward_auth_on_its_own_port(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    port = free_port()
    with GatewayProcess(
        tmp_path, upstream=upstream.url, settings={**TRUSTED, "authz_listen": f"127.0.0.1:{port}"}
    ) as gw:
        wait_for_port(port, timeout=10)
        headers = {"x-forwarded-uri": "/echo/wine/red", "x-forwarded-host": "localhost"}
        assert httpx.get(f"http://127.0.0.1:{port}{AUTHZ}", headers=headers).status_code == 401
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 404
        assert httpx.get(gw.admin_url + AUTHZ, headers=headers).status_code == 404
        assert httpx.get(gw.admin_url + "/healthz").status_code == 200


def test_token_answered_inline_sets_the_cookie_and_logs_no_secret(gateway: GatewayProcess) -> None:
    challenge = ask(gateway, "/echo/wine/red?secret-query=1")
    token = gateway.mint(nonce_of(challenge.headers["www-authenticate"]))
    answered = ask(gateway, "/echo/wine/red?secret-query=1", authorization=f"AgeToken {token}")
    assert answered.status_code == 200
    assert answered.headers["x-agegate-age-over"] == "18"
    assert answered.headers["x-agegate-path"] == "/echo/wine/red"
    cookie = answered.headers["set-cookie"]
    assert cookie.startswith("__Host-agegate=v1.")
    text = gateway.log_text()
    assert cookie.split(";")[0].split("=", 1)[1] not in text
    assert token not in text
    assert "secret-query" not in text


def test_report_only_rule_does_not_claim_an_unproven_age(
    upstream: UpstreamServer, tmp_path: Path
) -> None:
    policy = """
version: 1
defaults: {verifiers: [test-token], session_ttl: 1h, assurance: basic}
routes:
  - {name: trial, path: /echo/trial/**, min_age: 18, mode: report-only}
  - {name: rest, path: /**, action: allow}
"""
    with GatewayProcess(tmp_path, upstream=upstream.url, policy=policy, settings=TRUSTED) as gw:
        response = ask(gw, "/echo/trial/x")
        assert response.status_code == 200
        assert "x-agegate-age-over" not in response.headers
        proven = ask(gw, "/echo/trial/x", cookie=seal_session(gw))
        assert proven.headers["x-agegate-age-over"] == "18"


class _CountingJwks(BaseHTTPRequestHandler):
    body = b"{}"
    count = 0

    def do_GET(self) -> None:
        type(self).count += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_CountingJwks]]]:
    handler = type("Jwks", (_CountingJwks,), {"count": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_valid_session_is_decided_without_network_io(
    upstream: UpstreamServer, tmp_path: Path, jwks_server: tuple[str, type[_CountingJwks]]
) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make system-deps)")
    from tests.support.redis import RedisServer

    url, jwks = jwks_server
    with RedisServer() as redis:
        gw = GatewayProcess(
            tmp_path,
            upstream=upstream.url,
            settings={**TRUSTED, "store": redis.url},
            verifier={"jwks_file": None, "jwks_uri": url},
        )
        jwks.body = json.dumps(sdk.jwks(gw.signing_key)).encode()
        with gw:
            # A real session, made through the API token flow (that one may use both).
            challenge = ask(gw, "/echo/wine/red")
            token = gw.mint(nonce_of(challenge.headers["www-authenticate"]))
            answered = ask(gw, "/echo/wine/red", authorization=f"AgeToken {token}")
            assert answered.status_code == 200
            cookie = answered.headers["set-cookie"].split(";")[0]

            def redis_counts() -> tuple[int, int]:
                values = redis.command("INFO", "stats")
                return int(values["total_commands_processed"]), int(
                    values["total_connections_received"]
                )

            before_idle = redis_counts()
            after_idle = redis_counts()  # the INFO itself is one command and one connection
            jwks_before = jwks.count
            with httpx.Client(timeout=5) as client:
                for index in range(50):
                    response = client.get(
                        gw.admin_url + AUTHZ,
                        headers={
                            "x-forwarded-uri": f"/echo/wine/{index}",
                            "x-forwarded-host": "localhost",
                            "cookie": cookie,
                        },
                    )
                    assert response.status_code == 200
            after = redis_counts()
            idle = (after_idle[0] - before_idle[0], after_idle[1] - before_idle[1])
            assert (after[0] - after_idle[0], after[1] - after_idle[1]) == idle
            assert jwks.count == jwks_before
