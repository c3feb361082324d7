"""Run the reference verifier alone: ``python -m verifiers.reference --port 8081 --client O=URI``.

Development only.  uvicorn's access log is switched off because it prints
query strings (the nonce); the app writes its own query-free access lines.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from verifiers.reference.app import ReferenceConfig, build_reference_app
from verifiers.reference.issuer import IssuerKey, load_issuer_keys
from verifiers.reference.mdoc import MdocTestIssuer
from verifiers.sdk import load_signing_key

__all__ = ["main", "parse_args"]

BANNER = "agegate reference verifier: DEVELOPMENT ONLY, not a real age check"


def _client(value: str) -> tuple[str, str]:
    client_id, sep, redirect_uri = value.partition("=")
    if not sep or not client_id or not redirect_uri:
        raise argparse.ArgumentTypeError(f"expected ORIGIN=REDIRECT_URI, got {value!r}")
    return client_id, redirect_uri


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``--client`` may be repeated, also for one origin."""
    parser = argparse.ArgumentParser(prog="python -m verifiers.reference", description=BANNER)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port (default 8081)")
    parser.add_argument("--issuer", help="issuer URL (default http://localhost:PORT)")
    parser.add_argument(
        "--client",
        type=_client,
        action="append",
        default=[],
        metavar="ORIGIN=REDIRECT_URI",
        help="register a site and one of its redirect URIs (repeatable)",
    )
    parser.add_argument("--key", type=Path, help="PEM private key (default: a new ES256 key)")
    parser.add_argument("--token-lifetime", type=float, default=120.0, help="seconds (max 300)")
    parser.add_argument("--assurance-level", default="basic", help="level put in tokens")
    parser.add_argument(
        "--pp-keys-dir",
        type=Path,
        help="Privacy Pass issuer keys: load pp-<N>.key.pem here, create missing ones",
    )
    parser.add_argument(
        "--pp-thresholds",
        default="18,21",
        help="ages to keep a Privacy Pass key for (comma-separated, default 18,21)",
    )
    parser.add_argument(
        "--wallet-ca-key",
        type=Path,
        help="PEM EC key of the simulated EU wallet's test CA: serves /wallet",
    )
    parser.add_argument(
        "--wallet-mdoc-issuer",
        type=Path,
        help="PEM of the simulated wallet's mdoc test IACA and DS (keys and certificates): "
        "the /wallet answers eu-av requests",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the config from the command line and serve until interrupted."""
    args = parse_args(argv)
    clients: dict[str, tuple[str, ...]] = {}
    for client_id, redirect_uri in args.client:
        clients[client_id] = (*clients.get(client_id, ()), redirect_uri)
    try:
        key = load_signing_key(args.key.read_bytes()) if args.key else None
        pp_keys: tuple[IssuerKey, ...] = ()
        if args.pp_keys_dir is not None:
            thresholds = [int(n) for n in args.pp_thresholds.split(",") if n.strip()]
            pp_keys = tuple(load_issuer_keys(args.pp_keys_dir, thresholds))
        config = ReferenceConfig(
            issuer=args.issuer or f"http://localhost:{args.port}",
            clients=clients,
            signing_key=key,
            token_lifetime=args.token_lifetime,
            assurance_level=args.assurance_level,
            pp_keys=pp_keys,
            wallet_ca_key=(
                load_signing_key(args.wallet_ca_key.read_bytes()) if args.wallet_ca_key else None
            ),
            wallet_mdoc_issuer=(
                MdocTestIssuer.from_pem(args.wallet_mdoc_issuer.read_bytes())
                if args.wallet_mdoc_issuer
                else None
            ),
        )
    except (OSError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("verifiers.reference").warning(BANNER)
    uvicorn.run(
        build_reference_app(config),
        host=args.host,
        port=args.port,
        access_log=False,
        log_level=args.log_level,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
