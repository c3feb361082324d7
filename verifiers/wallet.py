"""The contract between the gateway's OpenID4VP flow and the verifiers a wallet answers.

A wallet verifier (``eu-av`` mdoc, ``sd-jwt-vc``) is offered to browsers as an
OpenID4VP 1.0 request by value (``response_type=vp_token``,
``response_mode=direct_post``, a ``redirect_uri:`` client identifier, a DCQL
query).  The gateway builds that request, shows it as an ``openid4vp://``
link and a QR code, receives the wallet's ``direct_post`` and hands each
``vp_token`` entry to :meth:`Verifier.verify` as a :class:`Presentation` with
``channel == WALLET_CHANNEL`` and :data:`WALLET_EXTRA` keys in ``extra``; the
``VerifyContext.expected_nonce`` is the request's ``nonce``.

The verifier says what it asks for as a whole DCQL query
(:meth:`WalletVerifier.dcql_query`: by default its one
:meth:`WalletVerifier.credential_query`; a verifier offering alternatives,
like ``eu-av`` with ``accept_mdl``, adds Credential Queries and
``credential_sets``) and checks what comes back.  The gateway accepts a
``vp_token`` answering exactly one of the Credential Query ids the query
named, with exactly one presentation, and refuses anything else
(``unexpected_query``); which id was answered is not passed on, so
``verify`` must check the presentation's own type.  The key binding (KB-JWT
``aud`` and ``nonce``, the mdoc SessionTranscript) is to
``extra["client_id"]``, ``extra["response_uri"]`` and the nonce.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from verifiers.base import AgeAssertion, AssuranceLevel, Verifier

__all__ = ["WALLET_CHANNEL", "WALLET_EXTRA", "WalletVerifier"]

WALLET_CHANNEL = "wallet"
# Keys of ``Presentation.extra`` on the wallet channel.
WALLET_EXTRA = ("client_id", "response_uri")


class WalletVerifier(Verifier):
    """A verifier whose presentations arrive from a wallet over OpenID4VP ``direct_post``."""

    wallet_url: str | None = None
    """An ``https`` wallet entry point offered beside ``openid4vp://`` (a web wallet, or the
    demo's simulated one), called with the same request parameters; None offers none."""

    @abc.abstractmethod
    def credential_query(self, query_id: str, min_age: int) -> Mapping[str, Any]:
        """One DCQL Credential Query (``id`` = ``query_id``, ``format``, ``meta``, ``claims``).

        It asks for the age claim that proves ``min_age`` and nothing else.
        """

    def dcql_query(self, query_id: str, min_age: int) -> Mapping[str, Any]:
        """The whole DCQL query of the request: ``{"credentials": [...], ...}``.

        The default asks for :meth:`credential_query` alone; an override names
        each further Credential Query with its own ``id``.
        """
        return {"credentials": [self.credential_query(query_id, min_age)]}

    def credential_assertion(
        self,
        over: frozenset[int],
        under: frozenset[int],
        assurance: AssuranceLevel,
        now: float,
        valid_until: float,
    ) -> AgeAssertion:
        """What a checked credential proved: a session of :attr:`session_ttl`, never
        lasting past the credential's own validity (``valid_until``, epoch seconds)."""
        return AgeAssertion(
            age_over=over,
            age_under=under,
            assurance=assurance,
            method="digital_id",
            verifier=self.name,
            expires_at=datetime.fromtimestamp(min(now + self.session_ttl, valid_until), tz=UTC),
        )
