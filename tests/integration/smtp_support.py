"""A relay with TLS and AUTH for the tests: certificates from a throwaway CA, and accounts;
and a DKIM key to sign with."""

from __future__ import annotations

import ssl
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import SmtpSink, smtp_server


def certificates(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A private CA, a server certificate for 127.0.0.1 and the CA's PEM for the client."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    ca_file = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_context, ca_file


class Accounts:
    def __init__(self, username: str, password: str) -> None:
        self.expected = (username.encode(), password.encode())
        self.logins: list[str] = []

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and (data.login, data.password) == self.expected:
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def auth_relay(
    tmp_path: Path, password: str
) -> tuple[AbstractAsyncContextManager[SmtpSink], Accounts, Path]:
    """A relay demanding STARTTLS then AUTH as notifyd/`password`, and its CA file."""
    server_context, ca_file = certificates(tmp_path)
    accounts = Accounts("notifyd", password)
    relay = smtp_server(
        SmtpSink(),
        tls_context=server_context,
        require_starttls=True,
        auth_required=True,
        authenticator=accounts,
    )
    return relay, accounts, ca_file


def dkim_key(tmp_path: Path) -> Path:
    """A fresh RSA key in PEM, as [dkim] private_key_file takes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path
