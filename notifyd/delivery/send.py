"""One claimed notice made into an email and handed to the relay: its lifetime and address
checked, its files enclosed, rendered, signed, paced. What happened is given to the caller
inside the transport's block, for worker.py to have outcomes.py record it there.

Neighbours: worker.py claims the notices and runs a send for each; outcomes.py turns what
happened into the notice's recorded state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from structlog.typing import FilteringBoundLogger

from notifyd.catalogue.stoppable import stoppable_by_link
from notifyd.delivery.enclosing import Enclosure, enclose
from notifyd.delivery.pacing import Pacer
from notifyd.links import Links
from notifyd.mail.addresses import Origin, Unsendable, wire_form, wire_mailbox
from notifyd.mail.dkim import DkimError, DkimSigner
from notifyd.mail.previews import renderer_for
from notifyd.mail.rendering import NoticeView, Renderer
from notifyd.mail.transport import Outcome, Relays, Verdict
from notifyd.model import DigestItem
from notifyd.rules import digests
from notifyd.rules.digests import DIGEST_KIND
from notifyd.rules.preferences import off_by_default
from notifyd.settings import (
    STREAMS,
    AttachmentSettings,
    ConfigError,
    DeliverySettings,
    Settings,
    callback_sources,
    stream_of,
)
from notifyd.storage import db
from notifyd.storage import notices as notice_store
from notifyd.storage.notices import ClaimedNotice

# When the preference link of an email to an address the account no longer has is made: so
# long ago that it never opens, and its page offers a fresh link, sent to the account's
# address. The address change revoked the links that address had (storage/subscribers.py).
OUTDATED = datetime(2000, 1, 1, tzinfo=UTC)


def _to_a_former_address(notice: ClaimedNotice) -> bool:
    """The notice of an address change, to the address that was changed."""
    return notice.kind == "account.email_changed" and notice.context.get("recipient_role") != "new"


@dataclass(frozen=True)
class Stream:
    """Who a stream's mail is from (From, Reply-To) and where its bounces go: MAIL FROM is
    the sender's address, or with a bounce domain each notice's own (VERP)."""

    origin: Origin
    envelope_sender: str
    bounce_domain: str = ""


@dataclass(frozen=True)
class Mailing:
    """How notices become mail and leave: swapped as a whole when the config is reloaded."""

    delivery: DeliverySettings
    attachments: AttachmentSettings
    # The transport of each stream (settings.TRANSACTIONAL, MARKETING).
    transport: Relays
    renderer: Renderer
    # By stream name: its From, envelope sender and bounce domain ([smtp.streams]).
    streams: Mapping[str, Stream]
    # Kinds outside the marketing category that leave by the marketing stream.
    marketing_kinds: tuple[str, ...] = ()
    signer: DkimSigner | None = None
    links: Links | None = None
    # Right-hand side of the Message-IDs of notices created here (reroutes).
    message_domain: str = "notifyd.invalid"
    # Days a delivered notice's files are kept: [retention] payload_days.
    keep_files_days: int = 30
    # The categories [defaults.modes] turns off: withheld at the claim from subscribers who
    # chose no mode of their own (rules.preferences.off_by_default).
    off_by_default: frozenset[str] = frozenset()
    # [smtp] bounce_local_part: with a stream's bounce domain, each notice's envelope
    # sender is its own (VERP), whose token intake/reports.py maps a bounce back by.
    bounce_local_part: str = "bounce"
    # Sources with a [sources.<name>.callback]: their events' notices' outcomes are told.
    callback_sources: tuple[str, ...] = ()

    def stream_of(self, notice: ClaimedNotice) -> str:
        return stream_of(notice.category, notice.kind, self.marketing_kinds)

    def sender_for(self, notice: ClaimedNotice, stream: Stream) -> str:
        """MAIL FROM for this notice: its own bounce address, or its stream's sender's."""
        if not stream.bounce_domain or self.links is None:
            return stream.envelope_sender
        token = self.links.bounce_token(notice.id)
        return f"{self.bounce_local_part}+{token}@{stream.bounce_domain}"


def streams_of(settings: Settings) -> dict[str, Stream]:
    """Each stream's sender and bounce domain, from [smtp] and [smtp.streams]."""
    streams = {}
    for name in STREAMS:
        smtp = settings.smtp.stream(name)
        origin = Origin.of(smtp.sender, smtp.sender_names, smtp.reply_to)
        streams[name] = Stream(origin, wire_mailbox(smtp.sender_address), smtp.bounce_domain)
    return streams


def mailing_for(settings: Settings, transport: Relays, links: Links | None = None) -> Mailing:
    """Everything that turns a notice into mail, checked now (templates, DKIM key): a
    problem is a config error at start or reload."""
    signer = None
    if settings.dkim.enabled:
        try:
            signer = DkimSigner(settings.dkim)
        except DkimError as error:
            raise ConfigError(settings.path, [("[dkim]", str(error))]) from None
    return Mailing(
        delivery=settings.delivery,
        attachments=settings.attachments,
        transport=transport,
        renderer=renderer_for(settings),
        streams=streams_of(settings),
        marketing_kinds=settings.smtp.marketing_kinds,
        signer=signer,
        links=links,
        message_domain=settings.message_domain,
        keep_files_days=settings.retention.payload_days,
        off_by_default=off_by_default(settings.defaults),
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
        recipient, data, stream = made
        pause = self.pacer.reserve(notice.recipient, self.monotonic())
        if pause:
            await asyncio.sleep(pause)  # the destination domain's rate
        async with mailing.transport[stream].sending(
            data, mailing.sender_for(notice, mailing.streams[stream]), recipient, notice.message_id
        ) as sent:
            yield Attempt(sent)

    async def _made(
        self, notice: ClaimedNotice, mailing: Mailing, bound: FilteringBoundLogger
    ) -> tuple[str, bytes, str] | Attempt:
        """The envelope recipient, the message, signed, and its stream; or why there is none
        to send."""
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
        stream = mailing.stream_of(notice)
        data = await self._rendered(notice, mailing, (context, items, stream), enclosure, bound)
        return data if isinstance(data, Attempt) else (recipient, data, stream)

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
                notice.account_id,
                issued=OUTDATED if _to_a_former_address(notice) else issued,
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

    async def _rendered(
        self,
        notice: ClaimedNotice,
        mailing: Mailing,
        given: tuple[dict[str, Any], list[DigestItem], str],
        enclosure: Enclosure,
        bound: FilteringBoundLogger,
    ) -> bytes | Attempt:
        """The message of `given` (the templates' context, a digest's items, the stream),
        signed if DKIM is on."""
        context, items, stream = given
        step = "rendering"
        try:
            if notice.kind == DIGEST_KIND:
                context.update(_digest_context(notice, items, mailing.renderer))
            view = as_rendered(notice, context)
            data = mailing.renderer.mail(
                view,
                self.clock(),
                enclosure.files,
                origin=mailing.streams[stream].origin,
                stream=stream,
            )
            if mailing.signer is not None:
                step = "DKIM signing"
                # Off the loop: OpenSSL signs on another core while this one sends.
                data = await mailing.signer.signed(data)
        except Exception as error:
            # A template bug must not spin forever: the notice fails with the reason.
            bound.exception(f"{step} failed")
            return Attempt(Outcome(Verdict.FAILED, f"{step} failed: {error}"), from_smtp=False)
        return data


def as_rendered(notice: ClaimedNotice, context: dict[str, Any]) -> NoticeView:
    """The notice as its templates read it (`Renderable`), given `context`: the nine fields
    rendering reads, not dataclasses.replace of all nineteen of a frozen ClaimedNotice
    (2.5 against 7.5 us of process time a message, docs/performance.md). Every field is
    named: NoticeView's defaults are a preview's sample values."""
    return NoticeView(
        kind=notice.kind,
        language=notice.language,
        data=notice.data,
        timezone=notice.timezone,
        recipient=notice.recipient,
        message_id=notice.message_id,
        context=context,
        subscriber_name=notice.subscriber_name,
        subscriber_username=notice.subscriber_username,
    )


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
