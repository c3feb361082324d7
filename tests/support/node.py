"""Running the independent implementations of tests/interop/ (Node.js scripts).

Each script reads one JSON command on stdin and prints one JSON answer.  An
interop test that skips proves nothing, so a missing ``node`` or package
fails the test with what to install.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

__all__ = ["require_package", "run_node_json"]


def require_package(folder: Path, package: str) -> None:
    """Fail (never skip) unless ``node`` and ``folder/node_modules/<package>`` are there."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the interop tests need Node.js >= 20")
    if not (folder / "node_modules" / package).is_dir():
        pytest.fail(f"run `make interop-deps` (npm ci in {folder.name}): {package} is missing")


def run_node_json(script: Path, command: Any, *, timeout: float = 60) -> dict[str, Any]:
    """Run ``node script`` with ``command`` as JSON on stdin; its JSON answer."""
    result = subprocess.run(
        ["node", str(script)],
        input=json.dumps(command),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=script.parent,
        check=False,
    )
    assert result.returncode == 0, f"{script.name} failed: {result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
