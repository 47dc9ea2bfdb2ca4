"""POST /v1/webhooks/{source}: verify, parse, hand to intake; 202 only after the commit."""

from __future__ import annotations

import asyncio
import ipaddress

import structlog
from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler

from notifyd.catalogue.events import InvalidEvent, MalformedBody, parse_event
from notifyd.http.bodies import Reservation
from notifyd.http.errors import error_response
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.http.signatures import SignatureError, SignedHeaders, read_headers
from notifyd.intake.files import InvalidAttachment, has_inline_files, incoming_files
from notifyd.settings import IPNetwork
from notifyd.storage import db

log = structlog.get_logger(__name__)

JSON_TYPES = ("application/json",)


class BodyTooLarge(Exception):
    pass


class NoRoom(Exception):
    """The bodies already in flight leave no room for this one under the cap."""


async def _read_body(request: web.Request, limit: int, room: Reservation) -> bytes:
    announced = request.content_length
    if announced is not None:
        if announced > limit:
            raise BodyTooLarge
        # Counted before a byte is read: past the cap, the sender gets its 503 while its
        # body is still on the wire (aiohttp reads no more than its buffer until asked).
        if not room.take(announced):
            raise NoRoom
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if announced is None and not room.take(len(chunk)):
            raise NoRoom
        chunks.append(chunk)
    return b"".join(chunks)


def _allowed(remote: str | None, networks: tuple[IPNetwork, ...]) -> bool:
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


async def receive_webhook(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    name = request.match_info["source"]
    with runtime.bodies.reservation() as room:
        response, event_type = await _receive(request, runtime, name, room)
    source_label = name if name in runtime.settings.sources else "-"
    runtime.metrics.webhooks.labels(source_label, event_type, str(response.status)).inc()
    return response


def _refusal_before_body(
    request: web.Request, runtime: Runtime, name: str, *, logged: bool = True
) -> web.Response | SignedHeaders:
    """What can be refused from the request line and headers alone, or the signed headers.

    Checked before the body is read: an unsigned upload is refused while it is still on
    the wire, and costs no memory."""
    source = runtime.settings.sources.get(name)
    if source is None:
        return error_response(404, "unknown_source", f"no source named {name!r}")
    if source.allow_from is not None and not _allowed(request.remote, source.allow_from):
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
    if "Content-Type" not in request.headers or not _is_json(request.content_type):
        given = request.content_type if "Content-Type" in request.headers else "none"
        return error_response(
            415, "unsupported_media_type", f"expected application/json, got {given}"
        )
    return signed


async def expect_webhook(request: web.Request) -> None:
    """`Expect: 100-continue`: invite the body only if its headers pass. Else no 100 is sent
    and the handler answers the refusal; the sender need not send the body at all.
    (The invitation is the router's own, which a route's expect handler replaces.)"""
    runtime = request.app[RUNTIME]
    checked = _refusal_before_body(request, runtime, request.match_info["source"], logged=False)
    if isinstance(checked, SignedHeaders):
        await _default_expect_handler(request)


async def _receive(
    request: web.Request, runtime: Runtime, name: str, room: Reservation
) -> tuple[web.Response, str]:
    settings = runtime.settings
    checked = _refusal_before_body(request, runtime, name)
    if not isinstance(checked, SignedHeaders):
        return checked, "-"
    signed = checked
    source = settings.sources[name]

    limit = settings.webhooks.max_body_bytes
    try:
        body = await _read_body(request, limit, room)
    except BodyTooLarge:
        return error_response(413, "body_too_large", f"the body is over {limit} bytes"), "-"
    except NoRoom:
        log.warning("webhook refused: bodies in flight at the cap", source=name)
        return error_response(
            503,
            "busy",
            "too many webhook bodies are being received; retry later",
            headers={"Retry-After": "5"},
        ), "-"

    try:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(400, "malformed_body", "the body is not UTF-8"), "-"
        runtime.verifiers[name].verify(signed, text, runtime.clock())
    except SignatureError as error:
        log.warning("webhook signature refused", source=name, reason=str(error))
        return error_response(401, "bad_signature", str(error)), "-"

    try:
        event = parse_event(body)
    except MalformedBody as error:
        return error_response(400, "malformed_json", str(error)), "-"
    except InvalidEvent as error:
        return error_response(422, error.code, error.detail, error.fields), (
            error.event_type or "-"
        )

    try:
        # Decoding, type checks and TIFF->PDF are CPU work: off the event loop.
        # "Fetched from the PBX": the PBX that posted this, or one of its source's networks.
        hosts = tuple(str(n) for n in source.allow_from or ()) + (
            (request.remote,) if request.remote else ()
        )
        if has_inline_files(event):
            files = await asyncio.to_thread(incoming_files, event, settings.attachments, hosts)
        else:
            # Most events carry no bytes: a thread hop per webhook would cost more than this.
            files = incoming_files(event, settings.attachments, hosts)
    except InvalidAttachment as error:
        return error_response(422, "invalid_event", "an attachment is unusable", error.fields), (
            event.type
        )

    try:
        receipt = await runtime.intake.accept(name, signed.webhook_id, event, files)
    except db.UNAVAILABLE as error:
        log.error("database unavailable: webhook refused", source=name, error=type(error).__name__)
        return error_response(
            503,
            "unavailable",
            "the event could not be stored now; retry later",
            headers={"Retry-After": "5"},
        ), event.type

    if receipt.duplicate:
        log.info("webhook replay", source=name, event_id=str(receipt.event_id))
        return web.json_response(
            {"event_id": str(receipt.event_id), "duplicate": True}, status=200
        ), event.type
    routing = receipt.routing
    log.info(
        "event stored",
        source=name,
        type=event.type,
        event_id=str(receipt.event_id),
        notices=len(routing.notices) if routing else 0,
        skipped=routing.skipped.reason if routing and routing.skipped else None,
    )
    return web.json_response(
        {"event_id": str(receipt.event_id), "duplicate": False}, status=202
    ), event.type
