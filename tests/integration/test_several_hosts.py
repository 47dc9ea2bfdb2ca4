"""Several hosts (issue 21, docs/operations.md "Several hosts"): three daemons on one
database behind a round-robin reverse proxy, with one shared config (public_url the
proxy's, link keys configured). A burst of webhooks reaches every host; one host is killed
(SIGKILL, as tests/integration/test_crash.py kills) while it holds claims; every notice is
sent exactly once, the dead host's by the others once its lease ends. A digest due at one
moment and the retention run are made once when three hosts look at the same moment."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import tomllib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest

from notifyd import settings as settings_module
from notifyd.catalogue.samples import sample_event
from notifyd.jobs import flush_digests, purge_expired
from notifyd.storage import retention as retention_store
from tests.conftest import (
    PBX_SECRET,
    WAIT,
    DaemonProcess,
    Running,
    SmtpSink,
    eventually,
    running_daemon,
    signed_request,
    smtp_server,
    spawn_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config
from tests.integration.catalogue_support import sending_settings
from tests.integration.daemon_support import preferences_link, subscribe
from tests.integration.hosts_support import GatedSink, RoundRobin, round_robin_proxy
from tests.integration.queue_support import settled_notices
from tests.integration.send_support import BIN, OPERATIONS, run, snippet

ACCOUNTS = 60  # one missed call each, half before the kill and half after
DIGESTS = ("acc-d1", "acc-d2", "acc-d3")  # hourly digests of missed calls
T = TypeVar("T")


def shared_config(tmp_path: Path, database_url: str, smtp_port: int, proxy: str) -> list[Path]:
    """docs/operations.md's config for several hosts (its shared link and erasure keys, its
    pool) on the test's database, relay and proxy, copied to each host's folder (its state
    folder beside it, each host its own); short leases (a dead host's claims come back in
    2 s) and small claims (each host takes some)."""
    recipe = tomllib.loads(snippet("several-hosts-config", OPERATIONS))
    config: dict[str, Any] = admin_config(tmp_path, database_url, smtp_port)
    config["daemon"].update(state_dir="state", link_secret=recipe["daemon"]["link_secret"])
    config["http"]["public_url"] = proxy  # the doc's is the proxy's public name
    config["privacy"] = recipe["privacy"]
    config["database"]["pool_max"] = recipe["database"]["pool_max"]
    config["smtp"]["timeout_seconds"] = 30  # the relay is held at MAIL for a while
    config["delivery"].update(
        lease_seconds=2, poll_seconds=0.2, concurrency=4, batch_size=2, retry_initial_seconds=0.2
    )
    paths = []
    for host in ("a", "b", "c", "d"):
        (tmp_path / host).mkdir()
        paths.append(write_config(tmp_path / host / "notifyd.toml", config))
    return paths


async def post_until_taken(proxy: Running, event: dict[str, Any]) -> int:
    """Post as a PBX does: a 502 (the host died with the request) or 503 is retried under
    the same webhook-id, which the daemons deduplicate."""
    body, headers = signed_request(event, PBX_SECRET)  # one webhook-id for every try
    async with asyncio.timeout(WAIT):
        while True:
            async with proxy.session.post(
                f"{proxy.base_url}/v1/webhooks/pbx", data=body, headers=headers
            ) as answer:
                if answer.status in (200, 202):
                    return answer.status
                assert answer.status in (502, 503), await answer.text()
            await asyncio.sleep(0.1)


async def burst(proxy: Running, accounts: list[str]) -> None:
    calls = [
        sample_event("call.missed", account, call_id=f"call-{account}") for account in accounts
    ]
    await asyncio.gather(*(post_until_taken(proxy, call) for call in calls))


async def claims_of(db: asyncpg.Connection, owner: str) -> set[uuid.UUID]:
    rows = await db.fetch(
        "SELECT id FROM notices WHERE state = 'sending' AND claimed_by = $1", owner
    )
    return {row["id"] for row in rows}


async def kill(host: DaemonProcess) -> None:
    os.kill(host.process.pid, signal.SIGKILL)
    assert await host.wait_exit() == -signal.SIGKILL


async def test_three_hosts_behind_a_proxy_send_once_and_survive_a_killed_host(
    tmp_path: Path, database_url: str, db: asyncpg.Connection
) -> None:
    await db.execute(
        """INSERT INTO subscribers (account_id, email)
           SELECT 'acc-' || lpad(g::text, 3, '0'), 'user' || g || '@client.example'
           FROM generate_series(1, $1) AS g""",
        ACCOUNTS,
    )
    sink = GatedSink()
    sink.gate.set()
    async with smtp_server(sink), round_robin_proxy() as (proxy_url, proxy):
        paths = shared_config(tmp_path, database_url, sink.port, proxy_url)
        settings = [settings_module.load(path, environ={}) for path in paths]
        async with running_daemon(settings[0]) as host_a, running_daemon(settings[1]) as host_b:
            doomed = await spawn_daemon(paths[2])
            try:
                proxy.upstreams[:] = [host_a.base_url, host_b.base_url, doomed.base_url]
                front = Running(host_a.daemon, proxy_url, host_a.session, host_a.admin_url)
                for account in DIGESTS:
                    await subscribe(front, account, {"modes": {"calls": "hourly"}}, language="en")
                welcomes = await sink.wait_for(len(DIGESTS))
                await links_open_on_every_host(front, proxy, welcomes[0])
                claimed = await burst_with_a_kill(front, db, sink, doomed)
            finally:
                sink.gate.set()
                if doomed.process.returncode is None:
                    doomed.process.kill()
                    await doomed.process.wait()
            # Every host took webhooks, the killed one too before it died.
            assert len(proxy.served) == 3, proxy.served
            assert min(proxy.served.values()) > 0, proxy.served
            await every_notice_sent_once(db, sink, claimed)
            # The dead host replaced: three hosts look at the same moment.
            async with running_daemon(settings[3]) as host_c:
                await digests_once(db, sink, [host_a, host_b, host_c])
                await retention_once([host_a, host_b, host_c])


async def links_open_on_every_host(front: Running, proxy: RoundRobin, mail: EmailMessage) -> None:
    """A link one host sealed opens on each (shared keys), at the proxy's address."""
    link = preferences_link(mail)
    assert link.startswith(front.base_url + "/"), link
    before = dict(proxy.served)
    for _ in range(3):
        async with front.session.get(link) as page:
            assert page.status == 200, await page.text()
    assert all(proxy.served[host] == before.get(host, 0) + 1 for host in proxy.upstreams)


async def burst_with_a_kill(
    front: Running, db: asyncpg.Connection, sink: GatedSink, doomed: DaemonProcess
) -> set[uuid.UUID]:
    """Half the burst while the relay holds every host at MAIL; the doomed host killed once
    it holds claims; the other half. The notices it had claimed."""
    accounts = [f"acc-{n:03d}" for n in range(1, ACCOUNTS + 1)] + list(DIGESTS)
    half = len(accounts) // 2
    owner = f"{socket.gethostname()}:{doomed.process.pid}"  # [daemon] instance's default
    sink.gate.clear()
    await burst(front, accounts[:half])
    await eventually(lambda: claims_of(db, owner), "the doomed host's claims")
    await kill(doomed)
    claimed = await claims_of(db, owner)
    assert claimed
    await burst(front, accounts[half:])
    sink.gate.set()
    return claimed


async def every_notice_sent_once(
    db: asyncpg.Connection, sink: GatedSink, claimed: set[uuid.UUID]
) -> None:
    rows = await settled_notices(db, timeout=30)
    # The digest subscribers' calls wait for their digest; everything else went.
    assert Counter(row["state"] for row in rows) == {
        "sent": ACCOUNTS + len(DIGESTS),
        "held": len(DIGESTS),
    }
    sent = await db.fetch("SELECT id, message_id FROM notices WHERE state = 'sent'")
    assert len(sent) == ACCOUNTS + len(DIGESTS)  # a missed call each, and the welcomes
    # The dead host's claims went out, by the others, after its lease.
    assert claimed <= {row["id"] for row in sent}
    await sink.wait_for(len(sent))
    counts = sink.by_message_id()
    assert set(counts) == {row["message_id"] for row in sent}
    assert set(counts.values()) == {1}, counts.most_common(3)
    # One event a webhook, whichever host took it and however often it was retried.
    assert await db.fetchval("SELECT count(*) FROM events") == ACCOUNTS + 2 * len(DIGESTS)


async def digests_once(db: asyncpg.Connection, sink: GatedSink, hosts: list[Running]) -> None:
    """The held calls' digest, due at one moment, asked of three hosts at that moment."""
    before = len(sink.messages)
    later = datetime.now(UTC) + timedelta(hours=2)

    async def flush(host: Running) -> tuple[int, int] | None:
        database, dispatcher = host.daemon.database, host.daemon.dispatcher
        assert database is not None
        assert dispatcher is not None
        domain = host.daemon.settings.message_domain
        return await flush_digests(database.pool, later, domain, dispatcher.wake)

    made = await at_the_same_moment([partial(flush, host) for host in hosts])
    # One host queued them all (or, past a whole hour, a host's own job did: still once).
    assert [n for n, _ in made if n] in ([len(DIGESTS)], [])
    await sink.wait_for(before + len(DIGESTS))
    await settled_notices(db)
    digests = await db.fetch("SELECT account_id, state FROM notices WHERE kind = 'digest'")
    assert sorted((row["account_id"], row["state"]) for row in digests) == [
        (account, "sent") for account in DIGESTS
    ]
    await asyncio.sleep(0.5)  # a second digest would be sent by now
    assert len(sink.messages) == before + len(DIGESTS)
    assert set(sink.by_message_id().values()) == {1}


async def retention_once(hosts: list[Running]) -> None:
    """The daily retention run, due at one moment, asked of three hosts at that moment."""
    later = datetime.now(UTC) + timedelta(days=2)

    async def purge(host: Running) -> retention_store.Outcome | None:
        database = host.daemon.database
        assert database is not None
        return await purge_expired(database.pool, host.daemon.settings, later)

    runs = await at_the_same_moment([partial(purge, host) for host in hosts])
    assert len(runs) == 1, runs


async def at_the_same_moment(jobs: list[Callable[[], Awaitable[T | None]]]) -> list[T]:
    """The jobs started together; what those that ran returned (the others found the
    advisory lock held: None). Asked again while every host found it held: a host's own
    scheduled run of the job (real clock, every 20 s or hourly) may hold it then."""
    async with asyncio.timeout(WAIT):
        while True:
            results = await asyncio.gather(*(job() for job in jobs))
            ran = [result for result in results if result is not None]
            if ran:
                return ran
            await asyncio.sleep(0.05)


async def test_the_docs_config_for_several_hosts_passes_check_config(tmp_path: Path) -> None:
    text = snippet("several-hosts-config", OPERATIONS).replace(
        "/var/lib/notifyd", str(tmp_path / "state")
    )
    path = tmp_path / "notifyd.toml"
    path.write_text(text, encoding="utf-8")
    ran = await run([f"{BIN}/notifyd", "check-config", "--config", str(path)])
    assert ran.code == 0, ran.out + ran.err


async def test_the_docs_nginx_upstream_serves_notifyd_over_tls(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    certificate, key = tmp_path / "notices.pem", tmp_path / "notices.key"
    made = await run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=notices.voip.example", "-keyout", str(key), "-out", str(certificate)),
        ]
    )
    assert made.code == 0, made.err
    port = free_port()
    async with running_daemon(sending_settings(tmp_path, database_url, smtp_sink)) as daemon:
        host = daemon.base_url.removeprefix("http://")
        block = re.sub(
            r"server 10\.0\.0\.1\d:8080", f"server {host}", snippet("nginx-upstream", OPERATIONS)
        )
        block = block.replace("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
        block = block.replace("/etc/nginx/tls/notices.pem", str(certificate))
        block = block.replace("/etc/nginx/tls/notices.key", str(key))
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{\naccess_log off;\nclient_body_temp_path {tmp_path}/body;\n"
            f"proxy_temp_path {tmp_path}/proxy;\n{block}}}\n",
            encoding="utf-8",
        )
        checked = await run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf)])
        assert checked.code == 0, checked.err
        server = await asyncio.create_subprocess_exec(
            nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"
        )
        try:

            async def healthy() -> bool:
                try:
                    async with daemon.session.get(
                        f"https://127.0.0.1:{port}/healthz", ssl=False
                    ) as answer:
                        return answer.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await eventually(healthy, "notifyd's /healthz through the doc's nginx")
        finally:
            server.terminate()
            await server.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
