"""Settings: one ``agegate.yaml`` plus ``AGEGATE_<FIELD>`` overrides, parsed once.

Every error is a :class:`~gateway.errors.ConfigError` naming the file, the key
and the problem; unknown keys are errors.  Relative paths resolve against the
directory of the settings file.  The result is a frozen :class:`Settings`; the
request path never reads a dict.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.core.hosts import host_name
from gateway.errors import ConfigError
from gateway.policy.yamlfile import read_yaml
from verifiers.config import did_you_mean, parse_duration

__all__ = ["Listen", "LogSettings", "Settings", "load_settings", "parse_settings"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Listen:
    """A ``host:port`` to bind; ``[::1]:8080`` for IPv6."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: str = "json"  # json | text
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Settings:
    """Parsed settings; see SPEC §9 and docs/operator-guide.md for each field."""

    listen: Listen
    admin_listen: Listen
    authz_listen: Listen | None
    public_origin: str
    upstream: str
    hosts: frozenset[str]
    trusted_proxies: tuple[Network, ...]
    jurisdiction_header: str | None
    session_keys: tuple[bytes, ...]
    store: str
    policy: Path
    verifiers: Mapping[str, Mapping[str, Any]]
    log: LogSettings
    log_client_ip: str  # off | truncated
    allow_semicolons: bool
    forward_client_ip: bool
    upstream_connect_timeout: float
    upstream_read_timeout: float
    max_request_body: int
    request_buffer_size: int  # request bodies up to this are read whole before the upstream
    upstream_max_connections: int
    client_body_timeout: float
    client_body_deadline: float
    send_timeout: float
    rate_limit: int  # requests per minute per client on /.agegate/ endpoints; 0 = off
    workers: int
    redis_max_connections: int = 50  # per client per process (the feed has its own two)
    redis_connect_timeout: float = 0.5
    redis_socket_timeout: float = 0.5
    shutdown_timeout: float = 10.0  # SIGTERM: how long in-flight requests may take to finish
    session_keys_file: Path | None = None  # where session_keys were read from, if a file
    session_revocation: bool = True  # logout revokes server-side (gateway.session.revocation)
    fast_path: bool = True  # allowed bodyless GET/HEAD relayed without a task (gateway.proxy.fast)
    base_dir: Path = field(default=Path("."))
    source: str = "<defaults>"

    @property
    def audience(self) -> str:
        """The audience age tokens must name: the site's public origin."""
        return self.public_origin

    @property
    def cookie_secure(self) -> bool:
        """``__Host-`` cookies need ``Secure``; browsers accept it on http://localhost too."""
        return True


_DEFAULTS: dict[str, Any] = {
    "listen": "127.0.0.1:8080",
    "admin_listen": "127.0.0.1:9901",
    "authz_listen": None,
    "public_origin": "http://localhost:8080",
    "upstream": "http://127.0.0.1:9000",
    "hosts": None,
    "trusted_proxies": [],
    "jurisdiction_header": None,
    "session_keys": None,
    "session_keys_file": None,
    "store": "memory://",
    "policy": "policies/example.yaml",
    "verifiers": {},
    "log": {"format": "json", "level": "info"},
    "log_client_ip": "off",
    "allow_semicolons": False,
    "forward_client_ip": True,
    "upstream_connect_timeout": "5s",
    "upstream_read_timeout": "60s",
    "max_request_body": 10 * 1024 * 1024,
    "request_buffer_size": 64 * 1024,
    "upstream_max_connections": 100,
    "client_body_timeout": "10s",
    "client_body_deadline": "60s",
    "send_timeout": "30s",
    "rate_limit": 60,
    "workers": 1,
    "session_revocation": True,
    "redis_max_connections": 50,
    "redis_connect_timeout": "500ms",
    "redis_socket_timeout": "500ms",
    "shutdown_timeout": "10s",
    "fast_path": True,
}
_LIST_KEYS = {"hosts", "trusted_proxies"}
_ENV_PREFIX = "AGEGATE_"


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from ``path`` (or ``AGEGATE_CONFIG``) and the environment.

    Without a file, the defaults and the environment alone are used.
    """
    env = os.environ if environ is None else environ
    path = path or env.get("AGEGATE_CONFIG")
    raw: dict[str, Any] = {}
    source = "<environment>"
    base_dir = Path.cwd()
    if path:
        file = Path(path)
        source = str(file)
        base_dir = file.resolve().parent
        try:
            text = file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read settings file: {exc.strerror}", source=source) from None
        # The policy's loader: a duplicate key is an error, booleans are YAML 1.2's.
        loaded = read_yaml(text, source, error=ConfigError)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("the top level must be a mapping of keys", source=source)
        raw = loaded
    return parse_settings(raw, environ=env, source=source, base_dir=base_dir)


def parse_settings(
    raw: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "<settings>",
    base_dir: Path | None = None,
) -> Settings:
    """Validate a settings mapping (plus environment overrides) into :class:`Settings`."""
    env = {} if environ is None else environ
    base = base_dir or Path.cwd()
    unknown = sorted(set(raw) - set(_DEFAULTS))
    if unknown:
        allowed = ", ".join(sorted(_DEFAULTS))
        hint = did_you_mean(unknown[0], _DEFAULTS)
        raise ConfigError(f"unknown key{hint} (allowed: {allowed})", source=source, key=unknown[0])
    values: dict[str, Any] = {**_DEFAULTS, **raw}
    origin: dict[str, str] = {key: source for key in raw}
    for key, default in _DEFAULTS.items():
        env_value = env.get(_ENV_PREFIX + key.upper())
        if env_value is None or isinstance(default, dict):
            continue
        values[key] = _from_env(key, env_value)
        origin[key] = _ENV_PREFIX + key.upper()

    def where(key: str) -> str:
        return origin.get(key, "<defaults>")

    def get(key: str, parse: Any) -> Any:
        try:
            return parse(values[key])
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc), source=where(key), key=key) from None

    public_origin = get("public_origin", _origin)
    hosts_value = values["hosts"]
    hosts = get("public_origin", _origin_hosts) if hosts_value is None else get("hosts", _host_set)
    listen = get("listen", _listen)
    admin_listen = get("admin_listen", _listen)
    authz_listen = None if values["authz_listen"] is None else get("authz_listen", _listen)
    if admin_listen == listen:
        raise ConfigError(
            "the admin listener must not be the public listener",
            source=where("admin_listen"),
            key="admin_listen",
        )
    log = get("log", _log)
    log_client_ip = get("log_client_ip", _choice("off", "truncated"))
    settings = Settings(
        listen=listen,
        admin_listen=admin_listen,
        authz_listen=authz_listen,
        public_origin=public_origin,
        upstream=get("upstream", _upstream),
        hosts=hosts,
        trusted_proxies=get("trusted_proxies", _networks),
        jurisdiction_header=get("jurisdiction_header", _optional_header),
        session_keys=_session_keys(values, where, base, env),
        store=get("store", _store),
        policy=get("policy", lambda v: _path(v, base)),
        verifiers=get("verifiers", _verifiers),
        log=log,
        log_client_ip=log_client_ip,
        allow_semicolons=get("allow_semicolons", _bool),
        forward_client_ip=get("forward_client_ip", _bool),
        upstream_connect_timeout=get("upstream_connect_timeout", parse_duration),
        upstream_read_timeout=get("upstream_read_timeout", parse_duration),
        max_request_body=get("max_request_body", _positive_int),
        request_buffer_size=get("request_buffer_size", _buffer_size),
        upstream_max_connections=get("upstream_max_connections", _positive_int),
        client_body_timeout=get("client_body_timeout", _positive_duration),
        client_body_deadline=get("client_body_deadline", _positive_duration),
        send_timeout=get("send_timeout", _positive_duration),
        rate_limit=get("rate_limit", _non_negative_int),
        workers=get("workers", _positive_int),
        session_keys_file=_keys_file(values, base),
        session_revocation=get("session_revocation", _bool),
        redis_max_connections=get("redis_max_connections", _positive_int),
        redis_connect_timeout=get("redis_connect_timeout", _positive_duration),
        redis_socket_timeout=get("redis_socket_timeout", _positive_duration),
        shutdown_timeout=get("shutdown_timeout", _positive_duration),
        fast_path=get("fast_path", _bool),
        base_dir=base,
        source=source,
    )
    cluster = settings.store.startswith(("redis+cluster:", "rediss+cluster:"))
    if cluster and settings.session_revocation:
        # Revocations are followed by SCAN + pub/sub on one server; on a Cluster the SCAN
        # would read one primary, and logouts on the others would be missed.
        raise ConfigError(
            "session_revocation needs a single Redis or Sentinel (it scans and subscribes "
            "on one server); with a redis+cluster:// store set session_revocation: false",
            source=where("session_revocation"),
            key="session_revocation",
        )
    return settings


def _from_env(key: str, value: str) -> Any:
    if key in _LIST_KEYS:
        return [item.strip() for item in value.split(",") if item.strip()]
    if value.strip().lower() in {"null", "none", ""} and _DEFAULTS[key] is None:
        return None
    return value


def _listen(value: object) -> Listen:
    if not isinstance(value, str):
        raise ValueError(f"expected host:port, got {value!r}")
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port with a port from 1 to 65535, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return Listen(host, int(port))


def _origin(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an origin like https://shop.example, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an origin like https://shop.example, got {value!r}")
    if parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise ValueError(f"an origin has no path, query or fragment, got {value!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _upstream(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a URL like http://127.0.0.1:9000, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected a URL like http://127.0.0.1:9000, got {value!r}")
    return value.rstrip("/")


def _origin_hosts(value: object) -> frozenset[str]:
    return frozenset({host_name(urlsplit(_origin(value)).hostname or "localhost")})


def _host_set(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(h, str) for h in value):
        raise ValueError("expected a non-empty list of host names")
    # The request path's own parser: "Shop.Example." and "[::1]" are stored as they match.
    return frozenset(host_name(h) for h in value)


def _networks(value: object) -> tuple[Network, ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list of CIDR ranges, e.g. [127.0.0.1/32]")
    networks = []
    for item in value:
        try:
            networks.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ValueError(f"not a CIDR range: {item!r}") from None
    return tuple(networks)


def _optional_header(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or any(c in value for c in " :\r\n\t"):
        raise ValueError(f"expected a header name, got {value!r}")
    return value.lower()


def _session_keys(
    values: Mapping[str, Any], where: Any, base: Path, env: Mapping[str, str]
) -> tuple[bytes, ...]:
    # Imported here to keep settings importable before the session module exists in a tree.
    from gateway.session.keys import parse_key_lines

    inline = values.get("session_keys")
    file = values.get("session_keys_file")
    if inline is not None:
        text = ",".join(inline) if isinstance(inline, list) else str(inline)
        try:
            return parse_key_lines(text.replace(",", "\n"))
        except ValueError as exc:
            raise ConfigError(str(exc), source=where("session_keys"), key="session_keys") from None
    if file is not None:
        path = _path(file, base)
        try:
            return parse_key_lines(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror}",
                source=where("session_keys_file"),
                key="session_keys_file",
            ) from None
        except ValueError as exc:
            raise ConfigError(
                f"{path}: {exc}", source=where("session_keys_file"), key="session_keys_file"
            ) from None
    return ()


def _keys_file(values: Mapping[str, Any], base: Path) -> Path | None:
    # Inline keys (AGEGATE_SESSION_KEYS) win over the file, as in _session_keys.
    if values.get("session_keys") is not None or values.get("session_keys_file") is None:
        return None
    return _path(values["session_keys_file"], base)


def _store(value: object) -> str:
    from gateway.stores.redis_urls import REDIS_SCHEMES, parse_redis_url

    scheme = value.partition("://")[0] if isinstance(value, str) else ""
    if not isinstance(value, str) or (value != "memory://" and scheme not in REDIS_SCHEMES):
        # Not echoed: a store URL may carry a password.
        raise ValueError(
            "expected memory://, redis://host:port/db, "
            "redis+sentinel://host:port,host:port/<service>/<db> or redis+cluster://host:port,…"
        )
    if scheme in REDIS_SCHEMES:
        try:
            parse_redis_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("store: ")) from None
    return value


def _path(value: object, base: Path) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError(f"expected a file path, got {value!r}")
    path = Path(value)
    return path if path.is_absolute() else base / path


def _verifiers(value: object) -> Mapping[str, Mapping[str, Any]]:
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of verifier name to its settings")
    for name, conf in value.items():
        if not isinstance(conf, dict) or not isinstance(conf.get("kind"), str):
            raise ValueError(f"verifier {name!r}: expected a mapping with a 'kind'")
    return {str(name): dict(conf) for name, conf in value.items()}


def _log(value: object) -> LogSettings:
    if not isinstance(value, dict) or set(value) - {"format", "level"}:
        raise ValueError("expected {format: json|text, level: debug|info|warning|error}")
    fmt = str(value.get("format", "json"))
    level = str(value.get("level", "info")).lower()
    if fmt not in {"json", "text"} or level not in {"debug", "info", "warning", "error"}:
        raise ValueError("expected {format: json|text, level: debug|info|warning|error}")
    return LogSettings(fmt, level)


def _choice(*allowed: str) -> Any:
    def parse(value: object) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return parse


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {
        "true",
        "1",
        "yes",
        "on",
        "false",
        "0",
        "no",
        "off",
    }:
        return value.lower() in {"true", "1", "yes", "on"}
    raise ValueError(f"expected true or false, got {value!r}")


_MAX_BUFFER = 16 * 1024 * 1024  # per request in memory; more is an upload to stream


def _buffer_size(value: object) -> int:
    number = _positive_int(value)
    if number > _MAX_BUFFER:
        raise ValueError(f"expected at most {_MAX_BUFFER} bytes (16 MiB), got {value!r}")
    return number


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if not 0 < seconds < 1e9:  # also no infinity: it becomes a loop deadline
        raise ValueError(f"expected a finite duration above 0 like 10s, got {value!r}")
    return seconds


def _positive_int(value: object) -> int:
    number = _non_negative_int(value)
    if number == 0:
        raise ValueError("expected a whole number above 0")
    return number


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a whole number of 0 or more, got {value!r}")
    return number
