"""Which client a request comes from, for rate-limit buckets only.

Behind a proxy or load balancer the TCP peer is the proxy, so a bucket keyed
by the peer would let one client block verification for everyone behind the
same proxy.  A peer in ``trusted_proxies`` is therefore looked through, as
nginx's ``real_ip_recursive on`` and Envoy's ``xff_num_trusted_hops`` do: the
hops it reports in ``X-Forwarded-For`` (or, when none arrived, in
``Forwarded: for=``) are walked from the right, past every trusted address,
and the first address that is not trusted is the client.  Entries left of it
were sent by the client itself and are never believed; a hop that is not an
address (``unknown``, an obfuscated ``_name``, garbage) ends the walk at the
trusted hop that reported it.  ``X-Real-IP`` is not read: a proxy that does
not set it passes the client's own through.

From an untrusted peer nothing is read: the peer is the client.  The address
picked is only ever used truncated to its /24 or /48 and then HMAC'd
(:meth:`gateway.runtime.RateLimiter.client_bucket`); it is never logged in full.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from gateway.core.forwarding import Network
from gateway.core.headers import header_values

__all__ = ["client_address", "forwarded_hops"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Headers = Sequence[tuple[bytes, bytes]]

# A longer chain of trusted hops than this is not a real deployment; the walk stops there.
_MAX_HOPS = 32


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _node(raw: bytes) -> Address | None:
    """The address of one hop: ``192.0.2.1``, ``192.0.2.1:80``, ``[2001:db8::1]:80``, ``::1``."""
    try:
        text = raw.strip().strip(b'"').decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        end = text.find("]")
        return _address(text[1:end]) if end > 0 else None
    if text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has two or more
        text = text.partition(":")[0]
    return _address(text)


def _for_value(element: bytes) -> bytes:
    """The ``for=`` value of one ``Forwarded`` element; empty when it has none."""
    for pair in element.split(b";"):
        name, _, value = pair.partition(b"=")
        if name.strip().lower() == b"for":
            return value.strip() or b"-"
    return b"-"


def forwarded_hops(headers: Headers) -> list[bytes]:
    """The hops a proxy chain reports, left to right, from ``X-Forwarded-For`` or ``Forwarded``.

    Several header lines are one list (RFC 9110 §5.3); empty list members are
    skipped.  ``Forwarded`` is read only when no ``X-Forwarded-For`` arrived.
    """
    xff = header_values(headers, b"x-forwarded-for")
    if xff:
        hops = b",".join(xff).split(b",")
        return [hop for hop in hops if hop.strip()]
    forwarded = header_values(headers, b"forwarded")
    elements = b",".join(forwarded).split(b",")
    return [_for_value(element) for element in elements if element.strip()]


def client_address(peer: str | None, headers: Headers, trusted: Sequence[Network]) -> str | None:
    """The client's address: the peer, or the right-most untrusted hop a trusted peer reports."""
    if peer is None or not trusted:
        return peer
    current = _address(peer)
    if current is None or not any(current in network for network in trusted):
        return peer
    for raw in reversed(forwarded_hops(headers)[-_MAX_HOPS:]):
        hop = _node(raw)
        if hop is None:
            break  # a hop we cannot read: count the request against the proxy that sent it
        current = hop
        if not any(hop in network for network in trusted):
            break
    return str(current)
