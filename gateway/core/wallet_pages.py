"""The wallet parts of the gateway's pages: the OpenID4VP link, its QR code, the waiting page.

Same device: the ``openid4vp://`` link opens the wallet app, which answers
and then sends the browser to the completion URL.  Another device: the
visitor scans the QR code (an inline SVG ``data:`` image, allowed by the
CSP's ``img-src data:``) and this browser waits on a page that reloads
itself every few seconds (``<meta http-equiv=refresh>``; the CSP allows no
script) until the answer has arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import segno

from gateway.core.pages import page

__all__ = ["POLL_SECONDS", "WalletOffer", "qr_data_uri", "wallet_item", "wallet_wait_page"]

POLL_SECONDS = 4


@dataclass(frozen=True, slots=True)
class WalletOffer:
    """One wallet verifier offered on the challenge page."""

    name: str
    label: str
    request_uri: str  # openid4vp://?…
    wait_url: str  # the page that waits for the wallet's answer (cross-device)
    web_url: str | None = None  # the same request to a web wallet, when the verifier has one


def qr_data_uri(text: str) -> str:
    """An SVG QR code of ``text`` as a ``data:`` URI (error correction L: the URI is long)."""
    return str(segno.make(text, error="l", micro=False).svg_data_uri(scale=3, border=2))


def wallet_item(offer: WalletOffer) -> str:
    """The ``<li>`` for one wallet verifier: app link, web wallet, QR code, waiting link."""
    web = (
        f"<p><a class='button secondary' href='{escape(offer.web_url)}' data-web-wallet>"
        f"{escape(offer.label)}: use the web wallet</a></p>"
        if offer.web_url
        else ""
    )
    return (
        f"<li data-verifier='{escape(offer.name)}'>"
        f"<a class=button href='{escape(offer.request_uri)}' rel=noopener "
        f"data-openid4vp>{escape(offer.label)}: open my wallet app</a>{web}"
        f"<p class=note><small>Wallet on another device? Scan this code with it, then "
        f"<a href='{escape(offer.wait_url)}'>continue here</a>.</small></p>"
        f"<img src='{qr_data_uri(offer.request_uri)}' alt='QR code for your wallet app' "
        "width=320 style='width:20rem;max-width:100%;height:auto;image-rendering:pixelated'></li>"
    )


def wallet_wait_page(offer: WalletOffer, min_age: int) -> bytes:
    """Shown while the wallet on another device answers; reloads itself."""
    body = (
        "<h1>Waiting for your wallet</h1>"
        f"<p role=status>Scan the code with your wallet app and share that you are "
        f"{min_age} or over. This page moves on by itself once it has answered.</p>"
        f"<p><img src='{qr_data_uri(offer.request_uri)}' alt='QR code for your wallet app' "
        "width=320 style='width:20rem;max-width:100%;height:auto;image-rendering:pixelated'></p>"
        f"<p><a class='button secondary' href='{escape(offer.request_uri)}'>"
        "Open my wallet app on this device</a></p>"
        "<p class=note><small>Only the yes-or-no answer is shared.</small></p>"
    )
    return page("Waiting for your wallet", body, refresh=POLL_SECONDS)
