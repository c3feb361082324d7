#!/usr/bin/env bash
# Forward-auth benchmark: nginx + auth_request + agegate against nginx alone (see forward_auth.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "${PYTHON:-$ROOT/.venv/bin/python}" "$ROOT/loadtests/forward_auth.py" "$@"
