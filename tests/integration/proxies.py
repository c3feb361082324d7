"""nginx and Caddy run from the shipped configs in docs/integrations/, on free loopback ports.

The configs are read as shipped; only the values their comments mark
``PLACEHOLDER`` are replaced (ports, listen address, temp paths), and every
replacement must find its placeholder exactly once, so a config edited in
docs/ is what the tests run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType

from tests.support.net import free_port, wait_for_port
from tests.support.process import stop_process

__all__ = ["DOCS", "CaddyProcess", "NginxProcess", "render"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations"


def render(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each placeholder replaced; each must occur exactly once."""
    for old, new in replacements.items():
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"placeholder {old!r} occurs {count} times in the shipped config")
        text = text.replace(old, new)
    return text


class _Process:
    name = "proxy"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _Process:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
            )
        try:
            wait_for_port(self.port, timeout=15)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{self.log_text()}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> _Process:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


class NginxProcess(_Process):
    """Debian's nginx (one worker, foreground) running docs/integrations/nginx.conf."""

    name = "nginx"

    def __init__(self, directory: Path, *, site: int, public: int, authz: int) -> None:
        super().__init__(directory)
        shipped = (DOCS / "nginx.conf").read_text()
        server = render(
            shipped,
            {
                "server 127.0.0.1:9000;": f"server 127.0.0.1:{site};",
                "server 127.0.0.1:8080;": f"server 127.0.0.1:{public};",
                "server 127.0.0.1:9901;": f"server 127.0.0.1:{authz};",
                "listen 80;": f"listen 127.0.0.1:{self.port};",
            },
        )
        d = directory
        # The main context a distribution's nginx.conf provides around conf.d/*.conf.
        self.config_path = d / "nginx.conf"
        self.config_path.write_text(
            "worker_processes 1;\ndaemon off;\n"
            f"pid {d}/nginx.pid;\nerror_log {d}/nginx-error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    access_log {d}/nginx-access.log;\n"
            f"    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n"
            f"    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n"
            f"    scgi_temp_path {d}/scgi;\n"
            f"    include {d}/agegate.conf;\n"
            "}\n"
        )
        (d / "agegate.conf").write_text(server)

    def command(self) -> list[str]:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [nginx, "-p", str(self.directory), "-c", str(self.config_path)]

    def log_text(self) -> str:
        error_log = self.directory / "nginx-error.log"
        own = super().log_text()
        return own + (error_log.read_text(errors="replace") if error_log.exists() else "")


class CaddyProcess(_Process):
    """Debian's caddy running docs/integrations/Caddyfile."""

    name = "caddy"

    def __init__(self, directory: Path, *, site: int, public: int, authz: int) -> None:
        super().__init__(directory)
        shipped = (DOCS / "Caddyfile").read_text()
        self.config_path = directory / "Caddyfile"
        self.config_path.write_text(
            render(
                shipped,
                {
                    "admin localhost:2019": "admin off",
                    "site.example {": f"http://:{self.port} {{\n\tbind 127.0.0.1",
                    "reverse_proxy 127.0.0.1:9000": f"reverse_proxy 127.0.0.1:{site}",
                    "reverse_proxy 127.0.0.1:8080": f"reverse_proxy 127.0.0.1:{public}",
                    "reverse_proxy 127.0.0.1:9901": f"reverse_proxy 127.0.0.1:{authz}",
                },
            )
        )

    def command(self) -> list[str]:
        caddy = shutil.which("caddy") or "/usr/bin/caddy"
        return [caddy, "run", "--config", str(self.config_path), "--adapter", "caddyfile"]
