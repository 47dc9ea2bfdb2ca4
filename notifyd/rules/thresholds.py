"""Pure low-credit rules (SPEC §5): crossings with hysteresis, and days of credit left.

A balance going below `low` notifies once, below `critical` once ("insufficient to continue
service"); neither notifies again until the balance has risen above that threshold plus
the hysteresis. No I/O: the caller loads and stores the level under a row lock.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from notifyd.model import Level
from notifyd.settings import Thresholds

_RANK = {Level.OK: 0, Level.LOW: 1, Level.CRITICAL: 2}


@dataclass(frozen=True)
class Crossing:
    """The outcome of one balance update: the level to store and what to notify, if any."""

    level: Level
    notify: Level | None
    threshold: Decimal | None


def effective(admin: Thresholds, subscriber_low: Decimal | None) -> Thresholds:
    """A subscriber may ask to hear earlier (a higher `low`), never later."""
    if subscriber_low is None or subscriber_low <= admin.low:
        return admin
    return Thresholds(low=subscriber_low, critical=admin.critical, hysteresis=admin.hysteresis)


def cross(current: Level, balance: Decimal, limits: Thresholds) -> Crossing:
    if balance < limits.critical:
        reached = Level.CRITICAL
    elif balance < limits.low:
        reached = Level.LOW
    else:
        reached = Level.OK
    if _RANK[reached] > _RANK[current]:
        # Straight from OK to CRITICAL sends the critical notice only: it says more.
        threshold = limits.critical if reached is Level.CRITICAL else limits.low
        return Crossing(reached, reached, threshold)
    # Rising: a level is re-armed only above its threshold plus the hysteresis, so a balance
    # that hovers around a threshold does not notify at every wobble.
    level = current
    if level is Level.CRITICAL and balance > limits.critical + limits.hysteresis:
        level = Level.LOW
    if level is Level.LOW and balance > limits.low + limits.hysteresis:
        level = Level.OK
    return Crossing(level, None, None)


def days_left(
    history: Sequence[tuple[datetime, Decimal]],
    balance: Decimal,
    now: datetime,
    window: timedelta = timedelta(days=7),
) -> int | None:
    """Whole days the balance lasts at the spending rate of the recent `window`.

    Only decreases count as spending (top-ups are not negative spending). None when there
    is less than a day of history or no spending to extrapolate from.
    """
    recent = sorted((at, value) for at, value in history if now - window <= at <= now)
    if len(recent) < 2 or balance <= 0:
        return None
    span = recent[-1][0] - recent[0][0]
    if span < timedelta(days=1):
        return None
    steps = itertools.pairwise(value for _, value in recent)
    spent = sum((max(earlier - later, Decimal(0)) for earlier, later in steps), Decimal(0))
    if spent <= 0:
        return None
    per_day = spent / Decimal(span.total_seconds() / 86400)
    return math.floor(balance / per_day)
