"""Attachments of an incoming event, checked before anything is stored: inline bytes are
decoded and their real type checked (a 422 names the field otherwise); URLs are kept to be
fetched from the PBX before the notice is sent."""

from __future__ import annotations

from notifyd.catalogue import attachments
from notifyd.catalogue.events import Event, FaxReceived, VoicemailReceived
from notifyd.catalogue.fields import Attachment
from notifyd.settings import AttachmentSettings
from notifyd.storage.attachments import StoredFile


class InvalidAttachment(Exception):
    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def _files_of(event: Event) -> list[tuple[str, str, Attachment]]:
    """(field, role, attachment) for each file the event carries."""
    data = event.data
    if isinstance(data, VoicemailReceived):
        return [("audio", "audio", data.audio)]
    if isinstance(data, FaxReceived):
        return [("document", "document", data.document)]
    return []


def has_files(event: Event) -> bool:
    """Whether the event carries a file at all (inline or by URL): most events carry none."""
    return bool(_files_of(event))


def has_inline_files(event: Event) -> bool:
    """Whether the event carries bytes to decode (work for a thread, not the event loop)."""
    return any(attachment.data_base64 is not None for _, _, attachment in _files_of(event))


def incoming_files(
    event: Event, settings: AttachmentSettings, fetch_hosts: tuple[str, ...] = ()
) -> list[StoredFile]:
    """`fetch_hosts`: where a URL attachment of this event may be fetched from, besides the
    configured allowlist (the sender itself and its source's networks)."""
    limits = attachments.PageLimits(settings.max_pages, settings.max_pixels)
    files: list[StoredFile] = []
    for field, role, attachment in _files_of(event):
        if attachment.data_base64 is None:
            files.append(
                StoredFile(
                    role=role,
                    filename=attachment.filename,
                    declared_type=attachment.content_type,
                    source_url=attachment.url,
                    fetch_hosts=fetch_hosts,
                )
            )
            continue
        try:
            content = attachments.decode_inline(attachment.data_base64, settings.max_bytes)
            prepared = attachments.prepare(
                role, attachment.filename, attachment.content_type, content, limits
            )
        except attachments.AttachmentError as error:
            raise InvalidAttachment({f"data.{field}": str(error)}) from None
        files.append(
            StoredFile(
                role=role,
                filename=prepared.filename,
                declared_type=attachment.content_type,
                content_type=prepared.content_type,
                content=prepared.content,
            )
        )
    return files
