"""Property-based fuzzing that the per-module suites do not already do.

Already fuzzed elsewhere (not repeated here): ``canonical_path`` and
``split_target`` in-process (tests/gateway/core/test_paths.py), random text and
random blobs through ``SessionCodec.open`` / ``ChallengeCodec.open``
(tests/gateway/session/test_return_paths.py), random strings, random JSON headers/claims and
signed random claims through the age-token verifier
(tests/verifiers/test_age_token.py), random text and structures through the
policy loader (tests/gateway/policy/test_loader.py).

Added here:

- the request target against the *live* gateway (raw bytes on the wire);
- edits of a *valid* session cookie (many bytes changed at once, pieces
  moved between a session and a challenge cookie): never opens;
- age tokens whose header tries to bring its own key (``jwk``, ``jku``,
  ``x5u``, ``x5c``) or pick a weak ``alg``, signed by the attacker: always
  ``VerificationError``;
- policy YAML built from YAML's dangerous constructs (alias bombs, tags,
  deep nesting, merge keys): only ``PolicyError``, quickly.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import PolicyError
from gateway.policy.facts import SessionClaims
from gateway.policy.loader import parse_policy_text
from gateway.session.codec import ChallengeCodec, ChallengeState, SessionCodec
from tests.security.support import assert_not_upstream_content, new_upstream_requests
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import build_request, exchange
from tests.support.upstream import UpstreamServer
from tests.verifiers.tokens import (
    ISSUER,
    Signer,
    context,
    good_claims,
    make_signer,
    make_verifier,
    presentation,
    pyjwt_token,
    write_jwks,
)
from verifiers.base import AssuranceLevel, VerificationError

LIVE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
QUICK = settings(max_examples=100, deadline=None)

# -- the request target against the live gateway ----------------------------------------

_PIECES = st.sampled_from(
    [
        "/",
        "//",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        ";",
        "%3b",
        "%00",
        "%",
        "%zz",
        "?",
        "#",
        "echo",
        "wine",
        "w%69ne",
        "public",
        "closed",
        "spirits",
        "%252f",
        "~",
        "@",
        ":",
        "%20",
        "+",
        "*",
        "\t",
        "\x7f",
        "\x80",
        "\xff",
        ".agegate",
        "http://localhost",
        "http://evil.example",
    ]
)
_TARGETS = st.one_of(
    st.lists(_PIECES, max_size=12).map(lambda parts: "".join(parts).encode("latin-1")),
    st.binary(max_size=60).map(lambda raw: b"/echo/" + raw),
    st.binary(max_size=40),
)
_ALLOWED_STATUSES = {400, 401, 303, 403, 404, 405, 414, 421}


def _rule_of(path: str) -> str:
    for prefix, rule in (
        ("/echo/public", "public"),
        ("/echo/wine", "wine"),
        ("/echo/spirits", "spirits"),
        ("/echo/closed", "closed"),
    ):
        if path == prefix or path.startswith(prefix + "/"):
            return rule
    return "everything-else"


@LIVE
@given(target=_TARGETS)
def test_fuzz_live_request_target(
    gateway: GatewayProcess, upstream: UpstreamServer, target: bytes
) -> None:
    if b"\r" in target or b"\n" in target or b" " in target:
        target = target.replace(b"\r", b"").replace(b"\n", b"").replace(b" ", b"")
    data = build_request("GET", target or b"/")
    before = len(upstream.requests)
    responses = exchange(gateway.port, data, expect=1, timeout=5)
    assert responses, data
    response = responses[0]
    assert response.status < 500, (data, response.status, response.body[:200])
    if response.status == 200 and response.header("server") == "test-upstream":
        # The upstream answered: only for a path the policy allows, as the upstream saw it.
        seen = new_upstream_requests(upstream, before)
        assert len(seen) == 1, seen
        path = response.json()["path"]
        assert _rule_of(path) in {"public", "everything-else"}, (data, path)
        assert seen[0][1].split("?")[0] == path
    else:
        assert response.status in _ALLOWED_STATUSES | {200}, (data, response.status)
        if response.status != 200:
            assert_not_upstream_content(response)
        for _, seen_target in new_upstream_requests(upstream, before):
            assert _rule_of(seen_target.split("?")[0]) in {"public", "everything-else"}


# -- session cookies: edits of a valid cookie --------------------------------------------

_AUDIENCE = "https://shop.example"
_KEY = bytes(range(32))
_NOW = 1_750_000_000.0
_CLAIMS = SessionClaims(
    age_over=frozenset({18}),
    age_under=frozenset(),
    assurance=AssuranceLevel.BASIC,
    verifier="test-token",
    issued_at=_NOW,
    expires_at=_NOW + 3600,
)


def _codecs() -> tuple[SessionCodec, ChallengeCodec, list[str]]:
    reasons: list[str] = []
    sessions = SessionCodec([_KEY], _AUDIENCE, on_invalid=reasons.append)
    challenges = ChallengeCodec([_KEY], _AUDIENCE, on_invalid=reasons.append)
    return sessions, challenges, reasons


_EDITS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "insert", "delete"]),
        st.integers(min_value=0, max_value=200),
        st.sampled_from('AZaz09-_.=+/ %"\\\x00\u00e9'),
    ),
    min_size=1,
    max_size=6,
)


def _apply(value: str, edits: list[tuple[str, int, str]]) -> str:
    for kind, where, char in edits:
        index = where % (len(value) + 1)
        if kind == "insert":
            value = value[:index] + char + value[index:]
        elif value and kind == "delete":
            index %= len(value)
            value = value[:index] + value[index + 1 :]
        elif value:
            index %= len(value)
            value = value[:index] + char + value[index + 1 :]
    return value


@QUICK
@given(edits=_EDITS)
def test_fuzz_edited_session_cookie_never_opens(edits: list[tuple[str, int, str]]) -> None:
    sessions, challenges, reasons = _codecs()
    sealed = sessions.seal(_CLAIMS)
    edited = _apply(sealed, edits)
    opened = sessions.open(edited, _NOW)
    if edited.rstrip("=") == sealed:
        return  # no change (or only padding added): the same cookie
    assert opened is None, (sealed, edited)
    assert challenges.open(edited, _NOW) is None
    assert reasons and all(
        r in {"malformed", "unknown_key", "tampered", "expired"} for r in reasons
    )


@QUICK
@given(cut=st.integers(min_value=0, max_value=400), take=st.integers(min_value=1, max_value=60))
def test_fuzz_spliced_session_and_challenge_cookies_never_open(cut: int, take: int) -> None:
    sessions, challenges, _ = _codecs()
    session = sessions.seal(_CLAIMS)
    challenge = challenges.seal(
        ChallengeState(
            nonce="n" * 32,
            state="s" * 32,
            return_path="/wine",
            min_age=18,
            assurance=AssuranceLevel.BASIC,
            verifiers=("test-token",),
            expires_at=_NOW + 600,
        )
    )
    head, body = session.rsplit(".", 1)
    other = challenge.rsplit(".", 1)[1]
    index = cut % max(len(body), 1)
    spliced = f"{head}.{body[:index]}{other[index : index + take]}{body[index + take :]}"
    if spliced == session:
        return
    assert sessions.open(spliced, _NOW) is None
    assert sessions.open(f"{head}.{other}", _NOW) is None
    assert challenges.open(f"{challenge.rsplit('.', 1)[0]}.{body}", _NOW) is None


# -- age tokens that bring their own key or a weak algorithm -----------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> tuple[Signer, Path]:
    signer = make_signer("ES256")
    return signer, write_jwks(tmp_path_factory.mktemp("jwks") / "jwks.json", [signer])


@pytest.fixture(scope="module")
def attacker() -> Signer:
    return make_signer("ES256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


_KEY_PARAMS = st.sampled_from(["jwk", "jku", "x5u", "x5c", "x5t", "kid"])
_ALGS = st.sampled_from(["none", "None", "NONE", "HS256", "HS512", "ES256", "RS256", "ES256K", ""])


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    params=st.lists(_KEY_PARAMS, min_size=1, max_size=3, unique=True),
    alg=_ALGS,
    reuse_kid=st.booleans(),
)
def test_fuzz_tokens_bringing_their_own_key_are_refused(
    provider: tuple[Signer, Path],
    attacker: Signer,
    params: list[str],
    alg: str,
    reuse_kid: bool,
) -> None:
    signer, jwks_path = provider
    verifier = make_verifier(jwks_path)
    values: dict[str, Any] = {
        "jwk": attacker.public_jwk,
        "jku": "https://evil.example/jwks.json",
        "x5u": "https://evil.example/cert.pem",
        "x5c": ["MIIB" + "A" * 40],
        "x5t": "AAAA",
        "kid": signer.kid if reuse_kid else attacker.kid,
    }
    header = {"typ": "age-token+jwt", "kid": signer.kid if reuse_kid else attacker.kid}
    header.update({p: values[p] for p in params})
    claims = good_claims()
    if alg in ("ES256",):
        token = pyjwt_token(attacker, claims, alg="ES256", **{k: v for k, v in header.items()})
    elif alg.startswith("HS"):
        # Algorithm confusion: HMAC keyed with the provider's *public* key material.
        import hashlib
        import hmac

        secret = json.dumps(signer.public_jwk, sort_keys=True).encode()
        signing_input = _signing_input({**header, "alg": alg}, claims)
        digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
        signature = hmac.new(secret, signing_input.encode(), digest).digest()
        token = f"{signing_input}.{_b64(signature)}"
    else:
        signing_input = _signing_input({**header, "alg": alg}, claims)
        token = f"{signing_input}."
    with pytest.raises(VerificationError):
        asyncio.run(verifier.verify(presentation(token), context()))


def test_provider_token_is_accepted_as_control(provider: tuple[Signer, Path]) -> None:
    # The same harness accepts a genuine token, so the refusals above are meaningful.
    signer, jwks_path = provider
    assertion = asyncio.run(
        make_verifier(jwks_path).verify(presentation(pyjwt_token(signer, good_claims())), context())
    )
    assert 18 in assertion.age_over
    assert ISSUER


# -- policy YAML made of YAML's dangerous constructs ------------------------------------


def _bomb_line(i: int) -> str:
    return f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]"


_BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [_bomb_line(i) for i in range(1, 9)])

_YAML_PIECES = st.sampled_from(
    [
        "version: 1\n",
        "routes:\n",
        "  - name: r\n    path: /**\n    action: allow\n",
        "  - &r {name: r, path: /a/**, min_age: 18}\n",
        "  - *r\n",
        "  - <<: *r\n    name: s\n",
        "defaults: !!python/object/apply:os.system ['true']\n",
        "defaults: !!python/name:os.system\n",
        "x: !!binary aGVsbG8=\n",
        "x: !custom 1\n",
        "min_age: 0x12\n",
        "min_age: 1_8\n",
        "session_ttl: 99999999999999999999999h\n",
        "path: " + "[" * 200 + "]" * 200 + "\n",
        _BOMB + "\n",
        "? [a, b]\n: c\n",
        "version: 1\nversion: 2\n",
        "%YAML 1.1\n---\n",
        "---\n...\n---\n",
        "\t- tab\n",
        "\ufeff",
        "\x00",
        "'unterminated\n",
    ]
)


@QUICK
@given(pieces=st.lists(_YAML_PIECES, min_size=1, max_size=6))
def test_fuzz_dangerous_yaml_only_raises_policy_error(pieces: list[str]) -> None:
    started = time.monotonic()
    with contextlib.suppress(PolicyError):
        parse_policy_text("".join(pieces), source="fuzz.yaml", known_verifiers={"v"})
    # Alias bombs and deep nesting must be refused, not expanded: quickly.
    assert time.monotonic() - started < 2.0


def test_yaml_python_tags_never_execute(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f"version: 1\ndefaults: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(PolicyError):
        parse_policy_text(text, source="evil.yaml")
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(PolicyError):
        parse_policy_text(f"version: 1\n{_BOMB}\nroutes: *a8\n", source="bomb.yaml")
    assert time.monotonic() - started < 2.0
