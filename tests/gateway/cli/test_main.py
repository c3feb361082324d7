"""The ``agegate`` command line as a user runs it: real processes, exit codes, output."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.cli.main import main
from gateway.session.keys import generate_key_line, parse_key_lines
from tests.support.gateway import GatewayProcess
from tests.verifiers.tokens import (
    AUDIENCE,
    DROP,
    ISSUER,
    NONCE,
    good_claims,
    make_signer,
    pyjwt_token,
    write_jwks,
)
from verifiers import sdk
from verifiers.reference.mdoc import MdocTestIssuer

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "policies" / "example.yaml"


def agegate(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd or ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_policy_check_example_passes_its_embedded_tests() -> None:
    result = agegate("policy", "check", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "tests passed" in result.stdout


def test_policy_check_shadowed_rule_exits_1_naming_both_rules(tmp_path: Path) -> None:
    policy = tmp_path / "shadow.yaml"
    policy.write_text(
        "version: 1\ndefaults: {verifiers: [v]}\nroutes:\n"
        "  - {name: wine-all, path: /wine/**, min_age: 18}\n"
        "  - {name: wine-red, path: /wine/red, min_age: 21}\n"
        "  - {name: rest, path: /**, action: allow}\n"
    )
    result = agegate("policy", "check", str(policy))
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "wine-red" in output and "wine-all" in output
    assert str(policy) in output


def test_policy_check_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert agegate("policy", "check", str(tmp_path / "nope.yaml")).returncode == 2


def test_policy_explain_shows_canonical_path_and_rule() -> None:
    result = agegate(
        "policy", "explain", str(EXAMPLE), "GET https://shop.example/static/%2e%2e/wine/red"
    )
    assert result.returncode == 0, result.stderr
    assert "/wine/red" in result.stdout
    assert "wine" in result.stdout
    assert "challenge" in result.stdout
    allowed = agegate(
        "policy", "explain", str(EXAMPLE), "GET https://shop.example/wine/red", "--age-over", "18"
    )
    assert allowed.returncode == 0
    assert "allow" in allowed.stdout


def test_bad_arguments_exit_2() -> None:
    assert agegate("policy").returncode == 2
    assert agegate("nonsense").returncode == 2
    assert agegate("policy", "explain", str(EXAMPLE)).returncode == 2


def test_keys_generate_prints_a_loadable_key() -> None:
    result = agegate("keys", "generate")
    assert result.returncode == 0
    line = result.stdout.strip()
    assert len(line) == 43
    assert len(parse_key_lines(line)[0]) == 32


def write_config(tmp_path: Path, **extra: object) -> Path:
    from verifiers.reference.issuer import load_issuer_keys

    (tmp_path / "session.keys").write_text(generate_key_line() + "\n")
    load_issuer_keys(tmp_path / "pp", [18])
    (tmp_path / "jwks.json").write_text(
        json.dumps(sdk.jwks(ec.generate_private_key(ec.SECP256R1())))
    )
    (tmp_path / "iaca.pem").write_bytes(MdocTestIssuer.generate().trust_anchor_pem())
    config = {
        "session_keys_file": "session.keys",
        "policy": str(EXAMPLE),
        "verifiers": {
            "reference-token": {
                "kind": "age-token",
                "issuer": "https://i.test",
                "jwks_file": "jwks.json",
            },
            "reference-pp": {
                "kind": "privacy-pass",
                "issuer_name": "issuer.test",
                "token_keys": {"18": "pp/pp-18.spki.pem"},
            },
            "eu-wallet": {"kind": "sd-jwt-vc", "vct": ["urn:test"], "jwks_file": "jwks.json"},
            "eu-av-wallet": {"kind": "eu-av", "trust_anchors": "iaca.pem"},
        },
        **extra,
    }
    path = tmp_path / "agegate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_config_check_ok(tmp_path: Path) -> None:
    result = agegate("config", "check", "--config", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"workers": 2}, "redis://"),
        ({"listen": "nowhere"}, "listen"),
        ({"verifiers": {"x": {"kind": "no-such-kind"}}}, "no-such-kind"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_config_check_names_the_problem(
    tmp_path: Path, extra: dict[str, object], expected: str
) -> None:
    result = agegate("config", "check", "--config", str(write_config(tmp_path, **extra)))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_unknown_verifier_in_policy_is_a_finding(tmp_path: Path) -> None:
    config = write_config(tmp_path, verifiers={})
    result = agegate("config", "check", "--config", str(config))
    assert result.returncode == 1
    assert "reference-token" in result.stderr


def test_verifier_check_passes_a_conforming_token_and_reports_deviations(
    tmp_path: Path,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(sdk.jwks(key)))
    good = sdk.issue_age_token(
        key,
        issuer="https://i.test",
        audience="https://shop.example",
        nonce="n-123",
        age_over={18: True},
    )
    ok = agegate(
        "verifier",
        "check",
        "--issuer",
        "https://i.test",
        "--jwks",
        str(jwks),
        "--token",
        good,
        "--audience",
        "https://shop.example",
        "--nonce",
        "n-123",
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK")
    (tmp_path / "bad.jwt").write_text(good)
    bad = agegate(
        "verifier",
        "check",
        "--issuer",
        "https://other.test",
        "--jwks",
        str(jwks),
        "--token",
        f"@{tmp_path / 'bad.jwt'}",
        "--audience",
        "https://elsewhere",
        "--nonce",
        "n-999",
    )
    assert bad.returncode == 1
    for code in ("wrong_issuer", "wrong_audience", "wrong_nonce"):
        assert code in bad.stdout


def test_verifier_check_names_claims_never_values_and_exits_2_without_jwks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = make_signer()
    jwks = str(write_jwks(tmp_path / "jwks.json", [signer]))
    claims = good_claims(time.time(), sub="person-42", jti=DROP)
    token = pyjwt_token(signer, claims)
    common = ["verifier", "check", "--issuer", ISSUER, "--audience", AUDIENCE, "--nonce", NONCE]
    assert main([*common, "--jwks", jwks, "--token", token]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "FAIL missing_jti",
        "FAIL identity_claim",
    ]
    assert "person-42" not in "\n".join(lines)  # claim names, never values
    missing = str(tmp_path / "missing.json")
    assert main([*common, "--jwks", missing, "--token", token]) == 2
    assert "cannot load JWKS" in capsys.readouterr().err


def test_run_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    started = time.monotonic()
    result = agegate("run", "--config", str(write_config(tmp_path, upstream="ftp://x")))
    assert result.returncode == 2
    assert "upstream" in result.stderr
    assert time.monotonic() - started < 30


def write_policy(tmp_path: Path, verifier: str) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nroutes:\n"
        f"  - {{name: wine, path: /wine/**, min_age: 18, verifiers: [{verifier}]}}\n"
        "  - {name: rest, path: /**, action: allow}\n"
    )
    return policy


def test_policy_check_with_config_refuses_an_unknown_verifier_name(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    policy = write_policy(tmp_path, "reference-tokn")
    result = agegate("policy", "check", "--config", str(config), str(policy))
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(policy) in result.stderr
    assert "rule 'wine'" in result.stderr and "field 'verifiers'" in result.stderr
    assert "did you mean 'reference-token'?" in result.stderr
    # Without --config the names are not checked: the same file passes.
    assert agegate("policy", "check", str(policy)).returncode == 0


def test_policy_check_with_config_accepts_configured_verifier_names(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    policy = write_policy(tmp_path, "reference-token")
    result = agegate("policy", "check", "--config", str(config), str(policy))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK")


def test_policy_check_with_a_broken_config_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, surprise=1)
    result = agegate("policy", "check", "--config", str(config), str(EXAMPLE))
    assert result.returncode == 2
    assert "surprise" in result.stderr


def test_config_naming_a_missing_policy_file_is_a_configuration_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, policy="no-such-policy.yaml")
    for command in (("config", "check"), ("run",)):
        result = agegate(*command, "--config", str(config))
        assert result.returncode == 2, (command, result.stderr)
        assert "policy" in result.stderr and "no-such-policy.yaml" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("extra", "suggestion"),
    [
        ({"polcy": "p.yaml"}, "did you mean 'policy'?"),
        ({"admin_listn": "127.0.0.1:9999"}, "did you mean 'admin_listen'?"),
        (
            {"verifiers": {"t": {"kind": "age-token", "issuer": "https://i", "jwks_url": "x"}}},
            "did you mean 'jwks_uri'?",
        ),
        (
            {"verifiers": {"p": {"kind": "privacy-pass", "isuer_name": "i.test"}}},
            "did you mean 'issuer_name'?",
        ),
    ],
)
def test_unknown_settings_key_suggests_the_closest(
    tmp_path: Path, extra: dict[str, object], suggestion: str
) -> None:
    result = agegate("config", "check", "--config", str(write_config(tmp_path, **extra)))
    assert result.returncode == 2
    assert suggestion in result.stderr


def test_keys_generate_out_writes_a_file_only_its_owner_can_read(tmp_path: Path) -> None:
    out = tmp_path / "session.keys"
    result = agegate("keys", "generate", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    [key] = parse_key_lines(out.read_text())
    assert len(key) == 32
    # The key goes to the file only, not to a terminal or a CI log.
    assert out.read_text().strip() not in result.stdout + result.stderr


def test_keys_generate_out_refuses_to_overwrite_a_file(tmp_path: Path) -> None:
    out = tmp_path / "session.keys"
    old = generate_key_line() + "\n"
    out.write_text(old)
    result = agegate("keys", "generate", "--out", str(out))
    assert result.returncode == 2
    assert str(out) in result.stderr and "exists" in result.stderr
    assert out.read_text() == old


def test_config_check_warns_about_a_key_file_others_can_read(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    keys = tmp_path / "session.keys"
    os.chmod(keys, 0o644)
    result = agegate("config", "check", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "warning" in result.stderr and str(keys) in result.stderr
    os.chmod(keys, 0o600)
    quiet = agegate("config", "check", "--config", str(config))
    assert quiet.returncode == 0
    assert "warning" not in quiet.stderr


def test_run_announces_each_listener_once_and_warns_about_a_readable_key_file(
    tmp_path: Path,
) -> None:
    with GatewayProcess(tmp_path, upstream="http://127.0.0.1:9") as gateway:
        lines = gateway.log_lines()
    text = gateway.log_text()
    assert "Uvicorn running" not in text and "Started server process" not in text
    listening = [line for line in lines if line["event"] == "listening"]
    assert sorted((line["listener"], line["url"]) for line in listening) == [
        ("admin", gateway.admin_url),
        ("public", gateway.url),
    ]


def test_run_warns_about_a_key_file_others_can_read(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path, upstream="http://127.0.0.1:9")
    keys = tmp_path / "session.keys"
    os.chmod(keys, 0o644)
    with gateway:
        lines = gateway.log_lines()
    warnings = [line for line in lines if line["event"] == "key_file_readable"]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "warning" and warnings[0]["file"] == str(keys)


def test_shipped_examples_pass_config_and_policy_check(tmp_path: Path) -> None:
    keys = {"AGEGATE_SESSION_KEYS": generate_key_line()}
    checked = agegate("config", "check", "--config", "examples/agegate.yaml", env=keys)
    assert checked.returncode == 0, checked.stderr
    assert "1 verifier(s)" in checked.stdout
    assert agegate("policy", "check", "examples/policy.yaml").returncode == 0
    names = agegate(
        "policy", "check", "--config", "examples/agegate.yaml", "examples/policy.yaml", env=keys
    )
    assert names.returncode == 0, names.stderr
    # Paths in the settings resolve against the settings file, not the working directory.
    elsewhere = agegate(
        "config",
        "check",
        "--config",
        str(ROOT / "examples" / "agegate.yaml"),
        cwd=tmp_path,
        env=keys,
    )
    assert elsewhere.returncode == 0, elsewhere.stderr


def test_shipped_example_works_with_a_key_file_made_as_its_readme_says(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("*.keys"))
    made = agegate("keys", "generate", "--out", "examples/keys/session.keys", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    checked = agegate("config", "check", "--config", "examples/agegate.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "warning" not in checked.stderr
