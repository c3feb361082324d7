"""The OpenID4VP 1.0 SessionTranscript (Appendix B.2.6.1) and the bytes a device signs.

    SessionTranscript = [null, null, OpenID4VPHandover]
    OpenID4VPHandover = ["OpenID4VPHandover", sha-256(OpenID4VPHandoverInfoBytes)]
    OpenID4VPHandoverInfo = [clientId, nonce, jwkThumbprint / null, responseUri]

``jwkThumbprint`` is null because agegate's ``direct_post`` responses are not
encrypted.  The wallet signs ``DeviceAuthenticationBytes`` (ISO 18013-5
§9.1.3.4) over this transcript, so a response made for another nonce,
``client_id`` or ``response_uri`` fails the device signature.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cbor2

from verifiers.mdoc.cbor import EMBEDDED_CBOR, encode

__all__ = [
    "HANDOVER_ID",
    "device_authentication_bytes",
    "handover_info_hash",
    "session_transcript",
]

HANDOVER_ID = "OpenID4VPHandover"


def handover_info_hash(
    client_id: str, nonce: str, response_uri: str, jwk_thumbprint: bytes | None = None
) -> bytes:
    """SHA-256 of the CBOR ``OpenID4VPHandoverInfo`` array."""
    info = [client_id, nonce, jwk_thumbprint, response_uri]
    return hashlib.sha256(encode(info)).digest()


def session_transcript(
    client_id: str, nonce: str, response_uri: str, jwk_thumbprint: bytes | None = None
) -> list[Any]:
    """The SessionTranscript array for a redirect (non-DC-API) OpenID4VP 1.0 request."""
    digest = handover_info_hash(client_id, nonce, response_uri, jwk_thumbprint)
    return [None, None, [HANDOVER_ID, digest]]


def device_authentication_bytes(
    transcript: Any, doc_type: str, device_namespaces: cbor2.CBORTag
) -> bytes:
    """``#6.24(bstr .cbor ["DeviceAuthentication", transcript, docType, DeviceNameSpacesBytes])``.

    ``device_namespaces`` is the tag-24 item exactly as the wallet sent it.
    """
    inner = encode(["DeviceAuthentication", transcript, doc_type, device_namespaces])
    return encode(cbor2.CBORTag(EMBEDDED_CBOR, inner))
