"""The webhooks first: how many sends the delivery worker (worker.py) may have in flight,
given how many webhooks are waiting for their commit (the intake's count, which the daemon
hands the worker: delivery does not import the intake).

One event loop answers the webhooks and runs the sends; each send in flight is a few turns
of that loop (rendering, the SMTP session, the record of its outcome), and a 202 waits
behind all of them. While webhooks wait, the worker starts no send beyond a floor of its
slots, so a PBX's answer does not queue behind a full delivery pipeline. The floor is the
bound: delivery always keeps a quarter of `[delivery] concurrency` (at least one) and goes
on sending within it, however steady the webhooks are; what it does not start stays
queued in PostgreSQL, and every slot is its own again once no webhook waits.
"""

from __future__ import annotations

from collections.abc import Callable

# Delivery's share of its slots while webhooks wait: a quarter (16 of the default 64).
SHARE = 4


def floor(concurrency: int) -> int:
    """The sends delivery keeps in flight while webhooks wait: never none."""
    return max(1, concurrency // SHARE)


def slots(concurrency: int, webhooks_waiting: int) -> int:
    """The sends the worker may have in flight now."""
    return floor(concurrency) if webhooks_waiting else concurrency


class Slots:
    """The worker's slots, given how many webhooks wait."""

    def __init__(self) -> None:
        # The daemon sets the intake's count (`Intake.waiting`) here.
        self.webhooks_waiting: Callable[[], int] = lambda: 0

    def free(self, concurrency: int, in_flight: int) -> tuple[int, int]:
        """The sends that may be in flight now, and how many of those are free."""
        limit = slots(concurrency, self.webhooks_waiting())
        return limit, limit - in_flight
