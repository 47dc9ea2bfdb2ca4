"""A relay with TLS and AUTH for the tests: certificates from a throwaway CA, and accounts."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


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
