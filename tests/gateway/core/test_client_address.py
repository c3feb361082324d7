"""Picking the client address for rate-limit buckets (gateway/core/client_address.py)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.core.client_address import client_address, forwarded_hops
from gateway.core.forwarding import Network

TRUSTED: list[Network] = [
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("fd00::/8"),
]
PROXY = "10.1.2.3"

_trusted_v4 = st.ip_addresses(network="10.0.0.0/8")
_trusted_v6 = st.ip_addresses(network="fd00::/8")
_trusted_hop = st.one_of(_trusted_v4, _trusted_v6).map(str)
_untrusted = st.one_of(
    st.ip_addresses(v=4).filter(lambda a: a not in TRUSTED[0]),
    st.ip_addresses(v=6).filter(
        lambda a: (
            a not in TRUSTED[1] and isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is None
        )
    ),
)
_junk = st.lists(st.binary(max_size=30), max_size=5)
_names = st.sampled_from([b"x-forwarded-for", b"forwarded", b"x-real-ip", b"cookie"])


def _xff(*hops: str | bytes) -> list[tuple[bytes, bytes]]:
    values = [h if isinstance(h, bytes) else h.encode() for h in hops]
    return [(b"x-forwarded-for", b", ".join(values))]


@given(st.lists(st.tuples(_names, st.binary(max_size=60)), max_size=4))
@example([(b"x-forwarded-for", b"203.0.113.9")])
def test_an_untrusted_peer_is_the_client_whatever_it_sends(
    headers: list[tuple[bytes, bytes]],
) -> None:
    assert client_address("192.0.2.44", headers, TRUSTED) == "192.0.2.44"
    assert client_address("192.0.2.44", headers, []) == "192.0.2.44"


@given(_junk, _untrusted, st.lists(_trusted_hop, max_size=5))
def test_the_right_most_untrusted_hop_is_the_client(
    spoofed: list[bytes], client: ipaddress.IPv4Address | ipaddress.IPv6Address, hops: list[str]
) -> None:
    headers = _xff(*spoofed, str(client), *hops)
    assert client_address(PROXY, headers, TRUSTED) == str(client)


@given(_untrusted, st.lists(_trusted_hop, max_size=5), st.booleans())
def test_forwarded_for_is_read_like_x_forwarded_for(
    client: ipaddress.IPv4Address | ipaddress.IPv6Address, hops: list[str], with_port: bool
) -> None:
    def node(address: str) -> str:
        if ":" in address:
            return f'"[{address}]:4711"' if with_port else f'"[{address}]"'
        return f'"{address}:4711"' if with_port else address

    elements = [f"for={node(str(client))};proto=https", *(f"for={node(h)}" for h in hops)]
    headers = [(b"forwarded", ", ".join(elements).encode())]
    assert client_address(PROXY, headers, TRUSTED) == str(client)


@given(st.lists(st.tuples(_names, st.binary(max_size=80)), max_size=4))
@example([(b"x-forwarded-for", b"[::1")])
@example([(b"x-forwarded-for", b"\xff")])
@example([(b"forwarded", b"for=")])
def test_any_headers_give_the_peer_or_an_address(headers: list[tuple[bytes, bytes]]) -> None:
    found = client_address(PROXY, headers, TRUSTED)
    assert found is not None
    ipaddress.ip_address(found)


def test_x_forwarded_for_wins_over_forwarded() -> None:
    headers = [(b"forwarded", b"for=192.0.2.1"), *_xff("198.51.100.7")]
    assert client_address(PROXY, headers, TRUSTED) == "198.51.100.7"


def test_x_real_ip_is_not_read() -> None:
    headers = [(b"x-real-ip", b"192.0.2.1")]
    assert client_address(PROXY, headers, TRUSTED) == PROXY


@pytest.mark.parametrize("hop", [b"unknown", b"_hidden", b"not-an-ip", b"[2001:db8::1"])
def test_an_unreadable_hop_stops_at_the_proxy_that_reported_it(hop: bytes) -> None:
    assert client_address(PROXY, _xff("198.51.100.7", hop), TRUSTED) == PROXY
    assert client_address(PROXY, _xff("198.51.100.7", hop, "10.9.9.9"), TRUSTED) == "10.9.9.9"
    assert client_address(PROXY, [(b"forwarded", b"for=" + hop)], TRUSTED) == PROXY


def test_a_forwarded_element_without_for_stops_the_walk() -> None:
    headers = [(b"forwarded", b"for=198.51.100.7, proto=https")]
    assert client_address(PROXY, headers, TRUSTED) == PROXY


def test_a_chain_of_only_trusted_hops_gives_the_left_most() -> None:
    assert client_address(PROXY, _xff("10.0.0.1", "10.0.0.2"), TRUSTED) == "10.0.0.1"


def test_ipv4_mapped_addresses_are_read_as_ipv4() -> None:
    assert client_address("::ffff:10.1.2.3", _xff("::ffff:198.51.100.7"), TRUSTED) == (
        "198.51.100.7"
    )


def test_header_lines_join_into_one_list_and_empty_members_are_skipped() -> None:
    headers = [(b"x-forwarded-for", b"192.0.2.1, ,"), (b"x-forwarded-for", b"198.51.100.7")]
    assert forwarded_hops(headers) == [b"192.0.2.1", b"198.51.100.7"]
    assert client_address(PROXY, headers, TRUSTED) == "198.51.100.7"


def test_no_peer_is_no_address() -> None:
    assert client_address(None, _xff("198.51.100.7"), TRUSTED) is None
