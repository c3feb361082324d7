"""Request smuggling through the gateway and its upstream pool, judged by what the site parsed.

The upstream here (:mod:`tests.support.recording_upstream`) records the exact
bytes of every connection and answers each request as soon as its head is
parsed, so a request the gateway frames wrongly leaves bytes that the site
reads as the next request on that pooled keep-alive connection.  Each test
checks :func:`tests.support.smuggling.violations`: every request the site
parsed (by llhttp live and by h11 on the recorded bytes) is exactly one
request a client sent on its own, with its method, path and body; no protected
path and no ``X-Agegate-*`` header reaches the site (no session exists here);
every answer from the site reaches the client that asked for it; no 5xx.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse, exchange, exchange_pieces
from tests.support.recording_upstream import RecordingUpstream
from tests.support.smuggling import (
    Sent,
    chunked,
    new_marker,
    smuggled_request,
    upstream_answer,
    violations,
)
from tests.support.smuggling_strategies import content_length, make_request, scenarios


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingUpstream]:
    with RecordingUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def smuggle_gateway(
    recorder: RecordingUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    directory: Path = tmp_path_factory.mktemp("smuggle-gw")
    with GatewayProcess(directory, upstream=recorder.url, settings={"rate_limit": 0}) as gw:
        yield gw


@pytest.fixture
def fresh(recorder: RecordingUpstream, smuggle_gateway: GatewayProcess) -> RecordingUpstream:
    """No pooled connection and nothing recorded from an earlier test."""
    recorder.reset()
    return recorder


def _victims() -> list[Sent]:
    """An ordinary POST and GET from another client, after the attack: who gets what."""
    return [
        make_request("POST", "/echo/public/victim", [b"Content-Length: 5"], b"hello"),
        make_request("GET", "/echo/public/victim", [b"Connection: close"]),
    ]


def _run(
    gw: GatewayProcess,
    up: RecordingUpstream,
    connections: list[list[Sent]],
    *,
    pieces: list[list[bytes]] | None = None,
    pause: float = 0.0,
    timeout: float = 1.5,
) -> list[tuple[list[Sent], list[RawResponse]]]:
    """Each connection in turn, then the victims; returns what ``violations`` needs."""
    clients = []
    for index, requests in enumerate([*connections, _victims()]):
        data = b"".join(r.data for r in requests)
        split = pieces[index] if pieces and index < len(pieces) else [data]
        heads = [r.method == "HEAD" for r in requests]
        responses = exchange_pieces(
            gw.port, split, pause=pause, expect=len(requests), head_requests=heads, timeout=timeout
        )
        clients.append((requests, responses))
    return clients


def _assert_clean(
    up: RecordingUpstream, clients: list[tuple[list[Sent], list[RawResponse]]]
) -> None:
    time.sleep(0.2)  # what the gateway wrote upstream has arrived and been parsed
    problems = violations(up, clients)
    raw = [bytes(c.raw) for c in up.connections()]
    assert not problems, "\n".join([*problems, "upstream bytes per connection:", *map(repr, raw)])


# -- the reported attack ---------------------------------------------------------------


def test_upgrade_with_content_length_does_not_smuggle_cl_desync(
    smuggle_gateway: GatewayProcess, fresh: RecordingUpstream
) -> None:
    """``Upgrade: foo`` + ``Content-Length: N`` and no body, then a POST carrying a request.

    The vulnerable gateway forwards the attacker's ``Content-Length`` with no
    body; the site reads the next request's head on that pooled connection as
    the missing body and the POST's body as a request of its own, with a forged
    ``X-Agegate-Age-Over: 18``, for a protected path.
    """
    gw, up = smuggle_gateway, fresh
    hidden = smuggled_request(new_marker("s"))
    # The same shape as the carrier below, to learn how long its head is upstream.
    probe = make_request("POST", "/echo/public/carrier", [content_length(hidden)], hidden)
    probed = exchange(gw.port, probe.data, expect=1)
    assert probed and probed[0].status == 200, probed
    time.sleep(0.1)
    first = up.connections()[0].raw
    head_upstream = first.index(b"\r\n\r\n") + 4
    assert first[head_upstream:] == hidden, first  # the probe went through as it should

    attacker = make_request(
        "POST",
        "/echo/public/attacker",
        [b"Connection: Upgrade", b"Upgrade: foo", b"Content-Length: %d" % head_upstream],
        bodies=frozenset({b""}),
    )
    carrier = make_request("POST", "/echo/public/carrier", [content_length(hidden)], hidden)
    clients = [([probe], probed)]
    clients += _run(gw, up, [[attacker], [carrier]])
    _assert_clean(up, clients)
    carrier_responses = clients[2][1]
    assert carrier_responses, "the carrier POST got no response"
    answer = upstream_answer(carrier_responses[0])
    assert answer is None or answer["marker"] == carrier.marker, answer


# -- classic framing variants ----------------------------------------------------------


def _variant(name: str) -> list[Sent]:
    """The requests of one connection for variant ``name``; the first carries the attack."""
    hidden_marker = new_marker("s")
    hidden = smuggled_request(hidden_marker)
    # The hidden request, when a reading makes it a request of this connection: the
    # gateway must then decide it on its own (it is protected: never forwarded).
    as_request = Sent(hidden_marker, "GET", "/echo/wine/red", hidden, frozenset())
    path = "/echo/public/" + name
    zero = b"0\r\n\r\n"
    encoded = chunked(hidden)
    after = make_request("GET", "/echo/public/after")
    if name == "cl_te":
        body = zero + hidden
        first = make_request(
            "POST",
            path,
            [b"Content-Length: 5", b"Transfer-Encoding: chunked"],
            body,
            bodies=frozenset({b""}),
        )
        return [_with_data(first, first.data[: -len(hidden)]), as_request, after]
    if name == "te_cl":
        first = make_request(
            "POST",
            path,
            [b"Transfer-Encoding: chunked", b"Content-Length: 4"],
            encoded,
            bodies=frozenset({hidden}),
        )
        return [first, after]
    if name == "duplicate_content_length":
        body = zero + hidden
        first = make_request(
            "POST",
            path,
            [b"Content-Length: 5", content_length(body)],
            body,
            bodies=frozenset({zero, body}),
        )
        return [first, after]
    te_lines = {
        "te_chunked_identity": [b"Transfer-Encoding: chunked, identity", content_length(encoded)],
        "te_xchunked": [b"Transfer-Encoding: xchunked", content_length(encoded)],
        "te_obs_fold": [b"Transfer-Encoding:\r\n chunked", content_length(encoded)],
        "te_space_before_colon": [b"Transfer-Encoding : chunked", content_length(encoded)],
    }
    if name in te_lines:
        # Either reading keeps the hidden request inside the body.
        first = make_request(
            "POST", path, te_lines[name], encoded, bodies=frozenset({encoded, hidden})
        )
        return [first, after]
    if name == "bare_lf":
        first = make_request(
            "POST",
            path,
            [b"Transfer-Encoding: chunked"],
            encoded,
            eol=b"\n",
            bodies=frozenset({hidden}),
        )
        return [first, after]
    bad_chunks = {
        "chunk_size_overflow": b"1" + b"0" * 16 + b"5\r\nhello\r\n" + zero + hidden,
        "chunk_size_negative": b"-5\r\nhello\r\n" + zero + hidden,
        "chunk_size_with_extension": b'5;ext="a\\"b";x\r\nhello\r\n' + zero,
    }
    if name in bad_chunks:
        body = bad_chunks[name]
        first = make_request(
            "POST", path, [b"Transfer-Encoding: chunked"], body, bodies=frozenset({b"hello"})
        )
        return [first, after]
    trailers = {
        "trailer_host": b"Host: evil.example\r\n",
        "trailer_agegate_and_expect": b"X-Agegate-Age-Over: 18\r\nExpect: 100-continue\r\n",
        "trailer_content_length": b"Content-Length: %d\r\n" % (len(hidden) + 400),
        "trailer_transfer_encoding": b"Transfer-Encoding: chunked\r\n",
    }
    if name in trailers:
        first = make_request(
            "POST",
            path,
            [b"Transfer-Encoding: chunked", b"Trailer: Host, X-Agegate-Age-Over"],
            chunked(b"hello", trailer=trailers[name]),
            bodies=frozenset({b"hello"}),
        )
        # The next client's request follows on the same upstream connection.
        return [first, make_request("POST", "/echo/public/after", [content_length(hidden)], hidden)]
    if name == "connect_method":
        connect = Sent(new_marker(), "CONNECT", "localhost:443", b"", frozenset())
        connect.data = b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"
        return [connect, as_request]
    if name == "upgrade_h2c_with_body":
        first = make_request(
            "POST",
            path,
            [
                b"Connection: Upgrade, HTTP2-Settings",
                b"Upgrade: h2c",
                b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                content_length(hidden),
            ],
            hidden,
        )
        return [first]
    if name == "http10_keep_alive":
        first = make_request(
            "POST",
            path,
            [b"Connection: keep-alive", content_length(hidden)],
            hidden,
            version=b"HTTP/1.0",
        )
        return [first, make_request("GET", "/echo/public/after", version=b"HTTP/1.0")]
    if name == "pipelined_body_is_a_request":
        first = make_request("POST", path, [content_length(hidden)], hidden)
        return [first, after]
    raise AssertionError(name)


def _with_data(sent: Sent, data: bytes) -> Sent:
    return Sent(sent.marker, sent.method, sent.path, data, sent.bodies)


VARIANTS = [
    "cl_te",
    "te_cl",
    "duplicate_content_length",
    "te_chunked_identity",
    "te_xchunked",
    "te_obs_fold",
    "te_space_before_colon",
    "bare_lf",
    "chunk_size_overflow",
    "chunk_size_negative",
    "chunk_size_with_extension",
    "trailer_host",
    "trailer_agegate_and_expect",
    "trailer_content_length",
    "trailer_transfer_encoding",
    "connect_method",
    "upgrade_h2c_with_body",
    "http10_keep_alive",
    "pipelined_body_is_a_request",
]


@pytest.mark.parametrize("name", VARIANTS)
def test_framing_variant_does_not_smuggle(
    smuggle_gateway: GatewayProcess, fresh: RecordingUpstream, name: str
) -> None:
    requests = _variant(name)
    clients = _run(smuggle_gateway, fresh, [requests])
    _assert_clean(fresh, clients)


@pytest.mark.parametrize("name", [v for v in VARIANTS if v.startswith("trailer_")])
def test_chunked_trailers_never_reach_the_head(
    smuggle_gateway: GatewayProcess, fresh: RecordingUpstream, name: str
) -> None:
    requests = _variant(name)
    clients = _run(smuggle_gateway, fresh, [requests])
    _assert_clean(fresh, clients)
    for seen in fresh.reparsed()[0]:
        assert seen.header_list("host") == ["localhost"], seen
        assert not seen.header_list("expect"), seen
        assert seen.header_list("content-length") in ([], [str(len(seen.body))]), seen
        assert seen.header_list("transfer-encoding") in ([], ["chunked"]), seen


def test_expect_continue_with_early_upstream_answer_does_not_smuggle(
    smuggle_gateway: GatewayProcess, fresh: RecordingUpstream
) -> None:
    """The site answers before the body; the client then sends a body that is a request."""
    hidden = smuggled_request(new_marker("s"))
    first = make_request(
        "POST", "/echo/public/expect", [b"Expect: 100-continue", content_length(hidden)], hidden
    )
    head = first.data[: -len(hidden)]
    clients = _run(smuggle_gateway, fresh, [[first]], pieces=[[head, hidden]], pause=0.3)
    _assert_clean(fresh, clients)


# -- the differential property ---------------------------------------------------------


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_differential_no_request_reaches_upstream_unless_sent_on_its_own(
    smuggle_gateway: GatewayProcess, recorder: RecordingUpstream, scenario: Any
) -> None:
    connections, pieces = scenario
    recorder.reset(settle=0.05)
    clients = _run(smuggle_gateway, recorder, connections, pieces=pieces, pause=0.01, timeout=0.8)
    _assert_clean(recorder, clients)
