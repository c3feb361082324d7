"""An example agegate verifier kind, ``example-kind``, installed as its own distribution.

It accepts the credential ``"over-<threshold>"`` and nothing else.  It imports
only :mod:`verifiers.base`, as every plug-in should.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from verifiers.base import (
    AgeAssertion,
    AssuranceLevel,
    Challenge,
    ChallengeContext,
    Presentation,
    VerificationError,
    VerifierServices,
    VerifyContext,
)

__all__ = ["ExampleVerifier"]


class ExampleVerifier:
    """``factory(name, config, services)`` as the ``agegate.verifiers`` group expects."""

    kind = "example-kind"

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        unknown = set(config) - {"kind", "threshold"}
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: unknown setting")
        threshold = config.get("threshold", 18)
        if not isinstance(threshold, int) or not 1 <= threshold <= 99:
            raise ValueError("threshold: expected an integer from 1 to 99")
        self.name = name
        self.threshold = threshold
        self.max_session_ttl: float | None = None
        self.services = services

    def start(self, ctx: ChallengeContext) -> Challenge:
        """No browser flow: API clients send the credential directly."""
        return Challenge()

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Accept exactly ``over-<threshold>``."""
        if presentation.credential != f"over-{self.threshold}":
            raise VerificationError("bad_signature", "not the example credential")
        return AgeAssertion(
            age_over=frozenset({self.threshold}),
            age_under=frozenset(),
            assurance=AssuranceLevel.ASSERTED,
            method="example",
            verifier=self.name,
            expires_at=datetime.fromtimestamp(ctx.now + 60, tz=UTC),
        )
