"""policies/schema.json: valid, accepts the example, refuses what the loader refuses."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.policy.embedded import EXPECT_KEYS, SESSION_KEYS, TEST_KEYS
from gateway.policy.fields import KNOWN_METHODS
from gateway.policy.loader import DEFAULT_KEYS, JURISDICTION_KEYS, RULE_KEYS, TOP_KEYS

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = json.loads((ROOT / "policies" / "schema.json").read_text(encoding="utf-8"))
EXAMPLE = yaml.safe_load((ROOT / "policies" / "example.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA)


def test_example_policy_is_valid(validator: jsonschema.Draft202012Validator) -> None:
    assert list(validator.iter_errors(EXAMPLE)) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(extra=1),
        lambda d: d["defaults"].update(ttl="1h"),
        lambda d: d["routes"][2].update(min_agee=18),
        lambda d: d["routes"][2]["jurisdictions"]["US"].update(age=21),
        lambda d: d["tests"][0].update(name="x"),
        lambda d: d["tests"][0]["session"].update(name="x"),
        lambda d: d["tests"][1]["expect"].update(outcome="allow"),
    ],
    ids=["top", "defaults", "rule", "jurisdiction", "test", "session", "expect"],
)
def test_schema_rejects_unknown_keys(validator, mutate) -> None:
    data = copy.deepcopy(EXAMPLE)
    mutate(data)
    assert not validator.is_valid(data)


@pytest.mark.parametrize(
    "rule",
    [
        {"name": "a", "path": "/a"},  # neither action nor min_age
        {"name": "a", "path": "/a", "action": "allow", "min_age": 18},
        {"name": "a", "path": "/a", "action": "require"},
        {"name": "a", "path": "/a", "min_age": 100},
        {"name": "a", "path": "a", "action": "allow"},
        {"name": "a", "path": "/a", "action": "allow", "methods": ["BREW"]},
        {"name": "a", "path": "/a", "min_age": 18, "jurisdictions": {"USA": {"min_age": 21}}},
    ],
)
def test_schema_rejects_what_the_loader_rejects(validator, rule) -> None:
    data = {"version": 1, "routes": [rule]}
    assert not validator.is_valid(data)


def test_schema_and_loader_know_the_same_keys() -> None:
    defs = SCHEMA["$defs"]
    assert set(SCHEMA["properties"]) == TOP_KEYS
    assert set(SCHEMA["properties"]["defaults"]["properties"]) == DEFAULT_KEYS
    assert set(defs["rule"]["properties"]) == RULE_KEYS
    assert set(
        defs["rule"]["properties"]["jurisdictions"]["additionalProperties"]["properties"]
    ) == (JURISDICTION_KEYS)
    assert set(defs["test"]["properties"]) == TEST_KEYS
    assert set(defs["test"]["properties"]["session"]["properties"]) == SESSION_KEYS
    assert set(defs["test"]["properties"]["expect"]["oneOf"][1]["properties"]) == EXPECT_KEYS
    assert set(defs["method"]["enum"]) == KNOWN_METHODS
