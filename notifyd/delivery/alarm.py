"""The delivery worker's alarm: it sleeps on it until woken or its time is up, and it knows
when that sleep ends, so that a commit queueing a notice wakes it only when it would
otherwise claim that notice late (issue 22: a notice deferred by quiet hours used to wake
it, for a claim that found nothing).

Neighbours: worker.py sleeps on it between claims; the daemon hands `Dispatcher.wake_for`
to the intake, whose commits say when the first notice they left to the worker is due.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta


class Alarm:
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._event = asyncio.Event()
        self._clock = clock
        # When the current sleep ends, by `clock`; None while the worker is not asleep.
        self._until: datetime | None = None

    def set(self) -> None:
        """Wake the worker now (or spare it its next sleep)."""
        self._event.set()

    def wake_for(self, due_at: datetime, longest_sleep: float) -> None:
        """Wake for a notice due at `due_at` only if the worker would claim it late: asleep,
        if it is due before the sleep ends (a claim then finds it and says when it is due);
        awake, if before `longest_sleep` from now, since the claim under way may have
        missed it and be followed by that sleep."""
        until = self._until or self._clock() + timedelta(seconds=longest_sleep)
        if due_at < until:
            self._event.set()

    async def sleep(self, seconds: float) -> None:
        """Until woken, or `seconds` pass."""
        self._until = self._clock() + timedelta(seconds=seconds)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._event.wait()
        finally:
            self._until = None
        self._event.clear()
