"""Per-destination-domain pacing: pure state, the clock passed in.

Large mailbox providers throttle senders that burst (421 "try again later", or worse, a
spam verdict). A broadcast to 100,000 subscribers of one provider should reach it at a
steady `rate` messages per second, not as fast as the relay can take them. Each send
reserves the domain's next slot; the caller waits until its slot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Pacer:
    rate: float  # messages per second per domain; 0: no pacing
    rates: Mapping[str, float] = field(default_factory=dict)
    _next: dict[str, float] = field(default_factory=dict)

    def reserve(self, address: str, now: float) -> float:
        """Seconds to wait before sending to `address` (0 when it may go at once)."""
        domain = address.rpartition("@")[2].lower()
        rate = self.rates.get(domain, self.rate)
        if rate <= 0:
            return 0.0
        slot = max(now, self._next.get(domain, now))
        self._next[domain] = slot + 1.0 / rate
        if len(self._next) > 10_000:
            # Forget domains whose slot has passed, so the map stays small.
            self._next = {d: t for d, t in self._next.items() if t > now}
        return slot - now

    def throttled(self, now: float, horizon: float) -> list[str]:
        """Domains booked more than `horizon` seconds ahead: not worth claiming for now.
        Claiming them anyway would park notices in delivery slots that other domains
        could use."""
        return sorted(domain for domain, slot in self._next.items() if slot > now + horizon)

    def release_in(self, now: float, horizon: float) -> float:
        """Seconds until the first throttled domain is within `horizon` again (0: none)."""
        ahead = [slot - horizon - now for slot in self._next.values() if slot > now + horizon]
        return min(ahead, default=0.0)
