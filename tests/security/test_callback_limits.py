"""Resource attacks on ``/.agegate/callback/<verifier>``: huge, multipart and unasked-for
bodies.  The callback checks its head (media type, declared length), the challenge
cookie and the rate limit before it reads one body byte, then reads at most
``MAX_FORM_BYTES`` and stops — against a live gateway over raw sockets."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.browser.forms import MAX_FORM_BYTES
from tests.security.support import HTML, browser_challenge, callback, get
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse, parse_responses
from tests.support.upstream import UpstreamServer

CALLBACK = b"/.agegate/callback/test-token"
FORM = (b"Content-Type", b"application/x-www-form-urlencoded")
PROMPT = 3.0  # seconds: a refusal made from the head alone arrives at once
MIB = 1024 * 1024


def _cookie(value: str) -> tuple[bytes, bytes]:
    return (b"Cookie", f"__Host-agegate-challenge={value}".encode())


def _head(headers: Iterable[tuple[bytes, bytes]], target: bytes = CALLBACK) -> bytes:
    lines = [b"POST " + target + b" HTTP/1.1", b"Host: localhost"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@contextlib.contextmanager
def _connection(port: int) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as sock:
        yield sock


def _send(sock: socket.socket, data: bytes) -> bool:
    """False when the gateway has already answered and closed."""
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _answer(sock: socket.socket, timeout: float = PROMPT) -> tuple[RawResponse | None, float]:
    """The first response on ``sock`` (None if none came in ``timeout``) and how long it took."""
    started = time.monotonic()
    deadline = started + timeout
    buffer = bytearray()
    while time.monotonic() < deadline:
        done = parse_responses(bytes(buffer), eof=False)
        if done:
            return done[0], time.monotonic() - started
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not chunk:
            break
        buffer += chunk
    done = parse_responses(bytes(buffer), eof=True)
    return (done[0] if done else None), time.monotonic() - started


def _status(gw: GatewayProcess, field: str) -> int:
    assert gw.process is not None
    text = Path(f"/proc/{gw.process.pid}/status").read_text()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc status")


def _reset_peak_rss(gw: GatewayProcess) -> None:
    assert gw.process is not None
    # "5" resets VmHWM (Linux >= 4.0), so the peak measured next belongs to this request.
    Path(f"/proc/{gw.process.pid}/clear_refs").write_text("5")


def _assert_refused(response: RawResponse | None, status: int, reason: str) -> None:
    assert response is not None, "no answer before the body was sent"
    assert response.status == status, (response.status, response.body[:300])
    assert response.json()["reason"] == reason
    assert response.header("connection") == "close"


def test_callback_declaring_a_huge_body_is_refused_before_it_is_sent(
    gateway: GatewayProcess,
) -> None:
    challenge = browser_challenge(gateway)
    with _connection(gateway.port) as sock:
        head = _head([FORM, _cookie(challenge.cookie), (b"Content-Length", b"50000000")])
        assert _send(sock, head + b"state=" + b"a" * 1000)
        response, took = _answer(sock)
    _assert_refused(response, 413, "body_too_large")
    assert took < PROMPT


def test_callback_chunked_body_over_the_limit_is_cut_off_and_memory_stays_flat(
    gateway: GatewayProcess,
) -> None:
    challenge = browser_challenge(gateway)
    chunked = [FORM, _cookie(challenge.cookie), (b"Transfer-Encoding", b"chunked")]
    # Warm up the same path, so what is measured next is the request, not first-use imports.
    with _connection(gateway.port) as sock:
        _send(sock, _head(chunked) + b"5\r\nstate\r\n0\r\n\r\n")
        _answer(sock)
    rss_before = _status(gateway, "VmRSS")
    _reset_peak_rss(gateway)
    field = b"&f=" + b"x" * (MIB - 3)
    sent = 0
    with _connection(gateway.port) as sock:
        if _send(sock, _head(chunked) + b"6\r\nstate=\r\n"):
            for _ in range(20):
                if not _send(sock, b"%x\r\n%b\r\n" % (len(field), field)):
                    break
                sent += len(field)
            _send(sock, b"0\r\n\r\n")
        response, _ = _answer(sock)
    growth = _status(gateway, "VmHWM") - rss_before
    assert growth < 8 * MIB, f"gateway peak RSS grew by {growth / MIB:.1f} MiB"
    if response is not None:  # or the gateway closed while we were still sending
        _assert_refused(response, 413, "body_too_large")
    assert sent < 20 * MIB or response is not None


def test_callback_multipart_is_refused_without_a_temp_file(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("multipart-gw")
    spool = directory / "tmp"
    spool.mkdir()
    env = {"TMPDIR": str(spool)}
    with GatewayProcess(
        directory, upstream=upstream.url, settings={"rate_limit": 0}, env=env
    ) as gw:
        assert gw.process is not None
        challenge = browser_challenge(gw)
        boundary = b"----agegate"
        part = (
            b"--" + boundary + b"\r\n"
            b'Content-Disposition: form-data; name="age_token"; filename="t.bin"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        headers = [
            (b"Content-Type", b"multipart/form-data; boundary=" + boundary),
            _cookie(challenge.cookie),
            (b"Content-Length", str(len(part) + 4 * MIB).encode()),
        ]
        with _connection(gw.port) as sock:
            _send(sock, _head(headers) + part)
            for _ in range(3):  # more than the 1 MiB a spooled form keeps in memory
                if not _send(sock, b"z" * MIB):
                    break
            time.sleep(0.3)
            open_files = [
                os.readlink(f"/proc/{gw.process.pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{gw.process.pid}/fd")
            ]
            response, _ = _answer(sock)
        assert not [f for f in open_files if str(spool) in f], open_files
        assert not list(spool.iterdir())
        _assert_refused(response, 415, "unsupported_media_type")


def test_callback_without_challenge_cookie_is_refused_before_the_body(
    gateway: GatewayProcess,
) -> None:
    with _connection(gateway.port) as sock:
        assert _send(sock, _head([FORM, (b"Content-Length", b"60000")]))
        response, took = _answer(sock)
    _assert_refused(response, 400, "challenge_missing")
    assert took < PROMPT


def test_callback_browser_gets_the_html_page_for_an_oversized_body(
    gateway: GatewayProcess,
) -> None:
    challenge = browser_challenge(gateway)
    body = b"state=" + b"b" * MAX_FORM_BYTES
    response = callback(gateway, body, challenge.cookie, [HTML])
    assert response.status == 413
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert "body_too_large" in response.text


def test_callback_body_just_under_the_limit_is_read(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    fields = f"state={quote(challenge.state)}&age_token=not-a-token&pad=".encode()
    body = fields + b"p" * (MAX_FORM_BYTES - len(fields))
    response = callback(gateway, body, challenge.cookie)
    assert response.status == 400, response.body[:300]
    assert response.json()["reason"] != "body_too_large"


def test_callback_with_too_many_fields_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    body = f"state={quote(challenge.state)}".encode() + b"&a=1" * 1000
    response = callback(gateway, body, challenge.cookie)
    assert response.status == 400
    assert response.json()["reason"] == "malformed_form"


def test_callback_with_a_repeated_state_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    body = f"state=x&state={quote(challenge.state)}&age_token=t".encode()
    response = callback(gateway, body, challenge.cookie)
    assert response.status == 400
    assert response.json()["reason"] == "malformed_form"


def test_callback_with_another_media_type_is_refused(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    response = callback(
        gateway,
        f'{{"state": "{challenge.state}"}}'.encode(),
        challenge.cookie,
        [(b"Content-Type", b"application/json")],
    )
    assert response.status == 415
    assert response.json()["reason"] == "unsupported_media_type"


LIMIT = 2


def test_callback_rate_limit_is_checked_before_the_body(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("callback-limit-gw")
    with GatewayProcess(directory, upstream=upstream.url, settings={"rate_limit": LIMIT}) as gw:
        challenge = browser_challenge(gw)
        fields = f"age_token=not-a-token&state={quote(challenge.state)}".encode()
        for _ in range(LIMIT):
            assert callback(gw, fields, challenge.cookie).status == 400
        with _connection(gw.port) as sock:
            head = _head([FORM, _cookie(challenge.cookie), (b"Content-Length", b"60000")])
            assert _send(sock, head)
            response, took = _answer(sock)
    _assert_refused(response, 429, "rate_limited")
    assert took < PROMPT


def test_query_callback_is_parsed_as_strictly_as_a_form(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("query-callback-gw")
    with GatewayProcess(
        directory,
        upstream=upstream.url,
        settings={"rate_limit": 0},
        verifier={"response_mode": "query"},
    ) as gw:
        challenge = browser_challenge(gw)
        jar = [_cookie(challenge.cookie)]
        state = quote(challenge.state)
        token = gw.mint(challenge.nonce)
        target = f"{CALLBACK.decode()}?state=x&state={state}&age_token={token}"
        repeated = get(gw, target, jar)
        assert (repeated.status, repeated.json()["reason"]) == (400, "malformed_form")
        crowded = get(gw, f"{CALLBACK.decode()}?state={state}" + "&a=1" * 100, jar)
        assert (crowded.status, crowded.json()["reason"]) == (400, "malformed_form")
        accepted = get(gw, f"{CALLBACK.decode()}?age_token={token}&state={state}", jar)
        assert accepted.status == 303, accepted.body[:300]
        assert accepted.header("location") == "/echo/wine/red"


def test_callback_with_a_non_ascii_state_is_refused_not_a_500(gateway: GatewayProcess) -> None:
    challenge = browser_challenge(gateway)
    response = callback(gateway, b"state=%C3%A9&age_token=t", challenge.cookie)
    assert response.status == 400, (response.status, response.body[:300])
    assert response.json()["reason"] == "state_mismatch"
