"""Request-smuggling cases and the invariant that judges them, for tests/security/test_smuggling.py.

A case is a list of client connections, each a list of :class:`Sent` requests
(the exact bytes a client writes, and what the upstream may see of each).
Every request carries a unique marker in its query (``?m=<marker>``); a
request hidden in another's body carries a ``smuggled`` marker that no
client ever sent as a request of its own.  :func:`violations` compares what
the recording upstream parsed (both its live llhttp parser and an h11 reparse
of the same bytes) with what the clients sent and what they got back.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.support.rawhttp import RawResponse
from tests.support.recording_upstream import RecordingUpstream, SeenRequest

__all__ = [
    "PROTECTED",
    "Sent",
    "chunked",
    "is_protected",
    "new_marker",
    "smuggled_request",
    "upstream_answer",
    "violations",
]

# The default test policy: these need a session (or are denied); none is ever given here.
PROTECTED = ("/echo/wine/", "/echo/spirits/", "/echo/closed/")
_counter = itertools.count(1)


def new_marker(kind: str = "r") -> str:
    """A marker no other request in this test run has; the same length for every ``kind``."""
    return f"{kind[:1]}{next(_counter):07d}"


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED)


def smuggled_request(marker: str | None = None, path: str = "/echo/wine/red") -> bytes:
    """A protected request with a forged proven age, to hide in another request's body."""
    marker = marker or new_marker("s")
    return (
        f"GET {path}?m={marker} HTTP/1.1\r\nHost: localhost\r\n"
        "X-Agegate-Age-Over: 18\r\nX-Agegate-Assurance: strict\r\n\r\n"
    ).encode()


def chunked(data: bytes, sizes: tuple[int, ...] = (), trailer: bytes = b"") -> bytes:
    """``data`` as a chunked body, cut at ``sizes`` (the rest in one chunk), with ``trailer``."""
    out = bytearray()
    rest = data
    for size in sizes:
        piece, rest = rest[:size], rest[size:]
        if piece:
            out += b"%x\r\n%b\r\n" % (len(piece), piece)
    if rest:
        out += b"%x\r\n%b\r\n" % (len(rest), rest)
    return bytes(out) + b"0\r\n" + trailer + b"\r\n"


@dataclass
class Sent:
    """One request as a client wrote it, and what the upstream may see of it.

    ``bodies``: the bodies the upstream may receive if the gateway forwards it
    (the readings a correct HTTP/1.1 server may take of the framing); empty
    means it must not be forwarded at all.  Protected paths are never
    forwarded here: no request in these tests has a session.
    """

    marker: str
    method: str
    path: str
    data: bytes
    bodies: frozenset[bytes]

    @property
    def forwardable(self) -> bool:
        return bool(self.bodies) and not is_protected(self.path)


def upstream_answer(response: RawResponse) -> dict[str, Any] | None:
    """The recording upstream's JSON answer in ``response``, or None if the gateway made it."""
    try:
        doc = json.loads(response.body)
    except ValueError:
        return None
    if isinstance(doc, dict) and {"conn", "seq", "marker"} <= doc.keys():
        return doc
    return None


def _judge(
    view: str, seen: list[SeenRequest], sent: dict[str, Sent], ended: dict[int, bool]
) -> list[str]:
    problems = []
    counts = Counter(s.marker for s in seen)
    last_on_conn = {s.conn: s.seq for s in seen}
    for req in seen:
        where = f"{view}: {req.summary()}"
        expected = sent.get(req.marker or "")
        if expected is None:
            problems.append(f"{where}: the upstream parsed a request no client sent on its own")
        elif counts[req.marker] > 1:
            problems.append(f"{where}: the upstream parsed this request more than once")
        elif not expected.forwardable:
            problems.append(f"{where}: forwarded a request that must not reach the upstream")
        elif (req.method, req.path) != (expected.method, expected.path):
            problems.append(f"{where}: sent as {expected.method} {expected.path}")
        if is_protected(req.path):
            problems.append(f"{where}: a protected path reached the upstream without a session")
        forged = [k for k, _ in req.headers if k.replace("_", "-").startswith("x-agegate-")]
        if forged:
            problems.append(f"{where}: agegate headers the gateway never granted: {forged}")
        if view != "h11":
            continue  # the live parser answered at the head: framing is judged once, by h11
        names = [k for k, _ in req.headers]
        if "content-length" in names and "transfer-encoding" in names:
            problems.append(f"{where}: both Content-Length and Transfer-Encoding")
        if names.count("host") != 1:
            problems.append(f"{where}: {names.count('host')} Host headers")
        if "expect" in names and not req.body and req.complete:
            problems.append(f"{where}: Expect without a body")
        if not req.complete:
            if not (ended.get(req.conn, False) and last_on_conn[req.conn] == req.seq):
                problems.append(f"{where}: body cut short on a connection left open for reuse")
        elif expected is not None and expected.forwardable and req.body not in expected.bodies:
            problems.append(f"{where}: body differs from any reading of what the client sent")
    return problems


def violations(
    upstream: RecordingUpstream,
    clients: list[tuple[list[Sent], list[RawResponse]]],
) -> list[str]:
    """Everything that breaks the no-smuggling invariant; empty when the exchange was clean.

    ``clients``: per client connection, the requests written on it and the
    responses read back (in order, so the i-th response answers the i-th request).
    """
    sent = {s.marker: s for requests, _ in clients for s in requests}
    problems: list[str] = []
    connections = upstream.connections()
    ended = {c.index: c.ended for c in connections}
    reparsed, errors = upstream.reparsed()
    problems += [f"h11 cannot parse what the gateway wrote upstream: {e}" for e in errors]
    problems += _judge("h11", reparsed, sent, ended)
    problems += _judge("llhttp", upstream.answered(), sent, ended)
    for c in connections:
        if c.live_error:
            problems.append(f"llhttp refused upstream connection {c.index}: {c.live_error}")
    for requests, responses in clients:
        # A response answers the next request on its connection that is still unanswered;
        # which requests the gateway refused (or read as body) decides the positions,
        # so answers are checked for order and ownership rather than by index.
        markers = [r.marker for r in requests]
        position = -1
        for response in responses:
            if response.status >= 500:
                problems.append(f"{markers}: the gateway answered {response.status}")
            answer = upstream_answer(response)
            if answer is None:
                continue
            marker = answer["marker"]
            if marker not in markers[position + 1 :]:
                problems.append(
                    f"a client that sent {markers} got the upstream's answer to "
                    f"{answer['method']} {answer['target']}"
                )
            else:
                position = markers.index(marker, position + 1)
    return problems
