"""The forward-auth answer's cookie headers (gateway/authz/endpoint.py ``site_cookie_headers``).

Over a real gateway and real nginx/Caddy: tests/security/test_forward_auth_attacks.py
and tests/integration/test_front_proxies.py.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.authz.endpoint import site_cookie_headers
from gateway.session.codec import CHALLENGE_COOKIE, SESSION_COOKIE

OURS = {SESSION_COOKIE.encode(), CHALLENGE_COOKIE.encode()}

names = st.one_of(
    st.sampled_from(sorted(OURS)),
    st.text(alphabet="abcXYZ_-.0123456789", min_size=1, max_size=8).map(str.encode),
    st.sampled_from([SESSION_COOKIE.lower().encode(), b"__Host-agegate-x", b"__Host-agegat"]),
)
values = st.text(alphabet="abc=/+{}\"' -", max_size=12).map(str.encode)
separators = st.sampled_from([b";", b"; ", b";\t", b" ; "])


def _pairs(value: bytes) -> list[bytes]:
    return [pair.strip() for pair in value.split(b";") if pair.strip()]


def test_answer_carries_the_visitor_cookies_without_agegates_own() -> None:
    headers = [(b"cookie", b"a=1; __Host-agegate=v1.k.x; b=2; __Host-agegate-challenge=y")]
    assert site_cookie_headers(headers, nginx_style=True) == [(b"x-agegate-cookie", b"a=1; b=2")]
    assert site_cookie_headers(headers, nginx_style=False) == [
        (b"x-agegate-cookie", b"a=1; b=2"),
        (b"cookie", b"a=1; b=2"),
    ]


def test_split_cookie_headers_are_joined() -> None:
    headers = [(b"cookie", b"a=1; __Host-agegate=s"), (b"accept", b"*/*"), (b"cookie", b"b=2")]
    assert site_cookie_headers(headers, nginx_style=True) == [(b"x-agegate-cookie", b"a=1; b=2")]


def test_only_agegate_cookies_leave_no_cookie_header() -> None:
    headers = [(b"cookie", b"__Host-agegate=s; __Host-agegate-challenge=c")]
    assert site_cookie_headers(headers, nginx_style=True) == []
    # Envoy keeps the client's header unless told to remove it.
    assert site_cookie_headers(headers, nginx_style=False) == [
        (b"x-envoy-auth-headers-to-remove", b"cookie")
    ]


def test_no_cookie_header_means_no_answer_header() -> None:
    assert site_cookie_headers([(b"accept", b"*/*")], nginx_style=False) == []


def test_a_control_byte_drops_the_whole_value() -> None:
    # The HTTP parser refuses these before the app; this keeps the answer's head whole anyway.
    for byte in (b"\r", b"\n", b"\x00", b"\x0b", b"\x7f"):
        headers = [(b"cookie", b"a=1" + byte + b"X-Agegate-Age-Over: 18; __Host-agegate=s")]
        assert site_cookie_headers(headers, nginx_style=True) == [], byte
    assert site_cookie_headers([(b"cookie", b"a=\t1")], nginx_style=True) == [
        (b"x-agegate-cookie", b"a=\t1")
    ]


@given(
    st.lists(
        st.lists(st.tuples(names, values, separators), max_size=6),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_agegate_cookies_never_reach_the_answer(
    headers: list[list[tuple[bytes, bytes, bytes]]], nginx_style: bool
) -> None:
    sent = [(b"cookie", b"".join(n + b"=" + v + sep for n, v, sep in h)) for h in headers]
    answer = dict(site_cookie_headers(sent, nginx_style=nginx_style))
    expected = [
        pair
        for _, value in sent
        for pair in _pairs(value)
        if pair.split(b"=", 1)[0].strip() not in OURS
    ]
    kept = answer.get(b"x-agegate-cookie")
    if not expected:
        assert kept is None and b"cookie" not in answer
        return
    assert kept is not None and _pairs(kept) == expected
    assert not {pair.split(b"=", 1)[0].strip() for pair in _pairs(kept)} & OURS
    assert answer.get(b"cookie") == (None if nginx_style else kept)


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=3), st.booleans())
def test_any_cookie_bytes_give_a_safe_answer(raw: list[bytes], nginx_style: bool) -> None:
    for name, value in site_cookie_headers([(b"cookie", r) for r in raw], nginx_style=nginx_style):
        assert value, name
        assert not any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value)
        if name != b"x-envoy-auth-headers-to-remove":
            assert not {p.split(b"=", 1)[0].strip() for p in value.split(b";")} & OURS
