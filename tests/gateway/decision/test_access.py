"""The access line: hand-built JSON identical to json.dumps, unique request ids."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.decision.access import AccessLog, AccessRecord
from gateway.observability import Metrics, truncate_ip, utc_timestamp

texts = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.sampled_from(["/wine/red", "wine", 'we"ird', "back\\slash", "ünï", "\x07"]),
)


@given(
    method=st.text(min_size=1, max_size=8),
    path=texts,
    status=st.integers(100, 599),
    rule=texts,
    decision=st.sampled_from(["allow", "challenge", "deny", "agegate", "reject"]),
    reason=texts,
    mode=st.one_of(st.none(), st.just("report-only")),
    verifier=texts,
    duration=st.floats(0, 100, allow_nan=False),
    log_ip=st.booleans(),
)
def test_json_line_is_exactly_json_dumps(
    method: str,
    path: str | None,
    status: int,
    rule: str | None,
    decision: str,
    reason: str | None,
    mode: str | None,
    verifier: str | None,
    duration: float,
    log_ip: bool,
) -> None:
    access = AccessLog(Metrics.create(), log_client_ip=log_ip)
    record = AccessRecord(method)
    record.path, record.status, record.rule = path, status, rule
    record.decision, record.reason, record.mode, record.verifier = decision, reason, mode, verifier
    now = 1_790_000_000.123
    line = access.json_line(record, duration, "203.0.113.7", now)
    parsed = json.loads(line)
    expected: dict[str, object] = {
        "time": utc_timestamp(now),
        "level": "info",
        "logger": "agegate.access",
        "event": "request",
        "method": method,
        "path": path,
        "status": status,
        "rule": rule,
        "decision": decision,
        "reason": reason,
        "duration_ms": round(duration * 1000, 3),
        "request_id": parsed["request_id"],
    }
    if mode:
        expected["mode"] = mode
    if verifier:
        expected["verifier"] = verifier
    if log_ip:
        expected["client"] = truncate_ip("203.0.113.7")
    assert line == json.dumps(expected, separators=(",", ":"))


def test_request_ids_are_unique_and_differ_between_processes() -> None:
    first, second = (AccessLog(Metrics.create(), log_client_ip=False) for _ in range(2))
    ids = [first.request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)
    assert first.request_id()[:8] != second.request_id()[:8]  # 2**-32 chance of a false fail
