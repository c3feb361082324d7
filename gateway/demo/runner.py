"""``agegate demo``: the wine shop behind agegate, with the reference verifier, in one command.

Three processes, each the way it would run for real:

- the demo shop (``gateway.demo.shop``) under uvicorn, as the upstream;
- the reference verifier (``python -m verifiers.reference``), development only;
- the gateway (``python -m gateway.cli.main run --config …``).

Keys are throwaway: a session key and the verifier's signing key are written
to a temporary directory with the ``agegate.yaml`` that ties the three
together, and the directory is removed when the demo stops (Ctrl-C or
SIGTERM).  Ports come from the arguments, overridden by the environment
variables ``AGEGATE_DEMO_GATEWAY_PORT``, ``AGEGATE_DEMO_VERIFIER_PORT``,
``AGEGATE_DEMO_SHOP_PORT`` and ``AGEGATE_DEMO_ADMIN_PORT``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import yaml

from gateway.session.keys import generate_key_line
from verifiers.reference.issuer import load_issuer_keys
from verifiers.reference.mdoc import MdocTestIssuer
from verifiers.reference.sd_jwt_issuer import TEST_VCT, ReferenceCa
from verifiers.sdk import generate_signing_key, signing_key_pem

__all__ = [
    "AV_WALLET_VERIFIER_NAME",
    "PP_VERIFIER_NAME",
    "VERIFIER_NAME",
    "WALLET_VERIFIER_NAME",
    "DemoFiles",
    "DemoPorts",
    "default_policy",
    "demo_commands",
    "demo_ports",
    "run_demo",
    "write_demo_files",
]

VERIFIER_NAME = "reference-token"
# A simulated EU wallet (SD-JWT VC over OpenID4VP) served by the reference service.
WALLET_VERIFIER_NAME = "eu-wallet"
# The same simulated wallet answering with an ISO 18013-5 mdoc (eu.europa.ec.av.1).
AV_WALLET_VERIFIER_NAME = "eu-av-wallet"
# The reference service is also a Privacy Pass issuer; one key per threshold.
PP_VERIFIER_NAME = "reference-pp"
PP_THRESHOLDS = (18, 21)
# The reference verifier only simulates a check, so it claims the lowest useful level.
DEMO_ASSURANCE = "basic"
_HOST = "127.0.0.1"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DemoPorts:
    """The four loopback ports the demo listens on."""

    gateway: int
    verifier: int
    shop: int
    admin: int

    @property
    def origin(self) -> str:
        """The gateway's public origin, which is also the audience of the tokens."""
        return f"http://localhost:{self.gateway}"

    @property
    def issuer(self) -> str:
        """The reference verifier's issuer."""
        return f"http://localhost:{self.verifier}"

    @property
    def callback(self) -> str:
        """The gateway's callback for the reference verifier (SPEC §6)."""
        return f"{self.origin}/.agegate/callback/{VERIFIER_NAME}"


@dataclass(frozen=True, slots=True)
class DemoFiles:
    """What :func:`write_demo_files` wrote."""

    directory: Path
    config: Path
    session_keys: Path
    signing_key: Path
    pp_keys: Path | None = None  # the reference issuer's Privacy Pass keys
    wallet_ca_key: Path | None = None  # the simulated wallet's test CA key (its cert: anchor)
    wallet_mdoc_issuer: Path | None = None  # its mdoc test IACA + DS, keys and certificates


def demo_ports(
    *,
    gateway_port: int = 8080,
    verifier_port: int = 8081,
    shop_port: int = 9000,
    admin_port: int = 9901,
    environ: Mapping[str, str] | None = None,
) -> DemoPorts:
    """The ports to use: the arguments, each overridden by its ``AGEGATE_DEMO_*_PORT``."""
    env = os.environ if environ is None else environ
    chosen = {
        "gateway": gateway_port,
        "verifier": verifier_port,
        "shop": shop_port,
        "admin": admin_port,
    }
    for name in chosen:
        variable = f"AGEGATE_DEMO_{name.upper()}_PORT"
        text = env.get(variable)
        if text is None or not text.strip():
            continue
        if not text.strip().isdigit() or not 0 < int(text) < 65536:
            raise ValueError(f"{variable} must be a port from 1 to 65535, got {text!r}")
        chosen[name] = int(text)
    if len(set(chosen.values())) != len(chosen):
        raise ValueError(f"the demo needs four different ports, got {chosen}")
    return DemoPorts(**chosen)


def default_policy() -> Path:
    """``policies/example.yaml`` of the source tree the demo runs from."""
    return Path(__file__).resolve().parents[2] / "policies" / "example.yaml"


def write_demo_files(
    directory: Path, ports: DemoPorts, *, policy: Path, session_ttl: float | None = None
) -> DemoFiles:
    """Write throwaway keys and the ``agegate.yaml`` (SPEC §9 shape) into ``directory``.

    ``session_ttl`` (seconds) caps the demo's sessions through the verifier's
    ``max_session_ttl``, so that expiry can be watched without waiting an hour.
    """
    session_keys = directory / "session.keys"
    signing_key = directory / "reference-signing-key.pem"
    config = directory / "agegate.yaml"
    # Keys readable by this user only, even though they die with the demo.
    _write_private(session_keys, f"# throwaway agegate demo key\n{generate_key_line()}\n")
    _write_private(signing_key, signing_key_pem(generate_signing_key("ES256")).decode("ascii"))
    verifier: dict[str, Any] = {
        "kind": "age-token",
        "label": "Reference verifier (development only)",
        "issuer": ports.issuer,
        # Loopback by address: "localhost" may resolve to ::1, where nothing listens.
        "jwks_uri": f"http://{_HOST}:{ports.verifier}/.well-known/jwks.json",
        "algorithms": ["ES256"],
        "authorize_url": f"{ports.issuer}/authorize",
        "max_token_lifetime": "300s",
        "assurance_level": "basic",
    }
    pp_keys = directory / "pp-keys"
    load_issuer_keys(pp_keys, PP_THRESHOLDS)  # written now, so the gateway finds them at start
    privacy_pass: dict[str, Any] = {
        "kind": "privacy-pass",
        "label": "Privacy Pass (reference issuer, development only)",
        "issuer_name": f"localhost:{ports.verifier}",
        "token_keys": {str(n): str(pp_keys / f"pp-{n}.spki.pem") for n in PP_THRESHOLDS},
        "authorize_url": f"{ports.issuer}/pp/authorize",
        "assurance_level": "basic",
    }
    wallet_ca = ReferenceCa()
    wallet_ca_key = directory / "wallet-ca.key.pem"
    _write_private(wallet_ca_key, signing_key_pem(wallet_ca.key).decode("ascii"))
    (directory / "wallet-ca.pem").write_bytes(wallet_ca.pem())
    wallet: dict[str, Any] = {
        "kind": "sd-jwt-vc",
        "label": "EU wallet (simulated, development only)",
        "vct": [TEST_VCT],
        "trust_anchors": "wallet-ca.pem",
        "wallet_url": f"{ports.issuer}/wallet",
        "assurance_level": "basic",
    }
    mdoc_issuer = MdocTestIssuer.generate(name="agegate demo TEST IACA")
    wallet_mdoc_issuer = directory / "wallet-mdoc-issuer.pem"
    _write_private(wallet_mdoc_issuer, mdoc_issuer.to_pem().decode("ascii"))
    (directory / "wallet-iaca.pem").write_bytes(mdoc_issuer.trust_anchor_pem())
    av_wallet: dict[str, Any] = {
        "kind": "eu-av",
        "label": "EU age verification app (simulated mdoc, development only)",
        "trust_anchors": "wallet-iaca.pem",
        "wallet_url": f"{ports.issuer}/wallet",
        "assurance_level": "basic",
    }
    if session_ttl is not None:
        if session_ttl <= 0:
            raise ValueError("session_ttl must be a positive number of seconds")
        for each in (verifier, privacy_pass, wallet, av_wallet):
            each["max_session_ttl"] = f"{session_ttl:g}s"
    settings = {
        "listen": f"{_HOST}:{ports.gateway}",
        "admin_listen": f"{_HOST}:{ports.admin}",
        "public_origin": ports.origin,
        "upstream": f"http://{_HOST}:{ports.shop}",
        "hosts": ["localhost"],
        "trusted_proxies": [],
        "session_keys_file": session_keys.name,
        "store": "memory://",
        "policy": str(policy.resolve()),
        "verifiers": {
            VERIFIER_NAME: verifier,
            PP_VERIFIER_NAME: privacy_pass,
            WALLET_VERIFIER_NAME: wallet,
            AV_WALLET_VERIFIER_NAME: av_wallet,
        },
        "log": {"format": "text", "level": "info"},
    }
    header = "# agegate demo settings: throwaway, removed when the demo stops.\n"
    config.write_text(header + yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return DemoFiles(
        directory, config, session_keys, signing_key, pp_keys, wallet_ca_key, wallet_mdoc_issuer
    )


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def demo_commands(
    files: DemoFiles, ports: DemoPorts, python: str = sys.executable
) -> dict[str, list[str]]:
    """The command line of each process, in start order (upstreams before the gateway)."""
    return {
        "shop": [
            python, "-m", "uvicorn", "--factory", "gateway.demo.shop:build_shop_app",
            "--host", _HOST, "--port", str(ports.shop), "--log-level", "warning",
            "--no-access-log", "--no-server-header",
        ],
        "verifier": [
            python, "-m", "verifiers.reference", "--host", _HOST, "--port", str(ports.verifier),
            "--issuer", ports.issuer, "--client", f"{ports.origin}={ports.callback}",
            "--key", str(files.signing_key), "--assurance-level", DEMO_ASSURANCE,
            "--log-level", "warning",
            "--client", f"{ports.origin}={ports.origin}/.agegate/callback/{PP_VERIFIER_NAME}",
            *(["--pp-keys-dir", str(files.pp_keys)] if files.pp_keys else []),
            "--client", f"{ports.origin}={ports.origin}/.agegate/callback/{WALLET_VERIFIER_NAME}",
            *(["--wallet-ca-key", str(files.wallet_ca_key)] if files.wallet_ca_key else []),
            "--client",
            f"{ports.origin}={ports.origin}/.agegate/callback/{AV_WALLET_VERIFIER_NAME}",
            *(["--wallet-mdoc-issuer", str(files.wallet_mdoc_issuer)]
              if files.wallet_mdoc_issuer else []),
        ],
        "gateway": [python, "-m", "gateway.cli.main", "run", "--config", str(files.config)],
    }  # fmt: skip


def _child_environment() -> dict[str, str]:
    # AGEGATE_<FIELD> variables would override the demo's settings file.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGEGATE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _busy_ports(ports: DemoPorts) -> list[int]:
    busy = []
    for port in (ports.gateway, ports.verifier, ports.shop, ports.admin):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((_HOST, port))
            except OSError:
                busy.append(port)
    return busy


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _first_exited(processes: Mapping[str, subprocess.Popen[bytes]]) -> str | None:
    return next((name for name, proc in processes.items() if proc.poll() is not None), None)


def _wait_until_ready(
    ports: DemoPorts, processes: Mapping[str, subprocess.Popen[bytes]], stop: threading.Event
) -> str | None:
    """None when all listen; otherwise why not (a process died, a stop, a timeout)."""
    waiting = {"shop": ports.shop, "verifier": ports.verifier, "gateway": ports.gateway}
    deadline = time.monotonic() + _START_TIMEOUT
    while waiting:
        if stop.is_set():
            return "stopped while starting"
        if (dead := _first_exited(processes)) is not None:
            return f"the {dead} exited while starting (exit code {processes[dead].returncode})"
        if time.monotonic() > deadline:
            return f"not listening after {_START_TIMEOUT:g}s: {', '.join(waiting)}"
        waiting = {name: port for name, port in waiting.items() if not _listening(port)}
        if waiting:
            time.sleep(0.1)
    return None


def _stop_all(processes: Mapping[str, subprocess.Popen[bytes]]) -> None:
    # The gateway first, so that it never proxies to an upstream already gone.
    for proc in reversed(list(processes.values())):
        if proc.poll() is None:
            proc.terminate()
    for proc in reversed(list(processes.values())):
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _instructions(ports: DemoPorts, files: DemoFiles, out: TextIO) -> None:
    origin = ports.origin
    print(
        f"""
agegate demo is running (development keys in {files.directory}, removed on exit).

  Open  {origin}/wine/red

  Try:
  - an adult date of birth (e.g. 1990-01-01): you get in; the page shows the only
    facts the shop received (X-Agegate-Age-Over, X-Agegate-Assurance);
  - a child's date (e.g. 2015-01-01) in a private window: you are refused;
  - "EU wallet (simulated)" (SD-JWT VC) or "EU age verification app (simulated mdoc)"
    (ISO 18013-5 mdoc): the OpenID4VP flow without a phone (the web wallet button),
    or scan the QR code with a real EU wallet (it will not trust the demo CAs);
  - {origin}/.agegate/status to see what your session proves;
  - the "log out" button on a wine page (POST /.agegate/logout), then /wine/red again;
  - curl -i {origin}/api/wine  (API clients get 401 with a WWW-Authenticate challenge).

  Reference verifier (development only, believes any date): {ports.issuer}/
  Shop without the gateway: http://{_HOST}:{ports.shop}/
  Metrics and health: http://{_HOST}:{ports.admin}/metrics

  Stop with Ctrl-C.
""",
        file=out,
        flush=True,
    )


def run_demo(
    *,
    gateway_port: int = 8080,
    verifier_port: int = 8081,
    shop_port: int = 9000,
    admin_port: int = 9901,
    session_ttl: float | None = None,
    policy: Path | None = None,
) -> int:
    """Run shop, reference verifier and gateway until Ctrl-C or SIGTERM; return an exit code.

    0 after a requested stop, 1 when a process fails, 2 for a usage problem
    (busy port, bad port variable, no policy file).  ``policy`` defaults to
    :func:`default_policy`.  Call it from the main thread: it handles signals.
    """
    out, err = sys.stdout, sys.stderr
    try:
        ports = demo_ports(
            gateway_port=gateway_port,
            verifier_port=verifier_port,
            shop_port=shop_port,
            admin_port=admin_port,
        )
    except ValueError as exc:
        print(f"agegate demo: {exc}", file=err)
        return 2
    policy = policy or default_policy()
    if not policy.is_file():
        print(f"agegate demo: the example policy {policy} is missing", file=err)
        return 2
    if busy := _busy_ports(ports):
        print(
            f"agegate demo: port(s) {', '.join(map(str, busy))} already in use; choose others "
            "with AGEGATE_DEMO_GATEWAY_PORT, _VERIFIER_PORT, _SHOP_PORT or _ADMIN_PORT",
            file=err,
        )
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    directory = Path(tempfile.mkdtemp(prefix="agegate-demo-"))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        files = write_demo_files(directory, ports, policy=policy, session_ttl=session_ttl)
        env = _child_environment()
        for name, argv in demo_commands(files, ports).items():
            # A session of their own: Ctrl-C reaches only us, and we stop them in order.
            processes[name] = subprocess.Popen(argv, cwd=directory, env=env, start_new_session=True)
        problem = _wait_until_ready(ports, processes, stop)
        if problem is not None:
            print(f"agegate demo: {problem}", file=err)
            return 0 if stop.is_set() else 1
        _instructions(ports, files, out)
        while not stop.wait(0.2):
            if (dead := _first_exited(processes)) is not None:
                code = processes[dead].returncode
                print(f"agegate demo: the {dead} stopped (exit code {code})", file=err)
                return 1
        return 0
    finally:
        _stop_all(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(directory, ignore_errors=True)
        print("agegate demo stopped; its temporary keys are deleted.", file=out, flush=True)
