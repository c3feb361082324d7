"""Which request and response headers cross the gateway, and how they change.

Pure functions over ASGI-style header lists (``[(name, value), ...]`` as bytes),
shared by the proxy (both upstream clients) and the forward-auth endpoint, so
the rules are written and tested once:

- hop-by-hop headers (RFC 9110 §7.6.1), every header the ``Connection`` header
  names, and ``Transfer-Encoding`` never cross in either direction: each hop
  frames its own messages;
- a client may not speak for agegate: every ``X-Agegate-*`` header it sends is
  removed, in any spelling, including ``X_Agegate_*``;
- a client may not speak for a proxy: ``Forwarded``, ``X-Forwarded-*`` and
  ``X-Real-IP`` are kept only from a trusted peer, and header names with ``_``
  that a framework would read as one of them (``X_Forwarded_For``; the
  CVE-2025-64484 class of bypass) are always dropped;
- the gateway's own cookies never reach the site, nor does an ``Authorization``
  in one of the gateway's credential schemes (``AgeToken``, ``PrivateToken``,
  a plug-in's), whether or not the gateway used it: the site could read its
  claims or replay it for a session;
- the client's ``Content-Length`` is not copied: the upstream client frames
  the body from the bytes it actually sends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Container, Sequence
from functools import lru_cache

from gateway.core.cache import BoundedCache
from gateway.core.cookies import strip_cookies
from gateway.core.headers import HeaderBlock
from gateway.core.hosts import parse_host
from gateway.errors import BadRequest

__all__ = [
    "CREDENTIAL_SCHEMES",
    "HOP_BY_HOP",
    "ForwardingCache",
    "Network",
    "auth_scheme",
    "downstream_response_headers",
    "is_trusted",
    "private_cache_headers",
    "upstream_request_headers",
    "upstream_request_parts",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Headers = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# The Authorization schemes of the built-in verifiers; plug-ins add theirs (Proxy).
CREDENTIAL_SCHEMES: frozenset[bytes] = frozenset({b"agetoken", b"privatetoken"})
# Headers only a proxy may set; from anyone else they are spoofed.
_PROXY_HEADERS = frozenset({b"forwarded", b"x-real-ip"})
# A Connection header may not remove these (a request always names its host).
_NEVER_NAMED = HOP_BY_HOP | {b"host"}
_AGEGATE_PREFIX = b"x-agegate-"
_FORWARDED_PREFIX = b"x-forwarded-"
# What a trusted peer sends that our own forwarding headers continue or replace.
_CHAIN_HEADERS = frozenset(
    {b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
)
# RFC 9110 tchar: a Forwarded value made only of these needs no quoting.
_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def is_trusted(peer_ip: str | None, trusted: Sequence[Network]) -> bool:
    """True when the connection's peer is inside one of the ``trusted`` CIDR ranges."""
    if not peer_ip or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def auth_scheme(value: bytes) -> bytes:
    """The lower-cased scheme of an ``Authorization`` value (RFC 9110 §11.4), or b"".

    Read as servers read it: the token before the first space or tab, after
    any leading whitespace.
    """
    value = value.lstrip(b" \t")
    end = len(value)
    for separator in (b" ", b"\t"):
        at = value.find(separator)
        if 0 <= at < end:
            end = at
    return value[:end].lower()


def _is_proxy_header(name: bytes) -> bool:
    return name in _PROXY_HEADERS or name.startswith(_FORWARDED_PREFIX)


def _reads_as_ours(name: bytes) -> bool:
    # A framework reading "_" as "-" would take X_Agegate_* or X_Forwarded_For for ours.
    dashed = name.replace(b"_", b"-")
    return dashed.startswith(_AGEGATE_PREFIX) or _is_proxy_header(dashed)


def _forwarded_value(value: str) -> bytes:
    raw = value.encode("latin-1", "replace")
    if raw and not raw.translate(None, _TCHAR):
        return raw
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _forwarded_for(client_ip: str) -> bytes:
    # RFC 7239 §6: IPv6 addresses are bracketed, and brackets need quoting.
    return _forwarded_value(f"[{client_ip}]" if ":" in client_ip else client_ip)


# Request headers that need no check but the Connection-token one: the usual
# browser and API set, passed on the first comparison.
_PLAIN_REQUEST = frozenset(
    {
        b"accept",
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"content-type",
        b"if-modified-since",
        b"if-none-match",
        b"origin",
        b"pragma",
        b"priority",
        b"range",
        b"referer",
        b"sec-fetch-dest",
        b"sec-fetch-mode",
        b"sec-fetch-site",
        b"sec-fetch-user",
        b"upgrade-insecure-requests",
        b"user-agent",
    }
)
# Request headers kept only after a check of their own (see upstream_request_headers).
_CHECKED_REQUEST = frozenset({b"authorization", b"content-length"})
ForwardingCache = BoundedCache[tuple[str | None, str, bytes], HeaderBlock]


def upstream_request_headers(
    headers: Headers,
    *,
    client_ip: str | None,
    scheme: str,
    host: bytes,
    trusted_peer: bool,
    forward_client_ip: bool,
    strip_cookie_names: Collection[bytes],
    add: Headers,
    strip_auth_schemes: Collection[bytes] = CREDENTIAL_SCHEMES,
    cache: ForwardingCache | None = None,
    dropped_cookie_headers: Container[bytes] = (),
) -> list[tuple[bytes, bytes]]:
    """The headers to send upstream for a client request with ``headers``.

    ``host`` is the normal form of the client's ``Host`` (gateway/core/hosts.py): it
    takes the client's ``Host``'s place upstream, so the site sees its own name
    in the one spelling the gateway accepted.  ``add`` (e.g.
    ``X-Agegate-Age-Over``) is appended last, after every client-sent
    ``X-Agegate-*`` header has been removed.  ``strip_auth_schemes``
    (lower-case) are the ``Authorization`` schemes that never go upstream.
    ``cache``
    (a :class:`BoundedCache` the caller keeps) remembers the ``Forwarded``/``X-Forwarded-*``
    headers per client address, scheme and host when no proxy chain is
    forwarded: they are the same for every request on a connection.
    ``dropped_cookie_headers`` are ``Cookie`` values known to hold only cookies
    in ``strip_cookie_names`` (the session codec's ``alone_headers``): such a
    header goes without being parsed.
    """
    out, own = upstream_request_parts(
        headers,
        client_ip=client_ip,
        scheme=scheme,
        host=host,
        trusted_peer=trusted_peer,
        forward_client_ip=forward_client_ip,
        strip_cookie_names=strip_cookie_names,
        strip_auth_schemes=strip_auth_schemes,
        cache=cache,
        dropped_cookie_headers=dropped_cookie_headers,
    )
    out += own
    out += add
    return out


def upstream_request_parts(
    headers: Headers,
    *,
    client_ip: str | None,
    scheme: str,
    host: bytes,
    trusted_peer: bool,
    forward_client_ip: bool,
    strip_cookie_names: Collection[bytes],
    strip_auth_schemes: Collection[bytes] = CREDENTIAL_SCHEMES,
    cache: ForwardingCache | None = None,
    dropped_cookie_headers: Container[bytes] = (),
) -> tuple[list[tuple[bytes, bytes]], HeaderBlock]:
    """:func:`upstream_request_headers` without ``add``, in its two parts.

    What is kept of the client's headers (a new list), and the gateway's own
    forwarding headers that follow them, as a block whose wire form an
    upstream request head copies whole (the usual block comes from ``cache``).
    """
    out: list[tuple[bytes, bytes]] = []
    named: set[bytes] | None = None  # headers named in Connection, removed at the end
    from_peer: list[tuple[bytes, bytes]] = []  # proxy headers a trusted peer sent
    host_at = -1  # where the client's Host was
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in _PLAIN_REQUEST:
            out.append((name, value))
            continue
        if name == b"host":  # every request has one: settled before the checks below
            host_at = len(out)  # replaced below, in its place, by ``host``
            continue
        if name == b"cookie" and strip_cookie_names:
            # Not cached: a visitor's cookies are kept no longer than the request.  A
            # value holding only our cookie goes whole, without being parsed.
            kept = (
                b"" if value in dropped_cookie_headers else strip_cookies(value, strip_cookie_names)
            )
            if kept:
                out.append((name, kept))
            continue
        if name in HOP_BY_HOP:
            if name == b"connection":
                named = _add_connection_tokens(named, value)
            continue
        if name in _CHECKED_REQUEST:
            # Content-Length: framing is the upstream client's, from the bytes it sends.
            if name == b"authorization" and auth_scheme(value) not in strip_auth_schemes:
                out.append((name, value))
            continue
        # find, not ``in``: cheaper on CPython 3.11 (see gateway.core.paths.canonical_path).
        if (name.find(b"_") >= 0 and _reads_as_ours(name)) or name.startswith(_AGEGATE_PREFIX):
            continue
        if name in _PROXY_HEADERS or name.startswith(_FORWARDED_PREFIX):
            if not trusted_peer:
                continue
            if name in _CHAIN_HEADERS:
                from_peer.append((name, value))
            elif forward_client_ip or name != b"x-real-ip":
                out.append((name, value))
            continue
        out.append((name, value))
    if host:
        # One Host, in the spelling the gateway accepted, never the client's next to it.
        out.insert(len(out) if host_at < 0 else host_at, (b"host", host))
    if named is not None and (named := named - _NEVER_NAMED):
        out = [(k, v) for k, v in out if k not in named]
    forwarded_ip = client_ip if forward_client_ip else None
    if from_peer:
        chained = _chained_forwarding_headers(
            from_peer, forwarded_ip, scheme, host, forward_client_ip
        )
        return out, HeaderBlock(chained)
    if cache is not None and (own := cache.entries.get((forwarded_ip, scheme, host))):
        return out, own  # the usual case, without the calls below
    return out, _own_forwarding_headers(forwarded_ip, scheme, host, cache)


def _own_forwarding_headers(
    client_ip: str | None, scheme: str, host: bytes, cache: ForwardingCache | None
) -> HeaderBlock:
    """Our forwarding headers when no trusted peer sent a chain to continue."""
    if cache is None:
        return HeaderBlock(_forwarding_headers(client_ip, scheme, host, [], [], None, None))
    return _cached_forwarding_headers(cache, client_ip, scheme, host)


def _chained_forwarding_headers(
    from_peer: list[tuple[bytes, bytes]],
    client_ip: str | None,
    scheme: str,
    host: bytes,
    forward_client_ip: bool,
) -> list[tuple[bytes, bytes]]:
    """Our forwarding headers, continuing the chain a trusted peer sent."""
    chain_forwarded: list[bytes] = []
    chain_xff: list[bytes] = []
    peer_proto: bytes | None = None
    peer_host: bytes | None = None
    for name, value in from_peer:
        if name == b"forwarded":
            chain_forwarded.append(value)
        elif name == b"x-forwarded-for":
            chain_xff.append(value)
        elif name == b"x-forwarded-proto":
            peer_proto = value
        else:
            peer_host = _normal_host(value)
    return _forwarding_headers(
        client_ip,
        scheme,
        host,
        chain_forwarded if forward_client_ip else [],
        chain_xff if forward_client_ip else [],
        peer_proto,
        peer_host,
    )


def _cached_forwarding_headers(
    cache: ForwardingCache, client_ip: str | None, scheme: str, host: bytes
) -> HeaderBlock:
    key = (client_ip, scheme, host)
    headers = cache.entries.get(key)
    if headers is None:
        headers = cache.put(
            key, HeaderBlock(_forwarding_headers(client_ip, scheme, host, [], [], None, None))
        )
    return headers


def _forwarding_headers(
    client_ip: str | None,
    scheme: str,
    host: bytes,
    chain_forwarded: list[bytes],
    chain_xff: list[bytes],
    peer_proto: bytes | None,
    peer_host: bytes | None,
) -> list[tuple[bytes, bytes]]:
    element = []
    if client_ip:
        element.append(b"for=" + _forwarded_for(client_ip))
    if host:
        element.append(b"host=" + _forwarded_value(host.decode("latin-1")))
    element.append(b"proto=" + _forwarded_value(scheme))
    forwarded = b", ".join([*chain_forwarded, b";".join(element)])
    out = [(b"forwarded", forwarded)]
    if client_ip:
        out.append((b"x-forwarded-for", b", ".join([*chain_xff, client_ip.encode()])))
    out.append((b"x-forwarded-proto", peer_proto or scheme.encode()))
    if peer_host or host:
        out.append((b"x-forwarded-host", peer_host or host))
    return out


def _normal_host(value: bytes) -> bytes | None:
    """A trusted peer's forwarded host in normal form; None (ours is sent) when malformed."""
    try:
        return parse_host(value).authority.encode("ascii")
    except BadRequest:
        return None


# A pure function of Connection header tokens (no secrets; keys are what the
# client names as hop-by-hop), shared by every instance: lru_cache is enough.
@lru_cache(maxsize=128)
def _named_by_connection(value: bytes) -> frozenset[bytes]:
    """The header names a ``Connection`` value lists, less the hop-by-hop ones dropped anyway."""
    return frozenset(t.strip().lower() for t in value.split(b",")) - HOP_BY_HOP


def _add_connection_tokens(named: set[bytes] | None, value: bytes) -> set[bytes] | None:
    """``named`` and the fields one more ``Connection`` value lists (RFC 9110 §7.6.1).

    Stays None for the common ``keep-alive``, which names nothing left to remove,
    so the caller's second pass over the headers is skipped.
    """
    if value == b"keep-alive":  # what nginx and most upstreams send: nothing named
        return named
    tokens = _named_by_connection(value)
    if not tokens:
        return named
    return set(tokens) if named is None else named | tokens


def downstream_response_headers(
    headers: Headers, *, private: bool = False
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers without hop-by-hop ones, names lower-cased.

    ``private`` keeps a protected response out of shared caches, as
    :func:`private_cache_headers` does, in the same pass when the upstream sent
    no ``Cache-Control``.
    """
    out = []
    named: set[bytes] | None = None
    cache_control = False
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in HOP_BY_HOP:
            if name == b"connection":
                named = _add_connection_tokens(named, value)
            continue
        if name == b"cache-control":
            cache_control = True
        out.append((name, value))
    if named:
        out = [(k, v) for k, v in out if k not in named]
    if private:
        if cache_control:
            return private_cache_headers(out)
        out.append((b"cache-control", b"private"))
    return out


def private_cache_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (lower-case names) with a protected response kept out of shared caches.

    A cache in front of the gateway would otherwise store an age-restricted page
    and serve it to visitors who never proved their age.  ``private`` (or
    ``no-store``) from the upstream stands; anything else becomes ``private``.
    """
    current = b",".join(v for k, v in headers if k == b"cache-control").lower()
    if b"private" in current or b"no-store" in current:
        return headers
    return [*((k, v) for k, v in headers if k != b"cache-control"), (b"cache-control", b"private")]
