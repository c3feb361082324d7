"""Redis store URLs: one server, Sentinel, or Cluster, and the redis-py client for each.

::

    redis://[:password@]host:6379/0                single server (rediss:// for TLS)
    redis+sentinel://[:password@]s1:26379,s2:26379/<service>/0
                                                   the primary Sentinel names <service>
    redis+cluster://[:password@]n1:6379,n2:6379    Redis Cluster (db 0 only)

``rediss+sentinel://`` and ``rediss+cluster://`` are the TLS forms.  redis-py
has no URL form for either Sentinel or Cluster (``Redis.from_url`` takes one
host), so the host list is ours, comma-separated as in Celery's and Sidekiq's
Sentinel URLs.  A password in the URL authenticates to the data nodes (the
Sentinel's primary, every Cluster node); sentinels are asked without one,
redis-py's default.

Every error is a :class:`~gateway.errors.ConfigError` on ``store`` that never
quotes the URL (it may carry a password).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from gateway.errors import ConfigError

if TYPE_CHECKING:  # redis-py is imported only when a Redis store is opened
    import redis.asyncio
    from redis.asyncio.cluster import RedisCluster

__all__ = ["REDIS_SCHEMES", "RedisOptions", "RedisTarget", "connect", "parse_redis_url"]

Kind = Literal["server", "sentinel", "cluster"]

REDIS_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("server", False),
    "rediss": ("server", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}
_FORMS = (
    "redis://host:port/<db>, redis+sentinel://host:port,host:port/<service>/<db> "
    "or redis+cluster://host:port,host:port"
)


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Pool size and socket timeouts (settings ``redis_*``), the same for every node."""

    max_connections: int = 50  # one server: a command waits for a free one; else 503
    connect_timeout: float = 0.5
    socket_timeout: float = 0.5


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed store URL: which kind of deployment, where, and which database."""

    url: str
    kind: Kind
    tls: bool
    hosts: tuple[tuple[str, int], ...]
    db: int
    service: str | None = None  # the Sentinel service name
    username: str | None = None
    password: str | None = None


def _refuse(message: str) -> ConfigError:
    return ConfigError(message, key="store")


def parse_redis_url(url: str) -> RedisTarget:
    """Parse a ``redis…://`` URL; raises ConfigError naming what is wrong."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise _refuse(f"not a store URL (expected {_FORMS})") from None
    if parts.scheme not in REDIS_SCHEMES:
        raise _refuse(f"unknown store scheme (expected memory:// or {_FORMS})")
    kind, tls = REDIS_SCHEMES[parts.scheme]
    if parts.fragment:
        raise _refuse(f"a {parts.scheme}:// store URL has no #fragment")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    hosts = tuple(_host_port(item, kind) for item in hostlist.split(","))
    if kind == "server" and len(hosts) != 1:
        raise _refuse("a redis:// store URL names one host; for several use redis+sentinel://")
    segments = [s for s in parts.path.split("/") if s]
    service = None
    if kind == "sentinel":
        if not segments:
            raise _refuse("a redis+sentinel:// URL names the service: …/<service>/<db>")
        service, segments = unquote(segments[0]), segments[1:]
    db_text = segments[0] if segments else "0"
    if len(segments) > 1 or not (db_text.isascii() and db_text.isdigit()):
        raise _refuse(f"the database is a number at the end of the URL ({_FORMS})")
    db = int(db_text)
    if kind == "cluster" and db != 0:
        raise _refuse("Redis Cluster has only database 0")
    return RedisTarget(url, kind, tls, hosts, db, service, username, password)


def _host_port(item: str, kind: Kind) -> tuple[str, int]:
    host, port_text = item, ""
    if item.startswith("["):  # [::1]:6379
        host, _, rest = item[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif item.count(":") == 1:
        host, _, port_text = item.partition(":")
    if not host:
        raise _refuse(f"a store URL needs a host ({_FORMS})")
    default = 26379 if kind == "sentinel" else 6379
    if not port_text:
        return host, default
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise _refuse("a store URL port is a number from 1 to 65535")
    return host, int(port_text)


def connect(
    target: RedisTarget, options: RedisOptions, *, wait_for_pool: bool = True, **extra: Any
) -> redis.asyncio.Redis | RedisCluster:
    """A redis-py asyncio client for ``target``; ``extra`` goes to every connection.

    ``wait_for_pool``: on one server, a command waits for a free connection
    (the caller bounds the wait) rather than failing when the pool is full.
    """
    import redis.asyncio
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.sentinel import Sentinel

    common: dict[str, Any] = {
        "socket_connect_timeout": options.connect_timeout,
        "socket_timeout": options.socket_timeout,
        "decode_responses": False,
        "max_connections": options.max_connections,
        **extra,
    }
    auth: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.kind == "server" and not wait_for_pool:
        return redis.asyncio.Redis.from_url(target.url, **common)
    if target.kind == "server":
        # A full pool makes a command wait for a connection (bounded by the store's
        # per-call deadline) instead of failing at once as redis-py's default pool does.
        pool = redis.asyncio.BlockingConnectionPool.from_url(target.url, timeout=None, **common)
        return redis.asyncio.Redis.from_pool(pool)
    if target.kind == "sentinel":
        assert target.service is not None  # parse_redis_url requires it
        sentinel_kwargs = {
            "socket_connect_timeout": options.connect_timeout,
            "socket_timeout": options.socket_timeout,
            "ssl": target.tls,
        }
        sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs)
        primary: redis.asyncio.Redis = sentinel.master_for(
            target.service, db=target.db, ssl=target.tls, **auth, **common
        )
        return primary
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.hosts],
        ssl=target.tls,
        **auth,
        **common,
    )
