"""The settings of one ``oidc`` verifier, parsed and checked once at load.

Client credentials never sit in ``agegate.yaml``: a client secret comes from
``client_secret_file`` or ``client_secret_env``, and the ``private_key_jwt``
key from ``client_key_file``.  Every ``ValueError`` message starts with the key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from verifiers.base import VerifierConfig
from verifiers.config import optional_duration, provider_url, string_setting
from verifiers.jwks import KEY_TYPE_FOR_ALG, parse_algorithms
from verifiers.oidc.claims import AgeClaimMap, ClaimValue, parse_age_claims, parse_claim_value

__all__ = ["DEFAULT_ID_TOKEN_ALGORITHMS", "AuthMethod", "ClientKey", "OidcConfig", "parse_config"]

AuthMethod = Literal["client_secret_basic", "private_key_jwt"]
ClientKey = ECKey | RSAKey | OKPKey
DEFAULT_ID_TOKEN_ALGORITHMS = ("ES256", "ES384", "EdDSA", "PS256", "RS256")
_AUTH_METHODS: tuple[AuthMethod, ...] = ("client_secret_basic", "private_key_jwt")
_SCOPE_TOKEN = frozenset(map(chr, range(0x21, 0x7F))) - {'"', "\\"}  # RFC 6749 §3.3
_KEY_ALG = {"EC": "ES256", "RSA": "PS256", "OKP": "EdDSA"}
_OWN_KEYS = frozenset(
    {"issuer", "client_id", "token_endpoint_auth_method", "client_secret_file",
     "client_secret_env", "client_key_file", "client_key_alg", "age_scope", "age_claims",
     "proven_value", "refuted_value", "use_userinfo", "algorithms", "jwks_max_stale",
     "discovery_ttl", "age_method", "timeout"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OidcConfig(VerifierConfig):
    """One oidc verifier's settings; the secret and key are loaded, never re-read."""

    issuer: str
    client_id: str
    auth_method: AuthMethod
    client_secret: str | None
    client_key: ClientKey | None
    client_key_alg: str | None
    scope: str
    claims: AgeClaimMap
    use_userinfo: bool
    algorithms: tuple[str, ...]
    jwks_max_stale: float
    discovery_ttl: float
    age_method: str | None
    timeout: float

    def __repr__(self) -> str:
        # The dataclass repr would print the secret and the private key into any traceback.
        return f"OidcConfig(issuer={self.issuer!r}, client_id={self.client_id!r})"


def _client_secret(config: Mapping[str, Any], base_dir: str) -> str:
    file, env = (
        string_setting(config, "client_secret_file"),
        string_setting(config, "client_secret_env"),
    )
    if (file is None) == (env is None):
        raise ValueError(
            "client_secret_file: exactly one of client_secret_file and client_secret_env "
            "is required for client_secret_basic (a secret is never written in agegate.yaml)"
        )
    if file is not None:
        path = Path(base_dir, file)
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise ValueError(f"client_secret_file: cannot read {str(path)!r}") from None
        key = "client_secret_file"
    else:
        secret = os.environ.get(str(env), "").strip()
        key = "client_secret_env"
    if not secret or any(ord(c) < 0x21 or ord(c) > 0x7E for c in secret):
        raise ValueError(f"{key}: the secret is empty or not printable ASCII")
    return secret


def _client_key(config: Mapping[str, Any], base_dir: str) -> tuple[ClientKey, str]:
    file = string_setting(config, "client_key_file")
    if file is None:
        raise ValueError("client_key_file: is required for private_key_jwt")
    path = Path(base_dir, file)
    try:
        data = path.read_bytes()
    except OSError:
        raise ValueError(f"client_key_file: cannot read {str(path)!r}") from None
    key: ClientKey | None = None
    source: bytes | dict[str, Any] = data
    if data.lstrip().startswith(b"{"):
        try:
            source = json.loads(data)
        except ValueError:
            raise ValueError("client_key_file: not a JSON Web Key") from None
    for kind in (ECKey, RSAKey, OKPKey):
        try:
            key = kind.import_key(source)
            break
        except (JoseError, ValueError, TypeError):
            continue
    if key is None or not key.is_private:
        raise ValueError("client_key_file: expected a private EC, RSA or OKP key (PEM or JWK)")
    alg = string_setting(config, "client_key_alg") or _KEY_ALG[key.key_type]
    if alg not in KEY_TYPE_FOR_ALG or KEY_TYPE_FOR_ALG[alg][0] != key.key_type:
        raise ValueError(f"client_key_alg: {alg!r} does not fit a {key.key_type} key")
    return key, alg


def _scope(config: Mapping[str, Any]) -> str:
    age_scope = string_setting(config, "age_scope")
    if age_scope is None:
        return "openid"
    tokens = age_scope.split()
    if any(not set(t) <= _SCOPE_TOKEN for t in tokens) or "openid" in tokens:
        raise ValueError("age_scope: expected scope names (printable, space-separated), not openid")
    return " ".join(["openid", *tokens])


def _claim_map(config: Mapping[str, Any]) -> AgeClaimMap:
    paths = parse_age_claims(config.get("age_claims"))
    proven: ClaimValue = parse_claim_value("proven_value", config.get("proven_value", True))
    default_refuted: ClaimValue | None = False if proven is True else None
    raw = config.get("refuted_value", default_refuted)
    refuted = None if raw is None else parse_claim_value("refuted_value", raw)
    if refuted is not None and type(refuted) is type(proven) and refuted == proven:
        raise ValueError("refuted_value: must differ from proven_value")
    return AgeClaimMap(paths, proven, refuted)


def _flag(config: Mapping[str, Any], key: str) -> bool:
    value = config.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false")
    return value


def parse_config(name: str, config: Mapping[str, Any], base_dir: str = ".") -> OidcConfig:
    """Check every key of one oidc verifier's config; ``ValueError`` names the key."""
    shared = VerifierConfig.parse(name, config, kind="oidc", own_keys=_OWN_KEYS)
    if shared.authorize_url is not None:
        raise ValueError("authorize_url: not used by oidc (discovery gives the endpoint)")
    issuer = provider_url(config, "issuer")
    if issuer is None:
        raise ValueError("issuer: is required")
    method = config.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in _AUTH_METHODS:
        raise ValueError(f"token_endpoint_auth_method: expected one of {', '.join(_AUTH_METHODS)}")
    secret, key, key_alg = None, None, None
    if method == "client_secret_basic":
        if config.get("client_key_file") is not None:
            raise ValueError("client_key_file: only for token_endpoint_auth_method private_key_jwt")
        secret = _client_secret(config, base_dir)
    else:
        if config.get("client_secret_file") or config.get("client_secret_env"):
            raise ValueError("client_secret_file: not used with private_key_jwt")
        key, key_alg = _client_key(config, base_dir)
    age_method = string_setting(config, "age_method")
    return OidcConfig(
        **shared.shared(),
        issuer=issuer,
        client_id=str(string_setting(config, "client_id", required=True)),
        auth_method=method,
        client_secret=secret,
        client_key=key,
        client_key_alg=key_alg,
        scope=_scope(config),
        claims=_claim_map(config),
        use_userinfo=_flag(config, "use_userinfo"),
        algorithms=parse_algorithms(config, DEFAULT_ID_TOKEN_ALGORITHMS),
        jwks_max_stale=optional_duration(config, "jwks_max_stale") or 3600.0,
        discovery_ttl=optional_duration(config, "discovery_ttl") or 3600.0,
        age_method=age_method,
        timeout=optional_duration(config, "timeout") or 10.0,
    )
