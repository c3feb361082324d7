"""Session-key rotation across nodes must not reopen replays or undo logouts.

A rotation (docs/operations.md) runs, for a while, nodes whose first
session key differs: after step 1 every node holds ``[old, new]``; during
step 2's rolling restart some already run ``[new, old]``.  Store records are
HMAC'd under a key derived from the first session key, so each node must
also look under the keys derived from the rest of its ring, or a token (with
its challenge cookie, which every node still opens) could be used once on
each side, and a logout recorded on one side would not hold on the other.

The nodes here are real ``agegate run`` processes on one real Redis, with
the same signing issuer and public origin: two nodes of one site.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.session.keys import generate_key_line
from tests.security.support import (
    api_nonce,
    api_session,
    browser_challenge,
    callback,
    eventually,
    get,
)
from tests.support.gateway import GatewayProcess, cookie_value
from tests.support.rawhttp import HeaderPair, RawResponse, request
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer

SESSION = "__Host-agegate"
PROTECTED = "/echo/wine/red"
SITE_SETTINGS = {"rate_limit": 0, "trusted_proxies": ["127.0.0.1/32"]}


@dataclass(frozen=True)
class Keys:
    old: str
    new: str
    signer: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def site_redis() -> Iterator[RedisServer]:
    # The site's own server: the shared one is flushed before each test, and these
    # nodes live for the module.
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(generate_key_line(), generate_key_line(), ec.generate_private_key(ec.SECP256R1()))


def _node(
    directory: Path,
    ring: list[str],
    keys: Keys,
    redis: RedisServer,
    upstream: UpstreamServer,
    origin: str | None = None,
) -> GatewayProcess:
    """A node of the site holding ``ring`` (first key first); not started."""
    directory.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {**SITE_SETTINGS, "store": redis.url}
    if origin is not None:
        settings["public_origin"] = origin
    node = GatewayProcess(
        directory,
        upstream=upstream.url,
        settings=settings,
        session_key="\n".join(ring),
        signing_key=keys.signer,
    )
    if origin is not None:
        node.public_origin = origin  # the audience its tokens and cookies name
    return node


@dataclass(frozen=True)
class Rolling:
    """The middle of step 2: ``a`` not yet restarted, ``b`` restarted with the new key first."""

    a: GatewayProcess
    b: GatewayProcess


@pytest.fixture(scope="module")
def rolling(
    keys: Keys,
    site_redis: RedisServer,
    upstream: UpstreamServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Rolling]:
    a = _node(tmp_path_factory.mktemp("rot-a"), [keys.old, keys.new], keys, site_redis, upstream)
    b = _node(
        tmp_path_factory.mktemp("rot-b"),
        [keys.new, keys.old],
        keys,
        site_redis,
        upstream,
        a.public_origin,
    )
    with a, b:
        yield Rolling(a, b)


def _form(**fields: str) -> bytes:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items()).encode()


def _verified_in_browser(gw: GatewayProcess) -> tuple[bytes, str]:
    """A browser's accepted callback on ``gw``: the form and challenge cookie it sent."""
    challenge = browser_challenge(gw)
    form = _form(age_token=gw.mint(challenge.nonce), state=challenge.state)
    accepted = callback(gw, form, challenge.cookie)
    assert accepted.status == 303, (accepted.status, accepted.body[:300])
    return form, challenge.cookie


def _assert_replay_refused(response: RawResponse) -> None:
    assert response.status == 400, (response.status, response.body[:300])
    assert response.json()["reason"] in {"replayed", "replayed_nonce"}
    assert cookie_value(response.header_list("set-cookie"), SESSION) in {None, ""}


def test_token_replayed_across_key_rotation_is_refused(rolling: Rolling) -> None:
    # Accepted on the node still sealing with the old key, replayed on the new one...
    form, cookie = _verified_in_browser(rolling.a)
    _assert_replay_refused(callback(rolling.b, form, cookie))
    # ...and the reverse: accepted on the new node, replayed on the old one.
    form, cookie = _verified_in_browser(rolling.b)
    _assert_replay_refused(callback(rolling.a, form, cookie))
    # The API route cannot carry a replay across: its nonces are checked under the
    # first key only, so one node's nonce is refused by the other outright.
    token = rolling.a.mint(api_nonce(rolling.a))
    proof = [(b"Authorization", b"AgeToken " + token.encode())]
    assert get(rolling.a, PROTECTED, proof).status == 200
    refused = get(rolling.b, PROTECTED, proof)
    assert refused.status == 401
    assert refused.json()["reason"] == "wrong_nonce"


def _jar(value: str) -> HeaderPair:
    return (b"Cookie", f"{SESSION}={value}".encode())


def _logout(gw: GatewayProcess, cookie: str) -> None:
    proof = (b"Sec-Fetch-Site", b"same-origin")
    response = get(gw, "/.agegate/logout", [_jar(cookie), proof], method="POST")
    assert response.status == 204, response
    assert cookie_value(response.header_list("set-cookie"), SESSION) == ""


def _session(gw: GatewayProcess) -> str:
    response, cookie = api_session(gw)
    assert response.status == 200 and cookie, response
    return cookie


def test_logout_survives_key_rotation(
    rolling: Rolling,
    keys: Keys,
    site_redis: RedisServer,
    upstream: UpstreamServer,
    tmp_path: Path,
) -> None:
    # A session sealed under the old key on A, honoured by B (old is in its ring)...
    cookie = _session(rolling.a)
    assert get(rolling.b, PROTECTED, [_jar(cookie)]).status == 200
    _logout(rolling.a, cookie)
    # ...is refused by B once A logged it out: heard by B's pub/sub follower...
    refused = eventually(lambda: get(rolling.b, PROTECTED, [_jar(cookie)]), 401)
    assert refused.json()["reason"] == "no_session"
    # ...and by a node started on [new, old] after the logout (its catch-up scan).
    late = _node(
        tmp_path / "late",
        [keys.new, keys.old],
        keys,
        site_redis,
        upstream,
        rolling.a.public_origin,
    )
    with late:
        assert get(late, PROTECTED, [_jar(cookie)]).status == 401
        assert get(late, PROTECTED, [_jar(_session(rolling.a))]).status == 200
    # The reverse: a session sealed under the new key, logged out on B, dies on A.
    cookie = _session(rolling.b)
    assert get(rolling.a, PROTECTED, [_jar(cookie)]).status == 200
    _logout(rolling.b, cookie)
    eventually(lambda: get(rolling.a, PROTECTED, [_jar(cookie)]), 401)


def _reloads(gw: GatewayProcess) -> float:
    text = request(gw.admin_port, "GET", "/metrics", host="127.0.0.1").text
    for line in text.splitlines():
        if line.startswith("agegate_session_keys_reloads_total") and 'result="ok"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_hot_reload_adds_the_new_key_to_store_lookups(
    keys: Keys, site_redis: RedisServer, upstream: UpstreamServer, tmp_path: Path
) -> None:
    # Step 1 of a rotation, as it really happens: A runs on [old] when a node on
    # [new, old] has already accepted a token and recorded a logout.
    a = _node(tmp_path / "a", [keys.old], keys, site_redis, upstream)
    b = _node(tmp_path / "b", [keys.new, keys.old], keys, site_redis, upstream, a.public_origin)
    with a, b:
        assert a.process is not None
        form, challenge = _verified_in_browser(b)
        logged_out = _session(b)
        _logout(b, logged_out)
        # A adds the new key below its first one (hot reload, no restart).
        keys_file = a.directory / "session.keys"
        staged = keys_file.with_suffix(".new")
        staged.write_text(f"{keys.old}\n{keys.new}\n")
        os.replace(staged, keys_file)
        before = _reloads(a)
        a.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while _reloads(a) <= before:
            assert time.monotonic() < deadline, "the keys file was not reloaded"
            time.sleep(0.02)
        # B's challenge cookie now opens on A, and B's records are seen under the new key.
        _assert_replay_refused(callback(a, form, challenge))
        refused = get(a, PROTECTED, [_jar(logged_out)])
        assert refused.status == 401
        assert json.loads(refused.body)["reason"] == "no_session"
        # A fresh session from B still passes on A: only what B recorded is refused.
        assert get(a, PROTECTED, [_jar(_session(b))]).status == 200
