"""Embedded policy tests: parsing the ``tests:`` list of a policy file.

Each test is ``{request, session?, jurisdiction?, expect}``::

    - request: "GET https://shop.example/wine/red?x=1"   # or "GET /wine/red"
      session: {age_over: [18], age_under: [], assurance: standard,
                verifier: reference-token, expires_in: 1h}
      jurisdiction: US
      expect: allow        # allow | challenge | deny | bad_request
    - request: "GET /wine/../static/x"
      expect: {rule: static, decision: allow, reason: public, enforced: true}

A request without scheme and host is for host ``localhost``.  The query is
dropped; the path is canonicalized at run time exactly as the gateway does it,
so a refused path gives ``bad_request``.  Session ``assurance`` and
``verifier`` default to what the matched rule requires and its first accepted
verifier; ``expires_in: 0s`` makes an expired session.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import TypeVar

from gateway.core.paths import split_target
from gateway.errors import BadRequest
from gateway.policy.decide import REASONS
from gateway.policy.fields import (
    KNOWN_METHODS,
    FieldError,
    Where,
    check_keys,
    describe,
    parse_ages,
    parse_assurance,
    parse_jurisdiction_code,
)
from gateway.policy.model import Expectation, Outcome, PolicyTest, TestSession
from verifiers.config import parse_duration

__all__ = ["DEFAULT_TEST_HOST", "parse_expectation", "parse_request_line", "parse_tests"]

#: The host of a test or explain request written without scheme and host.
DEFAULT_TEST_HOST = "localhost"

TEST_KEYS = frozenset({"request", "session", "jurisdiction", "expect"})
SESSION_KEYS = frozenset({"age_over", "age_under", "assurance", "verifier", "expires_in"})
EXPECT_KEYS = frozenset({"rule", "decision", "reason", "enforced"})
_DECISIONS = ("allow", "challenge", "deny", "bad_request")
T = TypeVar("T")


def parse_request_line(text: object) -> tuple[str, str, str]:
    """``"GET https://host/p?q"`` -> ``("GET", "host", "/p")``; raises FieldError.

    The host defaults to :data:`DEFAULT_TEST_HOST`; the query is dropped; the
    path is returned as written (not yet canonical).
    """
    if not isinstance(text, str):
        raise FieldError(f'expected "METHOD URL" such as "GET /wine/red", got {describe(text)}')
    parts = text.split()
    if len(parts) != 2:
        raise FieldError(f'expected "METHOD URL" such as "GET /wine/red", got {text!r}')
    method, target = parts[0].upper(), parts[1]
    if method not in KNOWN_METHODS:
        raise FieldError(f"unknown method {parts[0]!r} in {text!r}")
    try:
        host, path, _query = split_target(target.encode("utf-8", "surrogateescape"))
    except BadRequest as exc:
        raise FieldError(f"cannot read the URL in {text!r}: {exc}") from None
    except UnicodeEncodeError:
        raise FieldError(f"cannot read the URL in {text!r}") from None
    return method, host or DEFAULT_TEST_HOST, path.decode("utf-8", "surrogateescape")


def parse_tests(
    items: list[object], source: str, rule_names: Collection[str]
) -> tuple[PolicyTest, ...]:
    """Parse the ``tests`` list; raises PolicyError naming the test number and field."""
    return tuple(
        _parse_test(item, index, Where(source, test=index), rule_names)
        for index, item in enumerate(items, start=1)
    )


def _parse_test(item: object, index: int, where: Where, rule_names: Collection[str]) -> PolicyTest:
    raw = where.mapping(item, None, TEST_KEYS)
    for key in ("request", "expect"):
        if key not in raw:
            raise where.error(key, "missing")
    try:
        method, host, path = parse_request_line(raw["request"])
    except FieldError as exc:
        raise where.error("request", str(exc)) from None
    try:
        expect = parse_expectation(raw["expect"], rule_names)
    except FieldError as exc:
        raise where.error("expect", str(exc)) from None
    session = None
    if raw.get("session") is not None:
        session = _parse_session(raw["session"], where)
    jurisdiction = None
    if raw.get("jurisdiction") is not None:
        try:
            jurisdiction = parse_jurisdiction_code(raw["jurisdiction"])
        except FieldError as exc:
            raise where.error("jurisdiction", str(exc)) from None
    return PolicyTest(
        index=index,
        request=str(raw["request"]),
        method=method,
        host=host,
        raw_path=path,
        expect=expect,
        session=session,
        jurisdiction=jurisdiction,
    )


def parse_expectation(value: object, rule_names: Collection[str]) -> Expectation:
    """``allow`` / ``challenge`` / ``deny`` / ``bad_request`` or ``{rule, decision, reason}``."""
    if isinstance(value, str):
        return _decision(value, Expectation())
    if not isinstance(value, Mapping) or not value:
        raise FieldError(
            f"expected one of {', '.join(_DECISIONS)} or a mapping with rule, decision, "
            f"reason, enforced; got {describe(value)}"
        )
    check_keys(value, EXPECT_KEYS)
    expect = Expectation()
    if "decision" in value:
        expect = _decision(value["decision"], expect)
    if "rule" in value:
        rule = value["rule"]
        if rule is not None and (not isinstance(rule, str) or rule not in rule_names):
            raise FieldError(f"rule {describe(rule)} is not a rule of this policy")
        expect = replace(expect, check_rule=True, rule=rule)
    if "reason" in value:
        reason = value["reason"]
        if not isinstance(reason, str) or not reason:
            raise FieldError(f"expected a reason code such as no_session, got {describe(reason)}")
        if not expect.bad_request and reason not in REASONS:
            raise FieldError(f"unknown reason {reason!r} (known: {', '.join(sorted(REASONS))})")
        expect = replace(expect, reason=reason)
    if "enforced" in value:
        if not isinstance(value["enforced"], bool):
            raise FieldError(f"enforced: expected true or false, got {describe(value['enforced'])}")
        expect = replace(expect, enforced=value["enforced"])
    return expect


def _decision(value: object, expect: Expectation) -> Expectation:
    if value == "bad_request":
        return replace(expect, bad_request=True)
    if isinstance(value, str) and value in ("allow", "challenge", "deny"):
        return replace(expect, outcome=Outcome(value))
    raise FieldError(f"expected one of {', '.join(_DECISIONS)}, got {describe(value)}")


def _parse_session(value: object, where: Where) -> TestSession:
    raw = where.mapping(value, "session", SESSION_KEYS)

    def field(key: str, parser: Callable[[object], T], default: T) -> T:
        if key not in raw:
            return default
        try:
            return parser(raw[key])
        except FieldError as exc:
            raise where.error(f"session.{key}", str(exc)) from None

    return TestSession(
        age_over=field("age_over", parse_ages, frozenset()),
        age_under=field("age_under", parse_ages, frozenset()),
        assurance=field("assurance", parse_assurance, None),
        verifier=field("verifier", _verifier, None),
        expires_in=field("expires_in", _expires_in, 3600.0),
    )


def _verifier(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise FieldError(f"expected a verifier name, got {describe(value)}")
    return value


def _expires_in(value: object) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise FieldError(str(exc)) from None
    if not math.isfinite(seconds):
        raise FieldError(f"expected a finite duration such as 1h or 0s, got {describe(value)}")
    return seconds
