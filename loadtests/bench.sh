#!/usr/bin/env bash
# agegate benchmark (SPEC §10): in one run on this machine, wrk against
#   direct     the upstream (nginx `return 200` with a 1 KB body)
#   nginx      nginx (1 worker) proxying that upstream over a keep-alive pool
#   caddy      Caddy (Debian's, GOMAXPROCS=1) reverse_proxy to it, keep-alive pool: a Go
#              net/http proxy, the stack Go identity proxies are built on
#   allowed    agegate (1 worker) proxying it on a route the policy allows
#   protected  agegate on a min_age route with a valid session cookie
#   allowed-cookie  the allowed route with that same cookie (protected / this = the check
#              alone; it runs after protected, as a visitor's public pages follow a proven one)
# and print requests/s, p50, p99 and the ratios; JSON goes to loadtests/results/latest.json.
# Then the paced rows: direct and allowed again, each connection thinking BENCH_THINK_MS
# between requests (loadtests/think.lua), so latency is measured below capacity and
# "added p99" (SPEC §10: <= 2 ms at 10 clients) is service time, not queueing.
# Everything listens on free 127.0.0.1 ports in a temp dir and is stopped on exit.
#
# Environment:
#   AGEGATE_CMD          command that serves the gateway; "--config FILE" is appended
#                        (default: .venv/bin/agegate run)
#   BENCH_NGINX_ONLY=1   only the direct, nginx and caddy rows (no agegate)
#   BENCH_CADDY=0        no caddy rows (default: on when caddy is installed)
#   BENCH_ROUNDS=3       every row runs once per round, rounds in turn, so a slow spell of
#                        a shared machine falls on all rows alike (figures: all rounds summed)
#   BENCH_DURATION=5s (per row and round) BENCH_WARMUP=2s BENCH_CONNECTIONS=10 BENCH_THREADS=2
#   BENCH_THINK_MS=5 (paced rows; BENCH_PACED=0 skips them)
#   BENCH_OUT=path.json  BENCH_KEEP=1 (keep the temp dir: configs, logs, wrk output)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2s}
CONNECTIONS=${BENCH_CONNECTIONS:-10}
THREADS=${BENCH_THREADS:-2}
OUT=${BENCH_OUT:-$ROOT/loadtests/results/latest.json}
NGINX_ONLY=${BENCH_NGINX_ONLY:-0}
PACED=${BENCH_PACED:-1}
CADDY=${BENCH_CADDY:-1}
export BENCH_THINK_MS=${BENCH_THINK_MS:-5}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

for command in nginx wrk curl; do
    command -v "$command" >/dev/null || { echo "bench: $command is not installed (make system-deps)" >&2; exit 2; }
done
[ -x "$PY" ] || { echo "bench: no Python at $PY (make install)" >&2; exit 2; }
if [ "$CADDY" = 1 ] && ! command -v caddy >/dev/null; then
    echo "bench: caddy is not installed (make system-deps); no caddy rows" >&2
    CADDY=0
fi

if [ -n "${AGEGATE_CMD:-}" ]; then
    read -r -a AGEGATE <<<"$AGEGATE_CMD"
elif [ -x "$ROOT/.venv/bin/agegate" ] && [ -f "$ROOT/gateway/cli/main.py" ]; then
    AGEGATE=("$ROOT/.venv/bin/agegate" run)
else
    echo "bench: no agegate command yet (set AGEGATE_CMD); running the nginx rows only" >&2
    NGINX_ONLY=1
fi

KEEP_TMP=${BENCH_KEEP:-0}
# shellcheck source=loadtests/procs.sh
source "$ROOT/loadtests/procs.sh"
read -r UPSTREAM_PORT PROXY_PORT GATEWAY_PORT ADMIN_PORT CADDY_PORT < <(free_ports 5)

wait_port() {  # wait_port PORT NAME: until something accepts on 127.0.0.1:PORT (20 s)
    local deadline=$((SECONDS + 20))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        if ((SECONDS >= deadline)); then echo "bench: $2 did not listen on port $1" >&2; return 1; fi
        sleep 0.1
    done
}

start_caddy() {  # Caddy as a reverse proxy: one OS thread running Go code, like one worker
    sed -e "s|@DIR@|$TMP|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@CADDY_PORT@|$CADDY_PORT|g" "$ROOT/loadtests/Caddyfile.template" >"$TMP/Caddyfile"
    mkdir -p "$TMP/caddy-home"
    HOME="$TMP/caddy-home" XDG_DATA_HOME="$TMP/caddy-home" XDG_CONFIG_HOME="$TMP/caddy-home" \
        GOMAXPROCS=1 caddy run --adapter caddyfile --config "$TMP/Caddyfile" \
        >"$TMP/caddy.log" 2>&1 &
    PIDS+=($!)
    CADDY_PID=$!
}

check() {  # check NAME URL [CURL ARGS...]: the target answers 200 with the 1 KB body
    local name=$1 url=$2 got
    shift 2
    got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' "$@" "$url" || true)
    if [ "$got" != "200 1024" ]; then
        echo "bench: $name ($url) answered '$got', expected '200 1024'" >&2
        return 1
    fi
}

cpu_ticks() {  # cpu_ticks PID: user + system clock ticks the process has used (0 if unknown)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    read -r -a fields <<<"${stat##*) }"
    echo $((fields[11] + fields[12]))
}

run_wrk() {  # run_wrk NAME URL [WRK ARGS...]: (warm-up in round 1,) then the measured run
    # Output goes to wrk-NAME-rROUND.txt; with SERVER_PID set, that process's CPU ticks
    # during the run go to cpu-NAME-rROUND.txt.
    local name=$1 url=$2 before
    shift 2
    echo "bench: round $ROUND/$ROUNDS $name: $url (run $DURATION, $CONNECTIONS connections)" >&2
    if [ "$ROUND" = 1 ]; then
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" --timeout 2s "$@" "$url" >/dev/null
    fi
    before=$(cpu_ticks "${SERVER_PID:-0}")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 2s --latency "$@" "$url" \
        >"$TMP/wrk-$name-r$ROUND.txt"
    if [ -n "${SERVER_PID:-}" ]; then
        echo "$(($(cpu_ticks "$SERVER_PID") - before)) $(getconf CLK_TCK)" \
            >"$TMP/cpu-$name-r$ROUND.txt"
    fi
}

start_nginx upstream
start_nginx proxy
wait_port "$UPSTREAM_PORT" "upstream nginx"
wait_port "$PROXY_PORT" "proxy nginx"
check direct "http://127.0.0.1:$UPSTREAM_PORT/public/page"
check nginx "http://127.0.0.1:$PROXY_PORT/public/page"
if [ "$CADDY" = 1 ]; then
    start_caddy
    if ! wait_port "$CADDY_PORT" caddy; then
        tail -n 20 "$TMP/caddy.log" >&2
        exit 1
    fi
    check caddy "http://127.0.0.1:$CADDY_PORT/public/page"
fi

if [ "$NGINX_ONLY" != 1 ]; then
    "$PY" "$ROOT/loadtests/benchlib.py" setup "$TMP" --listen "$GATEWAY_PORT" \
        --admin "$ADMIN_PORT" --upstream "http://127.0.0.1:$UPSTREAM_PORT"
    (cd "$TMP" && exec "${AGEGATE[@]}" --config "$TMP/agegate.yaml" >"$TMP/agegate.log" 2>&1) &
    PIDS+=($!)
    AGEGATE_PID=$!
    if ! wait_port "$GATEWAY_PORT" agegate || ! wait_port "$ADMIN_PORT" "agegate admin"; then
        tail -n 20 "$TMP/agegate.log" >&2
        exit 1
    fi
    check allowed "http://127.0.0.1:$GATEWAY_PORT/public/page"
fi

caddy_version=$([ "$CADDY" = 1 ] && caddy version 2>/dev/null | cut -d' ' -f1 || echo none)
printf '{"wrk": "-t%s -c%s -d%s --latency", "rounds": %s, "nginx": "%s", "caddy": "%s", "body_bytes": 1024, "think_ms": %s}\n' \
    "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$(nginx -v 2>&1 | sed 's|.*/||')" \
    "$caddy_version" "$BENCH_THINK_MS" >"$TMP/meta.json"

# CPU per request is read for the proxies: nginx's one worker, and the agegate process.
NGINX_WORKER_PID=$(pgrep -P "$NGINX_PROXY_PID" | head -n 1 || true)
protected="http://127.0.0.1:$GATEWAY_PORT/wine/red"
cookie=
if [ "$NGINX_ONLY" != 1 ] && [ -f "$TMP/cookie.txt" ]; then
    cookie=$(<"$TMP/cookie.txt")
    # The route must really be protected (no cookie: not 200) and the cookie must open it.
    without=$(curl -s -o /dev/null -w '%{http_code}' "$protected" || true)
    if [ "$without" = 200 ]; then
        echo "bench: $protected answered 200 without a session; not benchmarking it" >&2
        cookie=
    elif ! check protected "$protected" -H "Cookie: $cookie"; then
        cookie=
    fi
fi
think=(-s "$ROOT/loadtests/think.lua")
for ROUND in $(seq "$ROUNDS"); do
    SERVER_PID='' run_wrk direct "http://127.0.0.1:$UPSTREAM_PORT/public/page"
    SERVER_PID=$NGINX_WORKER_PID run_wrk nginx "http://127.0.0.1:$PROXY_PORT/public/page"
    if [ "$CADDY" = 1 ]; then
        SERVER_PID=$CADDY_PID run_wrk caddy "http://127.0.0.1:$CADDY_PORT/public/page"
    fi
    if [ "$NGINX_ONLY" != 1 ]; then
        SERVER_PID=$AGEGATE_PID run_wrk allowed "http://127.0.0.1:$GATEWAY_PORT/public/page"
        if [ -n "$cookie" ]; then
            SERVER_PID=$AGEGATE_PID run_wrk protected "$protected" -H "Cookie: $cookie"
            SERVER_PID=$AGEGATE_PID run_wrk allowed-cookie \
                "http://127.0.0.1:$GATEWAY_PORT/public/page" -H "Cookie: $cookie"
        fi
    fi
    if [ "$PACED" = 1 ]; then
        SERVER_PID='' run_wrk direct-paced "http://127.0.0.1:$UPSTREAM_PORT/public/page" \
            "${think[@]}"
        SERVER_PID=$NGINX_WORKER_PID run_wrk nginx-paced \
            "http://127.0.0.1:$PROXY_PORT/public/page" "${think[@]}"
        if [ "$CADDY" = 1 ]; then
            SERVER_PID=$CADDY_PID run_wrk caddy-paced \
                "http://127.0.0.1:$CADDY_PORT/public/page" "${think[@]}"
        fi
        if [ "$NGINX_ONLY" != 1 ]; then
            SERVER_PID=$AGEGATE_PID run_wrk allowed-paced \
                "http://127.0.0.1:$GATEWAY_PORT/public/page" "${think[@]}"
        fi
    fi
done

"$PY" "$ROOT/loadtests/benchlib.py" report "$TMP" "$OUT"
