"""DKIM keys for the tests and two independent verifiers of what notifyd signs: dkimpy's
(Python, both algorithms; Ed25519 through PyNaCl) and Perl's Mail::DKIM (Debian's
libmail-dkim-perl, installed by `make dkim-perl`), run under perl with dkim_verify.pl.
Both take the public keys from the test, never from DNS."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from notifyd.mail.dkim import load_key, public_record

DOMAIN = "voip.example"
RSA_SELECTOR, ED25519_SELECTOR = "nd1", "nd1e"
PERL_VERIFIER = Path(__file__).with_name("dkim_verify.pl")
PERL = shutil.which("perl")


@dataclass(frozen=True)
class Keys:
    rsa_file: Path
    ed25519_file: Path

    def section(self, dual: bool = True) -> dict[str, str]:
        """[dkim] signing with these keys (with dual: both)."""
        section = {
            "domain": DOMAIN,
            "selector": RSA_SELECTOR,
            "private_key_file": str(self.rsa_file),
        }
        if dual:
            section |= {
                "ed25519_selector": ED25519_SELECTOR,
                "ed25519_key_file": str(self.ed25519_file),
            }
        return section

    def records(self) -> dict[str, str]:
        """The TXT record of each selector, by its DNS name."""
        return {
            f"{RSA_SELECTOR}._domainkey.{DOMAIN}": public_record(load_key(self.rsa_file)),
            f"{ED25519_SELECTOR}._domainkey.{DOMAIN}": public_record(load_key(self.ed25519_file)),
        }


def dkim_keys(folder: Path) -> Keys:
    """A fresh RSA-2048 key (PKCS#1 PEM) and Ed25519 key (PKCS#8 PEM) in `folder`."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    keys = Keys(folder / "dkim-rsa.pem", folder / "dkim-ed25519.pem")
    keys.rsa_file.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    keys.ed25519_file.write_bytes(
        ed_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return keys


def dkimpy_results(raw: bytes, records: dict[str, str]) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature of `raw`, in the message's order."""

    def txt(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    verifier = dkim.DKIM(raw)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    return [_verified(verifier, i, txt) for i in range(count)]


def _verified(verifier: dkim.DKIM, index: int, txt: Callable[..., bytes]) -> bool:
    try:
        return bool(verifier.verify(idx=index, dnsfunc=txt))
    except dkim.DKIMException:  # a body hash mismatch is raised, not answered False
        return False


def perl_missing() -> str | None:
    """Why Mail::DKIM cannot run here, or None."""
    if PERL is None:
        return "no perl"
    found = subprocess.run([PERL, "-MMail::DKIM::Verifier", "-e", "1"], capture_output=True)
    if found.returncode != 0:
        return "no Mail::DKIM (Debian's libmail-dkim-perl: `make dkim-perl` installs it as root)"
    return None


def perl_results(raw: bytes, records: dict[str, str]) -> dict[str, str]:
    """Mail::DKIM's result for each signature of `raw`, by its algorithm."""
    ran = subprocess.run(
        [
            PERL or "perl",
            str(PERL_VERIFIER),
            *(f"{name}={value}" for name, value in records.items()),
        ],
        input=raw,
        capture_output=True,
        timeout=30,
        check=True,
    )
    results = {}
    for line in ran.stdout.decode().splitlines():
        result, algorithm, _selector = line.split()
        results[algorithm] = result
    return results
