"""Composition root: one AsyncExitStack starts everything and stops it in reverse.

Start: state folder lock (embedded database only) and HTTP port, both checked before
anything else -> database (embedded if no URL; supervised) -> migrations -> delivery ->
jobs -> HTTP -> READY.
Stop (SIGTERM/SIGINT): HTTP stops accepting and finishes its requests, the worker finishes
the SMTP transactions in flight within the grace period and hands back the rest, then the
pools close and the embedded database stops. SIGHUP reloads the config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from contextlib import AsyncExitStack
from types import TracebackType

import structlog
from aiohttp import web

from notifyd import settings as settings_module
from notifyd import systemd
from notifyd.delivery.callbacks import CallbackSender
from notifyd.delivery.send import mailing_for
from notifyd.delivery.worker import Clock, Dispatcher, utcnow
from notifyd.http.app import create_app
from notifyd.http.pages.checks import pages_for
from notifyd.http.runtime import Runtime
from notifyd.intake.broadcasts import Broadcaster
from notifyd.intake.service import Intake
from notifyd.jobs import Jobs
from notifyd.links import Links
from notifyd.logs import configure as configure_logging
from notifyd.logs import log_loop_exceptions
from notifyd.mail.transport import Relays
from notifyd.metrics import Metrics
from notifyd.settings import ConfigError, Settings
from notifyd.storage import audit, db, schema
from notifyd.storage import links as link_store
from notifyd.storage.erasure import erasure_key
from notifyd.storage.state_folder import StateFolderLock

log = structlog.get_logger(__name__)

# Changing these needs a restart: they are bound when the daemon starts.
RESTART_ONLY = ("http", "database", "daemon")


class Daemon:
    def __init__(self, settings: Settings, *, clock: Clock = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.stack = AsyncExitStack()
        self.stopped = asyncio.Event()
        self.port: int | None = None
        self.runtime: Runtime | None = None
        self.intake: Intake | None = None
        self.dispatcher: Dispatcher | None = None
        self.database: db.Database | None = None
        self.links: Links | None = None

    async def __aenter__(self) -> Daemon:
        try:
            await self._start()
        except BaseException:
            await self.stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        systemd.notify("STOPPING=1")
        log.info("stopping")
        await self.stack.aclose()
        log.info("stopped")

    async def _start(self) -> None:
        """Each service after the ones it needs; each registers how it stops on the stack,
        so a failure at any step stops what had started, in reverse."""
        listeners = self._claim_state_folder_and_port()
        database = await self._open_database()
        metrics = Metrics()
        dispatcher = await self._start_delivery(database, metrics)
        broadcaster = await self._start_background_work(database, dispatcher)
        await self._serve(listeners, database, metrics, dispatcher, broadcaster)
        watchdog = systemd.watchdog_interval()
        if watchdog:
            task = asyncio.create_task(self._watchdog(watchdog))
            self.stack.callback(task.cancel)
        s = self.settings
        log.info(
            "ready",
            listen=f"http://{s.http.host}:{self.port}",
            delivery="smtp" if s.smtp.host else "eml folder",
            outbox=None if s.smtp.host else str(s.outbox_dir),
            database="embedded" if database.embedded else "configured url",
            pgdata=str(s.pgdata_dir) if database.embedded else None,
        )
        systemd.notify("READY=1", f"STATUS=listening on {s.http.host}:{self.port}")

    def _claim_state_folder_and_port(self) -> list[socket.socket]:
        """Before anything starts, the two faults an operator meets first: a daemon already
        running on this state folder, and the port taken. Each is one line and exit 69."""
        s = self.settings
        if not s.database.url:  # the embedded PostgreSQL lives in the state folder
            lock = StateFolderLock(s.daemon.state_dir)
            lock.acquire()
            self.stack.callback(lock.release)
        listeners = _bind(s.http.host, s.http.port)
        for sock in listeners:
            self.stack.callback(sock.close)
        s.daemon.state_dir.mkdir(parents=True, exist_ok=True)
        return listeners

    async def _open_database(self) -> db.Database:
        """The configured database, or the embedded one started and supervised; migrated."""
        s = self.settings
        database = await self.stack.enter_async_context(
            db.open_database(s.database, s.pgdata_dir, owner=not s.database.url)
        )
        self.database = database
        if database.embedded is not None:
            supervisor = asyncio.create_task(
                database.embedded.keep_running(), name="notifyd-embedded-postgresql"
            )
            self.stack.push_async_callback(_cancel, supervisor)
        async with database.pool.acquire() as conn:
            applied = await schema.migrate(conn)
        if applied:
            log.info("migrations applied", versions=[m.version for m in applied])
        return database

    async def _start_delivery(self, database: db.Database, metrics: Metrics) -> Dispatcher:
        s = self.settings
        self.links = Links(
            await link_store.link_keys(database.pool, s.daemon.link_secret, s.daemon.state_dir),
            s.http.public_url or f"http://{s.http.host}:{s.http.port}",
        )
        mailing = mailing_for(s, Relays(s.smtp, s.outbox_dir), self.links)
        self.stack.push_async_callback(lambda: self._close_transport())
        dispatcher = Dispatcher(
            pool=database.pool,
            dsn=database.dsn,
            database=s.database,
            mailing=mailing,
            owner=s.daemon.instance,
            metrics=metrics,
            clock=self.clock,
        )
        self.dispatcher = dispatcher
        await dispatcher.start()
        self.stack.push_async_callback(
            lambda: dispatcher.stop(self.settings.daemon.shutdown_grace_seconds)
        )
        return dispatcher

    async def _start_background_work(
        self, database: db.Database, dispatcher: Dispatcher
    ) -> Broadcaster:
        """The scheduled jobs, the delivery callbacks and the broadcasts' fan-out."""
        jobs = Jobs(
            database.pool,
            lambda: self.settings,
            on_queued=dispatcher.wake,
            clock=self.clock,
            metrics=dispatcher.metrics,
        )
        jobs.start()
        self.stack.callback(jobs.stop)
        # Delivery callbacks out: woken by each outcome that wrote one; stopped before delivery.
        callbacks = CallbackSender(
            database.pool, lambda: self.settings, dispatcher.metrics, self.clock
        )
        await callbacks.start()
        self.stack.push_async_callback(callbacks.stop)
        dispatcher.outcomes.on_told = callbacks.wake
        broadcaster = Broadcaster(
            database.pool,
            lambda: self.settings,
            lambda: self.settings.message_domain,
            dispatcher.wake,
            clock=self.clock,
        )
        await broadcaster.start()
        self.stack.push_async_callback(broadcaster.stop)
        return broadcaster

    async def _serve(
        self,
        listeners: list[socket.socket],
        database: db.Database,
        metrics: Metrics,
        dispatcher: Dispatcher,
        broadcaster: Broadcaster,
    ) -> None:
        """The intake, and the HTTP app that hands it the webhooks, on the bound sockets."""
        s = self.settings
        # Read once: the webhooks and the admin API recognise the same erased addresses.
        erased = erasure_key(s.privacy.erasure_key, s.daemon.state_dir)
        self.intake = Intake(
            database.pool,
            s,
            self.clock,
            observe_batch=metrics.ingest_batch.observe,
            on_queued=dispatcher.wake,
            claim_terms=dispatcher.claim_terms,
            on_claimed=dispatcher.adopt,
            erasure_key=erased,
            links=self.links,
        )
        # Registered before the HTTP server: closed after it has answered its last webhook.
        self.stack.push_async_callback(self.intake.close)
        assert self.links is not None
        self.runtime = Runtime(
            settings=s,
            pool=database.pool,
            metrics=metrics,
            intake=self.intake,
            clock=self.clock,
            on_queued=dispatcher.wake,
            on_broadcast=broadcaster.wake,
            links=self.links,
            dsn=database.dsn,
            erasure_key=erased,
            checked_pages=pages_for(s),
        )
        # After the server's cleanup (the stack runs backwards): no request can spawn more.
        self.stack.push_async_callback(self.runtime.drain)
        runner = web.AppRunner(
            create_app(self.runtime),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=s.daemon.shutdown_grace_seconds,
        )
        await runner.setup()
        self.stack.push_async_callback(runner.cleanup)
        for sock in listeners:
            await web.SockSite(runner, sock).start()
        self.port = _bound_port(runner, s.http.port)
        if not s.http.public_url:
            self.links.base_url = f"http://{s.http.host}:{self.port}"

    async def _close_transport(self) -> None:
        if self.dispatcher is not None:
            await self.dispatcher.mailing.transport.close()

    async def _watchdog(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

    def request_stop(self) -> None:
        self.stopped.set()

    async def reload(self) -> bool:
        """Re-read the config file; a broken file is logged and the running config stays."""
        systemd.reloading()
        assert self.runtime is not None
        assert self.intake is not None
        assert self.dispatcher is not None
        current = self.dispatcher.mailing.transport
        try:
            new = settings_module.load(self.settings.path)
            transport = current
            if new.smtp != self.settings.smtp:
                transport = Relays(new.smtp, new.outbox_dir)
            mailing = mailing_for(new, transport, self.links)
            pages = pages_for(new)
        except ConfigError as error:
            log.error(
                "reload refused: config invalid, keeping the running one",
                problems=[f"{key}: {message}" for key, message in error.problems],
            )
            systemd.notify("READY=1", "STATUS=reload refused: config invalid")
            assert self.database is not None
            await audit.record_apart(
                self.database.pool,
                audit.CONFIG,
                "config.reload_refused",
                detail={"problems": len(error.problems)},
            )
            return False
        for section in RESTART_ONLY:
            old_value, new_value = getattr(self.settings, section), getattr(new, section)
            if section == "daemon":
                # The instance name defaults to host:pid; only the explicit keys matter.
                old_value = (old_value.state_dir, old_value.shutdown_grace_seconds)
                new_value = (new_value.state_dir, new_value.shutdown_grace_seconds)
            if old_value != new_value:
                log.warning("config section changed; takes effect after a restart", section=section)
        configure_logging(new.logging.level, new.logging.format)
        self.runtime.apply(new, pages)
        self.intake.apply(new)
        old = self.dispatcher.reconfigure(mailing)
        if old is not transport:
            # Sends in progress keep their connection; idle ones close now.
            await old.close()
            await self.dispatcher.release_held()
        # The audit trail names the sections that changed, never their values.
        changed = [n for n in Settings.model_fields if getattr(new, n) != getattr(self.settings, n)]
        assert self.database is not None
        await audit.record_apart(
            self.database.pool, audit.CONFIG, "config.reloaded", detail={"sections": changed}
        )
        self.settings = new
        log.info("config reloaded", sources=sorted(new.sources))
        systemd.notify("READY=1", "STATUS=config reloaded")
        return True


def _bind(host: str, port: int) -> list[socket.socket]:
    """The HTTP listener's sockets, bound (not yet listening) before anything else starts, so
    that a port in use is said at once and nothing has been touched."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, protocol, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                # One port for every address of the host, as the first one got.
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.setblocking(False)
    except OSError as error:
        for sock in sockets:
            sock.close()
        if error.errno == errno.EADDRINUSE:
            raise OSError(
                error.errno,
                f"http {host}:{port} is in use (another notifyd, or another program, "
                "listens there); set [http] port",
            ) from None
        raise OSError(error.errno, f"cannot listen on http {host}:{port}: {error}") from None
    return sockets


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads."""
    loop = asyncio.get_running_loop()
    log_loop_exceptions(loop)
    daemon = Daemon(settings)
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = asyncio.create_task(daemon.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        async with daemon:
            await daemon.stopped.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
