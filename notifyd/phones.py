"""Phone numbers with their country code, parsed once per process.

Parsing one with `phonenumbers` costs more than the rest of an event's validation, and a
missed call's numbers are parsed twice on their way: when the webhook is validated and when
its notice is written. Both go through this cache, so a host that takes the webhook and
sends its notice parses each number once.
"""

from __future__ import annotations

import functools

import phonenumbers


@functools.lru_cache(maxsize=4096)
def parse_international(value: str) -> phonenumbers.PhoneNumber | None:
    """'+40721555123' parsed; None when it is not a number with a country code. The result
    is shared: read it, never change it."""
    try:
        return phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
