"""DKIM signing (issue 22, point 3): notices sent by the real daemon to an SMTP sink carry
an rsa-sha256 and, with [dkim] ed25519_key_file, an Ed25519-SHA256 signature (RFC 8463);
dkimpy verifies both and Perl's Mail::DKIM the RSA one (Debian's version knows no
Ed25519, and passes the message by RSA); a changed body fails both verifiers. Keys of the
wrong type are refused at start with a clear error; signing runs off the event loop."""

from __future__ import annotations

import threading
from pathlib import Path

import pydantic
import pytest

from notifyd.catalogue.samples import sample_event
from notifyd.mail.dkim import DkimError, DkimSigner
from notifyd.mail.sender_dns import records_needed
from notifyd.settings import DkimSettings
from tests.conftest import base_config, load_config, running_daemon
from tests.integration.catalogue_support import (
    FAST_DELIVERY,
    check_mail,
    post_ok,
    raw_smtp_server,
)
from tests.integration.dkim_support import (
    DOMAIN,
    ED25519_SELECTOR,
    Keys,
    dkim_keys,
    dkimpy_results,
    perl_missing,
    perl_results,
)

REPLY_TO = "Suport VoIP <suport@voip.example>"


async def _sent(
    tmp_path: Path, database_url: str, keys: Keys, dual: bool = True, reply_to: str = ""
) -> list[bytes]:
    """Two notices (one with a non-ASCII caller name), signed (with dual: by both keys), as
    the relay got them."""
    async with raw_smtp_server() as sink:
        config = base_config(
            tmp_path, database_url, sink.port, delivery=FAST_DELIVERY, dkim=keys.section(dual)
        )
        config["smtp"]["reply_to"] = reply_to
        async with running_daemon(load_config(tmp_path, config)) as daemon:
            await post_ok(daemon, sample_event("account.created", "acc-dkim"))
            await post_ok(
                daemon,
                sample_event(
                    "voicemail.received", "acc-dkim", call_id="dkim-1", caller_name="Ștefan Țîrlea"
                ),
            )
            await sink.wait_for(2)
    return sink.raws


def _tampered(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    changed = head + b"\r\n\r\n" + body.replace(b"=", b"=3D", 1)
    assert changed != raw
    return changed


async def test_both_signatures_verify_with_dkimpy(tmp_path: Path, database_url: str) -> None:
    keys = dkim_keys(tmp_path)
    raws = await _sent(tmp_path, database_url, keys)
    for raw in raws:
        assert raw.count(b"DKIM-Signature:") == 2
        assert b"a=ed25519-sha256" in raw
        assert b"a=rsa-sha256" in raw
        assert dkimpy_results(raw, keys.records()) == [True, True]
        assert dkimpy_results(_tampered(raw), keys.records()) == [False, False]


async def test_mail_dkim_verifies_the_rsa_signature(tmp_path: Path, database_url: str) -> None:
    if (why := perl_missing()) is not None:
        pytest.skip(why)
    keys = dkim_keys(tmp_path)
    for raw in await _sent(tmp_path, database_url, keys):
        results = perl_results(raw, keys.records())
        assert results["rsa-sha256"] == "pass"
        # Debian 12's Mail::DKIM 1.20230212 has no Ed25519: "invalid" (unsupported), and
        # the message still passes by RSA, as at a receiver that knows only RSA.
        assert results["ed25519-sha256"] in {"pass", "invalid"}
        assert perl_results(_tampered(raw), keys.records())["rsa-sha256"] == "fail"


def test_keys_of_the_wrong_type_are_refused(tmp_path: Path) -> None:
    keys = dkim_keys(tmp_path)
    swapped = keys.section() | {
        "private_key_file": str(keys.ed25519_file),
        "ed25519_key_file": str(keys.rsa_file),
    }
    with pytest.raises(DkimError, match="an Ed25519 key; private_key_file signs rsa-sha256"):
        DkimSigner(DkimSettings.model_validate(swapped))
    wrong_second = keys.section() | {"ed25519_key_file": str(keys.rsa_file)}
    with pytest.raises(DkimError, match="an RSA key; ed25519_key_file takes an Ed25519 key"):
        DkimSigner(DkimSettings.model_validate(wrong_second))
    for change, says in (
        ({"ed25519_selector": ""}, "ed25519_selector is empty"),
        ({"ed25519_selector": "nd1"}, "needs its own ed25519_selector"),
        ({"private_key_file": ""}, "private_key_file is not"),
    ):
        with pytest.raises(pydantic.ValidationError, match=says):
            DkimSettings.model_validate(keys.section() | change)


def test_test_email_prints_both_records(tmp_path: Path) -> None:
    keys = dkim_keys(tmp_path)
    config = base_config(tmp_path, "postgresql://unused/db", 25, dkim=keys.section())
    settings = load_config(tmp_path, config)
    found = {
        r.name: r.value for r in records_needed(settings.smtp, settings.dkim) if r.kind == "DKIM"
    }
    assert found == keys.records()
    assert found[f"{ED25519_SELECTOR}._domainkey.voip.example"].startswith("v=DKIM1; k=ed25519; p=")


async def test_signing_runs_off_the_event_loop(tmp_path: Path) -> None:
    threads: list[int] = []

    class Watched(DkimSigner):
        def sign(self, message: bytes) -> bytes:
            threads.append(threading.get_ident())
            return super().sign(message)

    signer = Watched(DkimSettings.model_validate(dkim_keys(tmp_path).section()))
    threads.clear()
    await signer.signed(b"From: a@b.example\r\nSubject: x\r\n\r\nx\r\n")
    assert threads
    assert threading.get_ident() not in threads


async def test_rsa_alone_signs_with_reply_to_and_a_changed_subject_fails(
    tmp_path: Path, database_url: str
) -> None:
    keys = dkim_keys(tmp_path)
    raws = await _sent(tmp_path, database_url, keys, dual=False, reply_to=REPLY_TO)
    for raw in raws:
        mail = check_mail(raw)
        assert mail.message["Reply-To"] == REPLY_TO
        assert raw.count(b"DKIM-Signature:") == 1
        assert f"d={DOMAIN}" in str(mail.message["DKIM-Signature"])
        assert dkimpy_results(raw, keys.records()) == [True]
    # The check can fail: a changed subject no longer verifies.
    tampered = raws[0].replace(b"Subject: ", b"Subject: Re: ", 1)
    assert tampered != raws[0]
    assert dkimpy_results(tampered, keys.records()) == [False]
