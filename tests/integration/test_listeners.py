"""The two listeners (issue 21): the public one serves webhooks, pages and health and answers
404 to the admin API and /metrics, as to any unknown path; the admin one serves those and
nothing of the public; each speaks TLS when given a certificate; `shared = true` keeps the
old single listener. Settings in notifyd/settings/listeners.py, serving in
notifyd/http/listeners.py and app.py; docs/operations.md "Listeners, TLS and proxies"."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import trustme

from notifyd.catalogue.samples import sample_event
from notifyd.daemon import Daemon
from notifyd.settings import ConfigError
from tests.conftest import (
    BILLING_SECRET,
    SmtpSink,
    load_config,
    running_daemon,
    signed_request,
    write_config,
)
from tests.integration.admin_support import OPS_TOKEN, admin_config
from tests.integration.daemon_support import preferences_link, welcome
from tests.integration.listeners_support import tls_files

AUTH = {"Authorization": f"Bearer {OPS_TOKEN}"}


async def _get(session: aiohttp.ClientSession, url: str, **options: Any) -> tuple[int, Any]:
    async with session.get(url, headers=AUTH, **options) as response:
        text = await response.text()
        is_json = response.content_type == "application/json"
        return response.status, (await response.json()) if is_json else text


async def test_the_public_listener_refuses_admin_calls_as_unknown_paths(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        assert daemon.daemon.port != daemon.daemon.admin_port
        public, admin, session = daemon.base_url, daemon.admin_url, daemon.session
        unknown = await _get(session, f"{public}/v1/no-such-thing")
        on_public = {
            path: await _get(session, f"{public}{path}")
            for path in ("/v1/admin/audit", "/v1/admin/subscribers/acc-1", "/metrics")
        }
        schema = await _get(session, f"{public}/export.schema.json")
        public_document = (await _get(session, f"{public}/openapi.json"))[1]
        on_admin = {
            path: (await _get(session, f"{admin}{path}"))[0]
            for path in ("/v1/admin/audit", "/metrics", "/healthz", "/readyz", "/openapi.json")
        }
        admin_document = (await _get(session, f"{admin}/openapi.json"))[1]
        async with session.post(f"{admin}/v1/webhooks/billing", json={}) as response:
            webhook_on_admin = response.status
        public_health = (await _get(session, f"{public}/healthz"))[0]
        created = sample_event("account.created", "a")
        accepted = await daemon.post("billing", created, BILLING_SECRET)
    # 404, not 401: the public listener does not even say the admin API exists.
    assert unknown[0] == 404
    for path, answer in on_public.items():
        assert answer == unknown, path
    assert schema == unknown
    assert not [path for path in public_document["paths"] if path.startswith("/v1/admin")]
    assert "/metrics" not in public_document["paths"]
    assert "/v1/webhooks/{source}" in public_document["paths"]
    assert set(on_admin.values()) == {200}
    assert "/v1/webhooks/{source}" not in admin_document["paths"]
    assert "/v1/admin/audit" in admin_document["paths"]
    assert webhook_on_admin == 404
    assert public_health == 200
    assert accepted[0] == 202


async def test_shared_keeps_everything_on_the_one_listener(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    config["http.admin"] = {"shared": True, "port": 8080}  # unused when shared
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        assert daemon.daemon.admin_port == daemon.daemon.port
        audit = await _get(daemon.session, f"{daemon.base_url}/v1/admin/audit")
        metrics = await _get(daemon.session, f"{daemon.base_url}/metrics")
    assert audit[0] == 200
    assert metrics[0] == 200


async def test_each_listener_speaks_tls_with_its_certificate_and_links_say_https(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    ca = trustme.CA()
    config = admin_config(tmp_path, database_url, smtp_sink.port)
    config["http"].update(tls_files(tmp_path, ca, "public"))
    config["http.admin"] = {"port": 0, **tls_files(tmp_path, ca, "admin")}
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with running_daemon(load_config(tmp_path, config)) as running:
        ports = running.daemon.port, running.daemon.admin_port
        public, admin = (f"https://127.0.0.1:{port}" for port in ports)
        session = running.session
        health = await _get(session, f"{public}/healthz", ssl=trusted)
        audit = await _get(session, f"{admin}/v1/admin/audit", ssl=trusted)
        body, headers = signed_request(sample_event("account.created", "acc-1"), BILLING_SECRET)
        async with session.post(
            f"{public}/v1/webhooks/billing", data=body, headers=headers, ssl=trusted
        ) as response:
            assert response.status == 202
        link = preferences_link((await smtp_sink.wait_for(1))[-1])
        page = await _get(session, link, ssl=trusted)
        # A client that does not trust the CA is refused; plain HTTP gets no answer.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get(session, f"{admin}/metrics")
        with pytest.raises(aiohttp.ClientError):
            await _get(session, f"http://127.0.0.1:{ports[1]}/metrics")
    assert health[0] == 200
    assert audit[0] == 200
    assert link.startswith(f"{public}/v1/preferences/")
    assert page[0] == 200


def test_a_certificate_without_its_key_or_another_key_is_a_config_error(tmp_path: Path) -> None:
    ca = trustme.CA()
    files = tls_files(tmp_path, ca, "one")
    other = tls_files(tmp_path, ca, "two")
    with pytest.raises(ConfigError) as missing:
        load_config(tmp_path, {"http": {"cert_file": files["cert_file"]}})
    with pytest.raises(ConfigError) as mismatched:
        load_config(
            tmp_path,
            {"http.admin": {"cert_file": files["cert_file"], "key_file": other["key_file"]}},
        )
    assert "[http] key_file: cert_file and key_file are set together" in str(missing.value)
    assert "[http.admin] key_file" in str(mismatched.value)
    assert "do not load together" in str(mismatched.value)


def test_the_two_listeners_on_one_address_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as both:
        load_config(tmp_path, {"http": {"port": 9000}, "http.admin": {"port": 9000}})
    assert "[http.admin] shared = true" in str(both.value)


async def test_the_admin_port_taken_is_said_before_anything_starts(
    tmp_path: Path, database_url: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = admin_config(tmp_path, database_url, None)
        config["http.admin"] = {"port": taken.getsockname()[1]}
        with pytest.raises(OSError, match=r"set \[http.admin\] port"):
            async with Daemon(load_config(tmp_path, config)):
                pass


async def test_a_page_link_from_welcome_opens_on_the_public_listener(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    """Links in emails name the public listener, never the admin one."""
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        on_admin = link.replace(daemon.base_url, daemon.admin_url)
        status = (await _get(daemon.session, link))[0]
        refused = (await _get(daemon.session, on_admin))[0]
    assert link.startswith(daemon.base_url)
    assert status == 200
    assert refused == 404


async def test_a_reload_reads_a_renewed_certificate_and_a_moved_port_waits_for_restart(
    tmp_path: Path, database_url: str
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    config = admin_config(tmp_path, database_url, None)
    config["http.admin"] = {"port": 0, **tls_files(tmp_path, old_ca, "old")}
    settings = load_config(tmp_path, config)
    trusts_new = ssl.create_default_context()
    new_ca.configure_trust(trusts_new)
    async with running_daemon(settings) as daemon:
        admin = f"https://127.0.0.1:{daemon.daemon.admin_port}/healthz"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get(daemon.session, admin, ssl=trusts_new)
        config["http.admin"].update(tls_files(tmp_path, new_ca, "renewed"))
        write_config(settings.path, config)
        with structlog.testing.capture_logs() as renewed_logs:
            assert await daemon.daemon.reload()
        renewed = await _get(daemon.session, admin, ssl=trusts_new)
        config["http.admin"]["port"] = 1
        write_config(settings.path, config)
        with structlog.testing.capture_logs() as moved_logs:
            assert await daemon.daemon.reload()
        still = await _get(daemon.session, admin, ssl=trusts_new)
    restart = "config section changed; takes effect after a restart"
    assert renewed[0] == 200
    assert not [line for line in renewed_logs if line["event"] == restart]
    assert [line["section"] for line in moved_logs if line["event"] == restart] == ["http"]
    assert still[0] == 200
