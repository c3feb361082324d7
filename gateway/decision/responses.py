"""Saying a decision in HTTP (SPEC §6), for proxy mode and forward-auth alike.

- challenge: ``303`` to ``/.agegate/verify?return=…`` for browser navigations
  (GET/HEAD accepting HTML), otherwise ``401`` with one ``WWW-Authenticate``
  challenge per scheme the route accepts (``AgeToken`` with a fresh nonce,
  plus plug-in schemes such as ``PrivateToken``) and a problem body;
- deny: ``403`` (a refusal page for visitors proven under age);
- refusal of a presented credential: its status and reason, no session.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from urllib.parse import quote

from gateway.core.pages import refusal_page
from gateway.core.problem import send_problem, send_response, wants_html
from gateway.decision.evaluate import Refusal
from gateway.policy import Decision, Outcome, Requirement
from gateway.session.nonces import NonceIssuer
from gateway.types import Send
from verifiers.base import Verifier

__all__ = ["AGEGATE_PREFIX", "Responder", "is_navigation"]

AGEGATE_PREFIX = "/.agegate"


def is_navigation(method: str, accept: bytes | None) -> bool:
    """A browser navigation: GET or HEAD that accepts HTML."""
    return method in ("GET", "HEAD") and wants_html(accept)


class Responder:
    """Builds challenge, deny and refusal responses.

    ``public_origin`` is the realm and the base of ``verify_url``; ``verifiers`` may be
    filled after construction (the runtime loads them at start-up).
    """

    def __init__(
        self, *, public_origin: str, nonces: NonceIssuer, verifiers: Mapping[str, Verifier]
    ) -> None:
        self.public_origin = public_origin
        self.nonces = nonces
        self.verifiers = verifiers

    def verify_location(self, path: str, query: bytes) -> str:
        """Where a browser goes to prove its age, returning to ``path?query`` afterwards."""
        back = path + ("?" + query.decode("latin-1") if query else "")
        return f"{AGEGATE_PREFIX}/verify?return={quote(back, safe='/')}"

    def www_authenticate(
        self, requirement: Requirement | None, error: str | None = None
    ) -> list[tuple[bytes, bytes]]:
        """One ``WWW-Authenticate`` header per scheme the route accepts."""
        min_age = requirement.min_age if requirement else 18
        nonce = self.nonces.issue(time.time())
        age_token = f'AgeToken realm="{self.public_origin}", nonce="{nonce}", min_age="{min_age}"'
        if error:
            age_token += f', error="{error}"'
        values = [age_token]
        for name in requirement.verifiers if requirement else ():
            verifier = self.verifiers.get(name)
            if verifier is not None:
                # A plug-in offers several challenges (one per key, say), or none.
                values.extend(verifier.api_challenge(min_age))
        return [(b"www-authenticate", value.encode("latin-1")) for value in values]

    async def challenge(
        self,
        send: Send,
        decision: Decision,
        *,
        method: str,
        accept: bytes | None,
        path: str,
        query: bytes,
        redirect_browsers: bool = True,
    ) -> int:
        """Send the challenge for ``decision``; returns the status sent."""
        head = method == "HEAD"
        if redirect_browsers and is_navigation(method, accept):
            location = self.verify_location(path, query)
            await send_response(
                send, 303, b"", b"text/plain", [(b"location", location.encode("ascii"))], head=head
            )
            return 303
        requirement = decision.requirement
        min_age = requirement.min_age if requirement else 18
        await send_problem(
            send,
            401,
            decision.reason,
            f"this resource requires proof of age {min_age} or over",
            accept=accept,
            head=head,
            headers=self.www_authenticate(requirement),
            min_age=min_age,
            assurance=requirement.assurance.label if requirement else None,
            verify_url=self.public_origin + self.verify_location(path, query),
        )
        return 401

    async def answer(
        self,
        send: Send,
        decision: Decision,
        *,
        method: str,
        accept: bytes | None,
        path: str,
        query: bytes,
    ) -> int:
        """Send the challenge or the refusal for a decision that does not allow."""
        if decision.effective is Outcome.CHALLENGE:
            return await self.challenge(
                send, decision, method=method, accept=accept, path=path, query=query
            )
        return await self.deny(send, decision, method=method, accept=accept)

    async def deny(
        self, send: Send, decision: Decision, *, method: str, accept: bytes | None
    ) -> int:
        head = method == "HEAD"
        requirement = decision.requirement
        if decision.reason == "proven_under" and requirement and wants_html(accept):
            page = refusal_page(requirement.min_age)
            await send_response(send, 403, page, b"text/html; charset=utf-8", head=head)
            return 403
        detail = (
            "you have shown that you are under the age this page requires"
            if decision.reason == "proven_under"
            else "access to this path is denied"
        )
        await send_problem(send, 403, decision.reason, detail, accept=accept, head=head)
        return 403

    async def refusal(
        self,
        send: Send,
        refusal: Refusal,
        decision_hint: Decision | None,
        *,
        method: str,
        accept: bytes | None,
    ) -> int:
        headers: list[tuple[bytes, bytes]] = []
        if refusal.retry_after is not None:
            headers.append((b"retry-after", str(refusal.retry_after).encode()))
        if refusal.status == 401:
            requirement = decision_hint.requirement if decision_hint else None
            headers += self.www_authenticate(requirement, error="invalid_token")
        await send_problem(
            send,
            refusal.status,
            refusal.reason,
            refusal.detail,
            accept=accept,
            head=method == "HEAD",
            headers=headers,
        )
        return refusal.status
