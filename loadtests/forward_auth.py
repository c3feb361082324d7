"""Forward-auth benchmark: nginx + auth_request + agegate against nginx alone, in one run.

``bash loadtests/forward_auth.sh`` (or ``python loadtests/forward_auth.py``) runs,
with ``wrk -t2 -c10 -d10s --latency`` after a 2 s warm-up each:

    nginx          nginx (1 worker) proxying the upstream (loadtests/nginx.conf.template)
    authz-public   nginx running docs/integrations/nginx.conf, asking agegate, public route
    authz-session  the same on a ``min_age: 18`` route with a valid session cookie

The upstream is nginx ``return 200`` with a 1 KB body; agegate is one worker
serving ``/.agegate/authz`` on its admin listener.  Prints requests/s, p50, p99
and each row's ratio to the nginx row; writes ``loadtests/results/forward_auth.json``.
Exit 1 if a run saw socket errors or non-2xx answers.  Knobs: ``BENCH_DURATION``,
``BENCH_WARMUP``, ``BENCH_CONNECTIONS``, ``BENCH_THREADS``, ``BENCH_KEEP=1``.
Everything listens on free 127.0.0.1 ports in a temp dir and is stopped on exit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtests.benchlib import parse_wrk, setup  # noqa: E402

ROWS = (
    ("nginx", "nginx proxy (1 worker)"),
    ("authz-public", "nginx + auth_request + agegate, public"),
    ("authz-session", "nginx + auth_request + agegate, session"),
)
_BODY = "a" * 1024


def _ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def _wait(port: int, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port}")


def _main_conf(tmp: Path, role: str, body: str) -> str:
    return (
        f"worker_processes 1;\ndaemon off;\npid {tmp}/{role}.pid;\n"
        f"error_log {tmp}/{role}-error.log warn;\nevents {{ worker_connections 1024; }}\n"
        "http {\n    access_log off;\n    keepalive_requests 100000;\n"
        f"    client_body_temp_path {tmp}/{role}-body;\n    proxy_temp_path {tmp}/{role}-proxy;\n"
        f"    fastcgi_temp_path {tmp}/{role}-f;\n    uwsgi_temp_path {tmp}/{role}-u;\n"
        f"    scgi_temp_path {tmp}/{role}-s;\n{body}\n}}\n"
    )


def _template(tmp: Path, role: str, upstream: int, proxy: int) -> Path:
    """loadtests/nginx.conf.template rendered for ROLE, as bench.sh renders it."""
    other = "proxy" if role == "upstream" else "upstream"
    lines, skipping = [], False
    for line in (ROOT / "loadtests" / "nginx.conf.template").read_text().splitlines():
        if line.strip() == f"# BEGIN {other}":
            skipping = True
        if not skipping:
            lines.append(line)
        if line.strip() == f"# END {other}":
            skipping = False
    text = "\n".join(lines)
    for key, value in {
        "@DIR@": str(tmp),
        "@ROLE@": role,
        "@UPSTREAM_PORT@": str(upstream),
        "@PROXY_PORT@": str(proxy),
        "@BODY_1K@": _BODY,
    }.items():
        text = text.replace(key, value)
    path = tmp / f"{role}.conf"
    path.write_text(text)
    return path


def _forward_auth_conf(tmp: Path, site: int, public: int, authz: int, listen: int) -> Path:
    """docs/integrations/nginx.conf with only its PLACEHOLDER values replaced."""
    text = (ROOT / "docs" / "integrations" / "nginx.conf").read_text()
    for old, new in {
        "server 127.0.0.1:9000;": f"server 127.0.0.1:{site};",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{public};",
        "server 127.0.0.1:9901;": f"server 127.0.0.1:{authz};",
        "listen 80;": f"listen 127.0.0.1:{listen};",
    }.items():
        if text.count(old) != 1:
            raise RuntimeError(
                f"placeholder {old!r} not found once in docs/integrations/nginx.conf"
            )
        text = text.replace(old, new)
    path = tmp / "forward-auth.conf"
    path.write_text(_main_conf(tmp, "forward-auth", text))
    return path


def _check(url: str, cookie: str | None = None, expect: int = 200) -> None:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            status, size = response.status, len(response.read())
    except urllib.error.HTTPError as exc:
        status, size = exc.code, 0
    if status != expect or (expect == 200 and size != 1024):
        raise RuntimeError(f"{url} answered {status} with {size} bytes, expected {expect}")


def _wrk(name: str, url: str, tmp: Path, cookie: str | None) -> dict[str, object]:
    threads = os.environ.get("BENCH_THREADS", "2")
    connections = os.environ.get("BENCH_CONNECTIONS", "10")
    extra = ["-H", f"Cookie: {cookie}"] if cookie else []
    common = ["wrk", f"-t{threads}", f"-c{connections}", "--timeout", "2s", *extra, url]
    warmup = os.environ.get("BENCH_WARMUP", "2s")
    duration = os.environ.get("BENCH_DURATION", "10s")
    print(f"forward_auth: {name}: {url} (warm-up {warmup}, run {duration})", file=sys.stderr)
    subprocess.run([*common[:-1], f"-d{warmup}", url], check=True, capture_output=True)
    run = subprocess.run(
        [*common[:-1], f"-d{duration}", "--latency", url],
        check=True,
        capture_output=True,
        text=True,
    )
    (tmp / f"wrk-{name}.txt").write_text(run.stdout)
    return parse_wrk(run.stdout)


def main() -> int:
    for command in ("nginx", "wrk"):
        if shutil.which(command) is None:
            print(f"forward_auth: {command} is not installed (make system-deps)", file=sys.stderr)
            return 2
    tmp = Path(tempfile.mkdtemp(prefix="agegate-fa-bench."))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        up, proxy, front, gw, admin = _ports(5)
        processes.append(
            subprocess.Popen(
                ["nginx", "-p", str(tmp), "-c", str(_template(tmp, "upstream", up, proxy))]
            )
        )
        processes.append(
            subprocess.Popen(
                ["nginx", "-p", str(tmp), "-c", str(_template(tmp, "proxy", up, proxy))]
            )
        )
        setup(tmp, gw, admin, f"http://127.0.0.1:{up}")
        config = yaml.safe_load((tmp / "agegate.yaml").read_text())
        config["trusted_proxies"] = ["127.0.0.1/32"]
        (tmp / "agegate.yaml").write_text(yaml.safe_dump(config))
        agegate = os.environ.get("AGEGATE_CMD", f"{ROOT}/.venv/bin/agegate run").split()
        with (tmp / "agegate.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [*agegate, "--config", str(tmp / "agegate.yaml")],
                    cwd=tmp,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        conf = _forward_auth_conf(tmp, up, gw, admin, front)
        processes.append(subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf)]))
        for port, what in (
            (up, "upstream"),
            (proxy, "nginx"),
            (gw, "agegate"),
            (admin, "agegate admin"),
            (front, "nginx forward-auth"),
        ):
            _wait(port, what)
        cookie = (tmp / "cookie.txt").read_text().strip()
        _check(f"http://127.0.0.1:{proxy}/public/page")
        _check(f"http://127.0.0.1:{front}/public/page")
        _check(f"http://127.0.0.1:{front}/wine/red", expect=401)  # really protected
        _check(f"http://127.0.0.1:{front}/wine/red", cookie)
        runs = {
            "nginx": _wrk("nginx", f"http://127.0.0.1:{proxy}/public/page", tmp, None),
            "authz-public": _wrk(
                "authz-public", f"http://127.0.0.1:{front}/public/page", tmp, None
            ),
            "authz-session": _wrk(
                "authz-session", f"http://127.0.0.1:{front}/wine/red", tmp, cookie
            ),
        }
        base = runs["nginx"]["rps"]
        print(f"{'target':44} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'/nginx':>7}")
        for name, label in ROWS:
            run = runs[name]
            rps = run["rps"]
            run["ratio_to_nginx"] = round(rps / base, 3) if rps and base else None  # type: ignore[operator]
            print(
                f"{label:44} {rps or 0:>10.0f} {run['p50_ms'] or 0:>8.2f} "
                f"{run['p99_ms'] or 0:>8.2f} {run['ratio_to_nginx'] or 0:>7.3f}"
            )
        out = Path(
            os.environ.get("BENCH_OUT", ROOT / "loadtests" / "results" / "forward_auth.json")
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "cpus": os.cpu_count(),
                    "wrk": " ".join(
                        (
                            f"-t{os.environ.get('BENCH_THREADS', '2')}",
                            f"-c{os.environ.get('BENCH_CONNECTIONS', '10')}",
                            f"-d{os.environ.get('BENCH_DURATION', '10s')} --latency",
                        )
                    ),
                    "runs": runs,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"written to {out}")
        bad = [n for n, r in runs.items() if r["non_2xx"] or r["socket_errors"] or not r["rps"]]
        if bad:
            print(f"forward_auth: runs with errors or non-2xx: {', '.join(bad)}", file=sys.stderr)
            return 1
        return 0
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if os.environ.get("BENCH_KEEP") == "1":
            print(f"forward_auth: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
