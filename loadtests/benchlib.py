"""Helpers for loadtests/bench.sh: gateway files in a temp dir, and the result table.

``python loadtests/benchlib.py setup DIR --listen PORT --admin PORT --upstream URL``
    writes ``agegate.yaml``, ``policy.yaml``, ``session.keys`` and ``jwks.json``
    into DIR; when the session module is present it also writes ``cookie.txt``
    (a ``Cookie:`` header value proving age 18, valid for one hour), so the
    protected route can be benchmarked with a valid session.

``python loadtests/benchlib.py report DIR OUT.json``
    reads the ``wrk-<name>.txt`` outputs in DIR (and ``cpu-<name>.txt``: the
    proxy's CPU ticks during that run), prints the table and writes JSON.

Not part of the test suite; only loopback addresses are ever written.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

__all__ = ["main", "parse_wrk"]

POLICY = """\
version: 1
defaults:
  verifiers: [bench-token]
  session_ttl: 1h
  assurance: basic
routes:
  - name: wine
    path: /wine/**
    min_age: 18
  - name: everything-else
    path: /**
    action: allow
"""

# Row order in the table; nginx and caddy are the baselines the ratios divide by.
ROWS = (
    ("direct", "upstream direct (nginx return 200)"),
    ("nginx", "nginx proxy (1 worker)"),
    ("caddy", "caddy reverse_proxy (GOMAXPROCS=1)"),
    ("allowed", "agegate, allowed route"),
    ("protected", "agegate, protected route + session"),
    ("allowed-cookie", "agegate, allowed route + session"),
)
# Paced rows (loadtests/think.lua): below capacity, so p99 is service time.
PACED_ROWS = (
    ("direct-paced", "upstream direct, paced"),
    ("nginx-paced", "nginx proxy, paced"),
    ("caddy-paced", "caddy reverse_proxy, paced"),
    ("allowed-paced", "agegate, allowed route, paced"),
)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def setup(directory: Path, listen: int, admin: int, upstream: str) -> None:
    """Write the gateway's settings, policy, keys and (when possible) a session cookie."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from gateway.session.keys import generate_key_line
    from verifiers import sdk

    signing_key = ec.generate_private_key(ec.SECP256R1())
    (directory / "jwks.json").write_text(json.dumps(sdk.jwks(signing_key)))
    (directory / "session.keys").write_text(generate_key_line() + "\n")
    (directory / "policy.yaml").write_text(POLICY)
    origin = f"http://localhost:{listen}"
    settings = {
        "listen": f"127.0.0.1:{listen}",
        "admin_listen": f"127.0.0.1:{admin}",
        "public_origin": origin,
        "hosts": ["localhost", "127.0.0.1"],
        "upstream": upstream,
        "session_keys_file": "session.keys",
        "policy": "policy.yaml",
        "verifiers": {
            "bench-token": {
                "kind": "age-token",
                "issuer": "https://issuer.bench",
                "jwks_file": "jwks.json",
                "algorithms": ["ES256"],
                "authorize_url": "https://issuer.bench/authorize",
            }
        },
        "log": {"format": "json", "level": "warning"},
    }
    config = directory / "agegate.yaml"
    config.write_text(yaml.safe_dump(settings))
    cookie = _session_cookie(config)
    if cookie is not None:
        (directory / "cookie.txt").write_text(cookie)


def _session_cookie(config: Path) -> str | None:
    """``__Host-agegate=<sealed session>`` proving age 18, or None before sessions exist."""
    try:
        from gateway.policy.facts import SessionClaims
        from gateway.session.codec import SESSION_COOKIE, SessionCodec
        from gateway.settings import load_settings
        from verifiers.base import AssuranceLevel
    except ImportError as exc:
        print(f"bench: no session cookie ({exc}); protected row skipped", file=sys.stderr)
        return None
    settings = load_settings(config)
    now = time.time()
    claims = SessionClaims(
        age_over=frozenset({18}),
        age_under=frozenset(),
        assurance=AssuranceLevel.BASIC,
        verifier="bench-token",
        issued_at=now,
        expires_at=now + 3600,
    )
    value = SessionCodec(settings.session_keys, settings.audience).seal(claims)
    return f"{SESSION_COOKIE}={value}"


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests/s, p50/p90/p99 (ms), errors and non-2xx counts from ``wrk --latency`` output."""
    result: dict[str, Any] = {"rps": None, "p50_ms": None, "p90_ms": None, "p99_ms": None}
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if rps:
        result["rps"] = float(rps.group(1))
    for pct in ("50", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
        if found:
            result[f"p{pct}_ms"] = round(float(found.group(1)) * _UNITS[found.group(2)], 3)
    requests = re.search(r"^\s+(\d+) requests in", text, re.M)
    result["requests"] = int(requests.group(1)) if requests else None
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(r"Socket errors:(.*)$", text, re.M)
    result["socket_errors"] = errors.group(1).strip() if errors else None
    return result


def report(directory: Path, out: Path) -> int:
    """Print the comparison table and write it as JSON; exit 1 if a run had errors."""
    runs: dict[str, dict[str, Any]] = {}
    for name, _ in (*ROWS, *PACED_ROWS):
        combined = combine_rounds(directory, name)
        if combined is not None:
            runs[name] = combined
    meta = (
        json.loads((directory / "meta.json").read_text())
        if (directory / "meta.json").exists()
        else {}
    )

    def ratio(name: str, base: str) -> float | None:
        a, b = runs.get(name, {}).get("rps"), runs.get(base, {}).get("rps")
        return round(a / b, 3) if a and b else None

    def added_p99(name: str, direct: str = "direct") -> float | None:
        a, b = runs.get(name, {}).get("p99_ms"), runs.get(direct, {}).get("p99_ms")
        return round(a - b, 3) if a is not None and b is not None else None

    for name, run in runs.items():
        paced = name.endswith("-paced")
        run["ratio_to_nginx"] = None if paced else ratio(name, "nginx")
        run["ratio_to_caddy"] = None if paced else ratio(name, "caddy")
        run["added_p99_ms_over_direct"] = added_p99(name, "direct-paced" if paced else "direct")
    summary = {
        "agegate_allowed_over_nginx": ratio("allowed", "nginx"),
        "agegate_allowed_over_caddy": ratio("allowed", "caddy"),
        "agegate_protected_over_allowed": ratio("protected", "allowed"),
        # The session check alone: both requests carry the same cookie.
        "agegate_protected_over_allowed_with_cookie": ratio("protected", "allowed-cookie"),
        "agegate_added_p99_ms": added_p99("allowed"),
        "agegate_added_p99_ms_paced": added_p99("allowed-paced", "direct-paced"),
        "nginx_added_p99_ms_paced": added_p99("nginx-paced", "direct-paced"),
        "caddy_added_p99_ms_paced": added_p99("caddy-paced", "direct-paced"),
        "agegate_cpu_us_per_request": runs.get("allowed", {}).get("cpu_us_per_request"),
        "nginx_cpu_us_per_request": runs.get("nginx", {}).get("cpu_us_per_request"),
        "caddy_cpu_us_per_request": runs.get("caddy", {}).get("cpu_us_per_request"),
        "targets": {
            "agegate_allowed_over_nginx": ">= 0.35 (aim 0.4)",
            "agegate_allowed_over_caddy": ">= 1.2",
            "agegate_protected_over_allowed": ">= 0.95",
            "agegate_added_p99_ms_paced": "<= 2",
        },
    }
    document = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": _cpus(), "python": platform.python_version(), **meta},
        "runs": runs,
        "summary": summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")

    header = f"{'target':40} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'/nginx':>7} {'/caddy':>7}"
    print(f"{header} {'+p99 ms':>8} {'cpu us/req':>10}")
    for name, label in (*ROWS, *PACED_ROWS):
        run = runs.get(name)
        if run is None:
            if name in dict(ROWS):
                print(f"{label:40} {'(skipped)':>10}")
            continue
        print(
            f"{label:40} {_fmt(run['rps'], 0):>10} {_fmt(run['p50_ms'], 2):>8} "
            f"{_fmt(run['p99_ms'], 2):>8} {_fmt(run['ratio_to_nginx'], 3):>7} "
            f"{_fmt(run['ratio_to_caddy'], 3):>7} "
            f"{_fmt(run['added_p99_ms_over_direct'], 2):>8} "
            f"{_fmt(run['cpu_us_per_request'], 0):>10}"
        )
    print(
        f"agegate/nginx = {_fmt(summary['agegate_allowed_over_nginx'], 3)} (target ≥ 0.35), "
        f"agegate/caddy = {_fmt(summary['agegate_allowed_over_caddy'], 3)} (≥ 1.2), "
        f"protected/allowed = {_fmt(summary['agegate_protected_over_allowed'], 3)} (≥ 0.95; "
        f"same cookie on both {_fmt(summary['agegate_protected_over_allowed_with_cookie'], 3)}), "
        f"added p99 paced = {_fmt(summary['agegate_added_p99_ms_paced'], 2)} ms (≤ 2; "
        f"closed loop {_fmt(summary['agegate_added_p99_ms'], 2)} ms)"
    )
    print(f"written to {out}")
    bad = [n for n, r in runs.items() if r["non_2xx"] or r["socket_errors"] or not r["rps"]]
    if bad:
        print(f"bench: runs with errors or non-2xx responses: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def combine_rounds(directory: Path, name: str) -> dict[str, Any] | None:
    """One row from its rounds (``wrk-NAME-rN.txt``), or None when it did not run.

    Requests/s is the mean over rounds (they all last as long), so a ratio of
    two rows is the ratio of their requests summed over the same interleaved
    rounds; p50/p99 are the medians of the rounds'; CPU per request is all
    the ticks over all the requests.  Each round's own figures stay in ``rounds``.
    """
    paths = sorted(directory.glob(f"wrk-{name}-r*.txt"), key=_round_number)
    if not paths:
        return None
    rounds = [parse_wrk(path.read_text()) for path in paths]
    ticks = [_cpu_ticks(directory / path.name.replace("wrk-", "cpu-", 1)) for path in paths]
    rps = [r["rps"] for r in rounds]
    requests = [r["requests"] for r in rounds]
    errors = [r["socket_errors"] for r in rounds if r["socket_errors"]]
    combined: dict[str, Any] = {
        "rps": round(statistics.fmean(rps), 2) if all(rps) else None,
        "requests": sum(requests) if all(r is not None for r in requests) else None,
        "non_2xx": sum(r["non_2xx"] for r in rounds),
        "socket_errors": "; ".join(errors) or None,
    }
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        values = [r[key] for r in rounds]
        combined[key] = statistics.median(values) if None not in values else None
    seconds = [t for t in ticks if t is not None]
    combined["cpu_us_per_request"] = (
        round(sum(seconds) / combined["requests"] * 1e6, 1)
        if combined["requests"] and len(seconds) == len(rounds) and sum(seconds) > 0
        else None
    )
    combined["rounds"] = rounds
    return combined


def _round_number(path: Path) -> int:
    return int(path.stem.rsplit("-r", 1)[1])


def _cpu_ticks(path: Path) -> float | None:
    """CPU seconds the proxy used in one run, from ``ticks clk_tck`` in ``path``."""
    if not path.exists():
        return None
    ticks, per_second = (int(v) for v in path.read_text().split())
    return ticks / per_second


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cpus() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    """Command line for bench.sh; see the module docstring."""
    parser = argparse.ArgumentParser(prog="benchlib")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("setup")
    make.add_argument("directory", type=Path)
    make.add_argument("--listen", type=int, required=True)
    make.add_argument("--admin", type=int, required=True)
    make.add_argument("--upstream", required=True)
    show = commands.add_parser("report")
    show.add_argument("directory", type=Path)
    show.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args.directory, args.listen, args.admin, args.upstream)
        return 0
    return report(args.directory, args.out)


if __name__ == "__main__":
    sys.exit(main())
