"""The ``agegate`` command line (SPEC §9).

Exit codes: 0 success, 1 a finding (invalid policy, failing policy test,
non-conforming token), 2 a usage or configuration error.  Nothing imports
this module; it only wires arguments to library functions.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from gateway.errors import ConfigError, PolicyError
from gateway.session.keys import generate_key_line, readable_by_others, write_new_key_file

__all__ = ["main"]

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agegate", description="Privacy-preserving age-assurance gateway.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="serve the gateway")
    run.add_argument("--config", help="settings file (default: $AGEGATE_CONFIG)")
    run.add_argument("--workers", type=int, help="worker processes (needs a redis:// store)")

    config = commands.add_parser("config", help="settings commands")
    config_commands = config.add_subparsers(
        dest="config_command", required=True, parser_class=_Parser
    )
    config_check = config_commands.add_parser("check", help="validate settings and policy")
    config_check.add_argument("--config", help="settings file (default: $AGEGATE_CONFIG)")

    policy = commands.add_parser("policy", help="policy file commands")
    policy_commands = policy.add_subparsers(
        dest="policy_command", required=True, parser_class=_Parser
    )
    check = policy_commands.add_parser("check", help="validate policies and run their tests")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument(
        "--config", help="also check verifier names against these settings' verifiers"
    )
    explain = policy_commands.add_parser("explain", help="show the rule a request matches")
    explain.add_argument("file", metavar="FILE")
    explain.add_argument("request", metavar='"METHOD URL"')
    explain.add_argument(
        "--age-over",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="pretend the visitor proved age N or over (repeatable)",
    )
    explain.add_argument("--assurance", help="assurance level of that proof")
    explain.add_argument("--jurisdiction", help="jurisdiction code, e.g. US")

    keys = commands.add_parser("keys", help="session key commands")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    generate = keys_commands.add_parser("generate", help="print a new session key line")
    generate.add_argument(
        "--out", metavar="FILE", help="write it to a new FILE (mode 0600) instead of printing it"
    )

    verifier = commands.add_parser("verifier", help="verifier provider commands")
    verifier_commands = verifier.add_subparsers(
        dest="verifier_command", required=True, parser_class=_Parser
    )
    vcheck = verifier_commands.add_parser(
        "check", help="check a provider's JWKS and a sample token against the age-token profile"
    )
    vcheck.add_argument("--issuer", required=True, help="the provider's issuer (iss)")
    vcheck.add_argument("--jwks", required=True, help="JWKS URL or file")
    vcheck.add_argument("--token", required=True, help="a sample token, or @FILE")
    vcheck.add_argument("--audience", help="the audience the token should name")
    vcheck.add_argument("--nonce", help="the nonce the token should echo")
    vcheck.add_argument(
        "--max-lifetime",
        type=float,
        default=300.0,
        help="maximum exp - iat in seconds (default 300)",
    )

    pp = commands.add_parser("pp", help="Privacy Pass client commands")
    pp_commands = pp.add_subparsers(dest="pp_command", required=True, parser_class=_Parser)
    fetch = pp_commands.add_parser(
        "fetch", help="prove an age to a protected URL with a Privacy Pass token"
    )
    fetch.add_argument("--url", required=True, help="the protected URL (answers 401)")
    fetch.add_argument("--issuer", required=True, help="the attester/issuer base URL")
    fetch.add_argument("--birth-date", required=True, help="YYYY-MM-DD, for the attester")

    demo = commands.add_parser("demo", help="run the demo shop, reference verifier and gateway")
    demo.add_argument(
        "--session-ttl",
        metavar="DURATION",
        help="cap the demo session lifetime, e.g. 30s (default: the policy's)",
    )
    demo.add_argument("--policy", metavar="FILE", help="policy file (default: the example)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agegate`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"agegate: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PolicyError as exc:
        print(f"agegate: policy error: {exc}", file=sys.stderr)
        return EXIT_FINDING
    except KeyboardInterrupt:
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from gateway.serve import run
        from gateway.settings import load_settings

        settings = load_settings(args.config)
        if args.workers:
            from dataclasses import replace

            settings = replace(settings, workers=args.workers)
        return run(settings)
    if args.command == "config":
        return _config_check(args.config)
    if args.command == "policy":
        from gateway.cli.policy import check_command, explain_command

        if args.policy_command == "check":
            known = None
            if args.config is not None:
                from gateway.settings import load_settings

                known = set(load_settings(args.config).verifiers)
            return check_command(args.files, sys.stdout, sys.stderr, known_verifiers=known)
        return explain_command(
            args.file,
            args.request,
            args.age_over,
            sys.stdout,
            sys.stderr,
            assurance=args.assurance,
            jurisdiction=args.jurisdiction,
        )
    if args.command == "keys":
        return _keys_generate(args.out)
    if args.command == "verifier":
        return _verifier_check(args)
    if args.command == "pp":
        return _pp_fetch(args)
    if args.command == "demo":
        from gateway.demo.runner import run_demo
        from verifiers.config import parse_duration

        try:
            ttl = parse_duration(args.session_ttl) if args.session_ttl else None
        except ValueError as exc:
            print(f"agegate: --session-ttl: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return run_demo(session_ttl=ttl, policy=Path(args.policy) if args.policy else None)
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def _pp_fetch(args: argparse.Namespace) -> int:
    from verifiers.privacy_pass.client import ClientError, redeem

    try:
        result = asyncio.run(redeem(args.url, args.issuer, args.birth_date))
    except (ClientError, OSError, ValueError) as exc:
        print(f"agegate pp fetch: {exc}", file=sys.stderr)
        return EXIT_FINDING
    if not result.challenged:
        print(f"{result.status}: no PrivateToken challenge (the URL did not answer 401)")
        return EXIT_FINDING
    cookie = "session cookie __Host-agegate set" if result.session_cookie else "no session cookie"
    print(f"{result.status}: token redeemed; {cookie}")
    return EXIT_OK if 200 <= result.status < 300 else EXIT_FINDING


def _keys_generate(out: str | None) -> int:
    if out is None:
        print(generate_key_line())
        return EXIT_OK
    try:
        write_new_key_file(out)
    except FileExistsError:
        print(
            f"agegate: {out} exists; not overwritten (to rotate, put a new key line "
            "from 'agegate keys generate' at its top)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as exc:
        print(f"agegate: cannot write {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote a new session key to {out} (mode 0600)", file=sys.stderr)
    return EXIT_OK


def _config_check(path: str | None) -> int:
    from gateway.plugins import load_verifiers
    from gateway.runtime import Runtime, verifier_services
    from gateway.settings import load_settings

    settings = load_settings(path)
    # Settings and verifiers first (configuration errors, exit 2), then the policy (exit 1).
    verifiers = load_verifiers(settings.verifiers, verifier_services(settings, None))
    runtime = Runtime.create(settings)
    policy = runtime.policies.policy
    keys_file = settings.session_keys_file
    if keys_file is not None and readable_by_others(keys_file):
        print(
            f"warning: {keys_file} is readable by group or others; the session keys "
            f"seal every visitor's proof: chmod 600 {keys_file}",
            file=sys.stderr,
        )
    print(
        f"OK {settings.source}: listen {settings.listen}, admin {settings.admin_listen}, "
        f"{len(verifiers)} verifier(s), policy {policy.source} "
        f"({len(policy.rules)} rules, {len(policy.tests)} tests passed), store "
        f"{settings.store.split('://', 1)[0]}, {settings.workers} worker(s)"
    )
    return EXIT_OK


def _verifier_check(args: argparse.Namespace) -> int:
    from verifiers.token_profile import check_token, load_jwks

    token = args.token
    if token.startswith("@"):
        try:
            token = Path(token[1:]).read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"agegate: cannot read {token[1:]}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
    try:
        jwks = asyncio.run(load_jwks(args.jwks))
    except (OSError, ValueError) as exc:
        print(f"agegate: cannot load JWKS from {args.jwks}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    findings = check_token(
        token,
        issuer=args.issuer,
        jwks=jwks,
        audience=args.audience,
        nonce=args.nonce,
        now=time.time(),
        max_lifetime=args.max_lifetime,
    )
    for finding in findings:
        print(f"FAIL {finding.code}: {finding.message}")
    if findings:
        print(f"{len(findings)} deviation(s) from the age-token profile")
        return EXIT_FINDING
    print("OK the token conforms to the age-token profile")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
