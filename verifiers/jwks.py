"""A provider's signing keys (JWKS), fetched once and kept warm.

:class:`JwksCache` serves the public keys of one age-token provider, from a
``jwks_uri`` or a ``jwks_file``.  The rules (SPEC §5):

- a fetched set is fresh for its ``Cache-Control: max-age`` (or ``Expires``),
  clamped to [60 s, 24 h] so a provider saying ``no-cache`` cannot put a fetch
  on every request, and a provider saying "a year" cannot pin a revoked key;
- while fresh, a known ``kid`` costs a dict lookup: no network call on the
  request path;
- an unknown ``kid`` triggers one refresh, at most once per 60 s, so tokens
  with made-up ``kid`` values cannot turn the gateway into a fetch amplifier;
- when the provider is down, the last good set is served for at most
  ``max_stale`` past its freshness, then every lookup fails closed
  (``jwks_unavailable``);
- the set is bounded (``max_keys``) and so is the document (``max_bytes``);
- a ``jwks_file`` is reloaded when it changes on disk (its modification time
  is looked at no more than once a second, on lookups): a file that no longer
  parses keeps the keys already loaded (``jwks_reload_failed`` in the log),
  so a half-written or mistaken edit never takes the verifier down.

Keys are parsed once into :class:`jwt.PyJWK` objects and checked for use as
*public* signature keys: symmetric (``oct``) keys, keys carrying private
material, keys without ``kid``, encryption keys and RSA keys under 2048 bits
are skipped, and the reasons are kept in :attr:`JwksCache.problems` (and
returned by :func:`parse_jwks`) for ``agegate verifier check``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from jwt.exceptions import InvalidKeyError, PyJWKError

from verifiers.base import VerificationError

__all__ = [
    "KEY_TYPE_FOR_ALG",
    "JwkEntry",
    "JwksCache",
    "fetch_jwks_document",
    "parse_algorithms",
    "parse_jwks",
    "read_jwks_file",
]

log = logging.getLogger("agegate.verifiers.jwks")

#: Which key type (and curve) each supported signature ``alg`` needs.  ``None``
#: curve means "any curve of that type that the algorithm accepts".
KEY_TYPE_FOR_ALG: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
}


def parse_algorithms(config: Mapping[str, Any], default: Sequence[str]) -> tuple[str, ...]:
    """The ``algorithms`` setting of a verifier: public-key JWS algorithms this module verifies."""
    value = config.get("algorithms", list(default))
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("algorithms: expected a non-empty list")
    for alg in value:
        if not isinstance(alg, str):
            raise ValueError("algorithms: expected a list of algorithm names")
        if alg.lower() == "none" or alg.upper().startswith("HS"):
            # `none` proves nothing; HS* with a published key (or a client secret the
            # gateway also holds) lets someone other than the issuer sign.
            raise ValueError(f"algorithms: {alg!r} is refused (public-key algorithms only)")
        if alg not in KEY_TYPE_FOR_ALG:
            allowed = ", ".join(KEY_TYPE_FOR_ALG)
            raise ValueError(f"algorithms: unknown algorithm {alg!r} (supported: {allowed})")
    return tuple(dict.fromkeys(value))


# The PyJWT algorithm used only to build the key object from the JWK; the
# signature algorithm is always the token's own (checked against KEY_TYPE_FOR_ALG).
_LOADER_ALG = {("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384", ("EC", "P-521"): "ES512"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)

MIN_FRESHNESS = 60.0
MAX_FRESHNESS = 86400.0
DEFAULT_FRESHNESS = 300.0
UNKNOWN_KID_REFRESH_INTERVAL = 60.0
FAILURE_BACKOFF = 10.0
FILE_CHECK_INTERVAL = 1.0  # seconds between looks at a jwks_file's modification time


@dataclass(frozen=True, slots=True)
class JwkEntry:
    """One usable public key: the parsed PyJWK plus what it may verify."""

    kid: str
    jwk: jwt.PyJWK
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own ``alg`` member, if it names one

    def accepts(self, alg: str) -> bool:
        """True if a token signed with ``alg`` may be checked with this key."""
        if self.alg is not None and self.alg != alg:
            return False
        wanted = KEY_TYPE_FOR_ALG.get(alg)
        if wanted is None or wanted[0] != self.kty:
            return False
        return wanted[1] is None or self.crv in wanted[1]


def parse_jwks(document: object, *, max_keys: int = 32) -> tuple[dict[str, JwkEntry], list[str]]:
    """Usable signature keys by ``kid``, and one line per key that was skipped.

    Raises :class:`ValueError` if ``document`` is not a JWKS at all.  The
    problem lines name keys by position and ``kid`` only, never key material.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS: expected an object with a 'keys' array")
    keys: dict[str, JwkEntry] = {}
    problems: list[str] = []
    for index, raw in enumerate(document["keys"]):
        where = f"key #{index}"
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: not an object")
            continue
        kid = raw.get("kid")
        if isinstance(kid, str) and kid:
            where = f"key #{index} (kid {kid!r})"
        problem = _unusable(raw)
        if problem is None and kid in keys:
            problem = "duplicate kid, first key kept"
        if problem is None and len(keys) >= max_keys:
            problem = f"more than {max_keys} keys, ignored"
        if problem is None:
            entry, problem = _load_key(raw)
            if entry is not None:
                keys[entry.kid] = entry
                continue
        problems.append(f"{where}: {problem}")
    return keys, problems


def _unusable(raw: Mapping[str, Any]) -> str | None:
    kid, kty = raw.get("kid"), raw.get("kty")
    if not isinstance(kid, str) or not kid:
        return "no kid (the age-token profile requires one)"
    if kty == "oct":
        return "symmetric key (kty oct) refused: the profile allows public keys only"
    if kty not in ("EC", "OKP", "RSA"):
        return "unsupported key type"
    if _PRIVATE_MEMBERS & raw.keys():
        return "carries private key material; the provider must publish public keys only"
    if raw.get("use", "sig") != "sig":
        return "not a signature key (use is not 'sig')"
    ops = raw.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return "key_ops does not include 'verify'"
    alg = raw.get("alg")
    if alg is not None and alg not in KEY_TYPE_FOR_ALG:
        return "alg is not an accepted signature algorithm"
    return None


def _load_key(raw: Mapping[str, Any]) -> tuple[JwkEntry | None, str | None]:
    kty = str(raw["kty"])
    crv = raw.get("crv") if isinstance(raw.get("crv"), str) else None
    loader = _LOADER_ALG.get((kty, crv or ""), "EdDSA" if kty == "OKP" else "PS256")
    try:
        key = jwt.PyJWK(dict(raw), algorithm=loader)
    except (InvalidKeyError, PyJWKError, ValueError, TypeError, KeyError):
        # The library message can quote the JWK; keep it out of logs and reports.
        return None, "not a valid public key for its kty/crv"
    if kty == "RSA" and getattr(key.key, "key_size", 0) < 2048:
        return None, "RSA key shorter than 2048 bits"
    alg = raw.get("alg") if isinstance(raw.get("alg"), str) else None
    return JwkEntry(kid=str(raw["kid"]), jwk=key, kty=kty, crv=crv, alg=alg), None


def _freshness(headers: Mapping[str, str], now: float) -> float:
    """Seconds a response stays fresh, from Cache-Control / Expires, clamped."""
    cache_control = headers.get("Cache-Control", "")
    seconds = DEFAULT_FRESHNESS
    if match := _MAX_AGE.search(cache_control):
        age = headers.get("Age", "0").strip()
        seconds = float(match.group(1)) - (float(age) if age.isdigit() else 0.0)
    elif _NO_STORE.search(cache_control):
        seconds = 0.0
    elif expires := headers.get("Expires"):
        try:
            expires_at = email.utils.parsedate_to_datetime(expires).timestamp()
            date = headers.get("Date")
            origin = email.utils.parsedate_to_datetime(date).timestamp() if date else now
            seconds = expires_at - origin
        except (TypeError, ValueError, IndexError):
            seconds = 0.0  # RFC 9111 §5.3: an invalid Expires means "already expired"
    return min(max(seconds, MIN_FRESHNESS), MAX_FRESHNESS)


async def fetch_jwks_document(
    http: aiohttp.ClientSession, uri: str, *, timeout: float = 5.0, max_bytes: int = 262144
) -> tuple[object, float]:
    """GET ``uri``; return the parsed JSON and its freshness in seconds.

    Raises :class:`VerificationError` ``jwks_unavailable`` on any network,
    status, size or JSON problem (the library exception is chained, not shown).
    """
    try:
        async with http.get(
            uri,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            headers={"Accept": "application/jwk-set+json, application/json"},
        ) as response:
            if response.status != 200:
                raise VerificationError("jwks_unavailable", f"JWKS answered {response.status}")
            body = await response.content.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise VerificationError("jwks_unavailable", "JWKS document too large")
            freshness = _freshness(response.headers, time.time())
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise VerificationError("jwks_unavailable", "JWKS could not be fetched") from error
    try:
        return json.loads(body), freshness
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise VerificationError("jwks_unavailable", "JWKS is not JSON") from error


def read_jwks_file(path: str | Path) -> object:
    """Read and parse a JWKS file; ``jwks_unavailable`` if it cannot be read."""
    try:
        return json.loads(Path(path).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:
        raise VerificationError("jwks_unavailable", "JWKS file could not be read") from error


class JwksCache:
    """The warm key set of one provider; see the module docstring for the rules.

    Time comes from the caller (``now``, wall-clock seconds) so the verifier's
    injectable clock also drives freshness, and tests need no sleeping.
    """

    def __init__(
        self,
        *,
        uri: str | None = None,
        file: str | Path | None = None,
        http: aiohttp.ClientSession | None = None,
        max_stale: float = 3600.0,
        max_keys: int = 32,
        timeout: float = 5.0,
    ) -> None:
        if (uri is None) == (file is None):
            raise ValueError("exactly one of uri and file is required")
        self._uri = uri
        self._file = Path(file) if file is not None else None
        self._http = http
        self._owns_http = False
        self._max_stale = max_stale
        self._max_keys = max_keys
        self._timeout = timeout
        self._keys: dict[str, JwkEntry] = {}
        self._loaded = False
        self._fresh_until = 0.0
        self._next_attempt = 0.0  # earliest time a failed refresh may be retried
        self._last_kid_refresh = float("-inf")
        self._lock = asyncio.Lock()
        self._file_mtime: int | None = None  # of the file version last read (ns)
        self._next_file_check = 0.0
        self.fetches = 0  # how many times the source was read (metrics, tests)
        self.problems: list[str] = []

    async def get(self, kid: str, now: float | None = None) -> JwkEntry:
        """The key for ``kid``; raises ``unknown_kid`` or ``jwks_unavailable``."""
        now = time.time() if now is None else now
        if self._file is not None and self._loaded and now >= self._next_file_check:
            await self._reload_if_changed(self._file, now)
        if self._loaded and now < self._fresh_until:
            entry = self._keys.get(kid)
            if entry is not None:
                return entry  # the warm path: no lock, no I/O
        else:
            await self._refresh_expired(now)
        entry = self._keys.get(kid)
        if entry is not None:
            return entry
        if now - self._last_kid_refresh >= UNKNOWN_KID_REFRESH_INTERVAL:
            async with self._lock:
                if kid not in self._keys and (
                    now - self._last_kid_refresh >= UNKNOWN_KID_REFRESH_INTERVAL
                ):
                    self._last_kid_refresh = now
                    try:
                        await self._load(now)
                    except VerificationError:
                        # The set we have is still valid; the kid is simply not in it.
                        log.warning("jwks_refresh_failed", extra={"source": self._source})
            entry = self._keys.get(kid)
            if entry is not None:
                return entry
        raise VerificationError("unknown_kid", "the token's kid is not in the provider's JWKS")

    async def refresh(self, now: float | None = None) -> None:
        """Load the key set now (e.g. at start-up); raises ``jwks_unavailable``."""
        async with self._lock:
            await self._load(time.time() if now is None else now)

    async def close(self) -> None:
        """Close the HTTP session if this cache created it."""
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None
            self._owns_http = False

    @property
    def _source(self) -> str:
        return self._uri if self._uri is not None else str(self._file)

    async def _reload_if_changed(self, file: Path, now: float) -> None:
        """Read the file again if it changed; on failure keep the keys already loaded."""
        self._next_file_check = now + FILE_CHECK_INTERVAL
        try:
            mtime = file.stat().st_mtime_ns
        except OSError:
            return  # gone for a moment (being replaced): the loaded keys age as usual
        if mtime == self._file_mtime:
            return
        async with self._lock:
            if mtime == self._file_mtime:
                return
            keys, fresh_until, problems = self._keys, self._fresh_until, self.problems
            try:
                await self._load(now)
            except VerificationError:
                self._keys, self._fresh_until, self.problems = keys, fresh_until, problems
                self._loaded = True
                self._file_mtime = mtime  # not again until the file changes again
                log.warning("jwks_reload_failed", extra={"source": self._source})
                return
            log.info("jwks_reloaded", extra={"source": self._source, "keys": len(self._keys)})

    async def _refresh_expired(self, now: float) -> None:
        async with self._lock:
            if self._loaded and now < self._fresh_until:
                return  # another task refreshed while we waited
            if now >= self._next_attempt:
                try:
                    await self._load(now)
                    return
                except VerificationError:
                    self._next_attempt = now + FAILURE_BACKOFF
                    log.warning("jwks_refresh_failed", extra={"source": self._source})
            if not self._loaded or now > self._fresh_until + self._max_stale:
                # Fail closed: no keys, or keys older than the operator allows.
                self._keys = {}
                self._loaded = False
                raise VerificationError("jwks_unavailable", "the provider's JWKS is unavailable")

    async def _load(self, now: float) -> None:
        self.fetches += 1
        if self._uri is not None:
            if self._http is None:
                self._http = aiohttp.ClientSession()
                self._owns_http = True
            document, freshness = await fetch_jwks_document(
                self._http, self._uri, timeout=self._timeout
            )
        elif self._file is not None:
            try:
                mtime: int | None = self._file.stat().st_mtime_ns
            except OSError:
                mtime = None
            document, freshness = read_jwks_file(self._file), MIN_FRESHNESS
            self._file_mtime = mtime
        else:  # unreachable: __init__ requires exactly one source
            raise VerificationError("jwks_unavailable", "no JWKS source configured")
        try:
            keys, problems = parse_jwks(document, max_keys=self._max_keys)
        except ValueError as error:
            raise VerificationError("jwks_unavailable", str(error)) from error
        if problems and problems != self.problems:
            log.warning("jwks_keys_skipped", extra={"source": self._source, "count": len(problems)})
        self._keys, self.problems = keys, problems
        self._loaded = True
        self._fresh_until = now + freshness
        self._next_attempt = now
