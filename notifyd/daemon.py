"""Composition root: one AsyncExitStack starts everything and stops it in reverse.

Start: state folder lock (embedded database only) and the HTTP ports (public and admin,
http/listeners.py), checked before anything else -> database (embedded if no URL;
supervised) -> migrations -> delivery -> jobs -> HTTP -> READY.
Stop (SIGTERM/SIGINT): HTTP stops accepting and finishes its requests, the worker finishes
the SMTP transactions in flight within the grace period and hands back the rest, then the
pools close and the embedded database stops. SIGHUP reloads the config file.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from contextlib import AsyncExitStack
from types import TracebackType

import structlog

from notifyd import settings as settings_module
from notifyd import systemd
from notifyd.delivery.callbacks import CallbackSender
from notifyd.delivery.send import mailing_for
from notifyd.delivery.worker import Clock, Dispatcher, utcnow
from notifyd.http.app import create_app
from notifyd.http.listeners import Listener, bind
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
from notifyd.settings import ConfigError, HttpSettings, Settings, tls_context
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
        # The admin listener's port: the public one's with [http.admin] shared = true.
        self.admin_port: int | None = None
        self.listeners: tuple[Listener, Listener | None] | None = None
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
        public, admin = listeners
        log.info(
            "ready",
            listen=public.url,
            admin_listen=admin.url if admin else "shared with listen",
            delivery="smtp" if s.smtp.host else "eml folder",
            outbox=None if s.smtp.host else str(s.outbox_dir),
            database="embedded" if database.embedded else "configured url",
            pgdata=str(s.pgdata_dir) if database.embedded else None,
        )
        where = f"{public.url}, admin {admin.url}" if admin else public.url
        systemd.notify("READY=1", f"STATUS=listening on {where}")

    def _claim_state_folder_and_port(self) -> tuple[Listener, Listener | None]:
        """Before anything starts, the two faults an operator meets first: a daemon already
        running on this state folder, and a port taken. Each is one line and exit 69. The
        admin listener is None when it shares the public one."""
        s = self.settings
        if not s.database.url:  # the embedded PostgreSQL lives in the state folder
            lock = StateFolderLock(s.daemon.state_dir)
            lock.acquire()
            self.stack.callback(lock.release)
        http, admin_http = s.http, s.http.admin
        public = bind("http", http.host, http.port, tls_context(http.cert_file, http.key_file))
        admin = None
        try:
            if not s.http.admin.shared:
                tls = tls_context(admin_http.cert_file, admin_http.key_file)
                admin = bind("http.admin", admin_http.host, admin_http.port, tls)
        finally:
            for sock in [*public.sockets, *(admin.sockets if admin else ())]:
                self.stack.callback(sock.close)
        s.daemon.state_dir.mkdir(parents=True, exist_ok=True)
        return public, admin

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
            s.http.public_url or f"{s.http.scheme}://{s.http.host}:{s.http.port}",
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
        listeners: tuple[Listener, Listener | None],
        database: db.Database,
        metrics: Metrics,
        dispatcher: Dispatcher,
        broadcaster: Broadcaster,
    ) -> None:
        """The intake, and the HTTP apps that hand it the webhooks, on the bound sockets:
        the public routes and the admin ones on their own listeners, or both on one."""
        s = self.settings
        # Read once: the webhooks and the admin API recognise the same erased addresses.
        erased = erasure_key(s.privacy.erasure_key, s.daemon.state_dir)
        self.intake = Intake(
            database.pool,
            s,
            self.clock,
            observe_batch=metrics.ingest_batch.observe,
            on_queued=dispatcher.wake_for,
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
        self.listeners = listeners
        public, admin = listeners
        grace = s.daemon.shutdown_grace_seconds
        await public.serve(self.stack, create_app(self.runtime, admin=admin is None), grace)
        if admin is not None:
            await admin.serve(self.stack, create_app(self.runtime, public=False), grace)
        self.port = public.port
        self.admin_port = admin.port if admin else public.port
        if not s.http.public_url:
            self.links.base_url = public.url

    def _renew_certificates(self, new: Settings) -> None:
        """Each HTTPS listener reads its certificate and key again (from the new paths, if
        they moved): a renewed certificate needs a reload, not a restart. New connections
        get it; open ones keep theirs."""
        assert self.listeners is not None
        public, admin = self.listeners
        for listener, files in ((public, new.http), (admin, new.http.admin)):
            if listener is None or listener.ssl_context is None or files.cert_file is None:
                continue
            try:
                listener.ssl_context.load_cert_chain(files.cert_file, files.key_file)
            except (OSError, ssl.SSLError) as error:  # changed since checked: keep the old
                log.error("certificate not reloaded", listener=listener.section, error=str(error))

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
                problems=error.described(),
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
            if section == "http":
                old_value, new_value = _bound(old_value), _bound(new_value)
            if old_value != new_value:
                log.warning("config section changed; takes effect after a restart", section=section)
        configure_logging(new.logging.level, new.logging.format)
        self._renew_certificates(new)
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


def _bound(http: HttpSettings) -> tuple[object, ...]:
    """What of [http] is bound at start: the listeners' addresses and whether each speaks
    TLS. The rest (the proxies believed, the certificate files) a reload applies."""
    admin = http.admin
    return (
        http.host,
        http.port,
        http.cert_file is None,
        admin.shared,
        admin.host,
        admin.port,
        admin.cert_file is None,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


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
