"""Cookie headers: lenient parsing, stripping our cookies, and building ``Set-Cookie``.

Parsing follows the server side of RFC 6265 §5.4 / §4.2 leniently: a ``Cookie``
header is a ``;``-separated list of ``name=value`` pairs, whitespace around
pairs is ignored, a value wrapped in double quotes is unwrapped, and a pair
without ``=`` or with an empty name is skipped.  Parsing never raises: cookies
are attacker-controlled input and an odd one must not turn into a 500.

Stripping (:func:`strip_cookies`, what the proxy and forward-auth send the
site) compares names more widely than reading (:func:`get_cookie`) does, so
anything the gateway would read as its session cookie is also removed before
the request goes upstream.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

__all__ = [
    "clear_cookie",
    "get_cookie",
    "parse_cookie_header",
    "set_cookie",
    "strip_cookies",
]

_SAME_SITE = {"strict": "Strict", "lax": "Lax", "none": "None"}
# RFC 6265 §4.1.1 cookie-octet: visible ASCII except DQUOTE, comma, semicolon, backslash.
_COOKIE_OCTETS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('",;\\')
# What str.strip() trims from a latin-1 string: ASCII whitespace, the C0
# separators, NEL and NBSP.
_ANY_WHITESPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0"
_DQUOTE = ord('"')
# RFC 9110 token characters, the only ones allowed in a cookie name we emit.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _as_text(value: bytes | str) -> str:
    # latin-1 maps every byte to one code point, so decoding cannot fail and the
    # original bytes are recoverable (headers are bytes in ASGI).
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _split_pair(pair: str) -> tuple[str, str] | None:
    """``(name, value)`` of one ``name=value`` item, or None when it has no usable name."""
    name, sep, value = pair.partition("=")
    name = name.strip(" \t")
    if not sep or not name:
        return None
    value = value.strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return name, value


def parse_cookie_header(value: bytes | str) -> dict[str, str]:
    """All cookies in one ``Cookie`` header value, as ``{name: value}``.

    When a name occurs twice, the *first* occurrence wins.  Browsers send
    cookies with longer (more specific) paths first (RFC 6265 §5.4 step 2), and
    Go's ``net/http`` and Werkzeug also return the first; taking the last would
    let a cookie set for a narrower path or by a sibling host shadow ours in
    some components and not in others.  Never raises.
    """
    cookies: dict[str, str] = {}
    for item in _as_text(value).split(";"):
        pair = _split_pair(item)
        if pair is not None and pair[0] not in cookies:
            cookies[pair[0]] = pair[1]
    return cookies


def get_cookie(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of cookie ``name`` over all ``Cookie`` headers of an ASGI header list.

    HTTP/2 and HTTP/3 clients may split cookies over several ``Cookie``
    header fields (RFC 9113 §8.2.3); they are read in order, first one wins.
    Reads as :func:`parse_cookie_header` would, without building the dict;
    nothing is cached, so no visitor's cookies outlive the request.
    """
    wanted = _NAMES.get(name)
    if wanted is None:
        wanted = name.encode("latin-1")
        if len(_NAMES) < 64:  # the gateway reads a handful of names
            _NAMES[name] = wanted
    if not wanted:
        return None
    for header_name, header_value in headers:
        # ASGI names are lower-case already; only a six-byte name can be "Cookie".
        if header_name != b"cookie" and (len(header_name) != 6 or header_name.lower() != b"cookie"):
            continue
        # Only an item holding the name can be it: each such item, in order, is read
        # as a split on ";" would read it (the others cannot match, so are skipped).
        at = header_value.find(wanted)
        if at >= 0 and (at == 0 or header_value[at - 2 : at] == b"; "):
            # The usual layout: the name begins an item ("name=..." first, or after
            # "; "); if "=" follows it directly, the key is exactly the name.
            after = at + len(wanted)
            if header_value[after : after + 1] == b"=":
                end = header_value.find(b";", after)
                value = header_value[after + 1 : end if end >= 0 else None].strip(b" \t")
                if len(value) >= 2 and value[0] == value[-1] == _DQUOTE:
                    value = value[1:-1]
                return value.decode("latin-1")
        while at >= 0:
            start = header_value.rfind(b";", 0, at) + 1
            end = header_value.find(b";", at)
            if end < 0:
                end = len(header_value)
            key, sep, value = header_value[start:end].partition(b"=")
            if sep and key.strip(b" \t") == wanted:
                value = value.strip(b" \t")
                if len(value) >= 2 and value[0] == value[-1] == _DQUOTE:
                    value = value[1:-1]
                return value.decode("latin-1")
            at = header_value.find(wanted, end)
    return None


# Cookie names as bytes, by name: get_cookie runs per request for the same few names.
_NAMES: dict[str, bytes] = {}


def strip_cookies(value: bytes, names: Collection[bytes]) -> bytes:
    """``value`` (one ``Cookie`` header) without the cookies called ``names``.

    Other items are kept byte for byte but trimmed, joined by ``"; "``; empty
    items go.  A name is compared after trimming every byte that Python's
    ``str.strip()`` over latin-1 (and so some upstream parser) would trim,
    with or without an ``=``: anything that could be read as ours must not
    reach the site, which is wider than what :func:`get_cookie` reads.
    """
    if value.find(b";") < 0:  # one item (say, only ours): no list to split and join
        if value.partition(b"=")[0].strip(_ANY_WHITESPACE) in names:
            return b""  # the usual case on a protected route: nothing else to trim
        return value.strip()
    kept = []
    for item in value.split(b";"):
        pair = item.strip()
        if pair and pair.partition(b"=")[0].strip(_ANY_WHITESPACE) not in names:
            kept.append(pair)
    return b"; ".join(kept)


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None,
    same_site: str = "Lax",
    http_only: bool = True,
    secure: bool = True,
    path: str = "/",
) -> bytes:
    """A ``Set-Cookie`` header value; ``max_age=None`` makes a browser-session cookie.

    Raises ``ValueError`` for a name, value or attribute that would break the
    header or a cookie prefix's rules: these are programming errors, and
    refusing them is what keeps a header injection impossible.
    """
    if not name or not set(name) <= _TOKEN_CHARS:
        raise ValueError("cookie name must be a non-empty RFC 9110 token")
    if not set(value) <= _COOKIE_OCTETS:
        raise ValueError("cookie value has characters outside RFC 6265 cookie-octet")
    site = _SAME_SITE.get(same_site.lower())
    if site is None:
        raise ValueError(f"same_site must be Strict, Lax or None, not {same_site!r}")
    if not path.startswith("/") or not set(path) <= _COOKIE_OCTETS:
        raise ValueError("cookie path must start with '/' and hold only cookie-octets")
    # Browsers drop SameSite=None cookies without Secure, and __Host- cookies
    # without Secure or with a Path other than "/" (RFC 6265bis §4.1.3.2).
    if site == "None" and not secure:
        raise ValueError("SameSite=None requires Secure")
    if name.startswith("__Host-") and (not secure or path != "/"):
        raise ValueError("a __Host- cookie requires Secure and Path=/")
    if name.startswith("__Secure-") and not secure:
        raise ValueError("a __Secure- cookie requires Secure")
    parts = [f"{name}={value}"]
    if max_age is not None:
        parts.append(f"Max-Age={max(int(max_age), 0)}")
    parts.append(f"Path={path}")
    if secure:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    parts.append(f"SameSite={site}")
    return "; ".join(parts).encode("ascii")


def clear_cookie(name: str, *, same_site: str = "Lax") -> bytes:
    """A ``Set-Cookie`` value deleting cookie ``name`` (``Max-Age=0``, same attributes).

    The attributes must match the ones the cookie was set with, or a browser
    treats it as a different cookie; ``Expires`` in the past is added for
    clients that predate ``Max-Age``.
    """
    header = set_cookie(name, "", max_age=0, same_site=same_site)
    return header + b"; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
