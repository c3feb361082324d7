"""CPU time per request of one process under a fixed wrk run: stabler than requests/s.

On a shared machine requests/s moves with everyone else's load; the CPU a
process spends per request hardly does.  ``bench.sh`` prints both: this module
reads ``utime + stime`` of a process from ``/proc/<pid>/stat`` around a wrk
run and divides by the requests wrk counted.

``python loadtests/cpu.py PID URL [--duration 5s] [--connections 10] [-H "Name: value"]...``
    prints ``{"requests": N, "cpu_s": S, "cpu_us_per_request": U}`` as JSON.

Linux only (``/proc``); not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["cpu_seconds", "main", "measure"]

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def measure(
    pid: int, url: str, *, duration: str, connections: int, threads: int, extra: list[str]
) -> dict[str, float | int]:
    """Run wrk against ``url`` and return the requests and ``pid``'s CPU per request."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", *extra, url]
    before = cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(pid) - before
    found = re.search(r"^\s+(\d+) requests in", out, re.M)
    requests = int(found.group(1)) if found else 0
    return {
        "requests": requests,
        "cpu_s": round(used, 3),
        "cpu_us_per_request": round(used / requests * 1e6, 1) if requests else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(prog="cpu")
    parser.add_argument("pid", type=int)
    parser.add_argument("url")
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("-H", "--header", action="append", default=[])
    args = parser.parse_args(argv)
    result = measure(
        args.pid,
        args.url,
        duration=args.duration,
        connections=args.connections,
        threads=args.threads,
        extra=[arg for header in args.header for arg in ("-H", header)],
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
