"""One strict reading of a host: ``Host`` headers, forwarded hosts, URL authorities, config.

Every place that reads a host — the proxied request's ``Host``, a forward-auth
question's ``X-Forwarded-Host`` / ``Host``, an absolute-form target, a policy
rule's ``hosts:``, the ``hosts`` setting — goes through :func:`parse_host`, so
the host the gateway matches is the host the upstream is told.  The grammar is
RFC 3986 §3.2.2's ``host [ ":" port ]``, narrowed to what DNS and HTTP use:

* ``IP-literal``: ``[`` a valid IPv6 address ``]``; no zone id, no IPvFuture;
* otherwise a DNS name: dot-separated labels of letters, digits and ``-``
  (1-63 characters, no ``-`` at either end), at most one trailing dot;
  percent-encoding, sub-delims, ``_`` and ``~`` are refused rather than guessed;
* an optional ``:port`` of digits only, at most 65535 (``host:`` is the default
  port, as RFC 3986 allows).

Nothing else: no userinfo (``@``), no space or control byte, no second ``:``,
nothing after ``]``.  A refusal is :class:`~gateway.errors.BadRequest` with
reason ``bad_host`` (400); whether a well-formed host is *served* (421
otherwise) is the caller's decision.

The normal form is lower case, without the trailing dot (``localhost.`` is
``localhost``: the same DNS name, and the spelling the operator configured),
the IPv6 address in its compressed form, and the port as a plain number:
``LocalHost.:0080`` -> name ``localhost``, authority ``localhost:80``.
Parsing the normal form again gives it back unchanged.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from gateway.errors import BadRequest

__all__ = ["HostAuthority", "host_name", "parse_host"]

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
# RFC 1035 §2.3.4: 255 octets on the wire, 253 characters written without the root dot.
_MAX_NAME = 253
_MAX_TEXT = 300  # a bracketed IPv6 literal with a port is well under this
# RFC 9110 §5.6.3: optional whitespace around a field value is not part of it.
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class HostAuthority:
    """A parsed host: ``name`` for matching, ``authority`` to send upstream."""

    name: str  # lower case, no trailing dot, IPv6 without brackets, no port
    authority: str  # name (IPv6 in brackets) plus ":port" when a port was given


def parse_host(value: bytes | str) -> HostAuthority:
    """The normal form of a ``host[:port]`` value; :class:`BadRequest` (``bad_host``) if malformed.

    ``value`` is a ``Host``-style field value (surrounding spaces and tabs are
    ignored, as HTTP ignores them) or a URL's authority.  See the module docstring.
    """
    if isinstance(value, bytes):
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            raise _bad("the host is not ASCII") from None
    else:
        text = value
    text = text.strip(_OWS)
    if not text or len(text) > _MAX_TEXT or not text.isascii():
        raise _bad("the host is empty, too long or not ASCII")
    text = text.lower()
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            raise _bad("the IPv6 host has no closing ']'")
        name = _ipv6(text[1:close])
        bracketed = f"[{name}]"
        rest = text[close + 1 :]
    else:
        host, colon, port = text.partition(":")
        name = _dns_name(host)
        bracketed = name
        rest = colon + port
    if not rest:
        return HostAuthority(name, bracketed)
    if rest[0] != ":":
        raise _bad("the host is followed by something other than ':port'")
    port = rest[1:]
    if not port:
        return HostAuthority(name, bracketed)  # "host:" is the default port
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise _bad("the port is not a number from 0 to 65535")
    return HostAuthority(name, f"{bracketed}:{int(port)}")


def host_name(value: str) -> str:
    """The normal name of a configured host (no port): ``[::1]`` or ``::1``, ``Shop.Example.``.

    For settings and policy files; raises :class:`ValueError` with a message to show.
    """
    text = value.strip()
    if text.count(":") > 1 and not text.startswith("["):
        text = f"[{text}]"  # a bare IPv6 address, as operators often write it
    try:
        parsed = parse_host(text)
    except BadRequest as exc:
        raise ValueError(
            f"expected a host name such as shop.example, got {value!r}: {exc}"
        ) from None
    if parsed.authority not in (parsed.name, f"[{parsed.name}]"):
        raise ValueError(f"write the host without a port, got {value!r}")
    return parsed.name


def _dns_name(host: str) -> str:
    if not _DNS_NAME.fullmatch(host):
        raise _bad("the host is not a DNS name or a bracketed IPv6 address")
    name = host.removesuffix(".")
    if len(name) > _MAX_NAME:
        raise _bad("the host name is too long")
    return name


def _ipv6(literal: str) -> str:
    # ipaddress accepts a "%zone" suffix; RFC 3986 (without RFC 6874) does not.
    if not literal or "%" in literal:
        raise _bad("the IPv6 host is malformed")
    try:
        return ipaddress.IPv6Address(literal).compressed
    except ValueError:
        raise _bad("the IPv6 host is malformed") from None


def _bad(detail: str) -> BadRequest:
    return BadRequest("bad_host", detail)
