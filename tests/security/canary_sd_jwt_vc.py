"""The privacy canary's ``sd-jwt-vc`` flows: a wallet answering the gateway's OpenID4VP request.

Identity values ride in the credential as selectively disclosable claims
(disclosed: refused; undisclosed: accepted) and in clear (refused); the
accepted flow goes same-device through the completion URL to the protected
page.  Every presentation, issuer JWT, KB-JWT, state, nonce and response
code is a secret the scan must not find.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

from tests.security.canary import Run, Setup, answer_wallet, canary, complete_wallet_session
from tests.support.gateway import token_verifier_settings
from tests.support.wallet import WALLET_POLICY
from verifiers.reference.sd_jwt_issuer import TEST_VCT, ReferenceSdJwtIssuer
from verifiers.reference.wallet import Wallet

__all__ = ["drive_sd_jwt_vc", "prepare_sd_jwt_vc"]

# The issuer and wallet of each canary gateway, by its port (prepare -> drive).
_PARTIES: dict[int, tuple[ReferenceSdJwtIssuer, Wallet]] = {}


def prepare_sd_jwt_vc(stack: ExitStack, directory: Path, port: int) -> Setup:
    """A gateway with ``test-token`` and the ``eu-pid`` wallet verifier trusting a test CA."""
    issuer, wallet = ReferenceSdJwtIssuer(), Wallet()
    anchors = directory / "anchors.pem"
    anchors.write_bytes(issuer.ca.pem())
    _PARTIES[port] = (issuer, wallet)
    stack.callback(_PARTIES.pop, port, None)
    verifiers = {
        "test-token": token_verifier_settings(),
        "eu-pid": {"kind": "sd-jwt-vc", "vct": [TEST_VCT], "trust_anchors": str(anchors)},
    }
    return Setup(policy=WALLET_POLICY, settings={"verifiers": verifiers})


def _answer(
    run: Run, path: str, issued: str, **overrides: object
) -> tuple[str, int, dict[str, object]]:
    wallet = _PARTIES[run.gw.port][1]
    wallet.credentials.clear()
    wallet.add("dc+sd-jwt", issued)
    return answer_wallet(
        run, path, wallet, overrides, lambda vp: [part for part in vp.split("~") if part]
    )


def drive_sd_jwt_vc(run: Run) -> None:
    """Refused presentations carrying identity, then an accepted one to the protected page."""
    issuer, wallet = _PARTIES[run.gw.port]
    query = canary("query")
    run.client_values.append(query)
    path = f"/echo/wine/red?who={quote(query)}"
    identity = {
        "family_name": run.identity["name"],
        "birthdate": run.identity["birthdate"],
        "email": run.identity["email"],
        "document_number": run.identity["document"],
    }
    holder = wallet.holder_jwk()
    # Identity disclosed: refused, whichever claim it is.
    for name in identity:
        issued = issuer.issue(holder, disclosed=identity)
        _, status, body = _answer(run, path, issued, disclose=[name])
        assert (status, body.get("reason")) == (400, "extra_disclosure"), body
    # Identity in clear: refused.
    issued = issuer.issue(holder, clear={"given_name": run.identity["name"]})
    _, status, body = _answer(run, path, issued)
    assert (status, body.get("reason")) == (400, "identity_claim"), body
    # Identity held back: accepted, and only the threshold reaches the site.
    issued = issuer.issue(holder, disclosed=identity)
    cookie, status, body = _answer(run, path, issued)
    assert status == 200, body
    complete_wallet_session(run, path, cookie, body)
    # The same credential again: refused as linkable.
    _, status, body = _answer(run, path, issued)
    assert (status, body.get("reason")) == (400, "linkable_credential"), body
