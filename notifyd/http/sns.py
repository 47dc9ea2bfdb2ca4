"""Amazon SNS's HTTPS delivery, for a source of kind "ses": the message checked as SNS signs
it, and a subscription confirmed by fetching its SubscribeURL. What the message carries
(SES's notification) is read by mail/service_reports.py.

How SNS signs (https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html):
the string to sign is "Key\\nvalue\\n" for named fields in a fixed order (Notification:
Message, MessageId, Subject if present, Timestamp, TopicArn, Type; a confirmation:
Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type); `Signature` is its
base64 RSA PKCS#1 v1.5 signature, SHA1 for SignatureVersion "1", SHA256 for "2", by the
key of the X.509 certificate at `SigningCertURL`. Anyone can put any URL there, so the
URL must be https on an SNS host ([sources.<name>] certificate_hosts) before it is
fetched; and anyone can make a topic that SNS signs, so the TopicArn must be one of the
source's. A Timestamp further from now than [webhooks] timestamp_tolerance_seconds is a
replay. Certificates are kept by URL (SNS names a new URL when it changes its key).

Neighbours: http/service_reports.py calls these and turns their errors into answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from yarl import URL

from notifyd.settings import SourceSettings

log = structlog.get_logger(__name__)

CONFIRMATIONS = ("SubscriptionConfirmation", "UnsubscribeConfirmation")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    **dict.fromkeys(CONFIRMATIONS, _CONFIRMATION_FIELDS),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# A PEM certificate is 2-3 KiB; anything much larger is not one.
_MAX_CERTIFICATE_BYTES = 64 * 1024
_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Certificates kept: SNS has one per region at a time, a few while one is rotated.
_KEPT = 32


class SnsRefused(Exception):
    """Not a message of SNS for this source (401); the reason names no address."""


class SnsUnreachable(Exception):
    """SNS's certificate or SubscribeURL could not be fetched now (503: SNS posts again)."""


@dataclass
class Certificates:
    """SNS's signing keys by certificate URL, fetched once each (the last _KEPT)."""

    keys: OrderedDict[str, rsa.RSAPublicKey] = field(default_factory=OrderedDict)
    # SNS posts in parallel: the messages that come together after a start wait for one
    # fetch rather than each making its own.
    _fetching: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key(self, url: str, source: SourceSettings) -> rsa.RSAPublicKey:
        if url not in self.keys:
            async with self._fetching:
                if url not in self.keys:
                    self._keep(url, await _public_key(url, source))
        self.keys.move_to_end(url)
        return self.keys[url]

    def _keep(self, url: str, public: rsa.RSAPublicKey) -> None:
        self.keys[url] = public
        while len(self.keys) > _KEPT:
            self.keys.popitem(last=False)


async def _public_key(url: str, source: SourceSettings) -> rsa.RSAPublicKey:
    """The key of the certificate at an SNS URL (checked by the caller)."""
    pem = await _fetch(url, source, _MAX_CERTIFICATE_BYTES)
    try:
        public = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        raise SnsRefused("SigningCertURL is not a PEM certificate") from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise SnsRefused("SigningCertURL's certificate has no RSA key")
    return public


async def verify(
    message: Mapping[str, Any],
    source: SourceSettings,
    certificates: Certificates,
    now: datetime,
    tolerance: int,
) -> str:
    """The message's Type once it is SNS's, of one of the source's topics, and fresh;
    raises SnsRefused (or SnsUnreachable while the certificate cannot be fetched)."""
    kind = str(message.get("Type", ""))
    if kind not in _SIGNED_FIELDS:
        raise SnsRefused("not an SNS message (Type)")
    if message.get("TopicArn") not in source.topic_arns:
        raise SnsRefused("TopicArn is not one of this source's topic_arns")
    digest = _HASHES.get(str(message.get("SignatureVersion", "")))
    if digest is None:
        raise SnsRefused("SignatureVersion is neither 1 nor 2")
    cert_url = str(message.get("SigningCertURL", ""))
    check_url(cert_url, source, "SigningCertURL")
    _check_timestamp(message.get("Timestamp"), now, tolerance)
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except (binascii.Error, ValueError):
        raise SnsRefused("Signature is not base64") from None
    public = await certificates.key(cert_url, source)
    try:
        public.verify(signature, string_to_sign(message, kind), padding.PKCS1v15(), digest())
    except InvalidSignature:
        raise SnsRefused("the signature does not match SigningCertURL's key") from None
    return kind


def string_to_sign(message: Mapping[str, Any], kind: str) -> bytes:
    """What SNS signs: each named field present, as "Key\\nvalue\\n", in SNS's order."""
    return "".join(
        f"{key}\n{message[key]}\n" for key in _SIGNED_FIELDS[kind] if message.get(key) is not None
    ).encode()


def check_url(url: str, source: SourceSettings, what: str) -> None:
    """An https URL on a host of the source's certificate_hosts, else SnsRefused."""
    try:
        parsed = URL(url)
    except ValueError:
        parsed = URL()
    host = parsed.host or ""
    if parsed.scheme != "https" or parsed.user or not re.fullmatch(source.certificate_hosts, host):
        raise SnsRefused(f"{what} is not an https URL on an SNS host")


async def confirm(message: Mapping[str, Any], source: SourceSettings, name: str) -> None:
    """Confirm the subscription as SNS asks: GET its SubscribeURL (on an SNS host)."""
    url = str(message.get("SubscribeURL", ""))
    check_url(url, source, "SubscribeURL")
    await _fetch(url, source, _MAX_CERTIFICATE_BYTES)
    log.info("sns subscription confirmed", source=name, topic=message.get("TopicArn"))


def _check_timestamp(value: object, now: datetime, tolerance: int) -> None:
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        raise SnsRefused("Timestamp is not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        raise SnsRefused("Timestamp has no time zone")
    drift = abs((now - stamp).total_seconds())
    if drift > tolerance:
        raise SnsRefused(f"Timestamp is {int(drift)} s from now; at most {tolerance} s allowed")


async def _fetch(url: str, source: SourceSettings, limit: int) -> bytes:
    """GET an SNS URL: no redirect (it could leave SNS's hosts), a timeout, a size cap."""
    context = ssl.create_default_context(
        cafile=str(source.certificate_ca_file) if source.certificate_ca_file else None
    )
    try:
        async with (
            aiohttp.ClientSession(
                timeout=_FETCH_TIMEOUT, connector=aiohttp.TCPConnector(ssl=context)
            ) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            status, body = response.status, b""
            async for chunk in response.content.iter_chunked(8192):
                body += chunk
                if len(body) > limit:
                    break
    except (aiohttp.ClientError, TimeoutError) as error:
        log.warning("sns fetch failed", host=URL(url).host, error=type(error).__name__)
        raise SnsUnreachable(f"could not fetch from {URL(url).host}") from None
    if status != 200:
        log.warning("sns fetch failed", host=URL(url).host, status=status)
        raise SnsUnreachable(f"{URL(url).host} answered {status}")
    if len(body) > limit:
        raise SnsRefused("SNS's answer is over the size limit")
    return body
