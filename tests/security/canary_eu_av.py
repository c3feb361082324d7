"""The privacy canary's ``eu-av`` flows: a wallet answering the gateway's request with an mdoc.

Identity values ride in the mdoc as issuer-signed elements (disclosed:
refused; held back: accepted) and as device-signed elements (refused); the
accepted flow goes same-device through the completion URL to the protected
page.  Every DeviceResponse, the issuerAuth's MSO hash (the seen-before
fingerprint, before the store's HMAC), the device key, the state, the nonce
and the response code are secrets the scan must not find.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.security.canary import Run, Setup, answer_wallet, canary, complete_wallet_session
from tests.support.eu_av import EU_AV_POLICY, eu_av_verifiers
from verifiers.reference.mdoc import Defects, IssuedMdoc, MdocTestIssuer
from verifiers.reference.wallet import Wallet

__all__ = ["drive_eu_av", "prepare_eu_av"]

# The test IACA of each canary gateway, by its port (prepare -> drive).
_ISSUERS: dict[int, MdocTestIssuer] = {}


def prepare_eu_av(stack: ExitStack, directory: Path, port: int) -> Setup:
    """A gateway with ``test-token`` and the ``eu-av`` wallet verifier trusting a test IACA."""
    issuer = MdocTestIssuer.generate()
    anchors = directory / "iaca.pem"
    anchors.write_bytes(issuer.trust_anchor_pem())
    _ISSUERS[port] = issuer
    stack.callback(_ISSUERS.pop, port, None)
    return Setup(policy=EU_AV_POLICY, settings={"verifiers": eu_av_verifiers(str(anchors))})


def _key_secrets(mdoc: IssuedMdoc) -> list[str]:
    """The device key and the issuerAuth's payload, spelled the ways a leak might spell them."""
    point = mdoc.device_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    x = point[1:33]
    payload = mdoc.issuer_auth[2]
    return [
        point.hex(),
        x.hex(),
        base64.urlsafe_b64encode(x).decode().rstrip("="),
        base64.b64encode(x).decode().rstrip("="),
        hashlib.sha256(payload).hexdigest(),
        base64.urlsafe_b64encode(hashlib.sha256(payload).digest()).decode().rstrip("="),
        mdoc.issuer_auth[3].hex(),  # the issuer's signature
    ]


def _answer(
    run: Run, path: str, mdoc: IssuedMdoc, **overrides: object
) -> tuple[str, int, dict[str, object]]:
    wallet = Wallet()
    wallet.add_mdoc(mdoc)
    return answer_wallet(run, path, wallet, overrides, lambda _: _key_secrets(mdoc))


def drive_eu_av(run: Run) -> None:
    """Refused responses carrying identity, then an accepted one to the protected page."""
    issuer = _ISSUERS[run.gw.port]
    query = canary("query")
    run.client_values.append(query)
    path = f"/echo/wine/red?who={quote(query)}"
    identity = {
        "family_name": run.identity["name"],
        "birth_date": run.identity["birthdate"],
        "email_address": run.identity["email"],
        "document_number": run.identity["document"],
    }
    # Identity disclosed from the issuer-signed elements: refused, whichever it is.
    for name in identity:
        mdoc = issuer.issue(extra_elements=identity)
        _, status, body = _answer(run, path, mdoc, disclose=[name])
        assert (status, body.get("reason")) == (400, "extra_disclosure"), body
    # Identity self-asserted in the device-signed elements: refused.
    defects = Defects(device_elements={"family_name": run.identity["name"]})
    _, status, body = _answer(run, path, issuer.issue(), defects=defects)
    assert (status, body.get("reason")) == (400, "extra_disclosure"), body
    # Identity held back: accepted, and only the threshold reaches the site.
    mdoc = issuer.issue(extra_elements=identity)
    cookie, status, body = _answer(run, path, mdoc)
    assert status == 200, body
    complete_wallet_session(run, path, cookie, body)
    # The same credential again: refused as linkable.
    _, status, body = _answer(run, path, mdoc)
    assert (status, body.get("reason")) == (400, "linkable_credential"), body
