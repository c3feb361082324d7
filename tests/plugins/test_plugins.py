"""gateway.plugins: kinds come from the `agegate.verifiers` entry-point group, built-in or not."""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import subprocess
import sys
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example distribution installed into a throwaway directory, never the user's venv.

    ``pip install --target`` leaves the package and its ``dist-info`` (with
    ``entry_points.txt``) there, exactly as in site-packages: putting the
    directory on the path is all a process needs to discover the kind.
    """
    root = tmp_path_factory.mktemp("plugin")
    source = root / "src"
    # A copy: pip builds in the source tree, which must stay clean (and may be shared).
    shutil.copytree(PLUGIN_DIR, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run(
        [*pip, "--target", str(site), str(source)],
        check=True,
        timeout=300,
    )
    return site


@pytest.fixture
def example_plugin(plugin_site: Path) -> Iterator[None]:
    """The example distribution discoverable in this process, for one test."""
    sys.path.insert(0, str(plugin_site))
    importlib.invalidate_caches()
    try:
        found = importlib.metadata.distribution("agegate-example-plugin")
        # First on the path wins: discovery really reads the throwaway install.
        assert Path(str(found.locate_file(""))).resolve() == plugin_site.resolve()
        yield
    finally:
        sys.path.remove(str(plugin_site))
        sys.modules.pop("agegate_example_plugin", None)
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


def test_plugin_is_discovered_by_a_gateway_process(plugin_site: Path, tmp_path: Path) -> None:
    """A separate ``agegate`` process finds the kind through PYTHONPATH alone."""
    import json
    import os

    from gateway.session.keys import generate_key_line

    (tmp_path / "policy.yaml").write_text(
        "version: 1\nroutes:\n"
        "  - {name: wine, path: /wine/**, min_age: 18, verifiers: [demo]}\n"
        "  - {name: rest, path: /**, action: allow}\n"
    )
    config = {
        "policy": "policy.yaml",
        "verifiers": {"demo": {"kind": "example-kind", "threshold": 16}},
    }
    (tmp_path / "agegate.yaml").write_text(json.dumps(config))
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "AGEGATE_SESSION_KEYS": generate_key_line(),
        "PYTHONPATH": os.pathsep.join([str(plugin_site), str(root)]),
    }
    command = [sys.executable, "-m", "gateway.cli.main", "config", "check", "--config"]
    result = subprocess.run(
        [*command, str(tmp_path / "agegate.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "1 verifier(s)" in result.stdout
    located = subprocess.run(
        [sys.executable, "-c", "import agegate_example_plugin as p; print(p.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert Path(located.stdout.strip()).resolve().is_relative_to(plugin_site.resolve())
