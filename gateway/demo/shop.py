"""The demo shop: the upstream site that ``agegate demo`` puts behind the gateway.

It knows nothing about age checks.  Its wine pages simply print the
``X-Agegate-*`` headers the gateway added, to show that the upstream learns
the threshold the route required and the assurance level, never a date of
birth, a token or who the visitor is.  Run alone with
``python -m uvicorn --factory gateway.demo.shop:build_shop_app``.
"""

from __future__ import annotations

from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

__all__ = ["WINES", "build_shop_app"]

WINES: dict[str, tuple[str, ...]] = {
    "red": ("Côtes du Rhône 2021", "Rioja Crianza 2019", "Barbera d'Asti 2022"),
    "white": ("Grüner Veltliner 2023", "Sancerre 2022", "Albariño 2023"),
}
AGE_HEADERS = ("x-agegate-age-over", "x-agegate-assurance")

_STYLE = """\
:root { color-scheme: light; }
body { margin: 0; font: 1.0625rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d1d1d; background: #fbf8f3; }
header { background: #5b0e2d; color: #ffffff; padding: 1rem; }
header a { color: #ffffff; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 1rem;
         margin: 0.5rem 0 0; padding: 0; }
main { max-width: 42rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
a { color: #5b0e2d; }
:focus-visible { outline: 3px solid #0b57d0; outline-offset: 2px; }
.note { border-left: 4px solid #5b0e2d; background: #ffffff; padding: 0.5rem 1rem; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.25rem 1rem 0.25rem 0; border-bottom: 1px solid #c9c2b8; }
button { font: inherit; padding: 0.4rem 1rem; border: 2px solid #5b0e2d; background: #ffffff;
         color: #5b0e2d; border-radius: 4px; cursor: pointer; }
"""
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    document = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Demo Wine Shop</title>
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header>
<a href="/"><strong>Demo Wine Shop</strong></a> (an agegate demo upstream)
<nav aria-label="Main"><ul>
<li><a href="/wine/">Wine</a></li>
<li><a href="/wine/red">Red</a></li>
<li><a href="/wine/white">White</a></li>
<li><a href="/api/wine">/api/wine (JSON)</a></li>
<li><a href="/.agegate/status">Age-check status</a></li>
</ul></nav>
</header>
<main>
{body}
</main>
</body>
</html>
"""
    return HTMLResponse(document, status_code=status_code, headers=_SECURITY_HEADERS)


def _age_headers_table(request: Request) -> str:
    rows = "\n".join(
        f"<tr><th scope='row'><code>{name.title()}</code></th>"
        f"<td>{escape(request.headers.get(name, '(not sent)'))}</td></tr>"
        for name in AGE_HEADERS
    )
    return f"""<h2>What the gateway told this shop</h2>
<table>
<caption>Headers added by agegate to this request</caption>
{rows}
</table>
<p class="note">That is all the shop learns: the age threshold this route needs and how strongly
it was checked. No date of birth, no token, no name.</p>"""


_LOGOUT_FORM = """<form method="post" action="/.agegate/logout">
<button type="submit">Forget my age check (log out)</button>
</form>"""


async def home(request: Request) -> Response:
    """Public page: no age check."""
    return _page(
        "Home",
        """<h1>Welcome to the Demo Wine Shop</h1>
<p>This home page is public. The <a href="/wine/">wine pages</a> are only for visitors aged 18
or over: agegate, in front of this shop, asks for an age check before it lets you in.</p>
<ul>
<li><a href="/wine/red">Red wines</a> and <a href="/wine/white">white wines</a>
(age-restricted)</li>
<li><a href="/api/wine">/api/wine</a>: the same list as JSON, for API clients (age-restricted)</li>
<li><a href="/.agegate/status">/.agegate/status</a>: what your age-check session proves</li>
</ul>
"""
        + _LOGOUT_FORM,
    )


async def wine_index(request: Request) -> Response:
    """The age-restricted catalogue."""
    return _page(
        "Wine",
        """<h1>Our wines</h1>
<ul><li><a href="/wine/red">Red</a></li><li><a href="/wine/white">White</a></li></ul>
"""
        + _age_headers_table(request)
        + _LOGOUT_FORM,
    )


async def wine_colour(request: Request) -> Response:
    """One age-restricted list of wines."""
    colour = request.path_params["colour"]
    if colour not in WINES:
        return _page("Not found", "<h1>No such wine</h1>", status_code=404)
    items = "\n".join(f"<li>{escape(name)}</li>" for name in WINES[colour])
    return _page(
        f"{colour.title()} wine",
        f"<h1>{colour.title()} wine</h1>\n<ul>\n{items}\n</ul>\n"
        + _age_headers_table(request)
        + _LOGOUT_FORM,
    )


async def api_wine(request: Request) -> Response:
    """The catalogue as JSON, with the age facts the gateway passed."""
    return JSONResponse(
        {
            "wines": {colour: list(names) for colour, names in WINES.items()},
            "age_over": request.headers.get("x-agegate-age-over"),
            "assurance": request.headers.get("x-agegate-assurance"),
        }
    )


async def style(request: Request) -> Response:
    """The one stylesheet (same origin, so the strict CSP allows it)."""
    return Response(
        _STYLE, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"}
    )


def build_shop_app() -> Starlette:
    """The demo shop as an ASGI app."""
    return Starlette(
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/wine", wine_index, methods=["GET"]),
            Route("/wine/", wine_index, methods=["GET"]),
            Route("/wine/{colour:str}", wine_colour, methods=["GET"]),
            Route("/api/wine", api_wine, methods=["GET"]),
            Route("/static/style.css", style, methods=["GET"]),
        ]
    )
