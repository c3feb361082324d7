"""gateway.plugins: kinds come from the `agegate.verifiers` entry-point group, built-in or not."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import plugins
from gateway.errors import ConfigError
from gateway.plugins import installed_kinds, load_verifiers
from verifiers.age_token import AgeTokenVerifier
from verifiers.base import (
    Presentation,
    VerificationError,
    Verifier,
    VerifierServices,
    VerifyContext,
)

PLUGIN_DIR = Path(__file__).parent / "agegate-example-plugin"


@pytest.fixture(scope="module")
def example_plugin() -> None:
    """The example distribution installed in this venv (`make test` installs it too)."""
    try:
        importlib.metadata.distribution("agegate-example-plugin")
    except importlib.metadata.PackageNotFoundError:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", str(PLUGIN_DIR)],
            check=True,
            timeout=300,
        )
        importlib.invalidate_caches()


def test_public_names_import() -> None:
    for name in plugins.__all__:
        assert getattr(plugins, name) is not None


def test_built_in_kind_is_registered_like_any_other() -> None:
    assert installed_kinds()["age-token"] == "verifiers.age_token:AgeTokenVerifier"


def test_third_party_kind_is_discovered(example_plugin: None) -> None:
    assert installed_kinds()["example-kind"] == "agegate_example_plugin:ExampleVerifier"
    loaded = load_verifiers(
        {"demo": {"kind": "example-kind", "threshold": 16}}, VerifierServices(base_dir=".")
    )
    verifier = loaded["demo"]
    assert isinstance(verifier, Verifier)
    assert (verifier.name, verifier.kind) == ("demo", "example-kind")


async def test_third_party_verifier_verifies(example_plugin: None) -> None:
    verifier = load_verifiers({"demo": {"kind": "example-kind"}}, VerifierServices())["demo"]
    ctx = VerifyContext(audience="https://a.example", expected_nonce=None, now=0.0, replay=None)  # type: ignore[arg-type]
    assertion = await verifier.verify(Presentation("over-18", "authorization"), ctx)
    assert assertion.age_over == frozenset({18})
    with pytest.raises(VerificationError):
        await verifier.verify(Presentation("over-21", "authorization"), ctx)


def test_built_in_kind_loads(tmp_path: Path) -> None:
    (tmp_path / "jwks.json").write_text('{"keys": []}')
    config = {"kind": "age-token", "issuer": "https://age.example", "jwks_file": "jwks.json"}
    loaded = load_verifiers({"tok": config}, VerifierServices(base_dir=str(tmp_path)))
    assert isinstance(loaded["tok"], AgeTokenVerifier)


def test_unknown_kind_names_verifier_kind_and_installed_kinds(example_plugin: None) -> None:
    with pytest.raises(ConfigError) as caught:
        load_verifiers({"wallet": {"kind": "no-such-kind"}}, VerifierServices())
    message = str(caught.value)
    assert "verifiers.wallet" in message
    assert "'no-such-kind'" in message
    assert "age-token" in message and "example-kind" in message


def test_missing_kind() -> None:
    with pytest.raises(ConfigError, match=r"verifiers\.x: kind: is required"):
        load_verifiers({"x": {"issuer": "https://age.example"}}, VerifierServices())


def test_factory_value_error_names_verifier_and_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_verifiers({"tok": {"kind": "age-token", "jwks_file": "x"}}, VerifierServices())
    assert str(caught.value) == "verifiers.tok: issuer: is required"
    assert caught.value.key == "verifiers.tok"


def test_third_party_value_error_is_wrapped(example_plugin: None) -> None:
    with pytest.raises(ConfigError, match=r"^verifiers\.demo: threshold: "):
        load_verifiers({"demo": {"kind": "example-kind", "threshold": 120}}, VerifierServices())
