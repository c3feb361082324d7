"""Path globs over canonical paths: compiled once at load, matched per request.

A pattern is a sequence of whole segments: a literal, ``*`` (exactly one
segment) or ``**`` (any number of segments, including none), so ``/wine/**``
matches ``/wine``, ``/wine/`` and ``/wine/red/x`` and ``/**`` matches every
path.  A glob *inside* a segment (``*.css``) is refused at load: with whole
segments only, "does rule A cover rule B" stays an exact, cheap question
(:meth:`PathPattern.covers`), which is what makes shadowed rules a load error.

Paths are matched in their canonical form (:func:`gateway.core.paths.canonical_path`):
no dot segments, no ``//``, unreserved characters decoded, other escapes in
upper-case hex.  A trailing slash is not significant: ``/wine`` and ``/wine/``
are the same resource to nearly every upstream, so a rule protecting one must
protect the other.

Matching uses one precompiled regular expression per pattern when that is
safe (at most one ``**``, which cannot backtrack badly), and a linear
segment-by-segment matcher otherwise, so no pattern can be made to take
polynomial time on a long hostile path.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ANY_DEPTH", "ANY_SEGMENT", "PathPattern", "ascii_lower", "match_key"]

ANY_SEGMENT = "*"
ANY_DEPTH = "**"

_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# RFC 3986 pchar without pct-encoded (checked on its own); '*' handled as a glob.
_LITERAL_CHARS = _UNRESERVED | frozenset("!$&'()+,;=:@")
_HEX = frozenset("0123456789abcdefABCDEF")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_SEGMENT_RE = "/[^/]+"


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, as HTTP compares case-insensitive tokens.

    ``str.lower`` would also fold non-ASCII (the Kelvin sign becomes ``k``),
    letting a path that is *not* the same to the upstream match a literal.
    """
    return text.translate(_ASCII_LOWER)


def match_key(path: str) -> str:
    """The form of a canonical path that patterns are matched against.

    Trailing slashes are dropped (``/wine/`` matches like ``/wine``) and the
    root becomes the empty string, so every segment is ``/`` + non-empty text.
    """
    return path.rstrip("/")


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled path glob; build it with :meth:`compile`."""

    text: str  # normalized form, e.g. "/wine/**"
    segments: tuple[str, ...]  # literals, "*" and "**"; () for "/"
    case_insensitive: bool = False
    _match: Callable[[str], bool] = field(repr=False, compare=False, default=bool)

    @classmethod
    def compile(cls, text: object, *, case_insensitive: bool = False) -> PathPattern:
        """Parse and compile ``text``; raises ``ValueError`` saying what is wrong."""
        segments = _parse(text)
        if case_insensitive:
            segments = tuple(ascii_lower(segment) for segment in segments)
        normalized = "/" + "/".join(segments)
        return cls(normalized, segments, case_insensitive, _compile(segments, case_insensitive))

    @property
    def is_catch_all(self) -> bool:
        """True for ``/**``, which matches every path."""
        return self.segments == (ANY_DEPTH,)

    def matches(self, path: str) -> bool:
        """Whether the canonical ``path`` is in this pattern's language."""
        return self._match(match_key(path))

    def matches_key(self, key: str) -> bool:
        """Like :meth:`matches` for a key already made by :func:`match_key` (hot path)."""
        return self._match(key)

    def covers(self, other: PathPattern) -> bool:
        """True when every path ``other`` matches is also matched by ``self``."""
        return language_includes(self.segments, other.segments)


def _parse(text: object) -> tuple[str, ...]:
    if not isinstance(text, str):
        raise ValueError(f"expected a path pattern such as /wine/**, got {text!r}")
    if not text.startswith("/"):
        raise ValueError(f"a path pattern must start with '/', got {text!r}")
    for bad, why in (("?", "the query string is never part of the matched path"), ("#", "")):
        if bad in text:
            raise ValueError(f"{bad!r} is not allowed in a path pattern {text!r}. {why}".strip())
    raw = text[1:].split("/") if text != "/" else []
    if raw and raw[-1] == "":
        raw.pop()  # a trailing slash is not significant
    segments: list[str] = []
    for segment in raw:
        checked = _check_segment(segment, text)
        if checked == ANY_DEPTH and segments and segments[-1] == ANY_DEPTH:
            continue  # "**/**" means the same as "**"
        segments.append(checked)
    return tuple(segments)


def _check_segment(segment: str, text: str) -> str:
    if segment == "":
        raise ValueError(f"empty segment ('//') in path pattern {text!r}")
    if segment in (ANY_SEGMENT, ANY_DEPTH):
        return segment
    if "*" in segment:
        raise ValueError(
            f"'*' and '**' must be a whole segment, got {segment!r} in {text!r}; "
            "globs inside a segment are not supported (use /static/** rather than /static/*.css)"
        )
    if segment in (".", ".."):
        raise ValueError(
            f"dot segment {segment!r} in {text!r} can never match: request paths are "
            "matched after '.' and '..' are resolved"
        )
    out: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "%":
            out.append(_check_escape(segment[index + 1 : index + 3], text))
            index += 3
            continue
        if ord(char) > 0x7F:
            # Canonical paths are ASCII: non-ASCII arrives percent-encoded as UTF-8.
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
        elif char in _LITERAL_CHARS:
            out.append(char)
        else:
            raise ValueError(
                f"character {char!r} is not allowed in path pattern {text!r}; "
                f"write it percent-encoded (%{ord(char):02X})"
            )
        index += 1
    return "".join(out)


def _check_escape(digits: str, text: str) -> str:
    if len(digits) != 2 or not set(digits) <= _HEX:
        raise ValueError(f"'%' must be followed by two hex digits in path pattern {text!r}")
    char = chr(int(digits, 16))
    if char in _UNRESERVED:
        raise ValueError(
            f"write {char!r} rather than '%{digits}' in {text!r}: request paths are matched "
            "with unreserved characters decoded, so the escape could never match"
        )
    if char in "/\\" or ord(char) < 0x20 or ord(char) == 0x7F:
        raise ValueError(
            f"'%{digits}' in {text!r} can never match: the gateway refuses such requests"
        )
    return "%" + digits.upper()


def _always(key: str) -> bool:
    return True


def _compile(segments: tuple[str, ...], case_insensitive: bool) -> Callable[[str], bool]:
    # The common shapes (/**, /a/b, /a/b/**) are plain string comparisons, cheaper
    # than a regex call, and they run for every rule on every request.
    # They rely on the key being canonical (no '//'), which match_key's callers ensure.
    globs = [segment for segment in segments if segment in (ANY_SEGMENT, ANY_DEPTH)]
    if segments == (ANY_DEPTH,):
        return _always
    if not case_insensitive and not globs:
        exact = "/" + "/".join(segments) if segments else ""
        return lambda key: key == exact
    if not case_insensitive and globs == [ANY_DEPTH] and segments[-1] == ANY_DEPTH:
        prefix = "/" + "/".join(segments[:-1])
        below = prefix + "/"
        return lambda key: key == prefix or key.startswith(below)
    if segments.count(ANY_DEPTH) <= 1:
        parts = []
        for segment in segments:
            if segment == ANY_SEGMENT:
                parts.append(_SEGMENT_RE)
            elif segment == ANY_DEPTH:
                parts.append(f"(?:{_SEGMENT_RE})*")
            else:
                parts.append("/" + re.escape(segment))
        flags = re.ASCII | (re.IGNORECASE if case_insensitive else 0)
        fullmatch = re.compile("".join(parts), flags).fullmatch
        return lambda key: fullmatch(key) is not None

    def match(key: str) -> bool:
        if case_insensitive:
            key = ascii_lower(key)
        parts = key.split("/")
        # parts[0] is "" before the leading '/'; an empty segment means '//', never canonical.
        return "" not in parts[1:] and glob_match(segments, parts[1:])

    return match


def glob_match(pattern: tuple[str, ...], path: list[str]) -> bool:
    """Linear-backtracking glob match over segments (``**`` restarts at most once per step).

    The classic wildcard algorithm: remember the last ``**`` and how much it
    has eaten; on a mismatch let it eat one more segment.  O(len(pattern) *
    len(path)) in the worst case, never exponential.
    """
    p = s = 0
    star_p = star_s = -1
    while s < len(path):
        if p < len(pattern) and pattern[p] == ANY_DEPTH:
            star_p, star_s = p, s
            p += 1
        elif p < len(pattern) and pattern[p] in (ANY_SEGMENT, path[s]):
            p += 1
            s += 1
        elif star_p >= 0:
            star_s += 1
            p, s = star_p + 1, star_s
        else:
            return False
    while p < len(pattern) and pattern[p] == ANY_DEPTH:
        p += 1
    return p == len(pattern)


def language_includes(outer: tuple[str, ...], inner: tuple[str, ...]) -> bool:
    """True when every path matched by ``inner`` is matched by ``outer``.

    Exact, by a product of ``inner``'s automaton with the subset automaton of
    ``outer``.  A wildcard of ``inner`` is instantiated with one *fresh*
    segment that equals no literal: if ``outer`` matches it, it matches every
    instantiation (only ``outer``'s wildcards can match a fresh segment, and
    they match anything), and if ``inner`` is included, the fresh one must be
    matched too.  Segments are compared as stored (already case-folded when
    the policy is case-insensitive).
    """
    fresh = None  # a segment value that equals no literal

    def closure(states: frozenset[int]) -> frozenset[int]:
        # ANY_DEPTH may match nothing: position i also stands at i + 1.
        out = set(states)
        for start in states:
            state = start
            while state < len(outer) and outer[state] == ANY_DEPTH:
                state += 1
                out.add(state)
        return frozenset(out)

    def step(states: frozenset[int], symbol: str | None) -> frozenset[int]:
        nxt: set[int] = set()
        for state in states:
            if state == len(outer):
                continue
            token = outer[state]
            if token == ANY_DEPTH:
                nxt.add(state)
            elif token == ANY_SEGMENT or (symbol is not None and token == symbol):
                nxt.add(state + 1)
        return closure(frozenset(nxt))

    def inner_moves(position: int) -> list[tuple[str | None, int]]:
        token = inner[position]
        if token == ANY_DEPTH:
            return [(fresh, position)]
        return [(fresh if token == ANY_SEGMENT else token, position + 1)]

    def inner_closure(position: int) -> list[int]:
        positions = [position]
        while position < len(inner) and inner[position] == ANY_DEPTH:
            position += 1
            positions.append(position)
        return positions

    start = closure(frozenset({0}))
    pending = [(position, start) for position in inner_closure(0)]
    seen: set[tuple[int, frozenset[int]]] = set()
    while pending:
        position, states = pending.pop()
        if (position, states) in seen:
            continue
        seen.add((position, states))
        if position == len(inner):
            if len(outer) not in states:
                return False  # a path inner accepts here, outer does not
            continue
        for symbol, target in inner_moves(position):
            following = step(states, symbol)
            pending.extend((reached, following) for reached in inner_closure(target))
    return True
