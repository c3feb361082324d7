"""A gateway that offers the ``eu-av`` (mdoc) wallet verifier, its test IACA and a wallet.

::

    with EuAvSite(tmp_path, upstream.url) as site:
        site.hold(age_over={18: True})                 # the wallet's one mdoc
        challenge = wallet_challenge(site.gw)          # tests.support.wallet
        request = parse_request(challenge.request_uri)
        status, body = submit(request, site.wallet.answer(request))
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.gateway import GatewayProcess, token_verifier_settings
from tests.support.wallet import wallet_policy
from verifiers.reference.mdoc import AV_DOCTYPE, IssuedMdoc, MdocTestIssuer
from verifiers.reference.wallet import Wallet

__all__ = ["EU_AV_POLICY", "MDL_DOCTYPE", "MDL_NAMESPACE", "EuAvSite", "eu_av_verifiers"]

MDL_DOCTYPE = "org.iso.18013.5.1.mDL"
MDL_NAMESPACE = "org.iso.18013.5.1"
EU_AV_POLICY = wallet_policy("eu-av")


def eu_av_verifiers(anchors: str, **verifier: Any) -> dict[str, Any]:
    """``test-token`` and an ``eu-av`` verifier named ``eu-av`` trusting ``anchors``."""
    return {
        "test-token": token_verifier_settings(),
        "eu-av": {
            "kind": "eu-av",
            "label": "EU age verification",
            "trust_anchors": anchors,
            **verifier,
        },
    }


class EuAvSite:
    """A gateway process with verifiers ``test-token`` and ``eu-av``."""

    def __init__(
        self,
        directory: Path,
        upstream: str,
        settings: dict[str, Any] | None = None,
        **verifier: Any,
    ) -> None:
        self.issuer = MdocTestIssuer.generate()
        self.wallet = Wallet()
        (directory / "iaca.pem").write_bytes(self.issuer.trust_anchor_pem())
        self.gw = GatewayProcess(
            directory,
            upstream=upstream,
            policy=EU_AV_POLICY,
            settings={"verifiers": eu_av_verifiers("iaca.pem", **verifier), **(settings or {})},
        )

    def hold(self, *, mdl: bool = False, **issue: Any) -> IssuedMdoc:
        """Replace the wallet's credential with a fresh mdoc (seen-before is per credential)."""
        kind = {"doc_type": MDL_DOCTYPE, "namespace": MDL_NAMESPACE} if mdl else {}
        mdoc = self.issuer.issue(**{"doc_type": AV_DOCTYPE, **kind, **issue})
        self.wallet.credentials.clear()
        self.wallet.add_mdoc(mdoc)
        return mdoc

    def logs(self) -> str:
        return self.gw.log_text()

    def __enter__(self) -> EuAvSite:
        self.gw.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.gw.stop()
