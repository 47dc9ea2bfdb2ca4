"""How often one client may ask for something, counted in this process's memory: the asks
for a fresh preference link (pages/renewal.py) per client address. Kept per host and
forgotten at restart, so no client address is ever stored."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

# Clients remembered at most: past that the longest quiet one is forgotten, so a flood of
# addresses costs bounded memory (and at worst lets a forgotten client ask again).
MAX_CLIENTS = 50_000


class ClientWindow:
    """At most `limit` asks per client in any `seconds`-long window."""

    def __init__(
        self, seconds: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._asks: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str, limit: int) -> bool:
        """Count this ask, unless the client already made `limit` in the window."""
        now = self._clock()
        asks = self._asks.pop(client, None) or deque()
        while asks and asks[0] <= now - self.seconds:
            asks.popleft()
        allowed = len(asks) < limit
        if allowed:
            asks.append(now)
        self._asks[client] = asks  # the most recent client last
        while len(self._asks) > MAX_CLIENTS:
            self._asks.popitem(last=False)
        return allowed
