"""SendGrid's Signed Event Webhook for the tests: a P-256 key pair made here (SendGrid keeps
its private key and shows the public one, base64 DER), events as its Event Webhook posts
them, and a post signed as SendGrid signs it (ECDSA SHA-256 over timestamp + body, the
signature base64 DER in X-Twilio-Email-Event-Webhook-Signature)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import structlog
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from tests.conftest import Running
from tests.integration.report_support import ANA

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def new_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(curve or ec.SECP256R1())


def public_text(key: PrivateKeyTypes) -> str:
    """The verification key as SendGrid's console shows it."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def event(name: str, smtp_id: str, **more: Any) -> dict[str, Any]:
    """One event of the array SendGrid posts
    (twilio.com/docs/sendgrid/for-developers/tracking-events/event)."""
    return {
        "email": ANA,
        "timestamp": int(time.time()),
        "smtp-id": smtp_id,
        "event": name,
        "category": [],
        "sg_event_id": f"sg-event-{name}",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **more,
    }


def signed(key: ec.EllipticCurvePrivateKey, body: bytes, at: float | None = None) -> dict[str, str]:
    """The headers SendGrid adds to a post of `body`."""
    timestamp = str(int(at if at is not None else time.time()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: timestamp}


async def post_events(
    daemon: Running, source: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """POST a batch as SendGrid does; the status, the answer and the daemon's log lines."""
    with structlog.testing.capture_logs() as logs:
        async with daemon.session.post(
            f"{daemon.base_url}/v1/reports/{source}",
            data=body,
            headers={"Content-Type": "application/json", **headers},
        ) as response:
            answer = await response.json()
            status = response.status
    return status, answer, [dict(entry) for entry in logs]


def batch(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()
