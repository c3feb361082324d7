"""Attacks on the request target and the Host, against a live gateway over raw sockets.

One named test per case.  For a protected route the only acceptable answers
are the gateway's own: a challenge (303/401), 400, 403 or 421 — never the
upstream's content and never a 5xx — and the upstream must not have been
asked for the protected path at all.
"""

from __future__ import annotations

import pytest

from tests.security.support import (
    HTML,
    assert_not_upstream_content,
    assert_refused,
    get,
    new_upstream_requests,
)
from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer


def _refused_without_upstream(
    gw: GatewayProcess,
    upstream: UpstreamServer,
    target: bytes | str,
    allowed: set[int] | None = None,
    **kw: object,
) -> int:
    before = len(upstream.requests)
    response = get(gw, target, **kw)  # type: ignore[arg-type]
    if allowed is None:
        assert_refused(response)
    else:
        assert_refused(response, allowed)
    seen = new_upstream_requests(upstream, before)
    assert not seen, f"the upstream was asked for {seen}"
    return response.status


# -- the query is not the path ---------------------------------------------------------


def test_query_is_not_part_of_path_cve_2025_54576(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # The public path is served; the protected prefix in the query grants nothing upstream.
    before = len(upstream.requests)
    response = get(gateway, "/echo/public/x?a=/echo/wine/")
    assert response.status == 200
    assert response.json()["path"] == "/echo/public/x"
    assert new_upstream_requests(upstream, before) == [("GET", "/echo/public/x?a=/echo/wine/")]
    # ...and the reverse: a protected path with a public-looking query stays protected.
    assert _refused_without_upstream(gateway, upstream, "/echo/wine/red?x=/echo/public/") == 401


def test_query_with_encoded_question_mark_is_still_path(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # %3F is a literal '?' inside the path, not a query separator.
    _refused_without_upstream(gateway, upstream, "/echo/wine/red%3F/echo/public/")


# -- dot segments ------------------------------------------------------------------------

DOT_SEGMENTS = {
    "plain": "/echo/public/../wine/red",
    "plain_deep": "/echo/public/a/b/../../../wine/red",
    "above_root": "/../../echo/wine/red",
    "lower_encoded": "/echo/public/%2e%2e/wine/red",
    "upper_encoded": "/echo/public/%2E%2E/wine/red",
    "mixed_encoded": "/echo/public/.%2E/wine/red",
    "single_dot": "/echo/./wine/./red",
    "encoded_single_dot": "/echo/%2e/wine/red",
    "trailing": "/echo/wine/red/..",
}


@pytest.mark.parametrize("target", DOT_SEGMENTS.values(), ids=DOT_SEGMENTS.keys())
def test_dot_segments_resolve_before_matching(
    gateway: GatewayProcess, upstream: UpstreamServer, target: str
) -> None:
    _refused_without_upstream(gateway, upstream, target)


ENCODED_SLASH_TRAVERSALS = {
    "dot_dot_encoded_slash_upper": "/echo/public/%2E%2E%2Fwine/red",
    "dot_dot_encoded_slash_lower": "/echo/public/..%2fwine/red",
    "encoded_all": "/echo/public%2F..%2F..%2Fecho%2Fwine%2Fred",
    "tomcat_semicolon": "/echo/public/..;/wine/red",
    "tomcat_semicolon_encoded": "/echo/public/..%3B/wine/red",
    "encoded_slash": "/echo%2Fwine/red",
    "backslash": "/echo/public\\..\\wine\\red",
    "encoded_backslash": "/echo/public/..%5Cwine/red",
    "encoded_backslash_lower": "/echo/public/..%5cwine/red",
    "bad_escape": "/echo/wine/%zz",
    "truncated_escape": "/echo/wine/%2",
}


@pytest.mark.parametrize(
    "target", ENCODED_SLASH_TRAVERSALS.values(), ids=ENCODED_SLASH_TRAVERSALS.keys()
)
def test_encoded_separators_never_reach_the_upstream(
    gateway: GatewayProcess, upstream: UpstreamServer, target: str
) -> None:
    _refused_without_upstream(gateway, upstream, target)


def test_encoded_slash_is_refused_with_400(gateway: GatewayProcess) -> None:
    for target in ("/echo%2Fwine/red", "/echo/public/..%2fwine/red", "/echo/public/..%5Cwine"):
        response = get(gateway, target)
        assert response.status == 400, target
        assert response.json()["reason"] in {"encoded_slash", "backslash"}


@pytest.mark.parametrize(
    "target",
    ["/echo/public/%252F..%252Fwine/red", "/echo/public/..%C0%AFwine/red"],
    ids=["double_encoded_slash", "overlong_utf8_slash"],
)
def test_double_encoding_and_overlong_utf8_stay_literal(
    gateway: GatewayProcess, upstream: UpstreamServer, target: str
) -> None:
    # "%252F" is the text "%2F" and "%C0%AF" an invalid UTF-8 sequence: both are one
    # literal segment under the public prefix.  The upstream must receive them still
    # encoded, exactly as matched, so it cannot turn them into a separator.
    before = len(upstream.requests)
    response = get(gateway, target)
    if response.status == 200:
        assert response.json()["path"] == target
    else:
        assert_refused(response)
    for _, seen in new_upstream_requests(upstream, before):
        assert seen == target


# -- control bytes, NUL, matrix params ----------------------------------------------------

CONTROL_TARGETS = {
    "nul_encoded": b"/echo/wine%00/red",
    "nul_encoded_public": b"/echo/public/%00/../../wine/red",
    "tab_encoded": b"/echo/wine%09/red",
    "newline_encoded": b"/echo/wine%0a/red",
    "crlf_encoded": b"/echo/wine/red%0d%0aX-Agegate-Age-Over:%2018",
    "del_encoded": b"/echo/wine%7f/red",
    "nul_raw": b"/echo/wine\x00/red",
    "tab_raw": b"/echo/wine\t/red",
    "del_raw": b"/echo/wine\x7f/red",
    "high_bytes_raw": b"/echo/wine\xff\xfe/red",
}


@pytest.mark.parametrize("target", CONTROL_TARGETS.values(), ids=CONTROL_TARGETS.keys())
def test_nul_and_control_bytes_are_refused(
    gateway: GatewayProcess, upstream: UpstreamServer, target: bytes
) -> None:
    status = _refused_without_upstream(gateway, upstream, target)
    if b"%" in target:
        assert status == 400


def test_nul_in_public_path_is_refused_before_matching(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    assert _refused_without_upstream(gateway, upstream, "/echo/public/a%00b") == 400


MATRIX_PARAMS = {
    "segment_param": "/echo/wine;jsessionid=1/red",
    "param_on_public": "/echo/public;/../wine/red",
    "dot_dot_param": "/echo/public/..;x=1/wine/red",
    "encoded_semicolon": "/echo/wine%3B/red",
}


@pytest.mark.parametrize("target", MATRIX_PARAMS.values(), ids=MATRIX_PARAMS.keys())
def test_semicolon_matrix_params_are_refused(
    gateway: GatewayProcess, upstream: UpstreamServer, target: str
) -> None:
    assert _refused_without_upstream(gateway, upstream, target) == 400


# -- spelling variants of a protected prefix ----------------------------------------------

SPELLINGS = {
    "percent_letter": "/echo/w%69ne/red",
    "percent_letter_upper": "/echo/w%69%6E%65/red",
    "percent_everything": "/%65%63%68%6f/%77%69%6e%65/%72%65%64",
    "duplicate_slashes": "//echo//wine/red",
    "many_slashes": "///echo///wine///red",
    "trailing_slash": "/echo/wine/",
    "bare_prefix": "/echo/wine",
    "encoded_tilde_region": "/echo/wine/%7Ered",
}


@pytest.mark.parametrize("target", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_protected_prefix_spellings_are_challenged(
    gateway: GatewayProcess, upstream: UpstreamServer, target: str
) -> None:
    assert _refused_without_upstream(gateway, upstream, target) == 401
    browser = get(gateway, target, [HTML])
    assert browser.status == 303
    assert (browser.header("location") or "").startswith("/.agegate/verify?return=/echo/wine")


def test_case_variants_do_not_match_case_sensitive_rules(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # The policy is case-sensitive by default, so /ECHO/WINE is another (allowed) path; the
    # upstream gets it spelled as it is, so a case-insensitive upstream would be the
    # operator's documented responsibility (defaults.case_insensitive).  Here we only check
    # that the gateway forwards the exact canonical spelling, not a lower-cased one.
    response = get(gateway, "/echo/WINE/red")
    if response.status == 200:
        assert response.json()["path"] == "/echo/WINE/red"
    else:
        assert_refused(response)


# -- absolute-form targets and Host ------------------------------------------------------


def test_absolute_form_with_our_host_is_served_and_protected(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    ours = f"http://localhost:{gateway.port}"
    assert get(gateway, ours + "/echo/public/x").status == 200
    assert _refused_without_upstream(gateway, upstream, ours + "/echo/wine/red") == 401
    assert _refused_without_upstream(gateway, upstream, ours + "/echo/w%69ne/red") == 401


ABSOLUTE_FOREIGN = {
    "foreign_host": b"http://evil.example/echo/public/x",
    "foreign_https": b"https://evil.example/echo/wine/red",
    "foreign_with_port": b"http://evil.example:80/echo/public/x",
    "foreign_upper": b"HTTP://EVIL.EXAMPLE/echo/public/x",
    "foreign_ip": b"http://10.0.0.1/echo/public/x",
    "foreign_ipv6": b"http://[::1]/echo/public/x",
}


@pytest.mark.parametrize("target", ABSOLUTE_FOREIGN.values(), ids=ABSOLUTE_FOREIGN.keys())
def test_absolute_form_naming_a_foreign_host_gets_421(
    gateway: GatewayProcess, upstream: UpstreamServer, target: bytes
) -> None:
    # The Host header says localhost; the target (which RFC 9112 §3.2.2 says wins) does not.
    assert _refused_without_upstream(gateway, upstream, target) == 421


MALFORMED_ABSOLUTE = {
    "userinfo": b"http://localhost@evil.example/echo/public/x",
    "userinfo_ours": b"http://evil.example@localhost/echo/wine/red",
    "bad_port": b"http://localhost:80x/echo/public/x",
    "other_scheme": b"ftp://localhost/echo/public/x",
    "authority_form": b"localhost:80",
    "asterisk": b"*",
    "fragment": b"/echo/public/x#/echo/wine",
    "percent_host": b"http://local%68ost/echo/public/x",
    "foreign_no_path": b"http://evil.example",
    "foreign_query_only": b"http://evil.example?x=/echo/public/",
}


@pytest.mark.parametrize("target", MALFORMED_ABSOLUTE.values(), ids=MALFORMED_ABSOLUTE.keys())
def test_malformed_targets_are_refused(
    gateway: GatewayProcess, upstream: UpstreamServer, target: bytes
) -> None:
    _refused_without_upstream(gateway, upstream, target, allowed={400, 421})


HOSTS = {
    "foreign": b"evil.example",
    "foreign_with_our_port": b"evil.example:8080",
    "suffix_trick": b"localhost.evil.example",
    "userinfo_trick": b"localhost:80@evil.example",
    "port_garbage": b"localhost:abc",
    "empty": b"",
    "space_inside": b"local host",
    "non_ascii": "l\u00f6calhost".encode(),
}


# "localhost." is the same DNS name as "localhost" and is served (test_host_attacks.py).
@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
def test_host_mismatch_gets_421(
    gateway: GatewayProcess, upstream: UpstreamServer, host: bytes
) -> None:
    for target in ("/echo/public/x", "/echo/wine/red"):
        _refused_without_upstream(gateway, upstream, target, allowed={400, 421}, host=host)


def test_missing_host_gets_421(gateway: GatewayProcess, upstream: UpstreamServer) -> None:
    _refused_without_upstream(gateway, upstream, "/echo/public/x", allowed={400, 421}, host=None)


def test_host_case_and_port_are_accepted(gateway: GatewayProcess) -> None:
    assert get(gateway, "/echo/public/x", host=f"LOCALHOST:{gateway.port}").status == 200


def test_duplicate_host_headers_are_refused(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # RFC 9112 §3.2: a server MUST answer 400 to a request with more than one Host.
    _refused_without_upstream(
        gateway,
        upstream,
        "/echo/public/x",
        allowed={400, 421},
        headers=[(b"Host", b"evil.example")],
    )


def test_absolute_form_host_replaces_the_host_header(
    gateway: GatewayProcess, upstream: UpstreamServer
) -> None:
    # RFC 9112 §3.2.2: with an absolute-form target the Host header is ignored and replaced
    # by the target's authority; otherwise a host the gateway never accepted reaches the site.
    response = get(gateway, "http://localhost/echo/public/x", host=b"evil.example")
    if response.status != 200:
        assert_refused(response, {400, 421})
        return
    headers = response.json()["headers"]
    assert all("evil.example" not in value for _, value in headers), headers


def test_unknown_host_response_is_the_gateways(gateway: GatewayProcess) -> None:
    response = get(gateway, "/echo/public/x", host=b"evil.example")
    assert response.status == 421
    assert_not_upstream_content(response)
    assert response.header("content-type") == "application/problem+json"
