"""Liveness, readiness and metrics for the service manager and Prometheus: `routes` on both
listeners, `scrape` (/metrics) on the admin one only (app.py)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from notifyd.http.operations import Answer, Routes
from notifyd.http.runtime import RUNTIME
from notifyd.storage import db, schema
from notifyd.storage import notices as notice_store

routes = Routes()
# Only on the admin listener: queue sizes and error rates are nobody else's business.
scrape = Routes()


@routes.get("/healthz", "Alive", answers={200: Answer("ok")})
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


@routes.get(
    "/readyz",
    "Ready: database reachable and schema current",
    answers={
        200: Answer("ready"),
        503: Answer("not ready: the database is unreachable or its schema is behind"),
    },
)
async def readyz(request: web.Request) -> web.Response:
    """200 only if a new connection can be had now and the schema is current. A pooled
    connection is not proof: during a smart shutdown it still answers while new ones are
    refused, and during a fast one it fails with errors no "unavailable" list names."""
    runtime = request.app[RUNTIME]
    try:
        async with asyncio.timeout(2):
            version = await schema.version_on_new_connection(runtime.dsn, runtime.settings.database)
    except Exception as error:  # whatever it is, the answer is "not ready"
        if isinstance(error, db.SHUTTING_DOWN):
            # Let a smart shutdown finish: it waits for every session to end.
            await runtime.pool.expire_connections()
        return web.json_response(
            {"status": "unavailable", "database": f"unreachable ({type(error).__name__})"},
            status=503,
        )
    latest = schema.latest_version()
    if version < latest:
        return web.json_response(
            {"status": "unavailable", "database": f"schema {version}, needs {latest}"},
            status=503,
        )
    return web.json_response({"status": "ready", "schema": version})


# A hung database must not hang the scrape: Prometheus' own timeout is 10 s by default, and
# a scrape that times out loses every metric, the database_up that says why among them.
SCRAPE_DATABASE_TIMEOUT = 2.0


@scrape.get(
    "/metrics", "Prometheus metrics", answers={200: Answer("text", media_type="text/plain")}
)
async def metrics(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    queue: dict[str, float] | None
    try:
        async with asyncio.timeout(SCRAPE_DATABASE_TIMEOUT):
            async with runtime.pool.acquire() as conn:
                queue = await notice_store.scrape_gauges(conn, runtime.clock())
    except Exception:  # whatever it is, the database did not answer: database_up says 0
        queue = None  # the other metrics are still worth serving while the database is away
    runtime.metrics.scraped(queue)
    # The text format's own type with its version, as Prometheus expects it.
    return web.Response(
        body=runtime.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )
