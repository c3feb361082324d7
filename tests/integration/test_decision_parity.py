"""One table of requests, decided by proxy mode and by every forward-auth convention alike.

Each case goes, on real processes, through:

- ``proxy``: agegate as the reverse proxy (its public listener);
- ``forwarded``: ``/.agegate/authz`` with ``X-Forwarded-Method/Host/Uri`` (Caddy, Traefik);
- ``original``: ``/.agegate/authz`` with ``X-Original-URI`` (nginx ``auth_request`` style);
- ``envoy``: ``/.agegate/authz<original path>`` with the original method and ``Host``;
- ``via-nginx`` / ``via-caddy``: the shipped docs/integrations configs in front of the site.

Every mode must reach the same decision: status, reason, redirect location,
the path the site is given (canonical), and what ``X-Agegate-*`` says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from gateway.core.paths import canonical_path
from tests.integration.conftest import Stack, _start_stack, nonce_of, seal_session
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import RawResponse, request
from tests.support.upstream import UpstreamServer
from verifiers.base import AssuranceLevel

HTML = "text/html,application/xhtml+xml"


@dataclass(frozen=True)
class Case:
    name: str
    target: bytes
    expect: tuple[int, str | None]  # (status, reason) every mode must give
    method: str = "GET"
    host: str = "localhost"
    accept: str = "application/json"
    session: dict[str, object] | None = None  # seal_session keyword arguments
    token: dict[int, bool] | None = None  # answer the challenge inline with these claims
    bad_token: bool = False
    refused_by: tuple[str, ...] = ()  # front proxies that refuse it themselves (same status)


CASES = [
    Case("public", b"/echo/public/page?q=1", (200, None)),
    Case("protected-api-no-session", b"/echo/wine/red", (401, "no_session")),
    Case("protected-browser-no-session", b"/echo/wine/red?v=1", (303, None), accept=HTML),
    Case("protected-head", b"/echo/wine/red", (401, "no_session"), method="HEAD"),
    Case("protected-post", b"/echo/wine/red", (401, "no_session"), method="POST"),
    Case("session-cookie", b"/echo/wine/red?x", (200, None), session={}),
    Case(
        "session-too-young",
        b"/echo/wine/red",
        (401, "age_not_proven"),
        session={"age_over": frozenset({16})},
    ),
    Case(
        "session-proven-under",
        b"/echo/wine/red",
        (403, "proven_under"),
        session={"age_over": frozenset(), "age_under": frozenset({18})},
    ),
    Case(
        "session-low-assurance",
        b"/echo/spirits/rum",
        (401, "assurance_too_low"),
        session={"age_over": frozenset({21}), "assurance": AssuranceLevel.BASIC},
    ),
    Case(
        "session-enough-assurance",
        b"/echo/spirits/rum",
        (200, None),
        session={"age_over": frozenset({21}), "assurance": AssuranceLevel.STANDARD},
    ),
    Case("encoded-dot-segments", b"/echo/public/%2e%2e/wine/red", (401, "no_session")),
    Case(
        "encoded-dot-segments-upper", b"/echo/public/%2E%2E/%2E%2E/echo/wine/x", (401, "no_session")
    ),
    Case("raw-dot-segments", b"/echo/public/../wine/red", (401, "no_session")),
    Case("double-slashes", b"//echo//wine/red", (401, "no_session")),
    Case("encoded-unreserved", b"/echo/w%69ne/red", (401, "no_session")),
    Case("dot-segments-to-public", b"/echo/wine/../public/x", (200, None)),
    Case("encoded-slash", b"/echo/public%2F..%2Fwine/red", (400, "encoded_slash")),
    Case("encoded-backslash", b"/echo/public/..%5Cwine/red", (400, "backslash")),
    Case("semicolon", b"/echo/public/..;/wine/red", (400, "semicolon")),
    # nginx and Caddy refuse this target themselves, with the same status.
    Case(
        "bad-escape",
        b"/echo/public/%zz",
        (400, "bad_percent_escape"),
        refused_by=("via-nginx", "via-caddy"),
    ),
    Case("query-is-not-the-path", b"/echo/wine/red?/echo/public/x", (401, "no_session")),
    Case("query-naming-protected-path", b"/echo/public/x?../wine/red", (200, None)),
    Case("unknown-host", b"/echo/public/x", (421, "unknown_host"), host="evil.example"),
    Case("deny-rule", b"/echo/closed/x", (403, "denied_by_rule")),
    Case("token-in-authorization", b"/echo/wine/red", (200, None), token={18: True}),
    Case("token-too-young", b"/echo/wine/red", (401, "age_not_proven"), token={16: True}),
    Case("token-proven-under", b"/echo/wine/red", (403, "proven_under"), token={18: False}),
    Case("token-malformed", b"/echo/wine/red", (401, "malformed"), bad_token=True),
]

MODES = ["proxy", "forwarded", "original", "envoy", "via-nginx", "via-caddy"]


@dataclass(frozen=True)
class Result:
    """What a mode decided, in the terms all modes share."""

    status: int
    reason: str | None
    location: str | None = None
    path: str | None = None  # canonical path of what the site gets
    age_over: str | None = None
    assurance: str | None = None
    cookie: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False)


@pytest.fixture(scope="module")
def proxies(
    gateway: GatewayProcess, upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Stack]]:
    started: dict[str, Stack] = {}
    try:
        for kind in ("nginx", "caddy"):
            proxy = _start_stack(kind, gateway, upstream, Path(tmp_path_factory.mktemp(kind)))
            proxy.start()
            started[kind] = Stack(kind, gateway, proxy, upstream)
        yield started
    finally:
        for each in started.values():
            each.proxy.stop()


def _send(
    mode: str,
    case: Case,
    gw: GatewayProcess,
    proxies: dict[str, Stack],
    extra: list[tuple[str, str]],
) -> RawResponse:
    headers = [("Accept", case.accept), *extra]
    if case.session is not None:
        headers.append(("Cookie", seal_session(gw, **case.session)))  # type: ignore[arg-type]
    if mode in ("proxy", "via-nginx", "via-caddy"):
        port = gw.port if mode == "proxy" else proxies[mode.removeprefix("via-")].port
        return request(port, case.method, case.target, headers, host=case.host)
    if mode == "envoy":
        return request(
            gw.admin_port, case.method, b"/.agegate/authz" + case.target, headers, host=case.host
        )
    if mode == "forwarded":
        headers += [
            ("X-Forwarded-Method", case.method),
            ("X-Forwarded-Host", case.host),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Uri", case.target.decode("latin-1")),
        ]
        return request(gw.admin_port, "GET", b"/.agegate/authz", headers, host="127.0.0.1")
    headers += [
        ("X-Original-Method", case.method),
        ("X-Forwarded-Host", case.host),
        ("X-Original-URI", case.target.decode("latin-1")),
    ]
    # nginx's subrequest keeps the original method.
    return request(gw.admin_port, case.method, b"/.agegate/authz", headers, host="127.0.0.1")


def _reason(response: RawResponse) -> str | None:
    if response.status in (200, 303) or not response.body:
        return None
    try:
        body = json.loads(response.body)
    except ValueError:
        return None
    return body.get("reason") if isinstance(body, dict) else None


def _result(mode: str, case: Case, response: RawResponse) -> Result:
    status = response.status
    cookie = any(v.startswith("__Host-agegate=v1.") for v in response.header_list("set-cookie"))
    if mode == "original":
        # nginx style: agegate's 303 comes as 401 + X-Agegate-Location, other statuses as 403.
        reason = response.header("x-agegate-reason")
        if response.header("x-agegate-location"):
            return Result(303, None, response.header("x-agegate-location"))
        status = int(response.header("x-agegate-status") or status)
        if status != 200:
            return Result(status, reason)
    if status == 303:
        return Result(303, None, response.header("location"))
    if status != 200:
        return Result(status, _reason(response))
    if mode in ("proxy", "via-nginx", "via-caddy"):
        if case.method == "HEAD" or not case.target.startswith(b"/echo"):
            return Result(200, None, cookie=cookie)
        echo = response.json()
        seen = dict(echo["headers"])
        # Caddy forwards the path as sent: it names the resource agegate decided on
        # when read canonically (which is what the site must do; see caddy.md).
        return Result(
            200,
            None,
            path=canonical_path(echo["path"]),
            age_over=seen.get("x-agegate-age-over"),
            assurance=seen.get("x-agegate-assurance"),
            cookie=cookie,
            extra={"raw_path": echo["path"], "query": echo["query"]},
        )
    return Result(
        200,
        None,
        path=response.header("x-agegate-path"),
        age_over=response.header("x-agegate-age-over"),
        assurance=response.header("x-agegate-assurance"),
        cookie=cookie,
    )


def decide(mode: str, case: Case, gw: GatewayProcess, proxies: dict[str, Stack]) -> Result:
    """Run ``case`` through ``mode``; a token case first fetches that mode's own nonce."""
    extra: list[tuple[str, str]] = []
    if case.token is not None or case.bad_token:
        token = "not-a-jws"
        if case.token is not None:
            challenge = _send(mode, replace(case, session=None), gw, proxies, [])
            assert challenge.status == 401, (mode, challenge.status, challenge.text)
            token = gw.mint(nonce_of(challenge.header("www-authenticate")), age_over=case.token)
        extra.append(("Authorization", f"AgeToken {token}"))
    return _result(mode, case, _send(mode, case, gw, proxies, extra))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_mode_decides_alike(
    case: Case, gateway: GatewayProcess, proxies: dict[str, Stack]
) -> None:
    results = {mode: decide(mode, case, gateway, proxies) for mode in MODES}
    reference = results["proxy"]
    assert reference.status == case.expect[0], reference
    for mode, result in results.items():
        if case.method == "HEAD" or mode in case.refused_by:
            # No body to read a reason from (except where the question itself was a GET).
            assert result.status == reference.status, (mode, result)
            continue
        assert result == reference, f"{mode} decided {result}, proxy mode {reference}"
    if case.method != "HEAD":
        assert reference.reason == case.expect[1], reference
    if reference.status == 200 and reference.path is not None:
        # Both front proxies give the site the query exactly as sent.
        query = case.target.partition(b"?")[2].decode()
        assert results["via-nginx"].extra["query"] == query
        assert results["via-caddy"].extra["query"] == query
        # nginx forwards exactly the canonical path agegate decided on.
        assert results["via-nginx"].extra["raw_path"] == reference.path


def test_table_covers_the_spec_cases() -> None:
    names = {case.name for case in CASES}
    for required in (
        "public",
        "protected-api-no-session",
        "session-cookie",
        "session-proven-under",
        "encoded-dot-segments",
        "encoded-slash",
        "unknown-host",
        "deny-rule",
        "token-in-authorization",
    ):
        assert required in names
