"""An aiosmtpd sink in its own process: prints "port N", then "<count> <unix time>" each
time `--report-every` more messages have been accepted (and after a quiet second).

`--arrivals FILE` also writes "<recipient> <unix time>" per message (flushed with each
report); `--delay S` makes every DATA take S seconds (a slow relay). It offers PIPELINING
(RFC 2920) as Postfix does; aiosmtplib, the raw baseline, does not use it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TextIO

from aiosmtpd.smtp import SMTP, Envelope, Session


class Counting:
    def __init__(self, every: int, arrivals: TextIO | None, delay: float) -> None:
        self.every = every
        self.count = 0
        self.reported = 0
        self.arrivals = arrivals
        self.delay = delay

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        return [responses[0], "250-PIPELINING", *responses[1:]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.count += 1
        if self.arrivals is not None:
            now = time.time()
            self.arrivals.writelines(f"{rcpt} {now:.6f}\n" for rcpt in envelope.rcpt_tos)
        if self.count - self.reported >= self.every:
            self.report()
        return "250 2.0.0 Ok: queued"

    def report(self) -> None:
        self.reported = self.count
        if self.arrivals is not None:
            self.arrivals.flush()
        sys.stdout.write(f"{self.count} {time.time():.6f}\n")
        sys.stdout.flush()


async def main(every: int, arrivals: TextIO | None, delay: float, port: int = 0) -> None:
    handler = Counting(every, arrivals, delay)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="sink.bench", data_size_limit=50 * 1024 * 1024),
        "127.0.0.1",
        port,
        reuse_address=True,
    )
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    while True:  # the stragglers after the last full report
        await asyncio.sleep(1)
        if handler.count != handler.reported:
            handler.report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--report-every", type=int, default=100)
    parser.add_argument("--arrivals", type=Path)
    parser.add_argument("--delay", type=float, default=0.0)
    # For a relay stopped and started again (bench/soak.py): the same port, the same file.
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    mode = "a" if args.append else "w"
    log = args.arrivals.open(mode, encoding="utf-8") if args.arrivals else None
    asyncio.run(main(args.report_every, log, args.delay, args.port))
