"""The end-of-suite log scan finds what it looks for (so its silence means something)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.support.logscan import scan_logs, scan_text

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJhZ2Vfb3Zlcl8xOCI6dHJ1ZX0.c2lnbmF0dXJlLWJ5dGVz"


def test_finds_tokens_cookies_and_birth_dates() -> None:
    text = "\n".join(
        [
            '{"time":"2026-11-23T18:00:00.000Z","event":"request","path":"/wine"}',
            f'{{"event":"oops","token":"{TOKEN}"}}',
            '{"cookie":"v1.0a1b2c3d.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}',
            '{"dob":"2009-05-17"}',
        ]
    )
    kinds = {(leak.kind, leak.line) for leak in scan_text(text)}
    assert kinds == {("token", 2), ("cookie", 3), ("birth_date", 4)}


def test_log_timestamps_and_ordinary_lines_are_not_leaks() -> None:
    line = (
        '{"time":"2026-11-23T18:00:00.123Z","level":"info","event":"request",'
        '"path":"/wine/red","status":303,"request_id":"1e17f8e0af4a1735"}'
    )
    assert scan_text(line) == []
    assert scan_text("2026-11-23 19:16:22,680 INFO verifiers.reference.access GET / 200") == []


def test_scans_only_agegate_logs() -> None:
    # Outside pytest's temp root: the end-of-suite scan must not find this planted token.
    with tempfile.TemporaryDirectory() as directory:
        _scan_planted(Path(directory))


def _scan_planted(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "gateway.log").write_text(TOKEN)
    (tmp_path / "nginx.log").write_text(TOKEN)  # not ours: nginx logs what it logs
    scanned, leaks = scan_logs(tmp_path)
    assert scanned == 1
    assert [leak.kind for leak in leaks] == ["token"]
