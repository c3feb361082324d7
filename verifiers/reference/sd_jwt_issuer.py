"""A test-only SD-JWT VC issuer with its own test CA, for tests and ``make demo``.

Never for production: the keys are made in memory (or read from files the
demo writes), and the CA is called "agegate TEST CA".  It issues what an EU
PID or age-verification issuer would, minus identity: ``iss``, ``vct``,
day-rounded ``iat``/``exp``, ``cnf.jwk`` (the holder's key), and the age
claims as selectively disclosable ``age_equal_or_over.NN`` (or top-level
``age_over_NN``).  Keyword arguments plant the defects the tests need
(extra disclosures, claims in clear, a foreign CA, no ``cnf``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from verifiers.b64url import b64url_encode

__all__ = ["TEST_VCT", "ReferenceCa", "ReferenceSdJwtIssuer", "disclosure", "public_jwk"]

TEST_VCT = "urn:eudi:age_verification:test:1"
_DAY = 86400


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The public JWK of an EC key (no private member)."""
    data: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {k: data[k] for k in ("kty", "crv", "x", "y")}


def disclosure(name: str | None, value: Any) -> str:
    """One disclosure (``[salt, name, value]``, or ``[salt, value]`` for an array element)."""
    salt = b64url_encode(secrets.token_bytes(16))
    parts = [salt, value] if name is None else [salt, name, value]
    return b64url_encode(json.dumps(parts, separators=(",", ":")).encode())


def _digest(encoded: str) -> str:
    return b64url_encode(hashlib.sha256(encoded.encode("ascii")).digest())


@dataclass
class ReferenceCa:
    """A self-signed root and one issuer certificate under it (IACA-style, test only)."""

    name: str = "agegate TEST CA"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), False)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        """The root certificate in PEM: what an operator puts in ``trust_anchors``."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_certificate(
        self, key: ec.EllipticCurvePrivateKey, issuer_url: str
    ) -> x509.Certificate:
        """An end-entity certificate for an issuer signing key."""
        now = datetime.now(UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agegate TEST issuer")])
            )
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(issuer_url)]), False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )


@dataclass
class ReferenceSdJwtIssuer:
    """Issues SD-JWT VCs signed with an ``x5c`` chain to :class:`ReferenceCa` (or a ``kid``)."""

    issuer: str = "https://issuer.test"
    ca: ReferenceCa = field(default_factory=ReferenceCa)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    kid: str = "test-issuer-1"

    def __post_init__(self) -> None:
        self.certificate = self.ca.issue_certificate(self.key, self.issuer)

    def x5c(self) -> list[str]:
        """The chain for the JWS header: the issuer certificate (the root is the anchor)."""
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return [base64.b64encode(der).decode("ascii")]

    def jwks(self) -> dict[str, Any]:
        """The issuer key as a JWKS, for verifiers configured with ``jwks_file``."""
        return {"keys": [{**public_jwk(self.key), "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def issue(
        self,
        holder: Mapping[str, Any] | None,
        *,
        age_over: Mapping[int, bool] | None = None,
        style: str = "age_equal_or_over",
        vct: str = TEST_VCT,
        iat: float | None = None,
        lifetime: float = 30 * _DAY,
        nbf: float | None = None,
        disclosed: Mapping[str, Any] | None = None,
        clear: Mapping[str, Any] | None = None,
        use_x5c: bool = True,
    ) -> str:
        """An issued SD-JWT VC (``<jwt>~<disclosure>~…~``) for the holder's public JWK.

        ``disclosed`` adds other selectively disclosable claims (top level);
        ``clear`` adds claims in clear.  Times are rounded down to the day.
        """
        day = int((time.time() if iat is None else iat) // _DAY * _DAY)
        disclosures: list[str] = []
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "vct": vct,
            "iat": day,
            "exp": int(day + lifetime),
        }
        if nbf is not None:
            payload["nbf"] = int(nbf)
        if holder is not None:
            payload["cnf"] = {"jwk": dict(holder)}
        top: list[str] = []
        ages = dict(age_over or {18: True})
        if style == "age_over":
            for age, value in ages.items():
                disclosures.append(disclosure(f"age_over_{age}", value))
                top.append(_digest(disclosures[-1]))
        else:
            nested: list[str] = []
            for age, value in ages.items():
                disclosures.append(disclosure(str(age), value))
                nested.append(_digest(disclosures[-1]))
            payload["age_equal_or_over"] = {"_sd": sorted(nested)}
        for name, value in (disclosed or {}).items():
            disclosures.append(disclosure(name, value))
            top.append(_digest(disclosures[-1]))
        payload.update(clear or {})
        payload["_sd"] = sorted(top)
        payload["_sd_alg"] = "sha-256"
        headers: dict[str, Any] = {"typ": "dc+sd-jwt"}
        if use_x5c:
            headers["x5c"] = self.x5c()
        else:
            headers["kid"] = self.kid
        token = jwt.encode(payload, self.key, algorithm="ES256", headers=headers)
        return "~".join([token, *disclosures, ""])

    def status_list(self, uri: str, statuses: list[int], *, bits: int = 1) -> str:
        """A ``statuslist+jwt`` for ``uri`` with ``statuses[i]`` at index ``i``."""
        data = bytearray((len(statuses) * bits + 7) // 8)
        for index, value in enumerate(statuses):
            bit = index * bits
            data[bit // 8] |= value << (bit % 8)
        day = int(time.time() // _DAY * _DAY)
        claims = {
            "sub": uri,
            "iat": day,
            "exp": day + _DAY,
            "status_list": {"bits": bits, "lst": b64url_encode(zlib.compress(bytes(data)))},
        }
        headers = {"typ": "statuslist+jwt", "x5c": self.x5c()}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=headers)
