"""Hot reload under load: policy (SIGHUP and file change), session keys file, JWKS file.

A load loop of real HTTP clients over real sockets runs while the policy is
replaced 20 times, valid and invalid alternately: no request may fail, every
decision must be the one of the policy in force, and an invalid policy must
leave the old one in force (a metric and a log line say so).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.session.keys import generate_key_line
from tests.operations.support import api_session, wait_for, with_session
from tests.support.gateway import GatewayProcess
from tests.support.upstream import UpstreamServer
from verifiers import sdk

# Two valid policies that disagree on both paths, so every answer names the policy.
POLICY = """
version: 1
defaults: {{verifiers: [test-token]}}
routes:
  - {{name: x, path: /echo/x/**, action: {x}}}
  - {{name: y, path: /echo/y/**, action: {y}}}
  - {{name: rest, path: /**, action: allow}}
tests:
  - {{request: "GET /echo/x/1", expect: {x}}}
"""
ALLOW_X = POLICY.format(x="allow", y="deny")
DENY_X = POLICY.format(x="deny", y="allow")
EXPECTED = {ALLOW_X: {"x": 200, "y": 403}, DENY_X: {"x": 403, "y": 200}}
INVALID = [
    "version: 1\nroutes: [\n",  # YAML cut off mid-write
    ALLOW_X.replace("expect: allow", "expect: deny"),  # an embedded test fails
    DENY_X.replace("[test-token]", "[no-such-verifier]"),  # an unknown verifier
    "version: 2\nroutes: []\n",
    ALLOW_X.replace("/echo/x/**", "echo/x"),  # a path that is not a pattern
]


@dataclass
class Answer:
    path: str
    status: int | None  # None: the request failed (connection error)
    started: float
    ended: float


def replace_file(path: Path, text: str) -> None:
    """As an operator's deploy tool does: write beside, then rename over (atomic)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def policy_in_force(gw: GatewayProcess) -> dict[str, object]:
    summary: dict[str, object] = httpx.get(gw.admin_url + "/policy", timeout=5).json()
    return summary


def load(url: str, stop: threading.Event, answers: list[Answer]) -> None:
    # Keep-alive connections, as a browser or a load balancer holds them.
    with httpx.Client(base_url=url, timeout=10) as client:
        while not stop.is_set():
            for path in ("x", "y"):
                started = time.monotonic()
                try:
                    status: int | None = client.get(f"/echo/{path}/1").status_code
                except httpx.HTTPError:
                    status = None
                answers.append(Answer(path, status, started, time.monotonic()))


def metric(gw: GatewayProcess, name: str, labels: str) -> float:
    text = httpx.get(gw.admin_url + "/metrics", timeout=5).text
    match = re.search(rf"^{name}{{{labels}}} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_policy_replaced_20_times_under_load_never_fails_a_request(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url, policy=ALLOW_X) as gw:
        assert gw.process is not None
        # (start, end, policy text): the policy in force from its confirmation to the
        # next valid write; between a write and its confirmation either may answer.
        phases: list[tuple[float, float, str]] = []
        current, since = ALLOW_X, time.monotonic()
        answers: list[Answer] = []
        stop = threading.Event()
        threads = [threading.Thread(target=load, args=(gw.url, stop, answers)) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.3)
            valid = [DENY_X, ALLOW_X]
            for step in range(20):
                before = policy_in_force(gw)
                if step % 2 == 0:
                    text = valid[(step // 2) % 2]
                    written = time.monotonic()
                    phases.append((since, written, current))
                    replace_file(gw.policy_path, text)
                    gw.process.send_signal(signal.SIGHUP)
                    old_sha = before["sha256"]
                    wait_for(lambda sha=old_sha: policy_in_force(gw)["sha256"] != sha)
                    current, since = text, time.monotonic()
                else:
                    replace_file(gw.policy_path, INVALID[(step // 2) % len(INVALID)])
                    gw.process.send_signal(signal.SIGHUP)
                    wait_for(lambda: policy_in_force(gw)["last_reload_error"] is not None)
                    assert policy_in_force(gw)["sha256"] == before["sha256"]
                time.sleep(0.15)  # traffic on each state, not only on transitions
            phases.append((since, time.monotonic(), current))
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)

        failed = [a for a in answers if a.status is None or a.status >= 500]
        assert not failed, f"{len(failed)} of {len(answers)} requests failed"
        checked = 0
        for answer in answers:
            inside = [
                text
                for start, end, text in phases
                if start <= answer.started and answer.ended <= end
            ]
            if inside:
                checked += 1
                assert answer.status == EXPECTED[inside[0]][answer.path], answer
            else:  # across a valid reload: the old or the new policy, nothing else
                assert answer.status in {200, 403}, answer
        assert checked > 0.8 * len(answers) and len(answers) > 200
        assert metric(gw, "agegate_policy_reloads_total", 'result="error"') >= 10
        assert metric(gw, "agegate_policy_reloads_total", 'result="ok"') >= 10
        failures = [line for line in gw.log_lines() if line["event"] == "policy_reload_failed"]
        assert len(failures) >= 10 and all(line["level"] == "error" for line in failures)


def test_policy_file_change_is_picked_up_without_a_signal(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url, policy=ALLOW_X) as gw:
        assert httpx.get(gw.url + "/echo/x/1").status_code == 200
        replace_file(gw.policy_path, DENY_X)
        wait_for(lambda: httpx.get(gw.url + "/echo/x/1").status_code == 403, timeout=5)
        replace_file(gw.policy_path, INVALID[0])
        wait_for(lambda: policy_in_force(gw)["last_reload_error"] is not None, timeout=5)
        assert httpx.get(gw.url + "/echo/x/1").status_code == 403


def test_session_keys_file_reload_adds_and_retires_keys(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    old, new = generate_key_line(), generate_key_line()
    with GatewayProcess(tmp_path, upstream=upstream.url, session_key=old) as gw:
        assert gw.process is not None
        keys = tmp_path / "session.keys"
        sealed_with_old = api_session(gw)
        # A second gateway sealing with the new key: its cookies open here only once
        # the new key is listed (step 1 of a rotation across nodes).
        (tmp_path / "other").mkdir()
        other = GatewayProcess(
            tmp_path / "other",
            upstream=upstream.url,
            session_key=new,
            signing_key=gw.signing_key,
            settings={"public_origin": gw.public_origin},
        )
        other.public_origin = gw.public_origin  # the audience its tokens must name
        with other:
            sealed_with_new = api_session(other)
        assert with_session(gw, sealed_with_new) != 200

        replace_file(keys, f"{old}\n{new}\n")
        gw.process.send_signal(signal.SIGHUP)
        wait_for(lambda: with_session(gw, sealed_with_new) == 200)
        assert with_session(gw, sealed_with_old) == 200

        # A new first key is refused while running: the old ring stays in force.
        replace_file(keys, f"{new}\n{old}\n")
        gw.process.send_signal(signal.SIGHUP)
        wait_for(lambda: metric(gw, "agegate_session_keys_reloads_total", 'result="error"') >= 1)
        assert with_session(gw, sealed_with_old) == 200
        assert with_session(gw, sealed_with_new) == 200

        # Garbage is refused too; then retiring the new key (file change, no signal).
        replace_file(keys, "not a key\n")
        gw.process.send_signal(signal.SIGHUP)
        wait_for(lambda: metric(gw, "agegate_session_keys_reloads_total", 'result="error"') >= 2)
        assert with_session(gw, sealed_with_new) == 200
        replace_file(keys, f"{old}\n")
        wait_for(lambda: with_session(gw, sealed_with_new) != 200)
        assert with_session(gw, sealed_with_old) == 200
        lines = [line for line in gw.log_lines() if line["event"].startswith("session_keys")]
        assert {line["event"] for line in lines} == {
            "session_keys_reloaded",
            "session_keys_reload_failed",
        }
        assert old not in gw.log_text() and new not in gw.log_text()


def test_jwks_file_reload_takes_new_keys_and_keeps_old_ones_on_a_bad_file(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    with GatewayProcess(tmp_path, upstream=upstream.url) as gw:
        jwks = tmp_path / "jwks.json"
        assert api_session(gw)
        rotated = ec.generate_private_key(ec.SECP256R1())
        replace_file(jwks, "{not json")
        time.sleep(1.2)  # past the once-a-second look at the file
        assert api_session(gw)  # the bad file kept the loaded keys
        replace_file(jwks, json.dumps(sdk.jwks(rotated)))
        time.sleep(1.2)
        assert api_session(gw, rotated)
        with pytest.raises(AssertionError, match="unknown_kid"):
            api_session(gw)  # the old key left the file, so it left the gateway
        events = [line["event"] for line in gw.log_lines()]
        assert events.count("jwks_reload_failed") == 1 and "jwks_reloaded" in events
