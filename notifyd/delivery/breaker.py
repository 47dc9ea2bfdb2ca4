"""The relay circuit breaker: pure state, no I/O, the clock passed in.

A relay that refuses everything (a wrong password, a relay that no longer accepts us)
answers 5xx to every notice. Failing them all would throw away a day's notices for one
configuration mistake. So: when `threshold` consecutive refusals, for as many different
addresses, arrive with no success in between, or the relay refuses us before any message
(the login, or a 5xx to the greeting, EHLO or STARTTLS), the breaker opens: delivery
pauses for a cooldown (doubling, up to an hour), the refused notices go back to the queue,
and an error is logged for the admin. After the cooldown one notice is tried (half open):
a success closes the breaker, a refusal opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

MAX_COOLDOWN = 3600.0


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Breaker:
    threshold: int  # 0: never opens
    cooldown: float
    state: State = State.CLOSED
    open_until: float = 0.0
    current_cooldown: float = 0.0
    # Refusals since the last success: (notice, address).
    streak: list[tuple[UUID, str]] = field(default_factory=list)
    trips: int = 0

    def allowance(self, now: float) -> int | None:
        """How many notices may be claimed now: None for no limit."""
        if self.state is State.CLOSED:
            return None
        if now < self.open_until:
            return 0
        self.state = State.HALF_OPEN
        return 1

    @property
    def is_open(self) -> bool:
        return self.state is not State.CLOSED

    def succeeded(self) -> list[UUID]:
        """A delivery: the relay works. Returns the notices of the streak, whose refusals
        were theirs after all (their failure will not be withdrawn)."""
        confirmed = [notice_id for notice_id, _ in self.streak]
        self.state = State.CLOSED
        self.streak.clear()
        self.current_cooldown = 0.0
        return confirmed

    def may_withdraw(self, notice_id: UUID) -> bool:
        """Whether the notice's refusal is in the streak: should the breaker open, its
        failure is taken back (and its callback with it)."""
        return any(refused == notice_id for refused, _ in self.streak)

    def refused(self, notice_id: UUID, address: str, now: float) -> list[UUID] | None:
        """A 5xx. Returns the notices to put back when this refusal opens the breaker (the
        earlier refusals of the streak, already recorded as failed), else None."""
        if self.threshold <= 0:
            return None
        self.streak.append((notice_id, address.lower()))
        if self.state is State.HALF_OPEN:
            return self._open(now)
        if self.state is State.CLOSED and len({a for _, a in self.streak}) >= self.threshold:
            return self._open(now)
        return None

    def refused_us(self, now: float) -> None:
        """The relay refused us before any message (our login, or a 5xx to the greeting,
        EHLO or STARTTLS): nothing can go until the admin or the relay's owner acts."""
        if self.threshold > 0 and self.state is not State.OPEN:
            self._open(now)

    def _open(self, now: float) -> list[UUID]:
        self.current_cooldown = min(
            self.current_cooldown * 2 if self.current_cooldown else self.cooldown, MAX_COOLDOWN
        )
        self.state = State.OPEN
        self.open_until = now + self.current_cooldown
        self.trips += 1
        earlier = [notice_id for notice_id, _ in self.streak[:-1]]
        self.streak.clear()
        return earlier

    def wait(self, now: float) -> float:
        """Seconds until one notice may be tried again."""
        return max(self.open_until - now, 0.0)
