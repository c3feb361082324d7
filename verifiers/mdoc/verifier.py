"""The ``eu-av`` verifier: ISO 18013-5 mdoc age credentials presented over OpenID4VP 1.0.

Checks, in order, stopping at the first failure: the DeviceResponse's shape
(one document, status 0), the docType (``eu.europa.ec.av.1``, or the mDL when
``accept_mdl``), the issuer's x5chain against ``trust_anchors``, the
``issuerAuth`` signature, the MSO (SHA-256 digests, docType, validity), each
disclosed element's digest, that only ``age_over_NN`` was disclosed, the
device signature over the OpenID4VP SessionTranscript of *this* request, and
last the linkability findings and the seen-before record, so a refused
presentation never burns its credential.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verifiers.base import (
    DEFAULT_SESSION_TTL,
    AgeAssertion,
    Presentation,
    VerificationError,
    VerifierConfig,
    VerifierServices,
    VerifyContext,
)
from verifiers.config import provider_url
from verifiers.linkability import LinkabilityMode, enforce, parse_mode
from verifiers.mdoc.cose import ES256, X5CHAIN, cose_key_to_public, verify_es256
from verifiers.mdoc.response import (
    Document,
    MobileSecurityObject,
    ValidityInfo,
    parse_device_response,
    parse_mso,
)
from verifiers.mdoc.transcript import device_authentication_bytes, session_transcript
from verifiers.mdoc.trust import TrustAnchors, load_trust_anchors
from verifiers.wallet import WALLET_CHANNEL, WalletVerifier

__all__ = [
    "AV_DOCTYPE",
    "DEFAULT_SESSION_TTL",
    "MDL_DOCTYPE",
    "MDL_NAMESPACE",
    "EuAvConfig",
    "EuAvVerifier",
    "StatusCheck",
    "linkability_findings",
    "parse_config",
]

AV_DOCTYPE = "eu.europa.ec.av.1"  # docType and namespace are the same string
MDL_DOCTYPE = "org.iso.18013.5.1.mDL"
MDL_NAMESPACE = "org.iso.18013.5.1"
_OWN_KEYS = frozenset({"trust_anchors", "accept_mdl", "linkability", "wallet_url"})
_AGE_ELEMENT = re.compile(r"age_over_([0-9]{2})")

# Hook for the status-list module (verifiers/status_list.py): called with the
# MSO's ``status`` map when it has one; raises VerificationError (e.g. "revoked")
# from a list fetched whole on a schedule, never per credential.
StatusCheck = Callable[[Mapping[Any, Any], float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class EuAvConfig(VerifierConfig):
    """One ``eu-av`` verifier's settings, checked once at load."""

    trust_anchors: Path
    accept_mdl: bool
    linkability: LinkabilityMode
    wallet_url: str | None = None  # a web wallet offered beside openid4vp:// (https, or loopback)


def parse_config(name: str, config: Mapping[str, Any], base_dir: str = ".") -> EuAvConfig:
    """Check every key of one ``eu-av`` verifier's config; ``ValueError`` names the key."""
    shared = VerifierConfig.parse(name, config, kind="eu-av", own_keys=_OWN_KEYS)
    anchors = config.get("trust_anchors")
    if not isinstance(anchors, str) or not anchors.strip():
        raise ValueError("trust_anchors: required, a PEM file of IACA root certificates")
    path = Path(base_dir, anchors.strip())
    if not path.is_file():
        raise ValueError(f"trust_anchors: no such file {str(path)!r}")
    accept_mdl = config.get("accept_mdl", False)
    if not isinstance(accept_mdl, bool):
        raise ValueError("accept_mdl: expected true or false")
    return EuAvConfig(
        **shared.shared(),
        trust_anchors=path,
        accept_mdl=accept_mdl,
        linkability=parse_mode(config),
        wallet_url=provider_url(config, "wallet_url"),
    )


def _is_day(moment: datetime) -> bool:
    utc = moment.astimezone(UTC)
    return (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0)


def linkability_findings(mso: MobileSecurityObject) -> list[str]:
    """What in a valid MSO could link visits: a status reference, or to-the-second dates."""
    findings: list[str] = []
    if mso.status is not None:
        # A per-credential index (status_list idx) or identifier (identifier_list id).
        findings.append("unique_id" if "identifier_list" in mso.status else "status_index")
    validity: ValidityInfo = mso.validity
    dates = [validity.signed, validity.valid_from, validity.valid_until, validity.expected_update]
    if not all(_is_day(d) for d in dates if d is not None):
        findings.append("precise_timestamp")
    return findings


class EuAvVerifier(WalletVerifier):
    """Verifies ``eu.europa.ec.av.1`` (and optionally mDL) DeviceResponses from a wallet."""

    kind = "eu-av"

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.config = parse_config(name, config, services.base_dir)
        super().__init__(name, self.config)
        try:
            self._anchors = TrustAnchors(load_trust_anchors(self.config.trust_anchors))
        except ValueError as error:
            raise ValueError(f"trust_anchors: {error}") from None
        # docType -> the one namespace whose age elements it may disclose
        self._namespaces = {AV_DOCTYPE: AV_DOCTYPE}
        if self.config.accept_mdl:
            self._namespaces[MDL_DOCTYPE] = MDL_NAMESPACE
        self.status_check: StatusCheck | None = None
        self.wallet_url = self.config.wallet_url

    def credential_query(self, query_id: str, min_age: int) -> Mapping[str, Any]:
        """The DCQL query for ``age_over_<min_age>`` of ``eu.europa.ec.av.1``, nothing else."""
        return _query(query_id, AV_DOCTYPE, AV_DOCTYPE, min_age)

    def dcql_query(self, query_id: str, min_age: int) -> Mapping[str, Any]:
        """The whole ``dcql_query``: the AV credential, or (``accept_mdl``) either it or an mDL.

        One Credential Query cannot offer alternatives; ``credential_sets``
        with two options can, so the mDL needs this rather than
        :meth:`credential_query`.
        """
        credentials = [self.credential_query(query_id, min_age)]
        if not self.config.accept_mdl:
            return {"credentials": credentials}
        mdl_id = f"{query_id}-mdl"
        credentials.append(_query(mdl_id, MDL_DOCTYPE, MDL_NAMESPACE, min_age))
        return {
            "credentials": credentials,
            "credential_sets": [{"options": [[query_id], [mdl_id]]}],
        }

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Check one ``vp_token`` entry (base64url DeviceResponse); see the module for the order."""
        if presentation.channel != WALLET_CHANNEL:
            # Only the OpenID4VP direct_post binds client_id and response_uri to
            # what the gateway itself asked; a form field could say anything.
            raise VerificationError("wrong_channel", "an mdoc is accepted only from a wallet")
        client_id = presentation.extra.get("client_id")
        response_uri = presentation.extra.get("response_uri")
        if not client_id or not response_uri:
            raise VerificationError("wrong_audience", "no client_id/response_uri to bind to")
        if not ctx.expected_nonce:
            raise VerificationError("missing_nonce", "no request nonce to bind to")
        doc = parse_device_response(presentation.credential)
        namespace = self._namespaces.get(doc.doc_type)
        if namespace is None:
            raise VerificationError("bad_type", "docType is not one this verifier accepts")
        mso = self._check_issuer(doc, ctx.now)
        over, under = _age_elements(doc, mso, namespace)
        self._check_device(doc, mso, client_id, response_uri, ctx.expected_nonce)
        if mso.status is not None and self.status_check is not None:
            await self.status_check(mso.status, ctx.now)
        await self._check_linkability(doc, mso, ctx)
        return self.credential_assertion(
            over,
            under,
            self.config.assurance_level,
            ctx.now,
            mso.validity.valid_until.timestamp(),
        )

    def _check_issuer(self, doc: Document, now: float) -> MobileSecurityObject:
        if doc.issuer_auth.alg != ES256:
            raise VerificationError("alg_not_allowed", "issuerAuth is not ES256")
        x5chain = doc.issuer_auth.header(X5CHAIN)
        if x5chain is None:
            raise VerificationError("untrusted_chain", "issuerAuth carries no x5chain")
        key = self._anchors.document_signer_key(x5chain, now)
        if not verify_es256(doc.issuer_auth, key):
            raise VerificationError("bad_signature", "issuerAuth signature does not verify")
        mso = parse_mso(doc.issuer_auth)
        if mso.digest_algorithm != "SHA-256":
            raise VerificationError("alg_not_allowed", "MSO digest algorithm is not SHA-256")
        if mso.doc_type != doc.doc_type:
            raise VerificationError("bad_type", "MSO docType differs from the document's")
        if now < mso.validity.valid_from.timestamp():
            raise VerificationError("not_yet_valid", "credential is not valid yet")
        if now > mso.validity.valid_until.timestamp():
            raise VerificationError("expired", "credential has expired")
        return mso

    def _check_device(
        self, doc: Document, mso: MobileSecurityObject, client_id: str, uri: str, nonce: str
    ) -> None:
        for elements in doc.device_elements.values():
            # Device-signed elements are self-asserted: never counted, and only
            # age elements are tolerated so nothing else is disclosed.
            if any(not _AGE_ELEMENT.fullmatch(str(e)) for e in elements):
                raise VerificationError("extra_disclosure", "device disclosed a non-age element")
        if doc.device_signature.alg != ES256:
            raise VerificationError("alg_not_allowed", "deviceSignature is not ES256")
        device_key = cose_key_to_public(mso.device_key)
        transcript = session_transcript(client_id, nonce, uri)
        signed = device_authentication_bytes(transcript, doc.doc_type, doc.device_namespaces)
        if not verify_es256(doc.device_signature, device_key, signed):
            # Cryptographically a foreign nonce, client_id or response_uri and a
            # forged signature look the same; the detail names the likely cause.
            raise VerificationError(
                "bad_device_signature",
                "device signature does not cover this request (nonce, client_id, response_uri)",
            )

    async def _check_linkability(
        self, doc: Document, mso: MobileSecurityObject, ctx: VerifyContext
    ) -> None:
        findings = linkability_findings(mso)
        if self.config.linkability == "refuse":
            enforce(findings, "refuse", self.name)  # before the record: do not burn it
        # The signed MSO (issuerAuth's payload) is unique per credential and covered
        # by the issuer's signature, so, unlike the COSE envelope (unprotected
        # header, malleable ECDSA signature), it cannot be respelled to look new.
        fingerprint = hashlib.sha256(doc.issuer_auth.payload or b"").hexdigest()
        valid_until = mso.validity.valid_until.timestamp()
        if not await ctx.replay.consume(f"eu-av:{self.name}", fingerprint, valid_until):
            findings.append("seen_before")
        enforce(findings, self.config.linkability, self.name)


def _query(query_id: str, doc_type: str, namespace: str, min_age: int) -> dict[str, Any]:
    return {
        "id": query_id,
        "format": "mso_mdoc",
        "meta": {"doctype_value": doc_type},
        "claims": [{"path": [namespace, f"age_over_{min_age:02d}"], "intent_to_retain": False}],
    }


def _age_elements(
    doc: Document, mso: MobileSecurityObject, namespace: str
) -> tuple[frozenset[int], frozenset[int]]:
    """The proven thresholds, after every disclosed item's digest and name is checked."""
    values: dict[int, bool] = {}
    for item in doc.items:
        expected = mso.value_digests.get(item.namespace, {}).get(item.digest_id)
        if expected is None or hashlib.sha256(item.item_bytes).digest() != expected:
            raise VerificationError("digest_mismatch", "a disclosed element fails its digest")
        match = _AGE_ELEMENT.fullmatch(item.element)
        if item.namespace != namespace or match is None or match.group(1) == "00":
            raise VerificationError("extra_disclosure", "an element other than age_over_NN")
        if not isinstance(item.value, bool):
            raise VerificationError("bad_claim", "age_over_NN is not a boolean")
        threshold = int(match.group(1))
        if values.setdefault(threshold, item.value) != item.value:
            raise VerificationError("bad_claim", "one threshold disclosed with two values")
    if not values:
        raise VerificationError("no_age_claim", "no age_over_NN element disclosed")
    over = frozenset(n for n, v in values.items() if v)
    return over, frozenset(values) - over
