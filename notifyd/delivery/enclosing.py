"""What a voicemail or fax email carries: its file attached, or a sentence saying why not.

Runs in the worker just before rendering. A file given as a URL is fetched from the PBX
here (host allowlist, size and time limits); a fetch that fails for a transient reason
retries with the notice, up to `[attachments] fetch_attempts`, after which the email goes
out without the file and says it could not be retrieved. Nothing is lost either way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
from aiohttp.abc import AbstractResolver

from notifyd.catalogue import attachments
from notifyd.delivery import fetching
from notifyd.mail.rendering import MailAttachment
from notifyd.settings import AttachmentSettings
from notifyd.storage import attachments as attachment_store
from notifyd.storage.attachments import StoredFile
from notifyd.storage.notices import ClaimedNotice

KINDS_WITH_FILES = frozenset({"voicemail.received", "fax.received"})


@dataclass(frozen=True)
class Enclosure:
    files: list[MailAttachment] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    # Set when a transient fetch failure should retry the notice later, and after how long.
    retry: str | None = None
    retry_after: float | None = None


async def enclose(
    pool: asyncpg.Pool,
    notice: ClaimedNotice,
    settings: AttachmentSettings,
    resolver: AbstractResolver | None = None,
) -> Enclosure:
    """`resolver`: how the names of URLs are resolved (the system's by default)."""
    if notice.kind not in KINDS_WITH_FILES or notice.event_id is None:
        return Enclosure()
    async with pool.acquire() as conn:
        stored = await attachment_store.of_event(conn, notice.event_id)
    files: list[MailAttachment] = []
    described: dict[str, Any] | None = None
    for file in stored:
        file, retry = await _fetched(pool, file, settings, resolver)
        if retry is not None:
            delay = settings.fetch_retry_seconds * 2.0 ** min(file.fetch_attempts, 16)
            return Enclosure(retry=retry, retry_after=delay)
        status = _status(file, notice, settings)
        if status == "attached" and file.content is not None and file.content_type:
            files.append(MailAttachment(file.filename, file.content_type, file.content))
        described = described or {
            "filename": file.filename,
            "size_bytes": file.size_bytes,
            "status": status,
        }
    return Enclosure(
        files=files,
        context={"attachment": described, "portal_url": settings.portal_url},
    )


def _status(file: StoredFile, notice: ClaimedNotice, settings: AttachmentSettings) -> str:
    if file.state != "ready" or file.content is None:
        return "unavailable"
    if file.role == "audio" and notice.voicemail_audio is False:
        return "disabled"
    if len(file.content) > settings.max_email_bytes:
        return "too_large"
    return "attached"


async def _fetched(
    pool: asyncpg.Pool,
    file: StoredFile,
    settings: AttachmentSettings,
    resolver: AbstractResolver | None,
) -> tuple[StoredFile, str | None]:
    """The file with its bytes, fetching them first if needed; or a reason to retry later."""
    if file.state != "pending" or file.source_url is None or file.id is None:
        return file, None
    try:
        content = await fetching.fetch(
            file.source_url,
            allow_hosts=settings.fetch_allow_hosts,
            # The PBX that posted the event: where it posts from, it may offer files.
            sender_hosts=file.fetch_hosts,
            max_bytes=settings.max_bytes,
            timeout_seconds=settings.fetch_timeout_seconds,
            resolver=resolver,
        )
        # Type checks and TIFF->PDF are CPU work: off the event loop.
        prepared = await asyncio.to_thread(
            attachments.prepare,
            file.role,
            file.filename,
            file.declared_type,
            content,
            attachments.PageLimits(settings.max_pages, settings.max_pixels),
        )
    except fetching.FetchError as error:
        final = not error.transient or file.fetch_attempts + 1 >= settings.fetch_attempts
        async with pool.acquire() as conn:
            await attachment_store.mark_fetch_failed(conn, file.id, str(error), final)
        if not final:
            return file, f"attachment fetch: {error}"
        return replace(file, state="failed", last_error=str(error)), None
    except attachments.AttachmentError as error:
        async with pool.acquire() as conn:
            await attachment_store.mark_fetch_failed(conn, file.id, str(error), True)
        return replace(file, state="failed", last_error=str(error)), None
    async with pool.acquire() as conn:
        await attachment_store.mark_ready(
            conn, file.id, prepared.filename, prepared.content_type, prepared.content
        )
    ready = replace(
        file,
        state="ready",
        filename=prepared.filename,
        content_type=prepared.content_type,
        content=prepared.content,
    )
    return ready, None
