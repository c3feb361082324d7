"""gateway.core.timers.ConnectionTimer on a real event loop."""

from __future__ import annotations

import asyncio

from gateway.core.timers import ConnectionTimer


async def test_fires_once_at_its_time_and_is_then_unarmed() -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    timer = ConnectionTimer(loop, lambda: fired.append(loop.time()))
    start = loop.time()
    timer.arm(start + 0.05)
    assert timer.armed
    await asyncio.sleep(0.15)
    assert len(fired) == 1
    assert fired[0] >= start + 0.05
    assert not timer.armed


async def test_arm_no_later_moves_only_to_a_sooner_deadline() -> None:
    loop = asyncio.get_running_loop()
    timer = ConnectionTimer(loop, lambda: None)
    now = loop.time()
    timer.arm_no_later(now + 10)
    assert timer.when == now + 10
    timer.arm_no_later(now + 20)  # later: the timer keeps its sooner deadline
    assert timer.when == now + 10
    timer.arm_no_later(now + 5)
    assert timer.when == now + 5
    timer.stop()
    assert not timer.armed


async def test_stopped_or_moved_timers_do_not_fire_at_the_old_time() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    stopped = ConnectionTimer(loop, lambda: fired.append("stopped"))
    moved = ConnectionTimer(loop, lambda: fired.append("moved"))
    stopped.arm(loop.time() + 0.02)
    moved.arm(loop.time() + 0.02)
    stopped.stop()
    moved.arm(loop.time() + 0.5)
    await asyncio.sleep(0.1)
    assert fired == []
    moved.stop()
