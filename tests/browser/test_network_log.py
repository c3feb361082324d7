"""The DevTools log reader of tests/support/browser.py pairs requests, redirects and responses."""

from __future__ import annotations

from typing import Any

from tests.support.browser import NetworkEvent, network_events


def _sent(request_id: str, url: str, redirect_status: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"requestId": request_id, "request": {"method": "GET", "url": url}}
    if redirect_status is not None:
        params["redirectResponse"] = {"status": redirect_status}
    return {"method": "Network.requestWillBeSent", "params": params}


def _received(request_id: str, status: int) -> dict[str, Any]:
    return {
        "method": "Network.responseReceived",
        "params": {"requestId": request_id, "response": {"status": status}},
    }


def test_redirect_hops_and_responses_each_get_their_status() -> None:
    events = [
        _sent("1", "http://localhost:1/a"),
        _sent("1", "http://localhost:1/b", redirect_status=303),
        _received("1", 200),
        _sent("2", "http://localhost:1/c"),
        {"method": "Page.frameNavigated", "params": {}},
    ]
    assert list(network_events(events)) == [
        NetworkEvent("GET", "http://localhost:1/a", 303),
        NetworkEvent("GET", "http://localhost:1/b", 200),
        NetworkEvent("GET", "http://localhost:1/c", None),
    ]
