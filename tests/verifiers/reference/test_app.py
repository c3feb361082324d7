"""The reference verifier's HTTP behaviour, through httpx's ASGI transport (no sockets)."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest

from verifiers import sdk
from verifiers.reference import ReferenceConfig, build_reference_app
from verifiers.reference.app import ACCESS_LOGGER

ISSUER = "http://localhost:8081"
CLIENT = "http://localhost:8080"
CALLBACK = "http://localhost:8080/.agegate/callback/reference-token"
NOW = 1_780_000_000.0  # 2026-05-28 UTC
NONCE = "nonce-Zm9vYmFyYmF6cXV4"
STATE = "state-cXV4YmF6YmFyZm9v"
ADULT_DOB = "1990-06-15"
CHILD_DOB = "2014-02-03"


def _params(**overrides: str) -> dict[str, str]:
    params = {
        "client_id": CLIENT,
        "redirect_uri": CALLBACK,
        "response_mode": "form_post",
        "nonce": NONCE,
        "state": STATE,
        "min_age": "18",
    }
    params.update(overrides)
    return {key: value for key, value in params.items() if value != "<drop>"}


@pytest.fixture
def key() -> sdk.PrivateKey:
    return sdk.generate_signing_key("ES256")


@pytest.fixture
async def client(key: sdk.PrivateKey) -> AsyncIterator[httpx.AsyncClient]:
    config = ReferenceConfig(
        issuer=ISSUER, clients={CLIENT: (CALLBACK,)}, signing_key=key, clock=lambda: NOW
    )
    transport = httpx.ASGITransport(app=build_reference_app(config))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield http


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    assert match, f"no hidden field {name}"
    return html.unescape(match.group(1))


def _form_action(page: str) -> str:
    actions = re.findall(r'<form method="post" action="([^"]*)"', page)
    assert len(actions) == 1
    return html.unescape(actions[0])


async def _sealed(client: httpx.AsyncClient, **overrides: str) -> str:
    page = await client.get("/authorize", params=_params(**overrides))
    assert page.status_code == 200, page.text
    return _hidden(page.text, "request")


async def _submit(client: httpx.AsyncClient, dob: str, **overrides: str) -> httpx.Response:
    sealed = await _sealed(client, **overrides)
    return await client.post(
        "/authorize", data={"request": sealed, "birth_date": dob, "action": "continue"}
    )


def _decode(token: str, key: sdk.PrivateKey) -> dict[str, object]:
    # The app runs on a fixed clock in the past, so expiry is checked by value, not against now.
    return jwt.decode(
        token,
        key.public_key(),
        algorithms=["ES256"],
        audience=CLIENT,
        issuer=ISSUER,
        options={"verify_exp": False},
    )


async def test_authorize_page_is_accessible_and_labelled(client: httpx.AsyncClient) -> None:
    response = await client.get("/authorize", params=_params())
    assert response.status_code == 200
    page = response.text
    assert 'lang="en"' in page
    assert "NOT a real age check" in page
    assert '<label for="birth_date">Date of birth</label>' in page
    assert 'type="date" id="birth_date" name="birth_date"' in page
    assert 'aria-describedby="birth_date_hint"' in page
    assert "YYYY-MM-DD" in page  # the fallback for browsers that show a text box
    assert "<script" not in page  # works without JavaScript
    assert "http://" not in page.split("<main>")[0].replace(CLIENT, "")  # no external assets
    assert _form_action(page) == "/authorize"


async def test_pages_carry_a_strict_csp_and_no_referrer(client: httpx.AsyncClient) -> None:
    response = await client.get("/authorize", params=_params())
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # so scripts fall back to 'none'
    assert "frame-ancestors 'none'" in csp
    assert f"form-action 'self' {CLIENT}" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in response.text
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"redirect_uri": "https://evil.example/steal"}, "redirect_uri is not registered"),
        ({"redirect_uri": CALLBACK + "/extra"}, "redirect_uri is not registered"),
        ({"redirect_uri": "<drop>"}, "redirect_uri is not registered"),
        ({"client_id": "https://other.example"}, "not registered with this verifier"),
        ({"nonce": "<drop>"}, "no nonce"),
        ({"state": "<drop>"}, "no state"),
        ({"nonce": "has space"}, "nonce is not"),
        ({"min_age": "0"}, "min_age"),
        ({"min_age": "100"}, "min_age"),
        ({"min_age": "18.5"}, "min_age"),
        ({"min_age": "١٨"}, "min_age"),  # Arabic-Indic digits are not ASCII digits
        ({"response_mode": "fragment"}, "response_mode"),
    ],
)
async def test_bad_requests_are_refused_without_redirect(
    client: httpx.AsyncClient, overrides: dict[str, str], fragment: str
) -> None:
    response = await client.get("/authorize", params=_params(**overrides))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert fragment in html.unescape(response.text)
    assert "NOT a real age check" in response.text
    assert "<form" not in response.text


async def test_repeated_parameter_is_refused(client: httpx.AsyncClient) -> None:
    query = urlencode(_params()) + "&" + urlencode({"redirect_uri": "https://evil.example/"})
    response = await client.get("/authorize?" + query)
    assert response.status_code == 400
    assert "more than once" in response.text


async def test_adult_gets_form_post_with_profile_token(
    client: httpx.AsyncClient, key: sdk.PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    response = await _submit(client, ADULT_DOB)
    assert response.status_code == 200
    page = response.text
    assert _form_action(page) == CALLBACK
    assert _hidden(page, "state") == STATE
    assert "<script" not in page
    assert ">Continue</button>" in page
    assert f"form-action 'self' {CLIENT}" in response.headers["content-security-policy"]
    token = _hidden(page, "age_token")
    assert jwt.get_unverified_header(token) == {
        "alg": "ES256",
        "typ": "age-token+jwt",
        "kid": sdk.public_jwk(key)["kid"],
    }
    claims = _decode(token, key)
    jti = claims.pop("jti")
    assert isinstance(jti, str) and len(jti) == 22
    assert claims == {
        "iss": ISSUER,
        "aud": CLIENT,
        "iat": int(NOW),
        "exp": int(NOW) + 120,
        "nonce": NONCE,
        "age_over_13": True,
        "age_over_16": True,
        "age_over_18": True,
        "age_over_21": True,
        "assurance_level": "basic",
        "age_method": "self_declared",
    }
    # The date of birth appears nowhere: not in the page, the token, or any log line.
    for form in (ADULT_DOB, "1990", "06-15"):
        assert form not in page
        assert form not in caplog.text
    logged = [r.getMessage() for r in caplog.records if r.name == ACCESS_LOGGER]
    assert logged and all(NONCE not in line and STATE not in line for line in logged)
    assert any(line.startswith("GET /authorize 200") for line in logged)


async def test_child_gets_age_over_18_false(client: httpx.AsyncClient, key: sdk.PrivateKey) -> None:
    response = await _submit(client, CHILD_DOB)
    claims = _decode(_hidden(response.text, "age_token"), key)
    assert (claims["age_over_13"], claims["age_over_16"], claims["age_over_18"]) == (
        False,
        False,
        False,
    )
    assert CHILD_DOB not in response.text


async def test_birthday_today_counts_and_min_age_is_added(
    client: httpx.AsyncClient, key: sdk.PrivateKey
) -> None:
    # NOW is 2026-05-28: born 2001-05-28 is 25 today, born 2001-05-29 is still 24.
    on_day = _decode(
        _hidden((await _submit(client, "2001-05-28", min_age="25")).text, "age_token"), key
    )
    before = _decode(
        _hidden((await _submit(client, "2001-05-29", min_age="25")).text, "age_token"), key
    )
    assert on_day["age_over_25"] is True
    assert before["age_over_25"] is False
    assert before["age_over_21"] is True


async def test_query_mode_redirects_with_token_and_state(
    client: httpx.AsyncClient, key: sdk.PrivateKey
) -> None:
    response = await _submit(client, ADULT_DOB, response_mode="query")
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == [STATE]
    assert _decode(query["age_token"][0], key)["age_over_18"] is True


async def test_cancel_returns_access_denied(client: httpx.AsyncClient) -> None:
    sealed = await _sealed(client)
    response = await client.post("/authorize", data={"request": sealed, "action": "cancel"})
    assert response.status_code == 200
    assert _form_action(response.text) == CALLBACK
    assert _hidden(response.text, "error") == "access_denied"
    assert _hidden(response.text, "state") == STATE
    assert "age_token" not in response.text


async def test_cancel_in_query_mode(client: httpx.AsyncClient) -> None:
    sealed = await _sealed(client, response_mode="query")
    response = await client.post("/authorize", data={"request": sealed, "action": "cancel"})
    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["location"]).query) == {
        "error": ["access_denied"],
        "state": [STATE],
    }


async def test_tampered_hidden_fields_are_refused(client: httpx.AsyncClient) -> None:
    sealed = await _sealed(client)
    payload, mac = sealed.split(".")
    forged = payload.replace(payload[5], "A" if payload[5] != "A" else "B", 1) + "." + mac
    # A seal made for another redirect URI cannot be grafted on either.
    for value in (forged, payload + ".", "garbage", sealed + "x", ""):
        response = await client.post(
            "/authorize", data={"request": value, "birth_date": ADULT_DOB, "action": "continue"}
        )
        assert response.status_code == 400, value
        assert "age_token" not in response.text
        assert "location" not in response.headers


async def test_seal_from_another_instance_is_refused(client: httpx.AsyncClient) -> None:
    other = build_reference_app(ReferenceConfig(issuer=ISSUER, clients={CLIENT: (CALLBACK,)}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url=ISSUER) as http:
        foreign = _hidden((await http.get("/authorize", params=_params())).text, "request")
    response = await client.post(
        "/authorize", data={"request": foreign, "birth_date": ADULT_DOB, "action": "continue"}
    )
    assert response.status_code == 400


async def test_expired_form_is_refused(key: sdk.PrivateKey) -> None:
    clock = [NOW]
    config = ReferenceConfig(
        issuer=ISSUER, clients={CLIENT: (CALLBACK,)}, signing_key=key, clock=lambda: clock[0]
    )
    transport = httpx.ASGITransport(app=build_reference_app(config))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        sealed = _hidden((await http.get("/authorize", params=_params())).text, "request")
        clock[0] += 601
        response = await http.post(
            "/authorize", data={"request": sealed, "birth_date": ADULT_DOB, "action": "continue"}
        )
    assert response.status_code == 400
    assert "expired" in response.text


@pytest.mark.parametrize("dob", ["", "15/06/1990", "1990-02-30", "2030-01-01", "1850-01-01"])
async def test_bad_birth_date_shows_the_form_again(client: httpx.AsyncClient, dob: str) -> None:
    response = await _submit(client, dob)
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert 'aria-invalid="true"' in response.text
    assert "age_token" not in response.text
    if dob:
        assert dob not in response.text  # the typed value is not echoed
    assert _hidden(response.text, "request")  # a fresh seal to try again


async def test_jwks_publishes_the_signing_key(
    client: httpx.AsyncClient, key: sdk.PrivateKey
) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json() == {"keys": [sdk.public_jwk(key)]}
    assert "max-age" in response.headers["cache-control"]


async def test_index_page_is_labelled_development(
    client: httpx.AsyncClient, key: sdk.PrivateKey
) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "NOT a real age check" in response.text
    assert sdk.public_jwk(key)["kid"] in response.text
    assert html.escape(CALLBACK) in response.text


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError):
        ReferenceConfig(issuer="localhost:8081", clients={})
    with pytest.raises(ValueError):
        ReferenceConfig(issuer=ISSUER, clients={CLIENT: CALLBACK})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        ReferenceConfig(issuer=ISSUER, clients={CLIENT: ("/relative",)})
    with pytest.raises(ValueError):
        ReferenceConfig(issuer=ISSUER, clients={}, assurance_level="gold")
    with pytest.raises(ValueError):
        ReferenceConfig(issuer=ISSUER, clients={}, token_lifetime=301)


def test_public_names_import() -> None:
    import verifiers.reference
    from verifiers.reference import __main__, app, pages, params

    for module in (verifiers.reference, app, pages, params, __main__):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
