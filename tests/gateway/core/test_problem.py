"""The one header stack of gateway-made responses (gateway/core/problem.py)."""

from __future__ import annotations

from gateway.browser import flow
from gateway.core.problem import SECURITY_HEADERS, response_headers


def _names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_security_headers_then_extras() -> None:
    headers = response_headers(200, b"text/plain", b"abc", [(b"retry-after", b"5")])
    assert _names(headers)[:3] == [b"date", b"content-type", b"content-length"]
    assert (b"content-length", b"3") in headers
    assert headers[3:-1] == list(SECURITY_HEADERS)
    assert headers[-1] == (b"retry-after", b"5")


def test_no_content_length_without_content() -> None:
    for status in (101, 204, 304):
        assert b"content-length" not in _names(response_headers(status, b"text/html", b""))


def test_browser_flow_uses_the_same_stack() -> None:
    response = flow._response(
        303, headers=[("location", "/wine")], cookies=[b"a=1; Path=/", b"b=; Max-Age=0"]
    )
    headers = response.raw_headers
    for header in SECURITY_HEADERS:
        assert headers.count(header) == 1
    assert (b"location", b"/wine") in headers
    assert [v for k, v in headers if k == b"set-cookie"] == [b"a=1; Path=/", b"b=; Max-Age=0"]
    assert _names(headers).count(b"content-type") == 1
    assert (b"content-length", b"0") in headers


def test_browser_flow_no_content_has_no_length() -> None:
    headers = flow._response(204).raw_headers
    assert b"content-length" not in _names(headers)
    assert (b"content-type", b"text/html; charset=utf-8") in headers
