"""Signed links in emails (itsdangerous): unguessable, and nothing to look up to trust them."""

from __future__ import annotations

import functools
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, Signer, URLSafeSerializer


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


MARKETING = "marketing"


@dataclass(frozen=True)
class Unsubscribe:
    account_id: str
    address: str
    # "marketing" (offers), or the category whose digests the subscriber wants no more.
    topic: str = MARKETING


class _KeptKeySigner(Signer):
    """itsdangerous's Signer, deriving its key once instead of once per link: a broadcast
    signs a link or two per subscriber. Its signatures are the same."""

    @functools.cached_property
    def _key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        return self._key if secret_key is None else super().derive_key(secret_key)


def _signing(serializer: URLSafeSerializer) -> functools.partial[str]:
    """`serializer.dumps`, with one signer kept (`dumps` builds a new one each call)."""
    return functools.partial(_dumps, serializer, serializer.make_signer())


def _dumps(serializer: URLSafeSerializer, signer: Signer, obj: object) -> str:
    return signer.sign(serializer.dump_payload(obj)).decode("ascii")


class Links:
    def __init__(self, secret: str, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._unsubscribe = URLSafeSerializer(
            secret, salt="notifyd.unsubscribe", signer=_KeptKeySigner
        )
        self._preferences = URLSafeSerializer(
            secret, salt="notifyd.preferences", signer=_KeptKeySigner
        )
        self._sign_unsubscribe = _signing(self._unsubscribe)
        self._sign_preferences = _signing(self._preferences)

    def unsubscribe_url(self, account_id: str, address: str, topic: str = MARKETING) -> str:
        # Marketing links stay two items long, as links already sent in emails are.
        items = [account_id, address] + ([] if topic == MARKETING else [topic])
        return f"{self.base_url}/v1/unsubscribe/{self._sign_unsubscribe(items)}"

    def read_unsubscribe(self, token: str) -> Unsubscribe | None:
        """What a token this daemon signed unsubscribes from, or None."""
        try:
            items = self._unsubscribe.loads(token)
        except BadSignature:
            return None
        if not isinstance(items, list) or len(items) not in (2, 3):
            return None
        return Unsubscribe(*(str(item) for item in items))

    def preferences_url(self, account_id: str) -> str:
        return f"{self.base_url}/v1/preferences/{self._sign_preferences(account_id)}"

    def read_preferences(self, token: str) -> str | None:
        """The account a preference-page token was signed for, or None."""
        try:
            account_id = self._preferences.loads(token)
        except BadSignature:
            return None
        return account_id if isinstance(account_id, str) else None
