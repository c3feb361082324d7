"""Policy files: YAML -> :class:`~gateway.policy.model.Policy`, or a PolicyError.

Every error names the file, the rule (by name, or ``#n`` when it has none)
and the field, e.g. ``policies/x.yaml: rule 'wine': field 'min_age': expected
a whole number from 1 to 99, got 'eighteen'``.  Unknown keys are errors
anywhere.  Besides the schema, the loader checks what a schema cannot: a rule
that an earlier rule covers entirely (it could never match) is an error naming
both, and so is a verifier name that the settings do not configure.

YAML is read by :func:`gateway.policy.yamlfile.read_yaml` (stricter than
PyYAML's safe loader).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from gateway.core.hosts import host_name
from gateway.errors import PolicyError
from gateway.policy.embedded import parse_tests
from gateway.policy.fields import (
    KNOWN_METHODS,
    FieldError,
    Where,
    describe,
    parse_age,
    parse_assurance,
    parse_jurisdiction_code,
    parse_ttl,
    string_list,
)
from gateway.policy.matcher import PathPattern
from gateway.policy.model import Action, Defaults, Mode, Policy, Requirement, Rule
from gateway.policy.yamlfile import read_yaml
from verifiers.config import did_you_mean

__all__ = ["load_policy", "parse_policy", "parse_policy_text"]

TOP_KEYS = frozenset({"version", "defaults", "routes", "tests"})
DEFAULT_KEYS = frozenset({"verifiers", "session_ttl", "assurance", "mode", "case_insensitive"})
RULE_KEYS = frozenset(
    {
        "name",
        "path",
        "hosts",
        "methods",
        "action",
        "min_age",
        "assurance",
        "verifiers",
        "session_ttl",
        "mode",
        "jurisdictions",
    }
)
JURISDICTION_KEYS = frozenset({"min_age", "assurance"})
# Fields that only mean something on a rule that requires an age.
_REQUIRE_ONLY = ("min_age", "assurance", "verifiers", "session_ttl", "jurisdictions")

_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def load_policy(path: str | Path, *, known_verifiers: Collection[str] | None = None) -> Policy:
    """Read and parse a policy file; raises PolicyError (also when it cannot be read)."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(
            f"cannot read policy file: {exc.strerror or exc}", source=source
        ) from None
    return parse_policy_text(data, source=source, known_verifiers=known_verifiers)


def parse_policy_text(
    text: str | bytes, *, source: str, known_verifiers: Collection[str] | None = None
) -> Policy:
    """Parse policy YAML given as text or bytes (``sha256`` is of the UTF-8 bytes)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    data = read_yaml(raw, source)
    return parse_policy(
        data, source=source, known_verifiers=known_verifiers, sha256=hashlib.sha256(raw).hexdigest()
    )


def parse_policy(
    data: object,
    *,
    source: str,
    known_verifiers: Collection[str] | None = None,
    sha256: str | None = None,
) -> Policy:
    """Build a Policy from already-parsed YAML; raises PolicyError."""
    top = Where(source)
    if data is None:
        raise top.error(None, "the policy file is empty")
    doc = top.mapping(data, None, TOP_KEYS)
    if "version" not in doc:
        raise top.error("version", "missing; write 'version: 1' at the top")
    version = doc["version"]
    if version != 1 or isinstance(version, bool):
        raise top.error(
            "version", f"unsupported version {describe(version)} (this agegate reads 1)"
        )
    defaults = _parse_defaults(doc.get("defaults", {}), top, known_verifiers)
    routes = doc.get("routes")
    if not isinstance(routes, list) or not routes:
        raise top.error("routes", f"expected a non-empty list of rules, got {describe(routes)}")
    rules = _parse_rules(routes, defaults, source, known_verifiers)
    tests_data = doc.get("tests", [])
    if tests_data is None:
        tests_data = []
    if not isinstance(tests_data, list):
        raise top.error("tests", f"expected a list of tests, got {describe(tests_data)}")
    tests = parse_tests(tests_data, source, frozenset(rule.name for rule in rules))
    if sha256 is None:
        # Validated data is plain, acyclic YAML; sorted JSON is a stable identity for it.
        canonical = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
        sha256 = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return Policy(
        version=1,
        defaults=defaults,
        rules=rules,
        tests=tests,
        source=source,
        sha256=sha256,
        has_catch_all=any(rule.is_catch_all for rule in rules),
    )


def _parse_defaults(value: object, top: Where, known_verifiers: Collection[str] | None) -> Defaults:
    if value is None:
        value = {}
    raw = top.mapping(value, "defaults", DEFAULT_KEYS)
    base = Defaults()
    values: dict[str, Any] = {}
    for key, parser in (
        ("verifiers", lambda v: _verifiers(v, known_verifiers)),
        ("session_ttl", parse_ttl),
        ("assurance", parse_assurance),
        ("mode", _mode),
        ("case_insensitive", _flag),
    ):
        if key in raw:
            try:
                values[key] = parser(raw[key])
            except FieldError as exc:
                raise top.error(f"defaults.{key}", str(exc)) from None
    return Defaults(
        verifiers=values.get("verifiers", base.verifiers),
        session_ttl=values.get("session_ttl", base.session_ttl),
        assurance=values.get("assurance", base.assurance),
        mode=values.get("mode", base.mode),
        case_insensitive=values.get("case_insensitive", base.case_insensitive),
    )


def _parse_rules(
    routes: list[object], defaults: Defaults, source: str, known: Collection[str] | None
) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    by_name: dict[str, Rule] = {}
    for number, item in enumerate(routes, start=1):
        rule = _parse_rule(item, number, defaults, source, known)
        where = Where(source, rule.name)
        if rule.name in by_name:
            raise where.error(
                "name", f"duplicate name: rule #{by_name[rule.name].number} has it already"
            )
        for earlier in rules:
            if earlier.covers(rule):
                raise where.error(
                    None,
                    f"can never match: rule {earlier.name!r} (#{earlier.number}, earlier) "
                    "covers every request it matches; remove it or move it above "
                    f"{earlier.name!r}",
                )
        by_name[rule.name] = rule
        rules.append(rule)
    return tuple(rules)


def _parse_rule(
    item: object, number: int, defaults: Defaults, source: str, known: Collection[str] | None
) -> Rule:
    label = f"#{number}"
    if isinstance(item, Mapping) and isinstance(item.get("name"), str):
        label = item["name"]
    where = Where(source, label)
    raw = where.mapping(item, None, RULE_KEYS)

    def field(key: str, parser: Any, default: Any = None) -> Any:
        if key not in raw:
            return default
        try:
            return parser(raw[key])
        except FieldError as exc:
            raise where.error(key, str(exc)) from None

    if "name" not in raw:
        raise where.error("name", "missing; every rule needs a unique name (used in logs)")
    name = field("name", _name)
    if "path" not in raw:
        raise where.error("path", "missing; e.g. path: /wine/**")
    case_insensitive = defaults.case_insensitive
    path = field("path", lambda v: _pattern(v, case_insensitive))
    hosts = field("hosts", _hosts)
    methods = field("methods", _methods)
    mode = field("mode", _mode, defaults.mode)
    action = field("action", _action)
    if action is None:
        if "min_age" not in raw:
            raise where.error("action", "missing: set action (allow, deny or require) or min_age")
        action = Action.REQUIRE
    if action is not Action.REQUIRE:
        for key in _REQUIRE_ONLY:
            if key in raw:
                raise where.error(
                    key, f"only applies to rules that require an age, not to action {action}"
                )
        return Rule(name, number, path, hosts, methods, action, mode)
    if "min_age" not in raw:
        raise where.error("min_age", "missing: action require needs the age to require")
    verifiers = field("verifiers", lambda v: _verifiers(v, known), defaults.verifiers)
    if not verifiers:
        raise where.error("verifiers", "no verifiers: set defaults.verifiers or this rule's")
    requirement = Requirement(
        min_age=field("min_age", parse_age),
        assurance=field("assurance", parse_assurance, defaults.assurance),
        verifiers=verifiers,
        session_ttl=field("session_ttl", parse_ttl, defaults.session_ttl),
    )
    jurisdictions = _jurisdictions(raw.get("jurisdictions"), requirement, where)
    return Rule(name, number, path, hosts, methods, action, mode, requirement, jurisdictions)


def _jurisdictions(value: object, base: Requirement, where: Where) -> Mapping[str, Requirement]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise where.error(
            "jurisdictions",
            f"expected a mapping such as {{US: {{min_age: 21}}}}, got {describe(value)}",
        )
    out: dict[str, Requirement] = {}
    for key, override in value.items():
        try:
            code = parse_jurisdiction_code(key)
        except FieldError as exc:
            raise where.error("jurisdictions", str(exc)) from None
        field = f"jurisdictions.{code}"
        if code in out:
            raise where.error(field, "listed twice")
        entries = where.mapping(override, field, JURISDICTION_KEYS)
        if not entries:
            raise where.error(field, "expected min_age and/or assurance")
        min_age, assurance = base.min_age, base.assurance
        try:
            if "min_age" in entries:
                min_age = parse_age(entries["min_age"])
        except FieldError as exc:
            raise where.error(f"{field}.min_age", str(exc)) from None
        try:
            if "assurance" in entries:
                assurance = parse_assurance(entries["assurance"])
        except FieldError as exc:
            raise where.error(f"{field}.assurance", str(exc)) from None
        out[code] = Requirement(min_age, assurance, base.verifiers, base.session_ttl)
    return out


def _name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise FieldError(
            "expected a name of letters, digits, '.', '_' or '-' (at most 64), "
            f"got {describe(value)}"
        )
    return value


def _pattern(value: object, case_insensitive: bool) -> PathPattern:
    try:
        return PathPattern.compile(value, case_insensitive=case_insensitive)
    except ValueError as exc:
        raise FieldError(str(exc)) from None


def _hosts(value: object) -> frozenset[str]:
    hosts = set()
    for item in string_list(value, "host"):
        if "*" in item:
            raise FieldError(f"wildcard hosts are not supported, got {item!r}; list each host")
        if "/" in item:
            raise FieldError(f"expected a host name, got a URL {item!r}; write only the host")
        try:
            # The request path's own parser, so a rule names hosts exactly as they are matched.
            hosts.add(host_name(item))
        except ValueError as exc:
            raise FieldError(str(exc)) from None
    return frozenset(hosts)


def _methods(value: object) -> frozenset[str]:
    methods = set()
    for item in string_list(value, "method"):
        method = item.upper()
        if method not in KNOWN_METHODS:
            raise FieldError(f"unknown method {item!r} (known: {', '.join(sorted(KNOWN_METHODS))})")
        methods.add(method)
    return frozenset(methods)


def _verifiers(value: object, known: Collection[str] | None) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(string_list(value, "verifier name")))
    if known is not None:
        for name in names:
            if name not in known:
                listed = ", ".join(sorted(known)) or "none"
                hint = did_you_mean(name, known)
                raise FieldError(f"unknown verifier {name!r}{hint} (configured: {listed})")
    return names


def _action(value: object) -> Action:
    for action in Action:
        if value == action.value:
            return action
    raise FieldError(f"expected allow, deny or require, got {describe(value)}")


def _mode(value: object) -> Mode:
    for mode in Mode:
        if value == mode.value:
            return mode
    raise FieldError(f"expected enforce or report-only, got {describe(value)}")


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"expected true or false, got {describe(value)}")
    return value
