# Sourced by the load-test scripts: a temp dir, the processes started in it, and
# stopping them on exit.  Set PY before sourcing; KEEP_TMP=1 keeps the directory.
#   TMP           the temp dir (made here, removed on exit)
#   PIDS          add every background process: stopped with TERM, then KILL after 5 s
#   free_ports N  N distinct free 127.0.0.1 ports (chosen while all N sockets are held)
#   start_nginx ROLE  nginx from loadtests/nginx.conf.template as "upstream" (the 1 KB
#                 site, on UPSTREAM_PORT) or "proxy" (on PROXY_PORT); needs ROOT

TMP=$(mktemp -d "${TMPDIR:-/tmp}/agegate-load.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        # Bounded wait: a process that ignores TERM for 5 s is killed.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() {
    "$PY" - "$1" <<'PYEOF'
import socket
import sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PYEOF
}

start_nginx() {  # start_nginx ROLE: render the template for ROLE and run it in the foreground
    local role=$1 other
    other=$([ "$role" = upstream ] && echo proxy || echo upstream)
    sed -e "s|@DIR@|$TMP|g" -e "s|@ROLE@|$role|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@PROXY_PORT@|$PROXY_PORT|g" -e "s|@BODY_1K@|$(printf 'a%.0s' $(seq 1024))|g" \
        -e "/# BEGIN $other/,/# END $other/d" \
        "$ROOT/loadtests/nginx.conf.template" >"$TMP/$role.conf"
    nginx -p "$TMP" -e "$TMP/$role-error.log" -c "$TMP/$role.conf" &
    PIDS+=($!)
    eval "NGINX_${role^^}_PID=$!"
}
