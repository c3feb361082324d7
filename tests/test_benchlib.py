"""loadtests/benchlib.py: wrk output parsing and the combination of interleaved rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.benchlib import combine_rounds, parse_wrk, report


def _wrk(rps: float, requests: int, p99: str, *, non_2xx: int = 0) -> str:
    text = f"""Running 5s test @ http://127.0.0.1:1/public/page
  2 threads and 10 connections
  Latency Distribution
     50%  500.00us
     90%    1.00ms
     99%    {p99}
  {requests} requests in 5.00s, 1.00MB read
Requests/sec:   {rps}
Transfer/sec:      1.00MB
"""
    if non_2xx:
        text += f"  Non-2xx or 3xx responses: {non_2xx}\n"
    return text


def test_parse_wrk_reads_rate_latencies_and_counts() -> None:
    parsed = parse_wrk(_wrk(1000.5, 5002, "2.50ms", non_2xx=3))
    assert parsed["rps"] == 1000.5
    assert parsed["requests"] == 5002
    assert (parsed["p50_ms"], parsed["p90_ms"], parsed["p99_ms"]) == (0.5, 1.0, 2.5)
    assert parsed["non_2xx"] == 3


def test_rounds_combine_to_mean_rate_median_latency_and_pooled_cpu(tmp_path: Path) -> None:
    for number, (rps, requests, p99, ticks) in enumerate(
        [
            (1000.0, 5000, "1.00ms", 50),
            (3000.0, 15000, "9.00ms", 100),
            (2000.0, 10000, "2.00ms", 150),
        ],
        start=1,
    ):
        (tmp_path / f"wrk-allowed-r{number}.txt").write_text(_wrk(rps, requests, p99))
        (tmp_path / f"cpu-allowed-r{number}.txt").write_text(f"{ticks} 100\n")
    row = combine_rounds(tmp_path, "allowed")
    assert row is not None
    assert row["rps"] == 2000.0
    assert row["requests"] == 30000
    assert row["p99_ms"] == 2.0  # the median round, not the slow spell's 9 ms
    assert row["cpu_us_per_request"] == pytest.approx(3.0 / 30000 * 1e6, abs=0.1)
    assert [r["rps"] for r in row["rounds"]] == [1000.0, 3000.0, 2000.0]


def test_a_row_that_did_not_run_is_none_and_missing_cpu_is_not_guessed(tmp_path: Path) -> None:
    assert combine_rounds(tmp_path, "protected") is None
    (tmp_path / "wrk-direct-r1.txt").write_text(_wrk(100.0, 500, "1.00ms"))
    (tmp_path / "wrk-direct-r2.txt").write_text(_wrk(100.0, 500, "1.00ms"))
    (tmp_path / "cpu-direct-r1.txt").write_text("5 100\n")  # round 2 has no CPU reading
    row = combine_rounds(tmp_path, "direct")
    assert row is not None
    assert row["cpu_us_per_request"] is None


def test_report_gives_each_row_its_ratio_to_nginx_and_to_caddy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, rps in (
        ("direct", 8000.0),
        ("nginx", 4000.0),
        ("caddy", 1000.0),
        ("allowed", 1500.0),
        ("protected", 1200.0),
        ("allowed-cookie", 1250.0),
    ):
        (tmp_path / f"wrk-{name}-r1.txt").write_text(_wrk(rps, int(rps * 5), "1.00ms"))
    for name, p99 in (("direct-paced", "0.50ms"), ("caddy-paced", "0.90ms")):
        (tmp_path / f"wrk-{name}-r1.txt").write_text(_wrk(100.0, 500, p99))
    out = tmp_path / "out.json"
    assert report(tmp_path, out) == 0
    document = json.loads(out.read_text())
    allowed = document["runs"]["allowed"]
    assert (allowed["ratio_to_nginx"], allowed["ratio_to_caddy"]) == (0.375, 1.5)
    assert document["summary"]["agegate_allowed_over_caddy"] == 1.5
    assert document["summary"]["agegate_protected_over_allowed"] == 0.8
    assert document["summary"]["agegate_protected_over_allowed_with_cookie"] == 0.96
    assert document["summary"]["caddy_added_p99_ms_paced"] == 0.4
    table = capsys.readouterr().out
    assert "caddy reverse_proxy (GOMAXPROCS=1)" in table
    assert "agegate/caddy = 1.500" in table
    assert "agegate, allowed route + session " in table
    assert "same cookie on both 0.960" in table
