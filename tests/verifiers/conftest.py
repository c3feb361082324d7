"""Fixtures for the verifier tests: one provider key set on disk and a verifier reading it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.verifiers.tokens import Signer, make_signer, make_verifier, write_jwks
from verifiers.age_token import AgeTokenVerifier


@pytest.fixture(scope="session")
def signers() -> dict[str, Signer]:
    """One key per default algorithm (RSA generation is slow: once per session)."""
    return {alg: make_signer(alg) for alg in ("ES256", "ES384", "EdDSA", "PS256")}


@pytest.fixture
def signer(signers: dict[str, Signer]) -> Signer:
    return signers["ES256"]


@pytest.fixture
def jwks_path(tmp_path: Path, signers: dict[str, Signer]) -> Path:
    return write_jwks(tmp_path / "jwks.json", signers.values())


@pytest.fixture
def verifier(jwks_path: Path) -> AgeTokenVerifier:
    return make_verifier(jwks_path)
