"""Attacks on forward-auth (``/.agegate/authz``), against a real gateway over raw sockets.

The gateway here trusts ``127.0.0.1/32`` (the front proxy's address), so the same
process answers in proxy mode (public port) and as the decision service (admin port).
Each attack is asked in both forward-auth conventions — ``X-Forwarded-Uri`` (Caddy,
Traefik) and ``X-Original-URI`` (nginx ``auth_request``, answered nginx style) — and
where proxy mode can be sent the same target, both must reach proxy mode's decision:
status, reason and redirect.  A forward-auth ``200`` is a grant, so a question that is
ambiguous, malformed or from an untrusted peer must never get one.

The path corpora are the proxy-mode attack corpus's own tables (imported).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import pytest

from gateway.core.paths import canonical_path
from gateway.policy.facts import SessionClaims
from gateway.session.codec import SessionCodec
from gateway.settings import load_settings
from tests.security.support import get
from tests.security.test_attack_corpus import (
    ABSOLUTE_FOREIGN,
    CONTROL_TARGETS,
    DOT_SEGMENTS,
    ENCODED_SLASH_TRAVERSALS,
    MALFORMED_ABSOLUTE,
    MATRIX_PARAMS,
    SPELLINGS,
)
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import (
    HeaderPair,
    RawResponse,
    build_request,
    exchange,
    parse_responses,
    request,
)
from tests.support.upstream import UpstreamServer
from verifiers.base import AssuranceLevel

AUTHZ = "/.agegate/authz"
CONVENTIONS = ("forwarded", "original")
HTML = (b"Accept", b"text/html")
_AUTHZ_HEAD = b"GET /.agegate/authz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def authz_gateway(
    upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    settings = {"trusted_proxies": ["127.0.0.1/32"], "rate_limit": 0}
    with GatewayProcess(
        tmp_path_factory.mktemp("authz-gw"), upstream=upstream.url, settings=settings
    ) as gw:
        yield gw


def ask(
    gw: GatewayProcess,
    convention: str,
    uri: bytes,
    extra: Iterable[HeaderPair] = (),
    *,
    host: bytes = b"localhost",
) -> RawResponse:
    """One forward-auth question about ``GET uri`` on ``host``, as a front proxy asks it."""
    if convention == "forwarded":
        headers: list[HeaderPair] = [
            (b"X-Forwarded-Method", b"GET"),
            (b"X-Forwarded-Proto", b"http"),
            (b"X-Forwarded-Host", host),
            (b"X-Forwarded-Uri", uri),
        ]
    else:
        headers = [(b"X-Original-Method", b"GET"), (b"X-Forwarded-Host", host)]
        headers.append((b"X-Original-URI", uri))
    return request(gw.admin_port, "GET", AUTHZ, [*headers, *extra], host=b"127.0.0.1")


@dataclass(frozen=True)
class Decision:
    """What was decided, in the terms proxy mode and both conventions share."""

    status: int
    reason: str | None = None
    location: str | None = None

    @property
    def granted(self) -> bool:
        return self.status == 200


def _body_reason(response: RawResponse) -> str | None:
    try:
        body = json.loads(response.body)
    except ValueError:
        return None  # a parser-level refusal: the request never reached a decision
    return body.get("reason") if isinstance(body, dict) else None


def decided(response: RawResponse) -> Decision:
    """Proxy mode's or the forwarded convention's answer; nginx style unwrapped."""
    status = response.status
    if response.header("x-agegate-location"):
        return Decision(303, None, response.header("x-agegate-location"))
    if response.header("x-agegate-status"):
        status = int(response.header("x-agegate-status") or status)
    if status == 303:
        return Decision(303, None, response.header("location"))
    if status == 200:
        return Decision(200)
    return Decision(status, response.header("x-agegate-reason") or _body_reason(response))


def assert_no_grant(response: RawResponse) -> None:
    """A refusal the proxy cannot mistake for a grant, and never a 5xx."""
    decision = decided(response)
    assert not decision.granted, (response.status, response.headers)
    assert response.status < 500 and decision.status < 500, response
    for name in ("x-agegate-path", "x-agegate-age-over", "x-agegate-assurance"):
        assert response.header(name) is None, response.headers


# -- who may ask ---------------------------------------------------------------------------

SPOOFS: dict[str, list[HeaderPair]] = {
    "x_forwarded_uri": [(b"X-Forwarded-Host", b"localhost"), (b"X-Forwarded-Uri", b"/echo/x")],
    "x_original_uri": [(b"X-Forwarded-Host", b"localhost"), (b"X-Original-URI", b"/echo/x")],
    "claims_trusted_xff": [
        (b"X-Forwarded-For", b"127.0.0.1"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "claims_trusted_real_ip": [(b"X-Real-IP", b"127.0.0.1"), (b"X-Original-URI", b"/echo/x")],
    "claims_trusted_forwarded": [
        (b"Forwarded", b"for=127.0.0.1;host=localhost"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "agegate_headers": [
        (b"X-Forwarded-Uri", b"/echo/wine/red"),
        (b"X-Agegate-Age-Over", b"18"),
        (b"X-Agegate-Path", b"/echo/public/x"),
    ],
}


def _request_from(source: str, port: int, data: bytes) -> RawResponse:
    """One request from the loopback address ``source`` (another host on the proxy's LAN)."""
    buffer = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(data)
        for _ in range(1000):  # bounded: the gateway closes after one answer
            chunk = s.recv(65536)
            if not chunk:
                break
            buffer += chunk
    [response] = parse_responses(bytes(buffer))
    return response


@pytest.mark.parametrize("headers", SPOOFS.values(), ids=SPOOFS.keys())
def test_forwarded_headers_from_an_untrusted_peer_get_403(
    authz_gateway: GatewayProcess, headers: list[HeaderPair]
) -> None:
    # 127.0.0.2 is not the trusted 127.0.0.1, whatever its headers claim.
    for target in (AUTHZ, AUTHZ + "/echo/public/x"):
        data = build_request("GET", target, headers, host=b"localhost")
        response = _request_from("127.0.0.2", authz_gateway.admin_port, data)
        assert (response.status, _body_reason(response)) == (403, "untrusted_proxy")
        assert_no_grant(response)
        assert not response.header_list("set-cookie")


@pytest.mark.parametrize("headers", SPOOFS.values(), ids=SPOOFS.keys())
def test_a_gateway_trusting_no_one_answers_every_question_403(
    gateway: GatewayProcess, headers: list[HeaderPair]
) -> None:
    response = request(gateway.admin_port, "GET", AUTHZ, headers)
    assert (response.status, _body_reason(response)) == (403, "untrusted_proxy")
    assert_no_grant(response)


# -- the path the proxy asks about decides like proxy mode ---------------------------------

PATH_CONFUSION = {
    **{f"dot_{k}": v.encode() for k, v in DOT_SEGMENTS.items()},
    **{f"sep_{k}": v.encode() for k, v in ENCODED_SLASH_TRAVERSALS.items()},
    **{f"matrix_{k}": v.encode() for k, v in MATRIX_PARAMS.items()},
    **{f"spelling_{k}": v.encode() for k, v in SPELLINGS.items()},
    **{f"ctl_{k}": v for k, v in CONTROL_TARGETS.items() if b"%" in v},
    "query_naming_protected": b"/echo/public/x?/echo/wine/red",
    "query_param_protected": b"/echo/public/x?next=/echo/wine/red&p=..%2F..%2Fwine",
    "protected_with_public_query": b"/echo/wine/red?/echo/public/x",
    "encoded_question_mark": b"/echo/wine/red%3F/echo/public/",
    "query_with_dot_segments": b"/echo/public/x?../../echo/wine/red",
    "double_slash_authority_lookalike": b"//evil.example/echo/wine/red",
    "case_variant": b"/echo/WINE/red",
    "deny_rule_dot_segments": b"/echo/public/../closed/x",
    "agegate_prefix_traversal": b"/.agegate/../echo/wine/red",
    "agegate_prefix_encoded": b"/%2eagegate/../echo/wine/red",
}


def _proxy_mode(gw: GatewayProcess, target: bytes, accept: HeaderPair | None) -> Decision:
    return decided(get(gw, target, [accept] if accept else []))


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("target", PATH_CONFUSION.values(), ids=PATH_CONFUSION.keys())
def test_path_confusion_decides_like_proxy_mode(
    authz_gateway: GatewayProcess, convention: str, target: bytes
) -> None:
    for accept in (None, HTML):
        expected = _proxy_mode(authz_gateway, target, accept)
        response = ask(authz_gateway, convention, target, [accept] if accept else [])
        got = decided(response)
        if accept:  # a browser gets HTML refusals: the reason is compared without it
            got, expected = replace(got, reason=None), replace(expected, reason=None)
        assert got == expected, (convention, accept, response.headers)
        if expected.granted:
            # The proxy forwards the canonical path it was told: the path, never the query.
            path = target.partition(b"?")[0]
            assert response.header("x-agegate-path") == canonical_path(path), response.headers


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize(
    "target",
    [v for v in CONTROL_TARGETS.values() if b"%" not in v and b"\xff" not in v],
    ids=[k for k, v in CONTROL_TARGETS.items() if b"%" not in v and b"\xff" not in v],
)
def test_raw_control_bytes_in_the_forwarded_uri_are_refused(
    authz_gateway: GatewayProcess, convention: str, target: bytes
) -> None:
    # Raw control bytes cannot reach a decision in proxy mode (the parser refuses them);
    # in a header they must be refused as well, never decided around.
    response = ask(authz_gateway, convention, target)
    assert decided(response).status == 400, response
    assert_no_grant(response)


LISTS_AND_RAW_BYTES = {
    # What a proxy that appends (RFC 9110 §5.3 list-combines) sends: the client's value first.
    "comma_joined_list": b"/echo/public/x, /echo/wine/red",
    "space_separated": b"/echo/public/x /echo/wine/red",
    "raw_non_ascii": b"/echo/public/x\xff\xfe",
}


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("target", LISTS_AND_RAW_BYTES.values(), ids=LISTS_AND_RAW_BYTES.keys())
def test_a_forwarded_uri_no_request_line_could_carry_is_refused(
    authz_gateway: GatewayProcess, convention: str, target: bytes
) -> None:
    request_line = b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    [proxy] = exchange(authz_gateway.port, request_line, expect=1)
    assert proxy.status == 400
    response = ask(authz_gateway, convention, target)
    assert decided(response).status == 400, response.headers
    assert_no_grant(response)


# -- absolute URLs in the forwarded URI --------------------------------------------------

ABSOLUTE = {
    **{f"foreign_{k}": v for k, v in ABSOLUTE_FOREIGN.items()},
    **{f"malformed_{k}": v for k, v in MALFORMED_ABSOLUTE.items()},
    "ours_protected": b"http://localhost/echo/wine/red",
    "ours_upper_scheme": b"HTTP://LOCALHOST/echo/w%69ne/red",
    "ours_https_dot_segments": b"https://localhost/echo/public/../wine/red",
    "ours_public": b"http://localhost/echo/public/x",
}


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("target", ABSOLUTE.values(), ids=ABSOLUTE.keys())
def test_absolute_url_in_forwarded_uri_decides_like_proxy_mode(
    authz_gateway: GatewayProcess, convention: str, target: bytes
) -> None:
    expected = _proxy_mode(authz_gateway, target, None)
    response = ask(authz_gateway, convention, target)
    if expected.status == 400 and expected.reason is None:
        # The proxy mode's parser refused the request line itself; any refusal will do here.
        assert decided(response).status in {400, 421}, response
        assert_no_grant(response)
    else:
        assert decided(response) == expected, response.headers


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_absolute_forwarded_uri_naming_another_host_than_x_forwarded_host_is_refused(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    target = b"http://127.0.0.1/echo/public/x"
    proxy = get(authz_gateway, target, host=b"localhost")
    assert (proxy.status, _body_reason(proxy)) == (400, "host_mismatch")
    response = ask(authz_gateway, convention, target, host=b"localhost")
    assert decided(response) == Decision(400, "host_mismatch"), response.headers


# -- ambiguous and duplicated forwarded headers ---------------------------------------------

AMBIGUOUS: dict[str, list[HeaderPair]] = {
    "uri_twice_public_first": [
        (b"X-Forwarded-Uri", b"/echo/public/x"),
        (b"X-Forwarded-Uri", b"/echo/wine/red"),
    ],
    "uri_twice_protected_first": [
        (b"X-Forwarded-Uri", b"/echo/wine/red"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "uri_twice_case_variants": [
        (b"X-Forwarded-Uri", b"/echo/public/x"),
        (b"x-forwarded-uri", b"/echo/wine/red"),
    ],
    "original_uri_twice": [
        (b"X-Original-URI", b"/echo/public/x"),
        (b"X-Original-URI", b"/echo/wine/red"),
    ],
    "both_conventions": [
        (b"X-Original-URI", b"/echo/public/x"),
        (b"X-Forwarded-Uri", b"/echo/wine/red"),
    ],
    "both_conventions_reversed": [
        (b"X-Forwarded-Uri", b"/echo/public/x"),
        (b"X-Original-URI", b"/echo/wine/red"),
    ],
    "host_twice": [
        (b"X-Forwarded-Host", b"localhost"),
        (b"X-Forwarded-Host", b"evil.example"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "host_twice_same": [
        (b"X-Forwarded-Host", b"localhost"),
        (b"X-Forwarded-Host", b"localhost"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "host_list": [
        (b"X-Forwarded-Host", b"localhost, evil.example"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "method_twice": [
        (b"X-Forwarded-Method", b"GET"),
        (b"X-Forwarded-Method", b"POST"),
        (b"X-Forwarded-Uri", b"/echo/public/x"),
    ],
    "original_method_twice": [
        (b"X-Original-Method", b"GET"),
        (b"X-Original-Method", b"DELETE"),
        (b"X-Original-URI", b"/echo/public/x"),
    ],
    "method_list": [(b"X-Forwarded-Method", b"GET, POST"), (b"X-Forwarded-Uri", b"/echo/x")],
    "no_uri_at_all": [(b"X-Forwarded-Host", b"localhost")],
    "underscore_spelling_only": [(b"X_Forwarded_Uri", b"/echo/public/x")],
    "empty_uri": [(b"X-Forwarded-Uri", b"")],
}


@pytest.mark.parametrize("headers", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_ambiguous_forwarded_headers_are_refused(
    authz_gateway: GatewayProcess, headers: list[HeaderPair]
) -> None:
    response = request(authz_gateway.admin_port, "GET", AUTHZ, headers, host=b"localhost")
    assert_no_grant(response)
    assert decided(response).status in {400, 421}, response.headers


def test_underscore_spelling_never_chooses_the_path(authz_gateway: GatewayProcess) -> None:
    # nginx drops underscore headers by default; agegate must not read them either.
    spoof = [(b"X_Forwarded_Uri", b"/echo/public/x"), (b"X_Original_URI", b"/echo/public/x")]
    for convention in CONVENTIONS:
        response = ask(authz_gateway, convention, b"/echo/wine/red", spoof)
        assert decided(response) == Decision(401, "no_session"), response.headers


def test_client_sent_agegate_headers_grant_nothing(authz_gateway: GatewayProcess) -> None:
    # auth_request passes the client's headers to agegate: they must not count as proof.
    spoof = [
        (b"X-Agegate-Age-Over", b"18"),
        (b"X-Agegate-Assurance", b"strict"),
        (b"X-Agegate-Path", b"/echo/public/x"),
        (b"X-Agegate-Status", b"200"),
    ]
    for convention in CONVENTIONS:
        response = ask(authz_gateway, convention, b"/echo/wine/red", spoof)
        assert decided(response) == Decision(401, "no_session"), response.headers


# -- agegate's cookies never reach the site -------------------------------------------------

SESSION = b"<session>"  # replaced by a real sealed session in each test
COOKIE_SPELLINGS: dict[str, list[bytes]] = {
    "plain": [b"a=1; __Host-agegate=<session>; b=2; __Host-agegate-challenge=x"],
    "no_spaces": [b"a=1;__Host-agegate=<session>;b=2"],
    "padded_name": [b"a=1; __Host-agegate =<session>; b=2"],
    "tabs": [b"a=1;\t__Host-agegate=<session>;\tb=2"],
    "split_over_two_headers": [
        b"a=1; __Host-agegate=<session>",
        b"b=2; __Host-agegate-challenge=x",
    ],
    "twice": [b"__Host-agegate=<session>; a=1; __Host-agegate=junk; b=2"],
    "name_without_value": [b"a=1; __Host-agegate; __Host-agegate=<session>; b=2"],
}
_AGEGATE_COOKIE_NAMES = {"__Host-agegate", "__Host-agegate-challenge"}


def _sealed_session(gw: GatewayProcess) -> bytes:
    settings = load_settings(gw.config_path)
    now = time.time()
    claims = SessionClaims(
        frozenset({18}), frozenset(), AssuranceLevel.BASIC, "test-token", now, now + 600
    )
    return SessionCodec(settings.session_keys, settings.audience).seal(claims).encode()


def _cookie_names(value: str) -> set[str]:
    return {pair.split("=", 1)[0].strip() for pair in value.split(";")}


def _assert_no_agegate_cookie_handed_on(response: RawResponse, session: bytes) -> None:
    for name, value in response.headers:
        assert session.decode() not in value, name
        if name in ("x-agegate-cookie", "cookie"):
            assert not _cookie_names(value) & _AGEGATE_COOKIE_NAMES, (name, value)


@pytest.mark.parametrize("spelling", COOKIE_SPELLINGS.values(), ids=COOKIE_SPELLINGS.keys())
@pytest.mark.parametrize("convention", (*CONVENTIONS, "envoy"))
def test_forward_auth_answer_hands_the_site_no_agegate_cookie(
    authz_gateway: GatewayProcess, convention: str, spelling: list[bytes]
) -> None:
    session = _sealed_session(authz_gateway)
    cookies = [(b"Cookie", value.replace(SESSION, session)) for value in spelling]
    for path in (b"/echo/wine/red", b"/echo/public/x"):
        if convention == "envoy":
            response = request(
                authz_gateway.admin_port, "GET", AUTHZ.encode() + path, cookies, host="localhost"
            )
        else:
            response = ask(authz_gateway, convention, path, cookies)
        # The session still counts: agegate reads it, the site never gets it.
        assert response.status == 200, (convention, path, response.status, response.text)
        assert response.header_list("x-agegate-cookie") == ["a=1; b=2"]
        copied = [] if convention == "original" else ["a=1; b=2"]
        assert response.header_list("cookie") == copied
        assert response.header("x-envoy-auth-headers-to-remove") is None
        _assert_no_agegate_cookie_handed_on(response, session)


@pytest.mark.parametrize("convention", (*CONVENTIONS, "envoy"))
def test_forward_auth_with_only_agegate_cookies_hands_the_site_none(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    session = _sealed_session(authz_gateway)
    cookies = [(b"Cookie", b"__Host-agegate=" + session + b"; __Host-agegate-challenge=x")]
    if convention == "envoy":
        response = request(
            authz_gateway.admin_port, "GET", AUTHZ + "/echo/wine/red", cookies, host="localhost"
        )
    else:
        response = ask(authz_gateway, convention, b"/echo/wine/red", cookies)
    assert response.status == 200, response.text
    assert response.header("x-agegate-cookie") is None
    assert response.header("cookie") is None
    # nginx drops the header on an empty variable itself; Envoy must be told.
    removed = None if convention == "original" else "cookie"
    assert response.header("x-envoy-auth-headers-to-remove") == removed
    _assert_no_agegate_cookie_handed_on(response, session)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_forward_auth_refusal_hands_on_no_cookie(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    response = ask(authz_gateway, convention, b"/echo/wine/red", [(b"Cookie", b"a=1; b=2")])
    assert decided(response) == Decision(401, "no_session")
    assert response.header("x-agegate-cookie") is None and response.header("cookie") is None


# -- CRLF and control bytes in forwarded headers ------------------------------------------

RAW_HEADS = {
    "obs_fold_continues_uri": b"X-Forwarded-Uri: /echo/public/x\r\n /../wine/red\r\n",
    "bare_cr_in_uri": b"X-Forwarded-Uri: /echo/public/x\r/../wine/red\r\n",
    "bare_lf_injects_second_uri": (
        b"X-Forwarded-Uri: /echo/wine/red\nX-Forwarded-Uri: /echo/public/x\r\n"
    ),
    "bare_lf_injects_agegate_header": b"X-Forwarded-Uri: /echo/wine/red\nX-Agegate-Path: /\r\n",
    "nul_in_uri": b"X-Forwarded-Uri: /echo/public/x\x00/../../wine/red\r\n",
    "nul_in_host": b"X-Forwarded-Host: localhost\x00.evil\r\nX-Forwarded-Uri: /echo/x\r\n",
    "cr_in_host": b"X-Forwarded-Host: localhost\r.evil\r\nX-Forwarded-Uri: /echo/x\r\n",
    "tab_in_method": b"X-Forwarded-Method: GE\tT\r\nX-Forwarded-Uri: /echo/public/x\r\n",
    "vertical_tab_in_uri": b"X-Forwarded-Uri: /echo/public/x\x0b\r\n",
    "encoded_crlf_in_uri": b"X-Forwarded-Uri: /echo/public/x%0d%0aX-Agegate-Path:%20/\r\n",
    "nul_in_original_uri": b"X-Original-URI: /echo/public/\x00\r\n",
}


@pytest.mark.parametrize("head", RAW_HEADS.values(), ids=RAW_HEADS.keys())
def test_crlf_and_control_bytes_in_forwarded_headers_are_refused(
    authz_gateway: GatewayProcess, head: bytes
) -> None:
    data = _AUTHZ_HEAD + b"X-Forwarded-Host: localhost\r\n" + head + b"Connection: close\r\n\r\n"
    if b"X-Forwarded-Host:" in head:
        data = _AUTHZ_HEAD + head + b"Connection: close\r\n\r\n"
    responses = exchange(authz_gateway.admin_port, data)
    assert len(responses) == 1, responses
    assert decided(responses[0]).status == 400, responses[0]
    assert_no_grant(responses[0])


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_encoded_crlf_in_the_query_stays_inside_the_redirect(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    target = b"/echo/wine/red?a=%0d%0aSet-Cookie:%20__Host-agegate=x%0d%0a"
    response = ask(authz_gateway, convention, target, [HTML])
    decision = decided(response)
    assert decision.status == 303, response.headers
    assert decision.location and "\r" not in decision.location and "\n" not in decision.location
    assert decision.location.startswith("/.agegate/verify?return=/echo/wine/red")
    assert not response.header_list("set-cookie"), response.headers


# -- oversized forwarded URIs ---------------------------------------------------------------


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_oversized_forwarded_uri_never_grants_a_protected_path(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    for target in (
        b"/echo/wine/" + b"a" * 9_000,
        b"/echo/public/" + b"../" * 3_000 + b"echo/wine/red",
        b"/echo/wine/red?" + b"q" * 9_000,
    ):
        assert_no_grant(ask(authz_gateway, convention, target))
    # Past the header limit the server itself refuses, before any decision.
    huge = ask(authz_gateway, convention, b"/echo/public/" + b"a" * 70_000)
    assert huge.status in {400, 431}, huge
    assert_no_grant(huge)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_oversized_forwarded_uri_decides_like_proxy_mode(
    authz_gateway: GatewayProcess, convention: str
) -> None:
    target = b"/echo/public/" + b"a" * 9_000
    assert get(authz_gateway, target).status == 414
    response = ask(authz_gateway, convention, target)
    assert decided(response).status == 414, response.status
