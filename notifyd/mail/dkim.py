"""DKIM signatures (RFC 6376) on outgoing notices; the only dkimpy import."""

from __future__ import annotations

import dkim

from notifyd.settings import DkimSettings

# The headers a receiver checks; signing them keeps a relay from rewriting what matters.
SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"Content-Type",
    b"MIME-Version",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"Auto-Submitted",
)


class DkimError(Exception):
    """The key cannot be used; raised at start or reload, not at send time."""


class DkimSigner:
    def __init__(self, settings: DkimSettings) -> None:
        assert settings.private_key_file is not None
        self.selector = settings.selector.encode()
        self.domain = settings.domain.encode()
        try:
            self.key = settings.private_key_file.read_bytes()
        except OSError as error:
            raise DkimError(f"cannot read {settings.private_key_file}: {error}") from None
        # Signing a sample now turns a bad key into a config error instead of failed mail.
        try:
            self.sign(b"From: a@b.example\r\nSubject: x\r\n\r\nx\r\n")
        except dkim.DKIMException as error:
            raise DkimError(f"{settings.private_key_file}: {error}") from None

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header prepended."""
        present = {
            line.split(b":", 1)[0].strip().lower()
            for line in message.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            if b":" in line and not line[:1].isspace()
        }
        headers = [h for h in SIGNED_HEADERS if h.lower() in present]
        signature: bytes = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
        return signature + message
