"""Everything with a lifetime, built from settings and shared by the listeners.

:class:`Runtime` is created by :func:`gateway.app.build_app`; its
:meth:`~Runtime.start` and :meth:`~Runtime.close` run in the ASGI lifespan.
:class:`PolicyHolder` keeps the policy in force and swaps in a new one only
when it loads and its embedded tests pass (hot reload on change or SIGHUP);
:class:`SessionKeysHolder` does the same for the session keys file;
:class:`RateLimiter` counts verification attempts per client network.  The
listeners never see the Runtime: ``app.py`` hands each part only what it uses,
so each can be built and tested alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from gateway.core.client_address import client_address
from gateway.core.forwarding import Network
from gateway.errors import ConfigError, PolicyError
from gateway.observability import Metrics, log_event, truncate_ip
from gateway.plugins import load_verifiers
from gateway.policy import Policy, load_policy
from gateway.policy.testing import run_policy_tests
from gateway.session.codec import CHALLENGE_COOKIE, SESSION_COOKIE, ChallengeCodec, SessionCodec
from gateway.session.keys import key_id, parse_key_lines
from gateway.session.nonces import NonceIssuer, derive_key
from gateway.session.revocation import SessionRevocation
from gateway.settings import Settings
from gateway.stores import open_store
from gateway.stores.base import RateDecision, Store
from gateway.stores.redis_urls import RedisOptions
from verifiers.base import VerificationError, Verifier, VerifierServices

__all__ = [
    "PolicyHolder",
    "RateLimiter",
    "Runtime",
    "SessionKeysHolder",
    "load_checked_policy",
    "previous_store_keys",
    "verifier_services",
]

_RELOAD_POLL_SECONDS = 1.0
_FOLLOW_WAIT_SECONDS = 3.0


def load_checked_policy(path: Path, known_verifiers: set[str]) -> Policy:
    """Load a policy and run its embedded tests; raise PolicyError if any fails."""
    policy = load_policy(path, known_verifiers=known_verifiers)
    failures = [result for result in run_policy_tests(policy) if not result.passed]
    if failures:
        first = failures[0]
        raise PolicyError(
            f"{len(failures)} embedded test(s) fail; test #{first.index} "
            f"({first.request}): {first.message}",
            source=str(path),
        )
    return policy


def verifier_services(settings: Settings, http: aiohttp.ClientSession | None) -> VerifierServices:
    """What verifiers get from the gateway; raises ConfigError without session keys."""
    _require_keys(settings)
    return VerifierServices(
        http=http,
        base_dir=str(settings.base_dir),
        audience=settings.audience,
        secret=derive_key(settings.session_keys[0], "verifier-secret"),
    )


def previous_store_keys(session_keys: Sequence[bytes]) -> tuple[bytes, ...]:
    """The store-HMAC keys of the session keys after the first: looked under, never
    written with, so records and logouts of nodes on another first key are seen."""
    return tuple(derive_key(key, "store-hmac") for key in session_keys[1:])


def _require_keys(settings: Settings) -> None:
    if not settings.session_keys:
        raise ConfigError(
            "no session keys: set session_keys_file or AGEGATE_SESSION_KEYS "
            "(make one with 'agegate keys generate')",
            source=settings.source,
            key="session_keys_file",
        )


@dataclass(slots=True)
class PolicyHolder:
    """The policy in force, with its load time; reloads keep the old one on any error."""

    path: Path
    known_verifiers: set[str]
    metrics: Metrics
    policy: Policy
    loaded_at: float = field(default_factory=time.time)
    last_error: str | None = None
    _mtime: float = 0.0

    @classmethod
    def load(cls, path: Path, known_verifiers: set[str], metrics: Metrics) -> PolicyHolder:
        policy = load_checked_policy(path, known_verifiers)
        holder = cls(path, known_verifiers, metrics, policy)
        holder._mtime = _mtime(path)
        metrics.policy_loaded.set(holder.loaded_at)
        return holder

    def reload(self) -> bool:
        """Try to load the file again; True if the new policy is now in force."""
        self._mtime = _mtime(self.path)
        try:
            policy = load_checked_policy(self.path, self.known_verifiers)
        except PolicyError as exc:
            self.last_error = str(exc)
            self.metrics.policy_reloads.labels("error").inc()
            log_event(
                "policy_reload_failed", level=logging.ERROR, file=str(self.path), error=str(exc)
            )
            return False
        self.policy, self.loaded_at, self.last_error = policy, time.time(), None
        self.metrics.policy_reloads.labels("ok").inc()
        self.metrics.policy_loaded.set(self.loaded_at)
        log_event("policy_reloaded", file=str(self.path), policy_sha256=policy.sha256)
        return True

    def changed_on_disk(self) -> bool:
        return _mtime(self.path) != self._mtime


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


@dataclass(slots=True)
class SessionKeysHolder:
    """The session keys file, reloaded on change or SIGHUP into the cookie codecs.

    Only the keys that open cookies may change while running: adding a key
    below the first, or removing an old one.  The first key also roots the
    API-nonce, store-HMAC and verifier secrets every node of a site must
    share, so a new first key is refused here (the old ring stays) and takes
    effect at the next restart; docs/operations.md gives the rotation order.
    The keys below the first also name store records and logouts written by
    nodes whose first key is one of them, so they go to ``previous`` too (the
    store and the revocation, as :func:`previous_store_keys`).
    """

    path: Path
    keys: tuple[bytes, ...]
    codecs: tuple[SessionCodec, ChallengeCodec]
    metrics: Metrics
    previous: tuple[Store | SessionRevocation, ...] = ()
    _mtime: float = 0.0

    def __post_init__(self) -> None:
        self._mtime = _mtime(self.path)

    def changed_on_disk(self) -> bool:
        return _mtime(self.path) != self._mtime

    def reload(self) -> bool:
        """Read the file again; True if its keys are now in force."""
        self._mtime = _mtime(self.path)
        try:
            keys = parse_key_lines(self.path.read_text(encoding="utf-8"))
            if not keys:
                raise ValueError("no key in the file")
            if keys[0] != self.keys[0]:
                raise ValueError(
                    "the first (sealing) key changed; it roots secrets every node shares, "
                    "so a new first key takes effect at restart"
                )
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            error = exc.strerror if isinstance(exc, OSError) else str(exc)
            self.metrics.key_reloads.labels("error").inc()
            # The messages name a line number or the problem, never key material.
            log_event(
                "session_keys_reload_failed", level=logging.ERROR, file=str(self.path), error=error
            )
            return False
        if keys != self.keys:
            for codec in self.codecs:
                codec.use_keys(keys)
            for user in self.previous:
                user.use_previous_keys(previous_store_keys(keys))
            self.keys = keys
        self.metrics.key_reloads.labels("ok").inc()
        log_event("session_keys_reloaded", file=str(self.path), keys=[key_id(k) for k in keys])
        return True


@dataclass(frozen=True, slots=True)
class RateLimiter:
    """Verification attempts per client network and purpose, counted in the store."""

    store: Store
    limit: int  # attempts per minute; 0 turns rate limits off
    trusted_proxies: Sequence[Network]
    hmac_key: bytes

    def client_bucket(self, client_ip: str | None) -> str:
        """A rate-limit bucket for a client: an HMAC of its /24 or /48, never the address."""
        network = truncate_ip(client_ip) or "unknown"
        return hmac.new(self.hmac_key, network.encode(), hashlib.sha256).hexdigest()[:32]

    async def check(
        self, purpose: str, peer: str | None, headers: Sequence[tuple[bytes, bytes]]
    ) -> RateDecision | None:
        """Count one verification attempt of a client; None when rate limits are off.

        ``limit`` attempts per minute per client network and purpose, the client
        being the TCP ``peer`` or, behind a trusted proxy, the address it reports
        (:func:`~gateway.core.client_address.client_address`); raises StoreUnavailable
        when the store cannot be reached.
        """
        if not self.limit:
            return None
        client = client_address(peer, headers, self.trusted_proxies)
        return await self.store.rate_limit(
            f"{purpose}:{self.client_bucket(client)}", self.limit, 60.0
        )


@dataclass(slots=True)
class Runtime:
    """Shared state of one gateway process: built at start-up, closed at shutdown."""

    settings: Settings
    metrics: Metrics
    policies: PolicyHolder
    sessions: SessionCodec
    revocation: SessionRevocation
    challenges: ChallengeCodec
    nonces: NonceIssuer
    store: Store
    # Filled in start(), never replaced: the decision layer holds this same dict.
    verifiers: dict[str, Verifier]
    limiter: RateLimiter
    key_file: SessionKeysHolder | None = None
    http: aiohttp.ClientSession | None = None
    started: bool = False
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        """Build everything that needs no event loop; errors are ConfigError/PolicyError."""
        _require_keys(settings)
        if settings.workers > 1 and settings.store.startswith("memory:"):
            raise ConfigError(
                "more than one worker needs a shared store (redis://): the memory store "
                "is one process, so a token replayed to another worker would pass",
                source=settings.source,
                key="store",
            )
        if not settings.policy.is_file():
            # A policy the settings name but that is not there is the settings' fault.
            raise ConfigError(
                f"no such policy file {str(settings.policy)!r}",
                source=settings.source,
                key="policy",
            )
        metrics = Metrics.create()
        master = settings.session_keys[0]
        known = set(settings.verifiers)
        policies = PolicyHolder.load(settings.policy, known, metrics)

        def count(cookie: str) -> Callable[[str], None]:
            return lambda reason: metrics.invalid_cookies.labels(cookie, reason).inc()

        audience = settings.audience
        sessions = SessionCodec(settings.session_keys, audience, on_invalid=count(SESSION_COOKIE))
        store_key = derive_key(master, "store-hmac")
        challenges = ChallengeCodec(
            settings.session_keys, audience, on_invalid=count(CHALLENGE_COOKIE)
        )
        previous_keys = previous_store_keys(settings.session_keys)
        store = open_store(
            settings.store,
            store_key,
            RedisOptions(
                settings.redis_max_connections,
                settings.redis_connect_timeout,
                settings.redis_socket_timeout,
            ),
            previous_keys=previous_keys,
        )
        revocation = SessionRevocation(
            sessions,
            store,
            store_key,
            previous_keys=previous_keys,
            enabled=settings.session_revocation,
            on_revoked=lambda: count(SESSION_COOKIE)("revoked"),
        )
        key_file = None
        if settings.session_keys_file is not None:
            key_file = SessionKeysHolder(
                settings.session_keys_file,
                settings.session_keys,
                (sessions, challenges),
                metrics,
                (store, revocation),
            )
        return cls(
            settings=settings,
            metrics=metrics,
            policies=policies,
            sessions=sessions,
            revocation=revocation,
            challenges=challenges,
            nonces=NonceIssuer(derive_key(master, "api-nonce")),
            store=store,
            verifiers={},
            limiter=RateLimiter(
                store,
                settings.rate_limit,
                settings.trusted_proxies,
                derive_key(master, "client-bucket"),
            ),
            key_file=key_file,
        )

    async def start(self) -> None:
        """Open network resources (upstream pool, JWKS client, verifiers) and start reloads."""
        if self.started:
            return
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.verifiers.update(
            load_verifiers(self.settings.verifiers, verifier_services(self.settings, self.http))
        )
        for verifier in self.verifiers.values():
            # Keys fetched now, so the first visitor does not wait on the provider; a
            # provider that is down is not fatal here (verification fails closed later).
            try:
                await verifier.warm()
            except VerificationError as exc:
                log_event(
                    "verifier_not_warm",
                    level=logging.WARNING,
                    verifier=verifier.name,
                    reason=exc.reason,
                )
        self._tasks.append(asyncio.create_task(self._watch_files()))
        if self.revocation.enabled and self.store.shared:
            self._tasks.append(asyncio.create_task(self.revocation.follow()))
            # Serve only once past logouts are loaded (or the first attempt failed: then
            # sessions pass as in any Redis outage, and the task keeps trying).
            deadline = time.monotonic() + _FOLLOW_WAIT_SECONDS
            while self.revocation.followed is None and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            # SIGHUP reloads now; not available on every platform or off the main thread.
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.started = True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for verifier in self.verifiers.values():
            await verifier.aclose()
        await self.store.close()
        if self.http is not None:
            await self.http.close()
        self.started = False

    def reload(self) -> None:
        """SIGHUP: the policy and the session keys file, each kept as it was on any error.

        (A ``jwks_file`` is looked at by its verifier on use, SIGHUP or not.)
        """
        self.policies.reload()
        if self.key_file is not None:
            self.key_file.reload()

    async def _watch_files(self) -> None:
        while True:
            await asyncio.sleep(_RELOAD_POLL_SECONDS)
            if self.policies.changed_on_disk():
                self.policies.reload()
            if self.key_file is not None and self.key_file.changed_on_disk():
                self.key_file.reload()
