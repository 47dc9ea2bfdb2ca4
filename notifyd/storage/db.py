"""The asyncpg pool, on a configured PostgreSQL or on the embedded one in the state folder."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from notifyd.settings import DatabaseSettings
from notifyd.storage import state_folder
from notifyd.storage.embedded import EmbeddedPostgres

log = structlog.get_logger(__name__)
T = TypeVar("T")

EMBEDDED_DATABASE = "notifyd"

# Errors that mean "the database is not reachable now", as opposed to a bug in a query.
UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    # A pooled connection whose server session was terminated (pg_terminate_backend, a
    # fast stop) can be handed out after the server's FATAL message arrived and before
    # the socket's end did: asyncpg then refuses the next query ("cannot switch to state
    # 15; another operation (2) is in progress"). Nothing was sent, so nothing committed.
    asyncpg.InternalClientError,
)


# "The database system is shutting down" (and starting up): it takes no new connection.
SHUTTING_DOWN = asyncpg.CannotConnectNowError


# What the storage functions take: a plain connection or one borrowed from the pool.
Conn = asyncpg.Connection | PoolConnectionProxy


@dataclass
class Database:
    pool: asyncpg.Pool
    dsn: str
    embedded: EmbeddedPostgres | None


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect(dsn: str, settings: DatabaseSettings) -> asyncpg.Connection:
    conn = await asyncpg.connect(
        dsn,
        timeout=settings.connect_timeout_seconds,
        server_settings={"application_name": "notifyd"},
    )
    await _init_connection(conn)
    return conn


async def create_pool(dsn: str, settings: DatabaseSettings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        timeout=settings.connect_timeout_seconds,
        command_timeout=settings.statement_timeout_seconds,
        init=_init_connection,
        reset=_keep_session,
        server_settings={"application_name": "notifyd"},
    )
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """asyncpg's default reset (unlock advisory locks, CLOSE ALL, UNLISTEN, RESET ALL) is a
    round trip on every release: a sixth of a webhook's database time. Pooled connections
    never LISTEN, SET or keep cursors, and `jobs.run_exclusive` drops a connection whose
    advisory lock it could not release, so there is nothing to reset."""


async def _ensure_embedded_database(server_dsn: str, settings: DatabaseSettings) -> None:
    conn = await asyncpg.connect(server_dsn, timeout=settings.connect_timeout_seconds)
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", EMBEDDED_DATABASE
        )
        if not exists:
            # Commands started together each find it missing: one creates it, the others
            # meet its catalogue row (a unique violation, or duplicate once committed).
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
    finally:
        await conn.close()


async def resolve_dsn(
    settings: DatabaseSettings, pgdata: Path, patience: float = 30.0
) -> tuple[str, EmbeddedPostgres | None]:
    """The configured URL, or start the embedded server (or find it running) and return its
    URL. A server found may still be starting (another command started it): waited for."""
    if settings.url:
        return settings.url, None
    embedded = EmbeddedPostgres(pgdata)
    server_dsn = await embedded.start()
    log.info(
        "embedded postgresql started" if embedded.started_here else "embedded postgresql found",
        pgdata=str(pgdata),
        socket=str(embedded.socket_dir),
    )
    await _patiently(lambda: _ensure_embedded_database(server_dsn, settings), patience)
    return embedded.dsn(EMBEDDED_DATABASE), embedded


class DatabaseTLSError(OSError):
    """The database server's TLS certificate was refused (signed by a CA other than the
    URL's `sslrootcert`, or not naming the URL's host): a mistake in the setup that waiting
    does not mend, so the daemon and `notifyd migrate` stop at once rather than retry as
    for a server that is down. An OSError, as the refusal it replaces, so both print it as
    one line (cli.py, migrate_cli.py); it never holds the URL, which may hold a password."""


def _refused_certificate(error: ssl.SSLCertVerificationError) -> DatabaseTLSError:
    reason = error.verify_message or error.reason or "certificate verify failed"
    return DatabaseTLSError(
        f"database TLS: the server's certificate was refused ({reason}): check that the "
        "database URL's sslrootcert is the CA that signed it and that its host is a name "
        "the certificate holds (docs/operations.md, TLS to the database)"
    )


async def wait_for_pool(dsn: str, settings: DatabaseSettings, patience: float) -> asyncpg.Pool:
    """Create the pool, retrying while the database is still starting (up to `patience` s);
    a refused certificate at once (DatabaseTLSError)."""
    return await _patiently(lambda: create_pool(dsn, settings), patience)


async def _patiently(attempt: Callable[[], Awaitable[T]], patience: float) -> T:
    """`attempt()`, again while the database is unavailable, up to `patience` seconds."""
    deadline = time.monotonic() + patience
    delay = 0.2
    while True:
        try:
            return await attempt()
        except ssl.SSLCertVerificationError as error:
            raise _refused_certificate(error) from None
        except UNAVAILABLE as error:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable, retrying", error=type(error).__name__, delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


@asynccontextmanager
async def open_database(
    settings: DatabaseSettings, pgdata: Path, *, patience: float = 30.0, owner: bool = False
) -> AsyncIterator[Database]:
    # A command (not the daemon) shares the embedded server with the other commands: its
    # share is taken before the server is started or found (state_folder.CommandsSharing).
    sharing = None
    if not settings.url and not owner:
        sharing = await asyncio.to_thread(state_folder.CommandsSharing, pgdata.parent)
    embedded = None
    try:
        async with sharing.starting() if sharing else contextlib.nullcontext():
            dsn, embedded = await resolve_dsn(settings, pgdata, patience)
        if embedded is not None and embedded.started_here and not owner:
            (pgdata.parent / state_folder.STARTED_BY_COMMAND).touch()
        pool = await wait_for_pool(dsn, settings, patience)
        try:
            yield Database(pool=pool, dsn=dsn, embedded=embedded)
        finally:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except TimeoutError:
                log.warning("database pool did not close in 10 s; terminating its connections")
                pool.terminate()
    finally:
        if embedded is not None and _stops_it(pgdata.parent, sharing):
            await embedded.stop()
            (pgdata.parent / state_folder.STARTED_BY_COMMAND).unlink(missing_ok=True)
            log.info("embedded postgresql stopped")
        if sharing is not None:
            sharing.close()


def _stops_it(state_dir: Path, sharing: state_folder.CommandsSharing | None) -> bool:
    """The daemon holding the state folder (`sharing` None) stops the server, even one it
    found running (left by a daemon that was killed). A command stops one that a command
    started, when it is the last command out, and not when a daemon took the folder
    meanwhile: the daemon uses it now. A server found running otherwise is left running."""
    if sharing is None:
        return True
    return (
        (state_dir / state_folder.STARTED_BY_COMMAND).exists()
        and not state_folder.in_use(state_dir)
        and sharing.last_one()
    )
