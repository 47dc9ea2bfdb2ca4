"""Standard Webhooks verification: several valid secrets (rotation), configurable tolerance.

The signature itself is computed by the `standardwebhooks` package (`Webhook.sign`), so we
sign exactly as every sender's library does. We do not call its `verify()`: its timestamp
tolerance is fixed at 5 minutes (ours is configurable, SPEC §3), it tries one secret per
call and re-parses the body, and it raises on a malformed header instead of refusing it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook


class SignatureError(Exception):
    """Why a webhook is refused with 401; the message is safe to return to the sender."""


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str
    timestamp: int
    signatures: tuple[bytes, ...]


def read_headers(headers: Mapping[str, str]) -> SignedHeaders:
    webhook_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    raw_signature = headers.get("webhook-signature", "")
    missing = [
        name
        for name, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", raw_timestamp),
            ("webhook-signature", raw_signature),
        )
        if not value
    ]
    if missing:
        raise SignatureError(f"missing header: {', '.join(missing)}")
    if len(webhook_id) > 256 or not webhook_id.isprintable():
        raise SignatureError("webhook-id must be printable and at most 256 characters")
    # ASCII and bounded: str.isdigit() also accepts "²" and int() refuses > 4300 digits.
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12):
        raise SignatureError("webhook-timestamp must be Unix seconds")
    signatures = []
    for item in raw_signature.split():
        version, _, encoded = item.partition(",")
        if version != "v1":
            continue  # other schemes (v1a, asymmetric) are not ours to check
        try:
            signatures.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not signatures:
        raise SignatureError("webhook-signature has no v1 signature")
    return SignedHeaders(webhook_id, int(raw_timestamp), tuple(signatures))


class Verifier:
    """Verifies bodies for one source against all of its current secrets."""

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int) -> None:
        self._signers = [Webhook(secret) for secret in secrets]
        # The same keys, for bodies that are bytes rather than UTF-8 text (an 8-bit
        # bounce report): the library signs only text.
        self._keys = [_key(secret) for secret in secrets]
        self.tolerance_seconds = tolerance_seconds

    def check_timestamp(self, signed: SignedHeaders, now: datetime) -> None:
        """Refuse a stale or future timestamp: needs only the headers, not the body."""
        drift = abs(now.timestamp() - signed.timestamp)
        if drift > self.tolerance_seconds:
            raise SignatureError(
                f"webhook-timestamp is {int(drift)} s from now; "
                f"at most {self.tolerance_seconds} s allowed"
            )

    def verify(self, signed: SignedHeaders, body: str, now: datetime) -> None:
        self.check_timestamp(signed, now)
        moment = datetime.fromtimestamp(signed.timestamp, tz=UTC)
        for signer in self._signers:
            expected = signer.sign(signed.webhook_id, moment, body).partition(",")[2]
            expected_bytes = base64.b64decode(expected)
            if any(hmac.compare_digest(expected_bytes, given) for given in signed.signatures):
                return
        raise SignatureError("no signature matches a secret of this source")

    def verify_bytes(self, signed: SignedHeaders, body: bytes, now: datetime) -> None:
        """`verify` for a body of bytes: Standard Webhooks' HMAC-SHA256 over
        `id.timestamp.body`, here over the bytes as they came (which for UTF-8 text is
        what the library signs: tests/unit/test_signatures.py)."""
        self.check_timestamp(signed, now)
        signed_part = f"{signed.webhook_id}.{signed.timestamp}.".encode() + body
        for key in self._keys:
            expected = hmac.digest(key, signed_part, "sha256")
            if any(hmac.compare_digest(expected, given) for given in signed.signatures):
                return
        raise SignatureError("no signature matches a secret of this source")


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))
