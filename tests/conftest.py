"""Shared fixtures: a throwaway PostgreSQL per test run (per xdist worker), a fresh database
per test cloned from a migrated template, a real SMTP server (aiosmtpd) on a port the OS
picks, helpers to write configs, sign webhooks and run the daemon, and Jinja's compiled
templates shared by every renderer of a test process."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from ssl import SSLContext
from typing import Any, TypeVar

import aiohttp
import asyncpg
import jinja2
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from standardwebhooks import Webhook

from notifyd import settings as settings_module
from notifyd.daemon import Daemon
from notifyd.mail import rendering
from notifyd.settings import Settings
from notifyd.storage import schema
from notifyd.storage.embedded import EmbeddedPostgres

T = TypeVar("T")
Sink = TypeVar("Sink", bound="SmtpSink")

PBX_SECRET = "whsec_" + base64.b64encode(b"pbx-test-secret-0123456789abcdef").decode()
BILLING_SECRET = "whsec_" + base64.b64encode(b"billing-test-secret-0123456789ab").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"someone-else-secret-0123456789ab").decode()
TEMPLATE_DB = "notifyd_template"
WAIT = 15.0  # seconds any single wait in a test may take before it fails


# -- templates ---------------------------------------------------------------------------------


class CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's bytecode cache, in memory: each template compiled once per test process.

    Every Renderer builds its own Jinja environments and compiles every template in them
    when it checks them with sample data, at each daemon start: about a second of CPU, for
    each of the hundreds of daemons the tests start. Jinja's documented bytecode cache
    reuses the compiled code only for the same template name, file and source (its
    checksum): an override folder's template, or one a test changed, is compiled anew,
    and a broken one fails as before. Each environment's options are part of the key."""

    def __init__(self) -> None:
        self.code: dict[tuple[str, str], Any] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        bucket.code = self.code.get((bucket.key, bucket.checksum))

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self.code[(bucket.key, bucket.checksum)] = bucket.code


@pytest.fixture(scope="session", autouse=True)
def compiled_templates() -> Iterator[None]:
    """Every renderer made in this process shares the templates it compiled (see above)."""
    caches: dict[tuple[Any, ...], CompiledTemplates] = {}
    original = rendering._Environment.__init__

    def init(self: jinja2.Environment, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        options = (
            self.autoescape,
            self.keep_trailing_newline,
            self.trim_blocks,
            self.lstrip_blocks,
            self.finalize,
            self.undefined,
        )
        self.bytecode_cache = caches.setdefault(options, CompiledTemplates())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rendering._Environment, "__init__", init)
        yield


# -- PostgreSQL --------------------------------------------------------------------------------


@dataclass
class Cluster:
    server: EmbeddedPostgres
    root: Path

    def dsn(self, database: str) -> str:
        return self.server.dsn(database)


def start_cluster() -> Cluster:
    # Short path under /tmp: the Unix socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="ntfy-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "pgdata", durable=False, log_file=root / "postgres.log")
    asyncio.run(server.start())
    return Cluster(server, root)


def stop_cluster(cluster: Cluster) -> None:
    asyncio.run(cluster.server.stop())
    shutil.rmtree(cluster.root, ignore_errors=True)


async def _create_template(cluster: Cluster) -> None:
    conn = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(cluster.dsn(TEMPLATE_DB))
    try:
        await schema.migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    cluster = start_cluster()
    try:
        asyncio.run(_create_template(cluster))
        yield cluster
    finally:
        stop_cluster(cluster)


async def create_database(cluster: Cluster, template: str | None = TEMPLATE_DB) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    conn = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        clause = f" TEMPLATE {template}" if template else ""
        await conn.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await conn.close()
    return name


async def drop_database(cluster: Cluster, name: str) -> None:
    conn = await asyncpg.connect(cluster.dsn("postgres"))
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


class FreshDatabases:
    """Databases cloned from the template ahead of the tests that take them, and dropped
    after them, by a thread of its own with its own connection.

    CREATE DATABASE copies the template (8 MB, mostly catalogues): 0.1 s on a quiet machine,
    up to a second on a loaded one, in the setup of every test that has a database. Made
    while the tests before it run, it is off the test's clock, and so is the DROP. Each test
    still gets a database that nobody used before, cloned from the same template."""

    AHEAD = 2  # databases kept ready

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.ready: queue.Queue[str | BaseException] = queue.Queue()
        self.work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.failed_drops: list[str] = []
        for _ in range(self.AHEAD):
            self.work.put(("create", self._name()))
        self.thread = threading.Thread(target=self._serve, name="fresh-databases", daemon=True)
        self.thread.start()

    @staticmethod
    def _name() -> str:
        return f"t_{uuid.uuid4().hex[:16]}"

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            conn = loop.run_until_complete(asyncpg.connect(self.cluster.dsn("postgres")))
        except BaseException as error:
            self.ready.put(error)
            loop.close()
            raise
        try:
            while (command := self.work.get()) is not None:
                what, name = command
                try:
                    if what == "create":
                        sql = f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"
                        loop.run_until_complete(conn.execute(sql))
                        self.ready.put(name)
                    else:
                        sql = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        loop.run_until_complete(conn.execute(sql))
                except Exception as error:
                    if what == "create":
                        self.ready.put(error)  # the test waiting for it fails with it
                    else:
                        self.failed_drops.append(f"{name}: {error!r}")
        finally:
            loop.run_until_complete(conn.close())
            loop.close()

    async def take(self) -> str:
        """A new database's name; another is made in its place."""
        self.work.put(("create", self._name()))
        try:
            made = await asyncio.to_thread(self.ready.get, timeout=60)
        except queue.Empty:
            raise AssertionError("no fresh database within 60 s") from None
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, name: str) -> None:
        self.work.put(("drop", name))

    def close(self) -> None:
        self.work.put(None)
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the fresh-databases thread did not stop"
        assert not self.failed_drops, f"databases not dropped: {self.failed_drops}"


@pytest.fixture(scope="session")
def fresh_databases(pg_cluster: Cluster) -> Iterator[FreshDatabases]:
    databases = FreshDatabases(pg_cluster)
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state folder for a daemon with the embedded PostgreSQL, outside pytest's temporary
    root: every pytest run on the machine resets that root to 0700, and the server's own user
    must pass through the folders above its data."""
    root = Path(tempfile.mkdtemp(prefix="ntfy-state-"))
    root.chmod(0o755)
    yield root / "state"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def database_url(pg_cluster: Cluster, fresh_databases: FreshDatabases) -> AsyncIterator[str]:
    """A fresh, migrated database for one test (made ahead, dropped after: FreshDatabases)."""
    name = await fresh_databases.take()
    yield pg_cluster.dsn(name)
    fresh_databases.give_back(name)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, for assertions on stored state."""
    conn = await asyncpg.connect(database_url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield conn
    await conn.close()


@pytest.fixture
async def daemon_pool(tmp_path: Path, database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool to the test's database made as the daemon makes its own."""
    from notifyd.storage import db as storage_db

    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    created = await storage_db.create_pool(database_url, settings.database)
    try:
        yield created
    finally:
        await created.close()


# -- SMTP --------------------------------------------------------------------------------------


class OffersPipelining:
    """An aiosmtpd handler's EHLO hook: PIPELINING (RFC 2920) in the reply when `pipelining`
    is set, as Postfix offers it (aiosmtpd itself does not)."""

    pipelining: bool

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            return [responses[0], "250-PIPELINING", *responses[1:]]
        return responses


@dataclass
class SmtpSink(OffersPipelining):
    """A real SMTP server; replies can be scripted per RCPT or DATA command."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    rcpt_replies: deque[str] = field(default_factory=deque)
    data_replies: deque[str] = field(default_factory=deque)
    data_delay: float = 0.0
    # Offer PIPELINING (RFC 2920) in the EHLO reply, as Postfix does.
    pipelining: bool = False
    # MAIL commands whose RCPT and DATA had already arrived with them: pipelined.
    pipelined_mails: int = 0
    # Messages whose successor's MAIL had arrived before their own 250: the next transaction
    # written behind the final dot (RFC 2920 §3.1).
    overlapped: int = 0
    rcpt_commands: int = 0
    data_commands: int = 0
    connections: int = 0
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if b"RCPT TO:" in bytes(server._reader._buffer):  # type: ignore[attr-defined]
            self.pipelined_mails += 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.rcpt_commands += 1
        if self.rcpt_replies:
            reply = self.rcpt_replies.popleft()
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.data_commands += 1
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if b"MAIL FROM:" in bytes(server._reader._buffer):  # type: ignore[attr-defined]
            self.overlapped += 1
        if self.data_replies:
            reply = self.data_replies.popleft()
            if not reply.startswith("250"):
                return reply
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        async with self.arrived:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
            self.arrived.notify_all()
        return "250 2.0.0 Ok: queued"

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[EmailMessage]:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)


@asynccontextmanager
async def smtp_server(
    sink: Sink, port: int = 0, ssl: SSLContext | None = None, **options: Any
) -> AsyncIterator[Sink]:
    """Serve `sink` over SMTP on loopback; `options` go to aiosmtpd's SMTP (TLS, AUTH...)."""

    def connection() -> SMTP:
        sink.connections += 1
        return SMTP(sink, hostname="sink.test", data_size_limit=50 * 1024 * 1024, **options)

    server = await asyncio.get_running_loop().create_server(connection, "127.0.0.1", port, ssl=ssl)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def smtp_sink() -> AsyncIterator[SmtpSink]:
    async with smtp_server(SmtpSink()) as sink:
        yield sink


# -- config, signing, daemon -------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = WAIT
) -> T:
    """Poll `check` until it returns something true; fail with `what` after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}: {await check()}") from None


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def base_config(
    tmp_path: Path, database_url: str, smtp_port: int | None, **overrides: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    config: dict[str, dict[str, Any]] = {
        "daemon": {"state_dir": str(tmp_path / "state"), "shutdown_grace_seconds": 10},
        "http": {"host": "127.0.0.1", "port": 0},
        # The admin listener's default port is fixed (8081): tests run side by side.
        "http.admin": {"host": "127.0.0.1", "port": 0},
        "database": {"url": database_url, "pool_min": 1, "pool_max": 5},
        "smtp": {
            "host": "127.0.0.1" if smtp_port else "",
            "port": smtp_port or 25,
            "security": "none",
            "sender": "Operator VoIP <notificari@voip.example>",
            "timeout_seconds": 5,
        },
        "sources.pbx": {"secrets": [PBX_SECRET]},
        "sources.billing": {"secrets": [BILLING_SECRET]},
        "defaults": {"language": "ro", "timezone": "Europe/Bucharest", "quiet_hours": ""},
        # Each missed call its own email, unless a test is about bursts.
        "calls": {"burst_window_seconds": 0},
        "delivery": {
            "poll_seconds": 0.5,
            "lease_seconds": 30,
            "retry_initial_seconds": 0.2,
            "retry_max_seconds": 1,
        },
        "logging": {"level": "info", "format": "json"},
    }
    for section, values in overrides.items():
        config.setdefault(section.replace("__", "."), {}).update(values)
    return config


def load_config(tmp_path: Path, config: dict[str, dict[str, Any]]) -> Settings:
    return settings_module.load(write_config(tmp_path / "notifyd.toml", config), environ={})


def app_without_services(
    tmp_path: Path, *, public: bool = True, admin: bool = True
) -> web.Application:
    """The app as the daemon builds it, with no database or intake behind it: its router and
    its OpenAPI document, without serving. Both audiences' routes unless told: the public
    listener's app has admin=False, the admin one's public=False."""
    from notifyd.http.app import create_app
    from notifyd.http.runtime import Runtime
    from notifyd.metrics import Metrics

    settings = load_config(tmp_path, base_config(tmp_path, "postgresql://unused/db", None))
    runtime = Runtime(settings=settings, pool=None, dsn="", metrics=Metrics(), intake=None)  # type: ignore[arg-type]
    return create_app(runtime, public=public, admin=admin)


def signed_request(
    event: dict[str, Any] | bytes,
    secret: str,
    *,
    webhook_id: str | None = None,
    timestamp: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers signed by the reference Standard Webhooks library."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    moment = timestamp or datetime.now(UTC)
    signature = Webhook(secret).sign(webhook_id, moment, body.decode())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers


@dataclass
class Running:
    daemon: Daemon
    base_url: str  # the public listener: webhooks, pages
    session: aiohttp.ClientSession
    admin_url: str = ""  # the admin listener: /v1/admin, /metrics (the public one if shared)

    async def post(
        self,
        source: str,
        event: dict[str, Any] | bytes,
        secret: str,
        *,
        webhook_id: str | None = None,
        timestamp: datetime | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        body, signed = signed_request(event, secret, webhook_id=webhook_id, timestamp=timestamp)
        signed.update(headers or {})
        async with self.session.post(
            f"{self.base_url}/v1/webhooks/{source}", data=body, headers=signed
        ) as response:
            return response.status, await response.json()


@asynccontextmanager
async def running_daemon(settings: Settings) -> AsyncIterator[Running]:
    async with (
        Daemon(settings) as daemon,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
    ):
        yield Running(
            daemon,
            f"http://127.0.0.1:{daemon.port}",
            session,
            f"http://127.0.0.1:{daemon.admin_port}",
        )


# -- daemon as a process -----------------------------------------------------------------------


@dataclass
class DaemonProcess:
    process: asyncio.subprocess.Process
    port: int
    lines: list[dict[str, Any]]
    _reader: asyncio.Task[None]
    admin_port: int = 0

    @property
    def base_url(self) -> str:
        """The public listener: webhooks, pages."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The admin listener: /v1/admin, /metrics (the public one with shared = true)."""
        return f"http://127.0.0.1:{self.admin_port or self.port}"

    async def wait_exit(self, timeout: float = WAIT) -> int:
        async with asyncio.timeout(timeout):
            code = await self.process.wait()
        await self._reader
        return code

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("event") == name]

    async def wait_log(self, name: str, timeout: float = WAIT) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not self.events(name):
                if self.process.returncode is not None:
                    raise AssertionError(f"daemon exited before logging {name!r}: {self.lines}")
                await asyncio.sleep(0.05)
        return self.events(name)[-1]


async def spawn_daemon(
    config_path: Path, timeout: float = 60.0, source: Path | None = None
) -> DaemonProcess:
    """Start `python -m notifyd run` and wait for its "ready" log line (which has the port).
    `source`: a folder holding another version's `notifyd/` package, run instead of this
    checkout's with this virtual environment's libraries (the upgrade test)."""
    older = {"PYTHONPATH": str(source)} if source else {}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "notifyd",
        "run",
        "--config",
        str(config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **older},
        cwd=source,
    )
    lines: list[dict[str, Any]] = []
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            text = raw.decode(errors="replace").strip()
            try:
                line = json.loads(text)
            except ValueError:
                line = {"event": "raw", "text": text}
            lines.append(line)
            if line.get("event") == "ready" and not ready.done():
                ready.set_result(line)
        if not ready.done():
            ready.set_exception(AssertionError(f"daemon exited before ready: {lines}"))

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(timeout):
            line = await ready
    except BaseException:
        process.kill()
        await process.wait()
        raise
    port = int(line["listen"].rsplit(":", 1)[1])
    admin = str(line.get("admin_listen", ""))
    admin_port = int(admin.rsplit(":", 1)[1]) if admin.startswith("http") else port
    return DaemonProcess(process, port, lines, reader, admin_port)
