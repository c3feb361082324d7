"""Settings: SPEC §9 keys, AGEGATE_* overrides, errors naming file and key."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.session.keys import generate_key_line, key_id, parse_key_lines
from gateway.settings import Listen, load_settings, parse_settings

KEY = generate_key_line()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agegate.yaml"
    path.write_text(text)
    return path


def test_spec_example_parses(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "session.keys").write_text(f"# current\n{KEY}\n")
    path = write(
        tmp_path,
        """
listen: 127.0.0.1:8080
admin_listen: 127.0.0.1:9901
public_origin: http://localhost:8080
upstream: http://127.0.0.1:9000
hosts: [localhost]
trusted_proxies: [127.0.0.1/32]
jurisdiction_header: null
session_keys_file: keys/session.keys
store: memory://
policy: policies/example.yaml
verifiers:
  reference-token:
    kind: age-token
    issuer: http://localhost:8081
    jwks_uri: http://localhost:8081/.well-known/jwks.json
log: {format: json, level: info}
""",
    )
    settings = load_settings(path, environ={})
    assert settings.listen == Listen("127.0.0.1", 8080)
    assert settings.admin_listen == Listen("127.0.0.1", 9901)
    assert settings.public_origin == "http://localhost:8080"
    assert settings.hosts == frozenset({"localhost"})
    assert settings.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"),)
    assert len(settings.session_keys) == 1
    assert settings.policy == tmp_path / "policies/example.yaml"  # relative to the file
    assert settings.verifiers["reference-token"]["kind"] == "age-token"
    assert settings.log.format == "json"


def test_unknown_key_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: 127.0.0.1:8080\nupstreams: http://x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)
    assert "upstreams" in str(info.value)


def test_duplicate_key_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    # PyYAML's safe_load kept the last one silently: the first listen went unseen.
    path = write(tmp_path, "listen: 127.0.0.1:8080\nupstream: http://x\nlisten: 0.0.0.0:80\n")
    with pytest.raises(ConfigError, match="duplicate key 'listen'") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)
    assert "line 3" in str(info.value)


def test_settings_file_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "agegate.yaml"
    path.write_bytes(b"upstream: http://\xff\n")
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("listen: localhost\n", "listen"),
        ("listen: 127.0.0.1:70000\n", "listen"),
        ("public_origin: shop.example\n", "public_origin"),
        ("public_origin: https://shop.example/path\n", "public_origin"),
        ("upstream: ftp://x\n", "upstream"),
        ("trusted_proxies: [not-a-cidr]\n", "trusted_proxies"),
        ("store: postgres://x\n", "store"),
        ("log: {format: xml}\n", "log"),
        ("log_client_ip: full\n", "log_client_ip"),
        ("workers: 0\n", "workers"),
        ("upstream_read_timeout: soon\n", "upstream_read_timeout"),
        ("verifiers: {x: {issuer: y}}\n", "verifiers"),
        ("session_keys: not-a-key\n", "session_keys"),
        ("admin_listen: 127.0.0.1:8080\n", "admin_listen"),
        ("client_body_timeout: 0s\n", "client_body_timeout"),
        ("client_body_deadline: never\n", "client_body_deadline"),
        ("send_timeout: -1\n", "send_timeout"),
        ("request_buffer_size: 0\n", "request_buffer_size"),
        ("request_buffer_size: 17000000\n", "request_buffer_size"),
        ("upstream_max_connections: none\n", "upstream_max_connections"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.key == key
    assert str(path) in str(info.value)


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: [oops\n")
    with pytest.raises(ConfigError, match="line"):
        load_settings(path, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", environ={})


def test_environment_overrides_scalars_and_lists(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: 127.0.0.1:8080\n")
    env = {
        "AGEGATE_LISTEN": "127.0.0.1:9999",
        "AGEGATE_HOSTS": "shop.example, www.shop.example",
        "AGEGATE_TRUSTED_PROXIES": "10.0.0.0/8",
        "AGEGATE_SESSION_KEYS": KEY,
        "AGEGATE_FORWARD_CLIENT_IP": "false",
    }
    settings = load_settings(path, environ=env)
    assert settings.listen.port == 9999
    assert settings.hosts == {"shop.example", "www.shop.example"}
    assert settings.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.session_keys == parse_key_lines(KEY)
    assert settings.forward_client_ip is False


def test_slow_client_limits_have_defaults_and_environment_overrides() -> None:
    defaults = parse_settings({}, environ={})
    assert defaults.client_body_timeout == 10.0
    assert defaults.client_body_deadline == 60.0
    assert defaults.send_timeout == 30.0
    assert defaults.request_buffer_size == 64 * 1024
    assert defaults.upstream_max_connections == 100
    env = {
        "AGEGATE_CLIENT_BODY_TIMEOUT": "2s",
        "AGEGATE_CLIENT_BODY_DEADLINE": "2m",
        "AGEGATE_SEND_TIMEOUT": "500ms",
        "AGEGATE_REQUEST_BUFFER_SIZE": "1048576",
        "AGEGATE_UPSTREAM_MAX_CONNECTIONS": "8",
    }
    settings = parse_settings({}, environ=env)
    assert settings.client_body_timeout == 2.0
    assert settings.client_body_deadline == 120.0
    assert settings.send_timeout == 0.5
    assert settings.request_buffer_size == 1024 * 1024
    assert settings.upstream_max_connections == 8


@given(st.one_of(st.integers(), st.text(max_size=12), st.floats(allow_nan=False)))
def test_slow_client_timeouts_are_positive_durations_or_errors_naming_the_key(
    value: object,
) -> None:
    try:
        settings = parse_settings({"send_timeout": value}, environ={})
    except ConfigError as exc:
        assert exc.key == "send_timeout"
    else:
        assert 0 < settings.send_timeout < 1e9


@given(st.one_of(st.integers(), st.text(max_size=12)))
def test_request_buffer_size_is_a_bounded_positive_count_or_an_error(value: object) -> None:
    try:
        settings = parse_settings({"request_buffer_size": value}, environ={})
    except ConfigError as exc:
        assert exc.key == "request_buffer_size"
    else:
        assert 0 < settings.request_buffer_size <= 16 * 1024 * 1024


def test_environment_error_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"AGEGATE_WORKERS": "many"})
    assert "AGEGATE_WORKERS" in str(info.value)


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: 127.0.0.1:8181\n")
    settings = load_settings(None, environ={"AGEGATE_CONFIG": str(path)})
    assert settings.listen.port == 8181


def test_hosts_default_to_public_origin_host() -> None:
    settings = parse_settings({"public_origin": "https://Shop.Example:8443"}, environ={})
    assert settings.hosts == {"shop.example"}
    assert settings.public_origin == "https://shop.example:8443"


def test_hosts_are_read_by_the_request_parser() -> None:
    # The same normal form the gateway matches a Host against (gateway/core/hosts.py).
    settings = parse_settings({"hosts": ["Shop.Example.", "[::1]", "0:0::2"]}, environ={})
    assert settings.hosts == {"shop.example", "::1", "::2"}


@pytest.mark.parametrize("host", ["shop_x.example", "shop.example:8080", "[shop]", "a b", ""])
def test_malformed_hosts_setting_names_the_key(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings({"hosts": [host]}, environ={})
    assert info.value.key == "hosts"


def test_empty_trusted_proxies_trusts_no_one() -> None:
    assert parse_settings({}, environ={}).trusted_proxies == ()


def test_key_file_rotation_order_and_padding(tmp_path: Path) -> None:
    new, old = generate_key_line(), generate_key_line()
    (tmp_path / "k").write_text(f"# newest first\n{new}\n{old}==\n\n")
    settings = parse_settings({"session_keys_file": "k"}, environ={}, base_dir=tmp_path)
    assert [key_id(k) for k in settings.session_keys] == [
        key_id(k) for k in parse_key_lines(f"{new}\n{old}")
    ]


def test_key_lines_refuse_short_keys_with_line_number() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_key_lines(f"{KEY}\nshort\n")


def test_generated_keys_are_43_unpadded_characters_and_distinct() -> None:
    lines = {generate_key_line() for _ in range(20)}
    assert len(lines) == 20
    assert all(len(line) == 43 and "=" not in line for line in lines)
    assert all(len(parse_key_lines(line)[0]) == 32 for line in lines)


def test_session_revocation_defaults_on_and_is_validated() -> None:
    assert parse_settings({}, environ={}).session_revocation is True
    assert parse_settings({"session_revocation": False}, environ={}).session_revocation is False
    off = load_settings(None, environ={"AGEGATE_SESSION_REVOCATION": "off"})
    assert off.session_revocation is False
    with pytest.raises(ConfigError) as info:
        parse_settings({"session_revocation": "sometimes"}, environ={})
    assert "session_revocation" in str(info.value)
