"""Header rules of gateway/core/forwarding.py: pure functions, no sockets."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core import forwarding
from gateway.core.cache import BoundedCache
from gateway.core.cookies import strip_cookies
from gateway.core.forwarding import (
    CREDENTIAL_SCHEMES,
    HOP_BY_HOP,
    ForwardingCache,
    auth_scheme,
    downstream_response_headers,
    is_trusted,
    upstream_request_headers,
    upstream_request_parts,
)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
COOKIES = [b"__Host-agegate", b"__Host-agegate-challenge"]


def build(headers, *, trusted=False, forward_ip=True, client_ip="203.0.113.7", add=()):
    return upstream_request_headers(
        headers,
        client_ip=client_ip,
        scheme="https",
        host=b"shop.example",
        trusted_peer=trusted,
        forward_client_ip=forward_ip,
        strip_cookie_names=COOKIES,
        add=add,
    )


def names(headers):
    return [k for k, _ in headers]


def value(headers, name):
    return [v for k, v in headers if k == name]


def test_hop_by_hop_and_connection_named_headers_are_removed():
    out = build(
        [
            (b"host", b"shop.example"),
            (b"connection", b"keep-alive, X-Secret"),
            (b"x-secret", b"1"),
            (b"keep-alive", b"5"),
            (b"te", b"trailers"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
            (b"proxy-authorization", b"Basic x"),
            (b"accept", b"*/*"),
        ]
    )
    assert not set(names(out)) & (HOP_BY_HOP | {b"x-secret"})
    assert value(out, b"accept") == [b"*/*"]
    assert value(out, b"host") == [b"shop.example"]


def test_client_sent_agegate_headers_are_removed_in_every_spelling():
    out = build(
        [
            (b"x-agegate-age-over", b"99"),
            (b"X-AGEGATE-ASSURANCE", b"strict"),
            (b"x_agegate_age_over", b"99"),
            (b"X_Agegate-Assurance", b"strict"),
        ],
        add=[(b"x-agegate-age-over", b"18")],
    )
    assert [(k, v) for k, v in out if b"agegate" in k.replace(b"_", b"-")] == [
        (b"x-agegate-age-over", b"18")
    ]


def test_underscore_forwarding_headers_are_dropped_cve_2025_64484():
    out = build(
        [
            (b"x_forwarded_for", b"1.2.3.4"),
            (b"X_Forwarded-Host", b"evil.example"),
            (b"x-real_ip", b"1.2.3.4"),
            (b"x_custom", b"kept"),
        ],
        trusted=True,
    )
    assert value(out, b"x-forwarded-for") == [b"203.0.113.7"]
    assert value(out, b"x-forwarded-host") == [b"shop.example"]
    assert b"x_forwarded_for" not in names(out) and b"x-real_ip" not in names(out)
    assert value(out, b"x_custom") == [b"kept"]


def test_untrusted_peer_cannot_spoof_forwarding_headers():
    out = build(
        [
            (b"forwarded", b"for=1.2.3.4"),
            (b"x-forwarded-for", b"1.2.3.4"),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"evil.example"),
            (b"x-real-ip", b"1.2.3.4"),
        ]
    )
    assert value(out, b"forwarded") == [b"for=203.0.113.7;host=shop.example;proto=https"]
    assert value(out, b"x-forwarded-for") == [b"203.0.113.7"]
    assert value(out, b"x-forwarded-proto") == [b"https"]
    assert value(out, b"x-forwarded-host") == [b"shop.example"]
    assert value(out, b"x-real-ip") == []


def test_trusted_peer_chain_is_extended():
    out = build(
        [
            (b"forwarded", b"for=198.51.100.1;proto=https"),
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"www.shop.example"),
            (b"x-real-ip", b"198.51.100.1"),
        ],
        trusted=True,
        client_ip="127.0.0.1",
    )
    assert value(out, b"forwarded") == [
        b"for=198.51.100.1;proto=https, for=127.0.0.1;host=shop.example;proto=https"
    ]
    assert value(out, b"x-forwarded-for") == [b"198.51.100.1, 127.0.0.1"]
    assert value(out, b"x-forwarded-host") == [b"www.shop.example"]
    assert value(out, b"x-real-ip") == [b"198.51.100.1"]


def test_forward_client_ip_off_sends_no_address_anywhere():
    out = build(
        [
            (b"forwarded", b"for=198.51.100.1"),
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"x-real-ip", b"198.51.100.1"),
        ],
        trusted=True,
        forward_ip=False,
    )
    flat = b"".join(v for _, v in out)
    assert b"198.51.100.1" not in flat and b"203.0.113.7" not in flat
    assert value(out, b"forwarded") == [b"host=shop.example;proto=https"]
    assert value(out, b"x-forwarded-for") == []


def test_ipv6_client_is_bracketed_and_quoted_in_forwarded():
    out = build([], client_ip="2001:db8::1")
    assert value(out, b"forwarded") == [b'for="[2001:db8::1]";host=shop.example;proto=https']


def test_host_with_port_is_quoted_in_forwarded():
    out = upstream_request_headers(
        [(b"host", b"shop.example:8443")],
        client_ip=None,
        scheme="http",
        host=b"shop.example:8443",
        trusted_peer=False,
        forward_client_ip=True,
        strip_cookie_names=(),
        add=(),
    )
    assert value(out, b"forwarded") == [b'host="shop.example:8443";proto=http']
    assert value(out, b"host") == [b"shop.example:8443"]


def test_gateway_cookies_are_removed_and_others_kept():
    out = build([(b"cookie", b"a=1; __Host-agegate=v1.x.y; b=2; __Host-agegate-challenge=z")])
    assert value(out, b"cookie") == [b"a=1; b=2"]
    out = build([(b"cookie", b"__Host-agegate=v1.x.y")])
    assert value(out, b"cookie") == []


def test_missing_host_is_added_from_the_host_argument():
    assert value(build([]), b"host") == [b"shop.example"]


def test_is_trusted():
    assert is_trusted("127.0.0.1", LOOPBACK)
    assert is_trusted("::ffff:127.0.0.1", LOOPBACK)
    assert is_trusted("::1", LOOPBACK)
    assert not is_trusted("10.0.0.1", LOOPBACK)
    assert not is_trusted("127.0.0.1", [])
    assert not is_trusted(None, LOOPBACK)
    assert not is_trusted("not-an-ip", LOOPBACK)


def test_downstream_strips_hop_by_hop_and_keeps_repeated_fields():
    out = downstream_response_headers(
        [
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
            (b"Connection", b"x-hop"),
            (b"X-Hop", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Content-Type", b"text/plain"),
        ]
    )
    assert out == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"content-type", b"text/plain"),
    ]


_name = st.sampled_from(
    [
        b"x-agegate-age-over",
        b"X_Agegate_Age_Over",
        b"x-forwarded-for",
        b"X_Forwarded_For",
        b"forwarded",
        b"x-real-ip",
        b"connection",
        b"te",
        b"cookie",
        b"accept",
        b"x-custom",
        b"transfer-encoding",
        b"upgrade",
        b"keep-alive",
    ]
) | st.binary(min_size=1, max_size=12).filter(lambda b: b":" not in b)
_headers = st.lists(st.tuples(_name, st.binary(max_size=30)), max_size=12)


@given(_headers, st.booleans(), st.booleans())
def test_property_no_client_header_speaks_for_agegate_or_a_hop(headers, trusted, forward_ip):
    add = [(b"x-agegate-age-over", b"18")]
    out = build(headers, trusted=trusted, forward_ip=forward_ip, add=add)
    assert out[-1] == add[0]
    lowered = [k.lower().replace(b"_", b"-") for k, _ in out[:-1]]
    assert not any(k.startswith(b"x-agegate-") for k in lowered)
    assert not set(lowered) & HOP_BY_HOP
    assert lowered.count(b"forwarded") == 1
    if not trusted:
        assert value(out, b"x-real-ip") == []
        assert value(out, b"x-forwarded-for") in ([b"203.0.113.7"], [])


def _arguments(client_ip: str | None, trusted: bool, forward_ip: bool) -> dict[str, object]:
    return {
        "client_ip": client_ip,
        "scheme": "https",
        "host": b"shop.example",
        "trusted_peer": trusted,
        "forward_client_ip": forward_ip,
        "strip_cookie_names": COOKIES,
    }


@given(_headers, st.booleans(), st.booleans(), st.sampled_from(["203.0.113.7", "::1", None]))
def test_property_forwarding_cache_changes_nothing(headers, trusted, forward_ip, client_ip):
    cache: ForwardingCache = BoundedCache(1024)
    kw = {**_arguments(client_ip, trusted, forward_ip), "add": [(b"x-agegate-age-over", b"18")]}
    plain = upstream_request_headers(headers, **kw)
    assert upstream_request_headers(headers, **kw, cache=cache) == plain
    assert upstream_request_headers(headers, **kw, cache=cache) == plain  # from the cache


@given(
    _headers,
    st.booleans(),
    st.booleans(),
    st.sampled_from(["203.0.113.7", "::1", None]),
    st.booleans(),
)
def test_property_the_parts_are_the_whole_list_split(
    headers, trusted, forward_ip, client_ip, cached
):
    # The fast path sends the client's part and the forwarding block in wire form;
    # together they must be exactly the list the ordinary path sends.
    cache: ForwardingCache | None = BoundedCache(1024) if cached else None
    kw = {**_arguments(client_ip, trusted, forward_ip), "cache": cache}
    add = [(b"x-agegate-age-over", b"18")]
    for _ in range(2):  # the second time, from the cache when there is one
        kept, own = upstream_request_parts(headers, **kw)
        assert [*kept, *own, *add] == upstream_request_headers(headers, **kw, add=add)
        assert own.wire == b"".join(k + b": " + v + b"\r\n" for k, v in own)
        assert {k for k, _ in own} <= {
            b"forwarded",
            b"x-forwarded-for",
            b"x-forwarded-proto",
            b"x-forwarded-host",
        }


def test_forwarding_cache_stays_bounded():
    cache: ForwardingCache = BoundedCache(1024)
    for n in range(3000):
        upstream_request_headers(
            [],
            client_ip=f"10.0.{n // 256}.{n % 256}",
            scheme="http",
            host=b"shop.example",
            trusted_peer=False,
            forward_client_ip=True,
            strip_cookie_names=(),
            add=(),
            cache=cache,
        )
    assert 0 < len(cache) <= 1024


def test_downstream_drops_headers_named_in_any_connection_header():
    out = downstream_response_headers(
        [(b"Connection", b"x-a"), (b"X-A", b"1"), (b"connection", b"X-B , "), (b"x-b", b"2")]
    )
    assert out == []


_NAMES = st.sampled_from(
    [b"Connection", b"connection", b"Keep-Alive", b"X-A", b"x-b", b"Close", b"Content-Type", b"TE"]
)
_CONNECTION_VALUES = st.sampled_from(
    [b"keep-alive", b"close", b"Keep-Alive, X-A", b" x-b ,", b"upgrade", b"x-a, close", b""]
)


@settings(max_examples=200)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just(b"Connection"), _CONNECTION_VALUES),
            st.tuples(_NAMES, st.sampled_from([b"1", b"keep-alive", b"x-a"])),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_downstream_headers_match_the_plain_reading_of_rfc_9110(
    headers: list[tuple[bytes, bytes]], private: bool
) -> None:
    """Hop-by-hop fields and every field any Connection names are dropped, nothing else."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    expected = [
        (name.lower(), value)
        for name, value in headers
        if name.lower() not in HOP_BY_HOP and name.lower() not in named
    ]
    if private:
        expected.append((b"cache-control", b"private"))
    assert downstream_response_headers(headers, private=private) == expected


def test_client_content_length_is_never_copied():
    out = build([(b"content-length", b"80"), (b"content-type", b"text/plain")])
    assert value(out, b"content-length") == []
    assert value(out, b"content-type") == [b"text/plain"]


def test_agegate_credential_schemes_are_dropped_others_kept():
    out = build(
        [
            (b"authorization", b"AgeToken a.b.c"),
            (b"authorization", b"  privatetoken token=x"),
            (b"authorization", b"Bearer site"),
            (b"authorization", b"AgeTokenX y"),
        ]
    )
    assert value(out, b"authorization") == [b"Bearer site", b"AgeTokenX y"]


_SCHEME = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-._~+/", min_size=1)


@settings(max_examples=300)
@given(
    scheme=_SCHEME,
    lead=st.sampled_from(["", " ", "\t", "  "]),
    sep=st.sampled_from([" ", "\t", "  "]),
    rest=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
)
def test_auth_scheme_is_the_first_token_case_folded(scheme, lead, sep, rest):
    value = f"{lead}{scheme}{sep}{rest}".encode()
    assert auth_scheme(value) == scheme.lower().encode()
    assert auth_scheme(f"{lead}{scheme}".encode()) == scheme.lower().encode()


@settings(max_examples=300)
@given(st.binary(max_size=60))
def test_a_value_whose_scheme_is_ours_never_goes_upstream(raw):
    out = build([(b"authorization", raw)])
    forwarded = value(out, b"authorization")
    assert (forwarded == []) == (auth_scheme(raw) in CREDENTIAL_SCHEMES)


def test_client_host_is_replaced_by_the_accepted_one_not_duplicated():
    # The gateway passes the normal form it accepted; the client's spelling never goes on.
    out = build([(b"host", b"LocalHost."), (b"accept", b"*/*")])
    assert value(out, b"host") == [b"shop.example"]
    assert value(out, b"x-forwarded-host") == [b"shop.example"]


def test_trusted_peer_forwarded_host_is_normalised_or_replaced():
    odd = build([(b"x-forwarded-host", b"[shop.example]evil.example")], trusted=True)
    assert value(odd, b"x-forwarded-host") == [b"shop.example"]
    spelled = build([(b"x-forwarded-host", b"WWW.Shop.Example.:443")], trusted=True)
    assert value(spelled, b"x-forwarded-host") == [b"www.shop.example:443"]


def test_a_cookie_header_known_to_hold_only_our_cookie_goes_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The session codec's alone_headers: such a value is dropped whole; any other
    # Cookie header is still stripped item by item.
    ours = b"__Host-agegate=v1.abcdef01.xyz"
    theirs = b"__Host-agegate=v1.abcdef01.xyz; theme=dark"
    parsed: list[bytes] = []

    def counting(value: bytes, names: Collection[bytes]) -> bytes:
        parsed.append(value)
        return strip_cookies(value, names)

    monkeypatch.setattr(forwarding, "strip_cookies", counting)
    out = upstream_request_headers(
        [(b"host", b"shop.example"), (b"cookie", ours), (b"cookie", theirs)],
        client_ip="127.0.0.1",
        scheme="http",
        host=b"shop.example",
        trusted_peer=False,
        forward_client_ip=False,
        strip_cookie_names=(b"__Host-agegate",),
        add=(),
        dropped_cookie_headers={ours},
    )
    assert [v for k, v in out if k == b"cookie"] == [b"theme=dark"]
    assert b"v1.abcdef01" not in b"".join(v for _, v in out)
    assert parsed == [theirs]  # the listed value was dropped without strip_cookies
