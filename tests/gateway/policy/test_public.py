"""Every public module of gateway.policy declares __all__ and its names import."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "gateway.policy",
    "gateway.cli.policy",
    "gateway.policy.decide",
    "gateway.policy.embedded",
    "gateway.policy.facts",
    "gateway.policy.fields",
    "gateway.policy.loader",
    "gateway.policy.matcher",
    "gateway.policy.model",
    "gateway.policy.testing",
    "gateway.policy.yamlfile",
]


@pytest.mark.parametrize("name", MODULES)
def test_public_names_import(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    for public in module.__all__:
        assert getattr(module, public) is not None, f"{name}.{public}"
        if callable(getattr(module, public)) and not public.isupper():
            assert getattr(module, public).__doc__, f"{name}.{public} has no docstring"


def test_contract_names_other_modules_use() -> None:
    from gateway.cli.policy import check_command, explain_command
    from gateway.policy import Decision, Outcome, Requirement, decide, load_policy
    from gateway.policy.decide import Decision as DecideDecision
    from gateway.policy.decide import Outcome as DecideOutcome
    from gateway.policy.decide import Requirement as DecideRequirement
    from gateway.policy.loader import parse_policy
    from gateway.policy.testing import TestResult, run_policy_tests

    assert (Decision, Outcome, Requirement) == (DecideDecision, DecideOutcome, DecideRequirement)
    assert [o.value for o in Outcome] == ["allow", "challenge", "deny"]
    assert all(callable(f) for f in (decide, load_policy, parse_policy, run_policy_tests))
    assert all(callable(f) for f in (check_command, explain_command))
    assert TestResult.__dataclass_fields__.keys() >= {"index", "request", "passed", "message"}
