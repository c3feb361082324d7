"""The ``sd-jwt-vc`` verifier: SD-JWT VCs (``typ: dc+sd-jwt``) with a mandatory KB-JWT.

Checks, in order, each failure with its own reason code:

1. the presentation splits (``malformed``); the issuer JWT's ``typ`` is
   ``dc+sd-jwt`` (``bad_type``), ``alg`` allowed (``alg_not_allowed``), its key
   from an ``x5c`` chain to a trust anchor (``untrusted_chain``) or the JWKS
   (``unknown_kid``), signature (``bad_signature``);
2. ``_sd_alg`` is ``sha-256`` (``malformed``), ``iss`` (``wrong_issuer``),
   ``vct`` in the allowlist (``wrong_vct``), ``iat``/``exp`` present
   (``missing_claim``), ``exp`` (``expired``), ``nbf`` (``not_yet_valid``),
   ``iat`` (``issued_in_future``), ``cnf.jwk`` present (``missing_key_binding``);
3. the KB-JWT is there (``missing_key_binding``), ``typ: kb+jwt``
   (``bad_type``), signed by ``cnf.jwk`` (``bad_key_binding``), ``aud`` is the
   OpenID4VP request's ``client_id`` (``wrong_audience``), ``nonce`` ours
   (``missing_nonce``/``wrong_nonce``), ``iat`` fresh (``stale_key_binding``,
   ``issued_in_future``), ``sd_hash`` over the presentation
   (``sd_hash_mismatch``);
4. every disclosure matches a signed digest (``digest_mismatch``) and
   discloses only ``age_over_NN`` or ``age_equal_or_over.NN``
   (``extra_disclosure``); identity claims in clear (``identity_claim``); at
   least one boolean age claim (``no_age_claim``, ``bad_claim``);
5. the linkability check (``linkable_credential``; a status-list index is
   one finding), then the status list (``status_unavailable``, ``revoked``),
   and the seen-before record last, so a refused presentation never uses up
   its credential.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from verifiers.base import (
    AgeAssertion,
    Presentation,
    VerificationError,
    VerifierServices,
    VerifyContext,
)
from verifiers.jwks import JwksCache
from verifiers.linkability import enforce
from verifiers.sd_jwt_vc.config import SdJwtVcConfig, parse_config
from verifiers.sd_jwt_vc.format import (
    SdJwt,
    parse_presentation,
    resolve_disclosures,
    sd_hash,
)
from verifiers.sd_jwt_vc.keys import IssuerKeys, PublicKey, public_key_of_jwk, verify_with
from verifiers.status_list import StatusLists
from verifiers.token_profile import (
    SKEW,
    decode_payload,
    is_identity_claim,
    parse_compact,
    signature_algorithms,
)
from verifiers.wallet import WALLET_CHANNEL, WalletVerifier

__all__ = ["CREDENTIAL_TYPE", "KB_TYPE", "SdJwtVcVerifier"]

CREDENTIAL_TYPE = "dc+sd-jwt"
KB_TYPE = "kb+jwt"
_DAY = 86400
_AGE_OVER = re.compile(r"age_over_([1-9][0-9]?)")
_NN = re.compile(r"[1-9][0-9]?")
# Claims of the credential itself (SD-JWT VC §3.2.2), allowed in clear.
_REGISTERED = frozenset({"iss", "iat", "exp", "nbf", "vct", "vct#integrity", "cnf", "status"})
# In clear, these single out one credential: a linkability finding, not an identity.
_UNIQUE_IDS = frozenset({"jti", "sub", "id", "uid", "credential_id", "serial_number"})


def _number(value: object) -> TypeGuard[int | float]:
    return type(value) in (int, float)


def _typ_is(header: Mapping[str, Any], expected: str) -> bool:
    typ = header.get("typ")
    return isinstance(typ, str) and typ.lower().removeprefix("application/") == expected


class SdJwtVcVerifier(WalletVerifier):
    """Checks SD-JWT VC presentations from a wallet; built as ``(name, config, services)``."""

    kind = "sd-jwt-vc"
    callback_fields = ("vp_token",)

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.config: SdJwtVcConfig = parse_config(name, config, services.base_dir)
        super().__init__(name, self.config)
        self.wallet_url = self.config.wallet_url
        self._algorithms = signature_algorithms(self.config.algorithms)
        jwks = None
        if self.config.jwks_uri or self.config.jwks_file:
            jwks = JwksCache(
                uri=self.config.jwks_uri,
                file=self.config.jwks_file,
                http=services.http,
                max_stale=self.config.jwks_max_stale,
            )
        self._keys = IssuerKeys(self.config.trust_anchors, jwks)
        self.status_lists = StatusLists(self.config.status, services.http, self._signed_claims)

    def credential_query(self, query_id: str, min_age: int) -> Mapping[str, Any]:
        """A DCQL query for one ``dc+sd-jwt`` credential of an allowed ``vct``, age claim only."""
        if self.config.claim == "age_over":
            path: list[str] = [f"age_over_{min_age}"]
        else:
            path = ["age_equal_or_over", str(min_age)]
        return {
            "id": query_id,
            "format": CREDENTIAL_TYPE,
            "meta": {"vct_values": sorted(self.config.vct)},
            "claims": [{"path": path}],
        }

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Check one presentation; raise :class:`VerificationError` at the first failure."""
        sd_jwt = parse_presentation(presentation.credential)
        payload = await self._signed_claims(sd_jwt.issuer_jwt, ctx.now, CREDENTIAL_TYPE)
        self._check_credential(payload, ctx.now)
        holder_key = public_key_of_jwk(payload["cnf"]["jwk"])
        audience = (
            presentation.extra.get("client_id") if presentation.channel == WALLET_CHANNEL else None
        )
        self._check_key_binding(sd_jwt, holder_key, audience or ctx.audience, ctx)
        claims = resolve_disclosures(payload, sd_jwt.disclosures)
        findings = self._claim_findings(payload, claims, sd_jwt)
        over, under = _ages(claims)
        if "status" in payload:
            findings.append("status_index")
        enforce(findings, self.config.linkability, self.name)
        if "status" in payload:
            status = payload["status"]
            reference = status.get("status_list") if isinstance(status, Mapping) else None
            if reference is not None and self.status_lists.status(reference, ctx.now) != 0:
                raise VerificationError("revoked", "the credential is revoked or suspended")
        expires = float(payload["exp"]) + SKEW
        seen = hashlib.sha256(sd_jwt.issuer_jwt.encode("ascii")).hexdigest()
        if not await ctx.replay.consume(f"sd-jwt-vc:{self.name}", seen, expires):
            enforce(["seen_before"], self.config.linkability, self.name)
        return self.credential_assertion(
            over, under, self.config.assurance_level, ctx.now, float(payload["exp"])
        )

    async def _signed_claims(
        self, jws: str, now: float, typ: str = "statuslist+jwt"
    ) -> dict[str, Any]:
        """The payload of a JWS signed by a trusted issuer key, with ``typ`` checked."""
        parsed = parse_compact(jws)
        header = parsed.header
        if not _typ_is(header, typ):
            raise VerificationError("bad_type", f"header typ must be {typ!r}")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise VerificationError("alg_not_allowed", "header alg is not in the allowlist")
        if "crit" in header:
            raise VerificationError("malformed", "header crit names unsupported extensions")
        key = await self._keys.key_for(header, now)
        if not verify_with(key, alg, self._algorithms, parsed.signing_input, parsed.signature):
            raise VerificationError("bad_signature", "issuer signature does not verify")
        return decode_payload(parsed)

    def _check_credential(self, payload: Mapping[str, Any], now: float) -> None:
        if payload.get("_sd_alg", "sha-256") != "sha-256":
            raise VerificationError("malformed", "_sd_alg must be sha-256")
        iss = payload.get("iss")
        if not isinstance(iss, str) or (self.config.issuers and iss not in self.config.issuers):
            raise VerificationError("wrong_issuer", "iss is not an accepted issuer")
        if payload.get("vct") not in self.config.vct:
            raise VerificationError("wrong_vct", "vct is not an accepted credential type")
        iat, exp, nbf = payload.get("iat"), payload.get("exp"), payload.get("nbf")
        if not _number(iat) or not _number(exp):
            raise VerificationError("missing_claim", "iat and exp are required")
        if exp + SKEW <= now:
            raise VerificationError("expired", "the credential has expired")
        if nbf is not None and (not _number(nbf) or nbf - SKEW > now):
            raise VerificationError("not_yet_valid", "the credential is not valid yet")
        if iat - SKEW > now:
            raise VerificationError("issued_in_future", "iat is in the future")
        cnf = payload.get("cnf")
        if not isinstance(cnf, Mapping) or not isinstance(cnf.get("jwk"), Mapping):
            raise VerificationError("missing_key_binding", "the credential has no cnf.jwk")

    def _check_key_binding(
        self, sd_jwt: SdJwt, holder_key: PublicKey, audience: str, ctx: VerifyContext
    ) -> None:
        if sd_jwt.kb_jwt is None:
            raise VerificationError("missing_key_binding", "the presentation has no KB-JWT")
        parsed = parse_compact(sd_jwt.kb_jwt)
        if not _typ_is(parsed.header, KB_TYPE):
            raise VerificationError("bad_type", "KB-JWT typ must be 'kb+jwt'")
        alg = parsed.header.get("alg")
        if not isinstance(alg, str) or not verify_with(
            holder_key, alg, self._algorithms, parsed.signing_input, parsed.signature
        ):
            raise VerificationError("bad_key_binding", "KB-JWT is not signed by cnf.jwk")
        kb = decode_payload(parsed)
        if kb.get("aud") != audience:
            raise VerificationError("wrong_audience", "KB-JWT aud is not this request's client_id")
        nonce = kb.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise VerificationError("missing_nonce", "KB-JWT has no nonce")
        if ctx.expected_nonce is None or nonce != ctx.expected_nonce:
            raise VerificationError("wrong_nonce", "KB-JWT nonce is not this request's nonce")
        iat = kb.get("iat")
        if not _number(iat):
            raise VerificationError("missing_claim", "KB-JWT has no iat")
        if iat - SKEW > ctx.now:
            raise VerificationError("issued_in_future", "KB-JWT iat is in the future")
        if iat < ctx.now - self.config.max_kb_age:
            raise VerificationError("stale_key_binding", "KB-JWT is too old")
        if kb.get("sd_hash") != sd_hash(sd_jwt.signed_part):
            raise VerificationError(
                "sd_hash_mismatch", "KB-JWT sd_hash does not cover this presentation"
            )

    def _claim_findings(
        self, payload: Mapping[str, Any], claims: Mapping[str, Any], sd_jwt: SdJwt
    ) -> list[str]:
        """Refuse what is never allowed; return the linkability findings."""
        for item in sd_jwt.disclosures:
            name = item.name
            if name is None or not (_AGE_OVER.fullmatch(name) or _NN.fullmatch(name)):
                raise VerificationError("extra_disclosure", "a claim other than age is disclosed")
        findings: list[str] = []
        for name in claims:
            if name in _REGISTERED or _AGE_OVER.fullmatch(name) or name == "age_equal_or_over":
                continue
            if name not in payload:  # came from a disclosure (one of "NN" at the wrong place)
                raise VerificationError("extra_disclosure", "a claim other than age is disclosed")
            if name in _UNIQUE_IDS:
                findings.append("unique_id")
            elif is_identity_claim(name):
                raise VerificationError("identity_claim", "the credential shows an identity claim")
            else:
                findings.append("extra_element")
        if any(_number(payload.get(k)) and payload[k] % _DAY for k in ("iat", "exp", "nbf")):
            findings.append("precise_timestamp")
        return findings

    async def warm(self) -> None:
        """Fetch the JWKS and the status lists now, and keep the lists refreshed."""
        await self._keys.warm()
        await self.status_lists.refresh()
        self.status_lists.start()

    async def aclose(self) -> None:
        await self.status_lists.aclose()
        await self._keys.aclose()


def _ages(claims: Mapping[str, Any]) -> tuple[frozenset[int], frozenset[int]]:
    values: dict[int, object] = {}
    for name, value in claims.items():
        if match := _AGE_OVER.fullmatch(name):
            values[int(match.group(1))] = value
    nested = claims.get("age_equal_or_over")
    if nested is not None:
        if not isinstance(nested, Mapping) or not all(_NN.fullmatch(k) for k in nested):
            raise VerificationError("bad_claim", "age_equal_or_over is not an object of ages")
        values.update((int(k), v) for k, v in nested.items())
    if not values:
        raise VerificationError("no_age_claim", "no age claim is disclosed")
    if not all(isinstance(v, bool) for v in values.values()):
        raise VerificationError("bad_claim", "an age claim is not a boolean")
    return (
        frozenset(n for n, v in values.items() if v),
        frozenset(n for n, v in values.items() if not v),
    )
