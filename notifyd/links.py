"""Signed links in emails (itsdangerous): unguessable, and nothing to look up to trust them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer


def link_secret(configured: str, state_dir: Path) -> str:
    """The configured secret, or one kept in the state folder so links survive restarts.
    (Several hosts must share a configured one: [daemon] link_secret.)"""
    if configured:
        return configured
    path = state_dir / "link-secret"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class Links:
    def __init__(self, secret: str, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._unsubscribe = URLSafeSerializer(secret, salt="notifyd.unsubscribe")

    def unsubscribe_url(self, account_id: str, address: str) -> str:
        token = self._unsubscribe.dumps([account_id, address])
        return f"{self.base_url}/v1/unsubscribe/{token}"

    def read_unsubscribe(self, token: str) -> tuple[str, str] | None:
        """(account_id, address) from a token this daemon signed, or None."""
        try:
            account_id, address = self._unsubscribe.loads(token)
        except (BadSignature, ValueError, TypeError):
            return None
        return str(account_id), str(address)
