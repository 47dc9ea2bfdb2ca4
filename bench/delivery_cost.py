"""What one delivered message costs the daemon's process in its pieces, alone: CPU
microseconds (process time, so that other processes on the machine do not count) for the
bench's plain message (`notice.service` in Romanian, as bench/delivery.py sends it) through
`Renderer.mail`, its rendering, its MIME composition and the quoted-printable of its HTML,
and for the worker's `delivery` log line written both ways (a `bind`, then `info`; one
`info` with every field). Medians of seven rounds. The whole-daemon bench cannot resolve
tens of microseconds on a loaded machine; this can. Run it against two trees to compare
them (PYTHONPATH=<tree> puts that tree's notifyd first):

    .venv/bin/python bench/delivery_cost.py
    PYTHONPATH=/path/to/main .venv/bin/python bench/delivery_cost.py
"""

from __future__ import annotations

import os
import statistics
import time
import timeit
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

import notifyd
from notifyd import logs
from notifyd.mail import mime
from notifyd.mail.previews import sample_view
from notifyd.mail.rendering import Renderer

COUNT = 3_000
NOTICE = {
    "notice_id": str(uuid.UUID(int=1)),
    "event_id": str(uuid.UUID(int=2)),
    "kind": "notice.service",
    "attempt": 0,
}


def cpu_us(work: Callable[[], object]) -> float:
    """Process time per call, the median of seven rounds."""
    rounds = timeit.repeat(work, number=COUNT, repeat=7, timer=time.process_time)
    return statistics.median(rounds) / COUNT * 1e6


def main() -> None:
    print(f"notifyd from {os.path.dirname(notifyd.__file__)}")
    renderer = Renderer("Bench <bench@voip.example>")
    view = sample_view("notice.service", "ro")
    now = datetime.now(UTC)
    rendered = renderer.render(view)
    headers = [mime.header("Subject", rendered.subject)]
    pieces: dict[str, Callable[[], object]] = {
        "Renderer.mail": lambda: renderer.mail(view, now),
        "Renderer.render": lambda: renderer.render(view),
        "mime.compose": lambda: mime.compose(headers, rendered.text, rendered.html),
        "quoted-printable of the HTML": lambda: mime._qp(rendered.html),
    }
    for name, work in pieces.items():
        print(f"{name}: {cpu_us(work):.1f} us")
    with open(os.devnull, "w", encoding="utf-8") as sink:
        logs.configure("info", "json", sink)
        log = structlog.get_logger("notifyd.delivery.worker")
        reply = "250 2.0.0 Ok: queued as 4F2A1B"

        def bound_then_info() -> None:
            log.bind(**NOTICE).info("delivery", outcome="sent", reply=reply)

        def one_info() -> None:
            log.info("delivery", **NOTICE, outcome="sent", reply=reply)

        print(f"log line, bind then info: {cpu_us(bound_then_info):.1f} us")
        print(f"log line, one info: {cpu_us(one_info):.1f} us")


if __name__ == "__main__":
    main()
