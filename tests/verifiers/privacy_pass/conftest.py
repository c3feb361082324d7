"""Issuer keys are slow to make (2048-bit RSA): once per session."""

from __future__ import annotations

import pytest

from verifiers.reference.issuer import IssuerKey, generate_issuer_key


@pytest.fixture(scope="session")
def issuer_keys() -> dict[int, IssuerKey]:
    # Distinct truncated ids, as an issuer's keys have (random ones share it 1 time in 256).
    over18 = generate_issuer_key(18)
    return {18: over18, 21: generate_issuer_key(21, unlike=[over18])}


@pytest.fixture(scope="session")
def stranger_key() -> IssuerKey:
    """A key nobody configured."""
    return generate_issuer_key(18)
