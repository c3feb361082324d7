"""The callback's bounded form reader and strict urlencoded parser (gateway/browser/forms.py)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.browser.forms import (
    MAX_FORM_BYTES,
    MAX_FORM_FIELDS,
    FormRefused,
    check_form_head,
    declares_body,
    parse_form,
    read_form_body,
)
from gateway.types import Message

FORM = (b"content-type", b"application/x-www-form-urlencoded")


@given(st.binary(max_size=512))
@example(b"a=%ff")
@example(b"a=1&&b=2")
@example(b"\xff=1")
@example(b"a=1&a=2")
@example(b"&" * (MAX_FORM_FIELDS + 1))
def test_any_bytes_parse_to_fields_or_a_clean_refusal(data: bytes) -> None:
    try:
        fields = parse_form(data)
    except FormRefused as exc:
        assert exc.status == 400
        assert exc.reason == "malformed_form"
        return
    assert len(fields) <= MAX_FORM_FIELDS
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


_NAMES = st.text(min_size=1, max_size=12)
_VALUES = st.text(max_size=40)


@given(st.dictionaries(_NAMES, _VALUES, max_size=MAX_FORM_FIELDS))
def test_an_encoded_form_parses_back_to_its_fields(fields: dict[str, str]) -> None:
    encoded = urlencode(fields).encode()
    assert parse_form(encoded) == fields


def test_a_repeated_field_is_refused() -> None:
    with pytest.raises(FormRefused) as refused:
        parse_form(b"state=a&age_token=t&state=b")
    assert refused.value.reason == "malformed_form"


def test_more_fields_than_the_limit_are_refused() -> None:
    allowed = "&".join(f"f{i}=1" for i in range(MAX_FORM_FIELDS)).encode()
    assert len(parse_form(allowed)) == MAX_FORM_FIELDS
    with pytest.raises(FormRefused):
        parse_form(allowed + b"&one=more")


def test_raw_non_ascii_is_refused() -> None:
    with pytest.raises(FormRefused):
        parse_form("state=é".encode())


def test_bytes_over_the_limit_are_refused_unparsed() -> None:
    with pytest.raises(FormRefused) as refused:
        parse_form(b"a=" + b"x" * MAX_FORM_BYTES)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    ("headers", "status", "reason"),
    [
        ([], 415, "unsupported_media_type"),
        ([(b"content-type", b"multipart/form-data; boundary=x")], 415, "unsupported_media_type"),
        ([(b"content-type", b"text/plain")], 415, "unsupported_media_type"),
        ([FORM, FORM], 415, "unsupported_media_type"),
        ([FORM, (b"content-length", b"65537")], 413, "body_too_large"),
        ([FORM, (b"content-length", b"9" * 5000)], 413, "body_too_large"),
        ([FORM, (b"content-length", b"-1")], 400, "malformed_form"),
    ],
)
def test_a_head_that_is_not_a_small_form_is_refused(
    headers: list[tuple[bytes, bytes]], status: int, reason: str
) -> None:
    with pytest.raises(FormRefused) as refused:
        check_form_head(headers)
    assert (refused.value.status, refused.value.reason) == (status, reason)


def test_a_small_form_head_passes() -> None:
    check_form_head([(b"content-type", b"Application/X-WWW-Form-Urlencoded; charset=UTF-8")])
    check_form_head([FORM, (b"content-length", str(MAX_FORM_BYTES).encode())])


def test_declares_body() -> None:
    assert not declares_body([FORM])
    assert not declares_body([(b"content-length", b"0")])
    assert declares_body([(b"content-length", b"12")])
    assert declares_body([(b"transfer-encoding", b"chunked")])


class _Receive:
    """An ASGI receive that hands out ``chunks`` and counts what was taken."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.taken = 0

    async def __call__(self) -> Message:
        index = self.taken
        self.taken += 1
        return {
            "type": "http.request",
            "body": self.chunks[index],
            "more_body": index + 1 < len(self.chunks),
        }


async def test_reading_stops_at_the_first_chunk_past_the_limit() -> None:
    receive = _Receive([b"x" * 40_000] * 500)  # 20 MB offered
    with pytest.raises(FormRefused) as refused:
        await read_form_body(receive)
    assert refused.value.status == 413
    assert receive.taken == 2  # 80,000 bytes > 64 KiB: nothing more was asked for


async def test_a_body_within_the_limit_is_read_whole() -> None:
    receive = _Receive([b"a=1", b"&b=", b"x" * (MAX_FORM_BYTES - 6)])
    assert len(await read_form_body(receive)) == MAX_FORM_BYTES


async def test_a_client_leaving_is_a_refusal() -> None:
    async def gone() -> Message:
        return {"type": "http.disconnect"}

    with pytest.raises(FormRefused):
        await read_form_body(gone)
