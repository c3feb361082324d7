"""Issuer keys are slow to make (2048-bit RSA): once per session."""

from __future__ import annotations

import pytest

from verifiers.reference.issuer import IssuerKey, generate_issuer_key


@pytest.fixture(scope="session")
def issuer_keys() -> dict[int, IssuerKey]:
    return {18: generate_issuer_key(18), 21: generate_issuer_key(21)}


@pytest.fixture(scope="session")
def stranger_key() -> IssuerKey:
    """A key nobody configured."""
    return generate_issuer_key(18)
