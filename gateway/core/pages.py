"""The gateway's own HTML pages: challenge, refusal and callback errors.

No JavaScript, no external assets, one inline stylesheet (allowed by the CSP
of :data:`gateway.core.problem.SECURITY_HEADERS`), real buttons and labels, and
text at a contrast ratio above 7:1.  Every value shown is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["VerifierButton", "challenge_page", "error_page", "page", "refusal_page"]

_STYLE = """
:root{color-scheme:light}
body{font:1.125rem/1.55 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
 color:#111;background:#f6f6f4}
main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:.75rem;
 box-shadow:0 1px 4px #0002}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 1rem}
p{margin:.75rem 0}
.learn{font-weight:600}
ul.verifiers{list-style:none;padding:0;margin:1.5rem 0}
ul.verifiers li{margin:.75rem 0}
a.button,button{display:block;width:100%;box-sizing:border-box;padding:.85rem 1rem;
 font:inherit;font-weight:600;text-align:center;text-decoration:none;color:#fff;
 background:#0b4f8a;border:2px solid #0b4f8a;border-radius:.5rem;cursor:pointer}
a.button:hover,button:hover{background:#083b67}
a:focus-visible,button:focus-visible{outline:3px solid #b34700;outline-offset:3px}
.secondary{background:#fff;color:#0b4f8a}
small,.note{color:#333;font-size:.95rem}
code{background:#eee;padding:0 .25em;border-radius:.2em}
"""


@dataclass(frozen=True, slots=True)
class VerifierButton:
    """One way to prove age on the challenge page."""

    name: str
    label: str
    url: str


def page(title: str, body: str) -> bytes:
    """A complete HTML document around ``body`` (which must already be escaped)."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    ).encode()


def challenge_page(min_age: int, buttons: Sequence[VerifierButton], return_path: str) -> bytes:
    """The page a visitor sees on a protected route: what the site learns, and how to prove it."""
    items = "".join(
        f"<li><a class=button href='{escape(b.url)}' data-verifier='{escape(b.name)}'>"
        f"{escape(b.label)}</a></li>"
        for b in buttons
    )
    if not items:
        items = (
            "<li class=note>No way to prove age is configured for this page. "
            "Please tell the site's operator.</li>"
        )
    body = (
        f"<h1>Please confirm you are {min_age} or over</h1>"
        f"<p class=learn>This site will learn only that you are over {min_age}: "
        "not your name, your date of birth or any other detail about you.</p>"
        "<p>Choose how you want to prove it:</p>"
        f"<ul class=verifiers aria-label='Ways to prove your age'>{items}</ul>"
        f"<p><a href='/' class=secondary>Not now, take me to the home page</a></p>"
        f"<p class=note><small>You will come back to <code>{escape(return_path)}</code> "
        "afterwards. The proof is kept in a cookie that says only which age you proved; "
        "it expires by itself.</small></p>"
    )
    return page(f"Confirm you are {min_age} or over", body)


def refusal_page(min_age: int) -> bytes:
    """Shown to a visitor proven under the route's age."""
    body = (
        "<h1>Sorry, this part of the site is not available to you</h1>"
        f"<p>The check showed that you are under {min_age}, the age this page requires.</p>"
        "<p>Nothing about you has been stored.</p>"
        "<p><a class=button href='/'>Go to the home page</a></p>"
    )
    return page("Not available", body)


def error_page(title: str, detail: str, reason: str, retry_url: str | None) -> bytes:
    """A failed callback or other gateway error, with a way back."""
    retry = f"<p><a class=button href='{escape(retry_url)}'>Try again</a></p>" if retry_url else ""
    body = (
        f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>{retry}"
        f"<p class=note><small>Reason code: <code>{escape(reason)}</code></small></p>"
        "<p><a href='/'>Go to the home page</a></p>"
    )
    return page(title, body)
