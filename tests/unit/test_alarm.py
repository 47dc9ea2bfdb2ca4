"""The delivery worker's alarm (issue 22): a commit's notices wake a sleeping worker only
if they are due before its sleep ends; an awake one (claiming) if before the longest sleep
that may follow. A fake clock; every wait bounded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from notifyd.delivery.alarm import Alarm

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
POLL = 5.0


async def _asleep(alarm: Alarm, seconds: float) -> asyncio.Task[None]:
    sleeping = asyncio.create_task(alarm.sleep(seconds))
    await asyncio.sleep(0)  # it starts its sleep
    return sleeping


async def test_a_notice_due_after_the_sleep_ends_lets_the_worker_sleep() -> None:
    alarm = Alarm(lambda: NOW)
    sleeping = await _asleep(alarm, 0.5)
    # Deferred for the quiet hours: the claim at the end of the sleep will see it.
    alarm.wake_for(NOW + timedelta(hours=6), POLL)
    alarm.wake_for(NOW + timedelta(seconds=0.5), POLL)
    await asyncio.sleep(0.05)
    assert not sleeping.done()
    async with asyncio.timeout(2):
        await sleeping  # until its own time


async def test_a_notice_due_before_the_sleep_ends_wakes_the_worker() -> None:
    for due in (NOW, NOW + timedelta(seconds=30)):
        alarm = Alarm(lambda: NOW)
        sleeping = await _asleep(alarm, 60)
        alarm.wake_for(due, POLL)
        async with asyncio.timeout(2):
            await sleeping


async def test_an_awake_worker_is_woken_for_what_its_next_sleep_could_miss() -> None:
    """While it claims (not asleep), its claim may have missed the notice and the sleep
    after it may last the poll interval: woken for a notice due within it, not after."""
    alarm = Alarm(lambda: NOW)
    alarm.wake_for(NOW + timedelta(hours=6), POLL)
    sleeping = await _asleep(alarm, 0.2)
    await asyncio.sleep(0.05)
    assert not sleeping.done()  # that did not spare it its next sleep
    async with asyncio.timeout(2):
        await sleeping
    alarm.wake_for(NOW + timedelta(seconds=POLL - 1), POLL)
    async with asyncio.timeout(2):
        await alarm.sleep(60)  # spared
