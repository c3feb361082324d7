"""Fixtures: the test IACA (generated once) and a verifier trusting only it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.verifiers.mdoc.helpers import NOW_DT, make_verifier, write_anchors
from verifiers.mdoc import EuAvVerifier
from verifiers.reference.mdoc import MdocTestIssuer


@pytest.fixture(scope="session")
def issuer() -> MdocTestIssuer:
    return MdocTestIssuer.generate(now=NOW_DT)


@pytest.fixture(scope="session")
def stranger() -> MdocTestIssuer:
    """An issuer no verifier here trusts."""
    return MdocTestIssuer.generate(now=NOW_DT, name="some other IACA")


@pytest.fixture
def anchors(tmp_path: Path, issuer: MdocTestIssuer) -> Path:
    return write_anchors(tmp_path / "iaca.pem", issuer)


@pytest.fixture
def verifier(anchors: Path) -> EuAvVerifier:
    return make_verifier(anchors)
