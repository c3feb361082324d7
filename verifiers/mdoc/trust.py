"""The issuer's x5chain checked against configured IACA roots, with ``cryptography``'s verifier.

``cryptography.x509.verification`` (≥ 45) builds and checks the path
(signatures, validity at ``now``, basicConstraints and keyUsage on the CAs
under the Web PKI CA profile, chain depth), so no path logic is written here.
A Document Signer certificate is not a TLS certificate, so the end-entity
profile is our own: keyUsage ``digitalSignature`` and the mdoc DS extended key
usage ``1.0.18013.5.1.2`` (ISO 18013-5 Annex B) are required, anything else
is tolerated.  We use the *client* verifier only because it does not ask for
a server name; no TLS semantics are assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ObjectIdentifier

from verifiers.base import VerificationError
from verifiers.mdoc.cbor import as_bytes, malformed

__all__ = ["MAX_CHAIN_CERTS", "MDOC_DS_EKU", "TrustAnchors", "load_trust_anchors"]

MDOC_DS_EKU = ObjectIdentifier("1.0.18013.5.1.2")
MAX_CHAIN_CERTS = 4


def _require_digital_signature(_policy: Any, _cert: x509.Certificate, ext: Any) -> None:
    if not isinstance(ext, x509.KeyUsage) or not ext.digital_signature:
        raise ValueError("document signer keyUsage must include digitalSignature")


def _require_mdoc_ds_eku(_policy: Any, _cert: x509.Certificate, ext: Any) -> None:
    if not isinstance(ext, x509.ExtendedKeyUsage) or MDOC_DS_EKU not in ext:
        raise ValueError("document signer extendedKeyUsage must include 1.0.18013.5.1.2")


def load_trust_anchors(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file; ``ValueError`` if it holds none or cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{str(path)!r} holds no PEM certificates") from None
    return certs


class TrustAnchors:
    """The IACA roots one verifier trusts, and the chain check against them."""

    def __init__(self, roots: Sequence[x509.Certificate]) -> None:
        if not roots:
            raise ValueError("no trust anchors")
        self._store = verification.Store(list(roots))
        Criticality = verification.Criticality
        self._ee_policy = (
            verification.ExtensionPolicy.permit_all()
            .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_digital_signature)
            .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_mdoc_ds_eku)
        )
        self._ca_policy = verification.ExtensionPolicy.webpki_defaults_ca()

    def document_signer_key(self, x5chain: Any, now: float) -> ec.EllipticCurvePublicKey:
        """The DS certificate's P-256 key, if ``x5chain`` leads to a root; else ``untrusted_chain``.

        ``x5chain`` is the COSE header value: one DER certificate, or an array
        of them with the DS first (RFC 9360).
        """
        ders = [x5chain] if isinstance(x5chain, bytes) else x5chain
        if not isinstance(ders, list | tuple) or not 1 <= len(ders) <= MAX_CHAIN_CERTS:
            malformed("x5chain: expected one to four certificates")
        try:
            certs = [x509.load_der_x509_certificate(as_bytes(d, "x5chain")) for d in ders]
        except (ValueError, x509.InvalidVersion):  # InvalidVersion is no ValueError
            malformed("x5chain: not a DER certificate")
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(datetime.fromtimestamp(now, tz=UTC))
            .max_chain_depth(MAX_CHAIN_CERTS)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )
        try:
            verifier.verify(certs[0], certs[1:])
        # ValueError: cryptography parses certificate fields lazily, so a broken
        # subject or extension surfaces only here.
        except (verification.VerificationError, ValueError) as error:
            raise VerificationError(
                "untrusted_chain", "issuer certificate chain does not lead to a trust anchor"
            ) from error
        key = certs[0].public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise VerificationError("alg_not_allowed", "document signer key is not P-256")
        return key
