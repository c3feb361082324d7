"""One canonical form of the request target (SPEC §6).

Policy matching and forwarding both use :func:`canonical_path`, so the gateway
and the upstream can never disagree about which resource a request names.  The
canonical form of an origin-form path is:

* unreserved characters (``ALPHA / DIGIT / - . _ ~``) percent-decoded, so
  ``%2e`` is a dot *before* dot segments are resolved;
* every escape that stays encoded written with upper-case hex, and every byte
  outside the RFC 3986 ``pchar`` set (raw non-ASCII, ``{``, space, …)
  percent-encoded, so the result is pure ASCII;
* dot segments resolved (RFC 3986 §5.2.4), never climbing above ``/``;
* duplicate slashes collapsed.

Anything that different servers are known to read differently is refused with
:class:`~gateway.errors.BadRequest` (400), one reason code per case:
``encoded_slash`` (``%2F``), ``backslash`` (``\\`` or ``%5C``),
``control_character`` (raw or encoded ``%00``-``%1F``, ``%7F``),
``bad_percent_escape`` (``%zz``, ``%4``), ``semicolon`` (``;`` or ``%3B``
unless allowed), ``fragment`` (``#``), ``not_origin_form``.  Ambiguity is
refused rather than guessed, because a guess that differs from the upstream's
is exactly how a protected prefix gets bypassed.

:func:`split_target` takes a raw request-target apart (origin-form or
absolute-form) so the caller can check the host and canonicalize the path.
"""

from __future__ import annotations

import re

from gateway.core.hosts import parse_host
from gateway.errors import BadRequest

__all__ = ["canonical_path", "split_target"]

_HEX = b"0123456789ABCDEFabcdef"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 pchar minus pct-encoded and ';' (handled on its own), plus the separator '/'.
_KEPT_RAW = _UNRESERVED | frozenset(b"!$&'()*+,=:@/")
_KEPT_RAW_BYTES = bytes(sorted(_KEPT_RAW))
_SEMICOLON = 0x3B

# Upper-case escape for every byte value, built once: the slow path is per byte.
_ESCAPE = tuple(f"%{value:02X}" for value in range(256))
_RAW = tuple(chr(value) for value in range(256))

_SCHEME = re.compile(rb"\A([A-Za-z][A-Za-z0-9+.\-]*)://")


def canonical_path(raw_path: bytes | str, *, allow_semicolons: bool = False) -> str:
    """The canonical form of an origin-form path; see the module docstring.

    ``raw_path`` is the path as received (ASGI ``raw_path``).  Anything after a
    ``?`` is the query and is dropped: the query is never part of the path.  A
    ``str`` is taken as its UTF-8 bytes.  Raises :class:`BadRequest` (400).
    The result is idempotent: ``canonical_path(canonical_path(p)) == canonical_path(p)``.
    """
    raw = _as_bytes(raw_path)
    # bytes.find, not ``in``: on CPython 3.11 a bytes ``in`` first reads its operand as
    # an integer and builds (then drops) a TypeError, twice the cost, per request.
    if raw.find(b"#") >= 0:
        raise BadRequest("fragment", "a request target must not carry a #fragment")
    raw = raw.partition(b"?")[0]
    if not raw.startswith(b"/"):
        raise BadRequest("not_origin_form", "the request path must start with '/'")
    # Fast path: only characters kept as they are, no dot segment, no '//'.
    if not raw.translate(None, _KEPT_RAW_BYTES) and raw.find(b"/.") < 0 and raw.find(b"//") < 0:
        return raw.decode("ascii")
    return _resolve_dot_segments(_normalize_escapes(raw, allow_semicolons), allow_semicolons)


def split_target(raw_target: bytes) -> tuple[str | None, bytes, bytes]:
    """Split a request-target into ``(host, raw path, raw query)``.

    Origin-form ``/p?q`` gives ``(None, b"/p", b"q")``; absolute-form
    ``http://Host.:80/p?q`` gives ``("host", b"/p", b"q")`` with the host in
    the normal form of :func:`gateway.core.hosts.parse_host` (lower case, no port,
    no trailing dot, an IPv6 literal compressed and without brackets).  Whether that host is
    accepted (421 otherwise) is the caller's decision.  ``*`` (asterisk-form),
    ``host:port`` (authority-form) and other schemes raise
    ``BadRequest("not_origin_form")``; a ``#`` raises ``BadRequest("fragment")``;
    a malformed authority raises ``BadRequest("bad_authority")``.
    """
    if raw_target.find(b"#") >= 0:  # not ``in``: see canonical_path
        raise BadRequest("fragment", "a request target must not carry a #fragment")
    host: str | None = None
    rest = raw_target
    if not raw_target.startswith(b"/"):
        scheme = _SCHEME.match(raw_target)
        if scheme is None or scheme.group(1).lower() not in (b"http", b"https"):
            raise BadRequest(
                "not_origin_form", "only origin-form and http(s) absolute-form targets are served"
            )
        after = raw_target[scheme.end() :]
        end = len(after)
        for stop in (b"/", b"?"):
            index = after.find(stop)
            if index != -1:
                end = min(end, index)
        host = _parse_authority(after[:end])
        rest = after[end:]
        if not rest.startswith(b"/"):
            # RFC 9110 §4.2.3: an empty path in an http(s) URI is the same as "/".
            rest = b"/" + rest
    path, _, query = rest.partition(b"?")
    return host, path, query


def _as_bytes(raw_path: bytes | str) -> bytes:
    if isinstance(raw_path, bytes):
        return raw_path
    try:
        return raw_path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise BadRequest("bad_encoding", "the request path is not valid text") from None


def _parse_authority(authority: bytes) -> str:
    """``host[:port]`` -> the host's normal name (:func:`~gateway.core.hosts.parse_host`)."""
    if b"@" in authority:
        # RFC 9110 §4.2.4: userinfo is deprecated in http(s) URIs and a phishing vector.
        raise BadRequest("bad_authority", "the request target must not carry userinfo")
    if authority != authority.strip(b" \t"):
        # parse_host ignores the whitespace HTTP allows around a field value; a URL has none.
        raise BadRequest("bad_authority", "the request target's host is surrounded by whitespace")
    try:
        return parse_host(authority).name
    except BadRequest as exc:
        raise BadRequest("bad_authority", f"the request target's host: {exc}") from None


def _normalize_escapes(raw: bytes, allow_semicolons: bool) -> str:
    """Decode unreserved escapes, upper-case the others, encode bytes outside pchar."""
    out: list[str] = []
    append = out.append
    index = 0
    length = len(raw)
    while index < length:
        byte = raw[index]
        if byte == 0x25:  # '%'
            escape = raw[index + 1 : index + 3]
            if len(escape) != 2 or escape[0] not in _HEX or escape[1] not in _HEX:
                raise BadRequest(
                    "bad_percent_escape", "a '%' in the path must be followed by two hex digits"
                )
            value = int(escape, 16)
            _refuse(value, allow_semicolons, encoded=True)
            append(_RAW[value] if value in _UNRESERVED else _ESCAPE[value])
            index += 3
            continue
        _refuse(byte, allow_semicolons, encoded=False)
        append(_RAW[byte] if byte in _KEPT_RAW or byte == _SEMICOLON else _ESCAPE[byte])
        index += 1
    return "".join(out)


def _refuse(value: int, allow_semicolons: bool, *, encoded: bool) -> None:
    """Raise for a byte (raw or decoded from an escape) that servers read differently."""
    if value < 0x20 or value == 0x7F:
        raise BadRequest("control_character", "the path contains a control character")
    if value == 0x5C:
        raise BadRequest("backslash", "the path contains a backslash")
    if value == 0x2F and encoded:
        raise BadRequest("encoded_slash", "the path contains an encoded slash (%2F)")
    if value == _SEMICOLON and not allow_semicolons:
        raise BadRequest("semicolon", "the path contains a ';' (path parameters are refused)")


def _resolve_dot_segments(path: str, allow_semicolons: bool) -> str:
    """RFC 3986 §5.2.4 on an absolute path, plus collapsing empty segments."""
    segments = path.split("/")
    # segments[0] is the empty string before the leading '/'.
    output: list[str] = []
    trailing_slash = False
    for segment in segments[1:]:
        trailing_slash = segment in ("", ".", "..")
        if segment == "..":
            if output:
                output.pop()
        elif segment not in ("", "."):
            if allow_semicolons and segment.partition(";")[0] in (".", ".."):
                # Tomcat-style servers drop ';params' and would read this as a dot segment.
                raise BadRequest("semicolon", "a dot segment with ';' parameters is refused")
            output.append(segment)
    if not output:
        return "/"
    return "/" + "/".join(output) + ("/" if trailing_slash else "")
