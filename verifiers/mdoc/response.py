"""The ISO 18013-5 DeviceResponse (§8.3.2.1.2.2) and its MSO (§9.1.2.4), parsed into plain shapes.

Parsing checks structure only (``malformed``, ``missing_device_signature``);
what the signatures, digests and dates prove is decided in
:mod:`verifiers.mdoc.verifier`.  Embedded CBOR (tag 24) keeps its bytes as
received, because the value digests and the device signature are over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cbor2

from verifiers.b64url import b64url_decode
from verifiers.base import VerificationError
from verifiers.mdoc.cbor import (
    MAX_BYTES,
    as_bytes,
    as_datetime,
    as_list,
    as_map,
    as_text,
    decode,
    embedded,
    malformed,
)
from verifiers.mdoc.cose import CoseSign1, parse_sign1

__all__ = [
    "Document",
    "IssuedItem",
    "MobileSecurityObject",
    "ValidityInfo",
    "parse_device_response",
    "parse_mso",
]


@dataclass(frozen=True, slots=True)
class IssuedItem:
    """One disclosed IssuerSignedItem and the tag-24 bytes its digest is over."""

    namespace: str
    digest_id: int
    element: str
    value: Any
    item_bytes: bytes  # the full tag-24 encoding, #6.24(bstr), as the digest input


@dataclass(frozen=True, slots=True)
class Document:
    """The single document of a DeviceResponse, as far as parsing can tell."""

    doc_type: str
    items: tuple[IssuedItem, ...]
    issuer_auth: CoseSign1
    device_namespaces: cbor2.CBORTag  # tag 24 as received, signed by the device
    device_elements: Mapping[str, Mapping[str, Any]]
    device_signature: CoseSign1


@dataclass(frozen=True, slots=True)
class ValidityInfo:
    """The MSO's ``validityInfo`` dates."""

    signed: datetime
    valid_from: datetime
    valid_until: datetime
    expected_update: datetime | None


@dataclass(frozen=True, slots=True)
class MobileSecurityObject:
    """The issuer-signed MSO: digests, device key, validity, and any status reference."""

    digest_algorithm: str
    value_digests: Mapping[str, Mapping[int, bytes]]
    device_key: Any  # a COSE_Key map, checked when it is used
    doc_type: str
    validity: ValidityInfo
    status: Mapping[Any, Any] | None


def _item(namespace: str, value: Any) -> IssuedItem:
    raw, decoded = embedded(value, "IssuerSignedItemBytes")
    item = as_map(decoded, "IssuerSignedItem")
    digest_id = item.get("digestID")
    if not isinstance(digest_id, int) or isinstance(digest_id, bool) or digest_id < 0:
        malformed("IssuerSignedItem: digestID must be an unsigned integer")
    random = as_bytes(item.get("random"), "IssuerSignedItem random")
    if len(random) < 16:  # ISO 18013-5 §9.1.2.5: at least 16 bytes of salt
        malformed("IssuerSignedItem: random is shorter than 16 bytes")
    element = as_text(item.get("elementIdentifier"), "IssuerSignedItem elementIdentifier")
    if "elementValue" not in item:
        malformed("IssuerSignedItem: no elementValue")
    tagged = cbor2.dumps(cbor2.CBORTag(24, raw))
    return IssuedItem(namespace, digest_id, element, item["elementValue"], tagged)


def _issuer_items(issuer_signed: Mapping[Any, Any]) -> tuple[IssuedItem, ...]:
    namespaces = as_map(issuer_signed.get("nameSpaces", {}), "issuerSigned nameSpaces")
    items: list[IssuedItem] = []
    for namespace, entries in namespaces.items():
        ns = as_text(namespace, "nameSpace")
        for entry in as_list(entries, f"nameSpace {ns}"):
            items.append(_item(ns, entry))
    return tuple(items)


def _device_signed(document: Mapping[Any, Any]) -> tuple[cbor2.CBORTag, Any, CoseSign1]:
    device_signed = document.get("deviceSigned")
    if device_signed is None:
        raise VerificationError("missing_device_signature", "no deviceSigned in the document")
    device_signed = as_map(device_signed, "deviceSigned")
    tag = device_signed.get("nameSpaces")
    if not isinstance(tag, cbor2.CBORTag):
        malformed("DeviceNameSpacesBytes: expected embedded CBOR (tag 24)")
    _, elements = embedded(tag, "DeviceNameSpacesBytes")
    auth = as_map(device_signed.get("deviceAuth"), "deviceAuth")
    signature = auth.get("deviceSignature")
    if signature is None:
        # deviceMac needs the reader's ephemeral key, which OpenID4VP never sends.
        raise VerificationError("missing_device_signature", "no deviceSignature in deviceAuth")
    return tag, elements, parse_sign1(signature, "deviceSignature")


def _device_elements(value: Any) -> Mapping[str, Mapping[str, Any]]:
    namespaces = as_map(value, "DeviceNameSpaces")
    out: dict[str, Mapping[str, Any]] = {}
    for namespace, elements in namespaces.items():
        ns = as_text(namespace, "device nameSpace")
        out[ns] = as_map(elements, f"device nameSpace {ns}")
    return out


def parse_device_response(credential: str) -> Document:
    """The one document of a base64url DeviceResponse; refuses errors and extra documents."""
    try:
        data = b64url_decode(credential, padding=True, limit=(MAX_BYTES * 4) // 3 + 4)
    except ValueError:
        malformed("vp_token is not base64url or is too large")
    response = as_map(decode(data), "DeviceResponse")
    if as_text(response.get("version"), "version").split(".")[0] != "1":
        malformed("unsupported DeviceResponse version")
    if response.get("status") != 0:
        malformed("DeviceResponse status is not OK (0)")
    documents = as_list(response.get("documents"), "documents")
    if len(documents) != 1:
        # We ask for one credential; a second document is at best unasked-for disclosure.
        malformed("expected exactly one document")
    document = as_map(documents[0], "document")
    doc_type = as_text(document.get("docType"), "docType")
    issuer_signed = as_map(document.get("issuerSigned"), "issuerSigned")
    issuer_auth = parse_sign1(issuer_signed.get("issuerAuth"), "issuerAuth")
    device_tag, device_value, device_signature = _device_signed(document)
    return Document(
        doc_type=doc_type,
        items=_issuer_items(issuer_signed),
        issuer_auth=issuer_auth,
        device_namespaces=device_tag,
        device_elements=_device_elements(device_value),
        device_signature=device_signature,
    )


def _digests(value: Any) -> Mapping[str, Mapping[int, bytes]]:
    out: dict[str, Mapping[int, bytes]] = {}
    for namespace, digests in as_map(value, "valueDigests").items():
        ns = as_text(namespace, "valueDigests nameSpace")
        entries: dict[int, bytes] = {}
        for digest_id, digest in as_map(digests, f"valueDigests {ns}").items():
            if not isinstance(digest_id, int) or isinstance(digest_id, bool):
                malformed("valueDigests: digestID must be an integer")
            entries[digest_id] = as_bytes(digest, "valueDigests digest")
        out[ns] = entries
    return out


def parse_mso(issuer_auth: CoseSign1) -> MobileSecurityObject:
    """The MSO inside ``issuerAuth``'s payload (``#6.24(bstr .cbor MobileSecurityObject)``)."""
    if issuer_auth.payload is None:
        malformed("issuerAuth has no payload")
    _, value = embedded(decode(issuer_auth.payload), "MobileSecurityObjectBytes")
    mso = as_map(value, "MobileSecurityObject")
    validity = as_map(mso.get("validityInfo"), "validityInfo")
    update = validity.get("expectedUpdate")
    device_key_info = as_map(mso.get("deviceKeyInfo"), "deviceKeyInfo")
    status = mso.get("status")
    return MobileSecurityObject(
        digest_algorithm=as_text(mso.get("digestAlgorithm"), "digestAlgorithm"),
        value_digests=_digests(mso.get("valueDigests")),
        device_key=device_key_info.get("deviceKey"),
        doc_type=as_text(mso.get("docType"), "MSO docType"),
        validity=ValidityInfo(
            signed=as_datetime(validity.get("signed"), "signed"),
            valid_from=as_datetime(validity.get("validFrom"), "validFrom"),
            valid_until=as_datetime(validity.get("validUntil"), "validUntil"),
            expected_update=None if update is None else as_datetime(update, "expectedUpdate"),
        ),
        status=None if status is None else as_map(status, "status"),
    )
