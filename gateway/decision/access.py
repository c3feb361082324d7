"""The access line and request metrics, shared by proxy mode and forward-auth.

One :class:`AccessRecord` per request collects what the access line may say
(SPEC §8: method, canonical path, status, rule, decision, reason, verifier,
duration, request id, and a truncated client address only when enabled).
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
import time

from gateway.core.cache import BoundedCache
from gateway.observability import (
    ACCESS_LOGGER,
    BufferedHandler,
    JsonFormatter,
    Metrics,
    truncate_ip,
    utc_timestamp,
)
from gateway.policy import Decision
from gateway.types import Message, Send

__all__ = ["AccessLog", "AccessRecord", "recording_status"]

_SEGMENT_CACHE = 1024  # label sets whose rendered line segment is kept


class AccessRecord:
    """What the access line says about one request."""

    __slots__ = (
        "decision",
        "method",
        "mode",
        "path",
        "reason",
        "rule",
        "started",
        "status",
        "verifier",
    )

    def __init__(self, method: str) -> None:
        self.started = time.perf_counter()
        self.method = method
        self.path: str | None = None
        self.status = 500  # until something is sent: an unhandled error logs as 500
        self.rule: str | None = None
        self.decision = "none"
        self.reason: str | None = None
        self.mode: str | None = None
        self.verifier: str | None = None

    def set(
        self,
        *,
        status: int | None = None,
        rule: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
    ) -> None:
        if status is not None:
            self.status = status
        if rule is not None:
            self.rule = rule
        if decision is not None:
            self.decision = decision
        if reason is not None:
            self.reason = reason

    def set_decision(self, decision: Decision) -> None:
        """What the policy decided: rule, outcome, reason, and whether only reported."""
        self.rule = decision.rule
        self.decision = decision.label
        self.reason = decision.reason
        if not decision.enforced:
            self.mode = "report-only"


class AccessLog:
    """Writes access lines and request metrics.

    The line is the same JSON object :class:`~gateway.observability.JsonFormatter`
    writes, built here directly and handed to the buffered handler: a stdlib
    ``LogRecord`` per request would be a large share of a proxied request's CPU.
    """

    def __init__(self, metrics: Metrics, *, log_client_ip: bool) -> None:
        self.metrics = metrics
        self.log_client_ip = log_client_ip
        self._logger = logging.getLogger(ACCESS_LOGGER)
        # Request ids need to be unique, not secret: a random per-process prefix and a
        # counter, instead of a getrandom() syscall per request.
        self._id_prefix = secrets.token_hex(4)
        self._ids = itertools.count()
        self._middles: BoundedCache[tuple[int, str | None, str, str | None], str] = BoundedCache(
            _SEGMENT_CACHE
        )

    def request_id(self) -> str:
        """A new id, unique across processes and restarts: 8 random hex digits + a counter."""
        return f"{self._id_prefix}{next(self._ids):08x}"

    def finish(self, record: AccessRecord, client_ip: str | None) -> None:
        duration = time.perf_counter() - record.started
        self.metrics.requests.count(
            record.rule or "", record.decision, str(record.status), duration
        )
        if not self._logger.isEnabledFor(logging.INFO):
            return
        handler = _handler_of(self._logger)
        if isinstance(handler, BufferedHandler) and isinstance(handler.formatter, JsonFormatter):
            handler.write_line(self.json_line(record, duration, client_ip, time.time()))
            return
        # Text format, or a test's capturing handler: the ordinary logging path.
        fields: dict[str, object] = {
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "rule": record.rule,
            "decision": record.decision,
            "reason": record.reason,
            "duration_ms": round(duration * 1000, 3),
            "request_id": self.request_id(),
        }
        if record.mode:
            fields["mode"] = record.mode
        if record.verifier:
            fields["verifier"] = record.verifier
        if self.log_client_ip:
            fields["client"] = truncate_ip(client_ip)
        self._logger.info("request", extra={"event": "request", "fields": fields})

    def json_line(
        self, record: AccessRecord, duration: float, client_ip: str | None, now: float
    ) -> str:
        """The access line as JSON, byte for byte what ``json.dumps`` would write.

        Built by hand because it runs once per request: most values are short
        ASCII tokens that need no escaping, and :func:`_json_text` checks that.
        """
        # The parts between the path and the duration repeat from request to request:
        # they are rendered once per label set (a bounded cache).
        key = (record.status, record.rule, record.decision, record.reason)
        middle = self._middles.entries.get(key)
        if middle is None:
            middle = self._middles.put(
                key,
                f',"status":{record.status},"rule":{_json_text(record.rule)}'
                f',"decision":{_json_text(record.decision)},"reason":{_json_text(record.reason)}'
                ',"duration_ms":',
            )
        parts = [
            '{"time":"',
            utc_timestamp(now),
            '","level":"info","logger":"',
            ACCESS_LOGGER,
            '","event":"request","method":',
            _json_text(record.method),
            ',"path":',
            _json_text(record.path),
            middle,
            repr(round(duration * 1000, 3)),
            ',"request_id":"',
            self.request_id(),
            '"',
        ]
        if record.mode:
            parts += [',"mode":', _json_text(record.mode)]
        if record.verifier:
            parts += [',"verifier":', _json_text(record.verifier)]
        if self.log_client_ip:
            parts += [',"client":', _json_text(truncate_ip(client_ip))]
        parts.append("}")
        return "".join(parts)


def _json_text(value: str | None) -> str:
    """``json.dumps(value)`` for a str or None, without the encoder for plain ASCII."""
    if value is None:
        return "null"
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value)


def _handler_of(logger: logging.Logger) -> logging.Handler | None:
    """The handler a record from ``logger`` would reach first (it may sit on a parent)."""
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            return current.handlers[0]
        if not current.propagate:
            return None
        current = current.parent
    return None


def recording_status(send: Send, record: AccessRecord) -> Send:
    """Wrap ``send`` so the record learns the status actually sent."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            record.status = message["status"]
        await send(message)

    return wrapped
