"""The ``sd-jwt-vc`` verifier's settings, parsed and checked once at load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from verifiers.base import VerifierConfig
from verifiers.config import optional_duration, provider_url
from verifiers.jwks import parse_algorithms
from verifiers.linkability import LinkabilityMode, parse_mode
from verifiers.sd_jwt_vc.keys import load_trust_anchors
from verifiers.status_list import StatusListConfig, parse_status_config
from verifiers.token_profile import DEFAULT_ALGORITHMS

__all__ = ["SdJwtVcConfig", "parse_config"]

_OWN_KEYS = frozenset(
    {"vct", "issuers", "jwks_uri", "jwks_file", "trust_anchors", "algorithms", "linkability",
     "status_list", "max_kb_age", "jwks_max_stale", "claim", "wallet_url"}
)  # fmt: skip
_CLAIM_STYLES = ("age_equal_or_over", "age_over")


@dataclass(frozen=True, slots=True)
class SdJwtVcConfig(VerifierConfig):
    """One ``sd-jwt-vc`` verifier's settings."""

    vct: frozenset[str]  # accepted credential types (e.g. "urn:eudi:pid:1")
    issuers: frozenset[str]  # accepted ``iss`` values; empty accepts any the keys trust
    jwks_uri: str | None
    jwks_file: Path | None
    trust_anchors: tuple[x509.Certificate, ...]
    algorithms: tuple[str, ...]
    linkability: LinkabilityMode
    status: StatusListConfig
    max_kb_age: float  # seconds a KB-JWT's iat may lie in the past
    jwks_max_stale: float
    claim: str  # which claim the DCQL query asks for: age_equal_or_over.NN or age_over_NN
    wallet_url: str | None  # a web wallet offered beside openid4vp:// (https, or loopback http)


def _strings(config: Mapping[str, Any], key: str, *, required: bool) -> frozenset[str]:
    value = config.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key}: is required (a list of strings)")
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{key}: expected a non-empty list of strings")
    if not all(isinstance(item, str) and item.strip() for item in value):
        raise ValueError(f"{key}: expected a non-empty list of strings")
    return frozenset(item.strip() for item in value)


def _file(config: Mapping[str, Any], key: str, base_dir: str) -> Path | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a file path")
    path = Path(base_dir, value.strip())
    if not path.is_file():
        raise ValueError(f"{key}: no such file {str(path)!r}")
    return path


def parse_config(name: str, config: Mapping[str, Any], base_dir: str = ".") -> SdJwtVcConfig:
    """Check every key; ``ValueError`` messages start with the key."""
    shared = VerifierConfig.parse(
        name, config, kind="sd-jwt-vc", own_keys=_OWN_KEYS, response_modes=("form_post",)
    )
    jwks_uri = provider_url(config, "jwks_uri")
    jwks_file = _file(config, "jwks_file", base_dir)
    if jwks_uri is not None and jwks_file is not None:
        raise ValueError("jwks_uri: set at most one of jwks_uri and jwks_file")
    anchors_file = _file(config, "trust_anchors", base_dir)
    anchors = load_trust_anchors(anchors_file) if anchors_file else ()
    if not anchors and jwks_uri is None and jwks_file is None:
        raise ValueError("trust_anchors: set trust_anchors (x5c issuers) and/or jwks_uri/jwks_file")
    claim = config.get("claim", "age_equal_or_over")
    if claim not in _CLAIM_STYLES:
        raise ValueError(f"claim: expected one of {', '.join(_CLAIM_STYLES)}")
    max_kb_age = optional_duration(config, "max_kb_age") or 300.0
    if max_kb_age > 3600:
        raise ValueError("max_kb_age: at most 1h (a KB-JWT answers one fresh request)")
    status = config.get("status_list", {})
    if not isinstance(status, Mapping):
        raise ValueError("status_list: expected a mapping")
    try:
        status_config = parse_status_config(status, base_dir)
    except ValueError as error:
        raise ValueError(f"status_list.{error}") from None
    return SdJwtVcConfig(
        **shared.shared(),
        vct=_strings(config, "vct", required=True),
        issuers=_strings(config, "issuers", required=False),
        jwks_uri=jwks_uri,
        jwks_file=jwks_file,
        trust_anchors=anchors,
        algorithms=parse_algorithms(config, DEFAULT_ALGORITHMS),
        linkability=parse_mode(config),
        status=status_config,
        max_kb_age=max_kb_age,
        jwks_max_stale=optional_duration(config, "jwks_max_stale") or 3600.0,
        claim=str(claim),
        wallet_url=provider_url(config, "wallet_url"),
    )
