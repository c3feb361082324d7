"""Which id_token (or userinfo) claims carry which age thresholds, and what counts as proof.

An ``oidc`` verifier names its age claims by *path*: ``age_over_18`` is a
top-level claim, ``age_verification.result`` the member ``result`` of the
object ``age_verification``.  A path segment is a JSON member name without
dots; ``\\.`` would invite ambiguity between a dotted member name and a nested
one, so dotted member names are not supported (no provider uses them for age).

:func:`map_age_claims` reads only the configured paths and returns thresholds;
the caller drops the claims dict right after, so nothing else a provider sent
survives the callback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verifiers.base import VerificationError

__all__ = [
    "MAX_PATH_DEPTH",
    "AgeClaimMap",
    "ClaimValue",
    "map_age_claims",
    "parse_age_claims",
    "parse_claim_path",
    "parse_claim_value",
]

ClaimValue = bool | int | str
MAX_PATH_DEPTH = 4
# A JSON member name as providers spell claim names: no dots, no spaces, no controls.
_SEGMENT = re.compile(r"[A-Za-z0-9_:\-$]{1,64}")


def parse_claim_path(text: object) -> tuple[str, ...]:
    """``"age_verification.result"`` -> ``("age_verification", "result")``, or ``ValueError``."""
    if not isinstance(text, str) or not text:
        raise ValueError("expected a claim name or dotted path such as age_verification.result")
    segments = tuple(text.split("."))
    if len(segments) > MAX_PATH_DEPTH:
        raise ValueError(f"claim path {text!r} is deeper than {MAX_PATH_DEPTH} levels")
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise ValueError(
                f"claim path {text!r}: each part must be 1-64 of A-Z a-z 0-9 _ - : $ "
                "(dots separate parts)"
            )
    return segments


def parse_claim_value(key: str, value: object) -> ClaimValue:
    """A value a claim may be compared with: a boolean, an integer or a non-empty string."""
    if isinstance(value, bool | int) or (isinstance(value, str) and value):
        return value
    raise ValueError(f"{key}: expected true, false, an integer or a non-empty string")


@dataclass(frozen=True, slots=True)
class AgeClaimMap:
    """Paths to thresholds, plus the value meaning "proven" and the one meaning "proven not"."""

    paths: tuple[tuple[tuple[str, ...], int], ...]
    proven_value: ClaimValue = True
    refuted_value: ClaimValue | None = False

    @property
    def top_level_names(self) -> frozenset[str]:
        """The claim names a provider must release (the first segment of each path)."""
        return frozenset(path[0] for path, _ in self.paths)


def parse_age_claims(value: object) -> tuple[tuple[tuple[str, ...], int], ...]:
    """``{"age_over_18": 18, "age_verification.result": 18}`` -> parsed paths and thresholds."""
    if not isinstance(value, Mapping) or not value:
        raise ValueError("age_claims: expected a mapping of claim path to age threshold")
    parsed: list[tuple[tuple[str, ...], int]] = []
    for path_text, threshold in value.items():
        try:
            path = parse_claim_path(path_text)
        except ValueError as error:
            raise ValueError(f"age_claims: {error}") from None
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int)
            or not 1 <= threshold <= 99
        ):
            raise ValueError(f"age_claims: {path_text}: expected an age threshold from 1 to 99")
        parsed.append((path, threshold))
    return tuple(parsed)


def _lookup(claims: Mapping[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = claims
    for segment in path:
        if not isinstance(node, Mapping) or segment not in node:
            return False, None
        node = node[segment]
    return True, node


def _same(value: Any, expected: ClaimValue) -> bool:
    # ``1 == True`` in Python: a provider answering 1 where true is configured is a
    # different value, and a type mix-up must not prove an age.
    return type(value) is type(expected) and value == expected


def map_age_claims(
    mapping: AgeClaimMap, *sources: Mapping[str, Any]
) -> tuple[frozenset[int], frozenset[int]]:
    """Thresholds proven over and proven under, from the first source holding each path.

    Raises ``no_age_claim`` when no configured path is present in any source, and
    ``bad_claim`` when a present value is neither the proven nor the refuted value.
    Never includes a claim value in an error.
    """
    over: set[int] = set()
    under: set[int] = set()
    found = False
    for path, threshold in mapping.paths:
        for source in sources:
            present, value = _lookup(source, path)
            if not present:
                continue
            found = True
            if _same(value, mapping.proven_value):
                over.add(threshold)
            elif mapping.refuted_value is not None and _same(value, mapping.refuted_value):
                under.add(threshold)
            else:
                raise VerificationError("bad_claim", "an age claim has an unexpected value")
            break
    if not found:
        raise VerificationError("no_age_claim", "the provider released no configured age claim")
    if over & under:
        raise VerificationError("bad_claim", "the age claims contradict each other")
    return frozenset(over), frozenset(under)
