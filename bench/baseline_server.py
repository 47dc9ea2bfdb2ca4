"""The raw baselines for ingest, each a bare aiohttp server in its own process:

  parse   parses the JSON body and answers 202, storing nothing (the HTTP ceiling);
  insert  also does one committed INSERT per request through an asyncpg pool (the cost of
          durability done naively).

Prints "port N" once listening.

    python bench/baseline_server.py parse
    python bench/baseline_server.py insert --dsn postgresql://...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import asyncpg
from aiohttp import web

TABLE = """CREATE TABLE IF NOT EXISTS baseline_events (
    id bigserial PRIMARY KEY, webhook_id text NOT NULL, body jsonb NOT NULL)"""
INSERT = "INSERT INTO baseline_events (webhook_id, body) VALUES ($1, $2::jsonb)"


async def serve(mode: str, dsn: str | None) -> None:
    app = web.Application()
    pool: asyncpg.Pool | None = None
    if mode == "insert":
        assert dsn, "--dsn is needed for insert"
        pool = await asyncpg.create_pool(dsn, min_size=10, max_size=10)
        await pool.execute(TABLE)

    async def parse(request: web.Request) -> web.Response:
        event = json.loads(await request.read())
        return web.json_response({"type": event.get("type")}, status=202)

    async def insert(request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)
        assert pool is not None
        await pool.execute(
            INSERT,
            request.headers.get("webhook-id", ""),
            body.decode(),
        )
        return web.json_response({"type": event.get("type")}, status=202)

    app.router.add_post("/v1/webhooks/{source}", parse if mode == "parse" else insert)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    sys.stdout.write(f"port {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("parse", "insert"))
    parser.add_argument("--dsn")
    args = parser.parse_args()
    asyncio.run(serve(args.mode, args.dsn))
