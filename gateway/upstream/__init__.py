"""Clients for the site's upstream: the interface (:mod:`.base`), the keep-alive
pool (:mod:`.pool`, the default) and the aiohttp reference (:mod:`.reference`)."""

from __future__ import annotations

from gateway.upstream.base import UpstreamClient
from gateway.upstream.pool import PoolClient
from gateway.upstream.reference import AiohttpClient

__all__ = ["make_client"]


def make_client(
    kind: str,
    base_url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    max_connections: int = 100,
) -> UpstreamClient:
    """The upstream client called ``kind`` (``"pool"`` or ``"aiohttp"``)."""
    if kind == "aiohttp":
        return AiohttpClient(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )
    if kind == "pool":
        return PoolClient(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )
    raise ValueError(f"unknown upstream client {kind!r} (expected 'pool' or 'aiohttp')")
