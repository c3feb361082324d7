"""Path globs: matching, pattern errors, and exact language inclusion (shadowing)."""

from __future__ import annotations

import itertools
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.matcher import PathPattern, glob_match, language_includes, match_key

# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/wine/**", "/wine", True),
        ("/wine/**", "/wine/", True),
        ("/wine/**", "/wine/red", True),
        ("/wine/**", "/wine/red/x", True),
        ("/wine/**", "/winery", False),
        ("/wine/**", "/wine-cellar/x", False),
        ("/wine/**", "/", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/", "/", True),
        ("/", "/x", False),
        ("/wine", "/wine", True),
        ("/wine", "/wine/", True),  # a trailing slash is not significant
        ("/wine", "/wine/red", False),
        ("/wine/*", "/wine/red", True),
        ("/wine/*", "/wine", False),  # * is exactly one segment
        ("/wine/*", "/wine/", False),
        ("/wine/*", "/wine/red/x", False),
        ("/*/red", "/wine/red", True),
        ("/*/red", "/red", False),
        ("/a/**/z", "/a/z", True),
        ("/a/**/z", "/a/b/c/z", True),
        ("/a/**/z", "/a/b/c/y", False),
        ("/a/**/b/**/c", "/a/x/b/y/c", True),
        ("/a/**/b/**/c", "/a/b/c", True),
        ("/a/**/b/**/c", "/a/c/b", False),
        ("/a/**/b/**/c", "/a/x/y/b/c/z", False),
        ("/a/**/b/**/c", "/a//b/c", False),  # '//' is never canonical: fail closed
        ("/caf%C3%A9", "/caf%C3%A9", True),
        ("/café", "/caf%C3%A9", True),  # non-ASCII in a pattern is written as UTF-8 escapes
        ("/a%20b", "/a%20b", True),
        ("/a%2a", "/a%2A", True),  # escapes are stored in upper-case hex, as paths.py emits
    ],
)
def test_glob_matching(pattern: str, path: str, expected: bool) -> None:
    assert PathPattern.compile(pattern).matches(path) is expected


def test_literal_segments_are_case_sensitive_by_default() -> None:
    pattern = PathPattern.compile("/Wine/**")
    assert pattern.matches("/Wine/red")
    assert not pattern.matches("/wine/red")
    assert not pattern.matches("/WINE/red")


def test_case_insensitive_patterns_fold_ascii_only() -> None:
    pattern = PathPattern.compile("/wine/**", case_insensitive=True)
    assert pattern.matches("/WINE/Red")
    assert pattern.matches("/Wine")
    # KELVIN SIGN lower-cases to 'k' in Unicode; it must not match a 'k' literal.
    kilo = PathPattern.compile("/k", case_insensitive=True)
    assert kilo.matches("/K")
    assert not kilo.matches("/\u212a")


def test_case_insensitive_multi_globstar_path_uses_same_folding() -> None:
    pattern = PathPattern.compile("/A/**/B/**", case_insensitive=True)
    assert pattern.matches("/a/x/b")
    assert pattern.matches("/A/x/y/B/z")
    assert not PathPattern.compile("/k/**/x/**", case_insensitive=True).matches("/\u212a/x")


def test_consecutive_globstars_collapse() -> None:
    assert PathPattern.compile("/a/**/**/b").segments == ("a", "**", "b")


def test_trailing_slash_in_pattern_is_dropped() -> None:
    assert PathPattern.compile("/wine/").text == "/wine"


def test_match_key_drops_trailing_slash_and_makes_root_empty() -> None:
    assert match_key("/") == ""
    assert match_key("/wine/") == "/wine"
    assert match_key("/wine") == "/wine"


def test_many_globstars_stay_linear_on_hostile_paths() -> None:
    """A regex with several ``(?:/[^/]+)*`` groups backtracks polynomially; ours must not."""
    pattern = PathPattern.compile("/**/a/**/a/**/a/**/a/**/z")
    hostile = "/" + "/".join(["a"] * 3000) + "/y"
    started = time.perf_counter()
    assert not pattern.matches(hostile)
    assert time.perf_counter() - started < 1.0


def test_single_globstar_regex_is_fast_on_long_paths() -> None:
    pattern = PathPattern.compile("/a/**/z")
    hostile = "/a" + "/a" * 20000 + "/y"
    started = time.perf_counter()
    assert not pattern.matches(hostile)
    assert time.perf_counter() - started < 1.0


# --- pattern errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("wine/**", "must start with '/'"),
        ("/static/*.css", "whole segment"),
        ("/static/x**", "whole segment"),
        ("/a//b", "empty segment"),
        ("/a/../b", "dot segment"),
        ("/a/./b", "dot segment"),
        ("/a?x=1", "query"),
        ("/a#top", "'#'"),
        ("/a b", "percent-encoded (%20)"),
        ("/a\\b", "percent-encoded (%5C)"),
        ("/%zz", "two hex digits"),
        ("/%4", "two hex digits"),
        ("/%61", "write 'a'"),
        ("/a%2Fb", "can never match"),
        ("/a%5cb", "can never match"),
        ("/a%00", "can never match"),
    ],
)
def test_bad_patterns_are_refused_with_a_reason(pattern: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        PathPattern.compile(pattern)


def test_non_string_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="path pattern"):
        PathPattern.compile(42)


# --- inclusion --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("/**", "/wine/**", True),
        ("/**", "/", True),
        ("/wine/**", "/wine/red", True),
        ("/wine/**", "/wine", True),
        ("/wine/**", "/wine/*/x", True),
        ("/wine/**", "/**", False),
        ("/wine/red", "/wine/**", False),
        ("/*/red", "/wine/red", True),
        ("/wine/red", "/*/red", False),
        ("/*", "/wine", True),
        ("/*", "/", False),
        ("/**/z", "/a/**/z", True),
        ("/a/**/z", "/**/z", False),
        ("/**/a/**", "/x/a/y/a", True),
        ("/**/a/**", "/x/**", False),
        ("/*/**", "/**", False),  # /** also matches "/" which /*/** does not
        ("/*/**", "/x/**", True),
        ("/**", "/**", True),
    ],
)
def test_language_inclusion_examples(outer: str, inner: str, expected: bool) -> None:
    assert PathPattern.compile(outer).covers(PathPattern.compile(inner)) is expected


def test_case_insensitive_inclusion_compares_folded_literals() -> None:
    outer = PathPattern.compile("/wine/**", case_insensitive=True)
    inner = PathPattern.compile("/WINE/red", case_insensitive=True)
    assert outer.covers(inner)
    assert not PathPattern.compile("/wine/**").covers(PathPattern.compile("/WINE/red"))


# --- properties -------------------------------------------------------------------------

_TOKENS = st.sampled_from(["a", "b", "*", "**"])
_PATTERNS = st.lists(_TOKENS, max_size=4).map(lambda tokens: "/" + "/".join(tokens))
_PATHS = st.lists(st.sampled_from(["a", "b", "c"]), max_size=6)


def _reference_match(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    """Obviously-correct recursive definition of the glob language."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_reference_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    return head in ("*", path[0]) and _reference_match(rest, path[1:])


@settings(max_examples=400, deadline=None)
@given(_PATTERNS, _PATHS, st.booleans())
def test_matcher_agrees_with_reference(pattern: str, segments: list[str], slash: bool) -> None:
    compiled = PathPattern.compile(pattern)
    path = "/" + "/".join(segments) + ("/" if slash and segments else "")
    assert compiled.matches(path) is _reference_match(compiled.segments, tuple(segments))
    # The linear matcher (used for 2+ globstars) must agree on every pattern too.
    assert glob_match(compiled.segments, segments) is _reference_match(
        compiled.segments, tuple(segments)
    )


_ALL_SHORT_PATHS = [
    words for length in range(7) for words in itertools.product(["a", "b", "c"], repeat=length)
]


@settings(max_examples=400, deadline=None)
@given(_PATTERNS, _PATTERNS)
def test_inclusion_agrees_with_brute_force(outer_text: str, inner_text: str) -> None:
    """Over all paths up to 6 segments of a, b and c ('c' stands for a fresh segment)."""
    outer, inner = PathPattern.compile(outer_text), PathPattern.compile(inner_text)
    counterexample = any(
        _reference_match(inner.segments, path) and not _reference_match(outer.segments, path)
        for path in _ALL_SHORT_PATHS
    )
    assert language_includes(outer.segments, inner.segments) is not counterexample


@settings(max_examples=200, deadline=None)
@given(_PATTERNS)
def test_every_pattern_covers_itself_and_catch_all_covers_it(text: str) -> None:
    pattern = PathPattern.compile(text)
    assert pattern.covers(pattern)
    assert PathPattern.compile("/**").covers(pattern)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_compile_raises_only_value_error(text: str) -> None:
    try:
        pattern = PathPattern.compile(text)
    except ValueError:
        return
    assert pattern.text.startswith("/")
    assert pattern.text.isascii()
