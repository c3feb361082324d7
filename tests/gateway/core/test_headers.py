"""Header list lookups (gateway/core/headers.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.headers import EMPTY_BLOCK, HeaderBlock, header_value, header_values

HEADERS = [(b"host", b"a"), (b"cookie", b"x=1"), (b"cookie", b"y=2")]


def test_first_value() -> None:
    assert header_value(HEADERS, b"cookie") == b"x=1"
    assert header_value(HEADERS, b"accept") is None


def test_every_value_in_order() -> None:
    assert header_values(HEADERS, b"cookie") == [b"x=1", b"y=2"]
    assert header_values(HEADERS, b"accept") == []


def test_names_compare_exactly() -> None:
    # ASGI names are lower-case already; a client's spelling is not folded here.
    assert header_value([(b"Cookie", b"x")], b"cookie") is None


names = st.sampled_from([b"a", b"b", b"c"])


@given(st.lists(st.tuples(names, st.binary(max_size=4)), max_size=8), names)
def test_first_is_the_head_of_every(headers: list[tuple[bytes, bytes]], name: bytes) -> None:
    every = header_values(headers, name)
    assert header_value(headers, name) == (every[0] if every else None)


_field = st.tuples(st.binary(min_size=1, max_size=12), st.binary(max_size=20))


@given(st.lists(_field, max_size=6))
def test_a_block_is_its_fields_and_their_wire_form(fields: list[tuple[bytes, bytes]]) -> None:
    block = HeaderBlock(fields)
    assert block == tuple(fields)  # a header list like any other
    assert block.wire == b"".join(name + b": " + value + b"\r\n" for name, value in fields)


def test_the_empty_block_writes_nothing() -> None:
    assert EMPTY_BLOCK == ()
    assert EMPTY_BLOCK.wire == b""
