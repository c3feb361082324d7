"""The linkability check every wallet presentation passes (SPEC §3).

A credential that would let sites or its issuer link visits (a unique
identifier, a per-credential status-list index, a disclosed element other
than the age claim, a timestamp finer than a day, or the same credential seen
before within its validity) is refused or flagged, per the verifier's
``linkability`` setting.  A kind collects its findings as short stable codes
and calls :func:`enforce`; nothing of the credential itself is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Literal

from verifiers.base import VerificationError

__all__ = ["LINKABILITY_MODES", "LinkabilityMode", "enforce", "parse_mode"]

LinkabilityMode = Literal["refuse", "flag"]
LINKABILITY_MODES: tuple[LinkabilityMode, ...] = ("refuse", "flag")

_log = logging.getLogger("agegate.linkability")


def parse_mode(config: Mapping[str, Any]) -> LinkabilityMode:
    """The ``linkability`` setting (default ``refuse``); ``ValueError`` names the key."""
    value = config.get("linkability", "refuse")
    mode = next((m for m in LINKABILITY_MODES if m == value), None)
    if mode is None:
        raise ValueError(f"linkability: expected one of {', '.join(LINKABILITY_MODES)}")
    return mode


def enforce(findings: Collection[str], mode: LinkabilityMode, verifier: str) -> None:
    """Refuse (reason ``linkable_credential``) or log the findings, one code each.

    ``findings`` are codes such as ``status_index``, ``unique_id``,
    ``extra_element``, ``precise_timestamp``, ``seen_before``; empty passes.
    """
    if not findings:
        return
    codes = ",".join(sorted(set(findings)))
    if mode == "refuse":
        raise VerificationError("linkable_credential", f"linkable credential: {codes}")
    _log.warning(
        "linkable credential accepted (flag mode)", extra={"verifier": verifier, "findings": codes}
    )
