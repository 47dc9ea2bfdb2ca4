"""The credentials of a sending service's bounce and complaint source ([sources.<name>] of
kind "sendgrid" or "ses"), checked when the config loads: a SendGrid verification key that
is not an ECDSA P-256 public key, or an SNS topic that is not an ARN, stops the start with
the reason rather than refusing every report later. http/service_reports.py and
http/sns.py use them to check what the services post; intake.py declares the keys.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER SubjectPublicKeyInfo of a P-256 (prime256v1)
    key, as its console shows it (a PEM block is taken too). ValueError saying why if not."""
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise ValueError(
            "is not a public key: paste the base64 verification key SendGrid shows "
            "(Settings > Mail Settings > Event Webhook > Signed Event Webhook)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        found = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise ValueError(f"is a {found} key; SendGrid signs with ECDSA on P-256 (secp256r1)")
    return key


def sendgrid_public_key(text: str) -> str:
    """The key as written, once it is known to be one SendGrid signs with."""
    sendgrid_key(text)
    return text


# Amazon SNS signs with a certificate it serves from https://sns.<region>.amazonaws.com/
# (.com.cn in China); a SigningCertURL on any other host is refused before it is fetched.
SNS_CERTIFICATE_HOSTS = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")


def topic_arn(value: str) -> str:
    if not _TOPIC_ARN.match(value):
        raise ValueError(
            f"is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>): {value!r}"
        )
    return value


def regular_expression(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"is not a regular expression: {error}") from None
    return value
