"""docs/operations.md, "Listeners, TLS and proxies", run as an operator would: its TLS config
started, its check commands run with curl, its proxy config behind its nginx block (a real
nginx, where Debian's package is installed; skipped with the reason otherwise). Each
snippet is read from the doc, with the test's addresses, ports and files in place of its."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trustme

from notifyd.catalogue.samples import sample_event
from tests.conftest import BILLING_SECRET, PBX_SECRET, WAIT, load_config, running_daemon
from tests.integration.admin_support import admin_config
from tests.integration.listeners_support import tls_files
from tests.integration.send_support import OPERATIONS, run, snippet


def _with_http(config: dict[str, Any], text: str, places: dict[str, str]) -> dict[str, Any]:
    """`config` with the doc's [http] (and [http.admin]) snippet, its values replaced."""
    for doc, here in places.items():
        text = text.replace(doc, here)
    http = tomllib.loads(text)["http"]
    config["http.admin"] = {"port": 0, **http.pop("admin", {})}
    config["http"].update(http)
    return config


async def test_the_tls_snippet_serves_https_and_the_check_commands_answer(
    tmp_path: Path, database_url: str
) -> None:
    ca = trustme.CA()
    files = tls_files(tmp_path, ca, "notices")
    config = _with_http(
        admin_config(tmp_path, database_url, None),
        snippet("listeners-tls", OPERATIONS),
        {
            '"0.0.0.0"': '"127.0.0.1"',
            "port = 443": "port = 0",
            "port = 8081": "port = 0",
            "/etc/notifyd/tls/notices.crt": files["cert_file"],
            "/etc/notifyd/tls/notices.key": files["key_file"],
        },
    )
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        script = (
            snippet("listeners-check", OPERATIONS)
            .replace("http://127.0.0.1:8081", daemon.admin_url)
            .replace("https://notices.voip.example", f"https://localhost:{daemon.daemon.port}")
        )
        ran = await run(["bash", "-euc", script], env={"CURL_CA_BUNDLE": str(bundle)})
    assert ran.code == 0, ran.err
    ready, status = ran.out.splitlines()
    assert '"status": "ready"' in ready
    assert status == "404"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def _nginx(tmp_path: Path, location: str) -> AsyncIterator[str]:
    """nginx in the foreground with the doc's location block, connecting to notifyd from
    127.0.0.3 (the proxy's address the daemon lists); its URL."""
    # Debian installs it in /usr/sbin, outside an unprivileged user's PATH.
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    port = _free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"daemon off; master_process off; pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/nginx-error.log;\nevents {{}}\nhttp {{\n"
        f"  access_log off; client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n    proxy_bind 127.0.0.3;\n"
        f"{location}\n  }}\n}}\n"
    )
    process = await asyncio.create_subprocess_exec(
        nginx, "-p", str(tmp_path), "-c", str(conf), "-e", f"{tmp_path}/nginx-error.log"
    )
    try:
        async with asyncio.timeout(WAIT):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    assert process.returncode is None, (tmp_path / "nginx-error.log").read_text()
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), WAIT)


async def test_behind_the_docs_nginx_the_client_is_the_one_nginx_saw(
    tmp_path: Path, database_url: str
) -> None:
    config = admin_config(tmp_path, database_url, None)
    config["sources.pbx"]["allow_from"] = ["192.0.2.0/24"]
    config["sources.billing"]["allow_from"] = ["127.0.0.1/32"]  # the client, not the proxy
    config = _with_http(
        config,
        snippet("proxy-config", OPERATIONS),
        {
            '"10.0.5.11"': '"127.0.0.1"',
            "port = 8080": "port = 0",
            '"10.0.5.2"': '"127.0.0.3"',
            '"10.0.5.3"': '"127.0.0.4"',
        },
    )
    async with running_daemon(load_config(tmp_path, config)) as daemon:
        location = snippet("nginx-proxy", OPERATIONS).replace(
            "http://10.0.5.11:8080", daemon.base_url
        )
        async with _nginx(tmp_path, location) as proxy:
            through = dataclasses.replace(daemon, base_url=proxy)
            billing = await through.post(
                "billing", sample_event("account.created", "a"), BILLING_SECRET
            )
            forged = await through.post(
                "pbx",
                sample_event("call.missed", "a"),
                PBX_SECRET,
                headers={"X-Forwarded-For": "192.0.2.7"},
            )
    assert billing[0] == 202
    assert forged[0] == 403
