"""``python -m verifiers.reference`` on a real socket: its log shows no nonce, no birth date."""

from __future__ import annotations

import html
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.net import free_port, wait_for_port
from verifiers import sdk
from verifiers.reference.__main__ import parse_args

CLIENT = "http://localhost:8080"
CALLBACK = "http://localhost:8080/.agegate/callback/reference-token"
NONCE = "nonce-c2VjcmV0LW5vbmNlLXZhbHVl"
DOB = "1987-11-23"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, sdk.PrivateKey, subprocess.Popen[str]]]:
    key = sdk.generate_signing_key("ES256")
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(sdk.signing_key_pem(key))
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "verifiers.reference",
            "--port",
            str(port),
            "--client",
            f"{CLIENT}={CALLBACK}",
            "--key",
            str(key_file),
            "--log-level",
            "debug",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", key, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)


def test_full_flow_over_http_logs_no_secrets(
    server: tuple[str, sdk.PrivateKey, subprocess.Popen[str]],
) -> None:
    base, key, process = server
    params = {
        "client_id": CLIENT,
        "redirect_uri": CALLBACK,
        "response_mode": "form_post",
        "nonce": NONCE,
        "state": "st-1234567890",
        "min_age": "18",
    }
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/.well-known/jwks.json").json() == {"keys": [sdk.public_jwk(key)]}
        page = http.get("/authorize", params=params).text
        sealed = html.unescape(re.search(r'name="request" value="([^"]*)"', page).group(1))  # type: ignore[union-attr]
        done = http.post("/authorize", data={"request": sealed, "birth_date": DOB}).text
    token = html.unescape(re.search(r'name="age_token" value="([^"]*)"', done).group(1))  # type: ignore[union-attr]
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience=CLIENT)
    assert claims["nonce"] == NONCE
    assert claims["age_over_21"] is True

    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "DEVELOPMENT ONLY" in output
    assert "GET /authorize 200" in output  # our own access line, without the query
    for secret in (NONCE, DOB, token, claims["jti"], "127.0.0.1:"):
        assert str(secret) not in output.replace(f"{base}", "")


def test_client_option_collects_several_redirect_uris() -> None:
    args = parse_args(["--client", f"{CLIENT}={CALLBACK}", "--client", f"{CLIENT}={CALLBACK}2"])
    assert args.client == [(CLIENT, CALLBACK), (CLIENT, CALLBACK + "2")]
    with pytest.raises(SystemExit):
        parse_args(["--client", "no-equals-sign"])
