"""gateway.core.paths: one named test per SPEC §6 case and known bypass, plus properties."""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import gateway.core.paths
from gateway.core.paths import canonical_path, split_target
from gateway.errors import BadRequest


def refused(raw: bytes | str, *, allow_semicolons: bool = False) -> str:
    """The reason code canonical_path refuses ``raw`` with (fails if it accepts it)."""
    with pytest.raises(BadRequest) as info:
        canonical_path(raw, allow_semicolons=allow_semicolons)
    assert info.value.status == 400
    return info.value.reason


def target_refused(raw: bytes) -> str:
    with pytest.raises(BadRequest) as info:
        split_target(raw)
    assert info.value.status == 400
    return info.value.reason


def test_public_names_import() -> None:
    assert gateway.core.paths.__all__ == ["canonical_path", "split_target"]
    for name in gateway.core.paths.__all__:
        assert callable(getattr(gateway.core.paths, name))


# --- accepted and rewritten -------------------------------------------------


def test_plain_path_is_unchanged() -> None:
    assert canonical_path(b"/wine/red") == "/wine/red"
    assert canonical_path(b"/") == "/"
    assert canonical_path(b"/a-b_c.d~e/!$&'()*+,=:@") == "/a-b_c.d~e/!$&'()*+,=:@"


def test_encoded_dot_segments_are_resolved() -> None:
    # %2e decoded *before* dot-segment removal: the classic prefix bypass.
    assert canonical_path(b"/static/%2e%2e/wine/red") == "/wine/red"
    assert canonical_path(b"/static/%2E%2E/wine/red") == "/wine/red"
    assert canonical_path(b"/static/.%2e/wine/red") == "/wine/red"
    assert canonical_path(b"/wine/%2e/red") == "/wine/red"


def test_plain_dot_segments_are_resolved() -> None:
    assert canonical_path(b"/static/../wine/red") == "/wine/red"
    assert canonical_path(b"/./wine/./red") == "/wine/red"


def test_dot_segments_never_climb_above_root() -> None:
    assert canonical_path(b"/../../etc/passwd") == "/etc/passwd"
    assert canonical_path(b"/%2e%2e/%2e%2e/wine") == "/wine"
    assert canonical_path(b"/..") == "/"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # RFC 3986 §5.2.4 worked example, and the §5.4 dot-segment results as absolute paths.
        ("/a/b/c/./../../g", "/a/g"),
        ("/a/b/c/.", "/a/b/c/"),
        ("/a/b/c/./", "/a/b/c/"),
        ("/a/b/c/..", "/a/b/"),
        ("/a/b/c/../", "/a/b/"),
        ("/a/b/c/../g", "/a/b/g"),
        ("/a/b/c/../..", "/a/"),
        ("/a/b/c/../../g", "/a/g"),
        ("/a/b/c/../../../g", "/g"),
        ("/a/b/c/../../../../g", "/g"),
        ("/./g", "/g"),
        ("/../g", "/g"),
        ("/a/b/c/g.", "/a/b/c/g."),
        ("/a/b/c/.g", "/a/b/c/.g"),
        ("/a/b/c/g..", "/a/b/c/g.."),
        ("/a/b/c/..g", "/a/b/c/..g"),
        ("/a/b/c/./../g", "/a/b/g"),
        ("/a/b/c/./g/.", "/a/b/c/g/"),
        ("/a/b/c/g/./h", "/a/b/c/g/h"),
        ("/a/b/c/g/../h", "/a/b/c/h"),
    ],
)
def test_rfc3986_remove_dot_segments_vectors(raw: str, expected: str) -> None:
    assert canonical_path(raw) == expected


def test_percent_encoded_letters_in_protected_prefix_are_decoded() -> None:
    assert canonical_path(b"/w%69ne/red") == "/wine/red"
    assert canonical_path(b"/%77%69%6E%65/red") == "/wine/red"
    assert canonical_path(b"/wine%2dshop/%7euser") == "/wine-shop/~user"


def test_duplicate_slashes_are_collapsed() -> None:
    assert canonical_path(b"//wine///red") == "/wine/red"
    assert canonical_path(b"/wine//") == "/wine/"
    assert canonical_path(b"//") == "/"


def test_trailing_slash_is_kept() -> None:
    assert canonical_path(b"/wine/") == "/wine/"
    assert canonical_path(b"/wine") == "/wine"


def test_reserved_escapes_stay_encoded_with_upper_case_hex() -> None:
    assert canonical_path(b"/a%3fb") == "/a%3Fb"
    assert canonical_path(b"/a%21b%3a%40") == "/a%21b%3A%40"
    assert canonical_path(b"/caf%c3%a9") == "/caf%C3%A9"


def test_double_encoded_dot_stays_literal() -> None:
    # %25 is not unreserved, so one decoding pass leaves a literal "%2e%2e" segment.
    assert canonical_path(b"/static/%252e%252e/wine") == "/static/%252e%252e/wine"
    assert canonical_path(b"/static/%252E%252E/wine") == "/static/%252E%252E/wine"


def test_double_encoded_slash_stays_literal() -> None:
    assert canonical_path(b"/static%252fwine") == "/static%252fwine"


def test_overlong_utf8_dot_is_not_a_dot() -> None:
    # IIS-era bypass: %c0%ae is an invalid (overlong) UTF-8 '.', never a dot here.
    assert canonical_path(b"/static/%c0%ae%c0%ae/wine") == "/static/%C0%AE%C0%AE/wine"


def test_raw_non_ascii_is_percent_encoded() -> None:
    assert canonical_path("/café") == "/caf%C3%A9"
    assert canonical_path(b"/caf\xc3\xa9") == "/caf%C3%A9"
    assert canonical_path(b"/\xff") == "/%FF"
    # A full-width dot (U+FF0E) is not a dot segment.
    assert canonical_path("/static/\uff0e\uff0e/wine") == "/static/%EF%BC%8E%EF%BC%8E/wine"


def test_characters_outside_pchar_are_percent_encoded() -> None:
    assert canonical_path(b"/{x}|<y>") == "/%7Bx%7D%7C%3Cy%3E"
    assert canonical_path(b"/a b") == "/a%20b"


def test_str_and_bytes_give_the_same_result() -> None:
    assert canonical_path("/w%69ne/../x") == canonical_path(b"/w%69ne/../x") == "/x"


def test_query_is_not_part_of_path_cve_2025_54576() -> None:
    # oauth2-proxy's skip_auth_routes matched the query too: "/public?x=/wine/" must stay /public.
    host, path, query = split_target(b"/public?x=/wine/")
    assert (host, path, query) == (None, b"/public", b"x=/wine/")
    assert canonical_path(path) == "/public"
    assert canonical_path(b"/public?/../wine/red") == "/public"
    assert canonical_path(b"/wine/red?/public") == "/wine/red"


# --- refused ----------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"/wine%2Fred", b"/wine%2fred", b"/%2F", b"/static%2F..%2Fwine"])
def test_encoded_slash_is_refused(raw: bytes) -> None:
    assert refused(raw) == "encoded_slash"


@pytest.mark.parametrize("raw", [b"/static\\..\\wine", b"/wine\\", b"/a%5Cb", b"/a%5cb"])
def test_backslash_refused(raw: bytes) -> None:
    assert refused(raw) == "backslash"


@pytest.mark.parametrize("raw", [b"/wine\x00.html", b"/wine%00.html"])
def test_nul_refused(raw: bytes) -> None:
    assert refused(raw) == "control_character"


@pytest.mark.parametrize(
    "raw",
    [b"/a\tb", b"/a\rb", b"/a\nb", b"/a\x7fb", b"/a%0ab", b"/a%0D%0Ab", b"/a%1fb", b"/a%7Fb"],
)
def test_control_characters_refused(raw: bytes) -> None:
    assert refused(raw) == "control_character"


@pytest.mark.parametrize("raw", [b"/a%zzb", b"/a%4", b"/a%", b"/%g0", b"/%0g", b"/%%41"])
def test_bad_percent_escape_refused(raw: bytes) -> None:
    assert refused(raw) == "bad_percent_escape"


def test_matrix_semicolon_refused_tomcat_style() -> None:
    # Tomcat strips ";params" per segment, so "/static/..;/wine" reaches /wine upstream.
    assert refused(b"/static/..;/wine/red") == "semicolon"
    assert refused(b"/static/..%3b/wine/red") == "semicolon"
    assert refused(b"/wine;jsessionid=1/red") == "semicolon"
    assert refused(b"/wine%3Bx") == "semicolon"


def test_semicolons_allowed_when_configured() -> None:
    assert canonical_path(b"/a;v=1/b", allow_semicolons=True) == "/a;v=1/b"
    # %3B is a reserved escape: it stays encoded, distinct from a raw ';'.
    assert canonical_path(b"/a%3bv", allow_semicolons=True) == "/a%3Bv"


def test_dot_segment_with_parameters_refused_even_when_semicolons_allowed() -> None:
    assert refused(b"/static/..;/wine", allow_semicolons=True) == "semicolon"
    assert refused(b"/static/%2e%2e;x=1/wine", allow_semicolons=True) == "semicolon"
    assert refused(b"/static/.;/wine", allow_semicolons=True) == "semicolon"


@pytest.mark.parametrize("raw", [b"/wine#x", b"/wine?a#b", b"#/wine"])
def test_fragment_refused(raw: bytes) -> None:
    assert refused(raw) == "fragment"


@pytest.mark.parametrize("raw", [b"", b"wine", b"*", b"http://x/wine", b"?/wine"])
def test_not_origin_form_refused(raw: bytes) -> None:
    assert refused(raw) == "not_origin_form"


def test_str_that_is_not_text_is_refused() -> None:
    assert refused("/a\ud800b") in {"bad_encoding", "control_character"}


# --- split_target -------------------------------------------------------------


def test_split_origin_form() -> None:
    assert split_target(b"/p?q=1&r") == (None, b"/p", b"q=1&r")
    assert split_target(b"/p") == (None, b"/p", b"")
    assert split_target(b"/p?") == (None, b"/p", b"")
    assert split_target(b"/p?a?b") == (None, b"/p", b"a?b")


def test_split_absolute_form_lowercases_host_and_drops_port() -> None:
    assert split_target(b"http://Host:80/p?q") == ("host", b"/p", b"q")
    assert split_target(b"HTTPS://Shop.Example/wine/red") == ("shop.example", b"/wine/red", b"")
    assert split_target(b"http://shop.example:/x") == ("shop.example", b"/x", b"")


def test_split_absolute_form_empty_path_is_root() -> None:
    assert split_target(b"http://shop.example") == ("shop.example", b"/", b"")
    assert split_target(b"http://shop.example?x=1") == ("shop.example", b"/", b"x=1")


def test_split_absolute_form_ipv6_host() -> None:
    assert split_target(b"http://[::1]:8080/p") == ("::1", b"/p", b"")
    assert split_target(b"http://[2001:DB8::1]/p") == ("2001:db8::1", b"/p", b"")


def test_split_absolute_form_keeps_raw_path_for_canonicalization() -> None:
    host, path, _ = split_target(b"http://shop.example/static/%2e%2e/wine")
    assert host == "shop.example"
    assert canonical_path(path) == "/wine"


@pytest.mark.parametrize("raw", [b"*", b"shop.example:443", b"ftp://shop.example/", b"", b"x"])
def test_asterisk_authority_form_and_other_schemes_refused(raw: bytes) -> None:
    assert target_refused(raw) == "not_origin_form"


@pytest.mark.parametrize(
    "raw",
    [
        b"http://user@shop.example/",
        b"http://shop.example@evil.example/",
        b"http://shop.example:8x/",
        b"http://shop.example:123456/",
        b"http:///wine",
        b"http://[::1/",
        b"http://sh%6fp.example/",
        b"http://sh\xc3\xb6p/",
    ],
)
def test_malformed_authority_refused(raw: bytes) -> None:
    assert target_refused(raw) == "bad_authority"


def test_split_fragment_refused() -> None:
    assert target_refused(b"/wine#red") == "fragment"
    assert target_refused(b"http://shop.example/wine?a#b") == "fragment"


# --- properties ---------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "/", "//", ".", "..", "%2e", "%2E", "%2e%2e", "a", "wine", "%41", "%7e", "~", "-",
        "%c3%a9", "é", "%25", "%252e", "%21", "!", ":", "@", "+", " ", "{", "%3a", "?", "x",
    ]
)  # fmt: skip
_PATHS = st.lists(_PIECES, max_size=12).map(lambda parts: "/" + "".join(parts))
_SEGMENTS = st.one_of(
    st.sampled_from(["/", "//", ".", ".."]),
    st.from_regex(r"[A-Za-z0-9._~-]{1,4}", fullmatch=True),
)
_UNRESERVED_PATHS = st.lists(_SEGMENTS, max_size=12).map(lambda parts: "/" + "/".join(parts))
_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def _canonical_or_none(raw: bytes | str) -> str | None:
    try:
        return canonical_path(raw)
    except BadRequest:
        return None


@given(st.one_of(_PATHS, st.binary(max_size=40).map(lambda b: b"/" + b)))
@example("/%2e%2e/%2E./a//b/.")
def test_property_idempotent(raw: bytes | str) -> None:
    once = _canonical_or_none(raw)
    if once is not None:
        assert canonical_path(once) == once


@given(st.one_of(_PATHS, st.binary(max_size=40).map(lambda b: b"/" + b)))
def test_property_output_is_canonical(raw: bytes | str) -> None:
    out = _canonical_or_none(raw)
    if out is None:
        return
    assert out.startswith("/")
    assert out.isascii()
    assert "//" not in out
    assert "\\" not in out
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in out)
    assert not {".", ".."} & set(out.split("/"))
    # Every remaining escape is upper-case hex and never an unreserved character.
    for escape in re.findall(r"%(..)", out):
        assert escape == escape.upper()
        assert chr(int(escape, 16)) not in _UNRESERVED


@given(_UNRESERVED_PATHS)
def test_property_unreserved_paths_match_normpath(raw: str) -> None:
    out = canonical_path(raw)
    expected = posixpath.normpath(re.sub("/+", "/", raw))
    assert (out.rstrip("/") or "/") == expected
    last = raw.rsplit("/", 1)[1]
    assert out.endswith("/") == (out == "/" or last in {"", ".", ".."})


@given(_UNRESERVED_PATHS, st.randoms(use_true_random=False))
def test_property_encoding_unreserved_changes_nothing(raw: str, rnd: object) -> None:
    encoded = "".join(
        f"%{ord(c):02x}" if c != "/" and rnd.random() < 0.5 else c  # type: ignore[attr-defined]
        for c in raw
    )
    assert canonical_path(encoded) == canonical_path(raw)


@given(st.binary(max_size=64), st.booleans())
def test_property_random_bytes_raise_only_bad_request(raw: bytes, allow: bool) -> None:
    for candidate in (raw, b"/" + raw):
        try:
            canonical_path(candidate, allow_semicolons=allow)
        except BadRequest as exc:
            assert exc.status == 400
    try:
        split_target(raw)
    except BadRequest as exc:
        assert exc.status == 400


@given(st.text(max_size=40))
def test_property_random_text_raises_only_bad_request(raw: str) -> None:
    try:
        out = canonical_path("/" + raw)
    except BadRequest:
        return
    assert out.isascii()


@given(_PATHS.filter(lambda p: ";" not in p))
def test_property_allow_semicolons_changes_nothing_without_semicolons(raw: str) -> None:
    out = _canonical_or_none(raw)
    if out is not None:
        assert canonical_path(raw, allow_semicolons=True) == out


_QUERY = st.from_regex(r"[ -\"$-~]{0,20}", fullmatch=True)  # printable ASCII without '#'


@given(st.from_regex(r"/[a-z0-9/._~-]{0,20}", fullmatch=True), _QUERY)
def test_property_query_never_changes_path(path: str, query: str) -> None:
    host, raw_path, raw_query = split_target(f"{path}?{query}".encode())
    assert (host, raw_path, raw_query) == (None, path.encode(), query.encode())
    assert canonical_path(f"{path}?{query}") == canonical_path(path)
