"""An aiosmtpd sink in its own process: prints "port N", then "<count> <unix time>" each
time `--report-every` more messages have been accepted (and after a quiet second)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiosmtpd.smtp import SMTP, Envelope, Session


class Counting:
    def __init__(self, every: int) -> None:
        self.every = every
        self.count = 0
        self.reported = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.count += 1
        if self.count - self.reported >= self.every:
            self.report()
        return "250 2.0.0 Ok: queued"

    def report(self) -> None:
        self.reported = self.count
        sys.stdout.write(f"{self.count} {time.time():.6f}\n")
        sys.stdout.flush()


async def main(every: int) -> None:
    handler = Counting(every)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="sink.bench", data_size_limit=50 * 1024 * 1024),
        "127.0.0.1",
        0,
    )
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    while True:  # the stragglers after the last full report
        await asyncio.sleep(1)
        if handler.count != handler.reported:
            handler.report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--report-every", type=int, default=100)
    asyncio.run(main(parser.parse_args().report_every))
