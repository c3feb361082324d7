"""Small, bounded HTML form bodies for the verification callback.

The callback is reachable by anyone, before any proof, so what it reads is
bounded before it is read: only ``application/x-www-form-urlencoded`` (a
multipart parser spools file parts to disk), a declared ``Content-Length``
over :data:`MAX_FORM_BYTES` is refused from the head alone, and a body is
pulled from the ASGI ``receive`` with a running count that stops the moment
it passes the limit — the rest is never read.  The bytes are then parsed here
(not by Starlette's ``request.form()``, which reads everything first).

Why 64 KiB: an ``age_token`` JWS with ``state`` is 1 to 4 KiB, 16 KiB with an
``x5c`` chain in its header; an OpenID4VP ``vp_token`` (SD-JWT VC with a few
disclosures and a KB-JWT, or a base64url mdoc ``DeviceResponse`` whose
``issuerAuth`` carries an x5chain) is 5 to 30 KiB.  64 KiB holds any of them
with margin and is also the server's read-ahead window, so a whole callback
body never waits on back-pressure.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from gateway.core.headers import header_values
from gateway.errors import BadRequest
from gateway.types import Receive

__all__ = [
    "FORM_MEDIA_TYPE",
    "MAX_FORM_BYTES",
    "MAX_FORM_FIELDS",
    "FormRefused",
    "check_form_head",
    "declares_body",
    "parse_form",
    "read_form_body",
]

FORM_MEDIA_TYPE = b"application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024
# state, age_token / vp_token, error, error_description, iss, presentation_submission, ...
MAX_FORM_FIELDS = 32

Headers = Sequence[tuple[bytes, bytes]]


class FormRefused(BadRequest):
    """A callback form refused: ``413`` too large, ``415`` not a form, ``400`` malformed."""


def _too_large() -> FormRefused:
    return FormRefused(
        "body_too_large", f"the form is larger than {MAX_FORM_BYTES} bytes", status=413
    )


def declares_body(headers: Headers) -> bool:
    """True when the request head announces body bytes (a length above 0, or chunked)."""
    if header_values(headers, b"transfer-encoding"):
        return True
    return any(
        value.strip() not in (b"", b"0") for value in header_values(headers, b"content-length")
    )


def check_form_head(headers: Headers) -> None:
    """Refuse, from the head alone, a body that is not a small urlencoded form."""
    types = header_values(headers, b"content-type")
    media_type = types[0].split(b";", 1)[0].strip().lower() if len(types) == 1 else b""
    if media_type != FORM_MEDIA_TYPE:
        raise FormRefused(
            "unsupported_media_type",
            "the callback takes only application/x-www-form-urlencoded",
            status=415,
        )
    for value in header_values(headers, b"content-length"):
        digits = value.strip()
        if not digits.isdigit():
            raise FormRefused("malformed_form", "the Content-Length is not a number")
        if len(digits) > 9 or int(digits) > MAX_FORM_BYTES:
            raise _too_large()


async def read_form_body(receive: Receive) -> bytes:
    """The request body, read only while it stays within :data:`MAX_FORM_BYTES`."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client left
            raise FormRefused("client_gone", "the client closed the connection")
        chunk = message.get("body", b"")
        if len(body) + len(chunk) > MAX_FORM_BYTES:
            raise _too_large()
        body += chunk
        if not message.get("more_body", False):
            return bytes(body)


def parse_form(data: bytes) -> dict[str, str]:
    """Fields of an urlencoded form (or a query string); FormRefused when malformed.

    Strict: ASCII only (a browser percent-encodes everything else), every field
    ``name=value``, escapes valid UTF-8, at most :data:`MAX_FORM_FIELDS` fields,
    and no name twice — a repeated ``state`` or ``age_token`` would leave which
    copy counts to whoever reads it.
    """
    if len(data) > MAX_FORM_BYTES:
        raise _too_large()
    try:
        text = data.decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except ValueError as exc:  # UnicodeDecodeError included
        raise FormRefused("malformed_form", "the form is malformed") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise FormRefused("malformed_form", "a form field is repeated")
        fields[name] = value
    return fields
