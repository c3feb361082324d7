"""An example agegate verifier kind, ``example-kind``, written exactly as docs/plugins.md says.

It answers ``Authorization: Example over-<threshold>`` and nothing else: where
a real kind checks a signature and records the token as spent, this one
compares a string.  It imports only :mod:`verifiers.base`, as every plug-in must.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from verifiers.base import (
    AgeAssertion,
    Presentation,
    VerificationError,
    Verifier,
    VerifierConfig,
    VerifierServices,
    VerifyContext,
)

__all__ = ["ExampleConfig", "ExampleVerifier", "parse_config"]

KIND = "example-kind"
DEFAULT_SESSION_TTL = 600.0


@dataclass(frozen=True, slots=True)
class ExampleConfig(VerifierConfig):
    """The shared settings plus this kind's own, ``threshold``."""

    threshold: int


def parse_config(name: str, config: Mapping[str, Any]) -> ExampleConfig:
    """Check every key once, at load; each ``ValueError`` message starts with its key."""
    shared = VerifierConfig.parse(name, config, kind=KIND, own_keys={"threshold"})
    threshold = config.get("threshold", 18)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 99:
        raise ValueError("threshold: expected an integer from 1 to 99")
    return ExampleConfig(**shared.shared(), threshold=threshold)


class ExampleVerifier(Verifier):
    """The ``example-kind`` factory: ``ExampleVerifier(name, config, services)``."""

    kind = KIND
    auth_scheme = "Example"

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.config = parse_config(name, config)
        super().__init__(name, self.config)

    def api_challenge(self, min_age: int, now: float | None = None) -> Sequence[str]:
        """Offered only where this verifier can prove the route's age."""
        if self.config.threshold < min_age:
            return ()
        return [f'Example threshold="{self.config.threshold}"']

    async def verify(self, presentation: Presentation, ctx: VerifyContext) -> AgeAssertion:
        """Accept exactly ``over-<threshold>``; anything else is refused with a reason code."""
        if presentation.credential != f"over-{self.config.threshold}":
            raise VerificationError("bad_signature", "not the example credential")
        ttl = self.max_session_ttl or DEFAULT_SESSION_TTL
        return AgeAssertion(
            age_over=frozenset({self.config.threshold}),
            age_under=frozenset(),
            assurance=self.config.assurance_level,
            method="example",
            verifier=self.name,
            expires_at=datetime.fromtimestamp(ctx.now + ttl, tz=UTC),
        )
