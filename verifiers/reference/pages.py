"""HTML pages of the reference verifier: stdlib templates, escaped by default.

Every page carries the development banner (it is in the layout, so no page
can forget it), a strict Content-Security-Policy whose only allowance is the
inline stylesheet's nonce, and ``no-store``/``no-referrer`` so that the
nonce, state and token never land in a cache or a ``Referer``.
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Sequence
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

__all__ = ["Pages", "Raw", "ages_phrase", "origin_of", "post_back_intro"]

_TEMPLATES = ("layout", "authorize", "form_post", "error", "index", "wallet")


class Raw(str):
    """An HTML fragment built from escaped parts; inserted into a template as is."""

    __slots__ = ()


def ages_phrase(thresholds: Sequence[int]) -> str:
    """``the age 18`` or ``the ages 13, 16, 18 and 21``, for the authorize page."""
    ages = [str(n) for n in thresholds]
    if len(ages) == 1:
        return f"the age {ages[0]}"
    return f"the ages {', '.join(ages[:-1])} and {ages[-1]}"


def post_back_intro(client: str, outcome: str) -> Raw:
    """The first sentence of the return page: ``token``, ``no_token`` or ``cancelled``.

    The page must not say "the check is done" after a Cancel, nor promise a token
    that is not sent.
    """
    who = f"<strong>{html.escape(client)}</strong>"
    if outcome == "cancelled":
        return Raw(
            f"You cancelled the age check, so no age was checked and no token is sent. "
            f"{who} is told only that you cancelled:"
        )
    if outcome == "no_token":
        return Raw(f"The age check is done. {who} receives no token, only this answer:")
    return Raw(f"The age check is done. {who} will receive a signed token that says only:")


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

    def refused(self, message: str) -> HTMLResponse:
        """The 400 page for a request this service will not handle, saying why."""
        return self.render(
            "error",
            title="Request refused",
            status_code=400,
            heading="This request cannot be handled",
            message=message,
        )

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
