"""A TEST-ONLY mdoc issuer and wallet: an IACA-style CA, ``eu.europa.ec.av.1`` credentials,
and OpenID4VP DeviceResponses, for ``make demo`` and the tests.  Never a real credential.

The wallet simulator calls, in this order::

    issuer = MdocTestIssuer.generate()            # once; issuer.trust_anchor_pem() is the
                                                  # verifier's `trust_anchors` file
    mdoc = issuer.issue(age_over={18: True})      # one credential with its device key
    vp_token = build_device_response(mdoc, client_id=..., response_uri=..., nonce=...)

``Defects`` plants one fault in a response, for tests of each refusal.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from verifiers.b64url import b64url_encode
from verifiers.mdoc.cbor import EMBEDDED_CBOR, encode
from verifiers.mdoc.cose import X5CHAIN, public_to_cose_key, sign1
from verifiers.mdoc.transcript import device_authentication_bytes, session_transcript
from verifiers.mdoc.trust import MDOC_DS_EKU

__all__ = [
    "AV_DOCTYPE",
    "Defects",
    "IssuedMdoc",
    "MdocTestIssuer",
    "build_device_response",
]

AV_DOCTYPE = "eu.europa.ec.av.1"
_DAY = timedelta(days=1)


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "UT"),  # ISO "user-assigned": not a country
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, sign: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class IssuedMdoc:
    """One issued credential as a wallet holds it: items, issuerAuth and the device key."""

    doc_type: str
    namespace: str
    items: Mapping[str, bytes]  # element name -> IssuerSignedItem CBOR (the tag-24 content)
    issuer_auth: list[Any]  # COSE_Sign1 array
    device_key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class MdocTestIssuer:
    """A test IACA root, a Document Signer certificate under it, and their keys."""

    iaca_key: ec.EllipticCurvePrivateKey
    iaca_cert: x509.Certificate
    ds_key: ec.EllipticCurvePrivateKey
    ds_cert: x509.Certificate

    @classmethod
    def generate(
        cls, now: datetime | None = None, name: str = "agegate TEST IACA"
    ) -> MdocTestIssuer:
        """A fresh P-256 IACA (10 years) and DS certificate (1 year), valid from yesterday."""
        start = _midnight(now or datetime.now(UTC)) - _DAY
        iaca_key = ec.generate_private_key(ec.SECP256R1())
        ds_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(name)
        iaca_cert = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(iaca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + 3650 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(iaca_key.public_key()), False)
            .sign(iaca_key, hashes.SHA256())
        )
        ds_cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} document signer"))
            .issuer_name(root_name)
            .public_key(ds_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + 365 * _DAY)
            .add_extension(_key_usage(sign=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([MDOC_DS_EKU]), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(iaca_key.public_key()), False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ds_key.public_key()), False)
            .sign(iaca_key, hashes.SHA256())
        )
        return cls(iaca_key, iaca_cert, ds_key, ds_cert)

    def to_pem(self) -> bytes:
        """IACA key, IACA certificate, DS key, DS certificate: a private file (the demo's)."""
        keys = [
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for key in (self.iaca_key, self.ds_key)
        ]
        certs = [c.public_bytes(serialization.Encoding.PEM) for c in (self.iaca_cert, self.ds_cert)]
        return keys[0] + certs[0] + keys[1] + certs[1]

    @classmethod
    def from_pem(cls, data: bytes) -> MdocTestIssuer:
        """The issuer :meth:`to_pem` wrote; ``ValueError`` if ``data`` is not one."""
        certs = x509.load_pem_x509_certificates(data)
        blocks = [
            block + b"-----END PRIVATE KEY-----\n"
            for block in data.split(b"-----END PRIVATE KEY-----\n")[:-1]
        ]
        keys = [
            serialization.load_pem_private_key(block[block.index(b"-----BEGIN") :], None)
            for block in blocks
        ]
        if len(certs) != 2 or len(keys) != 2:
            raise ValueError("expected an IACA key and certificate, then a DS key and certificate")
        iaca_key, ds_key = keys
        if not isinstance(iaca_key, ec.EllipticCurvePrivateKey) or not isinstance(
            ds_key, ec.EllipticCurvePrivateKey
        ):
            raise ValueError("the mdoc test issuer's keys must be EC keys")
        return cls(iaca_key, certs[0], ds_key, certs[1])

    def trust_anchor_pem(self) -> bytes:
        """The IACA root in PEM: the content of an ``eu-av`` verifier's ``trust_anchors`` file."""
        return self.iaca_cert.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        *,
        age_over: Mapping[int, bool] | None = None,
        extra_elements: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        doc_type: str = AV_DOCTYPE,
        namespace: str | None = None,
        status: Mapping[str, Any] | None = None,
        device_key: ec.EllipticCurvePrivateKey | None = None,
        mso_overrides: Mapping[str, Any] | None = None,
    ) -> IssuedMdoc:
        """An mdoc with ``age_over_NN`` elements (default 18: true) and any ``extra_elements``.

        Dates default to the blueprint's: day-truncated, valid from today for 90 days.
        ``mso_overrides`` replaces MSO fields before signing (to plant defects).
        """
        today = _midnight(now or datetime.now(UTC))
        start = valid_from or today
        end = valid_until or today + 90 * _DAY
        ns = namespace or doc_type
        elements: dict[str, Any] = {
            f"age_over_{n:02d}": v for n, v in (age_over or {18: True}).items()
        }
        elements.update(extra_elements or {})
        items: dict[str, bytes] = {}
        digests: dict[int, bytes] = {}
        for digest_id, (element, value) in enumerate(elements.items()):
            item = {
                "digestID": digest_id,
                "random": secrets.token_bytes(16),
                "elementIdentifier": element,
                "elementValue": value,
            }
            items[element] = encode(item)
            tagged = encode(cbor2.CBORTag(EMBEDDED_CBOR, items[element]))
            digests[digest_id] = hashlib.sha256(tagged).digest()
        key = device_key or ec.generate_private_key(ec.SECP256R1())
        mso: dict[str, Any] = {
            "version": "1.0",
            "digestAlgorithm": "SHA-256",
            "valueDigests": {ns: digests},
            "deviceKeyInfo": {"deviceKey": public_to_cose_key(key.public_key())},
            "docType": doc_type,
            "validityInfo": {"signed": start, "validFrom": start, "validUntil": end},
        }
        if status is not None:
            mso["status"] = dict(status)
        mso.update(mso_overrides or {})
        payload = encode(cbor2.CBORTag(EMBEDDED_CBOR, encode(mso)))
        x5chain = self.ds_cert.public_bytes(serialization.Encoding.DER)
        issuer_auth = sign1(self.ds_key, payload, unprotected={X5CHAIN: x5chain})
        return IssuedMdoc(doc_type, ns, items, issuer_auth, key)


@dataclass(frozen=True)
class Defects:
    """Faults to plant in a DeviceResponse; the default plants none."""

    no_device_signature: bool = False  # deviceAuth carries a deviceMac instead
    tamper_element: str | None = None  # flip this element's value after issuance
    device_elements: Mapping[str, Any] = field(default_factory=dict)  # self-asserted extras
    transcript_nonce: str | None = None  # sign over this nonce instead of the request's


def build_device_response(
    mdoc: IssuedMdoc,
    *,
    client_id: str,
    response_uri: str,
    nonce: str,
    disclose: Collection[str] | None = None,
    defects: Defects | None = None,
) -> str:
    """A base64url DeviceResponse for one OpenID4VP 1.0 request: the ``vp_token`` entry.

    ``disclose`` names the elements to reveal (default: every ``age_over_NN``);
    the device signs the SessionTranscript of (client_id, nonce, response_uri).
    """
    defects = defects or Defects()
    names = disclose if disclose is not None else [e for e in mdoc.items if e.startswith("age_")]
    items = []
    for element in names:
        raw = mdoc.items[element]
        if element == defects.tamper_element:
            decoded = cbor2.loads(raw)
            value = decoded["elementValue"]
            decoded["elementValue"] = (not value) if isinstance(value, bool) else f"{value}x"
            raw = encode(decoded)
        items.append(cbor2.CBORTag(EMBEDDED_CBOR, raw))
    device_namespaces = cbor2.CBORTag(
        EMBEDDED_CBOR,
        encode({mdoc.namespace: dict(defects.device_elements)} if defects.device_elements else {}),
    )
    transcript = session_transcript(client_id, defects.transcript_nonce or nonce, response_uri)
    signed = device_authentication_bytes(transcript, mdoc.doc_type, device_namespaces)
    if defects.no_device_signature:
        device_auth: dict[str, Any] = {"deviceMac": [encode({1: 5}), {}, None, bytes(32)]}
    else:
        device_auth = {"deviceSignature": sign1(mdoc.device_key, signed, detached=True)}
    response = {
        "version": "1.0",
        "documents": [
            {
                "docType": mdoc.doc_type,
                "issuerSigned": {
                    "nameSpaces": {mdoc.namespace: items},
                    "issuerAuth": mdoc.issuer_auth,
                },
                "deviceSigned": {"nameSpaces": device_namespaces, "deviceAuth": device_auth},
            }
        ],
        "status": 0,
    }
    return b64url_encode(encode(response))
