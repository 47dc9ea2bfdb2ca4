"""notifyd's public app with everything but the database: the intake's floor (issue 22).

The daemon's own app (`create_app`: its middlewares, the webhook handler, validation, the
signature, the metrics, the log line) with bench/harness.py's sources, in front of an
intake that answers every webhook as newly stored without storing it: what a webhook
costs notifyd before and after its group commit. Log lines go to /dev/null (the daemon
writes them to a pipe). Prints "port N" once listening, as baseline_server.py does, so
that bench/webhook_cost.py --floor can set it beside the bare server (a).

    PYTHONPATH=<a notifyd checkout> python bench/floor_server.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from uuid import uuid4

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import SOURCES, notifyd_config  # bench/ is not a package: run as a script

from notifyd import logs
from notifyd import settings as settings_module
from notifyd.catalogue.events import Event
from notifyd.http.app import create_app
from notifyd.http.runtime import Runtime
from notifyd.intake.ingest import Receipt
from notifyd.metrics import Metrics
from notifyd.storage.attachments import StoredFile


class NoStorage:
    """The intake's interface to the handler, storing nothing: one loop turn, as a
    commit's await would take, then a fresh event id."""

    waiting = 0

    async def accept(
        self, _source: str, _webhook_id: str, _event: Event, _files: Sequence[StoredFile]
    ) -> Receipt:
        await asyncio.sleep(0)
        return Receipt(event_id=uuid4(), duplicate=False)


async def serve(settings: settings_module.Settings) -> None:
    runtime = Runtime(
        settings=settings,
        pool=None,  # type: ignore[arg-type]  # nothing here reaches the database
        dsn="",
        metrics=Metrics(),
        intake=NoStorage(),  # type: ignore[arg-type]
    )
    runner = web.AppRunner(create_app(runtime, admin=False), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server  # aiohttp names the port nowhere else
    assert isinstance(server, asyncio.Server)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ntfy-floor-"))
    config = notifyd_config(folder, "floor", "postgresql://unused/floor", 25, SOURCES)
    settings = settings_module.load(config, environ={})
    with open(os.devnull, "w", encoding="utf-8") as sink:
        logs.configure(settings.logging.level, settings.logging.format, sink)
        asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
