"""DKIM signatures (RFC 6376) on outgoing notices: rsa-sha256 with [dkim] private_key_file,
and with ed25519_key_file a second, Ed25519-SHA256 signature (RFC 8463) on every message.

The public-key arithmetic is OpenSSL's (`cryptography`), which releases the GIL: delivery
(delivery/send.py) awaits `signed()`, which signs on a small thread pool, so the event loop
keeps sending while another core signs. The canonicalisation (relaxed/relaxed) is written
here, a few regular expressions. What a signature cost with dkimpy (pure-Python RSA), CPU
per 3 KB notice on this 2-core machine (`timeit` with `time.process_time`):
dkim.sign 45-54 ms, of which its RSA arithmetic 45 ms, PEM parsing 1 ms, parsing and body
canonicalisation 0.17 ms; OpenSSL's RSA-2048 signature 0.6-0.7 ms, Ed25519 0.04 ms
(docs/performance.md "DKIM signing (stop 28)"). sender_dns.py derives the DNS records
from the same keys; probe.py (`notifyd test-email`) signs with `sign()` directly.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

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
# RFC 8301 3.2: verifiers must refuse RSA keys under 1024 bits.
RSA_MIN_BITS = 1024
# Two: one core signs while the loop runs on the other; more would only queue for it.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dkim")

_WSP = re.compile(rb"[\t ]+")
_TRAILING_WSP = re.compile(rb"[\t ]+(?=\r\n)")
_TRAILING_LINES = re.compile(rb"(?:\r\n)+\Z")
_FOLD = re.compile(rb"\r\n(?=[\t ])")

Key = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class DkimError(Exception):
    """The key cannot be used; raised at start or reload, not at send time."""


@dataclass(frozen=True)
class _Signature:
    algorithm: bytes  # a= tag
    selector: bytes
    key: Key

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463 3: PureEdDSA over the SHA-256 hash of what RSA would sign.
        return self.key.sign(hashlib.sha256(data).digest())


def load_key(path: Path) -> Key:
    """An RSA or Ed25519 private key: PEM (PKCS#1 or PKCS#8), or for Ed25519 also the
    base64 of its 32 raw bytes (what dkimpy's `dknewkey --ktype ed25519` writes)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DkimError(f"cannot read {path}: {error}") from None
    if b"-----BEGIN" not in data:
        try:
            raw = base64.b64decode(data.strip(), validate=True)
            return ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        except ValueError:
            raise DkimError(f"{path}: neither a PEM key nor a base64 Ed25519 key") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise DkimError(f"{path}: not a usable private key ({error})") from None
    if not isinstance(key, Key):
        raise DkimError(f"{path}: a {type(key).__name__}, not an RSA or Ed25519 key")
    return key


def public_record(key: Key) -> str:
    """The TXT record that publishes `key`'s public half: `v=DKIM1; k=...; p=...`."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def _rsa_key(path: Path) -> rsa.RSAPrivateKey:
    key = load_key(path)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimError(
            f"{path}: an Ed25519 key; private_key_file signs rsa-sha256 (name an Ed25519 "
            "key in ed25519_key_file, to sign with both)"
        )
    if key.key_size < RSA_MIN_BITS:
        raise DkimError(f"{path}: RSA key of {key.key_size} bits; receivers need 1024+")
    return key


def _ed25519_key(path: Path) -> ed25519.Ed25519PrivateKey:
    key = load_key(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DkimError(f"{path}: an RSA key; ed25519_key_file takes an Ed25519 key")
    return key


class DkimSigner:
    def __init__(self, settings: DkimSettings) -> None:
        assert settings.private_key_file is not None
        self.domain = settings.domain.encode()
        rsa_key = _rsa_key(settings.private_key_file)
        self.signatures = [_Signature(b"rsa-sha256", settings.selector.encode(), rsa_key)]
        if settings.ed25519_key_file is not None:
            key = _ed25519_key(settings.ed25519_key_file)
            self.signatures.append(
                _Signature(b"ed25519-sha256", settings.ed25519_selector.encode(), key)
            )
        # Signing a sample now turns a bad key into a config error instead of failed mail.
        try:
            self.sign(b"From: a@b.example\r\nSubject: x\r\n\r\nx\r\n")
        except ValueError as error:
            raise DkimError(f"{settings.private_key_file}: {error}") from None

    async def signed(self, message: bytes) -> bytes:
        """`sign(message)` on the signing threads: the loop is not held while OpenSSL works."""
        return await asyncio.get_running_loop().run_in_executor(_POOL, self.sign, message)

    def sign(self, message: bytes) -> bytes:
        """The message with its DKIM-Signature header(s) prepended (Ed25519's first, when
        dual-signing: each signature covers the message's own headers, not the other)."""
        head, _, body = message.partition(b"\r\n\r\n")
        fields = _fields(head)
        present = {name.strip().lower() for name, _ in fields}
        names = [h.lower() for h in SIGNED_HEADERS if h.lower() in present]
        signed = b"".join(_relaxed(name, value) for name, value in _select(fields, names))
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        stamp = str(int(time.time())).encode()
        headers = []
        for signature in self.signatures:
            header = b"DKIM-Signature: " + b";\r\n ".join(
                [
                    b"v=1; a=" + signature.algorithm + b"; c=relaxed/relaxed; d=" + self.domain,
                    b"s=" + signature.selector + b"; t=" + stamp,
                    b"h=" + _folded(b":".join(names), b":"),
                    b"bh=" + body_hash,
                    b"b=",
                ]
            )
            # The signature's own header is hashed with b= empty and no final CRLF.
            name, _, value = header.partition(b":")
            value = signature.sign(signed + _relaxed(name, value).rstrip(b"\r\n"))
            headers.append(header + _folded(base64.b64encode(value)) + b"\r\n")
        return b"".join(reversed(headers)) + message


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: no whitespace at line ends, runs of it one space, no empty lines
    at the end; a body that is not empty ends with one CRLF."""
    body = _WSP.sub(b" ", _TRAILING_WSP.sub(b"", body))
    body = _TRAILING_LINES.sub(b"", body)
    return body + b"\r\n" if body else b""


def _relaxed(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2: name in lower case, value unfolded, runs of whitespace one space,
    none around the colon or at the end."""
    return name.strip().lower() + b":" + _WSP.sub(b" ", _FOLD.sub(b"", value)).strip() + b"\r\n"


def _fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields, in order, each value with its folding as written."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


def _select(fields: list[tuple[bytes, bytes]], names: list[bytes]) -> list[tuple[bytes, bytes]]:
    """For each name of h=, the last field of that name not yet taken (RFC 6376 5.4.2)."""
    chosen = []
    taken: set[int] = set()
    for name in names:
        for index in range(len(fields) - 1, -1, -1):
            if index not in taken and fields[index][0].strip().lower() == name:
                taken.add(index)
                chosen.append(fields[index])
                break
    return chosen


def _folded(value: bytes, after: bytes = b"", width: int = 70) -> bytes:
    """`value` over lines of at most `width` (FWS is allowed within b= and after h='s
    colons, and ignored by both)."""
    if after:
        lines, line = [], b""
        for part in value.split(after):
            if line and len(line) + len(part) > width:
                lines.append(line)
                line = b""
            line += part + after
        lines.append(line[: -len(after)])
        return b"\r\n ".join(lines)
    return b"\r\n ".join(value[i : i + width] for i in range(0, len(value), width))
