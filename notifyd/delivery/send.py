"""One claimed notice made into an email and handed to the relay: its lifetime and address
checked, its files enclosed, rendered, signed, paced. What happened is given to the caller
inside the transport's block, for worker.py to have outcomes.py record it there.

Neighbours: worker.py claims the notices and runs a send for each; outcomes.py turns what
happened into the notice's recorded state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
from structlog.typing import FilteringBoundLogger

from notifyd.catalogue.stoppable import stoppable_by_link
from notifyd.delivery.enclosing import Enclosure, enclose
from notifyd.delivery.pacing import Pacer
from notifyd.links import Links
from notifyd.mail.addresses import Unsendable, wire_form, wire_mailbox
from notifyd.mail.dkim import DkimError, DkimSigner
from notifyd.mail.previews import renderer_for
from notifyd.mail.rendering import NoticeView, Renderer
from notifyd.mail.transport import Outcome, Transport, Verdict
from notifyd.model import DigestItem
from notifyd.rules import digests
from notifyd.rules.digests import DIGEST_KIND
from notifyd.rules.preferences import off_by_default
from notifyd.settings import (
    AttachmentSettings,
    ConfigError,
    DeliverySettings,
    Settings,
    callback_sources,
)
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage.notices import ClaimedNotice


@dataclass(frozen=True)
class Mailing:
    """How notices become mail and leave: swapped as a whole when the config is reloaded."""

    delivery: DeliverySettings
    attachments: AttachmentSettings
    transport: Transport
    renderer: Renderer
    # MAIL FROM: where bounces go (the address of the configured sender).
    envelope_sender: str
    signer: DkimSigner | None = None
    links: Links | None = None
    # Right-hand side of the Message-IDs of notices created here (reroutes).
    message_domain: str = "notifyd.invalid"
    # Days a delivered notice's files are kept: [retention] payload_days.
    keep_files_days: int = 30
    # The categories [defaults.modes] turns off: withheld at the claim from subscribers who
    # chose no mode of their own (rules.preferences.off_by_default).
    off_by_default: frozenset[str] = frozenset()
    # [smtp] bounce_domain and bounce_local_part: set, each notice's envelope sender is
    # its own (VERP), whose token intake/reports.py maps a bounce or complaint back by.
    bounce_domain: str = ""
    bounce_local_part: str = "bounce"
    # Sources with a [sources.<name>.callback]: their events' notices' outcomes are told.
    callback_sources: tuple[str, ...] = ()

    def sender_for(self, notice: ClaimedNotice) -> str:
        """MAIL FROM for this notice: its own bounce address, or the configured sender's."""
        if not self.bounce_domain or self.links is None:
            return self.envelope_sender
        token = self.links.bounce_token(notice.id)
        return f"{self.bounce_local_part}+{token}@{self.bounce_domain}"


def mailing_for(settings: Settings, transport: Transport, links: Links | None = None) -> Mailing:
    """Everything that turns a notice into mail, checked now (templates, DKIM key): a
    problem is a config error at start or reload."""
    signer = None
    if settings.dkim.enabled:
        try:
            signer = DkimSigner(settings.dkim)
        except DkimError as error:
            raise ConfigError(settings.path, [("[dkim] private_key_file", str(error))]) from None
    return Mailing(
        delivery=settings.delivery,
        attachments=settings.attachments,
        transport=transport,
        renderer=renderer_for(settings),
        envelope_sender=wire_mailbox(settings.smtp.sender_address),
        signer=signer,
        links=links,
        message_domain=settings.message_domain,
        keep_files_days=settings.retention.payload_days,
        off_by_default=off_by_default(settings.defaults),
        bounce_domain=settings.smtp.bounce_domain,
        bounce_local_part=settings.smtp.bounce_local_part,
        callback_sources=callback_sources(settings),
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to a claimed notice: the relay's answer, or (`from_smtp` False) our own
    verdict before any SMTP (expired, an address that cannot be sent to, a file to fetch
    again later, a template error), whose reason is not an SMTP reply."""

    outcome: Outcome
    from_smtp: bool = True
    # A retry's delay when it is not the usual back-off (a fetch's own).
    retry_after: float | None = None


class Sender:
    def __init__(
        self,
        pool: asyncpg.Pool,
        pacer: Pacer,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.pool = pool
        self.pacer = pacer
        self.clock = clock
        self.monotonic = monotonic

    @contextlib.asynccontextmanager
    async def sending(
        self, notice: ClaimedNotice, mailing: Mailing, bound: FilteringBoundLogger
    ) -> AsyncIterator[Attempt]:
        """Send the notice with `mailing` and yield what happened. Record it inside the
        block: the connection's next message is not let through until the block is left, so
        a crash leaves at most one accepted, unrecorded message a connection."""
        made = await self._made(notice, mailing, bound)
        if isinstance(made, Attempt):  # decided before any SMTP
            yield made
            return
        recipient, data = made
        pause = self.pacer.reserve(notice.recipient, self.monotonic())
        if pause:
            await asyncio.sleep(pause)  # the destination domain's rate
        async with mailing.transport.sending(
            data, mailing.sender_for(notice), recipient, notice.message_id
        ) as sent:
            yield Attempt(sent)

    async def _made(
        self, notice: ClaimedNotice, mailing: Mailing, bound: FilteringBoundLogger
    ) -> tuple[str, bytes] | Attempt:
        """The envelope recipient and the message, signed; or why there is none to send."""
        age = (self.clock() - notice.lifetime_from).total_seconds()
        if age >= mailing.delivery.lifetime(notice.category):
            # Waited too long (an outage, a paused relay): worth a dead letter, not an email.
            reason = f"expired: {age / 3600:.1f} h old, past the {notice.category} lifetime"
            bound.warning("notice expired before it could be sent")
            return Attempt(Outcome(Verdict.FAILED, reason), from_smtp=False)
        try:
            recipient = wire_form(notice.recipient)
        except Unsendable as error:
            # As stored, it can never be sent: a dead letter with the reason, not a retry.
            bound.warning("address cannot be sent to")
            return Attempt(Outcome(Verdict.FAILED, str(error)), from_smtp=False)
        try:
            enclosure = await enclose(self.pool, notice, mailing.attachments)
        except db.UNAVAILABLE as error:
            enclosure = Enclosure(retry=f"database unavailable: {type(error).__name__}")
        if enclosure.retry is not None:
            bound.info("delivery postponed", reason=enclosure.retry)
            return Attempt(
                Outcome(Verdict.RETRY, enclosure.retry),
                from_smtp=False,
                retry_after=enclosure.retry_after,
            )
        given = await self._context(notice, mailing, enclosure)
        if isinstance(given, Attempt):
            return given
        context, items = given
        data = self._rendered(notice, mailing, context, items, enclosure, bound)
        return data if isinstance(data, Attempt) else (recipient, data)

    async def _context(
        self, notice: ClaimedNotice, mailing: Mailing, enclosure: Enclosure
    ) -> tuple[dict[str, Any], list[DigestItem]] | Attempt:
        """What the templates are given (the notice's context, its files and links), and a
        digest's items."""
        context = {**notice.context, **enclosure.context}
        items: list[DigestItem] = []
        if notice.kind == DIGEST_KIND:
            try:
                async with self.pool.acquire() as conn:
                    items = await notice_store.digest_items(conn, notice.id)
            except db.UNAVAILABLE as error:
                reason = f"database unavailable: {type(error).__name__}"
                return Attempt(Outcome(Verdict.RETRY, reason), from_smtp=False)
        if mailing.links is not None:
            # SPEC §5: every email links to the subscriber's preference page.
            issued = self.clock()
            context["preferences_url"] = mailing.links.preferences_url(
                notice.account_id, issued=issued
            )
            if notice.category == "marketing" or notice.kind == DIGEST_KIND:
                # RFC 8058 one-click unsubscribe, signed for this account and address:
                # from offers, or from this category's digests.
                context["unsubscribe_url"] = mailing.links.unsubscribe_url(
                    notice.account_id,
                    notice.recipient,
                    "marketing" if notice.category == "marketing" else notice.category,
                    issued=issued,
                )
            elif stoppable_by_link(notice.category):
                # RFC 8058 too, on a notice the subscriber can stop: it turns the category
                # off. `unsubscribe_url`, as offers have it, for the header and the HTML
                # layout; the category names it in the plain footer.
                context["unsubscribe_url"] = mailing.links.category_off_url(
                    notice.account_id, notice.recipient, notice.category, issued=issued
                )
                context["unsubscribe_category"] = notice.category
        return context, items

    def _rendered(
        self,
        notice: ClaimedNotice,
        mailing: Mailing,
        context: dict[str, Any],
        items: list[DigestItem],
        enclosure: Enclosure,
        bound: FilteringBoundLogger,
    ) -> bytes | Attempt:
        """The message, signed if DKIM is on."""
        step = "rendering"
        try:
            if notice.kind == DIGEST_KIND:
                context.update(_digest_context(notice, items, mailing.renderer))
            view = replace(notice, context=context)
            data = mailing.renderer.mail(view, self.clock(), enclosure.files)
            if mailing.signer is not None:
                step = "DKIM signing"
                data = mailing.signer.sign(data)
        except Exception as error:
            # A template bug must not spin forever: the notice fails with the reason.
            bound.exception(f"{step} failed")
            return Attempt(Outcome(Verdict.FAILED, f"{step} failed: {error}"), from_smtp=False)
        return data


def _digest_context(
    notice: ClaimedNotice, items: list[DigestItem], renderer: Renderer
) -> dict[str, Any]:
    """The lines and totals of a digest, from the notices it gathered."""
    lines = [
        renderer.line(
            NoticeView(
                kind=item.kind,
                language=notice.language,
                data=item.data,
                timezone=notice.timezone,
                recipient=notice.recipient,
                context=item.context,
                subscriber_name=notice.subscriber_name,
                subscriber_username=notice.subscriber_username,
            )
        )
        for item in digests.in_order(items)
    ]
    return {"items": lines, "totals": digests.totals(items)}
