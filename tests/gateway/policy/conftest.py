"""Fixtures for the policy tests: build policies from YAML text in one line."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from gateway.policy import Policy, parse_policy_text

PolicyFactory = Callable[..., Policy]

HEADER = """\
version: 1
defaults:
  verifiers: [ref]
"""


@pytest.fixture(scope="session")
def make_policy() -> PolicyFactory:
    """``make_policy(routes_yaml, defaults=..., tests=...)`` -> Policy (source "p.yaml")."""

    def build(routes: str, *, header: str = HEADER, tests: str = "", **kwargs: object) -> Policy:
        text = header + "routes:\n" + textwrap.indent(textwrap.dedent(routes), "  ")
        if tests:
            text += "tests:\n" + textwrap.indent(textwrap.dedent(tests), "  ")
        return parse_policy_text(text, source="p.yaml", **kwargs)  # type: ignore[arg-type]

    return build
