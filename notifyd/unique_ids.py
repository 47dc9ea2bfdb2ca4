"""Unique ids that are not secrets: the request id given to an HTTP request that came
without an X-Request-Id (http/app.py binds it to the request's log lines and answers it in
the header) and the MIME boundaries of every message (mail/mime.py). A leaf, so that both
stages may use it.

A per-process random prefix and a counter: 32 hex characters, the shape of the uuid4 hex
it replaces, unique across hosts and restarts as long as two processes never draw the same
64-bit prefix. uuid4() read 16 bytes from the kernel on every call (a getrandom system
call, 2-5 us under load); this is a string format (0.4-0.7 us; docs/performance.md, stop 28).
Neither use needs a secret: a request id is a correlation handle in the log, a boundary
only has to differ from the text it separates (mime.py says why it always does); that a
counter is guessable matters nothing (the prefix is random only to keep hosts and
restarts apart)."""

from __future__ import annotations

import itertools
import os
import secrets


def _new_prefix() -> str:
    # With digits alone, an early id (a counter of leading zeros) would be all digits, and
    # the log's masking would take it for a phone number: one letter at least.
    while (prefix := secrets.token_hex(8)).isdigit():
        pass
    return prefix


_prefix = _new_prefix()
_counter = itertools.count()


def new_id() -> str:
    return f"{_prefix}{next(_counter):016x}"


def _after_fork() -> None:
    # A forked child would repeat its parent's ids from the same counter.
    global _prefix, _counter
    _prefix = _new_prefix()
    _counter = itertools.count()


os.register_at_fork(after_in_child=_after_fork)
