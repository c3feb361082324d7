"""The ``oidc`` verifier against a real OpenID provider: npm ``oidc-provider`` 8.x.

Real processes only: ``agegate run`` (GatewayProcess), the test upstream, and
``provider.mjs`` (panva/oidc-provider, OpenID Certified) on loopback ports.  The
visitor is a headless HTTP client here (its provider cookies in an httpx jar, the
gateway's ``__Host-`` cookies by hand over raw sockets) and Chromium in
``test_oidc_browser.py``.  Refusals that need a bad id_token get one from the
provider itself: its token response re-signed with its own key (``tamper``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.interop.oidc.harness import OIDC_POLICY, OidcProvider, ProviderAnswer, oidc_settings
from tests.security.support import HTML, callback, get
from tests.support.gateway import GatewayProcess, cookie_value, session_cookie
from tests.support.net import free_port
from tests.support.rawhttp import RawResponse
from tests.support.upstream import UpstreamServer

PROTECTED = "/echo/wine/red"
JSON = (b"Accept", b"application/json")


def _link(page: RawResponse, verifier: str) -> str:
    match = re.search(rf"href='([^']+)' data-verifier='{re.escape(verifier)}'", page.text)
    assert match, page.text
    return unescape(match.group(1))


class Visit:
    """One visitor's challenge: the verify page's cookie, state and the verifier's link."""

    def __init__(self, gw: GatewayProcess, verifier: str = "op") -> None:
        page = get(gw, f"/.agegate/verify?return={quote(PROTECTED, safe='/')}", [HTML])
        assert page.status == 200, page.text
        cookie = cookie_value(page.header_list("set-cookie"), "__Host-agegate-challenge")
        assert cookie
        self.gw, self.verifier, self.cookie = gw, verifier, cookie
        self.link = _link(page, verifier)
        self.params = {k: v[0] for k, v in parse_qs(urlsplit(self.link).query).items()}

    def answer(
        self, answer: ProviderAnswer, accept: bytes = b"application/json", **override: str
    ) -> RawResponse:
        assert answer.action == f"{self.gw.public_origin}/.agegate/callback/{self.verifier}"
        return callback(
            self.gw, answer.body(**override), self.cookie, [(b"Accept", accept)], self.verifier
        )


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def op(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[OidcProvider]:
    origin = f"http://localhost:{port}"
    uris = [f"{origin}/.agegate/callback/{name}" for name in ("op", "op-pkjwt", "op-userinfo")]
    with OidcProvider(tmp_path_factory.mktemp("op"), redirect_uris=uris) as provider:
        yield provider


@pytest.fixture(scope="module")
def gw(
    tmp_path_factory: pytest.TempPathFactory, op: OidcProvider, upstream: UpstreamServer, port: int
) -> Iterator[GatewayProcess]:
    settings = oidc_settings(op)
    settings["verifiers"] |= oidc_settings(op, name="op-pkjwt", private_key_jwt=True)["verifiers"]
    settings["verifiers"] |= oidc_settings(
        op,
        name="op-userinfo",
        use_userinfo=True,
        age_claims={"age_verification.result": 18},
        proven_value="passed",
        refuted_value="failed",
    )["verifiers"]
    policy = OIDC_POLICY.replace("verifiers: [op]", "verifiers: [op, op-pkjwt, op-userinfo]")
    with GatewayProcess(
        tmp_path_factory.mktemp("gw"),
        upstream=upstream.url,
        policy=policy,
        settings=settings,
        port=port,
    ) as gateway:
        yield gateway


def _assert_session(gw: GatewayProcess, done: RawResponse, upstream: UpstreamServer) -> None:
    assert done.status == 303, done.text
    assert done.header("location") == PROTECTED
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    page = get(gw, PROTECTED, [(b"Cookie", f"__Host-agegate={cookie}".encode())])
    assert page.status == 200, page.text
    assert page.header("server") == "test-upstream"
    headers = {k.lower(): v for k, v in page.json()["headers"]}
    assert headers["x-agegate-age-over"] == "18"


def _assert_refused(response: RawResponse, status: int, reason: str) -> None:
    assert response.status == status, response.text
    assert response.json()["reason"] == reason
    assert session_cookie(response.header_list("set-cookie")) is None


def test_authorization_request_is_code_flow_with_pkce_and_minimal_scope(
    gw: GatewayProcess, op: OidcProvider
) -> None:
    visit = Visit(gw)
    assert visit.link.startswith(f"{op.issuer}/auth?")
    params = visit.params
    assert params["response_type"] == "code"
    assert params["client_id"] == "agegate"
    assert params["scope"] == "openid age"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["response_mode"] == "form_post"
    assert params["redirect_uri"] == f"{gw.public_origin}/.agegate/callback/op"
    assert params["state"] and params["nonce"] and params["nonce"] != params["state"]
    # Another visitor gets another state, nonce and PKCE challenge.
    other = Visit(gw).params
    for key in ("state", "nonce", "code_challenge"):
        assert other[key] != params[key]


def test_headless_flow_client_secret_basic(
    gw: GatewayProcess, op: OidcProvider, upstream: UpstreamServer
) -> None:
    visit = Visit(gw)
    answer = op.login(visit.link, "adult")
    assert set(answer.fields) == {"code", "state", "iss"}
    assert answer.fields["iss"] == op.issuer
    _assert_session(gw, visit.answer(answer), upstream)
    # The same answer again: the provider refuses a used code.
    _assert_refused(visit.answer(answer), 400, "code_rejected")


def test_headless_flow_private_key_jwt(
    gw: GatewayProcess, op: OidcProvider, upstream: UpstreamServer
) -> None:
    visit = Visit(gw, "op-pkjwt")
    assert visit.params["client_id"] == "agegate-pkjwt"
    _assert_session(gw, visit.answer(op.login(visit.link, "adult")), upstream)


@pytest.mark.parametrize(("account", "status"), [("adult", 303), ("minor", 403)])
def test_nested_claim_from_userinfo(
    gw: GatewayProcess, op: OidcProvider, upstream: UpstreamServer, account: str, status: int
) -> None:
    """``age_verification.result`` exists only in userinfo: reached with the access token."""
    visit = Visit(gw, "op-userinfo")
    done = visit.answer(op.login(visit.link, account))
    if status == 303:
        _assert_session(gw, done, upstream)
    else:
        assert done.status == 403, done.text
        assert session_cookie(done.header_list("set-cookie")) is None


def test_minor_is_refused_with_403(gw: GatewayProcess, op: OidcProvider) -> None:
    visit = Visit(gw)
    refused = visit.answer(op.login(visit.link, "minor"), accept=HTML[1])
    assert refused.status == 403, refused.text
    assert session_cookie(refused.header_list("set-cookie")) is None
    assert "text/html" in (refused.header("content-type") or "")


def test_missing_age_claim_is_refused(gw: GatewayProcess, op: OidcProvider) -> None:
    visit = Visit(gw)
    _assert_refused(visit.answer(op.login(visit.link, "noclaim")), 400, "no_age_claim")
    # The visitor is still unverified: the protected route still answers 401.
    assert get(gw, PROTECTED, [JSON]).status == 401


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"nonce": "a-nonce-of-another-authorization"}, "wrong_nonce"),
        ({"aud": "other-rp"}, "wrong_audience"),
        ({"aud": ["other-rp", "agegate"]}, "missing_claim"),  # two audiences and no azp
        ({"exp_offset": -120}, "expired"),
    ],
)
def test_bad_id_token_is_refused(
    gw: GatewayProcess, op: OidcProvider, change: dict[str, object], reason: str
) -> None:
    visit = Visit(gw)
    answer = op.login(visit.link, "adult")
    op.tamper(**change)
    _assert_refused(visit.answer(answer), 400, reason)


def test_code_from_another_challenge_is_refused_by_pkce(
    gw: GatewayProcess, op: OidcProvider
) -> None:
    """Code injection: an answer obtained for one challenge, posted with another's cookie."""
    victim, attacker = Visit(gw), Visit(gw)
    stolen = op.login(attacker.link, "adult")
    _assert_refused(victim.answer(stolen, state=victim.params["state"]), 400, "code_rejected")


def test_answer_naming_another_issuer_is_refused(gw: GatewayProcess, op: OidcProvider) -> None:
    visit = Visit(gw)
    answer = op.login(visit.link, "adult")
    _assert_refused(visit.answer(answer, iss="https://evil.example"), 400, "wrong_issuer")


def test_provider_down_gives_error_page_and_no_session(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    port = free_port()
    uris = [f"http://localhost:{port}/.agegate/callback/op"]
    with (
        OidcProvider(tmp_path / "op", redirect_uris=uris) as provider,
        GatewayProcess(
            tmp_path,
            upstream=upstream.url,
            policy=OIDC_POLICY,
            settings=oidc_settings(provider),
            port=port,
        ) as gateway,
    ):
        visit = Visit(gateway)
        answer = provider.login(visit.link, "adult")
        provider.stop()
        page = visit.answer(answer, accept=HTML[1])
        assert page.status == 400, page.text
        assert "text/html" in (page.header("content-type") or "")
        assert "provider_unavailable" in page.text
        assert session_cookie(page.header_list("set-cookie")) is None
        assert get(gateway, PROTECTED, [JSON]).status == 401


def test_provider_down_at_start_offers_no_button_until_it_is_back(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    port = free_port()
    provider = OidcProvider(
        tmp_path / "op", redirect_uris=[f"http://localhost:{port}/.agegate/callback/op"]
    )
    settings = oidc_settings(provider)
    with GatewayProcess(
        tmp_path, upstream=upstream.url, policy=OIDC_POLICY, settings=settings, port=port
    ) as gateway:
        page = get(gateway, f"/.agegate/verify?return={PROTECTED}", [HTML])
        assert page.status == 200
        assert "data-verifier='op'" not in page.text
        assert get(gateway, PROTECTED, [JSON]).status == 401
        with provider:
            # Discovery is retried in the background (at most every 10 s) from the verify page.
            deadline = time.monotonic() + 20
            while "data-verifier='op'" not in page.text:
                assert time.monotonic() < deadline, page.text
                time.sleep(0.5)
                page = get(gateway, f"/.agegate/verify?return={PROTECTED}", [HTML])
            visit = Visit(gateway)
            _assert_session(gateway, visit.answer(provider.login(visit.link, "adult")), upstream)
