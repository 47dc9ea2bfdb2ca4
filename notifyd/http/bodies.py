"""The bytes of webhook bodies in flight, all requests together, and the cap on them.

Without a cap, each connection may hold a body of `max_body_bytes` in memory while it is
read, checked and stored: 24 uploads of 25 MiB took the daemon from 90 MB to 715 MB. A
body is counted chunk by chunk as it arrives, until its request is answered; one whose
Content-Length cannot fit beside what is counted already is refused before it is read. An
announcement alone counts nothing: it costs nothing to send, and idle connections that
announced 25 MiB and sent no body held the whole cap (every webhook answered 503).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class BodiesInFlight:
    def __init__(self, limit: int) -> None:
        # Reloadable: a lower limit refuses new bodies; those already counted finish.
        self.limit = limit
        self.held = 0

    @contextmanager
    def reservation(self) -> Iterator[Reservation]:
        """Room taken for one request's body, given back however the request ends."""
        reservation = Reservation(self)
        try:
            yield reservation
        finally:
            self.held -= reservation.size
            reservation.size = 0


class Reservation:
    def __init__(self, bodies: BodiesInFlight) -> None:
        self._bodies = bodies
        self.size = 0

    def fits(self, size: int) -> bool:
        """Whether `size` more bytes would fit beside what is counted now (counting none)."""
        return self._bodies.held + size <= self._bodies.limit

    def take(self, size: int) -> bool:
        """Count `size` more bytes of this body, if the cap leaves room for them."""
        if not self.fits(size):
            return False
        self._bodies.held += size
        self.size += size
        return True
