"""Attachment bytes of voicemail and fax events (table `attachments`)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from notifyd.storage import queries
from notifyd.storage.db import Conn

SQL = queries.load("attachments")


@dataclass(frozen=True)
class StoredFile:
    """An attachment as kept: bytes already checked, or a URL still to fetch."""

    role: str  # "audio" | "document"
    filename: str
    declared_type: str
    content_type: str | None = None
    content: bytes | None = None
    source_url: str | None = None
    id: UUID | None = None
    state: str = "ready"
    fetch_attempts: int = 0
    last_error: str | None = None
    fetch_hosts: tuple[str, ...] = ()

    @property
    def size_bytes(self) -> int | None:
        return None if self.content is None else len(self.content)


async def insert(conn: Conn, event_id: UUID, files: list[StoredFile]) -> None:
    for file in files:
        await conn.execute(
            SQL["insert_attachment"],
            uuid4(),
            event_id,
            file.role,
            file.filename,
            file.declared_type,
            file.content_type,
            file.size_bytes,
            file.content,
            file.source_url,
            "ready" if file.content is not None else "pending",
            list(file.fetch_hosts),
        )


async def of_event(conn: Conn, event_id: UUID) -> list[StoredFile]:
    rows = await conn.fetch(SQL["of_event"], event_id)
    return [
        StoredFile(
            id=row["id"],
            role=row["role"],
            filename=row["filename"],
            declared_type=row["declared_type"],
            content_type=row["content_type"],
            content=row["content"],
            source_url=row["source_url"],
            state=row["state"],
            fetch_attempts=row["fetch_attempts"],
            last_error=row["last_error"],
            fetch_hosts=tuple(row["fetch_hosts"]),
        )
        for row in rows
    ]


async def mark_ready(
    conn: Conn, file_id: UUID, filename: str, content_type: str, content: bytes
) -> None:
    await conn.execute(SQL["mark_ready"], file_id, filename, content_type, len(content), content)


async def mark_fetch_failed(conn: Conn, file_id: UUID, error: str, final: bool) -> int:
    attempts: int = await conn.fetchval(SQL["mark_fetch_failed"], file_id, error, final)
    return attempts


async def schedule_purge(conn: Conn, event_id: UUID, keep_days: int) -> None:
    await conn.execute(SQL["schedule_purge"], event_id, keep_days)
