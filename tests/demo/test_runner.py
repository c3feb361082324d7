"""The demo runner: its settings file parses, ports follow the environment, and the whole
demo (shop, reference verifier, gateway) serves the browser flow and stops cleanly."""

from __future__ import annotations

import contextlib
import html
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.demo import runner
from gateway.demo.runner import (
    AV_WALLET_VERIFIER_NAME,
    VERIFIER_NAME,
    DemoPorts,
    default_policy,
    demo_commands,
    demo_ports,
    write_demo_files,
)
from gateway.settings import load_settings
from tests.support.net import free_port, wait_for_port

HTML = {"accept": "text/html,application/xhtml+xml"}
PORTS = DemoPorts(gateway=18080, verifier=18081, shop=19000, admin=19901)

# The demo's own policy for these tests, so they do not depend on policies/example.yaml.
DEMO_POLICY = textwrap.dedent(
    """\
    version: 1
    defaults:
      verifiers: [reference-token]
      session_ttl: 1h
      assurance: basic
    routes:
      - name: static
        path: /static/**
        action: allow
      - name: wine
        path: /wine/**
        min_age: 18
      - name: api
        path: /api/**
        min_age: 18
      - name: everything-else
        path: /**
        action: allow
    """
)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(DEMO_POLICY, encoding="utf-8")
    return path


def test_ports_default_and_follow_the_environment() -> None:
    assert demo_ports(environ={}) == DemoPorts(8080, 8081, 9000, 9901)
    env = {"AGEGATE_DEMO_GATEWAY_PORT": "18080", "AGEGATE_DEMO_ADMIN_PORT": " 19901 "}
    assert demo_ports(environ=env) == DemoPorts(18080, 8081, 9000, 19901)
    # The environment wins over arguments, like every AGEGATE_* variable over its file.
    assert demo_ports(shop_port=7000, environ={"AGEGATE_DEMO_SHOP_PORT": "7001"}).shop == 7001


@pytest.mark.parametrize(
    "env",
    [
        {"AGEGATE_DEMO_GATEWAY_PORT": "http"},
        {"AGEGATE_DEMO_GATEWAY_PORT": "0"},
        {"AGEGATE_DEMO_VERIFIER_PORT": "70000"},
        {"AGEGATE_DEMO_SHOP_PORT": "8080"},  # clashes with the gateway
    ],
)
def test_bad_port_variables_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        demo_ports(environ=env)


def test_written_settings_parse_with_load_settings(tmp_path: Path, policy: Path) -> None:
    files = write_demo_files(tmp_path, PORTS, policy=policy)
    settings = load_settings(files.config, environ={})
    assert settings.public_origin == "http://localhost:18080"
    assert settings.audience == "http://localhost:18080"
    assert settings.upstream == "http://127.0.0.1:19000"
    assert (str(settings.listen), str(settings.admin_listen)) == (
        "127.0.0.1:18080",
        "127.0.0.1:19901",
    )
    assert settings.hosts == frozenset({"localhost"})
    assert settings.trusted_proxies == ()
    assert len(settings.session_keys) == 1
    assert settings.store == "memory://"
    assert settings.policy == policy.resolve()
    verifier = settings.verifiers[VERIFIER_NAME]
    assert verifier["kind"] == "age-token"
    assert verifier["issuer"] == "http://localhost:18081"
    assert verifier["jwks_uri"] == "http://127.0.0.1:18081/.well-known/jwks.json"
    assert verifier["authorize_url"] == "http://localhost:18081/authorize"
    assert verifier["algorithms"] == ["ES256"]
    assert "max_session_ttl" not in verifier
    for secret in (files.session_keys, files.signing_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_written_verifier_settings_are_accepted_by_the_age_token_plugin(
    tmp_path: Path, policy: Path
) -> None:
    from verifiers.age_token import parse_config

    files = write_demo_files(tmp_path, PORTS, policy=policy, session_ttl=90)
    conf = load_settings(files.config, environ={}).verifiers[VERIFIER_NAME]
    parsed = parse_config(VERIFIER_NAME, conf)
    assert parsed.max_session_ttl == 90
    assert parsed.authorize_url == "http://localhost:18081/authorize"


def test_written_eu_av_settings_are_accepted_by_the_eu_av_plugin(
    tmp_path: Path, policy: Path
) -> None:
    from verifiers.base import VerifierServices
    from verifiers.mdoc import EuAvVerifier

    files = write_demo_files(tmp_path, PORTS, policy=policy, session_ttl=90)
    conf = load_settings(files.config, environ={}).verifiers[AV_WALLET_VERIFIER_NAME]
    verifier = EuAvVerifier(AV_WALLET_VERIFIER_NAME, conf, VerifierServices(base_dir=str(tmp_path)))
    assert verifier.max_session_ttl == 90
    assert verifier.wallet_url == "http://localhost:18081/wallet"
    assert files.wallet_mdoc_issuer is not None
    assert stat.S_IMODE(files.wallet_mdoc_issuer.stat().st_mode) == 0o600
    command = demo_commands(files, PORTS, python="python3")["verifier"]
    assert command[command.index("--wallet-mdoc-issuer") + 1] == str(files.wallet_mdoc_issuer)
    assert "http://localhost:18080=http://localhost:18080/.agegate/callback/eu-av-wallet" in command


def test_session_ttl_must_be_positive(tmp_path: Path, policy: Path) -> None:
    with pytest.raises(ValueError):
        write_demo_files(tmp_path, PORTS, policy=policy, session_ttl=0)


def test_commands_register_the_gateway_callback(tmp_path: Path, policy: Path) -> None:
    files = write_demo_files(tmp_path, PORTS, policy=policy)
    commands = demo_commands(files, PORTS, python="python3")
    assert list(commands) == ["shop", "verifier", "gateway"]
    verifier = commands["verifier"]
    client = verifier[verifier.index("--client") + 1]
    assert (
        client == "http://localhost:18080=http://localhost:18080/.agegate/callback/reference-token"
    )
    assert verifier[verifier.index("--key") + 1] == str(files.signing_key)
    assert commands["gateway"] == [
        "python3",
        "-m",
        "gateway.cli.main",
        "run",
        "--config",
        str(files.config),
    ]


def test_default_policy_is_the_example_policy() -> None:
    assert default_policy() == Path(__file__).resolve().parents[2] / "policies" / "example.yaml"


def test_public_names_import() -> None:
    for name in runner.__all__:
        assert hasattr(runner, name)


# --- the whole demo, as `agegate demo` runs it -------------------------------------------


class Demo:
    """``run_demo`` in a child process (it owns signal handlers, so it needs a main thread)."""

    def __init__(self, policy: Path | None, tmpdir: Path) -> None:
        self.tmpdir = tmpdir
        self.ports = DemoPorts(free_port(), free_port(), free_port(), free_port())
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGEGATE_")}
        env.update(
            AGEGATE_DEMO_GATEWAY_PORT=str(self.ports.gateway),
            AGEGATE_DEMO_VERIFIER_PORT=str(self.ports.verifier),
            AGEGATE_DEMO_SHOP_PORT=str(self.ports.shop),
            AGEGATE_DEMO_ADMIN_PORT=str(self.ports.admin),
            TMPDIR=str(tmpdir),  # where the runner makes its throwaway directory
        )
        argument = "" if policy is None else f"policy=Path({str(policy)!r})"
        code = (
            "import sys; from pathlib import Path; from gateway.demo.runner import run_demo; "
            f"sys.exit(run_demo({argument}))"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        # The runner gives each of its three processes up to 10 s to stop; on a
        # loaded machine that can take a while, so the wait is generous.
        output, _ = self.process.communicate(timeout=60)
        return self.process.returncode, output

    def kill_all(self) -> None:
        """Kill the runner and every process it started, so no pipe is left held open.

        The runner starts its processes in sessions of their own (so Ctrl-C reaches
        only the runner); killing the runner alone would leave them holding its
        stdout, and reading that to its end would wait for ever.
        """
        children = _children(self.process.pid)
        self.process.kill()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process.wait(timeout=10)


def _children(parent: int) -> list[int]:
    """The pids whose parent is ``parent`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
        fields = stat_line.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def _running_demo(policy: Path | None, tmp_path: Path) -> Iterator[Demo]:
    """The demo (``policy`` None: policies/example.yaml) once all three servers listen."""
    (tmp_path / "tmp").mkdir()
    running = Demo(policy, tmp_path / "tmp")
    try:
        # All three, not only the gateway: they start side by side, and a test that
        # reached the verifier before it listened failed (and once, in teardown, hung).
        for port in (running.ports.shop, running.ports.verifier, running.ports.gateway):
            wait_for_port(port, timeout=30)
        yield running
    finally:
        if running.process.poll() is None:
            running.kill_all()


@pytest.fixture(params=["example-policy", "test-policy"])
def demo(request: pytest.FixtureRequest, policy: Path, tmp_path: Path) -> Iterator[Demo]:
    """The demo as `agegate demo` runs it (policies/example.yaml), and with this file's policy."""
    with _running_demo(None if request.param == "example-policy" else policy, tmp_path) as running:
        yield running


def _hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, page
    return html.unescape(match.group(1))


def _cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        key, _, value = header.split(";", 1)[0].partition("=")
        if key == name:
            return value
    raise AssertionError(f"no {name} cookie set")


def _browser_flow(demo: Demo, birth_date: str) -> tuple[httpx.Response, str]:
    """Visit /wine/red, go through the reference verifier, come back; (final response, cookie)."""
    gw = f"http://127.0.0.1:{demo.ports.gateway}"
    # __Host- cookies are Secure; browsers send them to http://localhost, httpx would not,
    # so this test carries them by hand.
    with httpx.Client(timeout=10, headers={"host": f"localhost:{demo.ports.gateway}"}) as http:
        first = http.get(f"{gw}/wine/red", headers=HTML)
        assert first.status_code == 303
        verify = http.get(gw + first.headers["location"], headers=HTML)
        assert verify.status_code == 200
        challenge = _cookie(verify, "__Host-agegate-challenge")
        link = re.search(r"href='([^']+)' data-verifier='reference-token'", verify.text)
        assert link, verify.text
        authorize = html.unescape(link.group(1))
        assert authorize.startswith(f"http://localhost:{demo.ports.verifier}/authorize?")
    query = urlsplit(authorize).query
    with httpx.Client(timeout=10, base_url=f"http://127.0.0.1:{demo.ports.verifier}") as provider:
        form = provider.get("/authorize?" + query)
        assert form.status_code == 200
        assert "NOT a real age check" in form.text
        answer = provider.post(
            "/authorize", data={"request": _hidden(form.text, "request"), "birth_date": birth_date}
        )
    assert answer.status_code == 200
    params = parse_qs(query)
    assert _hidden(answer.text, "state") == params["state"][0]
    with httpx.Client(timeout=10, headers={"host": f"localhost:{demo.ports.gateway}"}) as http:
        callback = http.post(
            f"{gw}/.agegate/callback/{VERIFIER_NAME}",
            data={"age_token": _hidden(answer.text, "age_token"), "state": params["state"][0]},
            headers={**HTML, "cookie": f"__Host-agegate-challenge={challenge}"},
        )
        if callback.status_code != 303:
            return callback, ""
        session = _cookie(callback, "__Host-agegate")
        page = http.get(
            gw + callback.headers["location"],
            headers={**HTML, "cookie": f"__Host-agegate={session}"},
        )
        return page, session


def test_demo_serves_the_adult_flow_and_stops_on_sigint(demo: Demo) -> None:
    page, session = _browser_flow(demo, "1984-07-09")
    assert page.status_code == 200, page.text
    assert "<code>X-Agegate-Age-Over</code></th><td>18</td>" in page.text
    assert "<code>X-Agegate-Assurance</code></th><td>basic</td>" in page.text
    status = httpx.get(
        f"http://127.0.0.1:{demo.ports.gateway}/.agegate/status",
        headers={"host": f"localhost:{demo.ports.gateway}", "cookie": f"__Host-agegate={session}"},
    ).json()
    assert status["verified"] is True
    assert 18 in status["age_over"]

    code, output = demo.stop(signal.SIGINT)
    assert code == 0, output
    assert f"http://localhost:{demo.ports.gateway}/wine/red" in output
    directory = re.search(r"development keys in (\S+),", output)
    assert directory, output
    assert Path(directory.group(1)).parent == demo.tmpdir
    assert list(demo.tmpdir.iterdir()) == []  # keys and settings deleted
    for secret in ("1984-07-09", "1984", session):
        assert secret not in output
    for port in (demo.ports.gateway, demo.ports.verifier, demo.ports.shop):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_demo_refuses_a_child_and_stops_on_sigterm(demo: Demo) -> None:
    page, _ = _browser_flow(demo, "2016-03-12")
    assert page.status_code == 403, page.text
    code, output = demo.stop(signal.SIGTERM)
    assert code == 0, output
    assert "2016-03-12" not in output


def test_demo_exits_1_and_cleans_up_when_the_gateway_fails(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"  # names a verifier the demo does not configure
    broken.write_text("version: 1\nroutes: [{name: x, path: /**, verifiers: [nope]}]\n")
    (tmp_path / "tmp").mkdir()
    demo = Demo(broken, tmp_path / "tmp")
    output, _ = demo.process.communicate(timeout=60)
    assert demo.process.returncode == 1, output
    assert "the gateway exited while starting" in output
    assert list((tmp_path / "tmp").iterdir()) == []


def test_demo_refuses_a_busy_port(policy: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = (
            "import sys; from pathlib import Path; from gateway.demo.runner import run_demo; "
            f"sys.exit(run_demo(gateway_port={port}, policy=Path({str(policy)!r})))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("AGEGATE_")},
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert f"port(s) {port} already in use" in result.stderr


def _eu_av_web_wallet(demo: Demo, birth_date: str) -> httpx.Response:
    """The example policy's eu-av offer, answered by the demo's web wallet with an mdoc."""
    gw = f"http://127.0.0.1:{demo.ports.gateway}"
    host = {"host": f"localhost:{demo.ports.gateway}"}
    with httpx.Client(timeout=10, headers=host) as http:
        verify = http.get(f"{gw}/.agegate/verify?return=/wine/red", headers=HTML)
        assert verify.status_code == 200
        challenge = _cookie(verify, "__Host-agegate-challenge")
        offer = re.search(
            r"<li data-verifier='eu-av-wallet'>.*?href='([^']+)' data-web-wallet", verify.text
        )
        assert offer, verify.text
        web = html.unescape(offer.group(1))
    assert web.startswith(f"http://localhost:{demo.ports.verifier}/wallet?")
    with httpx.Client(timeout=10, base_url=f"http://127.0.0.1:{demo.ports.verifier}") as wallet:
        page = wallet.get("/wallet?" + urlsplit(web).query)
        assert page.status_code == 200, page.text
        assert "eu.europa.ec.av.1.age_over_18" in page.text
        answer = wallet.post(
            "/wallet",
            data={
                "request": _hidden(page.text, "request"),
                "action": "share",
                "birth_date": birth_date,
            },
        )
    assert answer.status_code == 303, answer.text
    completion = answer.headers["location"]
    assert completion.startswith(f"http://localhost:{demo.ports.gateway}/.agegate/wallet?")
    with httpx.Client(timeout=10, headers=host) as http:
        done = http.get(
            gw + completion.partition(str(demo.ports.gateway))[2],
            headers={**HTML, "cookie": f"__Host-agegate-challenge={challenge}"},
        )
        if done.status_code != 303:
            return done
        session = _cookie(done, "__Host-agegate")
        return http.get(
            gw + done.headers["location"], headers={**HTML, "cookie": f"__Host-agegate={session}"}
        )


@pytest.fixture
def example_demo(tmp_path: Path) -> Iterator[Demo]:
    """The demo with policies/example.yaml only (it offers the eu-av wallet)."""
    with _running_demo(None, tmp_path) as running:
        yield running


def test_demo_eu_av_web_wallet_lets_an_adult_in_and_refuses_a_child(example_demo: Demo) -> None:
    page = _eu_av_web_wallet(example_demo, "1984-07-09")
    assert page.status_code == 200, page.text
    assert "<code>X-Agegate-Age-Over</code></th><td>18</td>" in page.text
    refused = _eu_av_web_wallet(example_demo, "2016-03-12")
    assert refused.status_code == 403, refused.text
    code, output = example_demo.stop(signal.SIGINT)
    assert code == 0, output
    assert "1984-07-09" not in output
