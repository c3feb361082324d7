"""The reference service's simulated EU wallet pages (/wallet): only registered sites."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.browser.openid4vp import request_uri
from verifiers.reference.app import ReferenceConfig, build_reference_app
from verifiers.reference.mdoc import MdocTestIssuer

SITE = "http://localhost:8080"
CALLBACK = f"{SITE}/.agegate/callback/eu-wallet"
QUERY = {
    "id": "age",
    "format": "dc+sd-jwt",
    "claims": [{"path": ["age_equal_or_over", "18"]}],
}


AV = "eu.europa.ec.av.1"
MDOC_QUERY = {
    "credentials": [
        {
            "id": "age",
            "format": "mso_mdoc",
            "meta": {"doctype_value": AV},
            "claims": [{"path": [AV, "age_over_18"], "intent_to_retain": False}],
        }
    ]
}


def client(*, wallet: bool = True, mdoc: bool = False) -> httpx.AsyncClient:
    config = ReferenceConfig(
        issuer="http://localhost:8081",
        clients={SITE: (CALLBACK,)},
        wallet_ca_key=ec.generate_private_key(ec.SECP256R1()) if wallet else None,
        wallet_mdoc_issuer=MdocTestIssuer.generate() if mdoc else None,
    )
    transport = httpx.ASGITransport(app=build_reference_app(config))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost:8081")


async def test_wallet_page_for_a_registered_site() -> None:
    uri = request_uri(CALLBACK, "n" * 32, "state", {"credentials": [QUERY]})
    async with client() as http:
        page = await http.get("/wallet?" + uri.partition("?")[2])
    assert page.status_code == 200
    assert "Simulated EU wallet" in page.text
    assert "age_equal_or_over.18" in page.text
    assert SITE in page.headers["content-security-policy"]  # the 303 after the POST


async def test_wallet_refuses_to_post_to_an_unregistered_site() -> None:
    uri = request_uri("http://127.0.0.1:6379/x", "n" * 32, "state", {"credentials": [QUERY]})
    async with client() as http:
        page = await http.get("/wallet?" + uri.partition("?")[2])
    assert page.status_code == 400
    form = {"request": uri, "action": "share", "birth_date": "1990-01-01"}
    async with client() as http:
        assert (await http.post("/wallet", data=form)).status_code == 400


async def test_wallet_refuses_a_request_for_something_else() -> None:
    other = {**QUERY, "claims": [{"path": ["family_name"]}]}
    uri = request_uri(CALLBACK, "n" * 32, "state", {"credentials": [other]})
    async with client() as http:
        assert (await http.get("/wallet?" + uri.partition("?")[2])).status_code == 400


async def test_wallet_pages_are_absent_without_a_ca_key() -> None:
    async with client(wallet=False) as http:
        assert (await http.get("/wallet")).status_code == 404


async def test_wallet_page_for_an_eu_av_mdoc_request() -> None:
    uri = request_uri(CALLBACK, "n" * 32, "state", MDOC_QUERY)
    async with client(wallet=False, mdoc=True) as http:
        page = await http.get("/wallet?" + uri.partition("?")[2])
    assert page.status_code == 200
    assert f"{AV}.age_over_18" in page.text


async def test_wallet_without_an_mdoc_issuer_refuses_an_mdoc_request() -> None:
    uri = request_uri(CALLBACK, "n" * 32, "state", MDOC_QUERY)
    async with client() as http:
        assert (await http.get("/wallet?" + uri.partition("?")[2])).status_code == 400


async def test_wallet_refuses_an_mdoc_request_for_another_doctype() -> None:
    [query] = MDOC_QUERY["credentials"]
    mdl = {**query, "meta": {"doctype_value": "org.iso.18013.5.1.mDL"}}
    uri = request_uri(CALLBACK, "n" * 32, "state", {"credentials": [mdl]})
    async with client(mdoc=True) as http:
        assert (await http.get("/wallet?" + uri.partition("?")[2])).status_code == 400
