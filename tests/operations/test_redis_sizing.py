"""What one verification, a challenge and a logout leave in Redis (for sizing).

docs/operations.md quotes these counts; the test keeps them true.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.operations.support import api_session, nonce_of
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer


def keys_by_kind(redis: RedisServer) -> dict[str, list[int]]:
    """``{"used": [pttl ms, …], "rate": […], "revoked": […]}`` of every key in Redis."""
    kinds: dict[str, list[int]] = {}
    for key, (value, pttl) in redis.dump().items():
        prefix, kind, digest = key.decode().split(":")
        assert prefix == "agegate" and len(digest) == 64
        assert value == b"1" or kind == "rate"
        kinds.setdefault(kind, []).append(pttl)
    return kinds


def test_keys_per_verification_and_their_ttls(
    tmp_path: Path, upstream: UpstreamServer, redis_server: RedisServer
) -> None:
    settings = {"store": redis_server.url}
    with GatewayProcess(tmp_path, upstream=upstream.url, settings=settings) as gw:
        cookie = api_session(gw)
        kinds = keys_by_kind(redis_server)
        # One API verification: single-use records and one rate-limit counter for the
        # client network; nothing for the session itself (it is the sealed cookie).
        assert sorted(kinds) == ["rate", "used"]
        used_per_verification = len(kinds["used"])
        assert used_per_verification == 2 and len(kinds["rate"]) == 1
        # Records live as long as the token could (max_token_lifetime 5 min) plus a minute.
        assert all(0 < ttl <= 6 * 60_000 for ttl in kinds["used"])
        assert all(0 < ttl <= 60_000 for ttl in kinds["rate"])

        # A second verification from the same network adds records, no counter.
        api_session(gw)
        kinds = keys_by_kind(redis_server)
        assert len(kinds["used"]) == 2 * used_per_verification and len(kinds["rate"]) == 1

        # A challenge alone (no token) writes nothing.
        nonce_of(gw)
        assert len(redis_server.dump()) == 2 * used_per_verification + 1

        # A logout: one revoked record, as long as the session had left plus a minute.
        logout = httpx.post(
            gw.url + "/.agegate/logout",
            headers={"cookie": f"__Host-agegate={cookie}", "origin": gw.public_origin},
        )
        assert logout.status_code < 400, logout.text
        kinds = keys_by_kind(redis_server)
        assert len(kinds["revoked"]) == 1
        assert 0 < kinds["revoked"][0] <= 61 * 60_000  # session_ttl 1 h + 1 min
