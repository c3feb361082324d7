"""Privacy canary: plant identity values everywhere a visitor or a provider can put them,
run every flow, then prove none of it — and no token, cookie or full client IP — was
kept by the gateway: not in its log, not in Redis, not on disk, not in /metrics, and no
identity value or credential in any header the upstream received.

The flows are driven per verifier kind from the plug-in registry
(:func:`gateway.plugins.installed_kinds`): a newly installed kind without a driver
here fails :func:`test_every_installed_verifier_kind_has_a_canary_driver`.

What is scanned where:

- log file, every Redis key and value (``KEYS *`` + ``DUMP`` + the typed value), every
  file the gateway wrote next to its config, the admin ``/metrics``: no canary at all
  (identity claims, allowed extra claims, User-Agent, Referer, query strings), no token,
  no ``jti``, no nonce, no cookie value, no ``127.0.0.1`` (only ``127.0.0.0/24``);
- the log of a kind's own issuer/attester (the reference service for ``privacy-pass``):
  not the site's origin or server name, no birth date, no canary, no credential; and in
  the Privacy Pass API flow not one byte the client sends the issuer names the site;
- headers the upstream received: no planted identity or allowed-claim value, no token,
  no agegate cookie, no client IP (``forward_client_ip: false`` here).  The visitor's own
  User-Agent, Referer and query string are the site's business and are forwarded as is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.plugins import installed_kinds
from tests.security.canary import Run, Setup, canary, visitor_headers
from tests.security.canary_eu_av import drive_eu_av, prepare_eu_av
from tests.security.canary_oidc import drive_oidc, prepare_oidc
from tests.security.canary_privacy_pass import drive_privacy_pass, prepare_privacy_pass
from tests.security.canary_sd_jwt_vc import drive_sd_jwt_vc, prepare_sd_jwt_vc
from tests.security.support import HTML, api_nonce, browser_challenge, callback, get
from tests.support.gateway import GatewayProcess, cookie_value, session_cookie
from tests.support.net import free_port
from tests.support.rawhttp import request
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer

CONFIG_FILES = {"agegate.yaml", "policy.yaml", "jwks.json", "session.keys", "gateway.log"}
ALLOWED_CLAIM = "canary_note"
CLIENT_IP = "127.0.0.1"
# Kinds that exist only for tests and have no flow a visitor can run.
NO_DRIVER_NEEDED = {"example-kind"}


def _identity_claims(run: Run) -> list[dict[str, str]]:
    return [
        {"birthdate": run.identity["birthdate"]},
        {"name": run.identity["name"]},
        {"email": run.identity["email"]},
        {"document_number": run.identity["document"]},
        {"given_name": run.identity["name"], "sub": run.identity["document"]},
    ]


def drive_age_token(run: Run) -> None:
    """Browser callback flow, API mode, status, logout and refusals for ``age-token``."""
    gw = run.gw
    allowed = {ALLOWED_CLAIM: run.identity["allowed"]}
    query = canary("query")
    run.client_values.append(query)
    protected = f"/echo/wine/red?who={query}"

    # Browser: challenge redirect, verify page, callback, then the protected page.
    run.keep(get(gw, protected, [HTML, *visitor_headers(run)]))
    challenge = browser_challenge(gw, protected, visitor_headers(run))
    run.keep(challenge.page)
    run.secrets += [challenge.cookie, challenge.state, challenge.nonce]
    # Refusals on the callback first: identity claims, then a forged state.
    for claims in _identity_claims(run):
        token = run.token(challenge.nonce, {**claims, **allowed})
        fields = f"age_token={token}&state={quote(challenge.state)}".encode()
        refused = run.keep(callback(gw, fields, challenge.cookie, visitor_headers(run)))
        assert refused.status == 400, refused.text
    token = run.token(challenge.nonce, allowed)
    forged = f"age_token={token}&state=forged-{run.identity['name']}".encode()
    assert run.keep(callback(gw, forged, challenge.cookie)).status == 400
    done = run.keep(
        callback(
            gw,
            f"age_token={token}&state={quote(challenge.state)}".encode(),
            challenge.cookie,
            visitor_headers(run),
        )
    )
    assert done.status == 303, done.text
    cookie = session_cookie(done.header_list("set-cookie"))
    assert cookie
    jar = (b"Cookie", f"__Host-agegate={cookie}; site_pref=1".encode())
    page = run.keep(get(gw, protected, [jar, *visitor_headers(run)]))
    assert page.status == 200
    # Replay of the callback token, by callback and by API.
    replay = f"age_token={token}&state={quote(challenge.state)}".encode()
    assert run.keep(callback(gw, replay, challenge.cookie)).status == 400
    auth = (b"Authorization", f"AgeToken {token}".encode())
    assert run.keep(get(gw, protected, [auth])).status == 401

    # API mode: identity claims refused, an allowed extra claim accepted.
    for claims in _identity_claims(run):
        token = run.token(api_nonce(gw), {**claims, **allowed})
        auth = (b"Authorization", f"AgeToken {token}".encode())
        assert run.keep(get(gw, protected, [auth, *visitor_headers(run)])).status == 401
    under = run.token(api_nonce(gw), allowed, age_over={18: False})
    auth = (b"Authorization", f"AgeToken {under}".encode())
    assert run.keep(get(gw, protected, [auth])).status == 403
    token = run.token(api_nonce(gw), allowed)
    auth = (b"Authorization", f"AgeToken {token}".encode())
    answered = run.keep(get(gw, protected, [auth, *visitor_headers(run)]))
    assert answered.status == 200, answered.text
    api_cookie = session_cookie(answered.header_list("set-cookie"))
    assert api_cookie

    # Status and logout, with and without proof of origin; a tampered cookie.
    for value in (cookie, api_cookie, cookie[:-3] + "AAA"):
        run.keep(get(gw, "/.agegate/status", [(b"Cookie", f"__Host-agegate={value}".encode())]))
        run.keep(get(gw, protected, [(b"Cookie", f"__Host-agegate={value}".encode())]))
    run.keep(
        get(gw, "/.agegate/logout", [jar, (b"Origin", b"https://evil.example")], method="POST")
    )
    out = run.keep(
        get(gw, "/.agegate/logout", [jar, (b"Origin", gw.public_origin.encode())], method="POST")
    )
    assert out.status == 204
    assert cookie_value(out.header_list("set-cookie"), "__Host-agegate") == ""


def prepare_age_token(stack: ExitStack, directory: Path, port: int) -> Setup:
    """The default policy and the test issuer, with one extra claim allowed."""
    return Setup(verifier={"allow_claims": [ALLOWED_CLAIM]})


@dataclass(frozen=True)
class Driver:
    """One verifier kind's canary flows and the gateway (plus services) they need."""

    prepare: Callable[[ExitStack, Path, int], Setup]
    drive: Callable[[Run], None]


DRIVERS: dict[str, Driver] = {
    "age-token": Driver(prepare_age_token, drive_age_token),
    "privacy-pass": Driver(prepare_privacy_pass, drive_privacy_pass),
    "oidc": Driver(prepare_oidc, drive_oidc),
    "sd-jwt-vc": Driver(prepare_sd_jwt_vc, drive_sd_jwt_vc),
    "eu-av": Driver(prepare_eu_av, drive_eu_av),
}


def test_every_installed_verifier_kind_has_a_canary_driver() -> None:
    kinds = set(installed_kinds())
    assert "age-token" in kinds
    missing = kinds - set(DRIVERS) - NO_DRIVER_NEEDED
    assert not missing, f"verifier kinds without a privacy-canary flow driver: {sorted(missing)}"


@pytest.fixture
def canary_run(
    kind: str,
    upstream: UpstreamServer,
    redis_server: RedisServer,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """A gateway (and the kind's services, kept out of ``tmp_path``) for one kind's flows."""
    settings = {
        "store": redis_server.url,
        "log_client_ip": "truncated",
        "forward_client_ip": False,
        "rate_limit": 1000,  # on, so rate buckets are written to Redis too
    }
    port = free_port()
    with ExitStack() as stack:
        setup = DRIVERS[kind].prepare(stack, tmp_path_factory.mktemp(f"canary-{kind}"), port)
        gw = GatewayProcess(
            tmp_path,
            upstream=upstream.url,
            policy=setup.policy,
            settings={**settings, **setup.settings},
            verifier=setup.verifier,
            port=port,
        )
        with gw:
            yield Run(gw, reference=setup.reference, services=setup.services)


def _redis_contents(redis: RedisServer) -> list[bytes]:
    found: list[bytes] = []
    for key in redis.command("KEYS", "*"):
        found.append(key)
        dumped = redis.command("DUMP", key)
        if dumped:
            found.append(dumped)
        kind = redis.command("TYPE", key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "string":
            found.append(redis.command("GET", key))
        elif kind == "hash":
            found += [bytes(x) for x in redis.command("HGETALL", key)]
        elif kind in {"set"}:
            found += list(redis.command("SMEMBERS", key))
        elif kind == "zset":
            found += list(redis.command("ZRANGE", key, 0, -1))
        elif kind == "list":
            found += list(redis.command("LRANGE", key, 0, -1))
    return [f if isinstance(f, bytes) else str(f).encode() for f in found]


def _wait_for_access_lines(gw: GatewayProcess) -> str:
    """The log once access lines are in it (the process may write them a little later)."""
    deadline = time.monotonic() + 5
    while True:
        text = gw.log_text()
        if '"event":"request"' in text.replace(" ", "") or time.monotonic() > deadline:
            assert '"event":"request"' in text.replace(" ", ""), text[-2000:]
            return text
        time.sleep(0.05)


def _assert_absent(where: str, haystack: str, needles: list[str]) -> None:
    for needle in needles:
        assert needle not in haystack, f"{needle[:40]!r} found in {where}"


@pytest.mark.parametrize("kind", sorted(DRIVERS))
def test_privacy_canary(
    kind: str,
    canary_run: Run,
    upstream: UpstreamServer,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    run, canary_gateway = canary_run, canary_run.gw
    run.identity.update(
        {
            "birthdate": "1999-" + canary("birth"),
            "name": "Alice " + canary("name"),
            "email": canary("mail") + "@example.org",
            "document": "P" + canary("doc"),
            "allowed": canary("allowed"),
        }
    )
    DRIVERS[kind].drive(run)
    assert run.upstream_headers, "no request reached the upstream: the drivers proved nothing"
    assert redis_server.command("DBSIZE") > 0, "nothing in Redis: the store was not used"

    everything = [*run.identity.values(), *run.client_values, *run.secrets]
    # The loopback client shares 127.0.0.1 with the servers: their own configured
    # addresses (listeners, upstream, Redis) are not a client's, so they are cut out first.
    own = [
        f"{CLIENT_IP}:{canary_gateway.port}",
        f"{CLIENT_IP}:{canary_gateway.admin_port}",
        f"{CLIENT_IP}:{upstream.port}",
        f"{CLIENT_IP}:{redis_server.port}",
    ]
    log = _wait_for_access_lines(canary_gateway)
    for address in own:
        log = log.replace(address, "<server address>")
    _assert_absent("the gateway log", log, [*everything, CLIENT_IP])
    assert "127.0.0.0/24" in log  # log_client_ip: truncated is really on

    redis_blob = b"\n".join(_redis_contents(redis_server)).decode("latin-1")
    _assert_absent("Redis", redis_blob, [*everything, CLIENT_IP])

    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name not in CONFIG_FILES]
    for path in written:
        _assert_absent(str(path), path.read_bytes().decode("latin-1"), [*everything, CLIENT_IP])

    metrics = request(canary_gateway.admin_port, "GET", "/metrics", host="127.0.0.1").text
    assert "agegate_requests_total" in metrics
    _assert_absent("/metrics", metrics, [*everything, CLIENT_IP])

    upstream_text = json.dumps(run.upstream_headers)
    _assert_absent(
        "upstream headers", upstream_text, [*run.identity.values(), *run.secrets, CLIENT_IP]
    )
    assert "__Host-agegate" not in upstream_text
    assert "site_pref=1" in upstream_text  # the site's own cookie does cross

    if run.reference is not None:
        # The kind's issuer/attester: it never logs the site it vouches for (in the API
        # flow it never even learns it), the date of birth it checked, or any credential.
        reference_log = run.reference.log_text()
        assert "POST /attest 200" in reference_log
        _assert_absent("the reference issuer log", reference_log, [*run.origin_names, *everything])
