"""`notifyd test-email ADDRESS [--stream S]`: prove the relay. One real message leaves
through the stream's relay as a notice would (mail/probe.py: the daemon's connection, sender,
envelope and DKIM), every SMTP step printed as it happens; then the DNS records the sender
domain needs (mail/sender_dns.py), checked where DNS answers. Declared into cli.py.

Exit 0 when the relay answers 250 to DATA; otherwise one line on stderr names the step
that failed and why. The DNS part never changes the exit code: it reports, the operator
publishes. Output goes to this command's stdout only, never to the daemon's logs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from notifyd.mail.dkim import DkimError, DkimSigner
from notifyd.mail.probe import StepFailed, probe_message, send_test
from notifyd.mail.sender_dns import (
    Checked,
    DnsUnreachable,
    Record,
    Resolver,
    SystemResolver,
    check,
    records_needed,
)
from notifyd.settings import STREAMS, TRANSACTIONAL, Settings

EXIT_CONFIG = 78
EXIT_UNAVAILABLE = 69
EXIT_REFUSED = 1


def declare(command: argparse.ArgumentParser) -> None:
    command.add_argument("address", metavar="ADDRESS", help="where to send the test message")
    command.add_argument(
        "--stream",
        choices=STREAMS,
        default=TRANSACTIONAL,
        help="whose relay, sender and bounce domain to use ([smtp.streams]); default transactional",
    )
    command.add_argument(
        "--nameserver",
        metavar="IP[:PORT]",
        help="ask this DNS server about the records instead of the system's (e.g. a public "
        "one, when the internal DNS is not what the internet sees)",
    )


def run(settings: Settings, args: argparse.Namespace, resolver: Resolver | None = None) -> int:
    return asyncio.run(prove(settings, args.address, args.stream, resolver or _resolver(args)))


def _resolver(args: argparse.Namespace) -> Resolver:
    return SystemResolver(args.nameserver)


def say(line: str) -> None:
    # Flushed line by line: a relay that hangs shows at which step.
    print(line, flush=True)


async def prove(settings: Settings, address: str, stream: str, resolver: Resolver) -> int:
    smtp = settings.smtp.stream(stream)
    if not smtp.host:
        print(
            f"{settings.path}: [smtp] host is empty: {stream} mail is written to "
            f"{settings.outbox_dir} as .eml files, there is no relay to test",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        signer = DkimSigner(settings.dkim) if settings.dkim.enabled else None
    except DkimError as error:
        print(f"{settings.path}: [dkim] {error}", file=sys.stderr)
        return EXIT_CONFIG
    message = probe_message(smtp, stream, address, signer)
    signed = f"DKIM-signed as {settings.dkim.domain}" if signer else "not DKIM-signed ([dkim])"
    say(f"test-email: the {stream} stream, {signed}")
    try:
        final = await send_test(smtp, message, say)
    except StepFailed as failure:
        print(f"test-email failed at {failure.step}: {failure.reason}", file=sys.stderr)
        code = EXIT_UNAVAILABLE if failure.step == "connect" else EXIT_REFUSED
    else:
        say(f"sent: the relay accepted the message: {final}")
        code = 0
    await report_dns(records_needed(smtp, settings.dkim), resolver)
    return code


async def report_dns(records: list[Record], resolver: Resolver) -> None:
    say("")
    say("DNS records the sender domain needs:")
    try:
        checked: list[Checked] | None = await check(records, resolver)
    except DnsUnreachable as error:
        say(f"not checked: DNS unreachable ({error}); publish these:")
        checked = None
    for index, record in enumerate(records):
        state = checked[index] if checked is not None else None
        status = state.status if state is not None else "not checked"
        say(f"  {record.kind} {status}: {record.name} {record.rdtype} {record.value}")
        say(f"      why: {record.why}")
        if state is not None and state.status != "found" and state.published:
            say(f"      published now: {' | '.join(state.published)}")
