"""Store URLs for one Redis, Sentinel and Cluster; pool settings; a real Sentinel and Cluster."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.settings import parse_settings
from gateway.stores import open_store
from gateway.stores.redis import RedisStore
from gateway.stores.redis_urls import RedisOptions, parse_redis_url
from tests.operations.support import ClusterNode, RedisReplica, SentinelServer, verify, wait_for
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer
from tests.support.upstream import UpstreamServer

KEY = b"k" * 32
SETTINGS = {"session_keys": "A" * 43}


@pytest.mark.parametrize(
    ("url", "kind", "hosts", "db", "service"),
    [
        ("redis://127.0.0.1:6380/2", "server", (("127.0.0.1", 6380),), 2, None),
        ("rediss://:pw@redis.internal", "server", (("redis.internal", 6379),), 0, None),
        (
            "redis+sentinel://s1:26380,s2,[::1]:26381/agegate/3",
            "sentinel",
            (("s1", 26380), ("s2", 26379), ("::1", 26381)),
            3,
            "agegate",
        ),
        ("rediss+sentinel://u:p@s1/mymaster", "sentinel", (("s1", 26379),), 0, "mymaster"),
        ("redis+cluster://n1:7000,n2:7001", "cluster", (("n1", 7000), ("n2", 7001)), 0, None),
        ("rediss+cluster://n1/0", "cluster", (("n1", 6379),), 0, None),
    ],
)
def test_store_urls_name_the_deployment(
    url: str, kind: str, hosts: tuple[tuple[str, int], ...], db: int, service: str | None
) -> None:
    target = parse_redis_url(url)
    assert (target.kind, target.hosts, target.db, target.service) == (kind, hosts, db, service)
    assert target.tls == url.startswith("rediss")


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no service
        "redis+sentinel://s1:26379/svc/x",
        "redis+sentinel://s1:26379/svc/0/extra",
        "redis+cluster://n1:7000/3",  # Cluster has db 0 only
        "redis://a:6379,b:6379/0",  # several hosts need Sentinel or Cluster
        "redis+cluster://:7000",
        "redis+sentinel://s1:0/svc",
        "redis+sentinel://s1:99999/svc",
        "redis+cluster://n1:7000#x",
        "redis+nothing://n1",
    ],
)
def test_bad_store_urls_are_config_errors_that_hide_the_password(url: str) -> None:
    secret = url.replace("://", "://:hunter2@", 1)
    with pytest.raises(ConfigError) as info:
        parse_redis_url(secret)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_settings({**SETTINGS, "store": secret})
    assert info.value.key == "store" and "hunter2" not in str(info.value)


@given(st.text(max_size=60))
def test_store_url_parser_raises_only_config_errors(text: str) -> None:
    for url in (text, "redis+sentinel://" + text, "redis+cluster://" + text, "redis://" + text):
        try:
            target = parse_redis_url(url)
        except ConfigError as exc:
            assert exc.key == "store"
            continue
        assert target.hosts and all(0 < port < 65536 for _, port in target.hosts)


def test_cluster_with_session_revocation_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({**SETTINGS, "store": "redis+cluster://n1:7000"})
    assert info.value.key == "session_revocation"
    assert "session_revocation: false" in str(info.value)
    settings = parse_settings(
        {**SETTINGS, "store": "redis+cluster://n1:7000", "session_revocation": False}
    )
    assert settings.store == "redis+cluster://n1:7000"


def test_pool_and_timeout_settings_are_validated_and_named() -> None:
    settings = parse_settings(
        {
            **SETTINGS,
            "redis_max_connections": 8,
            "redis_connect_timeout": "250ms",
            "redis_socket_timeout": "2s",
            "shutdown_timeout": "30s",
        }
    )
    assert settings.redis_max_connections == 8
    assert (settings.redis_connect_timeout, settings.redis_socket_timeout) == (0.25, 2.0)
    assert settings.shutdown_timeout == 30.0
    for key, bad in [
        ("redis_max_connections", 0),
        ("redis_connect_timeout", "0s"),
        ("redis_socket_timeout", "soon"),
        ("shutdown_timeout", -1),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_settings({**SETTINGS, key: bad})
        assert info.value.key == key


async def test_pool_size_bounds_the_connections_to_redis(redis_server: RedisServer) -> None:
    store = open_store(redis_server.url, KEY, RedisOptions(max_connections=2))
    assert isinstance(store, RedisStore)
    try:
        import asyncio

        # More concurrent commands than connections: they wait for one, none fails.
        results = await asyncio.gather(
            *(store.consume("n", f"v{i}", time.time() + 60) for i in range(20))
        )
        assert all(results)
        clients = redis_server.command("CLIENT", "LIST").decode().splitlines()
        assert len([c for c in clients if "cmd=client" not in c]) <= 2
    finally:
        await store.close()


@pytest.fixture
def sentinel(own_redis_server: RedisServer) -> Iterator[SentinelServer]:
    with SentinelServer(own_redis_server.port) as server:
        assert isinstance(server, SentinelServer)
        yield server


async def test_sentinel_url_finds_the_primary_and_shares_records(
    sentinel: SentinelServer, own_redis_server: RedisServer
) -> None:
    first = open_store(sentinel.url(), KEY)
    second = open_store(sentinel.url(), KEY)
    try:
        assert await first.ping()
        assert await first.consume("token", "jti-1", time.time() + 60)
        assert not await second.consume("token", "jti-1", time.time() + 60)
        # The record is on the primary the Sentinel named.
        assert len(own_redis_server.dump()) == 1
    finally:
        await first.close()
        await second.close()


def test_gateway_on_sentinel_refuses_a_replay_and_follows_revocations(
    tmp_path: Path, upstream: UpstreamServer, sentinel: SentinelServer
) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url, settings={"store": sentinel.url()}) as gw:
        challenge = httpx.get(gw.url + "/echo/wine/red")
        nonce = challenge.headers["www-authenticate"].split('nonce="')[1].split('"')[0]
        auth = {"authorization": f"AgeToken {gw.mint(nonce)}"}
        assert httpx.get(gw.url + "/echo/wine/red", headers=auth).status_code == 200
        assert httpx.get(gw.url + "/echo/wine/red", headers=auth).status_code == 401
        assert httpx.get(gw.admin_url + "/readyz").json()["checks"]["store"] is True
        assert any(line["event"] == "revocations_followed" for line in gw.log_lines())


@pytest.fixture
def cluster() -> Iterator[ClusterNode]:
    node = ClusterNode()
    try:
        yield node.start()
    finally:
        node.stop()


async def test_cluster_url_stores_records_and_rate_limits(cluster: ClusterNode) -> None:
    first = open_store(cluster.url, KEY)
    second = open_store(cluster.url, KEY)
    try:
        assert await first.ping()
        assert await first.consume("token", "jti-1", time.time() + 60)
        assert not await second.consume("token", "jti-1", time.time() + 60)
        decisions = [await first.rate_limit("bucket", 2, 60.0) for _ in range(3)]
        assert [d.allowed for d in decisions] == [True, True, False]
    finally:
        await first.close()
        await second.close()


def test_gateway_on_a_cluster_serves_with_revocation_off(
    tmp_path: Path, upstream: UpstreamServer, cluster: ClusterNode
) -> None:
    settings = {"store": cluster.url, "session_revocation": False, "workers": 2}
    with GatewayProcess(tmp_path, upstream=upstream.url, settings=settings) as gw:
        challenge = httpx.get(gw.url + "/echo/wine/red")
        nonce = challenge.headers["www-authenticate"].split('nonce="')[1].split('"')[0]
        auth = {"authorization": f"AgeToken {gw.mint(nonce)}"}
        url = gw.url + "/echo/wine/red"
        statuses = [httpx.get(url, headers=auth).status_code for _ in range(4)]
        assert statuses.count(200) == 1 and statuses.count(401) == 3
        assert httpx.get(gw.admin_url + "/readyz").status_code == 200


@pytest.mark.parametrize(
    ("store", "extra", "status", "named"),
    [
        ("memory://", {}, 2, "store"),
        ("redis+sentinel://127.0.0.1:26379/agegate/0", {}, 0, "redis+sentinel"),
        ("redis+cluster://127.0.0.1:7000", {}, 2, "session_revocation"),
        ("redis+cluster://127.0.0.1:7000", {"session_revocation": False}, 0, "redis+cluster"),
    ],
)
def test_config_check_with_four_workers(
    tmp_path: Path, store: str, extra: dict[str, object], status: int, named: str
) -> None:
    gw = GatewayProcess(
        tmp_path, upstream="http://127.0.0.1:9", settings={"store": store, "workers": 4, **extra}
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli.main",
            "config",
            "check",
            "--config",
            str(gw.config_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == status, result.stderr
    assert named in (result.stdout if status == 0 else result.stderr)
    assert "Traceback" not in result.stderr


def test_sentinel_failover_moves_verifications_to_the_promoted_replica(
    tmp_path: Path, upstream: UpstreamServer, own_redis_server: RedisServer
) -> None:
    replica = RedisReplica(own_redis_server.port)
    sentinel = SentinelServer(own_redis_server.port)
    with replica, sentinel:
        settings = {"store": sentinel.url()}
        with GatewayProcess(tmp_path, upstream=upstream.url, settings=settings) as gw:
            assert verify(gw).status_code == 200
            own_redis_server.kill()  # the primary crashes; the sentinel promotes the replica
            statuses: list[int] = []

            def served_again() -> bool:
                started = time.monotonic()
                statuses.append(verify(gw).status_code)
                assert time.monotonic() - started < 5  # never a hung request
                return statuses[-1] == 200

            wait_for(served_again, timeout=30)
            assert set(statuses) <= {200, 503}, statuses
            assert httpx.get(gw.admin_url + "/readyz").status_code == 200
            # New records now go to the promoted replica.
            promoted = redis.Redis(host="127.0.0.1", port=replica.port, socket_timeout=5)
            try:
                assert promoted.info("replication")["role"] == "master"
                before = len(list(promoted.scan_iter(match="agegate:used:*")))
                assert verify(gw).status_code == 200
                assert len(list(promoted.scan_iter(match="agegate:used:*"))) == before + 2
            finally:
                promoted.close()
