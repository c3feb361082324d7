"""Structure checks for the Traefik and Envoy configs in docs/integrations/.

Neither Traefik nor Envoy is packaged for Debian, PyPI or npm, so these
configs are not run here (docs/integrations/*.md say so).  What can be checked
without them is: the YAML parses, every reference resolves, and every setting
agegate's security depends on is present.  The decision side of both
conventions (``X-Forwarded-*`` for Traefik, ``path_prefix`` for Envoy) is
exercised against a real gateway in test_decision_parity.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

from gateway.authz.endpoint import AUTHZ_PATH
from tests.integration.proxies import DOCS


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_traefik_dynamic_config() -> None:
    config = yaml.safe_load((DOCS / "traefik.yml").read_text())
    http = config["http"]
    assert set(http) == {"routers", "middlewares", "services"}
    for name, router in http["routers"].items():
        assert router["service"] in http["services"], name
        for middleware in router.get("middlewares", []):
            assert middleware in http["middlewares"], (name, middleware)
    assert http["routers"]["agegate-pages"]["service"] == "agegate-public"
    assert "PathPrefix(`/.agegate/`)" in http["routers"]["agegate-pages"]["rule"]
    assert http["routers"]["site"]["middlewares"][-1] == "agegate"
    auth = http["middlewares"]["agegate"]["forwardAuth"]
    assert set(auth) <= {
        "address",
        "trustForwardHeader",
        "authRequestHeaders",
        "authResponseHeaders",
        "authResponseHeadersRegex",
        "addAuthCookiesToResponse",
    }
    assert auth["address"].endswith(AUTHZ_PATH)
    assert auth["trustForwardHeader"] is False
    sent = {name.lower() for name in auth["authRequestHeaders"]}
    assert {"cookie", "authorization", "accept"} <= sent
    assert not any(name.startswith(("x-original-", "x-forwarded-")) for name in sent)
    copied = re.compile(auth["authResponseHeadersRegex"])
    for name in ("X-Agegate-Age-Over", "X-Agegate-Assurance"):
        assert copied.match(name)
    assert not copied.match("X-Agegate-Path")
    assert not copied.match("X-Agegate-Cookie")
    # Deleted from the request, then copied from agegate's answer: the cookies less agegate's.
    assert auth["authResponseHeaders"] == ["Cookie"]
    assert auth["addAuthCookiesToResponse"] == ["__Host-agegate"]
    removed = http["middlewares"]["agegate-hygiene"]["headers"]["customRequestHeaders"]
    assert all(value == "" for value in removed.values())
    assert {"X-Original-URI", "X_Agegate_Age_Over", "X-Agegate-Cookie"} <= set(removed)
    for service in http["services"].values():
        for server in service["loadBalancer"]["servers"]:
            assert server["url"].startswith("http://")


def _filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]
    assert manager["name"] == "envoy.filters.network.http_connection_manager"
    return list(manager["typed_config"]["http_filters"])


def test_envoy_bootstrap() -> None:
    config = yaml.safe_load((DOCS / "envoy.yaml").read_text())
    clusters = {cluster["name"] for cluster in config["static_resources"]["clusters"]}
    for node in _walk(config):
        if "@type" in node:
            assert node["@type"].startswith("type.googleapis.com/envoy."), node["@type"]
            assert ".v3." in node["@type"], node["@type"]
        if "cluster" in node and isinstance(node["cluster"], str):
            assert node["cluster"] in clusters, node
    filters = _filters(config)
    names = [f["name"] for f in filters]
    # The client's X-Agegate-* go before agegate is asked; the router comes last.
    assert names == [
        "envoy.filters.http.lua",
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    lua = filters[0]["typed_config"]["default_source_code"]["inline_string"]
    assert '"x-agegate-"' in lua and '"x_agegate_"' in lua and "remove" in lua
    ext = filters[1]["typed_config"]
    assert ext["failure_mode_allow"] is False
    service = ext["http_service"]
    assert service["path_prefix"] == AUTHZ_PATH
    assert service["server_uri"]["cluster"] == "agegate_authz"
    sent = {p["exact"] for p in service["authorization_request"]["allowed_headers"]["patterns"]}
    assert {"cookie", "authorization", "accept"} <= sent
    response = service["authorization_response"]
    upstream = {p["exact"] for p in response["allowed_upstream_headers"]["patterns"]}
    # cookie: agegate's answer replaces the client's Cookie with one less agegate's cookies.
    assert upstream == {"x-agegate-age-over", "x-agegate-assurance", "cookie"}
    on_success = {p["exact"] for p in response["allowed_client_headers_on_success"]["patterns"]}
    assert on_success == {"set-cookie"}
    client = {p["exact"] for p in response["allowed_client_headers"]["patterns"]}
    assert {"location", "www-authenticate", "content-type"} <= client
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    typed = manager["typed_config"]
    assert typed["normalize_path"] is False and typed["merge_slashes"] is False
    routes = typed["route_config"]["virtual_hosts"][0]["routes"]
    pages = routes[0]
    assert pages["match"] == {"prefix": "/.agegate/"}
    assert pages["route"]["cluster"] == "agegate_public"
    assert pages["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"] is True
    assert routes[-1]["match"] == {"prefix": "/"}
