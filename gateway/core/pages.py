"""The gateway's own HTML pages: challenge, refusal, status and callback errors.

No JavaScript, no external assets, one inline stylesheet and an inline SVG
favicon (both allowed by the CSP of :data:`gateway.core.problem.SECURITY_HEADERS`;
without an icon of its own a page makes the browser ask the site behind the gate
for ``/favicon.ico``), real buttons and labels, and text at a contrast ratio
above 7:1.  Every value shown is escaped.

What the pages say about privacy must stay true: the verifier may answer
"over N?" for several ages at once, and the session cookie keeps every answer
it gave (``age_over`` and ``age_under``); each protected page is told only
whether its own age is met.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "FAVICON",
    "SessionFacts",
    "VerifierButton",
    "challenge_page",
    "error_page",
    "page",
    "refusal_page",
    "status_page",
]

# A shield in the button colour, as an inline data: URL (CSP ``img-src data:``).
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Cpath fill='%230b4f8a' d='M8 0 1 3v5c0 4 3 7 7 8 4-1 7-4 7-8V3z'/%3E%3C/svg%3E"
)
_STATUS_PATH = "/.agegate/status"
_LOGOUT_PATH = "/.agegate/logout"

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
.notice{border-left:4px solid #b34700;padding:.25rem .75rem;background:#fff4ec}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
"""


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a session cookie holds, as the status page shows it (no identifiers)."""

    age_over: tuple[int, ...]
    age_under: tuple[int, ...]
    assurance: str
    expires_at: str  # RFC 3339, UTC


@dataclass(frozen=True, slots=True)
class VerifierButton:
    """One way to prove age on the challenge page."""

    name: str
    label: str
    url: str


def page(title: str, body: str, *, refresh: int | None = None) -> bytes:
    """A complete HTML document around ``body`` (which must already be escaped).

    ``refresh`` reloads the page after that many seconds (``<meta http-equiv=refresh>``:
    polling without script, which the CSP does not allow).
    """
    reload = f"<meta http-equiv=refresh content={int(refresh)}>" if refresh else ""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>{reload}"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f'<title>{escape(title)}</title><link rel=icon href="{FAVICON}">'
        f"<style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    ).encode()


def challenge_page(
    min_age: int,
    buttons: Sequence[VerifierButton],
    return_path: str,
    *,
    expired: bool = False,
    wallets: Sequence[str] = (),
) -> bytes:
    """The page a visitor sees on a protected route: what the site learns, and how to prove it.

    ``wallets`` are ready ``<li>`` items for wallet verifiers
    (:func:`gateway.core.wallet_pages.wallet_item`).
    """
    items = "".join(
        f"<li><a class=button href='{escape(b.url)}' data-verifier='{escape(b.name)}'>"
        f"{escape(b.label)}</a></li>"
        for b in buttons
    ) + "".join(wallets)
    if not items:
        items = (
            "<li class=note>No way to prove age is configured for this page. "
            "Please tell the site's operator.</li>"
        )
    notice = (
        "<p class=notice role=status>Your earlier proof of age has expired. "
        "Please verify again.</p>"
        if expired
        else ""
    )
    body = (
        f"<h1>Please confirm you are {min_age} or over</h1>{notice}"
        f"<p class=learn>This site will learn only whether you are over {min_age} "
        "(and over any other ages your age check answers at the same time): "
        "not your name, your date of birth or any other detail about you.</p>"
        "<p>Choose how you want to prove it:</p>"
        f"<ul class=verifiers aria-label='Ways to prove your age'>{items}</ul>"
        f"<p><a href='/' class=secondary>Not now, take me to the home page</a></p>"
        f"<p class=note><small>You will come back to <code>{escape(return_path)}</code> "
        "afterwards. The yes-or-no answers are kept in an encrypted cookie in this "
        "browser, so that pages needing the same age do not ask again; it expires by "
        f"itself. <a href='{_STATUS_PATH}'>See what is remembered</a>.</small></p>"
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


def _sentence(detail: str) -> str:
    """A problem ``detail`` (lower-case, as in problem+json) written as a sentence."""
    text = detail[:1].upper() + detail[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def error_page(title: str, detail: str, reason: str, retry_url: str | None) -> bytes:
    """A failed callback or other gateway error, with a way back."""
    retry = f"<p><a class=button href='{escape(retry_url)}'>Try again</a></p>" if retry_url else ""
    body = (
        f"<h1>{escape(title)}</h1><p>{escape(_sentence(detail))}</p>{retry}"
        f"<p class=note><small>Reason code: <code>{escape(reason)}</code></small></p>"
        "<p><a href='/'>Go to the home page</a></p>"
    )
    return page(title, body)


def _ages(ages: Sequence[int], template: str) -> str:
    return ", ".join(template.format(n) for n in ages)


def status_page(facts: SessionFacts | None, *, logged_out: bool = False) -> bytes:
    """``/.agegate/status`` for a browser: what this browser's cookie remembers."""
    if facts is None:
        heading = "You are logged out" if logged_out else "No proof of age is remembered"
        first = (
            "Your proof of age has been removed from this browser."
            if logged_out
            else "This browser holds no proof of age for this site."
        )
        body = (
            f"<h1>{heading}</h1><p role=status>{first}</p>"
            "<p>Pages that need an age will ask you to prove it again.</p>"
            "<p><a class=button href='/'>Go to the home page</a></p>"
        )
        return page(heading, body)
    rows = [("Remembered", _ages(facts.age_over, "{} or over") or "none")]
    if facts.age_under:
        rows.append(("Also remembered", _ages(facts.age_under, "under {}")))
    rows += [("Assurance", facts.assurance), ("Expires", facts.expires_at)]
    facts_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    body = (
        "<h1>Your proof of age is remembered</h1>"
        "<p>An encrypted cookie in this browser keeps only these answers from your "
        "age check (no name, no date of birth):</p>"
        f"<dl class=facts>{facts_html}</dl>"
        "<p>Each page of the site is told only whether you meet its own age.</p>"
        f"<form method=post action='{_LOGOUT_PATH}'>"
        "<button type=submit>Forget my proof of age (log out)</button></form>"
        "<p><a href='/'>Go to the home page</a></p>"
    )
    return page("Your proof of age", body)
