"""``agegate policy check`` and ``agegate policy explain``, as plain functions.

They print to the streams they are given and return the exit code (0 ok, 1 a
finding: invalid policy or failing test, 2 usage: missing file, bad
arguments), so ``gateway/cli/main.py`` stays a thin argument parser and tests need
no subprocess.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TextIO

from gateway.errors import PolicyError
from gateway.policy.embedded import parse_request_line
from gateway.policy.fields import FieldError, parse_jurisdiction_code
from gateway.policy.loader import load_policy
from gateway.policy.model import Policy, Requirement, TestSession
from gateway.policy.testing import Evaluation, evaluate, policy_warnings, run_policy_tests
from verifiers.base import AssuranceLevel

__all__ = ["EXIT_FINDING", "EXIT_OK", "EXIT_USAGE", "check_command", "explain_command"]

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2


def check_command(
    paths: Sequence[str],
    out: TextIO,
    err: TextIO,
    *,
    known_verifiers: Collection[str] | None = None,
) -> int:
    """Validate each policy file and run its embedded tests.

    Prints ``OK <file>: N rules, M tests passed`` per good file, the error or
    each failing test otherwise, and warnings (no catch-all rule, …) to ``err``.
    """
    if not paths:
        print("usage: agegate policy check FILE...", file=err)
        return EXIT_USAGE
    code = EXIT_OK
    for path in paths:
        code = max(code, _check_one(path, out, err, known_verifiers))
    return code


def _check_one(path: str, out: TextIO, err: TextIO, known: Collection[str] | None) -> int:
    if not Path(path).is_file():
        print(f"error: {path}: no such file", file=err)
        return EXIT_USAGE
    try:
        policy = load_policy(path, known_verifiers=known)
    except PolicyError as exc:
        print(f"INVALID {exc}", file=err)
        return EXIT_FINDING
    for warning in policy_warnings(policy):
        print(f"warning: {path}: {warning}", file=err)
    results = run_policy_tests(policy)
    failed = [result for result in results if not result.passed]
    for result in failed:
        print(f"FAIL {path}: test #{result.index} ({result.request}): {result.message}", file=err)
    rules = _plural(len(policy.rules), "rule")
    if failed:
        print(
            f"FAILED {path}: {rules}, {len(failed)} of {_plural(len(results), 'test')} failed",
            file=err,
        )
        return EXIT_FINDING
    print(f"OK {path}: {rules}, {_plural(len(results), 'test')} passed", file=out)
    return EXIT_OK


def explain_command(
    path: str,
    request: str,
    age_over: Sequence[int],
    out: TextIO,
    err: TextIO,
    *,
    assurance: str | None = None,
    jurisdiction: str | None = None,
) -> int:
    """Print which rule matches ``request`` ("METHOD URL") and what it decides.

    With ``age_over`` the visitor has a session proving those thresholds, at
    ``assurance`` (default: the level the rule requires) from the rule's first
    accepted verifier; without, no session.
    """
    if not Path(path).is_file():
        print(f"error: {path}: no such file", file=err)
        return EXIT_USAGE
    try:
        method, host, raw_path = parse_request_line(request)
        level = AssuranceLevel.parse(assurance) if assurance is not None else None
        code = parse_jurisdiction_code(jurisdiction) if jurisdiction is not None else None
        if any(isinstance(age, bool) or not 1 <= age <= 99 for age in age_over):
            raise FieldError("--age-over takes whole numbers from 1 to 99")
    except (FieldError, ValueError) as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        print(f"INVALID {exc}", file=err)
        return EXIT_FINDING
    session = TestSession(age_over=frozenset(age_over), assurance=level) if age_over else None
    result = evaluate(policy, method, host, raw_path, session, code)
    for line in explain_lines(request, result, policy, code):
        print(line, file=out)
    return EXIT_OK


def explain_lines(
    request: str, result: Evaluation, policy: Policy, jurisdiction: str | None
) -> list[str]:
    """The lines ``explain`` prints for one evaluated request."""
    lines = [f"request:   {request}"]
    if result.path is None:
        refused = result.refused
        reason = refused.reason if refused else "refused"
        lines.append(f"canonical: refused ({reason}): {refused}")
        lines.append("decision:  bad_request (400): refused before any rule is matched")
        return lines
    lines.append(f"canonical: {result.path}   (host {result.host})")
    if jurisdiction:
        lines.append(f"jurisdiction: {jurisdiction}")
    session = result.session
    if session is not None:
        ages = ", ".join(str(age) for age in sorted(session.age_over))
        lines.append(
            f"session:   age over {ages}, assurance {session.assurance.label}, "
            f"verifier {session.verifier}"
        )
    else:
        lines.append("session:   none")
    rule = result.rule
    lines.append(f"rule:      {rule.describe() if rule else 'none (no rule matches)'}")
    decision = result.decision
    if decision is None:  # only when refused, handled above
        return lines
    text = f"decision:  {decision.outcome} ({decision.reason})"
    if not decision.enforced:
        text += ", report-only: logged, not enforced"
    if decision.requirement is not None:
        text += " — " + _requires(decision.requirement)
    if rule is None:
        text += " — fail closed" + ("" if policy.has_catch_all else "; the policy has no catch-all")
    lines.append(text)
    return lines


def _requires(requirement: Requirement) -> str:
    return (
        f"requires age {requirement.min_age}, assurance {requirement.assurance.label}, "
        f"verifiers {', '.join(requirement.verifiers)}"
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")
