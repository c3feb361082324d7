"""One timer per connection, moved only when a deadline comes sooner than it fires.

Client connections (:mod:`gateway.http.server`: idle and head timeouts) and
upstream connections (:mod:`gateway.upstream.connection`: read timeouts) wait for
something with a deadline on every request.  Cancelling and creating a timer
per wait costs more than the rest of the wait, so each connection keeps one
:class:`ConnectionTimer`: a new deadline moves it only when it is sooner, and
the callback, when it fires, checks whether its deadline has really come
(and arms the timer again if not).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["ConnectionTimer"]


class ConnectionTimer:
    """A re-armable ``loop.call_at`` that calls ``callback`` when it fires."""

    __slots__ = ("_callback", "_handle", "_loop", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self.when = 0.0  # loop time it fires at while armed; 0.0 while not

    @property
    def armed(self) -> bool:
        """True while the timer is set to fire."""
        return self._handle is not None

    def arm(self, when: float) -> None:
        """Fire at loop time ``when`` (instead of whenever it was set for)."""
        if self._handle is not None:
            self._handle.cancel()
        self.when = when
        self._handle = self._loop.call_at(when, self._fire)

    def arm_no_later(self, when: float) -> None:
        """Make sure the timer fires by ``when``: moved only if unset or set later."""
        if self._handle is None or when < self.when:
            self.arm(when)

    def stop(self) -> None:
        """Do not fire."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self.when = 0.0

    def _fire(self) -> None:
        self._handle = None
        self.when = 0.0
        self._callback()
