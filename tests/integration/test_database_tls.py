"""TLS to an external PostgreSQL (docs/operations.md "TLS to the database"): a server
(Debian 12's postgresql-15; pgserver's 16 has no SSL) with `ssl = on` and a certificate
from a throwaway CA, reached by the URLs of the doc's pg-tls-url snippet
(`sslmode=verify-full&sslrootcert=…`, and with `sslcert`/`sslkey` for a client
certificate). The daemon's own connections are TLS (pg_stat_ssl); with a wrong CA or
a host the certificate does not name, `notifyd run` and `notifyd migrate` refuse at once,
in one line naming the TLS failure, without the URL's password."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
import trustme

from notifyd import settings as settings_module
from notifyd.migrate_cli import MIGRATE_PATIENCE_SECONDS
from tests.conftest import Cluster, running_daemon, start_cluster, stop_cluster, write_config
from tests.integration.admin_support import admin_config
from tests.integration.postgres_support import binaries_of, debian_15
from tests.integration.send_support import BIN, OPERATIONS, run, snippet

PASSWORD = "tls-test-password-7f3a"  # a throwaway role's, looked for in the output
PASSWORDED, CERTIFIED = "nd_tls", "nd_cert"  # log in by password; by client certificate
# The doc's file names, replaced by the test's files.
DOC_FILES = {
    "/etc/notifyd/db-ca.pem": "ca.pem",
    "/etc/notifyd/db-client.pem": "client.pem",
    "/etc/notifyd/db-client.key": "client.key",
}
# The daemon's connection, as the server sees it.
ITS_TLS = "SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@dataclass
class TlsServer:
    cluster: Cluster
    port: int
    files: Path  # the CA's certificate and the client's, as an operator keeps them

    async def url(
        self, *, client: bool = False, host: str = "localhost", ca: str = "ca.pem"
    ) -> str:
        """The doc's URL (the password form, or the client certificate's) to a new database
        of this server, with its host, port and the test's files."""
        database = f"tls_{uuid.uuid4().hex[:8]}"
        await self._create(database, CERTIFIED if client else PASSWORDED)
        (doc_url,) = (
            line.split("=", 1)[1].strip("'")
            for line in snippet("pg-tls-url", OPERATIONS).splitlines()
            if line.startswith("NOTIFYD_DATABASE_URL=") and ("sslcert=" in line) == client
        )
        query = doc_url.split("?", 1)[1]
        for doc_file, ours in {**DOC_FILES, "/etc/notifyd/db-ca.pem": ca}.items():
            query = query.replace(doc_file, str(self.files / ours))
        login = CERTIFIED if client else f"{PASSWORDED}:{quote(PASSWORD, safe='')}"
        return f"postgresql://{login}@{host}:{self.port}/{database}?{query}"

    async def _create(self, database: str, owner: str) -> None:
        conn = await asyncpg.connect(superuser(self.cluster, self.port))
        try:
            await conn.execute(f"CREATE DATABASE {database} OWNER {owner}")
        finally:
            await conn.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def serve_tls(cluster: Cluster, ca: trustme.CA, port: int) -> None:
    """Restart the test cluster listening on localhost's TCP too, `ssl = on`, with a
    certificate for "localhost" from `ca`; over TCP only TLS logins: by password, or
    `CERTIFIED`'s by a client certificate from `ca`."""
    server = cluster.server
    asyncio.run(server.stop())
    pgdata = server.pgdata
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(
        str(pgdata / "server.pem")
    )
    ca.cert_pem.write_to_path(str(pgdata / "clients-ca.pem"))
    with (pgdata / "pg_hba.conf").open("a") as hba:
        for address in ("127.0.0.1/32", "::1/128"):
            hba.write(f"hostssl all {CERTIFIED} {address} cert\n")
            hba.write(f"hostssl all all {address} scram-sha-256\n")
    # The server's user (root's stand-in) owns its data folder and must read its files.
    owner = pgdata.stat()
    for name in ("server.pem", "clients-ca.pem"):
        (pgdata / name).chmod(0o600)
        os.chown(pgdata / name, owner.st_uid, owner.st_gid)
    options = [
        "-h localhost",
        f"-p {port}",
        f"-k {server.socket_dir}",
        "-c ssl=on",
        "-c ssl_cert_file=server.pem",
        "-c ssl_key_file=server.pem",
        "-c ssl_ca_file=clients-ca.pem",
        "-c fsync=off",
    ]
    start = ["pg_ctl", "-D", str(pgdata), "-l", str(server.log_file), "-w", "-t", "60"]
    server.run_as_server_user([*start, "-o", " ".join(options), "start"])


def superuser(cluster: Cluster, port: int) -> str:
    """The superuser's URL, on the Unix socket (named after the port the server now has)."""
    return f"{cluster.dsn('postgres')}&port={port}"


async def make_roles(cluster: Cluster, port: int) -> None:
    conn = await asyncpg.connect(superuser(cluster, port))
    try:
        await conn.execute(f"CREATE ROLE {PASSWORDED} LOGIN PASSWORD '{PASSWORD}'")
        await conn.execute(f"CREATE ROLE {CERTIFIED} LOGIN")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    # pgserver's 16, the suite's server, is built without SSL.
    binaries = debian_15()
    ca, port, files = trustme.CA(), free_port(), tmp_path_factory.mktemp("db-tls")
    with binaries_of(binaries):
        cluster = start_cluster()
    try:
        with binaries_of(binaries):
            serve_tls(cluster, ca, port)
        asyncio.run(make_roles(cluster, port))
        ca.cert_pem.write_to_path(str(files / "ca.pem"))
        trustme.CA().cert_pem.write_to_path(str(files / "other-ca.pem"))
        client = ca.issue_cert("notifyd-client", common_name=CERTIFIED)
        client.cert_chain_pems[0].write_to_path(str(files / "client.pem"))
        client.private_key_pem.write_to_path(str(files / "client.key"))
        (files / "client.key").chmod(0o600)
        yield TlsServer(cluster, port, files)
    finally:
        stop_cluster(cluster)


def config_file(tmp_path: Path) -> Path:
    """A config with no database URL: the doc's environment variable gives it."""
    return write_config(tmp_path / "notifyd.toml", admin_config(tmp_path, "", None))


async def its_tls(url: str, tmp_path: Path) -> dict[str, Any]:
    """The daemon started with `url` as NOTIFYD_DATABASE_URL: its connection's TLS, as
    the server reports it."""
    settings = settings_module.load(config_file(tmp_path), environ={"NOTIFYD_DATABASE_URL": url})
    async with running_daemon(settings) as daemon:
        database = daemon.daemon.database
        assert database is not None
        row = await database.pool.fetchrow(ITS_TLS)
        assert row is not None
        return dict(row)


async def test_verify_full_with_the_doc_url_connects_over_tls(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    url = await tls_server.url()
    seen = await its_tls(url, tmp_path)
    assert seen["ssl"] is True, seen
    assert seen["version"].startswith("TLSv1."), seen
    assert seen["client_dn"] is None, seen


async def test_a_client_certificate_logs_in_with_no_password(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    url = await tls_server.url(client=True)
    seen = await its_tls(url, tmp_path)
    assert seen["ssl"] is True, seen
    assert seen["client_dn"].endswith(f"CN={CERTIFIED}"), seen


async def refused(command: str, url: str, tmp_path: Path) -> str:
    """`notifyd COMMAND` (run or migrate) with the URL in the environment, as systemd and
    the doc's deploy command give it: it must stop on its own, well before its patience
    for a database that is still starting would run out, and say why in one line."""
    argv = [f"{BIN}/notifyd", command, "--config", str(config_file(tmp_path))]
    ran = await run(argv, env={"NOTIFYD_DATABASE_URL": url}, timeout=60)
    assert ran.code == 69, ran
    assert ran.seconds < MIGRATE_PATIENCE_SECONDS / 2, ran
    for output in (ran.out, ran.err):
        assert "Traceback" not in output, output
        assert PASSWORD not in output, output
    (line,) = ran.err.strip().splitlines()
    assert "database TLS: the server's certificate was refused (" in line, line
    return line


@pytest.mark.parametrize("command", ["run", "migrate"])
async def test_a_server_certificate_from_another_ca_is_refused_at_once(
    tls_server: TlsServer, tmp_path: Path, command: str
) -> None:
    url = await tls_server.url(ca="other-ca.pem")
    line = await refused(command, url, tmp_path)
    # OpenSSL's reason: the server sends its CA's certificate too (PostgreSQL builds the
    # chain from ssl_ca_file), which is not the one the client trusts.
    assert "(self-signed certificate in certificate chain)" in line, line
    assert "sslrootcert" in line, line


async def test_a_host_the_certificate_does_not_name_is_refused_at_once(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    url = await tls_server.url(host="127.0.0.1")
    line = await refused("run", url, tmp_path)
    assert "certificate is not valid for '127.0.0.1'" in line, line
