"""Loading policy files: the model built, and every error naming file, rule and field."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import PolicyError
from gateway.policy import Action, Mode, load_policy, parse_policy, parse_policy_text
from gateway.policy.loader import DEFAULT_KEYS, RULE_KEYS, TOP_KEYS
from verifiers.base import AssuranceLevel

EXAMPLE = Path(__file__).resolve().parents[3] / "policies" / "example.yaml"


def test_example_policy_loads_into_the_model() -> None:
    policy = load_policy(
        EXAMPLE, known_verifiers={"reference-token", "reference-pp", "eu-wallet", "eu-av-wallet"}
    )
    assert policy.version == 1
    assert policy.source == str(EXAMPLE)
    assert policy.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert policy.has_catch_all
    names = [rule.name for rule in policy.rules]
    assert names[0] == "static" and names[-1] == "everything-else"
    wine = policy.rule("wine")
    assert wine is not None
    assert wine.number == names.index("wine") + 1
    assert wine.action is Action.REQUIRE
    assert wine.methods == {"GET", "HEAD", "POST"}
    assert wine.hosts is None
    assert wine.requirement is not None
    assert wine.requirement.min_age == 18
    assert wine.requirement.assurance is AssuranceLevel.BASIC
    assert wine.requirement.verifiers == (
        "reference-token",
        "reference-pp",
        "eu-wallet",
        "eu-av-wallet",
    )
    assert wine.requirement.session_ttl == 3600.0
    us = wine.requirement_for("US")
    assert us is not None and us.min_age == 21
    assert wine.min_age == 18
    assert len(policy.tests) > 10


def test_defaults_apply_and_rules_override(make_policy) -> None:
    policy = make_policy(
        """
        - name: a
          path: /a/**
          min_age: 16
        - name: b
          path: /b/**
          min_age: 18
          assurance: strict
          verifiers: [other]
          session_ttl: 15m
          mode: report-only
        """,
        header="version: 1\ndefaults:\n  verifiers: [ref]\n  session_ttl: 2h\n"
        "  assurance: standard\n  mode: enforce\n",
    )
    a, b = policy.rules
    assert a.requirement.assurance is AssuranceLevel.STANDARD
    assert a.requirement.verifiers == ("ref",)
    assert a.requirement.session_ttl == 7200.0
    assert a.mode is Mode.ENFORCE
    assert b.requirement.assurance is AssuranceLevel.STRICT
    assert b.requirement.verifiers == ("other",)
    assert b.requirement.session_ttl == 900.0
    assert b.mode is Mode.REPORT_ONLY
    assert not policy.has_catch_all


def test_hosts_and_methods_are_normalized(make_policy) -> None:
    policy = make_policy(
        """
        - name: a
          path: /a
          hosts: [Shop.Example, "[::1]", 127.0.0.1, "www.shop.example."]
          methods: [get, Post]
          action: allow
        """
    )
    rule = policy.rules[0]
    assert rule.hosts == {"shop.example", "::1", "127.0.0.1", "www.shop.example"}
    assert rule.methods == {"GET", "POST"}


def test_jurisdictions_override_min_age_and_assurance(make_policy) -> None:
    policy = make_policy(
        """
        - name: a
          path: /a
          min_age: 18
          jurisdictions:
            us: {min_age: 21}
            GB: {assurance: enhanced}
            NO: {min_age: 20}
        """
    )
    rule = policy.rules[0]
    assert set(rule.jurisdictions) == {"US", "GB", "NO"}  # "NO" is Norway, not false
    assert rule.requirement_for("US").min_age == 21
    assert rule.requirement_for("US-UT").min_age == 21  # subdivision falls back to country
    assert rule.requirement_for("GB").assurance is AssuranceLevel.ENHANCED
    assert rule.requirement_for("GB").min_age == 18
    assert rule.requirement_for("FR") is rule.requirement
    assert rule.requirement_for(None) is rule.requirement


def test_yaml_booleans_are_only_true_and_false(make_policy) -> None:
    # In YAML 1.1 "on" is true: it must not silently switch case-insensitivity on.
    with pytest.raises(PolicyError, match=r"'defaults\.case_insensitive'"):
        make_policy(
            "- {name: a, path: /**, action: allow}",
            header="version: 1\ndefaults:\n  case_insensitive: on\n",
        )


# --- errors name file, rule and field ---------------------------------------------------

ERROR_CASES = [
    (
        "- {name: wine, path: /wine/**, min_age: eighteen}",
        "p.yaml: rule 'wine': field 'min_age': "
        "expected a whole number from 1 to 99, got 'eighteen'",
    ),
    ("- {name: wine, path: /wine/**, min_age: 0}", "rule 'wine': field 'min_age'"),
    ("- {name: wine, path: /wine/**, min_age: 100}", "rule 'wine': field 'min_age'"),
    ("- {name: wine, path: /wine/**, min_age: true}", "rule 'wine': field 'min_age'"),
    ("- {name: wine, path: /wine/**, min_age: 18.5}", "rule 'wine': field 'min_age'"),
    ("- {name: wine, path: wine, action: allow}", "rule 'wine': field 'path': a path pattern must"),
    ("- {name: css, path: /s/*.css, action: allow}", "rule 'css': field 'path': '*' and '**'"),
    ("- {path: /a, action: allow}", "rule '#1': field 'name': missing"),
    ("- {name: 'a b', path: /a, action: allow}", "rule 'a b': field 'name'"),
    ("- {name: a, action: allow}", "rule 'a': field 'path': missing"),
    ("- {name: a, path: /a}", "rule 'a': field 'action': missing"),
    ("- {name: a, path: /a, action: maybe}", "rule 'a': field 'action': expected allow, deny"),
    ("- {name: a, path: /a, action: require}", "rule 'a': field 'min_age': missing"),
    (
        "- {name: a, path: /a, action: allow, min_age: 18}",
        "rule 'a': field 'min_age': only applies",
    ),
    ("- {name: a, path: /a, action: deny, assurance: basic}", "rule 'a': field 'assurance': only"),
    ("- {name: a, path: /a, min_age: 18, assurance: high}", "field 'assurance': unknown assurance"),
    ("- {name: a, path: /a, min_age: 18, mode: audit}", "rule 'a': field 'mode': expected enforce"),
    ("- {name: a, path: /a, min_age: 18, session_ttl: soon}", "field 'session_ttl'"),
    ("- {name: a, path: /a, min_age: 18, session_ttl: 0s}", "field 'session_ttl'"),
    ("- {name: a, path: /a, min_age: 18, session_ttl: .inf}", "field 'session_ttl'"),
    ("- {name: a, path: /a, min_age: 18, verifiers: ref}", "field 'verifiers': expected a list"),
    (
        "- {name: a, path: /a, min_age: 18, verifiers: []}",
        "field 'verifiers': expected a non-empty",
    ),
    ("- {name: a, path: /a, action: allow, methods: [FETCH]}", "field 'methods': unknown method"),
    ("- {name: a, path: /a, action: allow, methods: GET}", "field 'methods': expected a list"),
    ("- {name: a, path: /a, action: allow, hosts: ['shop:8080']}", "without a port"),
    ("- {name: a, path: /a, action: allow, hosts: ['*.shop']}", "wildcard hosts"),
    ("- {name: a, path: /a, action: allow, hosts: ['https://x/']}", "field 'hosts'"),
    ("- {name: a, path: /a, action: allow, hosts: ['sh op']}", "field 'hosts'"),
    ("- {name: a, path: /a, action: allow, min-age: 3}", "unknown key 'min-age'; did you mean"),
    ("- {name: a, path: /a, min_age: 18, jurisdictions: []}", "field 'jurisdictions'"),
    ("- {name: a, path: /a, min_age: 18, jurisdictions: {USA: {min_age: 21}}}", "'jurisdictions'"),
    (
        "- {name: a, path: /a, min_age: 18, jurisdictions: {US: {min_age: x}}}",
        "rule 'a': field 'jurisdictions.US.min_age'",
    ),
    (
        "- {name: a, path: /a, min_age: 18, jurisdictions: {US: {assurance: x}}}",
        "field 'jurisdictions.US.assurance'",
    ),
    ("- {name: a, path: /a, min_age: 18, jurisdictions: {US: {}}}", "'jurisdictions.US'"),
    ("- {name: a, path: /a, min_age: 18, jurisdictions: {US: {age: 2}}}", "unknown key 'age'"),
    (
        "- {name: a, path: /a, min_age: 18, jurisdictions: {US: {min_age: 21}, us: {min_age: 20}}}",
        "listed twice",
    ),
    (
        "- {name: a, path: /a, action: allow}\n- {name: a, path: /b, action: allow}",
        "duplicate name",
    ),
    ("- just-a-string", "rule '#1': expected a mapping"),
]


@pytest.mark.parametrize(("routes", "message"), ERROR_CASES)
def test_errors_name_file_rule_and_field(make_policy, routes: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        make_policy(routes)
    assert message in str(info.value)
    assert str(info.value).startswith("p.yaml: ")
    assert info.value.reason == "policy_invalid"


def test_error_attributes_are_set(make_policy) -> None:
    with pytest.raises(PolicyError) as info:
        make_policy("- {name: wine, path: /wine/**, min_age: eighteen}")
    assert (info.value.source, info.value.rule, info.value.field) == ("p.yaml", "wine", "min_age")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the policy file is empty"),
        ("[1, 2]", "expected a mapping"),
        ("routes: []", "field 'version': missing"),
        ("version: 2\nroutes: []", "unsupported version 2"),
        ("version: '1'\nroutes: []", "unsupported version '1'"),
        ("version: 1", "field 'routes': expected a non-empty list"),
        ("version: 1\nroutes: []", "field 'routes'"),
        ("version: 1\nrules: []", "unknown key 'rules'; did you mean 'routes'?"),
        ("version: 1\ndefaults: {ttl: 1h}\nroutes: []", "field 'defaults': unknown key 'ttl'"),
        ("version: 1\ndefaults: {assurance: x}\nroutes: []", "field 'defaults.assurance'"),
        (
            "version: 1\ndefaults: {verifiers: [x]}\nroutes: []",
            "'defaults.verifiers': unknown verifier",
        ),
        ("version: 1\ndefaults: []\nroutes: []", "field 'defaults': expected a mapping"),
        ("version: 1\nroutes: [{name: a, path: /a, action: allow}]\ntests: {}", "field 'tests'"),
    ],
)
def test_top_level_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, source="top.yaml", known_verifiers={"ref"})
    assert message in str(info.value)
    assert str(info.value).startswith("top.yaml")


def test_yaml_syntax_error_gives_line_and_column() -> None:
    text = "version: 1\nroutes:\n  - name: a\n    path: [unclosed\n"
    with pytest.raises(PolicyError, match=r"invalid YAML: .* at line \d+, column \d+"):
        parse_policy_text(text, source="bad.yaml")


def test_duplicate_yaml_key_is_an_error_with_its_line() -> None:
    text = "version: 1\nroutes:\n  - name: a\n    path: /a\n    path: /b\n    action: allow\n"
    with pytest.raises(PolicyError, match=r"duplicate key 'path' at line 5, column 5"):
        parse_policy_text(text, source="dup.yaml")


def test_yaml_merge_keys_still_work() -> None:
    text = (
        "version: 1\ndefaults: {verifiers: [ref]}\n"
        "x-adult: &adult {min_age: 18, assurance: standard}\n"
        "routes:\n  - {<<: *adult, name: a, path: /a}\n"
    )
    # The anchor's holder is itself an unknown key: merge keys are for use inside rules.
    with pytest.raises(PolicyError, match="unknown key 'x-adult'"):
        parse_policy_text(text, source="m.yaml")
    text = (
        "version: 1\ndefaults: {verifiers: [ref]}\nroutes:\n"
        "  - &adult {name: a, path: /a, min_age: 18}\n"
        "  - {<<: *adult, name: b, path: /b}\n"
    )
    policy = parse_policy_text(text, source="m.yaml")
    assert policy.rules[1].requirement.min_age == 18


def test_invalid_dates_and_bad_bytes_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match="invalid YAML value"):
        parse_policy_text("version: 1\nroutes: 2024-13-45\n", source="d.yaml")
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        parse_policy_text(b"version: 1\xff\n", source="u.yaml")
    with pytest.raises(PolicyError, match=r"nested too deeply|invalid YAML"):
        parse_policy_text("[" * 1500 + "]" * 1500, source="n.yaml")


def test_missing_file_is_a_policy_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match="cannot read policy file") as info:
        load_policy(missing)
    assert str(missing) in str(info.value)


def test_unknown_verifier_is_an_error_only_when_verifiers_are_known(make_policy) -> None:
    routes = "- {name: a, path: /a, min_age: 18, verifiers: [ghost]}"
    assert make_policy(routes).rules[0].requirement.verifiers == ("ghost",)
    with pytest.raises(PolicyError, match=r"rule 'a': field 'verifiers': unknown verifier 'ghost'"):
        make_policy(routes, known_verifiers={"ref"})


def test_require_rule_without_any_verifier_is_an_error(make_policy) -> None:
    with pytest.raises(PolicyError, match="rule 'a': field 'verifiers': no verifiers"):
        make_policy("- {name: a, path: /a, min_age: 18}", header="version: 1\n")


def test_parse_policy_accepts_data_and_hashes_it() -> None:
    data = {"version": 1, "routes": [{"name": "all", "path": "/**", "action": "allow"}]}
    first = parse_policy(data, source="<data>")
    assert first.source == "<data>"
    assert len(first.sha256) == 64
    assert parse_policy(dict(data), source="<x>").sha256 == first.sha256


# --- shadowing --------------------------------------------------------------------------

SHADOWED = [
    ("- {name: a, path: /**, action: allow}\n- {name: b, path: /wine/**, min_age: 18}"),
    ("- {name: a, path: /wine/**, action: deny}\n- {name: b, path: /wine/red, action: allow}"),
    ("- {name: a, path: /*/red, action: allow}\n- {name: b, path: /wine/red, action: deny}"),
    (
        "- {name: a, path: /w/**, methods: [GET, POST], action: allow}\n"
        "- {name: b, path: /w/x, methods: [GET], action: deny}"
    ),
    (
        "- {name: a, path: /w/**, hosts: [x.example, y.example], action: allow}\n"
        "- {name: b, path: /w/x, hosts: [X.example], action: deny}"
    ),
    ("- {name: a, path: /wine, action: allow}\n- {name: b, path: /wine/, action: deny}"),
    ("- {name: a, path: /a/**/z, action: allow}\n- {name: b, path: /a/b/**/c/z, action: deny}"),
]


@pytest.mark.parametrize("routes", SHADOWED)
def test_shadowed_rule_is_an_error_naming_both(make_policy, routes: str) -> None:
    with pytest.raises(PolicyError) as info:
        make_policy(routes)
    message = str(info.value)
    assert "rule 'b': can never match: rule 'a'" in message
    assert "(earlier)" in message or "earlier" in message
    assert info.value.rule == "b"


NOT_SHADOWED = [
    # The later rule reaches methods, hosts or paths the earlier one does not.
    "- {name: a, path: /wine/**, methods: [GET], min_age: 18}\n"
    "- {name: b, path: /wine/**, action: deny}",
    "- {name: a, path: /wine/**, hosts: [x.example], action: allow}\n"
    "- {name: b, path: /wine/red, action: deny}",
    "- {name: a, path: /wine/red, action: allow}\n- {name: b, path: /wine/**, action: deny}",
    "- {name: a, path: /wine/*, action: allow}\n- {name: b, path: /wine/**, action: deny}",
    "- {name: a, path: /*/**, action: allow}\n- {name: b, path: /**, action: deny}",
    "- {name: a, path: /**/z, action: allow}\n- {name: b, path: /**/y, action: deny}",
]


@pytest.mark.parametrize("routes", NOT_SHADOWED)
def test_partially_overlapping_rules_are_fine(make_policy, routes: str) -> None:
    assert len(make_policy(routes).rules) == 2


def test_case_insensitive_policy_sees_more_shadowing(make_policy) -> None:
    routes = (
        "- {name: a, path: /wine/**, action: deny}\n- {name: b, path: /WINE/red, action: allow}"
    )
    assert len(make_policy(routes).rules) == 2
    with pytest.raises(PolicyError, match="rule 'b': can never match"):
        make_policy(routes, header="version: 1\ndefaults: {case_insensitive: true}\n")


# --- key sets stay in step with the schema ----------------------------------------------


def test_known_key_sets() -> None:
    assert {"version", "defaults", "routes", "tests"} == TOP_KEYS
    assert "case_insensitive" in DEFAULT_KEYS
    assert {"name", "path", "min_age", "jurisdictions"} <= RULE_KEYS


# --- properties -------------------------------------------------------------------------

_KEYS = sorted(TOP_KEYS | DEFAULT_KEYS | RULE_KEYS | {"request", "expect", "session", "x"})
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 120),
    st.floats(allow_nan=True),
    st.sampled_from(["/**", "/wine/**", "allow", "deny", "require", "basic", "1h", "GET", "US"]),
    st.text(max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), children, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=5))
def test_random_structures_raise_only_policy_error(data: dict[str, object]) -> None:
    text = yaml.safe_dump(data)
    try:
        policy = parse_policy_text(text, source="fuzz.yaml", known_verifiers={"ref"})
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.yaml")
        return
    assert policy.rules


_RULES = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "c", "d"]),
        "path": st.sampled_from(["/**", "/a/**", "/a", "/*/b"]),
    },
    optional={
        "action": st.sampled_from(["allow", "deny", "require", "other"]),
        "min_age": st.integers(-1, 101),
        "methods": st.lists(st.sampled_from(["GET", "post", "BREW"]), max_size=3),
        "hosts": st.lists(st.sampled_from(["a.example", "B.example:80", "*"]), max_size=2),
        "jurisdictions": st.dictionaries(
            st.sampled_from(["US", "gb", "NO", "X"]),
            st.fixed_dictionaries({}, optional={"min_age": st.integers(0, 30)}),
            max_size=2,
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_RULES, min_size=1, max_size=4))
def test_random_rule_lists_load_or_raise_policy_error(routes: list[dict[str, object]]) -> None:
    text = yaml.safe_dump({"version": 1, "defaults": {"verifiers": ["ref"]}, "routes": routes})
    try:
        policy = parse_policy_text(text, source="r.yaml")
    except PolicyError as exc:
        assert str(exc).startswith("r.yaml")
        return
    # Whatever loads is internally consistent: no rule covers a later one.
    for later, rule in enumerate(policy.rules):
        assert all(not earlier.covers(rule) for earlier in policy.rules[:later])
        assert (rule.requirement is not None) is (rule.action is Action.REQUIRE)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_raises_only_policy_error(text: str) -> None:
    try:
        parse_policy_text(text, source="t.yaml")
    except PolicyError:
        return
