"""Voicemail audio and fax documents end to end: inline or by URL, checked by their bytes,
attached to the email with their real type, or left out with a sentence saying why."""

from __future__ import annotations

import base64
import io
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from PIL import Image, ImageDraw

from notifyd.catalogue.samples import sample_event, sample_wav
from notifyd.settings import Settings
from tests.conftest import running_daemon
from tests.integration.catalogue_support import (
    Mail,
    RawSink,
    mail_number,
    post_ok,
    sending_settings,
)

ACCOUNT = "acc-files"
PORTAL = "https://portal.voip.example/voicemail"
# What the Romanian templates say for each attachment status.
ATTACHED = "Mesajul vocal este atașat în format audio"
UNAVAILABLE = "Înregistrarea audio nu a putut fi preluată, așa că nu este atașată."
TOO_LARGE = "este prea mare pentru a fi atașată la acest email"
DISABLED = "Ați ales să nu primiți prin email înregistrarea audio a mesajelor vocale."


@dataclass
class FileServer:
    """The PBX's file server on loopback; records every request path."""

    port: int = 0
    requests: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    state = FileServer()

    async def recording(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        # Mislabelled on purpose: the type comes from the bytes.
        return web.Response(body=sample_wav(), content_type="application/octet-stream")

    async def fax(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        return web.Response(body=fax_tiff(pages=2), content_type="image/tiff")

    async def status(request: web.Request) -> web.Response:
        state.requests.append(request.path)
        return web.Response(status=int(request.match_info["code"]), text="busy")

    app = web.Application()
    app.router.add_get("/vm/{name}", recording)
    app.router.add_get("/fax/{name}", fax)
    app.router.add_get("/status/{code}", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = runner.addresses[0][1]
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting is refused, and nobody else takes it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def settings_for(tmp_path: Path, database_url: str, sink: RawSink, **attachments: Any) -> Settings:
    return sending_settings(
        tmp_path,
        database_url,
        sink,
        attachments={
            "fetch_allow_hosts": ["127.0.0.1"],
            "fetch_attempts": 3,
            "fetch_retry_seconds": 0.2,
            "fetch_timeout_seconds": 3,
            **attachments,
        },
    )


def inline(filename: str, content_type: str, data: bytes) -> dict[str, str]:
    return {
        "filename": filename,
        "content_type": content_type,
        "data_base64": base64.b64encode(data).decode(),
    }


def by_url(filename: str, url: str) -> dict[str, str]:
    return {"filename": filename, "content_type": "audio/wav", "url": url}


def voicemail(call_id: str, audio: dict[str, str]) -> dict[str, Any]:
    return sample_event("voicemail.received", ACCOUNT, call_id=call_id, audio=audio)


def fax_tiff(pages: int = 2) -> bytes:
    """A fax as fax servers write it: multi-page bilevel TIFF, CCITT group 4."""
    images = []
    for page in range(pages):
        image = Image.new("1", (800, 1000), 1)
        ImageDraw.Draw(image).rectangle((100, 100 + 60 * page, 700, 300 + 60 * page), fill=0)
        images.append(image)
    out = io.BytesIO()
    images[0].save(
        out,
        format="TIFF",
        save_all=True,
        append_images=images[1:],
        compression="group4",
        dpi=(204, 196),
    )
    return out.getvalue()


def attached(mail: Mail) -> list[tuple[str, str, bytes]]:
    """(content type, file name, bytes) of each attachment."""
    result = []
    for part in mail.attachments:
        content = part.get_content()
        assert isinstance(content, bytes)
        result.append((part.get_content_type(), part.get_filename() or "", content))
    return result


async def test_inline_files_are_attached_with_their_real_type(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    tiff = fax_tiff(pages=2)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, voicemail("vm-1", inline("msg0001.wav", "audio/wav", sample_wav())))
        wav = await mail_number(sink, 2)
        # The PBX declares a generic type: the bytes say WAV, so it is a WAV.
        await post_ok(
            daemon,
            voicemail("vm-2", inline("msg0002.bin", "application/octet-stream", sample_wav())),
        )
        mislabelled = await mail_number(sink, 3)
        await post_ok(
            daemon,
            sample_event(
                "fax.received",
                ACCOUNT,
                pages=2,
                document=inline("fax-0042.tif", "image/tiff", tiff),
            ),
        )
        fax = await mail_number(sink, 4)

    assert attached(wav) == [("audio/wav", "msg0001.wav", sample_wav())]
    assert ATTACHED in wav.text
    assert "msg0001.wav" in wav.html_text

    assert attached(mislabelled) == [("audio/wav", "msg0002.wav", sample_wav())]
    assert ATTACHED in mislabelled.text

    [(content_type, filename, pdf)] = attached(fax)
    assert content_type == "application/pdf"
    assert filename == "fax-0042.pdf"
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 2
    assert "Documentul este atașat în format PDF (fax-0042.pdf" in fax.text
    assert "2 pagini" in fax.subject
    rows = await db.fetch("SELECT declared_type, content_type, state FROM attachments")
    assert sorted((r["declared_type"], r["content_type"], r["state"]) for r in rows) == [
        ("application/octet-stream", "audio/wav", "ready"),
        ("audio/wav", "audio/wav", "ready"),
        ("image/tiff", "application/pdf", "ready"),
    ]


async def test_a_file_over_the_email_limit_is_not_attached_and_the_email_links_it(
    tmp_path: Path, database_url: str, sink: RawSink
) -> None:
    settings = settings_for(tmp_path, database_url, sink, max_email_bytes=100, portal_url=PORTAL)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, voicemail("vm-big", inline("big.wav", "audio/wav", sample_wav())))
        audio = await mail_number(sink, 2)
        await post_ok(daemon, sample_event("fax.received", ACCOUNT))
        fax = await mail_number(sink, 3)
    assert attached(audio) == []
    assert TOO_LARGE in audio.text
    assert f"O puteți asculta aici: {PORTAL}" in audio.text
    assert TOO_LARGE in audio.html_text
    assert f'href="{PORTAL}"' in audio.html
    assert attached(fax) == []
    assert "este prea mare pentru a fi atașat la acest email" in fax.text
    assert PORTAL in fax.text


async def test_a_url_attachment_is_fetched_and_attached(
    tmp_path: Path, database_url: str, sink: RawSink, files: FileServer
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, voicemail("vm-url", by_url("msg0003.wav", files.url("/vm/3"))))
        mail = await mail_number(sink, 2)
        document = {"filename": "fax-7.tiff", "content_type": "image/tiff"}
        await post_ok(
            daemon,
            sample_event(
                "fax.received", ACCOUNT, pages=2, document={**document, "url": files.url("/fax/7")}
            ),
        )
        fax = await mail_number(sink, 3)
    assert files.requests == ["/vm/3", "/fax/7"]
    assert attached(mail) == [("audio/wav", "msg0003.wav", sample_wav())]
    assert ATTACHED in mail.text
    [(content_type, filename, pdf)] = attached(fax)
    assert (content_type, filename) == ("application/pdf", "fax-7.pdf")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 2
    assert "Documentul este atașat în format PDF (fax-7.pdf" in fax.text


async def test_an_unreachable_url_is_retried_then_the_email_says_so(
    tmp_path: Path,
    database_url: str,
    sink: RawSink,
    files: FileServer,
    closed_port: int,
    db: asyncpg.Connection,
) -> None:
    settings = settings_for(tmp_path, database_url, sink, portal_url=PORTAL)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, voicemail("vm-503", by_url("busy.wav", files.url("/status/503"))))
        busy = await mail_number(sink, 2)
        await post_ok(
            daemon,
            voicemail("vm-closed", by_url("gone.wav", f"http://127.0.0.1:{closed_port}/vm/4")),
        )
        refused = await mail_number(sink, 3)
    # fetch_attempts = 3: three requests, then the email goes without the file.
    assert files.requests == ["/status/503"] * 3
    for mail in (busy, refused):
        assert attached(mail) == []
        assert UNAVAILABLE in mail.text
        assert PORTAL in mail.text
        assert UNAVAILABLE in mail.html_text
    rows = await db.fetch("SELECT filename, state, fetch_attempts FROM attachments ORDER BY 1")
    assert [(r["filename"], r["state"], r["fetch_attempts"]) for r in rows] == [
        ("busy.wav", "failed", 3),
        ("gone.wav", "failed", 3),
    ]
    states = await db.fetch(
        "SELECT state, attempts FROM notices WHERE kind = $1", "voicemail.received"
    )
    assert [(r["state"], r["attempts"]) for r in states] == [("sent", 3), ("sent", 3)]


async def test_a_url_on_a_host_that_is_not_allowed_is_never_requested(
    tmp_path: Path, database_url: str, sink: RawSink, files: FileServer
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    # The same server, named by a host that is neither allowlisted nor the sender's address.
    elsewhere = files.url("/vm/5", host="localhost")
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, voicemail("vm-elsewhere", by_url("msg0005.wav", elsewhere)))
        mail = await mail_number(sink, 2)
    assert files.requests == []
    assert attached(mail) == []
    assert UNAVAILABLE in mail.text


async def test_voicemail_audio_switched_off_sends_no_recording(
    tmp_path: Path, database_url: str, sink: RawSink, db: asyncpg.Connection
) -> None:
    settings = settings_for(tmp_path, database_url, sink)
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await db.execute(
            "UPDATE subscribers SET voicemail_audio = false WHERE account_id = $1", ACCOUNT
        )
        await post_ok(daemon, voicemail("vm-off", inline("msg0006.wav", "audio/wav", sample_wav())))
        audio = await mail_number(sink, 2)
        # Only recordings are switched off: a fax still comes with its document.
        await post_ok(daemon, sample_event("fax.received", ACCOUNT))
        fax = await mail_number(sink, 3)
    assert attached(audio) == []
    assert DISABLED in audio.text
    assert DISABLED in audio.html_text
    assert [part[0] for part in attached(fax)] == ["application/pdf"]


async def test_the_sender_address_opens_no_loopback_service(
    tmp_path: Path, database_url: str, sink: RawSink, files: FileServer, db: asyncpg.Connection
) -> None:
    # The configuration: only the PBX's name is allowed, and the webhook arrives from
    # 127.0.0.1 (a reverse proxy on this host). Neither the file server on another loopback
    # port nor notifyd's own admin API may be fetched; both voicemails still go out.
    settings = settings_for(
        tmp_path, database_url, sink, fetch_allow_hosts=["pbx.internal.example"]
    )
    async with running_daemon(settings) as daemon:
        own_admin = f"{daemon.admin_url}/v1/admin/subscribers"
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, voicemail("vm-loop", by_url("loop.wav", files.url("/vm/6"))))
        await post_ok(daemon, voicemail("vm-admin", by_url("admin.wav", own_admin)))
        mails = [await mail_number(sink, 2), await mail_number(sink, 3)]
    assert files.requests == []
    for mail in mails:
        assert attached(mail) == []
        assert UNAVAILABLE in mail.text
    rows = await db.fetch("SELECT state, fetch_attempts, last_error FROM attachments")
    assert len(rows) == 2
    for row in rows:
        # Refused at once, not retried: the address will not become allowed by waiting.
        assert (row["state"], row["fetch_attempts"]) == ("failed", 1)
        assert "host 127.0.0.1 is a loopback address" in row["last_error"]


async def test_a_fetched_fax_over_a_limit_is_not_attached_and_not_fetched_again(
    tmp_path: Path, database_url: str, sink: RawSink, files: FileServer, db: asyncpg.Connection
) -> None:
    # The /fax/ file has 2 pages: one over max_pages = 1.
    settings = settings_for(tmp_path, database_url, sink, max_pages=1)
    document = {"filename": "fax-7.tiff", "content_type": "image/tiff", "url": files.url("/fax/7")}
    async with running_daemon(settings) as daemon:
        await post_ok(daemon, sample_event("account.created", ACCOUNT, language="ro"))
        await mail_number(sink, 1)
        await post_ok(daemon, sample_event("fax.received", ACCOUNT, pages=2, document=document))
        mail = await mail_number(sink, 2)
    assert files.requests == ["/fax/7"]  # refused for good: a retry would get the same file
    assert attached(mail) == []
    row = await db.fetchrow("SELECT state, last_error FROM attachments")
    assert row is not None
    assert row["state"] == "failed"
    assert "[attachments] max_pages" in row["last_error"]
