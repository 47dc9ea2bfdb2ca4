"""What one webhook's log line and request id cost the daemon's process, alone: CPU
microseconds (process time, so that other processes on the machine do not count) for the
"event stored" line through notifyd.logs' processors and renderer into /dev/null, for
mask_pii on its fields, and for a request id. Run it in two trees to compare them.

    .venv/bin/python bench/log_cost.py
"""

from __future__ import annotations

import os
import time
import timeit
from collections.abc import Callable

import structlog

from notifyd import logs
from notifyd.unique_ids import new_id

COUNT = 20_000
FIELDS = {
    "source": "pbx",
    "type": "call.missed",
    "event_id": "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
    "notices": 1,
    "skipped": None,
}
REQUEST_ID = "0f3a9c1e5b7d2a4c0000000000000001"


def cpu_us(work: Callable[[], object]) -> float:
    """Process time per call, the best of seven rounds."""
    best = min(timeit.repeat(work, number=COUNT, repeat=7, timer=time.process_time))
    return best / COUNT * 1e6


def main() -> None:
    with open(os.devnull, "w", encoding="utf-8") as sink:
        logs.configure("info", "json", sink)
        log = structlog.get_logger("notifyd.http.webhooks")
        structlog.contextvars.bind_contextvars(request_id=REQUEST_ID)
        line = {"event": "event stored", "request_id": REQUEST_ID, "level": "info", **FIELDS}
        print(f"log line: {cpu_us(lambda: log.info('event stored', **FIELDS)):.2f} us")
        print(f"mask_pii: {cpu_us(lambda: logs.mask_pii(None, 'info', dict(line))):.2f} us")
        print(f"request id: {cpu_us(new_id):.2f} us")
        structlog.contextvars.clear_contextvars()


if __name__ == "__main__":
    main()
