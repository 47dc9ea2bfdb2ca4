"""POST /v1/webhooks/{source}: verify, parse, hand to intake; 202 only after the commit."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from uuid import UUID

import structlog
from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler
from pydantic import Field

from notifyd.catalogue.events import AccountLocale, Event, InvalidEvent, MalformedBody
from notifyd.catalogue.webhook_body import WEBHOOK_BODY, parse_webhook
from notifyd.http.bodies import Reservation
from notifyd.http.errors import error_response
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.http.signatures import SignatureError, SignedHeaders, read_headers
from notifyd.http.validation import Reply, respond
from notifyd.intake.files import (
    InvalidAttachment,
    has_files,
    has_inline_files,
    incoming_files,
)
from notifyd.intake.ingest import Receipt as Stored
from notifyd.settings import IPNetwork, Settings, WebhookSettings
from notifyd.storage import db
from notifyd.storage.attachments import StoredFile

log = structlog.get_logger(__name__)

JSON_TYPES = ("application/json",)
# A raw RFC 5322 message: the body of a report (http/reports.py).
MESSAGE_TYPE = "message/rfc822"

routes = Routes()


class Receipt(Reply):
    event_id: UUID
    duplicate: bool = Field(description="The webhook-id was already stored: nothing new")


class BodyTooLarge(Exception):
    pass


class NoRoom(Exception):
    """The bodies already in flight leave no room for this one under the cap."""


async def _read_body(
    request: web.Request, limit: int, room: Reservation, idle_seconds: float
) -> bytes:
    announced = request.content_length
    if announced is not None:
        if announced > limit:
            raise BodyTooLarge
        # Refused before a byte is read when it cannot fit: the sender gets its 503 while
        # its body is still on the wire (aiohttp reads no more than its buffer until asked).
        # Only bytes received are counted (bodies.py), so announcing holds no room.
        if not room.fits(announced):
            raise NoRoom
    chunks: list[bytes] = []
    size = 0
    loop = asyncio.get_running_loop()
    # One timer for the whole body, pushed back by every chunk: a body that stops coming is
    # cut, and the bytes it had sent are let go with its reservation. None for a body already
    # received whole (nearly every webhook: it came with its headers), which cannot stall.
    stalls = nullcontext() if request.content.is_eof() else asyncio.timeout(idle_seconds)
    async with stalls as idle:
        while chunk := await request.content.readany():
            if idle is not None:
                idle.reschedule(loop.time() + idle_seconds)
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            if not room.take(len(chunk)):
                raise NoRoom
            chunks.append(chunk)
    return b"".join(chunks)


def allowed_sender(remote: str | None, networks: tuple[IPNetwork, ...]) -> bool:
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _is_json(content_type: str) -> bool:
    return content_type in JSON_TYPES or content_type.endswith("+json")


def _is_message(content_type: str) -> bool:
    return content_type == MESSAGE_TYPE


def refusal_before_body(
    request: web.Request,
    runtime: Runtime,
    name: str,
    *,
    logged: bool = True,
    kind: str = "events",
) -> web.Response | SignedHeaders:
    """What can be refused from the request line and headers alone, or the signed headers.
    `kind`: the sources this route serves (an `mta` source posts reports, not events).

    Checked before the body is read: an unsigned upload is refused while it is still on
    the wire, and costs no memory."""
    source = runtime.settings.sources.get(name)
    if source is None:
        return error_response(404, "unknown_source", f"no source named {name!r}")
    if source.kind != kind:
        route = "webhooks" if source.kind == "events" else "reports"
        return error_response(404, "unknown_source", f"source {name!r} posts to /v1/{route}/{name}")
    if source.allow_from is not None and not allowed_sender(request.remote, source.allow_from):
        if logged:
            log.warning("webhook from outside the allowlist", source=name, remote=request.remote)
        return error_response(
            403, "forbidden", f"sender address is not allowed for source {name!r}"
        )
    try:
        signed = read_headers(request.headers)
        runtime.verifiers[name].check_timestamp(signed, runtime.clock())
    except SignatureError as error:
        if logged:
            log.warning("webhook signature refused", source=name, reason=str(error))
        return error_response(401, "bad_signature", str(error))
    wanted = _is_json if kind == "events" else _is_message
    if "Content-Type" not in request.headers or not wanted(request.content_type):
        given = request.content_type if "Content-Type" in request.headers else "none"
        expected = "application/json" if kind == "events" else MESSAGE_TYPE
        return error_response(415, "unsupported_media_type", f"expected {expected}, got {given}")
    return signed


def expect_for(kind: str) -> Callable[[web.Request], Awaitable[None]]:
    """`Expect: 100-continue`: invite the body only if its headers pass. Else no 100 is sent
    and the handler answers the refusal; the sender need not send the body at all.
    (The invitation is the router's own, which a route's expect handler replaces.)"""

    async def expect(request: web.Request) -> None:
        runtime = request.app[RUNTIME]
        name = request.match_info["source"]
        checked = refusal_before_body(request, runtime, name, logged=False, kind=kind)
        if isinstance(checked, SignedHeaders):
            await _default_expect_handler(request)

    return expect


@routes.post(
    "/v1/webhooks/{source}",
    "Receive a signed event from a configured source",
    description="Standard Webhooks signature headers (webhook-id, webhook-timestamp, "
    "webhook-signature). 202 only once the event is committed; a repeated webhook-id answers "
    "duplicate: true.",
    headers=("webhook-id", "webhook-timestamp", "webhook-signature"),
    body=WEBHOOK_BODY,
    answers={
        202: Answer("Stored", Receipt),
        200: Answer("Already stored", Receipt),
        400: error("Not JSON"),
        401: error("Bad or missing signature, stale timestamp"),
        403: error("Sender outside the source's allow_from"),
        404: error("Unknown source"),
        408: error("The body stopped coming for [webhooks] body_idle_seconds; send it again"),
        413: error("Body over the limit"),
        415: error("Not JSON content"),
        422: error("Unknown type or invalid data; `fields` names each error"),
        503: error("The database cannot take it now, or too many bodies are being received; retry"),
    },
    expect_handler=expect_for("events"),
)
async def receive_webhook(request: web.Request) -> web.Response:
    started = time.monotonic()
    runtime = request.app[RUNTIME]
    name = request.match_info["source"]
    with runtime.bodies.reservation() as room:
        response, event_type = await _receive(request, runtime, name, room)
    source_label = name if name in runtime.settings.sources else "-"
    runtime.metrics.webhook_answered(source_label, event_type, response.status, started)
    return response


class Refused(Exception):
    """A webhook answered with an error; `event_type` labels the metric ("-": not known)."""

    def __init__(self, response: web.Response, event_type: str = "-") -> None:
        self.response = response
        self.event_type = event_type


async def _receive(
    request: web.Request, runtime: Runtime, name: str, room: Reservation
) -> tuple[web.Response, str]:
    """The steps a webhook goes through, each of which may refuse it: headers, body,
    signature, schema, attachments, commit. The answer, and the event type for the metric."""
    checked = refusal_before_body(request, runtime, name)
    if not isinstance(checked, SignedHeaders):
        return checked, "-"
    try:
        body = await read_body(request, runtime.settings.webhooks, name, room)
        _verify(runtime, name, checked, body)
        event = _event(body)
        files = await _files(request, runtime.settings, name, event)
        receipt = await _stored(runtime, name, checked.webhook_id, event, files)
    except Refused as refused:
        return refused.response, refused.event_type
    if receipt.duplicate:
        log.info("webhook replay", source=name, event_id=str(receipt.event_id))
        return respond(Receipt(event_id=receipt.event_id, duplicate=True), status=200), event.type
    routing = receipt.routing
    log.info(
        "event stored",
        source=name,
        type=event.type,
        event_id=str(receipt.event_id),
        notices=len(routing.notices) if routing else 0,
        skipped=routing.skipped.reason if routing and routing.skipped else None,
    )
    if isinstance(event.data, AccountLocale) and event.data.not_understood:
        # The field's name only: the value is whatever the sender wrote, and could be anything.
        log.warning(
            "account's language or time zone not understood: the default applies",
            source=name,
            type=event.type,
            event_id=str(receipt.event_id),
            fields=list(event.data.not_understood),
        )
    return respond(Receipt(event_id=receipt.event_id, duplicate=False), status=202), event.type


async def read_body(
    request: web.Request, webhooks: WebhookSettings, name: str, room: Reservation
) -> bytes:
    limit = webhooks.max_body_bytes
    try:
        return await _read_body(request, limit, room, webhooks.body_idle_seconds)
    except TimeoutError:
        log.warning("webhook refused: its body stalled", source=name)
        raise Refused(
            error_response(
                408,
                "body_timeout",
                f"no byte of the body came for {webhooks.body_idle_seconds:g} s; "
                "send it again with the same webhook-id",
            )
        ) from None
    except BodyTooLarge:
        raise Refused(
            error_response(413, "body_too_large", f"the body is over {limit} bytes")
        ) from None
    except NoRoom:
        log.warning("webhook refused: bodies in flight at the cap", source=name)
        raise Refused(
            error_response(
                503,
                "busy",
                "too many webhook bodies are being received; retry later",
                headers={"Retry-After": "5"},
            )
        ) from None


def _verify(runtime: Runtime, name: str, signed: SignedHeaders, body: bytes) -> None:
    try:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(error_response(400, "malformed_body", "the body is not UTF-8")) from None
        # Over the bytes: for UTF-8 text the same HMAC the library computes over the text
        # (tests/unit/test_signatures.py), without its datetime and base64 round trips
        # (16 -> 11 us a webhook, docs/performance.md, "The intake's floor").
        runtime.verifiers[name].verify_bytes(signed, body, runtime.clock())
    except SignatureError as error:
        log.warning("webhook signature refused", source=name, reason=str(error))
        raise Refused(error_response(401, "bad_signature", str(error))) from None


def _event(body: bytes) -> Event:
    try:
        return parse_webhook(body)
    except MalformedBody as error:
        raise Refused(error_response(400, "malformed_json", str(error))) from None
    except InvalidEvent as error:
        raise Refused(
            error_response(422, error.code, error.detail, error.fields), error.event_type or "-"
        ) from None


async def _files(
    request: web.Request, settings: Settings, name: str, event: Event
) -> Sequence[StoredFile]:
    if not has_files(event):
        # Most events: no files to check, no hosts to name for them (3 -> 0.5 us a webhook).
        return ()
    # "Fetched from the PBX": the PBX that posted this, or one of its source's networks.
    source = settings.sources[name]
    hosts = tuple(str(n) for n in source.allow_from or ()) + (
        (request.remote,) if request.remote else ()
    )
    try:
        if has_inline_files(event):
            # Decoding, type checks and TIFF->PDF are CPU work: off the event loop.
            return await asyncio.to_thread(incoming_files, event, settings.attachments, hosts)
        # Most events carry no bytes: a thread hop per webhook would cost more than this.
        return incoming_files(event, settings.attachments, hosts)
    except InvalidAttachment as error:
        raise Refused(
            error_response(422, "invalid_event", "an attachment is unusable", error.fields),
            event.type,
        ) from None


async def _stored(
    runtime: Runtime, name: str, webhook_id: str, event: Event, files: Sequence[StoredFile]
) -> Stored:
    try:
        return await runtime.intake.accept(name, webhook_id, event, files)
    except db.UNAVAILABLE as error:
        log.error("database unavailable: webhook refused", source=name, error=type(error).__name__)
        raise Refused(
            error_response(
                503,
                "unavailable",
                "the event could not be stored now; retry later",
                headers={"Retry-After": "5"},
            ),
            event.type,
        ) from None
