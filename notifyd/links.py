"""Links in emails: opaque sealed tokens (no personal data), unguessable, and nothing to
look up to trust them. Each token carries when it was made; the pages (http/pages/) judge
its age against [links] and a revocation kept on the subscriber (storage/links.py).
The same keys make the bounce tokens of envelope senders (VERP, [smtp] bounce_domain):
delivery/send.py puts them in MAIL FROM, intake/reports.py reads them back.

Keys rotate: several link keys may be configured ([daemon] link_secret as an array); the
first seals, every one opens, so links sent under an older key open until they expire."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, Signer, URLSafeSerializer

KEY_FILE = "link-secret"


def link_secret(configured: str | Sequence[str], state_dir: Path) -> tuple[str, ...]:
    """The configured keys (the first seals), or one kept in the state folder so links
    survive restarts. (Several hosts must share configured ones: [daemon] link_secret.)"""
    keys = (configured,) if isinstance(configured, str) else tuple(configured)
    keys = tuple(key for key in keys if key)
    if keys:
        return keys
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return (path.read_text().strip(),)


MARKETING = "marketing"


@dataclass(frozen=True)
class Unsubscribe:
    account_id: str
    address: str
    # "marketing" (offers), or the category whose digests the subscriber wants no more.
    topic: str = MARKETING
    # When the link was made; None for links made before tokens carried it.
    issued: datetime | None = None
    # Made for a notice of the category `topic` (not a digest of it): the page says that
    # category's emails stop. Either way the category is turned off.
    from_notice: bool = False


@dataclass(frozen=True)
class PreferenceLink:
    account_id: str
    # When the link was made; None for links made before tokens carried it (the page
    # takes them for expired: their age is unknown).
    issued: datetime | None


class _KeptKeySigner(Signer):
    """itsdangerous's Signer, deriving its key once instead of once per link. Only reads
    links now: those already sent in emails before tokens were sealed."""

    @functools.cached_property
    def _key(self) -> bytes:
        return super().derive_key()

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        return self._key if secret_key is None else super().derive_key(secret_key)


def _derived_key(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


class _Sealer:
    """Opaque tokens: the items, encrypted and authenticated (AES-256-GCM-SIV), base64url.

    Sealed rather than stored: a broadcast to 100,000 subscribers makes 200,000 links
    (preferences and unsubscribe). Measured on the 2-core dev VM (CPU time, 5 runs of
    50,000 emails): sealing costs 8-10 us a link, 1.5-2 s for the broadcast, against 18-23
    us for the itsdangerous signing it replaces. A random id stored instead costs an INSERT
    per link: 224 us each in its own transaction, 16 us in batches of 50 (PostgreSQL with
    fsync off), 3 to 45 s of database time for the broadcast, plus a table to keep, expire
    and erase with the subscriber.

    The nonce is fixed, so the same items always seal to the same token. GCM-SIV is built
    for this (RFC 8452): a repeated nonce reveals only that two tokens carry the same items
    (the same account, address and millisecond), which the link does anyway.
    Items are padded to a multiple of 16 bytes so a token's length says little of theirs.
    """

    NONCE = bytes(12)

    def __init__(self, secret: str) -> None:
        self._aead = AESGCMSIV(_derived_key(secret, b"notifyd.links.sealed.v1"))

    def seal(self, page: bytes, items: list[str]) -> str:
        plain = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()
        plain += b" " * (-len(plain) % 16)  # JSON ignores trailing white space
        sealed = self._aead.encrypt(self.NONCE, plain, page)
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, page: bytes, token: str) -> list[str] | None:
        """The items sealed for `page`, or None for a token this daemon did not seal."""
        try:
            sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            items = json.loads(self._aead.decrypt(self.NONCE, sealed, page))
        except (ValueError, InvalidTag):  # binascii.Error and JSON errors are ValueErrors
            return None
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            return None
        return items


class _BounceTokens:
    """A notice's bounce token: its id encrypted (AES-256 of the id's one block, a
    pseudo-random permutation: the token tells nothing of the id, which the Message-ID
    carries anyway) and 4 bytes of HMAC-SHA256 over that, in lower-case base32 (relays
    may fold the case of a local part): 20 bytes, 32 characters. A forged token fails
    the tag (1 in 4 billion passes it), and then decrypts to no notice.

    Not sealed like links (AES-GCM-SIV with a 16-byte tag and padding: 43 characters and
    more): an envelope address is short, and every message carries one."""

    def __init__(self, secret: str) -> None:
        key = _derived_key(secret, b"notifyd.bounces.v1")
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 one block
        self._mac_key = _derived_key(secret, b"notifyd.bounces.mac.v1")

    def make(self, notice_id: UUID) -> str:
        block = self._cipher.encryptor().update(notice_id.bytes)
        tag = hmac.digest(self._mac_key, block, "sha256")[:4]
        return base64.b32encode(block + tag).decode("ascii").lower()

    def read(self, token: str) -> UUID | None:
        try:
            raw = base64.b32decode(token.upper())
        except ValueError:  # binascii.Error
            return None
        if len(raw) != 20:
            return None
        block, tag = raw[:16], raw[16:]
        expected = hmac.digest(self._mac_key, block, "sha256")[:4]
        if not hmac.compare_digest(expected, tag):
            return None
        return UUID(bytes=self._cipher.decryptor().update(block))


# What a token is sealed for (its associated data): a token of one page opens on no other.
# Tokens made before links carried their time were sealed for the first two.
UNSUBSCRIBE = b"unsubscribe"
PREFERENCES = b"preferences"
UNSUBSCRIBE_DATED = b"unsubscribe.dated"
PREFERENCES_DATED = b"preferences.dated"
# A notice's one-click link that turns its category off (the same items as a dated
# unsubscribe link, sealed for its own page: its words are the category's, not a digest's).
CATEGORY_OFF = b"unsubscribe.category"


class Links:
    """Makes and reads the links of emails with the configured keys: the first seals and
    makes form tokens, every one opens (key rotation)."""

    def __init__(self, secret: str | Sequence[str], base_url: str) -> None:
        keys = (secret,) if isinstance(secret, str) else tuple(secret)
        if not keys:
            raise ValueError("at least one link key is needed")
        self.base_url = base_url.rstrip("/")
        self._sealers = [_Sealer(key) for key in keys]
        self._form_keys = [_derived_key(key, b"notifyd.links.form.v1") for key in keys]
        self._bounce_tokens = [_BounceTokens(key) for key in keys]
        # Links sent before tokens were sealed: readable base64 of the account and address,
        # signed. Mail providers and subscribers act on old messages, so they still open.
        self._old_unsubscribe = [
            URLSafeSerializer(key, salt="notifyd.unsubscribe", signer=_KeptKeySigner)
            for key in keys
        ]
        self._old_preferences = [
            URLSafeSerializer(key, salt="notifyd.rules.preferences", signer=_KeptKeySigner)
            for key in keys
        ]

    def _open(self, page: bytes, token: str) -> list[str] | None:
        for sealer in self._sealers:
            items = sealer.open(page, token)
            if items is not None:
                return items
        return None

    def unsubscribe_url(
        self, account_id: str, address: str, topic: str = MARKETING, *, issued: datetime
    ) -> str:
        items = [account_id, address, topic, _stamp(issued)]
        return f"{self.base_url}/v1/unsubscribe/{self._sealers[0].seal(UNSUBSCRIBE_DATED, items)}"

    def category_off_url(
        self, account_id: str, address: str, category: str, *, issued: datetime
    ) -> str:
        """The one-click link of a notice of `category` (RFC 8058): it turns the category
        off for the account. Read by `read_unsubscribe`, under the same lifetime."""
        items = [account_id, address, category, _stamp(issued)]
        return f"{self.base_url}/v1/unsubscribe/{self._sealers[0].seal(CATEGORY_OFF, items)}"

    def read_unsubscribe(self, token: str) -> Unsubscribe | None:
        """What a token made with one of the keys unsubscribes from, or None."""
        if _is_old(token):
            items = _old_items(self._old_unsubscribe, token)
        else:
            for page in (UNSUBSCRIBE_DATED, CATEGORY_OFF):
                dated = self._open(page, token)
                if dated is not None and len(dated) == 4 and (issued := _moment(dated[3])):
                    return Unsubscribe(
                        dated[0], dated[1], dated[2], issued, from_notice=page == CATEGORY_OFF
                    )
            items = self._open(UNSUBSCRIBE, token)
        if not isinstance(items, list) or len(items) not in (2, 3):
            return None
        topic = str(items[2]) if len(items) == 3 else MARKETING
        return Unsubscribe(str(items[0]), str(items[1]), topic)

    def preferences_url(self, account_id: str, *, issued: datetime) -> str:
        token = self._sealers[0].seal(PREFERENCES_DATED, [account_id, _stamp(issued)])
        return f"{self.base_url}/v1/preferences/{token}"

    def read_preferences(self, token: str) -> PreferenceLink | None:
        """The account a preference-page token made with one of the keys was made for, and
        when; None for any other text."""
        if _is_old(token):
            account_id = _old_items(self._old_preferences, token)
            return PreferenceLink(account_id, None) if isinstance(account_id, str) else None
        dated = self._open(PREFERENCES_DATED, token)
        if dated is not None and len(dated) == 2 and (issued := _moment(dated[1])):
            return PreferenceLink(dated[0], issued)
        items = self._open(PREFERENCES, token)
        return PreferenceLink(items[0], None) if items is not None and len(items) == 1 else None

    def form_token(self, link_token: str) -> str:
        """The token the page of a link puts in its form: a POST carrying it came from that
        page (another site cannot read it), for that link only."""
        return _form_mac(self._form_keys[0], link_token)

    def form_token_valid(self, link_token: str, given: str) -> bool:
        # Any key: a page shown just before a rotation still saves just after it.
        return any(
            hmac.compare_digest(_form_mac(key, link_token).encode(), given.encode())
            for key in self._form_keys
        )

    def bounce_token(self, notice_id: UUID) -> str:
        """The token of a notice's envelope sender (VERP)."""
        return self._bounce_tokens[0].make(notice_id)

    def bounced_notice(self, token: str) -> UUID | None:
        """The notice whose envelope sender carried `token` (any key: a bounce may come
        days after a rotation), or None for a token no key made."""
        for tokens in self._bounce_tokens:
            notice_id = tokens.read(token)
            if notice_id is not None:
                return notice_id
        return None


def _form_mac(key: bytes, link_token: str) -> str:
    mac = hmac.new(key, link_token.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def _old_items(serializers: list[URLSafeSerializer], token: str) -> object:
    for serializer in serializers:
        try:
            return serializer.loads(token)
        except BadSignature:
            continue
    return None


def _stamp(moment: datetime) -> str:
    """Milliseconds since the epoch: a revocation (storage/links.py, kept to the
    millisecond) is ordered against the links made before and after it."""
    return str(int(moment.timestamp() * 1000))


def _moment(stamp: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(stamp) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _is_old(token: str) -> bool:
    # itsdangerous's tokens are payload.signature; sealed ones are base64url, with no dot.
    return "." in token
