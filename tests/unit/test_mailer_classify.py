"""classify(): SMTP failures -> retry or fail; EmlFolder: one .eml per notice, atomically."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import resource
import signal
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from notifyd.mail.eml_folder import EmlFolder
from notifyd.mail.transport import Outcome, Verdict, classify


def refused(code: int, message: str) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, message, "ana@example.com")]
    )


# -- classify ----------------------------------------------------------------------------------


def test_recipient_refused_with_550_fails() -> None:
    outcome = classify(refused(550, "5.1.1 mailbox unavailable"))

    # A refusal of the recipient: a hard bounce, counted against the address.
    assert outcome == Outcome(Verdict.FAILED, "550 5.1.1 mailbox unavailable", "5xx", bounce=True)


def test_recipient_refused_with_451_retries() -> None:
    outcome = classify(refused(451, "4.7.1 greylisted, try again later"))

    assert outcome == Outcome(Verdict.RETRY, "451 4.7.1 greylisted, try again later", "4xx")


def test_recipients_refused_without_details_retries() -> None:
    outcome = classify(aiosmtplib.SMTPRecipientsRefused([]))

    assert outcome.verdict is Verdict.RETRY
    assert outcome.error_kind == "4xx"


def test_data_error_554_fails() -> None:
    outcome = classify(aiosmtplib.SMTPDataError(554, "5.7.1 message rejected as spam"))

    assert outcome == Outcome(Verdict.FAILED, "554 5.7.1 message rejected as spam", "5xx")


def test_response_421_retries() -> None:
    outcome = classify(aiosmtplib.SMTPResponseException(421, "4.3.2 service shutting down"))

    assert outcome == Outcome(Verdict.RETRY, "421 4.3.2 service shutting down", "4xx")


@pytest.mark.parametrize(
    ("code", "verdict", "kind"),
    [
        (400, Verdict.RETRY, "4xx"),
        (452, Verdict.RETRY, "4xx"),
        (499, Verdict.RETRY, "4xx"),
        (500, Verdict.FAILED, "5xx"),
        (530, Verdict.FAILED, "5xx"),
        (599, Verdict.FAILED, "5xx"),
    ],
)
def test_reply_code_class_decides_retry_or_fail(code: int, verdict: Verdict, kind: str) -> None:
    outcome = classify(aiosmtplib.SMTPResponseException(code, "reply"))

    assert outcome == Outcome(verdict, f"{code} reply", kind)


def test_sender_refused_553_fails() -> None:
    error = aiosmtplib.SMTPSenderRefused(553, "5.7.1 sender not allowed", "notices@voip.example")

    assert classify(error).verdict is Verdict.FAILED


def test_server_disconnected_retries_as_a_connection_fault() -> None:
    outcome = classify(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))

    assert outcome.verdict is Verdict.RETRY
    assert outcome.error_kind == "connection"
    assert outcome.reply == "connection: Unexpected EOF received"
    assert outcome.possibly_sent is False


def test_refused_connection_retries_as_a_connection_fault() -> None:
    outcome = classify(ConnectionRefusedError(111, "Connection refused"))

    assert outcome.verdict is Verdict.RETRY
    assert outcome.error_kind == "connection"


def test_timeout_retries_as_a_timeout() -> None:
    outcome = classify(aiosmtplib.SMTPTimeoutError("Timed out waiting for server response"))

    assert outcome == Outcome(
        Verdict.RETRY, "timeout: Timed out waiting for server response", "timeout"
    )


def test_asyncio_timeout_retries_as_a_timeout() -> None:
    assert classify(TimeoutError()).error_kind == "timeout"


def test_authentication_error_535_retries_as_auth() -> None:
    outcome = classify(aiosmtplib.SMTPAuthenticationError(535, "5.7.8 bad credentials"))

    # A 5xx, but a wrong password fails every notice: keep them queued for the admin.
    assert outcome == Outcome(Verdict.RETRY, "535 5.7.8 bad credentials", "auth")


def test_unknown_errors_are_raised_not_classified() -> None:
    with pytest.raises(ValueError, match="a bug, not an SMTP fault"):
        classify(ValueError("a bug, not an SMTP fault"))


# -- EmlFolder ---------------------------------------------------------------------------------


def message(message_id: str, subject: str) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Operator <notices@voip.example>"
    msg["To"] = "ana@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content("Aveți un apel nepreluat.\n")
    return msg


async def send(folder: EmlFolder, msg: EmailMessage, sender: str, recipient: str) -> Outcome:
    return await folder.send(msg.as_bytes(), sender, recipient, msg["Message-ID"])


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


NOTICE_ID = "3f1c2a9e-8d4b-4c7a-9e21-5b6f0d8a7c10"


async def test_eml_folder_writes_one_file_named_after_the_message_id(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    folder = EmlFolder(outbox)

    outcome = await send(
        folder,
        message(f"<{NOTICE_ID}@voip.example>", "first"),
        "notices@voip.example",
        "ana@example.com",
    )

    target = outbox / f"{NOTICE_ID}.eml"
    assert outcome == Outcome(Verdict.SENT, f"250 written to {target}")
    assert names(outbox) == [f"{NOTICE_ID}.eml"]  # no temporary left over
    parsed = email.message_from_bytes(target.read_bytes(), policy=email.policy.strict)
    assert parsed["Subject"] == "first"
    assert parsed["Message-ID"] == f"<{NOTICE_ID}@voip.example>"


async def test_eml_folder_second_send_of_the_same_message_id_overwrites(tmp_path: Path) -> None:
    folder = EmlFolder(tmp_path)
    message_id = f"<{NOTICE_ID}@voip.example>"

    await send(folder, message(message_id, "first"), "notices@voip.example", "ana@example.com")
    await send(folder, message(message_id, "retry"), "notices@voip.example", "ana@example.com")

    assert names(tmp_path) == [f"{NOTICE_ID}.eml"]
    eml = (tmp_path / f"{NOTICE_ID}.eml").read_bytes()
    parsed = email.message_from_bytes(eml, policy=email.policy.strict)
    assert parsed["Subject"] == "retry"


async def test_eml_folder_concurrent_sends_leave_only_whole_files(tmp_path: Path) -> None:
    folder = EmlFolder(tmp_path)
    ids = [f"{NOTICE_ID[:-1]}{n}" for n in range(5)]

    await asyncio.gather(
        *(
            send(folder, message(f"<{i}@voip.example>", i), "notices@voip.example", "a@b.example")
            for i in ids
        )
    )

    assert names(tmp_path) == sorted(f"{i}.eml" for i in ids)
    for i in ids:
        parsed = email.message_from_bytes((tmp_path / f"{i}.eml").read_bytes())
        assert parsed["Subject"] == i


async def test_eml_folder_writes_aside_then_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = EmlFolder(tmp_path)
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: str, dst: Path) -> None:
        replaced.append((Path(src), Path(dst)))
        assert not Path(dst).exists()  # the final name appears only through the rename
        real_replace(src, dst)

    monkeypatch.setattr("notifyd.mail.eml_folder.os.replace", spy)

    await send(
        folder,
        message(f"<{NOTICE_ID}@voip.example>", "x"),
        "notices@voip.example",
        "ana@example.com",
    )

    assert len(replaced) == 1
    source, target = replaced[0]
    assert source.parent == tmp_path
    assert source.name.startswith(".")
    assert source.suffix == ".tmp"
    assert target == tmp_path / f"{NOTICE_ID}.eml"
    assert not source.exists()


async def test_an_eml_folder_that_cannot_be_written_keeps_the_notice_queued_and_says_why(
    tmp_path: Path,
) -> None:
    # The folder gone and a file in its place (or read-only, or on a full disk): every
    # notice meets it, as every notice meets a relay that is down. A retry naming the folder
    # and the reason, not an "unexpected" OSError that names neither.
    outbox = tmp_path / "outbox"
    folder = EmlFolder(outbox)
    outbox.rmdir()
    outbox.write_text("not a folder")

    outcome = await send(
        folder, message(f"<{NOTICE_ID}@voip.example>", "x"), "n@voip.example", "ana@example.com"
    )

    assert outcome == Outcome(
        Verdict.RETRY, f"451 cannot write to the .eml folder {outbox}: Not a directory", "outbox"
    )


async def test_a_full_eml_folder_leaves_no_part_written_file_behind(tmp_path: Path) -> None:
    # A disk that fills mid-write: the part written is removed, or each retry leaves another
    # and the folder never empties. RLIMIT_FSIZE stands in for the full disk (EFBIG).
    folder = EmlFolder(tmp_path)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, limits[1]))
    try:
        outcome = await send(
            folder,
            message(f"<{NOTICE_ID}@voip.example>", "x" * 4000),
            "n@voip.example",
            "ana@example.com",
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, ignored)

    assert outcome.verdict is Verdict.RETRY
    assert outcome.reply == f"451 cannot write to the .eml folder {tmp_path}: File too large"
    assert names(tmp_path) == []


# -- issue 16: the SMTP fault matrix's findings ------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        "554 5.7.1 <ana@example.com>: Relay access denied",  # the relay refuses, not the address
        "500 5.5.2 Syntax error, command unrecognized",
        "552 5.2.2 Mailbox full",  # the mailbox exists
        "554 Transaction failed",
    ],
)
def test_a_rcpt_refusal_not_about_the_address_is_no_hard_bounce(reply: str) -> None:
    code, message = reply.split(" ", 1)
    outcome = classify(refused(int(code), message))

    assert (outcome.verdict, outcome.bounce) == (Verdict.FAILED, False)


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <ana@example.com>: Recipient address rejected: User unknown",
        "550 5.1.10 Recipient address has null MX",
        "554 5.1.2 Bad destination system address",
        "550 5.2.1 Mailbox disabled",
        "550 Requested action not taken: mailbox unavailable",  # no enhanced code
        "553 Requested action not taken: mailbox name not allowed",
    ],
)
def test_a_rcpt_refusal_about_the_address_is_a_hard_bounce(reply: str) -> None:
    code, message = reply.split(" ", 1)
    outcome = classify(refused(int(code), message))

    assert (outcome.verdict, outcome.bounce) == (Verdict.FAILED, True)


@pytest.mark.parametrize(
    "error",
    [
        aiosmtplib.SMTPConnectResponseError(554, "5.3.2 No SMTP service here"),
        aiosmtplib.SMTPHeloError(554, "5.7.1 Access denied"),
        aiosmtplib.SMTPResponseException(500, "5.5.2 STARTTLS command unrecognized"),
    ],
)
def test_a_5xx_while_the_connection_is_set_up_refuses_the_relay_not_the_notice(
    error: aiosmtplib.SMTPResponseException,
) -> None:
    outcome = classify(error, setup=True)

    # Kept queued; "refused" opens the breaker (every notice would meet the same refusal).
    assert outcome == Outcome(Verdict.RETRY, f"{error.code} {error.message}", "refused")


def test_a_temporary_authentication_failure_is_a_plain_retry() -> None:
    error = aiosmtplib.SMTPAuthenticationError(454, "4.7.0 Temporary authentication failure")

    # Not a wrong password: retried with back-off, no pause of the whole delivery.
    assert classify(error, setup=True) == Outcome(
        Verdict.RETRY, "454 4.7.0 Temporary authentication failure", "4xx"
    )
