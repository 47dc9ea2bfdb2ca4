"""POST /v1/reports/{source}: a bounce or complaint report (a raw DSN or ARF message) from an
`mta` source, signed as webhooks are, read and handed to the intake; 202 with what was
done, or why nothing was, once it is committed. A sending service's source (postmark,
mailgun, sendgrid, ses) is handed to service_reports.py, and answered 200 the same way
(SendGrid's batch of events with one such answer per event, in order).

Neighbours: webhooks.py checks the headers, reads the body within its limits and checks
the signature the same way for both routes; mail/reports.py reads the message;
intake/reports.py finds the notice and acts.
"""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

import structlog
from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler
from pydantic import Field, RootModel

from notifyd.http import service_reports
from notifyd.http.bodies import Reservation
from notifyd.http.errors import error_response
from notifyd.http.operations import Answer, Routes, error
from notifyd.http.runtime import RUNTIME, Runtime
from notifyd.http.service_reports import unavailable
from notifyd.http.signatures import SignatureError, SignedHeaders
from notifyd.http.validation import Reply, respond
from notifyd.http.webhooks import MESSAGE_TYPE, Refused, expect_for, read_body, refusal_before_body
from notifyd.intake.reports import Decision
from notifyd.mail import reports
from notifyd.settings.intake import SERVICE_KINDS
from notifyd.storage import db

log = structlog.get_logger(__name__)

routes = Routes()

# Parsed on the event loop below this size; a larger message (one enclosing the whole
# original, with its files) in a thread, not to hold up other requests.
_PARSE_INLINE_BYTES = 64 * 1024


class ReportDecision(Reply):
    action: str = Field(
        description="hard_bounce, soft_bounce, complaint, or nothing (`reason` says why)"
    )
    reason: str = Field(
        description="For nothing: not_a_bounce_or_complaint, forged_token, no_notice_named, "
        "no_such_notice, notice_failed (reported already), already_suppressed; for an SNS "
        "confirmation: subscription_confirmed, unsubscribed; else the report's status "
        "(5.1.1) or feedback type (abuse)"
    )
    notice_id: UUID | None = Field(description="The notice the report is about, if found")


class ReportDecisions(Reply):
    events: list[ReportDecision] = Field(
        description="A SendGrid post: what was done for each of its events, in their order"
    )


class ServiceReportAnswer(RootModel[ReportDecision | ReportDecisions]):
    """A sending service's report answered: one decision, or one per event of a batch."""


_expect_mta = expect_for("mta")


async def _expect(request: web.Request) -> None:
    """`Expect: 100-continue`: an `mta` source's headers checked first; a sending service's
    are checked by its handler (the services do not send Expect)."""
    source = request.app[RUNTIME].settings.sources.get(request.match_info["source"])
    if source is not None and source.kind in SERVICE_KINDS:
        await _default_expect_handler(request)
    else:
        await _expect_mta(request)


@routes.post(
    "/v1/reports/{source}",
    "Receive a bounce or complaint report from an `mta` source or a sending service",
    description="From an `mta` source: a raw RFC 5322 message, a delivery status "
    "notification (RFC 3464) or an abuse report (ARF, RFC 5965), as "
    "contrib/postfix/notifyd-bounce posts it, with the envelope recipient in a first "
    "Notifyd-Envelope-Recipient header, signed as webhooks are (Standard Webhooks, over the "
    "body's bytes); 202 once what it does is committed. From a `postmark`, `mailgun`, "
    "`sendgrid` or `ses` source: that service's JSON bounce or complaint webhook, "
    "authenticated its way (HTTP basic auth; the body's HMAC signature; SendGrid's ECDSA "
    "signature headers; SNS's signature by its certificate, an SNS subscription confirmed "
    "by its SubscribeURL); 200 once committed, SendGrid's batch with one decision per event "
    "in `events`. A report that names no notice of ours is answered 2xx too, with why "
    "nothing was done.",
    headers=("webhook-id", "webhook-timestamp", "webhook-signature"),
    other_bodies={
        MESSAGE_TYPE: {"type": "string", "format": "binary"},
        "application/json": {
            "type": ["object", "array"],
            "description": "A Postmark or Mailgun webhook (an object), a SendGrid Event "
            "Webhook post (an array of events)",
        },
        "text/plain": {"type": "string", "description": "An Amazon SNS message (JSON)"},
    },
    answers={
        200: Answer(
            "A sending service's report: done or nothing to do (SendGrid: for each event)",
            ServiceReportAnswer,
        ),
        202: Answer("Done, or nothing to do: `action` and `reason` say which", ReportDecision),
        400: error("A sending service's body that is not a JSON object (SendGrid: array)"),
        401: error("Bad or missing signature or credentials, stale timestamp"),
        403: error("Sender outside the source's allow_from"),
        404: error("Unknown source, or an `events` source"),
        408: error("The body stopped coming for [webhooks] body_idle_seconds; send it again"),
        413: error("Body over the limit"),
        415: error("Not message/rfc822 (`mta`), not application/json (a sending service)"),
        503: error(
            "The database cannot take it now, too many bodies are being received, or SNS's "
            "certificate could not be fetched; retry"
        ),
    },
    expect_handler=_expect,
)
async def receive_report(request: web.Request) -> web.Response:
    started = time.monotonic()
    runtime = request.app[RUNTIME]
    name = request.match_info["source"]
    source = runtime.settings.sources.get(name)
    with runtime.bodies.reservation() as room:
        if source is not None and source.kind in SERVICE_KINDS:
            done, kind = await service_reports.receive(request, runtime, name, room)
            if isinstance(done, list):
                return _batch_answer(runtime, name, done, started)
            # 200, not 202: the services take a 200 as delivered, retry the rest.
            response = done if isinstance(done, web.Response) else _answer(done, 200)
        else:
            response, kind = await _receive(request, runtime, name, room)
    source_label = name if name in runtime.settings.sources else "-"
    runtime.metrics.webhook_answered(source_label, kind, response.status, started)
    return response


def _batch_answer(
    runtime: Runtime, name: str, batch: service_reports.Batch, started: float
) -> web.Response:
    """A SendGrid post acted on: 200 with each event's decision; each event counted, the
    post's latency observed once."""
    for _, kind in batch:
        runtime.metrics.webhooks.labels(name, kind, "200").inc()
    runtime.metrics.webhook_latency.labels(name).observe(max(time.monotonic() - started, 0.0))
    return respond(ReportDecisions(events=[_decision(done) for done, _ in batch]), status=200)


async def _receive(
    request: web.Request, runtime: Runtime, name: str, room: Reservation
) -> tuple[web.Response, str]:
    """Headers, body, signature, the message read, what it does committed; the answer and
    the report's kind for the metric."""
    checked = refusal_before_body(request, runtime, name, kind="mta")
    if not isinstance(checked, SignedHeaders):
        return checked, "-"
    try:
        body = await read_body(request, runtime.settings.webhooks, name, room)
        _verify(runtime, name, checked, body)
    except Refused as refused:
        return refused.response, "-"
    if len(body) > _PARSE_INLINE_BYTES:
        report = await asyncio.to_thread(reports.parse, body)
    else:
        report = reports.parse(body)
    label = f"report.{report.kind or 'other'}"
    try:
        decision = await runtime.intake.report(report)
    except db.UNAVAILABLE as error:
        log.error("database unavailable: report refused", source=name, error=type(error).__name__)
        return unavailable(), label
    return _answer(decision, 202), label


def _answer(decision: Decision, status: int) -> web.Response:
    return respond(_decision(decision), status=status)


def _decision(decision: Decision) -> ReportDecision:
    return ReportDecision(
        action=decision.action, reason=decision.reason, notice_id=decision.notice_id
    )


def _verify(runtime: Runtime, name: str, signed: SignedHeaders, body: bytes) -> None:
    try:
        runtime.verifiers[name].verify_bytes(signed, body, runtime.clock())
    except SignatureError as error:
        log.warning("report signature refused", source=name, reason=str(error))
        raise Refused(error_response(401, "bad_signature", str(error))) from None
