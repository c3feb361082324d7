"""The key provider goes down: cached keys serve until ``jwks_max_stale``, then refusal, recovery.

The gateway runs with freshness floors of one second (``short_jwks_gateway``)
so the staleness window is seconds, not the production minimum of a minute.
"""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from tests.operations.support import JwksProvider, verify, wait_for
from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer
from verifiers import sdk


def test_cached_keys_serve_until_max_stale_then_verifications_are_refused(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    signer = ec.generate_private_key(ec.SECP256R1())
    provider = JwksProvider(sdk.jwks(signer))
    gw = GatewayProcess(
        tmp_path,
        upstream=upstream.url,
        signing_key=signer,
        module="tests.operations.short_jwks_gateway",
        verifier={"jwks_file": None, "jwks_uri": provider.uri, "jwks_max_stale": "2s"},
    )
    provider.start()
    try:
        with gw:
            assert verify(gw).status_code == 200  # keys fetched, fresh for 1 s from now
            provider.kill()
            kept_until = time.time()
            time.sleep(1.5)  # past freshness, inside max_stale: the cached keys still serve
            assert verify(gw).status_code == 200
            time.sleep(max(0.0, kept_until + 3.3 - time.time()))  # fresh 1 s + stale 2 s
            refused = verify(gw)
            assert refused.status_code == 401
            assert refused.json()["reason"] == "jwks_unavailable"
            provider.start()
            wait_for(lambda: verify(gw).status_code == 200, timeout=5)
    finally:
        provider.stop()
