"""[http] trusted_proxies against a running daemon (issue 21): a forged X-Forwarded-For from
a peer that is no listed proxy gets past no allow_from and dodges no rate limit; from a
listed proxy it is the client's address, and so is Forwarded when proxy_header says so.
Every request here comes from 127.0.0.1: listing 127.0.0.0/8 makes the test a proxy.
notifyd/http/proxies.py; docs/operations.md "Listeners, TLS and proxies"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    PBX_SECRET,
    Running,
    SmtpSink,
    load_config,
    running_daemon,
    write_config,
)
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import welcome
from tests.integration.links_support import (
    NEW_KEY,
    ask_fresh_link,
    days_ago,
    get,
    preference_link,
)

PBX_NETWORK = "192.0.2.0/24"  # the PBX's, in [sources.pbx] allow_from
PBX = "192.0.2.7"
ELSEWHERE = "198.51.100.9"


def _config(
    tmp_path: Path, database_url: str, smtp_port: int | None, **http: Any
) -> dict[str, Any]:
    config = admin_config(tmp_path, database_url, smtp_port)
    config["http"].update(http)
    config["sources.pbx"]["allow_from"] = [PBX_NETWORK]
    config["daemon"]["link_secret"] = [NEW_KEY]
    config["links"] = {"renewals_per_client_per_hour": 1}
    return config


async def _webhook(daemon: Running, **headers: str) -> int:
    event = sample_event("call.missed", "acc-1")
    status, _ = await daemon.post("pbx", event, PBX_SECRET, headers=headers)
    return status


async def _fresh_links(daemon: Running, *clients: dict[str, str]) -> list[int]:
    """Ask for a fresh link from an expired one's page once per client header set."""
    _, page = await get(daemon, preference_link(daemon, "acc-1", days_ago(60)))
    return [(await ask_fresh_link(daemon, page, headers))[0] for headers in clients]


async def test_a_forged_x_forwarded_for_from_a_non_proxy_is_ignored(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = _config(tmp_path, database_url, smtp_sink.port, trusted_proxies=["10.0.0.0/8"])
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await welcome(daemon, smtp_sink)
        forged = await _webhook(daemon, **{"X-Forwarded-For": PBX})
        forwarded = await _webhook(daemon, Forwarded=f"for={PBX}")
        # One ask an hour per client: a new address in the header is the same client.
        asks = await _fresh_links(
            daemon, {"X-Forwarded-For": ELSEWHERE}, {"X-Forwarded-For": "203.0.113.1"}
        )
    assert forged == 403
    assert forwarded == 403
    assert asks == [200, 429]
    assert await db.fetchval("SELECT count(*) FROM events WHERE source = 'pbx'") == 0


async def test_behind_a_listed_proxy_its_x_forwarded_for_names_the_client(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink, db: asyncpg.Connection
) -> None:
    config = _config(tmp_path, database_url, smtp_sink.port, trusted_proxies=["127.0.0.0/8"])
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        await welcome(daemon, smtp_sink)
        through_proxy = await _webhook(daemon, **{"X-Forwarded-For": PBX})
        # The client wrote the PBX's address; the proxy appended the real one.
        forged_behind_proxy = await _webhook(daemon, **{"X-Forwarded-For": f"{PBX}, {ELSEWHERE}"})
        proxy_itself = await _webhook(daemon)
        other_header = await _webhook(daemon, Forwarded=f"for={PBX}")
        # Each client behind the proxy has its own window; the proxy is not one client.
        asks = await _fresh_links(
            daemon,
            {"X-Forwarded-For": ELSEWHERE},
            {"X-Forwarded-For": ELSEWHERE},
            {"X-Forwarded-For": "203.0.113.1"},
        )
    assert through_proxy == 202
    assert forged_behind_proxy == 403
    assert proxy_itself == 403
    assert other_header == 403  # proxy_header is x-forwarded-for: Forwarded is a client's
    assert asks == [200, 429, 200]
    assert await db.fetchval("SELECT count(*) FROM events WHERE source = 'pbx'") == 1


async def test_forwarded_when_the_proxies_write_it_and_a_reload_changes_who_is_trusted(
    tmp_path: Path, database_url: str
) -> None:
    config = _config(
        tmp_path, database_url, None, trusted_proxies=["127.0.0.0/8"], proxy_header="forwarded"
    )
    settings = load_config(tmp_path, config)
    async with running_daemon(settings) as daemon:
        forwarded = await _webhook(daemon, Forwarded=f'for="{PBX}:5060";proto=https')
        x_forwarded_for = await _webhook(daemon, **{"X-Forwarded-For": PBX})
        config["http"]["trusted_proxies"] = []
        write_config(settings.path, config)
        assert await daemon.daemon.reload()
        after_reload = await _webhook(daemon, Forwarded=f"for={PBX}")
    assert forwarded == 202
    assert x_forwarded_for == 403
    assert after_reload == 403
