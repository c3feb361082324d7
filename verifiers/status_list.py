"""IETF Token Status Lists (draft-ietf-oauth-status-list), fetched whole on a schedule.

A credential may carry ``status.status_list = {"idx": n, "uri": u}``.  Asking
``u`` about one credential when it is presented would tell the issuer where
and when that credential is used, so lists are never fetched on the request
path: the operator names the lists (``status_list.uris``), the verifier
fetches each whole at start and every ``refresh``, and a presentation reads
its bit from memory.

Behaviour at the edges (documented in docs/eu-wallets.md):

- a credential naming a list that is not configured: refused
  ``status_unavailable`` (``unlisted: refuse``, the default) or not checked
  (``unlisted: ignore``);
- a configured list not fetched yet, or not refreshed for ``max_stale``:
  refused ``status_unavailable`` (fail closed within that bound);
- a non-zero status (revoked, suspended, …): refused ``revoked``.

The list is a ``statuslist+jwt`` signed by a key the verifier trusts for
credentials, ``sub`` equal to its URI, and ``status_list = {"bits": 1|2|4|8,
"lst": base64url(zlib(bytes))}``; entry ``i`` is bits ``i*bits`` to
``(i+1)*bits - 1``, least significant first.  The per-credential index is
itself a correlation handle (the issuer assigned it to one credential), which
the linkability check reports as ``status_index``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from verifiers.b64url import b64url_decode
from verifiers.base import VerificationError
from verifiers.config import optional_duration

__all__ = [
    "MAX_LIST_BYTES",
    "StatusList",
    "StatusListConfig",
    "StatusLists",
    "parse_status_config",
    "parse_status_list",
    "status_at",
]

MAX_LIST_BYTES = 16 * 1024 * 1024  # decompressed: 134 million one-bit entries
MAX_TOKEN_BYTES = 4 * 1024 * 1024
_BITS = (1, 2, 4, 8)
_log = logging.getLogger("agegate.verifiers.status_list")

#: Checks a list token's signature and returns its claims; raises VerificationError.
TokenCheck = Callable[[str, float], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class StatusListConfig:
    """``status_list`` settings of a wallet verifier."""

    uris: tuple[str, ...] = ()
    refresh: float = 900.0
    max_stale: float = 86400.0
    unlisted: Literal["refuse", "ignore"] = "refuse"


def parse_status_config(config: Mapping[str, Any], base_dir: str = ".") -> StatusListConfig:
    """``ValueError`` messages start with the sub-key (``uris: …``)."""
    unknown = sorted(set(config) - {"uris", "refresh", "max_stale", "unlisted"})
    if unknown:
        raise ValueError(
            f"{unknown[0]}: unknown setting (allowed: max_stale, refresh, unlisted, uris)"
        )
    uris = config.get("uris", [])
    if not isinstance(uris, list) or not all(
        isinstance(u, str) and u.startswith(("https://", "http://")) for u in uris
    ):
        raise ValueError("uris: expected a list of http(s) URLs")
    unlisted = config.get("unlisted", "refuse")
    if unlisted not in ("refuse", "ignore"):
        raise ValueError("unlisted: expected refuse or ignore")
    refresh = optional_duration(config, "refresh") or 900.0
    max_stale = optional_duration(config, "max_stale") or 86400.0
    if refresh < 10 or max_stale < refresh:
        raise ValueError("refresh: at least 10s, and max_stale at least refresh")
    return StatusListConfig(tuple(dict.fromkeys(uris)), refresh, max_stale, unlisted)


@dataclass(frozen=True, slots=True)
class StatusList:
    """One decoded list: ``bits`` per entry over ``data``."""

    bits: int
    data: bytes
    fetched_at: float


def parse_status_list(claims: Mapping[str, Any], uri: str, now: float) -> StatusList:
    """The list in a verified token's claims; ``ValueError`` for anything malformed."""
    if claims.get("sub") != uri:
        raise ValueError("sub is not the list's URI")
    body = claims.get("status_list")
    if not isinstance(body, Mapping) or body.get("bits") not in _BITS:
        raise ValueError("status_list.bits is not 1, 2, 4 or 8")
    lst = body.get("lst")
    if not isinstance(lst, str):
        raise ValueError("status_list.lst is not a string")
    inflater = zlib.decompressobj()
    data = inflater.decompress(b64url_decode(lst, canonical=False), MAX_LIST_BYTES)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("status_list.lst is not a complete zlib stream within the size limit")
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool) and exp < now:
        raise ValueError("the list has expired")
    return StatusList(int(body["bits"]), data, now)


def status_at(status_list: StatusList, index: int) -> int:
    """Entry ``index`` of the list; ``IndexError`` past its end."""
    bit = index * status_list.bits
    byte = bit // 8
    if index < 0 or byte >= len(status_list.data):
        raise IndexError("index past the end of the list")
    return (status_list.data[byte] >> (bit % 8)) & ((1 << status_list.bits) - 1)


class StatusLists:
    """The configured lists, refreshed in the background; reads never touch the network."""

    def __init__(self, config: StatusListConfig, http: Any, check: TokenCheck) -> None:
        self.config = config
        self._http: aiohttp.ClientSession | None = http
        self._check = check
        self._lists: dict[str, StatusList] = {}
        self._task: asyncio.Task[None] | None = None

    def status(self, reference: object, now: float) -> int:
        """The status of ``{"idx", "uri"}``; VerificationError when it cannot be known."""
        if not isinstance(reference, Mapping):
            raise VerificationError("malformed", "status.status_list is not an object")
        uri, idx = reference.get("uri"), reference.get("idx")
        if not isinstance(uri, str) or isinstance(idx, bool) or not isinstance(idx, int):
            raise VerificationError("malformed", "status.status_list needs uri and idx")
        if uri not in self.config.uris:
            if self.config.unlisted == "ignore":
                return 0
            raise VerificationError(
                "status_unavailable", "the credential's status list is not configured"
            )
        held = self._lists.get(uri)
        if held is None or now - held.fetched_at > self.config.max_stale:
            raise VerificationError(
                "status_unavailable", "the status list has not been fetched recently"
            )
        try:
            return status_at(held, idx)
        except IndexError:
            raise VerificationError(
                "status_unavailable", "the index is outside the status list"
            ) from None

    async def refresh(self, now: float | None = None) -> None:
        """Fetch every configured list once; a failure keeps the last good copy."""
        for uri in self.config.uris:
            moment = time.time() if now is None else now
            try:
                self._lists[uri] = await self._fetch(uri, moment)
            except (aiohttp.ClientError, TimeoutError, ValueError, VerificationError) as error:
                _log.warning("status list not refreshed", extra={"error": type(error).__name__})

    async def _fetch(self, uri: str, now: float) -> StatusList:
        if self._http is None:
            raise ValueError("no HTTP client")
        headers = {"accept": "application/statuslist+jwt"}
        async with self._http.get(uri, headers=headers, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_TOKEN_BYTES:
                    raise ValueError("the list is too large")
        claims = await self._check(bytes(body).decode("ascii", "strict").strip(), now)
        return parse_status_list(claims, uri, now)

    def start(self) -> None:
        """Refresh every ``refresh`` seconds in the background (idempotent)."""
        if self.config.uris and self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.config.refresh)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
