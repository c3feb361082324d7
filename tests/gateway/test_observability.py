"""Logs and metrics: allowlisted JSON fields, truncated addresses, buffered writes."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.observability import BufferedHandler, JsonFormatter, Metrics, log_event, truncate_ip


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("not-an-ip", None),
        (None, None),
    ],
)
def test_client_addresses_are_truncated(address: str | None, network: str | None) -> None:
    assert truncate_ip(address) == network


def test_json_lines_keep_only_allowlisted_fields() -> None:
    record = logging.LogRecord("agegate", logging.INFO, __file__, 1, "request", None, None)
    record.event = "request"
    record.fields = {
        "path": "/wine",
        "status": 200,
        "token": "eyJsecret",
        "cookie": "v1.x",
        "birthdate": "2000-01-01",
        "query": "a=b",
    }
    line = json.loads(JsonFormatter().format(record))
    assert line["path"] == "/wine" and line["status"] == 200
    for forbidden in ("token", "cookie", "birthdate", "query"):
        assert forbidden not in line


def test_exceptions_log_only_their_type() -> None:
    try:
        raise ValueError("secret value eyJhbGciOi")
    except ValueError:
        record = logging.LogRecord(
            "agegate",
            logging.ERROR,
            __file__,
            1,
            "boom",
            None,
            exc_info=__import__("sys").exc_info(),
        )
    text = JsonFormatter().format(record)
    assert json.loads(text)["error"] == "ValueError"
    assert "secret value" not in text


def test_buffered_handler_batches_info_and_writes_warnings_at_once() -> None:
    stream = io.StringIO()
    handler = BufferedHandler(stream, flush_interval=0.05)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("agegate.test-buffer")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.info("one", extra={"event": "one"})
    assert stream.getvalue() == ""  # batched
    logger.warning("two", extra={"event": "two"})
    events = [json.loads(line)["event"] for line in stream.getvalue().splitlines()]
    assert events == ["one", "two"]  # order kept, warning flushed everything
    logger.info("three", extra={"event": "three"})
    deadline = time.monotonic() + 2
    while "three" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "three" in stream.getvalue()  # the timer flushed it


def test_log_event_passes_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="agegate"):
        log_event("policy_reloaded", file="p.yaml")
    assert caplog.records[-1].fields == {"file": "p.yaml"}  # type: ignore[attr-defined]


def test_metrics_use_their_own_registry() -> None:
    first, second = Metrics.create(), Metrics.create()
    first.requests.count("wine", "allow", "200", 0.003)
    assert (
        first.registry.get_sample_value(
            "agegate_requests_total", {"rule": "wine", "decision": "allow", "status": "200"}
        )
        == 1
    )
    assert (
        second.registry.get_sample_value(
            "agegate_requests_total", {"rule": "wine", "decision": "allow", "status": "200"}
        )
        is None
    )


def test_access_lines_take_the_buffered_fast_path_with_the_same_shape() -> None:
    from gateway.decision.access import AccessLog, AccessRecord
    from gateway.observability import ALLOWED_LOG_FIELDS, configure_logging

    stream = io.StringIO()
    configure_logging("json", "info", stream)
    try:
        access = AccessLog(Metrics.create(), log_client_ip=True)
        record = AccessRecord("GET")
        record.set(status=200, rule="wine", decision="allow", reason="session_ok")
        record.path = "/wine/red"
        access.finish(record, "203.0.113.9")
        handler = logging.getLogger("agegate").handlers[0]
        assert isinstance(handler, BufferedHandler)
        handler.flush()
        [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
        assert line["event"] == "request" and line["logger"] == "agegate.access"
        assert line["client"] == "203.0.113.0/24"
        assert set(line) - {"time", "level", "logger", "event"} <= ALLOWED_LOG_FIELDS
        assert line["time"].endswith("Z")
    finally:
        configure_logging("json", "info")


def test_uvicorn_messages_lose_their_arguments_but_stay_readable() -> None:
    stream = io.StringIO()
    from gateway.observability import configure_logging

    configure_logging("json", "info", stream)
    try:
        logging.getLogger("uvicorn.error").info(
            '%s - "WebSocket %s" [accepted]', "203.0.113.9:5123", "/ws"
        )
        logging.getLogger("uvicorn.error").info("Maximum request limit of %d exceeded.", 4242)
        logging.getLogger("uvicorn.error").warning("flush")
        text = stream.getvalue()
        assert "203.0.113.9" not in text and "4242" not in text
        events = [json.loads(line)["event"] for line in text.splitlines()]
        assert events[:2] == [
            '… - "WebSocket …" [accepted]',
            "Maximum request limit of … exceeded.",
        ]
    finally:
        configure_logging("json", "info")


def test_uvicorn_start_and_stop_lines_give_way_to_one_listening_line() -> None:
    stream = io.StringIO()
    from gateway.observability import configure_logging, log_event

    configure_logging("text", "info", stream)
    try:
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.info("Started server process [%d]", 4242)
        uvicorn_log.info("Waiting for application startup.")
        uvicorn_log.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "h", 1)
        uvicorn_log.info("Shutting down")
        log_event("listening", listener="public", url="http://127.0.0.1:8080", workers=1)
        uvicorn_log.warning("flush")
        lines = stream.getvalue().splitlines()
        assert lines == [
            "info    agegate: listening on http://127.0.0.1:8080 listener=public workers=1",
            "warning uvicorn.error: flush",
        ]
    finally:
        configure_logging("json", "info")


_LABELS = st.tuples(
    st.sampled_from(["wine", "static", ""]),
    st.sampled_from(["allow", "challenge", "deny", "reject"]),
    st.sampled_from(["200", "303", "401", "403", "502"]),
)


@settings(max_examples=60)
@given(
    st.lists(st.tuples(_LABELS, st.floats(min_value=0, max_value=5, allow_nan=False)), max_size=30)
)
def test_request_stats_expose_what_prometheus_counter_and_histogram_would(
    observations: list[tuple[tuple[str, str, str], float]],
) -> None:
    """RequestStats replaces a Counter and a Histogram on the hot path: same samples."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from gateway.observability import RequestStats

    stats = RequestStats()
    ours = CollectorRegistry()
    ours.register(stats)
    reference = CollectorRegistry()
    counter = Counter("agegate_requests", "r", ["rule", "decision", "status"], registry=reference)
    histogram = Histogram(
        "agegate_request_duration_seconds",
        "d",
        ["decision"],
        buckets=stats.buckets,
        registry=reference,
    )
    for (rule, decision, status), duration in observations:
        stats.count(rule, decision, status, duration)
        counter.labels(rule, decision, status).inc()
        histogram.labels(decision).observe(duration)

    def samples(
        registry: CollectorRegistry,
    ) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect()
            for sample in family.samples
            if not sample.name.endswith("_created")
        }

    expected = samples(reference)
    got = samples(ours)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
