"""What the tests of `notifyd send` and of docs/integrations.md share: the command run as a
PBX runs it (a process of its own), a proxy that answers 503 before it forwards, a server
that accepts and never answers, and the snippets of the doc."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web

from tests.conftest import BILLING_SECRET, PBX_SECRET, WAIT


def _unspaced(checkout: Path) -> Path:
    """The checkout by a name without whitespace. The doc's snippets are shell lines and
    shell config files that name their paths unquoted, as an operator's /opt paths are;
    filled with a checkout at '/tmp/op walk/notifyd' they split at the space. Such a
    checkout is reached through a symbolic link beside the temporary files instead."""
    if not any(character.isspace() for character in str(checkout)):
        return checkout
    digest = hashlib.sha256(str(checkout).encode()).hexdigest()[:12]
    link = Path(tempfile.gettempdir()) / f"notifyd-checkout-{digest}"
    with contextlib.suppress(FileExistsError):
        link.symlink_to(checkout, target_is_directory=True)
    return link


CHECKOUT = Path(__file__).resolve().parents[2]
ROOT = _unspaced(CHECKOUT)
INTEGRATIONS = ROOT / "docs" / "integrations.md"
OPERATIONS = ROOT / "docs" / "operations.md"
# This environment's Python, and the folder of its `notifyd` executable that the doc's
# snippets find by its name: by the unspaced name when they are in the checkout's venv.
PYTHON = (
    str(ROOT / Path(sys.executable).relative_to(CHECKOUT))
    if Path(sys.executable).is_relative_to(CHECKOUT)
    else sys.executable
)
BIN = str(Path(PYTHON).parent)


@dataclass
class Ran:
    code: int
    out: str
    err: str
    seconds: float


async def run(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    stdin: bytes = b"",
    timeout: float = WAIT,
) -> Ran:
    """A process, as a dialplan's System() or cron starts it; its exit code, output and
    wall time."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", **(env or {})},
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await process.communicate(stdin)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode(), time.monotonic() - started)


async def send(*args: str, env: dict[str, str] | None = None, stdin: bytes = b"") -> Ran:
    """`notifyd send ARGS` through the `notifyd` executable, as a PBX runs it."""
    return await run([f"{BIN}/notifyd", "send", *args], env=env, stdin=stdin)


def one_line(text: str) -> str:
    """The text, asserted to be a single line and no traceback."""
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) == 1, text
    return text.strip()


def secret_file(tmp_path: Path, secret: str) -> Path:
    """The secret as an operator writes it: its own file, readable by its user only."""
    path = tmp_path / "notifyd-send.secret"
    path.write_text(secret + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


async def webhook_ids(db: asyncpg.Connection) -> list[str]:
    return [row["webhook_id"] for row in await db.fetch("SELECT webhook_id FROM events")]


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` on loopback, on a port the OS picks; its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@dataclass
class FlakyProxy:
    """Answers the first `failures` POSTs 503 (with Retry-After), then forwards to notifyd."""

    target: str
    failures: int
    retry_after: str = "1"
    seen: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, webhook-id)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((time.monotonic(), request.headers["webhook-id"]))
        body = await request.read()
        if len(self.seen) <= self.failures:
            text = '{"error": "unavailable", "detail": "the database cannot take it now"}'
            headers = {"Retry-After": self.retry_after}
            return web.Response(status=503, text=text, headers=headers)
        forwarded = {k: v for k, v in request.headers.items() if k.lower().startswith("webhook-")}
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as session,
            session.post(
                f"{self.target}{request.path}",
                data=body,
                headers={**forwarded, "Content-Type": "application/json"},
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )


@asynccontextmanager
async def flaky_proxy(target: str, failures: int) -> AsyncIterator[tuple[str, FlakyProxy]]:
    proxy = FlakyProxy(target, failures)
    app = web.Application()
    app.router.add_post("/v1/webhooks/{source}", proxy.handle)
    async with serving(app) as url:
        yield url, proxy


@asynccontextmanager
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections, reads the request and never answers: a hung notifyd, or a
    firewall that lets the SYN through. Its base URL."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


def snippet(name: str, doc: Path = INTEGRATIONS) -> str:
    """The fenced block that follows `<!-- snippet: NAME -->` in `doc` (docs/integrations.md
    unless said), as an operator copies it; a block indented under a list item loses the
    item's indent."""
    text = doc.read_text(encoding="utf-8")
    pattern = rf"<!-- snippet: {re.escape(name)} -->\s*?\n([ \t]*)```\w*\n(.*?)^\1```"
    found = re.search(pattern, text, re.S | re.M)
    assert found, f"docs/{doc.name} has no snippet {name!r}"
    indent = found.group(1)
    return "".join(line.removeprefix(indent) for line in found.group(2).splitlines(True))


def localized(text: str, base_url: str, tmp_path: Path) -> str:
    """A snippet with the test's notifyd, secrets, folders and executable in place of the
    doc's placeholders (its other sections can use the same ones)."""
    places = {
        "http://notifyd.internal:8080": base_url,
        "/etc/notifyd/pbx.secret": str(tmp_path / "pbx.secret"),
        "/etc/notifyd/billing.secret": str(tmp_path / "billing.secret"),
        "/var/spool/notifyd-send": str(tmp_path / "spool"),
        "/opt/notifyd-send/bin/": f"{BIN}/",
    }
    for doc, here in places.items():
        text = text.replace(doc, here)
    (tmp_path / "pbx.secret").write_text(f"{PBX_SECRET}\n")
    (tmp_path / "billing.secret").write_text(f"{BILLING_SECRET}\n")
    return text
