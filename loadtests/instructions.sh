#!/usr/bin/env bash
# Instructions per proxied request in the gateway process, under valgrind's callgrind.
#
# Unlike requests/s or CPU time, an instruction count does not move with the
# machine's load, so it shows what a change to the request path costs even on a
# busy shared machine.  One nginx upstream (loadtests/nginx.conf.template,
# 1 KB body) and one gateway (the bench's settings and policy, benchlib.py setup)
# run on free 127.0.0.1 ports in a temp dir; the gateway runs under callgrind.
# For each case: 200 keep-alive GETs on one connection to warm up, the counters
# zeroed, N more GETs, the counters dumped; the figure is instructions / N.
#
#   idle            what the gateway does per second with no traffic (timers,
#                   the log flusher): included in every figure below, ≈ 1-2 k per
#                   request at callgrind's speed
#   allowed         GET /public/page, a route the policy allows
#   protected       GET /wine/red (min_age 18) with the session cookie
#   allowed+cookie  GET /public/page with that same cookie (stripped before the
#                   upstream), run after protected as in bench.sh: a verified
#                   visitor's public pages follow a protected one, whose check
#                   has by then opened the cookie.  protected - this is what the
#                   session check itself costs.
#
# Environment: INSTRUCTIONS_REQUESTS=2000 (N), AGEGATE_CMD as for bench.sh.
# Needs valgrind (apt-get install valgrind); takes about a minute.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
N=${INSTRUCTIONS_REQUESTS:-2000}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
for command in nginx valgrind callgrind_control; do
    command -v "$command" >/dev/null || { echo "instructions: $command is not installed" >&2; exit 2; }
done
if [ -n "${AGEGATE_CMD:-}" ]; then
    read -r -a AGEGATE <<<"$AGEGATE_CMD"
else
    AGEGATE=("$PY" "$ROOT/.venv/bin/agegate" run)
fi

# shellcheck source=loadtests/procs.sh
source "$ROOT/loadtests/procs.sh"
read -r UPSTREAM_PORT GATEWAY_PORT ADMIN_PORT < <(free_ports 3)
PROXY_PORT=0  # no proxy role here
start_nginx upstream
"$PY" "$ROOT/loadtests/benchlib.py" setup "$TMP" --listen "$GATEWAY_PORT" \
    --admin "$ADMIN_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT"
(cd "$TMP" && exec valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" \
    "${AGEGATE[@]}" --config "$TMP/agegate.yaml" >"$TMP/agegate.log" 2>&1) &
PIDS+=($!)
GATEWAY_PID=$!

"$PY" - "$GATEWAY_PID" "$GATEWAY_PORT" "$N" "$TMP" <<'EOF'
import glob
import re
import socket
import subprocess
import sys
import time

pid, port, n, directory = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def get(sock: socket.socket, path: bytes, extra: bytes) -> None:
    sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n" + extra + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("instructions: the gateway closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"instructions: {path.decode()} answered {head[:40]!r}")
    length = int(re.search(rb"(?im)^content-length: (\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)


def counted(action) -> int:
    """Instructions callgrind counts in the gateway while ``action`` runs."""
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    action()
    before = set(glob.glob(f"{directory}/callgrind.out*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    total = 0
    for name in set(glob.glob(f"{directory}/callgrind.out*")) - before:
        with open(name) as dump:
            for line in dump:
                if line.startswith(("summary:", "totals:")):
                    total = max(total, int(line.split()[1]))
    return total


deadline = time.monotonic() + 300  # python under callgrind starts slowly
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit("instructions: the gateway did not start") from None
        time.sleep(0.5)
cookie = open(f"{directory}/cookie.txt").read().strip().encode()
print(f"idle: {counted(lambda: time.sleep(5)) / 5 / 1000:.1f} k instructions/second")
cases = (
    ("allowed", b"/public/page", b""),
    ("protected", b"/wine/red", b"Cookie: " + cookie + b"\r\n"),
    ("allowed+cookie", b"/public/page", b"Cookie: " + cookie + b"\r\n"),
)
for name, path, extra in cases:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(200):
            get(sock, path, extra)
        total = counted(lambda: [get(sock, path, extra) for _ in range(n)])
    print(f"{name}: {total / n / 1000:.1f} k instructions/request")
EOF
