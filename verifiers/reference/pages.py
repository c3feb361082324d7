"""HTML pages of the reference verifier: stdlib templates, escaped by default.

Every page carries the development banner (it is in the layout, so no page
can forget it), a strict Content-Security-Policy whose only allowance is the
inline stylesheet's nonce, and ``no-store``/``no-referrer`` so that the
nonce, state and token never land in a cache or a ``Referer``.
"""

from __future__ import annotations

import html
import secrets
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

__all__ = ["Pages", "Raw", "origin_of"]

_TEMPLATES = ("layout", "authorize", "form_post", "error", "index")


class Raw(str):
    """An HTML fragment built from escaped parts; inserted into a template as is."""

    __slots__ = ()


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL, for a CSP ``form-action`` source."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Pages:
    """The page templates, read once from the package and rendered per request."""

    def __init__(self) -> None:
        folder = resources.files("verifiers.reference") / "templates"
        self._templates = {
            name: Template((folder / f"{name}.html").read_text(encoding="utf-8"))
            for name in _TEMPLATES
        }

    def render(
        self,
        name: str,
        *,
        title: str,
        status_code: int = 200,
        form_action: tuple[str, ...] = (),
        **values: str | int,
    ) -> HTMLResponse:
        """Render ``name`` inside the layout; plain values are HTML-escaped, :class:`Raw` not."""
        escaped = {
            key: value if isinstance(value, Raw) else html.escape(str(value), quote=True)
            for key, value in values.items()
        }
        content = self._templates[name].substitute(escaped)
        csp_nonce = secrets.token_urlsafe(16)
        page = self._templates["layout"].substitute(
            title=html.escape(title), csp_nonce=csp_nonce, content=content
        )
        # form-action must also allow where a POST /authorize may 303 to
        # (response_mode=query): browsers apply it to redirects after a submit.
        actions = " ".join(("'self'", *form_action)) if form_action else "'none'"
        policy = (
            f"default-src 'none'; style-src 'nonce-{csp_nonce}'; form-action {actions}; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        return HTMLResponse(
            page,
            status_code=status_code,
            headers={
                "Content-Security-Policy": policy,
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "X-Frame-Options": "DENY",
            },
        )
