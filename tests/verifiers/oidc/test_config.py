"""Config parsing of the ``oidc`` verifier: every error names its key; secrets never in YAML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey, RSAKey

from verifiers.oidc.config import parse_config

ISSUER = "https://op.example"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("s3cret\n")
    return path


def base(secret_file: Path, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "oidc",
        "issuer": ISSUER,
        "client_id": "agegate",
        "client_secret_file": str(secret_file),
        "age_scope": "age",
        "age_claims": {"age_over_18": 18},
        **extra,
    }


def test_a_minimal_config_parses(secret_file: Path) -> None:
    config = parse_config("op", base(secret_file))
    assert config.scope == "openid age"
    assert config.client_secret == "s3cret"
    assert config.claims.proven_value is True and config.claims.refuted_value is False
    assert config.auth_method == "client_secret_basic"
    assert "s3cret" not in repr(config)


def test_secret_from_the_environment(secret_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OP_SECRET", "from-env")
    raw = base(secret_file, client_secret_env="OP_SECRET")
    del raw["client_secret_file"]
    assert parse_config("op", raw).client_secret == "from-env"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"client_secret": "plain"}, "client_secret"),  # unknown key: never in YAML
        ({"issuer": "http://op.example"}, "issuer"),
        ({"issuer": None}, "issuer"),
        ({"client_id": ""}, "client_id"),
        ({"client_secret_file": "/no/such/file"}, "client_secret_file"),
        ({"client_secret_env": "ALSO"}, "client_secret_file"),
        ({"token_endpoint_auth_method": "client_secret_post"}, "token_endpoint_auth_method"),
        ({"age_scope": "openid age"}, "age_scope"),
        ({"age_claims": {}}, "age_claims"),
        ({"age_claims": {"a..b": 18}}, "age_claims"),
        ({"proven_value": None}, "proven_value"),
        ({"refuted_value": True}, "refuted_value"),
        ({"use_userinfo": "yes"}, "use_userinfo"),
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"authorize_url": "https://op.example/auth"}, "authorize_url"),
        ({"jwks_max_stale": "soon"}, "jwks_max_stale"),
        ({"client_key_file": "key.pem"}, "client_key_file"),
    ],
)
def test_errors_name_the_key(secret_file: Path, change: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_config("op", base(secret_file, **change))
    assert str(error.value).startswith(f"{key}:"), str(error.value)


@pytest.mark.parametrize("kind", ["ec-pem", "ec-jwk", "rsa-pem"])
def test_private_key_jwt_loads_pem_or_jwk(tmp_path: Path, secret_file: Path, kind: str) -> None:
    key_file = tmp_path / "client.key"
    if kind == "rsa-pem":
        key_file.write_bytes(RSAKey.generate_key(2048).as_pem(private=True))
    else:
        ec = ECKey.generate_key("P-256")
        key_file.write_bytes(
            ec.as_pem(private=True)
            if kind == "ec-pem"
            else json.dumps(ec.as_dict(private=True)).encode()
        )
    raw = base(
        secret_file, token_endpoint_auth_method="private_key_jwt", client_key_file=str(key_file)
    )
    del raw["client_secret_file"]
    config = parse_config("op", raw)
    assert config.client_key is not None and config.client_key.is_private
    assert config.client_key_alg == ("PS256" if kind == "rsa-pem" else "ES256")


def test_a_public_key_is_not_a_client_key(tmp_path: Path, secret_file: Path) -> None:
    key_file = tmp_path / "client.pub"
    key_file.write_bytes(ECKey.generate_key("P-256").as_pem(private=False))
    raw = base(
        secret_file, token_endpoint_auth_method="private_key_jwt", client_key_file=str(key_file)
    )
    del raw["client_secret_file"]
    with pytest.raises(ValueError, match=r"^client_key_file:"):
        parse_config("op", raw)


SETTINGS = st.dictionaries(
    st.sampled_from(
        ["issuer", "client_id", "age_scope", "age_claims", "proven_value", "refuted_value",
         "use_userinfo", "algorithms", "discovery_ttl", "timeout", "response_mode", "label"]
    ),
    st.one_of(
        st.none(), st.booleans(), st.integers(-5, 200), st.text(max_size=20),
        st.lists(st.text(max_size=8), max_size=3),
        st.dictionaries(st.text(max_size=10), st.integers(0, 120), max_size=3),
    ),
)  # fmt: skip


@given(SETTINGS)
def test_any_settings_parse_or_raise_a_value_error_naming_a_key(changes: dict[str, Any]) -> None:
    raw: dict[str, Any] = {
        "kind": "oidc", "issuer": ISSUER, "client_id": "agegate", "client_secret_env": "HOME",
        "age_claims": {"age_over_18": 18}, **changes,
    }  # fmt: skip
    try:
        parse_config("op", raw)
    except ValueError as error:
        assert str(error).split(":", 1)[0] in {*raw, "client_secret_file", "client_secret_env"}
