"""The demo shop: public home, age-restricted pages that show only the gateway's age facts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.demo import shop
from gateway.demo.shop import WINES, build_shop_app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_shop_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:9000") as http:
        yield http


async def test_home_links_to_wine_api_status_and_logout(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    page = response.text
    assert '<html lang="en">' in page
    for href in ('href="/wine/"', 'href="/api/wine"', 'href="/.agegate/status"'):
        assert href in page
    assert '<form method="post" action="/.agegate/logout">' in page
    assert '<link rel="stylesheet" href="/static/style.css">' in page
    assert "default-src 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/wine", "/wine/", "/wine/red", "/wine/white"])
async def test_wine_pages_show_the_age_headers_passed(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(
        path, headers={"X-Agegate-Age-Over": "18", "X-Agegate-Assurance": "standard"}
    )
    assert response.status_code == 200
    assert "<code>X-Agegate-Age-Over</code></th><td>18</td>" in response.text
    assert "<code>X-Agegate-Assurance</code></th><td>standard</td>" in response.text


async def test_wine_page_lists_the_wines(client: httpx.AsyncClient) -> None:
    page = (await client.get("/wine/white")).text
    for name in WINES["white"]:
        assert name in page
    assert WINES["red"][0] not in page


async def test_missing_headers_are_shown_as_not_sent(client: httpx.AsyncClient) -> None:
    page = (await client.get("/wine/red")).text
    assert "<td>(not sent)</td>" in page


async def test_header_values_are_escaped(client: httpx.AsyncClient) -> None:
    page = (
        await client.get("/wine/red", headers={"X-Agegate-Age-Over": "<script>x</script>"})
    ).text
    assert "<script>x" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


async def test_unknown_colour_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/wine/rose")).status_code == 404


async def test_api_returns_json_with_age_facts(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/wine", headers={"X-Agegate-Age-Over": "18"})
    assert response.status_code == 200
    assert response.json() == {
        "wines": {colour: list(names) for colour, names in WINES.items()},
        "age_over": "18",
        "assurance": None,
    }


async def test_stylesheet(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/style.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "body {" in response.text


def test_public_names_import() -> None:
    for name in shop.__all__:
        assert hasattr(shop, name)
