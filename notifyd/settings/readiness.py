"""What `notifyd check-config` warns about and `--strict` refuses: a file that works but is
not ready for subscribers. Nothing here stops the daemon: a developer's machine runs with all
of it."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from urllib.parse import urlsplit

from notifyd.settings.root import Settings

_WEBHOOK_KEY_BYTES = 24  # Standard Webhooks: 24 to 64 random bytes
_LINK_SECRET_CHARACTERS = 32  # secrets.token_urlsafe(32), what notifyd generates, is 43
# Digests of tokens anyone would try first; "test" is the example in docs/admin-api.md.
_GUESSABLE_TOKENS = frozenset(
    hashlib.sha256(word.encode()).digest()
    for word in ("", "test", "token", "secret", "changeme", "password", "admin", "ops")
)
_PLACEHOLDER_WORDS = ("replace", "change", "example", "secret", "placeholder", "xxx")


def _webhook_secret_warning(secret: str) -> str | None:
    body = secret.removeprefix("whsec_")
    key = base64.b64decode(body + "=" * (-len(body) % 4))
    if b"REPLACE-ME" in key:
        return "is the example config's placeholder: anyone who read the example can sign"
    # Random bytes are all printable once in 2**42 for a 24-byte key: a readable key was
    # typed (or copied from somewhere), not drawn.
    if all(0x20 <= byte < 0x7F for byte in key):
        return "is readable text, not random bytes: a typed or copied key can be guessed"
    if len(key) < _WEBHOOK_KEY_BYTES:
        return f"key is {len(key)} bytes; use {_WEBHOOK_KEY_BYTES} to 64 random bytes"
    return None


def warnings(settings: Settings) -> list[tuple[str, str]]:
    """What works but should not face subscribers: placeholder or weak secrets, links to
    an address they cannot reach. Keyed like ConfigError's problems; never the secret."""
    found: list[tuple[str, str]] = []
    found += _link_key_warnings(settings)
    found += _listener_warnings(settings)
    if not settings.privacy.erasure_key and settings.database.url:
        # As the link key: hosts sharing this database would each generate their own.
        found.append(
            (
                "[privacy] erasure_key",
                "is empty: this host keys the hashes of erased addresses with a key of its own "
                "(state_dir/erasure-key); a host sharing this database with another key does "
                "not recognise them, and lets an erased address back onto marketing through "
                "an import. Configure the same key on every host",
            )
        )
    public_url = settings.http.public_url
    host = urlsplit(public_url).hostname if public_url else settings.http.host
    if not public_url or _unreachable(host or ""):
        where = public_url or f"{settings.http.scheme}://{settings.http.host}:{settings.http.port}"
        found.append(
            (
                "[http] public_url",
                f"{'is empty: ' if not public_url else ''}links in emails point at {where}, "
                "which subscribers cannot reach; set the address they reach this daemon at",
            )
        )
    for name, source in settings.sources.items():
        for index, secret in enumerate(source.secrets):
            message = _webhook_secret_warning(secret)
            if message:
                found.append((f"[sources.{name}] secrets[{index}]", message))
    for name, token in settings.admin.tokens.items():
        where = f"[admin.tokens] {name}" if token.every_scope else f"[admin.tokens.{name}] digest"
        if token.digest in _GUESSABLE_TOKENS:
            found.append(
                (
                    where,
                    "is the digest of a guessable token (such as the example in "
                    "docs/admin-api.md): make one with secrets.token_urlsafe(32)",
                )
            )
        if token.every_scope:
            found.append(
                (
                    f"[admin.tokens] {name}",
                    'is in the old form (name = "sha256:..."), which grants every scope: '
                    f"write [admin.tokens.{name}] with digest and the scopes it needs",
                )
            )
    return found


def _link_key_warnings(settings: Settings) -> list[tuple[str, str]]:
    keys = settings.daemon.link_secret
    if not keys and settings.database.url:
        # A database of its own (embedded) has one host; a configured one may have several,
        # each of which would generate its own key and refuse the others' links.
        return [
            (
                "[daemon] link_secret",
                "is empty: this host seals links with a key of its own (state_dir/link-secret); "
                "hosts sharing this database behind one address then refuse each other's "
                "links. Configure the same key on every host",
            )
        ]
    return [
        (
            f"[daemon] link_secret{f'[{index}]' if len(keys) > 1 else ''}",
            f"is weak: use {_LINK_SECRET_CHARACTERS} or more random characters "
            "(or leave it empty for one generated in the state folder)",
        )
        for index, key in enumerate(keys)
        if len(key) < _LINK_SECRET_CHARACTERS
        or any(word in key.lower() for word in _PLACEHOLDER_WORDS)
    ]


def _listener_warnings(settings: Settings) -> list[tuple[str, str]]:
    """The admin API or /metrics where more than the operator can reach them, and proxies
    believed from everywhere."""
    http, admin = settings.http, settings.http.admin
    found = []
    if admin.shared:
        found.append(
            (
                "[http.admin] shared",
                "is true: the admin API and /metrics are served on the public listener, to "
                "whoever reaches it; keep them on a listener of their own (the default)",
            )
        )
    elif admin.cert_file is None and not _loopback(admin.host):
        found.append(
            (
                "[http.admin] host",
                f"{admin.host} is not loopback and the listener has no cert_file: admin tokens "
                "cross that network in clear text; set cert_file and key_file",
            )
        )
    if any(network.prefixlen == 0 for network in http.trusted_proxies):
        found.append(
            (
                "[http] trusted_proxies",
                "lists every address: any client can then name its own address in "
                f"{http.proxy_header} and pass allow_from or dodge rate limits; list only "
                "your proxies",
            )
        )
    return found


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _unreachable(host: str) -> bool:
    """A host subscribers' mail clients cannot reach: loopback, unspecified, localhost."""
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
