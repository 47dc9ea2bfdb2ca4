"""A sending service's bounce and complaint webhook, POST /v1/reports/{source} of a source of
kind "postmark", "mailgun" or "ses": authenticated the service's own way, read into a `Report`,
handed to the intake; 200 with what was done, or why nothing was (a service retries
anything else, so a report of nothing of ours is answered 200 too).

How each service authenticates, as it documents it:
- Postmark signs nothing; its webhook URL carries HTTP basic auth credentials
  (https://postmarkapp.com/email-webhooks: "secure them using HTTP Auth"), checked here
  from the Authorization header before the body is read.
- Mailgun puts `signature: {timestamp, token, signature}` in the body: the hex HMAC-SHA256
  of timestamp + token under the webhook signing key
  (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks);
  a timestamp further from now than [webhooks] timestamp_tolerance_seconds is refused too,
  so a captured post cannot be replayed later.
- SendGrid's Signed Event Webhook signs timestamp + body with ECDSA (P-256, SHA-256):
  `X-Twilio-Email-Event-Webhook-Signature` (base64 DER), `...-Timestamp`; checked against
  the source's public keys before the JSON is parsed, the timestamp as Mailgun's
  (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features).
  A post is a batch of events: each is a report, acted on in turn (`Batch`).
- Amazon SES publishes to an SNS topic, and SNS posts (as text/plain) a message it signs
  with the key of a certificate it serves; sns.py checks it and confirms a subscription.

Neighbours: reports.py owns the route and hands these sources here; webhooks.py reads the
body within its limits; mail/service_reports.py reads the payloads; intake/reports.py acts.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import json
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from notifyd.http import sns
from notifyd.http.bodies import Reservation
from notifyd.http.errors import error_response
from notifyd.http.runtime import Runtime
from notifyd.http.webhooks import Refused, allowed_sender, read_body
from notifyd.intake.reports import Decision
from notifyd.mail import service_reports
from notifyd.mail.reports import Report
from notifyd.settings import Settings, SourceSettings
from notifyd.settings.service_credentials import sendgrid_key
from notifyd.storage import db

log = structlog.get_logger(__name__)

# What a SendGrid post did: each event's decision and its label for the metric.
Batch = list[tuple[Decision, str]]
_SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
_SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"

_REALM = 'Basic realm="notifyd", charset="UTF-8"'
# SNS posts its JSON as text/plain; charset=UTF-8.
_MEDIA_TYPES = {"ses": ("application/json", "text/plain")}


async def receive(
    request: web.Request, runtime: Runtime, name: str, room: Reservation
) -> tuple[web.Response | Decision | Batch, str]:
    """Sender, credentials, body, payload, what it does committed: what was done (reports.py
    answers it 200), or the refusal; and the report's kind for the metric."""
    source = runtime.settings.sources[name]
    try:
        _check_sender(request, source, name)
        if source.kind == "postmark":
            _check_basic_auth(request, source, name)
        signed = _sendgrid_headers(request, runtime, name) if source.kind == "sendgrid" else None
        expected = _MEDIA_TYPES.get(source.kind, ("application/json",))
        if "Content-Type" not in request.headers or request.content_type not in expected:
            given = request.content_type if "Content-Type" in request.headers else "none"
            raise Refused(
                error_response(
                    415, "unsupported_media_type", f"expected {expected[0]}, got {given}"
                )
            )
        body = await read_body(request, runtime.settings.webhooks, name, room)
        if signed is not None:
            _check_sendgrid(signed, body, source, name)
            return await _sendgrid(runtime, name, _events(body)), "-"
        payload = _json(body)
        if source.kind == "mailgun":
            _check_mailgun(payload, source, runtime, name)
        if source.kind == "ses":
            read = await _ses(payload, source, runtime, name)
            if isinstance(read, Decision):
                return read, "sns.confirmation"
            report = read
        else:
            report = _report(source.kind, payload, runtime.settings)
    except Refused as refused:
        return refused.response, "-"
    label = f"report.{report.kind or 'other'}"
    try:
        decision = await runtime.intake.report(report)
    except db.UNAVAILABLE as error:
        log.error("database unavailable: report refused", source=name, error=type(error).__name__)
        return unavailable(), label
    return decision, label


def unavailable() -> web.Response:
    """The database cannot take a report now: the sender posts it again."""
    return error_response(
        503,
        "unavailable",
        "the report could not be stored now; retry later",
        headers={"Retry-After": "5"},
    )


def _report(kind: str, payload: Mapping[str, Any], settings: Settings) -> Report:
    if kind == "postmark":
        return service_reports.postmark(payload)
    return service_reports.mailgun(payload, settings.smtp.bounce_domains)


def _check_sender(request: web.Request, source: SourceSettings, name: str) -> None:
    if source.allow_from is not None and not allowed_sender(request.remote, source.allow_from):
        log.warning("report from outside the allowlist", source=name, remote=request.remote)
        raise Refused(
            error_response(403, "forbidden", f"sender address is not allowed for source {name!r}")
        )


def _refused(name: str, reason: str, headers: Mapping[str, str] | None = None) -> Refused:
    log.warning("report signature refused", source=name, reason=reason)
    return Refused(error_response(401, "bad_signature", reason, headers=headers))


def _check_basic_auth(request: web.Request, source: SourceSettings, name: str) -> None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        user, colon, password = (
            base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, ValueError):
        user, colon, password = "", "", ""
    if scheme.lower() != "basic" or not colon:
        raise _refused(name, "no basic auth credentials", {"WWW-Authenticate": _REALM})
    # Both compared whatever the first gives: the time taken says nothing of which is wrong.
    same_user = hmac.compare_digest(user.encode(), source.user.encode())
    same_password = hmac.compare_digest(password.encode(), source.password.encode())
    if not (same_user and same_password):
        raise _refused(name, "wrong basic auth credentials", {"WWW-Authenticate": _REALM})


def _check_mailgun(
    payload: Mapping[str, Any], source: SourceSettings, runtime: Runtime, name: str
) -> None:
    signature = payload.get("signature")
    if not isinstance(signature, Mapping):
        raise _refused(name, "no signature object in the body")
    timestamp, token, given = (
        str(signature.get(key, "")) for key in ("timestamp", "token", "signature")
    )
    if not timestamp.isdigit() or not token or not given:
        raise _refused(name, "signature needs timestamp, token and signature")
    _check_fresh(timestamp, runtime, name)
    signed = (timestamp + token).encode()
    for key in source.signing_keys:
        expected = hmac.new(key.encode(), signed, "sha256").hexdigest()
        if hmac.compare_digest(expected, given.lower()):
            return
    raise _refused(name, "no signature matches a signing key of this source")


def _check_fresh(timestamp: str, runtime: Runtime, name: str) -> None:
    """A signed timestamp further from now than the tolerance: a replay, refused."""
    drift = abs(runtime.clock().timestamp() - int(timestamp))
    tolerance = runtime.settings.webhooks.timestamp_tolerance_seconds
    if drift > tolerance:
        raise _refused(
            name, f"signature timestamp is {int(drift)} s from now; at most {tolerance} s allowed"
        )


def _sendgrid_headers(request: web.Request, runtime: Runtime, name: str) -> tuple[str, bytes]:
    """SendGrid's timestamp (fresh) and signature, checked before the body is read."""
    timestamp = request.headers.get(_SENDGRID_TIMESTAMP, "").strip()
    encoded = request.headers.get(_SENDGRID_SIGNATURE, "").strip()
    if not timestamp.isdigit() or not encoded:
        raise _refused(name, f"needs {_SENDGRID_SIGNATURE} and {_SENDGRID_TIMESTAMP}")
    _check_fresh(timestamp, runtime, name)
    try:
        return timestamp, base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _refused(name, "the signature is not base64") from None


def _check_sendgrid(
    signed: tuple[str, bytes], body: bytes, source: SourceSettings, name: str
) -> None:
    timestamp, signature = signed
    for text in source.public_keys:
        try:
            _sendgrid_key(text).verify(
                signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            continue
        return
    raise _refused(name, "no signature matches a public key of this source")


@functools.lru_cache(maxsize=16)
def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    # Checked when the config loaded; loaded once per key, not per post.
    return sendgrid_key(text)


async def _sendgrid(runtime: Runtime, name: str, events: list[Any]) -> web.Response | Batch:
    """Each event of the post acted on in turn, each committed on its own: a post taken
    again after a 503 finds the ones done already done (notice_failed, already_suppressed)."""
    done: Batch = []
    for event in events:
        report = service_reports.sendgrid(event)
        try:
            decision = await runtime.intake.report(report)
        except db.UNAVAILABLE as error:
            log.error(
                "database unavailable: report refused", source=name, error=type(error).__name__
            )
            return unavailable()
        done.append((decision, f"report.{report.kind or 'other'}"))
    return done


def _events(body: bytes) -> list[Any]:
    events = _parsed(body)
    if not isinstance(events, list):
        raise Refused(error_response(400, "malformed_json", "the body is not a JSON array"))
    return events


async def _ses(
    payload: Mapping[str, Any], source: SourceSettings, runtime: Runtime, name: str
) -> Report | Decision:
    """An SNS message checked; a notification's SES report, or what a confirmation did."""
    try:
        kind = await sns.verify(
            payload,
            source,
            runtime.sns_certificates,
            runtime.clock(),
            runtime.settings.webhooks.timestamp_tolerance_seconds,
        )
        if kind == "SubscriptionConfirmation":
            await sns.confirm(payload, source, name)
            return Decision("nothing", "subscription_confirmed")
    except sns.SnsRefused as refused:
        raise _refused(name, str(refused)) from None
    except sns.SnsUnreachable as unreachable:
        raise Refused(
            error_response(503, "unavailable", str(unreachable), headers={"Retry-After": "30"})
        ) from None
    if kind == "UnsubscribeConfirmation":
        log.warning("sns subscription ended", source=name, topic=payload.get("TopicArn"))
        return Decision("nothing", "unsubscribed")
    message = str(payload.get("Message", ""))
    return service_reports.ses(message, runtime.settings.smtp.bounce_domains)


def _json(body: bytes) -> Mapping[str, Any]:
    payload = _parsed(body)
    if not isinstance(payload, dict):
        raise Refused(error_response(400, "malformed_json", "the body is not a JSON object"))
    return payload


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(error_response(400, "malformed_json", "the body is not JSON")) from None
