"""Reading policy and settings YAML: PyYAML's safe loader with two fixes.

Policies and settings are security configuration and surprises there are bugs, so: a
duplicate key is an error (PyYAML keeps the last one silently), and only
``true``/``false`` are booleans (YAML 1.1 reads ``NO``, Norway's code, as
false, and ``on`` as true).  Every failure, PyYAML's or its constructors'
(a date like ``2024-13-45`` raises ``ValueError``), becomes a PolicyError (or
the ConfigError a settings file asks for) with the line and column where
PyYAML gives them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from gateway.errors import ConfigError, PolicyError

__all__ = ["read_yaml"]


def read_yaml(
    raw: bytes, source: str, *, error: type[PolicyError | ConfigError] = PolicyError
) -> object:
    """Parse one YAML document from UTF-8 bytes; raises ``error`` naming ``source``."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"not valid UTF-8 (byte {exc.start})", source=source) from None
    try:
        return yaml.load(decoded, Loader=_PolicyYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {_yaml_problem(exc)}", source=source) from None
    except (ValueError, OverflowError) as exc:
        raise error(f"invalid YAML value: {exc}", source=source) from None
    except RecursionError:
        raise error("invalid YAML: nested too deeply", source=source) from None


class _PolicyYamlLoader(yaml.SafeLoader):
    """Safe loader with duplicate-key errors and YAML 1.2 booleans."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_PolicyYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_PolicyYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"\A(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "cannot parse"
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)
