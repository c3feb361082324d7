"""Cookie header parsing, stripping and Set-Cookie building (gateway/core/cookies.py)."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.cookies import (
    clear_cookie,
    get_cookie,
    parse_cookie_header,
    set_cookie,
    strip_cookies,
)

SESSION = "__Host-agegate"
CHALLENGE = "__Host-agegate-challenge"

cookie_names = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='=;," \\'),
    min_size=1,
    max_size=20,
)
token_names = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=20,
)
cookie_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\'),
    max_size=40,
)


def test_public_names_import() -> None:
    module = importlib.import_module("gateway.core.cookies")
    for name in module.__all__:
        assert getattr(module, name) is not None


class TestParse:
    def test_simple_pairs(self) -> None:
        assert parse_cookie_header("a=1; b=2;c=3") == {"a": "1", "b": "2", "c": "3"}

    def test_bytes_input(self) -> None:
        assert parse_cookie_header(b"a=1; b=x=y") == {"a": "1", "b": "x=y"}

    def test_first_occurrence_wins(self) -> None:
        # RFC 6265 §5.4: the more specific (longer path) cookie comes first.
        assert parse_cookie_header(f"{SESSION}=first; {SESSION}=second") == {SESSION: "first"}

    def test_quoted_value_is_unwrapped(self) -> None:
        assert parse_cookie_header('a="quoted value"') == {"a": "quoted value"}

    def test_lone_quote_is_kept(self) -> None:
        assert parse_cookie_header('a="') == {"a": '"'}

    def test_whitespace_around_pairs_is_ignored(self) -> None:
        assert parse_cookie_header("  a = 1 ;\tb=2\t") == {"a": "1", "b": "2"}

    def test_items_without_name_or_equals_are_skipped(self) -> None:
        assert parse_cookie_header("novalue; =x; ;; a=1") == {"a": "1"}

    def test_empty_value(self) -> None:
        assert parse_cookie_header("a=") == {"a": ""}

    def test_empty_header(self) -> None:
        assert parse_cookie_header("") == {}
        assert parse_cookie_header(b"") == {}

    def test_non_utf8_bytes_do_not_raise(self) -> None:
        assert parse_cookie_header(b"a=\xff\xfe; b=2") == {"a": "\xff\xfe", "b": "2"}

    def test_names_are_case_sensitive(self) -> None:
        assert parse_cookie_header("__host-agegate=x").get(SESSION) is None

    @given(st.one_of(st.text(), st.binary()))
    def test_never_raises(self, header: str | bytes) -> None:
        result = parse_cookie_header(header)
        assert all(isinstance(k, str) and k for k in result)
        assert all(isinstance(v, str) for v in result.values())

    @given(st.lists(st.tuples(cookie_names, cookie_values), max_size=8))
    def test_round_trip_first_wins(self, pairs: list[tuple[str, str]]) -> None:
        header = "; ".join(f"{name}={value}" for name, value in pairs)
        expected: dict[str, str] = {}
        for name, value in pairs:
            # A value wrapped in quotes is unwrapped; a bare '"' cannot occur here.
            expected.setdefault(name, value)
        assert parse_cookie_header(header) == expected


class TestGetCookie:
    def test_reads_over_several_cookie_headers(self) -> None:
        headers = [
            (b"host", b"shop.example"),
            (b"cookie", b"a=1"),
            (b"Cookie", f"{SESSION}=v1.abc".encode()),
        ]
        assert get_cookie(headers, SESSION) == "v1.abc"
        assert get_cookie(headers, "a") == "1"

    def test_first_header_wins(self) -> None:
        headers = [(b"cookie", b"a=first"), (b"cookie", b"a=second")]
        assert get_cookie(headers, "a") == "first"

    def test_absent(self) -> None:
        assert get_cookie([(b"host", b"x")], SESSION) is None
        assert get_cookie([], SESSION) is None

    def test_other_headers_are_not_read(self) -> None:
        assert get_cookie([(b"x-cookie", f"{SESSION}=x".encode())], SESSION) is None


@given(
    st.lists(st.binary(max_size=60), min_size=1, max_size=3),
    st.sampled_from([SESSION, "a", "b", " a", "a=", '"']),
)
def test_get_cookie_reads_as_the_parser_does(values: list[bytes], name: str) -> None:
    headers = [(b"cookie", v) for v in values]
    expected = next((p[name] for p in map(parse_cookie_header, values) if name in p), None)
    assert get_cookie(headers, name) == expected


@given(st.text(alphabet='ab=; \t"', max_size=30), st.sampled_from(["a", "b", "ab"]))
def test_get_cookie_matches_parser_on_dense_input(value: str, name: str) -> None:
    assert get_cookie([(b"cookie", value.encode())], name) == parse_cookie_header(value).get(name)


@given(
    st.lists(
        st.sampled_from([SESSION, CHALLENGE, "=", ";", " ", "\t", "x", '"', "a="]), max_size=14
    )
)
def test_get_cookie_finds_our_name_among_lookalikes_as_the_parser_does(parts: list[str]) -> None:
    value = "".join(parts)
    for name in (SESSION, CHALLENGE):
        assert get_cookie([(b"cookie", value.encode())], name) == parse_cookie_header(value).get(
            name
        )


OURS = frozenset({SESSION.encode(), CHALLENGE.encode()})


class TestStrip:
    def test_removes_ours_keeps_others_in_order(self) -> None:
        value = f"a=1; {SESSION}=s; b=2; {CHALLENGE}=c; {SESSION}=dup".encode()
        assert strip_cookies(value, OURS) == b"a=1; b=2"

    def test_nothing_left_is_empty(self) -> None:
        assert strip_cookies(f"{SESSION}=s".encode(), OURS) == b""

    def test_keeps_bytes_of_other_cookies(self) -> None:
        assert strip_cookies(b'x="a b"; y=\xff; z', OURS) == b'x="a b"; y=\xff; z'

    def test_separators_are_normalised(self) -> None:
        assert strip_cookies(b"a=1;b=2 ;; c=3", OURS) == b"a=1; b=2; c=3"

    @pytest.mark.parametrize("space", [b"\x0b", b"\x1c", b"\x85", b"\xa0", b"\t"])
    def test_strips_names_any_parser_could_read_as_ours(self, space: bytes) -> None:
        # Not whitespace to us, but Python's str.strip() and some upstream
        # parsers trim them; such a cookie must not reach the site.
        value = space + SESSION.encode() + space + b"=v; a=1"
        assert strip_cookies(value, OURS) == b"a=1"

    def test_our_name_without_value_is_stripped(self) -> None:
        assert strip_cookies(f"{SESSION}; a=1".encode(), OURS) == b"a=1"

    @given(st.lists(st.tuples(cookie_names, cookie_values), max_size=8), st.booleans())
    def test_nothing_readable_as_ours_survives(
        self, pairs: list[tuple[str, str]], ours_first: bool
    ) -> None:
        mixed = [(SESSION, "secret"), *pairs] if ours_first else [*pairs, (SESSION, "secret")]
        header = "; ".join(f"{n}={v}" for n, v in mixed).encode()
        stripped = [(b"cookie", strip_cookies(header, OURS))]
        assert get_cookie(stripped, SESSION) is None
        before = parse_cookie_header(header)
        for name, _ in pairs:
            if name not in (SESSION, CHALLENGE):
                assert get_cookie(stripped, name) == before[name]

    @given(st.binary(max_size=200))
    def test_never_raises_and_never_leaves_ours(self, header: bytes) -> None:
        stripped = strip_cookies(header, OURS)
        assert get_cookie([(b"cookie", stripped)], SESSION) is None
        assert get_cookie([(b"cookie", stripped)], CHALLENGE) is None


class TestSetCookie:
    def test_session_cookie_attributes(self) -> None:
        header = set_cookie(SESSION, "v1.abcd1234.xyz", max_age=3600)
        assert header == (
            b"__Host-agegate=v1.abcd1234.xyz; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Lax"
        )
        assert b"Domain" not in header

    def test_challenge_cookie_same_site_none(self) -> None:
        header = set_cookie(CHALLENGE, "v", max_age=600, same_site="None")
        assert header.endswith(b"; Secure; HttpOnly; SameSite=None")
        assert b"Max-Age=600" in header

    def test_browser_session_cookie_has_no_max_age(self) -> None:
        assert b"Max-Age" not in set_cookie("a", "b", max_age=None)

    def test_negative_max_age_is_zero(self) -> None:
        assert b"Max-Age=0" in set_cookie("a", "b", max_age=-5)

    def test_same_site_is_normalised(self) -> None:
        assert set_cookie("a", "b", max_age=1, same_site="strict").endswith(b"SameSite=Strict")

    @pytest.mark.parametrize(
        "value", ["a;b", "a\r\nSet-Cookie: x=y", "a b", 'a"b', "a,b", "a\\b", "é", "a\x00"]
    )
    def test_header_injection_refused(self, value: str) -> None:
        with pytest.raises(ValueError, match="cookie-octet"):
            set_cookie("a", value, max_age=1)

    @pytest.mark.parametrize("name", ["", "a b", "a=b", "a;b", "a\n", "ä"])
    def test_bad_names_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match="token"):
            set_cookie(name, "v", max_age=1)

    def test_bad_same_site_refused(self) -> None:
        with pytest.raises(ValueError, match="same_site"):
            set_cookie("a", "b", max_age=1, same_site="Sometimes")

    def test_none_without_secure_refused(self) -> None:
        with pytest.raises(ValueError, match="requires Secure"):
            set_cookie("a", "b", max_age=1, same_site="None", secure=False)

    def test_host_prefix_rules(self) -> None:
        with pytest.raises(ValueError, match="__Host-"):
            set_cookie(SESSION, "v", max_age=1, secure=False)
        with pytest.raises(ValueError, match="__Host-"):
            set_cookie(SESSION, "v", max_age=1, path="/wine")
        with pytest.raises(ValueError, match="__Secure-"):
            set_cookie("__Secure-x", "v", max_age=1, secure=False)

    def test_path_must_be_absolute(self) -> None:
        with pytest.raises(ValueError, match="path"):
            set_cookie("a", "v", max_age=1, path="wine")

    def test_optional_flags(self) -> None:
        header = set_cookie("a", "b", max_age=1, http_only=False, secure=False, path="/x")
        assert header == b"a=b; Max-Age=1; Path=/x; SameSite=Lax"

    @given(token_names, cookie_values)
    def test_browser_parse_round_trip(self, name: str, value: str) -> None:
        header = set_cookie(name, value, max_age=10)
        first = header.split(b";", 1)[0].decode()
        assert parse_cookie_header(first) == {name: value}


class TestClearCookie:
    def test_session(self) -> None:
        header = clear_cookie(SESSION)
        assert header.startswith(b"__Host-agegate=; Max-Age=0; Path=/; Secure; HttpOnly;")
        assert b"SameSite=Lax" in header
        assert header.endswith(b"Expires=Thu, 01 Jan 1970 00:00:00 GMT")

    def test_challenge_keeps_same_site_none(self) -> None:
        assert b"SameSite=None" in clear_cookie(CHALLENGE, same_site="None")
