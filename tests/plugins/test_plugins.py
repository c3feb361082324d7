"""gateway.plugins: kinds come from the `agegate.verifiers` entry-point group, built-in or not."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from gateway import plugins
from gateway.errors import ConfigError
from gateway.plugins import ENTRY_POINT_GROUP, installed_kinds, load_verifiers
from gateway.session.keys import generate_key_line
from tests.support.gateway import GatewayProcess
from tests.support.rawhttp import request
from tests.support.upstream import UpstreamServer
from verifiers.age_token import AgeTokenVerifier
from verifiers.base import (
    AssuranceLevel,
    ChallengeContext,
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


async def test_third_party_verifier_keeps_the_contract_defaults(example_plugin: None) -> None:
    """The example overrides only verify and api_challenge: the rest comes from Verifier."""
    verifier = load_verifiers({"demo": {"kind": "example-kind"}}, VerifierServices())["demo"]
    assert type(verifier).__module__ == "agegate_example_plugin"
    assert (verifier.label, verifier.response_mode, verifier.max_session_ttl) == (
        "demo",
        "form_post",
        None,
    )
    ctx = ChallengeContext(
        public_origin="https://a.example",
        redirect_uri="https://a.example/.agegate/callback/demo",
        nonce="n",
        state="s",
        min_age=18,
        assurance=AssuranceLevel.BASIC,
    )
    assert verifier.start(ctx).redirect_url is None  # no browser button
    assert await verifier.warm() is None
    assert await verifier.aclose() is None
    assert verifier.api_challenge(18) == ['Example threshold="18"']
    assert list(verifier.api_challenge(21)) == []  # cannot prove 21: offers nothing


def test_third_party_shared_settings_are_parsed(example_plugin: None) -> None:
    config = {
        "kind": "example-kind",
        "label": " Example Age ",
        "max_session_ttl": "5m",
        "assurance_level": "standard",
        "response_mode": "query",
    }
    verifier = load_verifiers({"demo": config}, VerifierServices())["demo"]
    assert (verifier.label, verifier.max_session_ttl, verifier.response_mode) == (
        "Example Age",
        300.0,
        "query",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"treshold": 18}, r"treshold: unknown setting; did you mean 'threshold'\?"),
        ({"lable": "x"}, r"lable: unknown setting; did you mean 'label'\?"),
        ({"response_mode": "fragment"}, r"response_mode: expected one of form_post, query"),
        ({"max_session_ttl": "0s"}, r"max_session_ttl: must be greater than zero"),
        ({"label": ""}, r"label: expected a non-empty string"),
        ({"threshold": True}, r"threshold: expected an integer"),
    ],
)
def test_third_party_config_errors_name_verifier_and_key(
    example_plugin: None, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^verifiers\.demo: {message}"):
        load_verifiers({"demo": {"kind": "example-kind", **change}}, VerifierServices())


class _NotAVerifier:
    """Has every attribute a verifier has, but does not subclass Verifier."""

    kind = "duck"
    auth_scheme = None

    def __init__(self, name: str, config: Mapping[str, Any], services: VerifierServices) -> None:
        self.name, self.label, self.response_mode, self.max_session_ttl = name, name, "query", None


def test_a_factory_returning_a_non_verifier_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = importlib.metadata.EntryPoint(
        name="duck", value=f"{__name__}:_NotAVerifier", group=ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(plugins, "_entry_points", lambda: {"duck": entry})
    with pytest.raises(ConfigError, match=r"^verifiers\.d: kind: .* verifiers\.base\.Verifier$"):
        load_verifiers({"d": {"kind": "duck"}}, VerifierServices())


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


EXAMPLE_POLICY = """
version: 1
routes:
  - {name: wine, path: /echo/wine/**, min_age: 18, verifiers: [demo]}
  - {name: spirits, path: /echo/spirits/**, min_age: 21, verifiers: [demo]}
  - {name: rest, path: /**, action: allow}
"""


def test_plugin_answers_api_clients_in_a_running_gateway(plugin_site: Path, tmp_path: Path) -> None:
    """A real ``agegate run`` uses the plug-in's scheme, challenge and verify, and strips it."""
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": os.pathsep.join([str(plugin_site), str(root)])}
    upstream = UpstreamServer().start()
    verifiers = {"demo": {"kind": "example-kind", "threshold": 18}}
    try:
        with GatewayProcess(
            tmp_path,
            upstream=upstream.url,
            policy=EXAMPLE_POLICY,
            settings={"verifiers": verifiers},
            env=env,
        ) as gw:
            api = [(b"Accept", b"application/json")]
            challenged = request(gw.port, "GET", "/echo/wine/red", headers=api)
            assert challenged.status == 401
            offered = challenged.header_list("www-authenticate")
            assert 'Example threshold="18"' in offered
            assert any(value.startswith("AgeToken ") for value in offered)
            # The plug-in cannot prove 21, so it offers no challenge there.
            spirits = request(gw.port, "GET", "/echo/spirits/rum", headers=api)
            assert spirits.status == 401
            assert not any(v.startswith("Example") for v in spirits.header_list("www-authenticate"))

            proven = request(
                gw.port,
                "GET",
                "/echo/wine/red",
                headers=[*api, (b"Authorization", b"Example over-18")],
            )
            assert proven.status == 200, proven.text
            # Its scheme is a credential scheme: the site never sees the proof.
            assert "authorization" not in [name for name, _ in proven.json()["headers"]]

            refused = request(
                gw.port,
                "GET",
                "/echo/wine/red",
                headers=[*api, (b"Authorization", b"Example over-17")],
            )
            assert refused.status == 401
            assert refused.json()["reason"] == "bad_signature"
    finally:
        upstream.stop()
