"""``policy check`` / ``policy explain``: output and exit codes (0 ok, 1 finding, 2 usage)."""

from __future__ import annotations

import io
from pathlib import Path

from gateway.cli.policy import check_command, explain_command

EXAMPLE = str(Path(__file__).resolve().parents[3] / "policies" / "example.yaml")

GOOD = """\
version: 1
defaults: {verifiers: [reference-token, reference-pp], assurance: standard}
routes:
  - {name: static, path: /static/**, action: allow}
  - name: wine
    methods: [GET, HEAD, POST]
    path: /wine/**
    min_age: 18
    jurisdictions: {US: {min_age: 21}}
  - {name: audit, path: /audit/**, min_age: 18, mode: report-only}
  - {name: everything-else, path: /**, action: allow}
tests:
  - {request: "GET /wine/red", expect: challenge}
  - {request: "GET /static/x", expect: allow}
"""


def run_check(*paths: str, **kwargs: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = check_command(list(paths), out, err, **kwargs)  # type: ignore[arg-type]
    return code, out.getvalue(), err.getvalue()


def run_explain(path: str, request: str, *ages: int, **kwargs: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = explain_command(path, request, list(ages), out, err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def test_check_example_is_ok() -> None:
    code, out, err = run_check(EXAMPLE)
    assert code == 0, err
    assert out.startswith(f"OK {EXAMPLE}: 6 rules, ")
    assert out.rstrip().endswith("tests passed")
    assert err == ""


def test_check_good_file(write_file) -> None:
    path = write_file("good.yaml", GOOD)
    assert run_check(path) == (0, f"OK {path}: 4 rules, 2 tests passed\n", "")


def test_check_invalid_policy_exits_1_naming_file_rule_field(write_file) -> None:
    path = write_file(
        "bad.yaml", GOOD.replace("min_age: 18\n    jur", "min_age: eighteen\n    jur")
    )
    code, out, err = run_check(path)
    assert code == 1
    assert out == ""
    assert err == (
        f"INVALID {path}: rule 'wine': field 'min_age': "
        "expected a whole number from 1 to 99, got 'eighteen'\n"
    )


def test_check_shadowed_rule_exits_1(write_file) -> None:
    path = write_file("shadow.yaml", GOOD.replace("path: /static/**", "path: /**"))
    code, _, err = run_check(path)
    assert code == 1
    assert "rule 'wine': can never match: rule 'static'" in err


def test_check_failing_test_exits_1_and_says_what_differed(write_file) -> None:
    path = write_file("fail.yaml", GOOD.replace("expect: challenge", "expect: allow"))
    code, out, err = run_check(path)
    assert code == 1
    assert out == ""
    assert (
        f"FAIL {path}: test #1 (GET /wine/red): expected allow, got challenge "
        "(rule wine, reason no_session)\n"
    ) in err
    assert f"FAILED {path}: 4 rules, 1 of 2 tests failed" in err


def test_check_warns_without_catch_all_but_passes(write_file) -> None:
    text = GOOD.replace("  - {name: everything-else, path: /**, action: allow}\n", "")
    text = text.replace(
        '{request: "GET /static/x", expect: allow}', '{request: "GET /x", expect: deny}'
    )
    path = write_file("nocatch.yaml", text)
    code, out, err = run_check(path)
    assert code == 0
    assert out == f"OK {path}: 3 rules, 2 tests passed\n"
    assert f"warning: {path}: no catch-all rule" in err


def test_check_missing_file_is_usage_error(tmp_path: Path, write_file) -> None:
    good = write_file("good.yaml", GOOD)
    missing = str(tmp_path / "missing.yaml")
    code, out, err = run_check(good, missing)
    assert code == 2
    assert out.startswith(f"OK {good}")
    assert f"error: {missing}: no such file" in err
    assert run_check()[0] == 2


def test_check_unknown_verifier_when_verifiers_are_known(write_file) -> None:
    path = write_file("good.yaml", GOOD)
    code, _, err = run_check(path, known_verifiers={"reference-token"})
    assert code == 1
    assert "unknown verifier 'reference-pp'" in err


def test_explain_path_confusion_shows_canonical_path_and_rule() -> None:
    code, out, err = run_explain(EXAMPLE, "GET https://shop.example/static/%2e%2e/wine/red")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "request:   GET https://shop.example/static/%2e%2e/wine/red",
        "canonical: /wine/red   (host shop.example)",
        "session:   none",
        "rule:      wine (#3, path /wine/**, methods GET,HEAD,POST)",
        "decision:  challenge (no_session) — requires age 18, assurance basic, "
        "verifiers reference-token, reference-pp, eu-wallet, eu-av-wallet",
    ]


def test_explain_with_age_over_allows(write_file) -> None:
    path = write_file("good.yaml", GOOD)
    code, out, _ = run_explain(path, "GET https://shop.example/wine/red", 18)
    assert code == 0
    assert "session:   age over 18, assurance standard, verifier reference-token" in out
    assert "decision:  allow (session_ok) — requires age 18, assurance standard, " in out
    assert "verifiers reference-token, reference-pp" in out


def test_explain_with_too_low_assurance_or_jurisdiction(write_file) -> None:
    path = write_file("good.yaml", GOOD)
    _, out, _ = run_explain(path, "GET /wine/red", 18, assurance="basic")
    assert "decision:  challenge (assurance_too_low)" in out
    _, out, _ = run_explain(path, "GET /wine/red", 18, jurisdiction="us")
    assert "jurisdiction: US" in out
    assert "decision:  challenge (age_not_proven) — requires age 21" in out


def test_explain_report_only_and_public_and_no_match(write_file) -> None:
    path = write_file("good.yaml", GOOD)
    _, out, _ = run_explain(path, "GET /audit/x")
    assert "decision:  challenge (no_session), report-only: logged, not enforced" in out
    _, out, _ = run_explain(path, "GET /static/app.css")
    assert out.splitlines()[-1] == "decision:  allow (public)"
    nocatch = write_file(
        "n.yaml",
        GOOD.replace("  - {name: everything-else, path: /**, action: allow}\n", "").replace(
            '{request: "GET /static/x", expect: allow}', '{request: "GET /x", expect: deny}'
        ),
    )
    _, out, _ = run_explain(nocatch, "GET /x")
    assert "rule:      none (no rule matches)" in out
    assert "decision:  deny (no_matching_rule) — fail closed; the policy has no catch-all" in out


def test_explain_refused_path_is_bad_request() -> None:
    code, out, _ = run_explain(EXAMPLE, "GET /wine%2Fred")
    assert code == 0
    assert "canonical: refused (encoded_slash)" in out
    assert "decision:  bad_request (400)" in out


def test_explain_exit_codes(tmp_path: Path, write_file) -> None:
    assert run_explain(str(tmp_path / "none.yaml"), "GET /")[0] == 2
    assert run_explain(EXAMPLE, "GET")[0] == 2
    assert run_explain(EXAMPLE, "BREW /pot")[0] == 2
    assert run_explain(EXAMPLE, "GET /", 18, assurance="high")[0] == 2
    assert run_explain(EXAMPLE, "GET /", 18, jurisdiction="USA")[0] == 2
    assert run_explain(EXAMPLE, "GET /", 0)[0] == 2
    bad = write_file("bad.yaml", "version: 1\nroutes: nope\n")
    code, out, err = run_explain(bad, "GET /")
    assert (code, out) == (1, "")
    assert err.startswith(f"INVALID {bad}: field 'routes'")
