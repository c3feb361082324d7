"""``agegate`` with JWKS freshness floors of a second instead of a minute (for fault tests).

In production a fetched key set stays fresh for at least 60 s and a failed
refresh waits 10 s; a test of ``jwks_max_stale`` would take minutes.  Run as
``python -m tests.operations.short_jwks_gateway run --config …``.
"""

from __future__ import annotations

from gateway.cli.main import main
from verifiers import jwks

jwks.MIN_FRESHNESS = jwks.DEFAULT_FRESHNESS = 1.0
jwks.FAILURE_BACKOFF = 0.2

if __name__ == "__main__":
    raise SystemExit(main())
