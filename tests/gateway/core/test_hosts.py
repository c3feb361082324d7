"""gateway/core/hosts.py: the one strict host parser, against an RFC 3986 reference grammar."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gateway.core.hosts
from gateway.core.hosts import HostAuthority, host_name, parse_host
from gateway.core.paths import split_target
from gateway.errors import BadRequest
from gateway.policy.loader import parse_policy_text

# -- the reference: RFC 3986 §3.2.2 / §3.2.3, written out independently of the parser ----

_H16 = r"[0-9A-Fa-f]{1,4}"
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "|".join(
    [
        rf"(?:{_H16}:){{6}}{_LS32}",
        rf"::(?:{_H16}:){{5}}{_LS32}",
        rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
        rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_IPVFUTURE = r"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+"
_REG_NAME = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
RFC3986_HOST_PORT = re.compile(
    rf"(?:\[(?:{_IPV6}|{_IPVFUTURE})\]|{_IPV4}|{_REG_NAME})(?::[0-9]*)?", re.ASCII
)


def refused(value: bytes | str) -> str:
    with pytest.raises(BadRequest) as caught:
        parse_host(value)
    assert caught.value.status == 400
    return caught.value.reason


def test_public_names() -> None:
    assert gateway.core.hosts.__all__ == ["HostAuthority", "host_name", "parse_host"]


def test_reference_grammar_is_the_rfcs() -> None:
    # The reference itself must accept what RFC 3986 accepts and refuse what it refuses.
    for good in ("localhost", "[::1]:80", "a.b:", "127.0.0.1", "[v1.x]", "%41b", "a!b", "[::]"):
        assert RFC3986_HOST_PORT.fullmatch(good), good
    for bad in ("[a]", "a@b", "a b", "a:b", "[::1]x", "a:1:2", "[::1", "a/b", "%zz"):
        assert not RFC3986_HOST_PORT.fullmatch(bad), bad


@pytest.mark.parametrize(
    ("value", "name", "authority"),
    [
        (b"localhost", "localhost", "localhost"),
        (b"LOCALHOST.", "localhost", "localhost"),
        (b"LocalHost.:8080", "localhost", "localhost:8080"),
        (b"localhost:", "localhost", "localhost"),
        (b"localhost:0080", "localhost", "localhost:80"),
        (b"localhost:65535", "localhost", "localhost:65535"),
        (b" \tshop.example\t ", "shop.example", "shop.example"),
        (b"127.0.0.1:9000", "127.0.0.1", "127.0.0.1:9000"),
        (b"[::1]", "::1", "[::1]"),
        (b"[::1]:", "::1", "[::1]"),
        (b"[0:0:0:0:0:0:0:1]:443", "::1", "[::1]:443"),
        (b"[2001:DB8::A]", "2001:db8::a", "[2001:db8::a]"),
        (b"xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("Shop.Example", "shop.example", "shop.example"),
    ],
)
def test_accepted_hosts_and_their_normal_form(
    value: bytes | str, name: str, authority: str
) -> None:
    assert parse_host(value) == HostAuthority(name, authority)


@pytest.mark.parametrize(
    "value",
    [
        b"[localhost]evil.example",
        b"[localhost]@evil.example",
        b"[localhost] evil.example",
        b"[localhost]",
        b"user@localhost",
        b"localhost:80@evil.example",
        b"localhost:80:80",
        b"localhost:abc",
        b"localhost:+80",
        b"localhost:65536",
        b"localhost:000000080",
        b"[::1",
        b"[::1]x",
        b"[::1%25lo]",
        b"[::1%lo]",
        b"[v1.x]",
        b"[]",
        b"::1",
        b"localhost\tevil",
        b"local host",
        b"",
        b"   ",
        b"local%68ost",
        b"localhost,evil.example",
        b"localhost/x",
        b"localhost\\x",
        b"local_host",
        b"local~host",
        b"localhost!",
        b"localhost..",
        b".localhost",
        b"a..b",
        b"-localhost",
        b"localhost-",
        b"a" * 64 + b".example",
        b".".join([b"a" * 63] * 4 + [b"b"]),
        b"l\xc3\xb6calhost",
        b"localhost\x00",
        "l\u00f6calhost",
    ],
)
def test_malformed_hosts_are_refused(value: bytes | str) -> None:
    assert refused(value) == "bad_host"


def test_config_host_names() -> None:
    assert host_name("Shop.Example.") == "shop.example"
    assert host_name("[::1]") == "::1"
    assert host_name("::1") == "::1"
    assert host_name("0:0::1") == "::1"
    for bad, says in [
        ("shop:8080", "without a port"),
        ("[::1]:80", "without a port"),
        ("sh op", "expected a host name"),
        ("[shop]", "expected a host name"),
        ("", "expected a host name"),
    ]:
        with pytest.raises(ValueError, match=says):
            host_name(bad)


def test_policy_hosts_and_matching_use_the_same_parser() -> None:
    policy = parse_policy_text(
        """
version: 1
defaults: {verifiers: [v]}
routes:
  - {name: wine, hosts: [Shop.Example., "[::1]"], path: /wine/**, min_age: 18}
  - {name: rest, path: /**, action: allow}
""",
        source="hosts.yaml",
    )
    rule = policy.rules[0]
    assert rule.hosts == frozenset({"shop.example", "::1"})
    for host in ("shop.example", "SHOP.EXAMPLE.", "shop.example:443", "::1", "[::1]:80"):
        matched = policy.match("GET", host, "/wine/red")
        assert matched is not None and matched.name == "wine", host
    matched = policy.match("GET", "[shop.example]x", "/wine/red")
    assert matched is not None and matched.name == "rest"


# -- properties ----------------------------------------------------------------------------

_LABEL = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)
_DNS = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(_LABEL, min_size=1, max_size=4),
    st.sampled_from(["", "."]),
)
_IPV6_LITERAL = st.ip_addresses(v=6).map(lambda a: f"[{a.exploded}]")
_PORT = st.one_of(st.just(""), st.just(":"), st.integers(0, 65535).map(lambda p: f":{p}"))
VALID = st.builds(lambda h, p: h + p, st.one_of(_DNS, _IPV6_LITERAL), _PORT)
# Pieces that attacks are made of, so random text often lands near the grammar's edges.
_PIECES = st.sampled_from(
    [
        "localhost", "evil.example", "[", "]", "::1", ":", "@", " ", "\t", ".", "..", "%",
        "%68", "80", "65536", "_", "-", "v1.", ",", "/", "\\", "!", "A", "0", "[::1]", "ö",
    ]
)  # fmt: skip
NEAR = st.lists(_PIECES, max_size=6).map("".join)
ANY = st.one_of(NEAR, st.text(max_size=30), VALID)


@settings(max_examples=500)
@given(ANY)
def test_accepted_values_match_the_rfc3986_grammar(value: str) -> None:
    try:
        parsed = parse_host(value)
    except BadRequest as exc:
        assert exc.reason == "bad_host"
        return
    assert RFC3986_HOST_PORT.fullmatch(value.strip(" \t")), value
    assert RFC3986_HOST_PORT.fullmatch(parsed.authority), parsed
    for forbidden in ("@", " ", "\t", "%", ",", "/", "\\", "_", "~", "!"):
        assert forbidden not in parsed.authority
    assert parsed.authority == parsed.authority.lower()
    assert not parsed.name.endswith(".")
    if "[" in parsed.authority or "]" in parsed.authority:
        # Brackets only around an IPv6 literal, which is the whole host.
        assert parsed.authority.startswith("[") and parsed.authority.count("[") == 1
        close = parsed.authority.index("]")
        assert ipaddress.IPv6Address(parsed.authority[1:close]).compressed == parsed.name
        assert re.fullmatch(r"(?::[0-9]+)?", parsed.authority[close + 1 :])


@settings(max_examples=500)
@given(ANY)
def test_normal_form_is_a_fixed_point(value: str) -> None:
    try:
        parsed = parse_host(value)
    except BadRequest:
        return
    assert parse_host(parsed.authority) == parsed
    assert parse_host(parsed.authority.encode()) == parsed


@given(VALID)
def test_every_well_formed_host_is_accepted(value: str) -> None:
    parsed = parse_host(value)
    host = value.rsplit(":", 1)[0] if not value.endswith("]") and ":" in value else value
    if host.startswith("["):
        assert parsed.name == ipaddress.IPv6Address(host.strip("[]")).compressed
    else:
        assert parsed.name == host.lower().removesuffix(".")


@given(_DNS, _PORT)
def test_case_and_trailing_dot_do_not_change_the_host(name: str, port: str) -> None:
    bare = name.removesuffix(".")
    expected = parse_host(bare.lower() + port)
    assert parse_host(bare.upper() + "." + port) == expected
    assert parse_host(bare + port) == expected


@given(VALID, st.sampled_from(["@evil.example", " evil", "\tx", "]", "[", ",a", "/", "%41"]))
def test_anything_after_a_host_is_refused(value: str, suffix: str) -> None:
    assert refused(value + suffix) == "bad_host"


@given(ANY)
def test_absolute_form_targets_read_hosts_the_same_way(value: str) -> None:
    assume(all(c not in value for c in "/?#") and value.isascii())
    raw = b"http://" + value.encode() + b"/p"
    try:
        # No whitespace can surround a host inside a URL, unlike around a field value.
        expected = parse_host(value).name if value == value.strip(" \t") else None
    except BadRequest:
        expected = None
    if expected is None:
        with pytest.raises(BadRequest) as caught:
            split_target(raw)
        assert caught.value.reason == "bad_authority"
    else:
        assert split_target(raw)[0] == expected
