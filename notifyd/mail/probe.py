"""`notifyd test-email`'s conversation with the relay: one message, sent on the connection
the daemon makes (transport.py's `smtp_client` and `tls_context`: host, port, TLS mode,
ca_file, verify_tls, timeout), but driven step by step so each step is told as it happens —
greeting, EHLO and its extensions, STARTTLS with the TLS version, cipher and certificate,
AUTH (the mechanism and the answer, never the password), MAIL FROM, RCPT TO, DATA.

The message is built as delivery builds a notice (mime.py's headers, DKIM when [dkim] is
on). relay_cli.py prints; this module only says what happened, through `say`.
"""

from __future__ import annotations

import email.utils
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiosmtplib
from cryptography import x509

from notifyd.mail import mime
from notifyd.mail.addresses import needs_smtputf8, wire_form, wire_mailbox
from notifyd.mail.dkim import DkimSigner
from notifyd.mail.transport import smtp_client, tls_context
from notifyd.settings import SmtpSettings

Say = Callable[[str], None]
T = TypeVar("T")


class StepFailed(Exception):
    """The step of the conversation that failed (`connect`, `AUTH`, `RCPT TO` ...) and why."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass(frozen=True)
class ProbeMessage:
    envelope_sender: str
    recipient: str
    data: bytes


def envelope_sender(smtp: SmtpSettings) -> str:
    """MAIL FROM as a notice of this stream has it: with a bounce domain, the bounce
    address without a notice's token (a bounce of it reaches notifyd and names no notice);
    otherwise the sender's address."""
    if smtp.bounce_domain:
        return f"{smtp.bounce_local_part}@{smtp.bounce_domain}"
    return wire_form(smtp.sender_address)


def probe_message(
    smtp: SmtpSettings, stream: str, recipient: str, signer: DkimSigner | None
) -> ProbeMessage:
    """A short plain message from the stream's sender to `recipient`, signed as notices are."""
    domain = smtp.sender_address.rpartition("@")[2] or "notifyd.invalid"
    headers = [
        mime.address_header("From", wire_mailbox(smtp.sender)),
        mime.mailbox_header("To", wire_form(recipient)),
        mime.text_header("Subject", "notifyd test email"),
        mime.header("Date", email.utils.formatdate(localtime=True)),
        mime.header("Message-ID", f"<test-{uuid.uuid4()}@{domain}>"),
        mime.header("Auto-Submitted", "auto-generated"),
        mime.header("X-Notifyd-Stream", stream),
    ]
    if smtp.reply_to:
        headers.append(mime.address_header("Reply-To", wire_mailbox(smtp.reply_to)))
    text = (
        "This message was sent by `notifyd test-email` to prove that the relay takes "
        f"notifyd's {stream} mail.\n"
    )
    data = mime.compose(headers, text, f"<p>{text}</p>")
    if signer is not None:
        data = signer.sign(data)
    return ProbeMessage(envelope_sender(smtp), wire_form(recipient), data)


async def send_test(smtp: SmtpSettings, message: ProbeMessage, say: Say) -> str:
    """Send `message`, telling each step; the relay's final reply, or StepFailed."""
    tls = tls_context(smtp)
    client = smtp_client(smtp, tls)
    say(f"connect: {smtp.host}:{smtp.port} ({_security(smtp)}, timeout {smtp.timeout_seconds}s)")
    try:
        # Without the client's own STARTTLS and login: each is a step of its own below.
        greeting = await _step("connect", client.connect(start_tls=False, username=None))
        say(f"greeting: {_reply(greeting)}")
        if smtp.security == "tls":
            _tell_tls(client, smtp, say)
        await _ehlo(client, say)
        if smtp.security == "starttls":
            if not client.supports_extension("starttls"):
                raise StepFailed("STARTTLS", "the relay does not offer STARTTLS")
            say(f"STARTTLS: {_reply(await _step('STARTTLS', client.starttls()))}")
            _tell_tls(client, smtp, say)
            await _ehlo(client, say)
        if smtp.username:
            await _authenticate(client, smtp, say)
        return await _transaction(client, message, say)
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


async def _ehlo(client: aiosmtplib.SMTP, say: Say) -> None:
    reply = await _step("EHLO", client.ehlo())
    first, *extensions = reply.message.splitlines()
    say(f"EHLO {client.local_hostname}: {reply.code} {first}")
    say(f"  extensions: {', '.join(extensions) or 'none'}")


async def _authenticate(client: aiosmtplib.SMTP, smtp: SmtpSettings, say: Say) -> None:
    """Each mechanism both sides know, the client's preferred first, as aiosmtplib's login
    tries them; the password never leaves this function but to the relay."""
    offered = client.server_auth_methods
    if not client.supports_extension("auth"):
        raise StepFailed("AUTH", "the relay offers no AUTH (username is set in [smtp])")
    methods = client.supported_auth_methods
    if not methods:
        raise StepFailed("AUTH", f"no mechanism notifyd knows among {', '.join(offered)}")
    failure = ""
    for method in methods:
        try:
            reply = await getattr(client, f"auth_{method.replace('-', '')}")(
                smtp.username, smtp.password
            )
        except aiosmtplib.SMTPAuthenticationError as error:
            failure = f"{error.code} {error.message}"
            say(f"AUTH {method.upper()} as {smtp.username}: refused: {failure}")
            continue
        except (aiosmtplib.SMTPException, OSError) as error:
            raise StepFailed("AUTH", str(error)) from None
        say(f"AUTH {method.upper()} as {smtp.username}: {_reply(reply)}")
        return
    raise StepFailed("AUTH", f"the relay refused {smtp.username}'s password: {failure}")


async def _transaction(client: aiosmtplib.SMTP, message: ProbeMessage, say: Say) -> str:
    options, encoding = [], "ascii"
    if needs_smtputf8(message.envelope_sender, message.recipient):
        if not client.supports_extension("smtputf8"):
            raise StepFailed("MAIL FROM", "the address is not ASCII and there is no SMTPUTF8")
        options, encoding = ["SMTPUTF8"], "utf-8"
    sender = message.envelope_sender
    mail = await _step("MAIL FROM", client.mail(sender, options=options, encoding=encoding))
    say(f"MAIL FROM:<{message.envelope_sender}>: {_reply(mail)}")
    rcpt = await _step("RCPT TO", client.rcpt(message.recipient, encoding=encoding))
    say(f"RCPT TO:<{message.recipient}>: {_reply(rcpt)}")
    final = await _step("DATA", client.data(message.data))
    say(f"DATA ({len(message.data)} bytes): {_reply(final)}")
    return _reply(final)


async def _step(step: str, action: Awaitable[T]) -> T:
    """Await one SMTP step; any failure becomes StepFailed naming it."""
    try:
        return await action
    except aiosmtplib.SMTPResponseException as error:
        raise StepFailed(step, f"{error.code} {error.message}") from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise StepFailed(step, str(error) or type(error).__name__) from None


def _tell_tls(client: aiosmtplib.SMTP, smtp: SmtpSettings, say: Say) -> None:
    tls = client.get_transport_info("ssl_object")
    if not isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
        raise StepFailed("TLS", "the connection is not encrypted")
    cipher = tls.cipher()
    say(f"TLS: {tls.version()}, cipher {cipher[0] if cipher else 'unknown'}")
    der = tls.getpeercert(binary_form=True)
    if der:
        certificate = x509.load_der_x509_certificate(der)
        say(f"  certificate subject: {certificate.subject.rfc4514_string()}")
        say(f"  certificate issuer: {certificate.issuer.rfc4514_string()}")
    if smtp.verify_tls:
        against = f"ca_file {smtp.ca_file}" if smtp.ca_file else "the system's CAs"
        say(f"  verified: yes, against {against}, for the name {smtp.host}")
    else:
        say("  verified: NO (verify_tls = false): anyone on the path could read the mail")


def _security(smtp: SmtpSettings) -> str:
    return {"none": "no TLS", "starttls": "STARTTLS", "tls": "implicit TLS"}[smtp.security]


def _reply(response: aiosmtplib.SMTPResponse) -> str:
    return f"{response.code} {response.message}".strip()
