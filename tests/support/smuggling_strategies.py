"""Hypothesis strategies for the smuggling differential test: framed requests, split sends.

A scenario is one to three requests over one or two client connections, each
request with a random method, path (allowed and protected), body (often a
request with a forged ``X-Agegate-Age-Over`` hidden in it) and framing, and
each connection's bytes cut at random points to be sent in pieces.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import strategies as st

from tests.support.smuggling import Sent, chunked, new_marker, smuggled_request

__all__ = ["FRAMINGS", "content_length", "make_request", "scenarios"]


def make_request(
    method: str,
    path: str,
    headers: Sequence[bytes] = (),
    body: bytes = b"",
    *,
    marker: str | None = None,
    version: bytes = b"HTTP/1.1",
    eol: bytes = b"\r\n",
    bodies: frozenset[bytes] | None = None,
) -> Sent:
    """A request with exactly ``headers`` (whole lines) after ``Host``; nothing added."""
    marker = marker or new_marker()
    target = f"{path}?m={marker}".encode()
    lines = [method.encode() + b" " + target + b" " + version, b"Host: localhost", *headers]
    data = eol.join(lines) + eol + eol + body
    return Sent(marker, method, path, data, frozenset({body}) if bodies is None else bodies)


def content_length(body: bytes) -> bytes:
    return b"Content-Length: %d" % len(body)


PATHS = ["/echo/public/p", "/other/page", "/echo/wine/red", "/echo/spirits/x", "/echo/closed/x"]
METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD"]
FRAMINGS = [
    "none",
    "length",
    "chunked",
    "chunked_extension",
    "upgrade_lie",
    "upgrade_with_body",
    "cl_te",
    "te_cl",
    "duplicate_length",
    "te_xchunked",
    "te_identity",
    "bare_lf",
    "trailers",
    "http10_keep_alive",
    "expect_continue",
]


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    hidden = smuggled_request(new_marker("s"), draw(st.sampled_from(PATHS[2:] + PATHS[:1])))
    return draw(
        st.sampled_from([b"hello", hidden, b"0\r\n\r\n" + hidden, hidden + hidden])
        | st.binary(min_size=1, max_size=40)
    )


@st.composite
def _generated(draw: st.DrawFn) -> Sent:
    framing = draw(st.sampled_from(FRAMINGS))
    method = draw(st.sampled_from(METHODS))
    path = draw(st.sampled_from(PATHS))
    body = draw(_bodies())
    sizes = tuple(draw(st.lists(st.integers(1, 30), max_size=3)))
    encoded = chunked(body, sizes)
    if framing == "none":
        return make_request(method, path)
    if framing == "length":
        return make_request(method, path, [content_length(body)], body)
    if framing == "chunked":
        return make_request(
            method, path, [b"Transfer-Encoding: chunked"], encoded, bodies=_one(body)
        )
    if framing == "chunked_extension":
        data = encoded.replace(b"\r\n", b";x=1\r\n", 1)
        return make_request(method, path, [b"Transfer-Encoding: chunked"], data, bodies=_one(body))
    if framing == "upgrade_lie":
        lie = b"Content-Length: %d" % (len(body) + draw(st.integers(1, 400)))
        return make_request(
            method, path, [b"Connection: Upgrade", b"Upgrade: foo", lie], bodies=_one(b"")
        )
    if framing == "upgrade_with_body":
        upgrade = [b"Connection: Upgrade", b"Upgrade: " + draw(st.sampled_from([b"h2c", b"foo"]))]
        return make_request(method, path, [*upgrade, content_length(body)], body)
    if framing == "cl_te":
        return make_request(
            method,
            path,
            [content_length(body), b"Transfer-Encoding: chunked"],
            encoded,
            bodies=_one(body),
        )
    if framing == "te_cl":
        return make_request(
            method,
            path,
            [b"Transfer-Encoding: chunked", b"Content-Length: 3"],
            encoded,
            bodies=_one(body),
        )
    if framing == "duplicate_length":
        cut = draw(st.integers(0, len(body)))
        return make_request(
            method,
            path,
            [b"Content-Length: %d" % cut, content_length(body)],
            body,
            bodies=frozenset({body, body[:cut]}),
        )
    if framing in ("te_xchunked", "te_identity"):
        te = b"xchunked" if framing == "te_xchunked" else b"chunked, identity"
        return make_request(
            method,
            path,
            [b"Transfer-Encoding: " + te, content_length(encoded)],
            encoded,
            bodies=frozenset({encoded, body}),
        )
    if framing == "bare_lf":
        return make_request(method, path, [content_length(body)], body, eol=b"\n")
    if framing == "trailers":
        trailer = draw(
            st.sampled_from(
                [
                    b"X-Agegate-Age-Over: 18\r\n",
                    b"Expect: 100-continue\r\n",
                    b"Content-Length: 7\r\n",
                ]
            )
        )
        data = chunked(body, sizes, trailer)
        return make_request(method, path, [b"Transfer-Encoding: chunked"], data, bodies=_one(body))
    if framing == "http10_keep_alive":
        return make_request(
            method,
            path,
            [b"Connection: keep-alive", content_length(body)],
            body,
            version=b"HTTP/1.0",
        )
    return make_request(method, path, [b"Expect: 100-continue", content_length(body)], body)


def _one(body: bytes) -> frozenset[bytes]:
    return frozenset({body})


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[Sent]], list[list[bytes]]]:
    requests = draw(st.lists(_generated(), min_size=1, max_size=3))
    split = draw(st.integers(1, len(requests)))
    connections = [c for c in (requests[:split], requests[split:]) if c]
    pieces = []
    for connection in connections:
        data = b"".join(r.data for r in connection)
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=3)))
        bounds = [0, *cuts, len(data)]
        pieces.append([data[a:b] for a, b in itertools.pairwise(bounds) if b > a])
    return connections, pieces
