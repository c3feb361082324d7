"""Metrics (Prometheus), JSON log lines and client-address truncation.

Log lines carry only what SPEC §8 allows: time, level, event, method,
canonical path (never the query), status, rule, decision, reason code,
verifier name, duration and request id — and a client address only when
``log_client_ip: truncated``, and then only its /24 (IPv4) or /48 (IPv6).
Nothing here ever receives a token, a cookie or a claim value.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

__all__ = [
    "ACCESS_LOGGER",
    "BufferedHandler",
    "FastPathStats",
    "JsonFormatter",
    "Metrics",
    "configure_logging",
    "flush_logs",
    "log_event",
    "truncate_ip",
    "utc_timestamp",
]

ACCESS_LOGGER = "agegate.access"
_EVENT_LOGGER = "agegate"
_CONFIGURED_LOGGERS = (_EVENT_LOGGER, "uvicorn", "uvicorn.error", "uvicorn.access")

# Only these keys may appear in a JSON log line besides time/level/event/logger.
ALLOWED_LOG_FIELDS = frozenset(
    {
        "method",
        "path",
        "status",
        "rule",
        "decision",
        "mode",
        "reason",
        "verifier",
        "duration_ms",
        "request_id",
        "client",
        "file",
        "error",
        "listen",
        "count",
        "policy_sha256",
        "workers",
        "kind",
        "listener",
        "url",
    }
)


def truncate_ip(address: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of ``address``; None when unparsable."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv4 client on a dual-stack socket: truncate as IPv4
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields outside the allowlist are dropped."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((k, v) for k, v in fields.items() if k in ALLOWED_LOG_FIELDS)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages of library exceptions may quote input.
            line["error"] = record.exc_info[0].__name__
        return json.dumps(line, separators=(",", ":"), default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        event = getattr(record, "event", None) or record.getMessage()
        if "url" in fields:  # "listening on http://127.0.0.1:8080 listener=public"
            event = f"{event} on {fields['url']}"
        shown = " ".join(
            f"{k}={v}" for k, v in fields.items() if k in ALLOWED_LOG_FIELDS and k != "url"
        )
        return f"{record.levelname.lower():7} {record.name}: {event} {shown}".rstrip()


_FORMAT_SPEC = re.compile(r"%[-#0 +]*\d*(?:\.\d+)?[sdifrx]")


# uvicorn's start/stop chatter, once per listener; agegate logs its own listening/stopped.
_UVICORN_LIFECYCLE = (
    "Started server process",
    "Waiting for application startup",
    "Application startup complete",
    "Uvicorn running on",
    "Shutting down",
    "Waiting for application shutdown",
    "Application shutdown complete",
    "Finished server process",
)


class _UvicornFilter(logging.Filter):
    """uvicorn's own messages: keep the event text, drop its args (they can hold addresses)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access":
            return False  # we write our own access line
        if record.levelno < logging.WARNING and str(record.msg).startswith(_UVICORN_LIFECYCLE):
            return False
        if record.args:
            # Arguments can be client addresses (uvicorn's WebSocket lines): drop them all.
            record.msg = _FORMAT_SPEC.sub("…", str(record.msg))
            record.args = ()
        return True


class BufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines in batches, like nginx's ``access_log … buffer=32k flush=1s``.

    A write and flush per request is a large share of a proxied request's cost;
    here lines wait in memory until 32 KiB collect or ``flush_interval`` passes
    (a daemon thread), and anything at WARNING or above is written at once.
    """

    def __init__(
        self, stream: Any, *, flush_interval: float = 0.2, max_buffer: int = 32 * 1024
    ) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._pending_size = 0
        self._max_buffer = max_buffer
        self._interval = flush_interval
        self._timer = threading.Thread(
            target=self._flush_periodically, daemon=True, name="agegate-log-flush"
        )
        self._timer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except (TypeError, ValueError):
            self.handleError(record)
            return
        self.write_line(line, urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str, *, urgent: bool = False) -> None:
        """Queue one already-formatted line (the access log's fast path)."""
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(line + self.terminator)
            self._pending_size += len(line) + 1
        if urgent or self._pending_size >= self._max_buffer:
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._pending:
                data, self._pending, self._pending_size = "".join(self._pending), [], 0
                self.stream.write(data)
            if hasattr(self.stream, "flush"):
                self.stream.flush()

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(self._interval)
            if self._pending:
                self.flush()


def configure_logging(fmt: str = "json", level: str = "info", stream: Any = None) -> None:
    """Route agegate's and uvicorn's loggers to one buffered handler in the chosen format."""
    handler = BufferedHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter())
    handler.addFilter(_UvicornFilter())
    for name in _CONFIGURED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


def utc_timestamp(now: float) -> str:
    """RFC 3339 UTC time with milliseconds, as in every log line."""
    return _second_prefix(int(now)) + f".{int(now * 1000) % 1000:03d}Z"


@lru_cache(maxsize=4)
def _second_prefix(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def flush_logs() -> None:
    """Write out what the agegate loggers' handlers still buffer (before the process ends)."""
    for name in _CONFIGURED_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            handler.flush()


def log_event(
    event: str, *, level: int = logging.INFO, logger: str = _EVENT_LOGGER, **fields: Any
) -> None:
    """Log one event with allowlisted fields."""
    log = logging.getLogger(logger)
    if log.isEnabledFor(level):
        log.log(level, event, extra={"event": event, "fields": fields})


_DURATION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class RequestStats:
    """``agegate_requests_total`` and ``agegate_request_duration_seconds``, kept as plain numbers.

    Counted once per request, so kept cheap: prometheus_client's ``Counter.inc``
    and ``Histogram.observe`` take a lock and walk the buckets in Python.  The
    event loop is the only writer and ``/metrics`` is served on the same loop,
    so no lock is needed.  Registered as a collector, it renders the same
    families a ``Counter`` and a ``Histogram`` would, at scrape time.
    """

    def __init__(self, buckets: tuple[float, ...] = _DURATION_BUCKETS) -> None:
        self.buckets = buckets
        self.requests: dict[tuple[str, str, str], int] = {}
        # Per decision: a count per bucket (the last one is +Inf), then the sum.
        self._durations: dict[str, tuple[list[int], list[float]]] = {}

    def count(self, rule: str, decision: str, status: str, duration: float) -> None:
        """Count one request: its labels and how long it took, in seconds."""
        key = (rule, decision, status)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        histogram = self._durations.get(decision)
        if histogram is None:
            histogram = self._durations[decision] = ([0] * (len(self.buckets) + 1), [0.0])
        histogram[0][bisect_left(self.buckets, duration)] += 1
        histogram[1][0] += duration

    def collect(self) -> Iterator[Metric]:
        """The two metric families (prometheus_client's collector protocol)."""
        requests = CounterMetricFamily(
            "agegate_requests",
            "Requests by matched rule, decision and status.",
            labels=["rule", "decision", "status"],
        )
        for key, value in sorted(self.requests.items()):
            requests.add_metric(list(key), value)
        yield requests
        duration = HistogramMetricFamily(
            "agegate_request_duration_seconds",
            "Time from request to response start, by decision.",
            labels=["decision"],
        )
        bounds = [*(repr(float(bound)) for bound in self.buckets), "+Inf"]
        for decision, (counts, total) in sorted(self._durations.items()):
            cumulative, running = [], 0
            for bound, value in zip(bounds, counts, strict=True):
                running += value
                cumulative.append((bound, running))
            duration.add_metric([decision], cumulative, total[0])
        yield duration


class FastPathStats:
    """``agegate_fast_path_requests_total``: requests gateway.proxy.fast took (a plain int)."""

    def __init__(self) -> None:
        self.taken = 0

    def collect(self) -> Iterator[Metric]:
        """The one counter family (prometheus_client's collector protocol)."""
        family = CounterMetricFamily(
            "agegate_fast_path_requests",
            "Requests the fast path took (each also counted in agegate_requests_total).",
        )
        family.add_metric([], self.taken)
        yield family


@dataclass(slots=True)
class Metrics:
    """The gateway's metrics, on a registry of its own (no module-level globals)."""

    registry: CollectorRegistry
    requests: RequestStats
    invalid_cookies: Counter
    verifications: Counter
    upstream_errors: Counter
    policy_reloads: Counter
    policy_loaded: Gauge
    store_errors: Counter
    key_reloads: Counter
    fast_path: FastPathStats

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry(auto_describe=True)
        requests = RequestStats()
        registry.register(requests)
        fast_path = FastPathStats()
        registry.register(fast_path)
        return cls(
            registry=registry,
            requests=requests,
            invalid_cookies=Counter(
                "agegate_invalid_cookies",
                "Session or challenge cookies ignored, by reason.",
                ["cookie", "reason"],
                registry=registry,
            ),
            verifications=Counter(
                "agegate_verifications",
                "Presentations checked, by verifier and result reason.",
                ["verifier", "result"],
                registry=registry,
            ),
            upstream_errors=Counter(
                "agegate_upstream_errors",
                "Upstream failures, by reason.",
                ["reason"],
                registry=registry,
            ),
            policy_reloads=Counter(
                "agegate_policy_reloads",
                "Policy reload attempts, by result.",
                ["result"],
                registry=registry,
            ),
            policy_loaded=Gauge(
                "agegate_policy_loaded_timestamp_seconds",
                "When the policy in force was loaded.",
                registry=registry,
            ),
            store_errors=Counter(
                "agegate_store_errors",
                "Store operations that failed (fail closed).",
                registry=registry,
            ),
            key_reloads=Counter(
                "agegate_session_keys_reloads",
                "Session keys file reload attempts, by result.",
                ["result"],
                registry=registry,
            ),
            fast_path=fast_path,
        )
