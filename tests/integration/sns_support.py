"""Amazon SNS for the tests: a stand-in for SNS's certificate host (a local HTTPS server, its
certificate from a throwaway CA the daemon is told to trust) that serves the signing
certificate and a SubscribeURL, counting each fetch; messages signed as SNS signs them
(https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html) with that
certificate's key; SES notifications as SES writes them
(https://docs.aws.amazon.com/ses/latest/dg/notification-contents.html)."""

from __future__ import annotations

import base64
import json
import ssl
import tomllib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifyd.http.sns import string_to_sign
from tests.integration.send_support import snippet

TOPIC = "arn:aws:sns:eu-central-1:123456789012:notifyd-ses"
OTHER_TOPIC = "arn:aws:sns:eu-central-1:210987654321:someone-else"
# The daemon's certificate_hosts in the tests: SNS's host stands in as "localhost"; the
# same server reached as 127.0.0.1 is "another host".
HOST_PATTERN = r"^localhost$"


@dataclass
class FakeSns:
    port: int
    ca_file: Path
    key: rsa.RSAPrivateKey
    fetches: Counter[str] = field(default_factory=Counter)

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    def signed(self, message: dict[str, Any], version: str = "2", **more: Any) -> dict[str, Any]:
        """`message` with SNS's envelope fields, signed by the certificate's key."""
        body = {
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "Timestamp": _sns_time(datetime.now(UTC)),
            "TopicArn": TOPIC,
            "SignatureVersion": version,
            "SigningCertURL": self.url("/SimpleNotificationService-test.pem"),
            **message,
            **more,
        }
        # SignatureVersion 1 is SHA1 as SNS defines it, what a topic uses unless told otherwise.
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
        signed = string_to_sign(body, body["Type"])
        signature = self.key.sign(signed, padding.PKCS1v15(), digest)
        return {**body, "Signature": base64.b64encode(signature).decode()}

    def notification(self, ses: dict[str, Any], **more: Any) -> dict[str, Any]:
        return self.signed({"Type": "Notification", "Message": json.dumps(ses)}, **more)

    def confirmation(self, **more: Any) -> dict[str, Any]:
        token = "2336412f37fb687f5d51e6e2425f004aed"
        return self.signed(
            {
                "Type": "SubscriptionConfirmation",
                "Token": token,
                "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
                "SubscribeURL": self.url(f"/?Action=ConfirmSubscription&Token={token}"),
            },
            **more,
        )


@asynccontextmanager
async def fake_sns(tmp_path: Path) -> AsyncIterator[FakeSns]:
    """SNS's certificate host on a local port, serving over TLS from a throwaway CA."""
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    ca_file = tmp_path / "sns-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    # SNS's signing certificate: another of the CA's, its key signing the messages.
    signer = ca.issue_cert("sns.test", key_type=trustme.KeyType.RSA)
    key = serialization.load_pem_private_key(signer.private_key_pem.bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    certificate = signer.cert_chain_pems[0].bytes()
    fetches: Counter[str] = Counter()

    async def certificate_file(request: web.Request) -> web.Response:
        fetches[request.path] += 1
        return web.Response(body=certificate, content_type="application/x-pem-file")

    async def subscribe_url(request: web.Request) -> web.Response:
        fetches[request.path_qs] += 1
        return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")

    app = web.Application()
    app.router.add_get("/SimpleNotificationService-test.pem", certificate_file)
    app.router.add_get("/", subscribe_url)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield FakeSns(port, ca_file, key, fetches)
    finally:
        await runner.cleanup()


def ses_source(sns: FakeSns) -> dict[str, Any]:
    """[sources.ses] as docs/integrations.md gives it, told to take the fake SNS's
    certificate host (its topic is the doc's)."""
    documented = tomllib.loads(snippet("ses-source"))["sources"]["ses"]
    assert documented["topic_arns"] == [TOPIC]
    return {
        **documented,
        "certificate_hosts": HOST_PATTERN,
        "certificate_ca_file": str(sns.ca_file),
    }


def ses_bounce(
    bounce_type: str, message_id: str, recipients: list[str], status: str = "5.1.1"
) -> dict[str, Any]:
    """An SES bounce notification with the original headers included."""
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": status,
                    "diagnosticCode": f"smtp; 550 {status} <{address}>... User unknown",
                }
                for address in recipients
            ],
            "timestamp": _sns_time(datetime.now(UTC)),
            "feedbackId": "0100017f-0000-feedback",
        },
        "mail": _mail(message_id, recipients),
    }


def ses_event(event: str, message_id: str, recipients: list[str]) -> dict[str, Any]:
    """A complaint or a delivery as a configuration set's event destination writes it
    (`eventType`), its original headers given only as commonHeaders."""
    mail = _mail(message_id, recipients)
    del mail["headers"]
    details = {"complainedRecipients": [{"emailAddress": a} for a in recipients]}
    if event == "Complaint":
        details["complaintFeedbackType"] = "abuse"  # type: ignore[assignment]
    return {"eventType": event, event.lower(): details, "mail": mail}


def _mail(message_id: str, recipients: list[str]) -> dict[str, Any]:
    return {
        "timestamp": _sns_time(datetime.now(UTC) - timedelta(seconds=30)),
        "source": "notificari@voip.example",
        # SES's own id, and the Message-ID SES put on the message in place of ours.
        "messageId": "0100017f2c8a0a1b-ses-own-id-000000",
        "destination": recipients,
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "notificari@voip.example"},
            {"name": "Message-ID", "value": message_id},
        ],
        "commonHeaders": {"from": ["notificari@voip.example"], "messageId": message_id},
    }


def _sns_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
